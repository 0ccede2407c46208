r"""Checks for the exercises on the ideas of the Principles part (exercises 01-09).

Every check computes its reference answer itself, with optbook (the transforms, the landscapes, the
precision helpers), calls the student's functions safely, and answers with one :class:`Verdict`:
what was verified, the name of a known mistake, where the answer differs, or "not attempted yet".

    from optbook.checks.concepts import check_steep_and_flat
    check_steep_and_flat(adagrad_effective_lrs, flat_to_steep_ratio)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..core import transforms as T
from ..lab import landscapes as L
from ..lab import precision
from ..lab.run import run
from .core import (
    NOT_ATTEMPTED,
    PASSED,
    StudentError,
    Verdict,
    call_student,
    compare_function,
    failed,
    is_unanswered,
    not_attempted,
    passed,
)

__all__ = [
    "check_steep_and_flat",
    "check_adagrad_fisher",
    "check_adagrad_plateau",
    "check_changing_landscape",
    "check_rmsprop_scale_change",
    "check_beta1_below_beta2",
    "check_adamw_vs_l2",
    "check_epsilon_floor",
    "check_round_bowl",
]


# --- Shared helpers ---------------------------------------------------------------------------------


def combine(*verdicts: Verdict) -> Verdict:
    """One verdict for an exercise of several parts: failed if one part failed, not attempted while a part is
    still a stub, passed when every part passed (the messages joined)."""
    for v in verdicts:
        if v.status not in (PASSED, NOT_ATTEMPTED):
            done = [p.message.split(":")[0] for p in verdicts if p.passed]
            also = f" (already right: {', '.join(done)})" if done else ""
            return Verdict(v.status, v.message + also, v.mistake)
    todo = [v for v in verdicts if v.status == NOT_ATTEMPTED]
    if todo:
        if len(todo) == len(verdicts):
            return (
                todo[0]
                if len(todo) == 1
                else Verdict(
                    NOT_ATTEMPTED,
                    "; ".join(v.message.split(":")[0] for v in todo) + ": not attempted yet. "
                    "Replace the lines marked YOUR CODE HERE, then run this check again.",
                )
            )
        done = [v.message for v in verdicts if v.passed]
        return Verdict(NOT_ATTEMPTED, " ".join(done) + " Still to do: " + todo[0].message)
    return passed(" ".join(v.message for v in verdicts))


def _fmt(x) -> str:
    return (
        ", ".join(_fmt(a) for a in x)
        if isinstance(x, (tuple, list))
        else (
            str(x).removeprefix("torch.")
            if isinstance(x, torch.dtype)
            else f"{x:g}"
            if isinstance(x, float)
            else str(x)
        )
    )


def _same(a: float, b: float, rtol: float, atol: float) -> bool:
    if math.isinf(a) or math.isinf(b) or math.isnan(a) or math.isnan(b):
        return a == b or (math.isnan(a) and math.isnan(b))
    return abs(a - b) <= atol + rtol * abs(b)


def compare_scalar_function(
    student: Callable,
    reference: Callable,
    cases: Sequence[tuple],
    *,
    what: str,
    mistakes: dict[str, Callable] | None = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    show: Callable[[tuple], str] = _fmt,
    verified: str = "",
) -> Verdict:
    """Like :func:`compare_function`, for a function that returns one number (an int, a float, a 0-d tensor)."""
    if student is None or not callable(student):
        return failed(f"{what}: expected a function, got {type(student).__name__}")
    got_all, answers = [], []
    for case in cases:
        try:
            answers.append(call_student(student, *case))
        except StudentError as err:
            return failed(f"{what}: {err}")
    if all(is_unanswered(a) for a in answers):
        return not_attempted(what)
    for case, got in zip(cases, answers):
        if is_unanswered(got):
            return failed(f"{what}: your function returns {got!r} for ({show(case)}); it should return a number")
        if isinstance(got, torch.Tensor) and got.numel() != 1:
            return failed(
                f"{what}: your function returns a tensor of shape {tuple(got.shape)}; it should return one number"
            )
        try:
            got_all.append(float(got))
        except (TypeError, ValueError):
            return failed(f"{what}: your function should return a number, but it returns {type(got).__name__}")
    expected = [float(reference(*case)) for case in cases]
    wrong = [k for k, (g, e) in enumerate(zip(got_all, expected)) if not _same(g, e, rtol, atol)]
    if not wrong:
        if len(cases) == 1:
            return passed(f"{what}: {got_all[0]:.6g} is right{verified}.")
        return passed(f"{what}: correct on all {len(cases)} test cases{verified}.")
    for description, bad in (mistakes or {}).items():
        if all(_same(g, float(bad(*case)), rtol, atol) for g, case in zip(got_all, cases)):
            return failed(f"{what}: {description}.", description)
    k = wrong[0]
    return failed(f"{what}: for ({show(cases[k])}) you have {got_all[k]:.6g} where the answer is {expected[k]:.6g}.")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- 01 The steep and the flat parameter (AdaGrad) --------------------------------------------------


def adagrad_effective_lrs(grads: torch.Tensor, lr: float, eps: float) -> torch.Tensor:
    r"""Reference: $\gamma / (\sqrt{G_t} + \epsilon)$ after each step, read from ``scale_by_rss``'s accumulator."""
    piece = T.scale_by_rss(eps=eps)
    state, out = piece.init(grads[0]), []
    for g in grads:
        _, state = piece.update(g, state, g)
        out.append(lr / (state["sum"].sqrt() + eps))
    return torch.stack(out)


def _cumsum_sq(grads):
    return (grads * grads).cumsum(0)


_STEEP_FLAT_MISTAKES = {
    "your accumulator is averaged over the steps (G_t / t) instead of summed: AdaGrad's memory is a sum, "
    "which is why its learning rates keep falling": lambda g, lr, eps: (
        lr / ((_cumsum_sq(g) / torch.arange(1, len(g) + 1, dtype=g.dtype)[:, None]).sqrt() + eps)
    ),
    "the square root is missing: AdaGrad divides by sqrt(G_t) + eps, not by G_t + eps": lambda g, lr, eps: (
        lr / (_cumsum_sq(g) + eps)
    ),
    "epsilon is inside the square root: the library (like torch.optim.Adagrad) divides by sqrt(G_t) + eps": lambda g, lr, eps: (
        lr / (_cumsum_sq(g) + eps).sqrt()
    ),
    "off by one step: your accumulator misses the current gradient (G_{t-1}); AdaGrad adds g_t^2 before it "
    "divides": lambda g, lr, eps: lr / (torch.cat([torch.zeros_like(g[:1]), _cumsum_sq(g)[:-1]]).sqrt() + eps),
    "you summed |g| instead of g^2: the accumulator holds squared gradients": lambda g, lr, eps: (
        lr / (g.abs().cumsum(0).sqrt() + eps)
    ),
}


def steep_and_flat_cases():
    gen = _generator(1)
    scales = torch.tensor([10.0, 0.1], dtype=torch.float64)
    case1 = (torch.randn(12, 2, generator=gen, dtype=torch.float64) * scales, 0.1, 1e-10)
    case2 = (torch.randn(6, 3, generator=gen, dtype=torch.float64), 1.0, 0.5)
    steady = (scales.repeat(5, 1), 0.5, 1e-10)
    return [case1, case2, steady]


def flat_to_steep_reference(steep: float = 10.0, flat: float = 0.1, steps: int = 50) -> float:
    eff = adagrad_effective_lrs(torch.tensor([[steep, flat]], dtype=torch.float64).repeat(steps, 1), 0.1, 1e-10)
    return float(eff[-1, 1] / eff[-1, 0])


def check_steep_and_flat(effective_lrs: Callable, flat_to_steep_ratio: Callable) -> Verdict:
    """Exercise 01: AdaGrad's effective learning rates, and the ratio of the flat one to the steep one."""
    first = compare_function(
        effective_lrs,
        adagrad_effective_lrs,
        steep_and_flat_cases(),
        what="effective learning rates",
        mistakes=_STEEP_FLAT_MISTAKES,
        output_names=("the effective learning rates",),
        verified=" (a steep and a flat coordinate, a random stream, and a large eps)",
    )
    ratio = flat_to_steep_reference()
    second = compare_scalar_function(
        flat_to_steep_ratio,
        lambda: ratio,
        [()],
        what="flat-to-steep ratio",
        rtol=1e-3,
        mistakes={
            "this is the ratio of G_t, without the square root; the learning rates go as 1/sqrt(G_t)": lambda: ratio**2,
            "this is the steep-to-flat ratio: the flat coordinate keeps the LARGER learning rate": lambda: 1 / ratio,
            "you took the square root once too often: the ratio of the gradients is already the answer": lambda: (
                ratio**0.5
            ),
        },
        verified=" (a 100-fold gap in gradient gives the same gap in step size, at every step)",
    )
    return combine(first, second)


# --- 02 AdaGrad and the Fisher information ----------------------------------------------------------


def logistic_data(n: int = 64, d: int = 3, seed: int = 2):
    """A small logistic-regression problem: features ``X`` (n, d), labels ``y`` in {0, 1}, the true weights."""
    gen = _generator(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64) * torch.linspace(2.0, 0.5, d, dtype=torch.float64)
    w_true = torch.linspace(1.0, -1.0, d, dtype=torch.float64)
    y = torch.bernoulli(torch.sigmoid(X @ w_true), generator=gen)
    return X, y, w_true


def per_sample_grads(w, X, y):
    r"""$\nabla_w [-\log p(y_n|x_n)] = (\sigma(x_n^\top w) - y_n)\, x_n$, one row per sample."""
    return (torch.sigmoid(X @ w) - y)[:, None] * X


def empirical_fisher_reference(w, X, y):
    r"""AdaGrad's accumulator after one pass over the data, one sample per step, at fixed $w$, divided by $N$."""
    piece = T.scale_by_rss(eps=0.0)
    grads = per_sample_grads(w, X, y)
    state = piece.init(w)
    for g in grads:
        _, state = piece.update(g, state, w)
    return state["sum"] / len(grads)


def fisher_reference(w, X):
    r"""$\frac1N\sum_n p_n(1-p_n)\,x_n^2$: the expectation over $y \sim p_w(\cdot|x_n)$ of the squared gradient."""
    p = torch.sigmoid(X @ w)
    # E_y[(p - y)^2] with y ~ Bernoulli(p): p (p - 1)^2 + (1 - p) p^2 = p (1 - p)
    expected_sq_residual = p * (p - 1) ** 2 + (1 - p) * p**2
    return (expected_sq_residual[:, None] * X * X).mean(0)


def fisher_cases():
    X, y, w_true = logistic_data()
    X2, y2, _ = logistic_data(n=20, d=2, seed=5)
    return [
        (torch.zeros(3, dtype=torch.float64), X, y),
        (w_true, X, y),
        (torch.tensor([0.5, 2.0], dtype=torch.float64), X2, y2),
    ]


_EMPIRICAL_MISTAKES = {
    "you squared the average gradient: the empirical Fisher averages the squares of the per-sample gradients "
    "(the average gradient is near zero at the optimum; its square says nothing about curvature)": lambda w, X, y: (
        per_sample_grads(w, X, y).mean(0) ** 2
    ),
    "you summed over the samples instead of averaging: divide by N (AdaGrad's accumulator / t)": lambda w, X, y: (
        per_sample_grads(w, X, y) ** 2
    ).sum(0),
    "you used the model's probabilities in place of the observed labels: that is the Fisher, not the empirical "
    "Fisher": lambda w, X, y: fisher_reference(w, X),
    "the residual is not squared: the squared gradient is (p - y)^2 x^2": lambda w, X, y: (
        (torch.sigmoid(X @ w) - y).abs()[:, None] * X * X
    ).mean(0),
}

_FISHER_MISTAKES = {
    "the factor p(1 - p) is missing: the expected squared residual E[(p - y)^2] under the model is p(1 - p)": lambda w, X: (
        (X * X).mean(0)
    ),
    "you used p instead of p(1 - p)": lambda w, X: (torch.sigmoid(X @ w)[:, None] * X * X).mean(0),
    "you summed over the samples instead of averaging": lambda w, X: (
        (torch.sigmoid(X @ w) * (1 - torch.sigmoid(X @ w)))[:, None].mul(X * X).sum(0)
    ),
    "the features are not squared: the squared gradient is (p - y)^2 x^2": lambda w, X: (
        (torch.sigmoid(X @ w) * (1 - torch.sigmoid(X @ w)))[:, None].mul(X).mean(0)
    ),
}


def check_adagrad_fisher(empirical_fisher_diag: Callable, fisher_diag: Callable) -> Verdict:
    """Exercise 02: the empirical Fisher diagonal (observed labels) and the Fisher diagonal (the model's labels)."""
    cases = fisher_cases()
    first = compare_function(
        empirical_fisher_diag,
        empirical_fisher_reference,
        cases,
        what="empirical Fisher diagonal",
        mistakes=_EMPIRICAL_MISTAKES,
        output_names=("the empirical Fisher diagonal",),
        verified=", and it equals AdaGrad's accumulator / t after one pass over the data",
    )
    second = compare_function(
        fisher_diag,
        fisher_reference,
        [(w, X) for w, X, _ in cases],
        what="Fisher diagonal",
        mistakes=_FISHER_MISTAKES,
        output_names=("the Fisher diagonal",),
    )
    return combine(first, second)


# --- 03 AdaGrad on the plateau ----------------------------------------------------------------------


def plateau_landscape() -> L.MountainsThenPlateau:
    """The terrain of exercise 03: steep mountains on [-1, 0], then a plateau of slope 0.02 up to the valley."""
    return L.MountainsThenPlateau(plateau_slope=0.02, plateau_end=2.0)


def _first(xs: torch.Tensor, level: float) -> int:
    hits = (xs >= level).nonzero()
    return int(hits[0]) if len(hits) else -1


def crossing_reference(xs, start, end):
    """Steps between first reaching ``start`` and first reaching ``end`` (-1 if either never happens)."""
    a, b = _first(xs, start), _first(xs, end)
    return b - a if a >= 0 and b >= 0 else -1


def _crossing_cases():
    land = plateau_landscape()
    far = float(land.minimizer[0]) - 0.05
    walk = run(T.chain(T.scale_by_rms(alpha=0.9), T.scale_by_learning_rate(0.01)), land, steps=400)
    xs = walk.params[:, 0]
    ramp = torch.linspace(-1.0, 3.0, 41, dtype=torch.float64)
    stuck = torch.cat([torch.linspace(-1.0, 0.5, 10, dtype=torch.float64), torch.full((20,), 0.5, dtype=torch.float64)])
    never = torch.linspace(-1.0, -0.2, 30, dtype=torch.float64)
    return [(ramp, 0.0, 2.0), (xs, 0.0, far), (stuck, 0.0, 2.0), (never, 0.0, 2.0)]


def _never(value):
    return lambda xs, s, e: value if crossing_reference(xs, s, e) == -1 else crossing_reference(xs, s, e)


_CROSSING_MISTAKES = {
    "you counted from the very start of the walk: count from the step the hiker first reaches the plateau": lambda xs, s, e: (
        _first(xs, e)
    ),
    "off by one: the difference of the two first-arrival steps is the answer (no +1)": lambda xs, s, e: (
        crossing_reference(xs, s, e) + 1 if crossing_reference(xs, s, e) >= 0 else -1
    ),
    "off by one: the difference of the two first-arrival steps is the answer (no -1)": lambda xs, s, e: (
        crossing_reference(xs, s, e) - 1 if crossing_reference(xs, s, e) >= 0 else -1
    ),
    "when the hiker never gets across, return -1 (you return 0)": _never(0),
    "when the hiker never gets across, return -1 (you return nan)": _never(float("nan")),
}


def predicted_crossing_reference(lr, G, distance, slope):
    r"""Steps to cross: distance / (step per iteration), with the step $\gamma\, p / \sqrt{G}$ frozen at entry."""
    step = float(T.scale_by_learning_rate(lr).update(torch.tensor(slope / math.sqrt(G)), {}, None)[0].abs())
    return distance / step


def check_adagrad_plateau(crossing_steps: Callable, predicted_crossing_steps: Callable) -> Verdict:
    """Exercise 03: count the steps to cross the plateau, and predict them from AdaGrad's memory at entry."""
    first = compare_scalar_function(
        crossing_steps,
        crossing_reference,
        _crossing_cases(),
        what="crossing_steps",
        mistakes=_CROSSING_MISTAKES,
        show=lambda c: f"a walk of {len(c[0])} points, start={c[1]:g}, end={c[2]:.4g}",
        verified=" (a steady climb, a real RMSProp walk, a hiker who stalls, one who never reaches the plateau)",
    )
    cases = [(0.5, 300.0, 1.7, 0.02), (0.1, 2500.0, 5.0, 0.01), (1.0, 4.0, 1.0, 0.5)]
    second = compare_scalar_function(
        predicted_crossing_steps,
        predicted_crossing_reference,
        cases,
        what="predicted_crossing_steps",
        rtol=1e-6,
        mistakes={
            "the square root is missing: the step per unit gradient is lr / sqrt(G), not lr / G": lambda lr, G, d, p: (
                d * G / (lr * p)
            ),
            "you left out AdaGrad's memory: lr * slope is plain gradient descent's step; AdaGrad divides it "
            "by sqrt(G)": lambda lr, G, d, p: d / (lr * p),
            "you divided by the step instead of into the distance: steps = distance / step": lambda lr, G, d, p: (
                lr * p / (math.sqrt(G) * d)
            ),
        },
    )
    return combine(first, second)


# --- 04 A changing landscape ------------------------------------------------------------------------


def _accumulate(grads, beta):
    piece = T.scale_by_rss(eps=0.0) if beta is None else T.scale_by_rms(alpha=beta, eps=0.0)
    key = "sum" if beta is None else "square_avg"
    state, out = piece.init(grads[0]), []
    for g in grads:
        _, state = piece.update(g, state, g)
        out.append(state[key])
    return torch.stack(out)


def old_share_reference(grads, at_step, beta=None):
    """Share of the memory (AdaGrad's sum, or RMSProp's EMA for ``beta``) contributed by steps before ``at_step``.

    The memory is linear in the squared gradients, so the old part is the memory of the stream with every
    gradient from step ``at_step`` on set to zero.
    """
    old = grads.clone()
    old[at_step - 1 :] = 0  # grads[k] is the gradient of step k + 1
    return _accumulate(old, beta) / _accumulate(grads, beta)


def changing_cases():
    gen = _generator(4)
    stream = torch.cat(
        [
            5 * torch.randn(10, 2, generator=gen, dtype=torch.float64),
            0.3 * torch.randn(30, 2, generator=gen, dtype=torch.float64),
        ]
    )
    small = torch.randn(8, 3, generator=_generator(6), dtype=torch.float64)
    return [(stream, 11, None), (stream, 11, 0.9), (small, 3, 0.5), (small, 4, None)]


def _new_share(grads, at_step, beta=None):
    return 1 - old_share_reference(grads, at_step, beta)


_CHANGING_MISTAKES = {
    "off by one at the change: the gradient of step at_step already comes from the new landscape "
    "(grads[k] is step k + 1)": lambda g, a, b=None: old_share_reference(g, a + 1, b),
    "off by one at the change: the gradient of step at_step - 1 still comes from the old landscape "
    "(grads[k] is step k + 1)": lambda g, a, b=None: old_share_reference(g, a - 1, b),
    "this is the share of the NEW gradients (1 - the answer)": _new_share,
    "with a beta you must use RMSProp's moving average: your answer treats it as AdaGrad's sum": lambda g, a, b=None: (
        old_share_reference(g, a, None)
    ),
    "your moving average puts the weight beta on the new square: v_t = beta v_{t-1} + (1 - beta) g_t^2": lambda g, a, b=None: (
        old_share_reference(g, a, None if b is None else 1 - b)
    ),
}


def check_changing_landscape(old_memory_share: Callable) -> Verdict:
    """Exercise 04: how much of AdaGrad's (and RMSProp's) memory still describes the landscape before the change."""
    return compare_function(
        old_memory_share,
        old_share_reference,
        changing_cases(),
        what="old_memory_share",
        mistakes=_CHANGING_MISTAKES,
        output_names=("the share of the old memory",),
        verified=" (AdaGrad's sum and RMSProp's average, changes at several steps)",
    )


# --- 05 RMSProp and a change of gradient scale ------------------------------------------------------


def recovery_reference(beta, c, max_steps: int = 1_000_000):
    r"""Steps after the change until RMSProp's $1/\sqrt{v_t}$ is at least half its new steady value $1/c$.

    Before the change $|g| = 1$ for so long that $v = 1$; from the change on $|g| = c$.
    """
    piece = T.scale_by_rms(alpha=beta, eps=0.0)
    g = torch.tensor([c], dtype=torch.float64)
    state = {"square_avg": torch.ones(1, dtype=torch.float64)}
    for k in range(1, max_steps + 1):
        u, state = piece.update(g, state, g)
        if float(u[0] / g[0]) >= 0.5 / c:  # u / g = 1 / sqrt(v_k): the step per unit gradient
            return k
    raise RuntimeError("no recovery within max_steps")


def _closed(beta, level):
    return math.ceil(math.log(level) / math.log(beta))


_RECOVERY_MISTAKES = {
    "off by one: count the steps after the change starting at 1 (the first step with the small gradient is step 1)": lambda b, c: (
        recovery_reference(b, c) - 1
    ),
    "off by one: one step too many": lambda b, c: recovery_reference(b, c) + 1,
    "that is the memory horizon 1/(1 - beta), not the recovery time: it takes a few horizons, "
    "about ln((1 - c^2) / (3 c^2)) of them": lambda b, c: round(1 / (1 - b)),
    "you tracked |g| instead of g^2: RMSProp averages squared gradients, so the old memory must fall to about "
    "3 c^2, not 2c": lambda b, c: _closed(b, c / (1 - c)),
    "your memory starts at zero: just before the change RMSProp remembers the old gradients, v = 1": lambda b, c: 1,
}


def horizons_reference(c):
    """The recovery time in memory horizons, k (1 - beta), as beta -> 1 (computed with beta = 1 - 1e-4)."""
    beta = 1 - 1e-4
    return math.log((1 - c * c) / (3 * c * c)) / -math.log(beta) * (1 - beta)


def check_rmsprop_scale_change(recovery_steps: Callable, horizons_to_recover: Callable) -> Verdict:
    """Exercise 05: steps until RMSProp's effective learning rate recovers after the gradients shrink by c."""
    cases = [(0.9, 0.01), (0.99, 0.01), (0.999, 0.1), (0.95, 0.05)]
    first = compare_scalar_function(
        recovery_steps,
        recovery_reference,
        cases,
        what="recovery_steps",
        mistakes=_RECOVERY_MISTAKES,
        show=lambda c: f"beta={c[0]:g}, c={c[1]:g}",
        verified=" (simulated with the library's scale_by_rms)",
    )
    second = compare_scalar_function(
        horizons_to_recover,
        horizons_reference,
        [(0.01,), (0.1,), (0.3,)],
        what="horizons_to_recover",
        rtol=1e-3,
        mistakes={
            "you used ln(1/c^2): the target is sqrt(v) = 2c, so the old memory must fall to 3c^2/(1 - c^2)": lambda c: (
                math.log(1 / (c * c))
            ),
            "you tracked |g| instead of g^2 (ln((1 - c)/c))": lambda c: math.log((1 - c) / c),
            "you answered in steps for beta = 0.9, not in horizons: divide by 1/(1 - beta)": lambda c: (
                recovery_reference(0.9, c)
            ),
        },
        show=lambda c: f"c={c[0]:g}",
    )
    return combine(first, second)


# --- 06 Why beta1 < beta2 ---------------------------------------------------------------------------


def bias_corrected_ema_reference(xs, beta):
    r"""$\hat m_t = m_t / (1 - \beta^t)$ for every $t$, read from ``scale_by_adam``'s first moment."""
    piece = T.scale_by_adam(b1=beta, b2=beta)
    state, out = piece.init(xs[0]), []
    for t, x in enumerate(xs, 1):
        _, state = piece.update(x, state, x)
        out.append(state["exp_avg"] / (1 - beta**t))
    return torch.stack(out)


def _ema_from_first(xs, beta):
    m, out = xs[0], []
    for t, x in enumerate(xs, 1):
        m = x if t == 1 else beta * m + (1 - beta) * x
        out.append(m / (1 - beta**t))
    return torch.stack(out)


_EMA_MISTAKES = {
    "the bias correction is missing: divide m_t by (1 - beta^t), or the first values are far too small": lambda xs, b: (
        _accumulate_ema(xs, b)
    ),
    "the weights are swapped: m_t = beta m_{t-1} + (1 - beta) x_t keeps beta of the OLD memory": lambda xs, b: (
        bias_corrected_ema_reference(xs, 1 - b)
    ),
    "your average starts at the first value and is then bias-corrected too: start at m_0 = 0": _ema_from_first,
}


def _accumulate_ema(xs, beta):
    m, out = torch.zeros_like(xs[0]), []
    for x in xs:
        m = beta * m + (1 - beta) * x
        out.append(m)
    return torch.stack(out)


def noise_ratio_reference(beta, terms: int = 20000):
    r"""Std of an EMA of white noise over the std of the noise: $\sqrt{\sum_k ((1-\beta)\beta^k)^2}$."""
    k = torch.arange(terms, dtype=torch.float64)
    return float((((1 - beta) * beta**k) ** 2).sum().sqrt())


def check_beta1_below_beta2(bias_corrected_ema: Callable, ema_noise_ratio: Callable) -> Verdict:
    """Exercise 06: Adam's bias-corrected moving average, and how much noise it lets through for a given beta."""
    gen = _generator(7)
    cases = [
        (1 + torch.randn(15, 2, generator=gen, dtype=torch.float64), 0.9),
        (torch.randn(10, generator=gen, dtype=torch.float64) ** 2, 0.999),
        (torch.randn(6, 3, generator=gen, dtype=torch.float64), 0.5),
    ]
    first = compare_function(
        bias_corrected_ema,
        bias_corrected_ema_reference,
        cases,
        what="bias_corrected_ema",
        mistakes=_EMA_MISTAKES,
        output_names=("the bias-corrected averages",),
        verified=" (it matches Adam's m_hat and v_hat)",
    )
    second = compare_scalar_function(
        ema_noise_ratio,
        noise_ratio_reference,
        [(0.9,), (0.999,), (0.5,)],
        what="ema_noise_ratio",
        rtol=1e-4,
        mistakes={
            "the square root is missing: this is the ratio of the variances": lambda b: noise_ratio_reference(b) ** 2,
            "the factor 1/(1 + beta) is missing: the sum of (1-beta)^2 beta^(2k) is (1-beta)/(1+beta)": lambda b: (
                math.sqrt(1 - b)
            ),
            "that is the averaging window 1/(1 - beta), not the noise that gets through": lambda b: 1 / (1 - b),
        },
        show=lambda c: f"beta={c[0]:g}",
    )
    return combine(first, second)


# --- 07 AdamW against L2 ----------------------------------------------------------------------------


def weight_decay_problem() -> L.Quadratic:
    """A steep and a flat coordinate, the valley away from zero so that the decay has something to pull."""
    return L.Quadratic([[50.0, 0.0], [0.0, 0.05]], minimizer=[1.0, 1.0], name="steep and flat, minimum at (1, 1)")


_CHAINS = {
    "l2": lambda lr, wd: T.chain(T.add_decayed_weights(wd), T.scale_by_adam(), T.scale_by_learning_rate(lr)),
    "adamw": lambda lr, wd: T.chain(T.scale_by_adam(), T.add_decayed_weights(wd), T.scale_by_learning_rate(lr)),
    "after_lr": lambda lr, wd: T.chain(T.scale_by_adam(), T.scale_by_learning_rate(lr), T.add_decayed_weights(wd)),
    "none": lambda lr, wd: T.chain(T.scale_by_adam(), T.scale_by_learning_rate(lr)),
    "first": lambda lr, wd: T.chain(T.add_decayed_weights(wd), T.scale_by_learning_rate(lr), T.scale_by_adam()),
}

_CHAIN_WORDS = {
    "l2": "your chain adds the decay BEFORE scale_by_adam: that is L2 regularisation (Adam rescales the decay "
    "with the gradient)",
    "adamw": "your chain adds the decay AFTER scale_by_adam: that is AdamW's decoupled weight decay",
    "after_lr": "your decay comes after scale_by_learning_rate, so it is added with a plus sign and not scaled "
    "by lr: it GROWS the weights. Put it before the learning-rate piece",
    "none": "your chain has no weight decay at all (add_decayed_weights is missing)",
    "first": "scale_by_learning_rate must be the last piece: it carries the minus sign and the step size",
}


def _walk(chain, lr, wd, steps=40):
    return run(chain(lr, wd), weight_decay_problem(), x0=[2.0, 2.0], steps=steps).params


def _check_chain(student, which: str, what: str) -> Verdict:
    if student is None or not callable(student):
        return failed(f"{what}: expected a function, got {type(student).__name__}")
    for lr, wd in [(0.05, 0.1), (0.01, 1.0)]:
        try:
            chain = call_student(student, lr, wd)
        except StudentError as err:
            return failed(f"{what}: {err}")
        if is_unanswered(chain):
            return not_attempted(what)
        if not isinstance(chain, T.Transform):
            return failed(
                f"{what}: your function should return a chain of transforms (T.chain(...)), "
                f"but it returns {type(chain).__name__}"
            )
        try:
            got = _walk(lambda *_, c=chain: c, lr, wd)
        except Exception as err:  # noqa: BLE001 - the student's chain may fail inside run
            return failed(f"{what}: running your chain raised {type(err).__name__}: {err}")
        if not torch.allclose(got, _walk(_CHAINS[which], lr, wd), rtol=1e-9, atol=1e-12, equal_nan=True):
            for name, ref in _CHAINS.items():
                if name != which and torch.allclose(got, _walk(ref, lr, wd), rtol=1e-9, atol=1e-12, equal_nan=True):
                    return failed(f"{what}: {_CHAIN_WORDS[name]}.", _CHAIN_WORDS[name])
            return failed(
                f"{what}: with lr={lr:g}, wd={wd:g} your chain walks elsewhere: after 40 steps it is at "
                f"{_fmt(got[-1].tolist())} where the answer is at "
                f"{_fmt(_walk(_CHAINS[which], lr, wd)[-1].tolist())}."
            )
    return passed(f"{what}: the same walk as the reference on 2 settings of (lr, wd).")


def l2_decay_reference(lr, wd, v_hat, eps):
    r"""The shrink per step that L2 gives, $\gamma\lambda / (\sqrt{\hat v}+\epsilon)$: the penalty's gradient
    $\lambda\theta$ divided by Adam's denominator (momentum aside), read off the library's pieces."""
    theta = torch.ones_like(v_hat)
    u, _ = T.add_decayed_weights(wd).update(torch.zeros_like(v_hat), {}, theta)
    return -T.scale_by_learning_rate(lr).update(u / (v_hat.sqrt() + eps), {}, theta)[0]


def check_adamw_vs_l2(adam_with_l2: Callable, adamw: Callable, l2_decay_rate: Callable) -> Verdict:
    """Exercise 07: build Adam + L2 and AdamW from the same pieces; compute L2's per-coordinate decay rate."""
    first = _check_chain(adam_with_l2, "l2", "adam_with_l2")
    second = _check_chain(adamw, "adamw", "adamw")
    v1 = torch.tensor([1e-4, 1.0, 100.0], dtype=torch.float64)
    v2 = torch.tensor([[0.0, 1e-8], [4.0, 2500.0]], dtype=torch.float64)
    third = compare_function(
        l2_decay_rate,
        l2_decay_reference,
        [(1e-3, 0.1, v1, 1e-8), (0.1, 0.5, v2, 0.1)],
        what="l2_decay_rate",
        output_names=("the decay rate",),
        mistakes={
            "the square root is missing: Adam divides by sqrt(v_hat) + eps": lambda lr, wd, v, e: lr * wd / (v + e),
            "epsilon is inside the square root: Adam divides by sqrt(v_hat) + eps": lambda lr, wd, v, e: (
                lr * wd / (v + e).sqrt()
            ),
            "that is AdamW's rate lr * wd, the same for every coordinate; with L2 the decay is divided by "
            "Adam's denominator": lambda lr, wd, v, e: torch.full_like(v, lr * wd),
            "the learning rate is missing": lambda lr, wd, v, e: wd / (v.sqrt() + e),
        },
    )
    return combine(first, second, third)


# --- 08 Epsilon as the ceiling of the step, in float16 ----------------------------------------------


def step_ceiling_reference(lr, eps, dtype):
    return precision.effective_lr_ceiling(lr, eps, dtype)


def first_step_reference(g, lr, eps, dtype, beta2=0.999):
    r"""The step per unit gradient of Adam's first step computed in ``dtype``: $\gamma/\epsilon$ where
    $(1-\beta_2) g^2$ underflows to zero, else $\gamma / (|g| + \epsilon)$ ($\hat v_1 = g^2$)."""
    g = precision.round_to(g, dtype)
    under = precision.squared_underflows(g, dtype, factor=1 - beta2)
    ceiling = step_ceiling_reference(lr, eps, dtype)
    return torch.where(under, torch.full_like(g, ceiling), lr / (g.abs() + eps))


def _as_double(student):
    def wrapped(*args):
        out = student(*args)
        return out.double() if isinstance(out, torch.Tensor) else out

    return wrapped


def check_epsilon_floor(step_ceiling: Callable, first_step_effective_lr: Callable) -> Verdict:
    """Exercise 08: epsilon's ceiling on the step per unit gradient, and Adam's first step when g^2 underflows."""
    ceiling_cases = [
        (1e-3, 1e-8, torch.float16),
        (1e-3, 1e-4, torch.float16),
        (1e-3, 1e-8, torch.float32),
        (1e-2, 1e-6, torch.bfloat16),
    ]
    first = compare_scalar_function(
        step_ceiling,
        step_ceiling_reference,
        ceiling_cases,
        what="step_ceiling",
        rtol=1e-3,
        mistakes={
            "you computed in float64: in float16, eps = 1e-8 rounds to zero and there is no ceiling at all "
            "(inf). Compute with tensors of the given dtype": lambda lr, eps, dt: lr / eps,
            "this is eps / lr, upside down: the step per unit gradient is at most lr / eps": lambda lr, eps, dt: (
                eps / lr
            ),
            "this is eps / lr, upside down: the step per unit gradient is at most lr / eps (in the dtype)": lambda lr, eps, dt: (
                float(torch.tensor(eps, dtype=dt) / torch.tensor(lr, dtype=dt))
            ),
            "with v = 0 the denominator is eps, not sqrt(eps)": lambda lr, eps, dt: (
                lr / math.sqrt(float(precision.round_to(eps, dt)))
                if float(precision.round_to(eps, dt))
                else float("inf")
            ),
        },
        show=lambda c: f"lr={c[0]:g}, eps={c[1]:g}, {_fmt(c[2])}",
    )
    g = torch.tensor([1e-4, 1e-3, 2e-3, 0.5, 1.0, 2.0], dtype=torch.float64)
    cases = [(g, 1e-3, 1e-4, torch.float16), (g, 1e-3, 1e-8, torch.float16), (g, 1e-3, 1e-8, torch.float32)]

    def float64(g, lr, eps, dt, b2=0.999):
        return lr / (g.abs() + eps)

    def eps_inside(g, lr, eps, dt, b2=0.999):
        ref = first_step_reference(g, lr, eps, dt, b2)
        under = precision.squared_underflows(g, dt, factor=1 - b2)
        e = float(precision.round_to(eps, dt))
        return torch.where(
            under, torch.full_like(ref, lr / math.sqrt(e) if e else float("inf")), lr / (g * g + eps).sqrt()
        )

    def no_correction(g, lr, eps, dt, b2=0.999):
        ref = first_step_reference(g, lr, eps, dt, b2)
        under = precision.squared_underflows(g, dt, factor=1 - b2)
        return torch.where(under, ref, lr / (math.sqrt(1 - b2) * g.abs() + eps))

    second = compare_function(
        _as_double(first_step_effective_lr),
        first_step_reference,
        cases,
        what="first_step_effective_lr",
        rtol=2e-2,
        atol=0.0,
        output_names=("the step per unit gradient",),
        verified=" (the ceiling lr / eps where g^2 underflows, inf where eps itself rounds to zero)",
        mistakes={
            "you computed the square in float64, so nothing underflows: in float16 (1 - beta2) g^2 is 0 for "
            "|g| below about 5e-3, and then the denominator is eps alone": float64,
            "epsilon is inside the square root: Adam divides by sqrt(v_hat) + eps": eps_inside,
            "the bias correction is missing: v_hat = v / (1 - beta2), so after one step v_hat = g^2": no_correction,
        },
    )
    return combine(first, second)


# --- 09 Preconditioning into a round bowl -----------------------------------------------------------


def _sym_power(H, power):
    eig, vec = torch.linalg.eigh(H)
    return vec @ torch.diag(eig**power) @ vec.T


def bowl_cases():
    gen = _generator(9)
    A = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    return [
        L.Canyon(kappa=100.0).hessian,
        L.Canyon(kappa=100.0, angle=0.6).hessian,
        A @ A.T + 0.5 * torch.eye(3, dtype=torch.float64),
    ]


def condition_after(P, H) -> float:
    r"""Condition number of $P^\top H P$: the curvature of $f$ in the new variables $y$, with $\theta = P y$."""
    eig = torch.linalg.eigvalsh(0.5 * ((P.T @ H @ P) + (P.T @ H @ P).T))
    return float(eig.max() / eig.min()) if eig.min() > 0 else float("inf")


_BOWL_MISTAKES = {
    "this is H^{-1}: that is Newton's step, but as a change of variables P^T H P = H^{-1} is as elongated as H. "
    "The change of variables needs the square root, H^{-1/2}": lambda H: torch.linalg.inv(H),
    "this is diag(H)^{-1/2}: a diagonal preconditioner (what AdaGrad and Adam can do) rounds an axis-aligned bowl "
    "but not a rotated one; a rotated canyon needs the full H^{-1/2}": lambda H: torch.diag(torch.diagonal(H) ** -0.5),
    "this is diag(H)^{-1}: diagonal, and without the square root": lambda H: torch.diag(1 / torch.diagonal(H)),
    "this is H^{1/2}: the power should be -1/2 (you made the bowl more elongated, not rounder)": lambda H: _sym_power(
        H, 0.5
    ),
}


def _check_preconditioner(preconditioner, cases, what) -> Verdict:
    if preconditioner is None or not callable(preconditioner):
        return failed(f"{what}: expected a function, got {type(preconditioner).__name__}")
    answers = []
    for number, H in enumerate(cases, 1):
        try:
            P = call_student(preconditioner, H.clone())
        except StudentError as err:
            return failed(f"{what}: {err}")
        if is_unanswered(P):
            return not_attempted(what)
        if not isinstance(P, torch.Tensor) or P.shape != H.shape:
            kind = f"shape {tuple(P.shape)}" if isinstance(P, torch.Tensor) else type(P).__name__
            return failed(f"{what}: P should be a {H.shape[0]}x{H.shape[0]} tensor like H, but it is {kind}")
        if not torch.isfinite(P).all():
            return failed(f"{what}: P contains inf or NaN (test case {number})")
        answers.append(P.double())
    kappas = [condition_after(P, H) for P, H in zip(answers, cases)]
    if all(k <= 1 + 1e-6 for k in kappas):
        return passed(
            f"{what}: P^T H P has condition number 1 on all {len(cases)} test cases (an axis-aligned "
            "canyon, a rotated one, a random 3-D bowl)."
        )
    for description, wrong in _BOWL_MISTAKES.items():
        if all(torch.allclose(P, wrong(H), rtol=1e-6, atol=1e-9) for P, H in zip(answers, cases)):
            return failed(f"{what}: {description}.", description)
    k = next(i for i, kappa in enumerate(kappas) if not kappa <= 1 + 1e-6)
    before = condition_after(torch.eye(len(cases[k]), dtype=torch.float64), cases[k])
    return failed(
        f"{what}: on test case {k + 1} (condition number {before:.4g}) the bowl after your P, P^T H P, "
        f"still has condition number {kappas[k]:.4g}; it should be 1."
    )


def check_round_bowl(preconditioner: Callable, leap_steps: Callable) -> Verdict:
    """Exercise 09: a change of variables that makes the quadratic's bowl round, and the single leap it allows."""
    first = _check_preconditioner(preconditioner, bowl_cases(), "preconditioner")
    eye = L.Quadratic(torch.eye(2, dtype=torch.float64), name="round bowl")
    walk = run(T.chain(T.scale_by_learning_rate(1.0)), eye, x0=[3.0, -2.0], steps=5)
    leap = int(walk.steps_to_reach(eye.minimizer, 1e-12))
    second = compare_scalar_function(
        leap_steps,
        lambda: leap,
        [()],
        what="leap_steps",
        mistakes={"step 0 is the starting point: count the steps taken": lambda: 0},
        verified=" (gradient descent with lr = 1 lands on the bottom of a round bowl with curvature 1 at once)",
    )
    return combine(first, second)
