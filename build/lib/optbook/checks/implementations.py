r"""Checks of the implementation exercises (10-15): the student writes an update rule, the library judges it.

Every check compares the student's function with the library's own pieces (:mod:`optbook.transforms`)
on a handful of test cases chosen so that the usual mistakes give different answers: first steps and
later ones ($t = 1$ and $t > 1$), zero and nonzero memory, gradients of different sizes and signs, and one
case whose $\epsilon$ is large enough to matter. When the answer is wrong, the check names the mistake
if it is a known one ("your second moment has no (1 - beta2) factor"), and otherwise shows the first
input where the answer differs, and by how much.

The mistakes are written here once, as variations of one plain formula per optimizer (``_adam_math``
and friends) with a switch per mistake; the references are the library's transforms, not these formulas.
"""

from __future__ import annotations

import functools
import math

import torch

from ..core import transforms as T
from ..lab.landscapes import ReddiCounterexample
from ..lab.run import run
from .core import (
    FAILED,
    StudentError,
    Verdict,
    call_student,
    compare_function,
    compare_number,
    failed,
    is_unanswered,
    not_attempted,
    passed,
    recognise_mistake,
)

__all__ = [
    "check_adagrad_update",
    "check_rmsprop_update",
    "check_adam_update",
    "check_adamw_update",
    "check_average_regret",
    "check_reddi_counterexample",
    "check_safe_fp16_adam_step",
    "REDDI",
]

F64 = torch.float64


def _vec(*values, dtype=F64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _rand(shape, seed: int, low: float = -1.0, high: float = 1.0, dtype=F64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (low + (high - low) * torch.rand(shape, generator=gen, dtype=F64)).to(dtype)


def _judge(student, reference, cases, *, what, mistakes, output_names, verified, rtol=1e-6, atol=1e-9) -> Verdict:
    """``compare_function``, then a second look for a known mistake that blows up where the student's does."""
    verdict = compare_function(
        student,
        reference,
        cases,
        what=what,
        mistakes=mistakes,
        output_names=output_names,
        rtol=rtol,
        atol=atol,
        verified=verified,
    )
    if verdict.status == FAILED and verdict.mistake is None:
        name = recognise_mistake(student, reference, cases, mistakes, rtol=rtol, atol=atol)
        if name:
            return failed(f"{what}: {name}.", name)
    return verdict


# --- Exercise 10: AdaGrad ---------------------------------------------------------------------------


def _adagrad_reference(grad, accumulator, lr, eps):
    u, state = T.chain(T.scale_by_rss(eps=eps), T.scale_by_learning_rate(lr)).update(grad, {"sum": accumulator}, grad)
    return u, state["sum"]


def _denominator(memory, eps, eps_inside: bool, root: bool):
    """sqrt(memory) + eps, or one of its usual wrong forms (eps inside the root, no root at all)."""
    if eps_inside:
        return (memory + eps).sqrt()
    return memory.sqrt() + eps if root else memory + eps


def _adagrad_math(
    grad, accumulator, lr, eps, *, memory="sum", eps_inside=False, sign=-1.0, use_old=False, root=True, square=True
):
    g2 = grad * grad if square else grad.abs()
    new = {"sum": accumulator + g2, "reset": g2, "mean": 0.5 * (accumulator + g2), "ema": 0.9 * accumulator + 0.1 * g2}[
        memory
    ]
    denom_of = accumulator if use_old else new
    denom = _denominator(denom_of, eps, eps_inside, root)
    return sign * lr * grad / denom, new


ADAGRAD_MISTAKES = {
    "the accumulator is reset at every step: new_accumulator must be accumulator + grad**2, "
    "the sum of ALL squared gradients so far, not only this step's": functools.partial(_adagrad_math, memory="reset"),
    "the accumulator is averaged instead of summed: AdaGrad adds grad**2 to it (accumulator + grad**2), "
    "it never halves or forgets": functools.partial(_adagrad_math, memory="mean"),
    "the accumulator forgets (an exponential average, as in RMSProp) instead of summing: AdaGrad's memory is "
    "accumulator + grad**2": functools.partial(_adagrad_math, memory="ema"),
    "the update has a sign error: the step goes against the gradient, update = -lr * grad / (sqrt(G) + eps)": functools.partial(
        _adagrad_math, sign=1.0
    ),
    "epsilon is inside the square root: the denominator is sqrt(new_accumulator) + eps, with eps outside": functools.partial(
        _adagrad_math, eps_inside=True
    ),
    "the update divides by the old accumulator: add this step's grad**2 first, then divide by "
    "sqrt(new_accumulator) + eps": functools.partial(_adagrad_math, use_old=True),
    "the square root is missing: divide by sqrt(new_accumulator) + eps, not by new_accumulator + eps": functools.partial(
        _adagrad_math, root=False
    ),
    "the accumulator sums |grad| instead of grad**2": functools.partial(_adagrad_math, square=False),
}


def _adagrad_cases():
    return [
        (_vec(0.5, -2.0, 0.1), _vec(1.0, 0.25, 4.0), 0.1, 1e-10),  # a later step
        (_rand((2, 3), 1, -3, 3), _rand((2, 3), 2, 0.5, 9.0), 0.01, 1e-10),  # a 2-D parameter
        (_vec(3.0, -0.5, 0.0), torch.zeros(3, dtype=F64), 0.5, 1e-10),  # the first step, a zero gradient
        (_vec(0.2, -0.1, 0.05), _vec(0.01, 0.04, 0.0), 1.0, 0.5),  # a large eps
    ]


def check_adagrad_update(adagrad_update) -> Verdict:
    """Check ``adagrad_update(grad, accumulator, lr, eps) -> (update, new_accumulator)`` against ``scale_by_rss``."""
    return _judge(
        adagrad_update,
        _adagrad_reference,
        _adagrad_cases(),
        what="AdaGrad update",
        mistakes=ADAGRAD_MISTAKES,
        output_names=("update", "new_accumulator"),
        verified=" (a first step from an empty accumulator, later steps, a 2-D parameter, a zero "
        "gradient and a large eps), identical to optbook.transforms.scale_by_rss",
    )


# --- Exercise 11: RMSProp ---------------------------------------------------------------------------


def _rmsprop_reference(grad, square_avg, lr, beta, eps):
    chain = T.chain(T.scale_by_rms(alpha=beta, eps=eps), T.scale_by_learning_rate(lr))
    u, state = chain.update(grad, {"square_avg": square_avg}, grad)
    return u, state["square_avg"]


def _rmsprop_math(
    grad, square_avg, lr, beta, eps, *, memory="ema", eps_inside=False, sign=-1.0, use_old=False, root=True
):
    g2 = grad * grad
    new = {
        "ema": beta * square_avg + (1 - beta) * g2,
        "no_factor": beta * square_avg + g2,
        "swapped": (1 - beta) * square_avg + beta * g2,
        "sum": square_avg + g2,
        "reset": g2,
    }[memory]
    denom_of = square_avg if use_old else new
    denom = _denominator(denom_of, eps, eps_inside, root)
    return sign * lr * grad / denom, new


RMSPROP_MISTAKES = {
    "your square average has no (1 - beta) factor: new_square_avg = beta * square_avg + (1 - beta) * grad**2": functools.partial(
        _rmsprop_math, memory="no_factor"
    ),
    "beta and 1 - beta are swapped: the OLD average keeps the weight beta, new_square_avg = beta * square_avg "
    "+ (1 - beta) * grad**2": functools.partial(_rmsprop_math, memory="swapped"),
    "the squares are summed (AdaGrad's memory) instead of averaged: RMSProp forgets, new_square_avg = "
    "beta * square_avg + (1 - beta) * grad**2": functools.partial(_rmsprop_math, memory="sum"),
    "the average is reset to this step's grad**2: blend it with the old one, beta * square_avg + "
    "(1 - beta) * grad**2": functools.partial(_rmsprop_math, memory="reset"),
    "the update has a sign error: the step goes against the gradient, update = -lr * grad / (sqrt(v) + eps)": functools.partial(
        _rmsprop_math, sign=1.0
    ),
    "epsilon is inside the square root: the denominator is sqrt(new_square_avg) + eps, with eps outside": functools.partial(
        _rmsprop_math, eps_inside=True
    ),
    "the update divides by the old average: update the average with this step's grad**2 first, then divide": functools.partial(
        _rmsprop_math, use_old=True
    ),
    "the square root is missing: divide by sqrt(new_square_avg) + eps": functools.partial(_rmsprop_math, root=False),
}


def _rmsprop_cases():
    return [
        (_vec(0.5, -2.0, 0.1), _vec(1.0, 0.25, 4.0), 0.01, 0.9, 1e-8),  # a later step
        (_rand((2, 3), 3, -3, 3), _rand((2, 3), 4, 0.5, 9.0), 0.001, 0.99, 1e-8),  # a 2-D parameter
        (_vec(3.0, -0.5, 0.0), torch.zeros(3, dtype=F64), 0.1, 0.9, 1e-8),  # the first step, a zero gradient
        (_vec(0.2, -0.1, 0.05), _vec(0.01, 0.04, 0.0), 1.0, 0.7, 0.5),  # a large eps
    ]


def check_rmsprop_update(rmsprop_update) -> Verdict:
    """Check ``rmsprop_update(grad, square_avg, lr, beta, eps) -> (update, new_square_avg)`` against scale_by_rms."""
    return _judge(
        rmsprop_update,
        _rmsprop_reference,
        _rmsprop_cases(),
        what="RMSProp update",
        mistakes=RMSPROP_MISTAKES,
        output_names=("update", "new_square_avg"),
        verified=" (a first step from zero, later steps with beta = 0.7, 0.9 and 0.99, a 2-D parameter, "
        "a zero gradient and a large eps), identical to optbook.transforms.scale_by_rms",
    )


# --- Exercise 12: Adam ------------------------------------------------------------------------------


def _adam_reference(grad, m, v, t, lr, beta1, beta2, eps):
    chain = T.chain(T.scale_by_adam(beta1, beta2, eps), T.scale_by_learning_rate(lr))
    u, state = chain.update(grad, {"step": t - 1, "exp_avg": m, "exp_avg_sq": v}, grad)
    return u, state["exp_avg"], state["exp_avg_sq"]


def _adam_math(
    grad,
    m,
    v,
    t,
    lr,
    beta1,
    beta2,
    eps,
    *,
    m_factor=True,
    v_factor=True,
    correct_m=True,
    correct_v=True,
    t_shift=0,
    eps_inside=False,
    eps_before_correction=False,
    sign=-1.0,
    use_old=False,
    return_corrected=False,
    swap_betas=False,
):
    """Adam written out plainly, with one switch per known mistake (all off: the right answer)."""
    if swap_betas:
        beta1, beta2 = beta2, beta1
    new_m = beta1 * m + ((1 - beta1) if m_factor else 1.0) * grad
    new_v = beta2 * v + ((1 - beta2) if v_factor else 1.0) * grad * grad
    mm, vv = (m, v) if use_old else (new_m, new_v)
    s = t + t_shift
    c1 = (1 - beta1**s) if correct_m else 1.0
    c2 = (1 - beta2**s) if correct_v else 1.0
    m_hat, v_hat = mm / c1, vv / c2
    if eps_inside:
        denom = (v_hat + eps).sqrt()
    elif eps_before_correction:
        denom = (vv.sqrt() + eps) / math.sqrt(c2)
    else:
        denom = v_hat.sqrt() + eps
    update = sign * lr * m_hat / denom
    if return_corrected:
        return update, new_m / c1, new_v / c2
    return update, new_m, new_v


def _adam_mistakes(make=_adam_math):
    p = functools.partial
    return {
        "your first moment has no (1 - beta1) factor: new_m = beta1 * m + (1 - beta1) * grad": p(make, m_factor=False),
        "your second moment has no (1 - beta2) factor: new_v = beta2 * v + (1 - beta2) * grad**2": p(
            make, v_factor=False
        ),
        "neither moment has its (1 - beta) factor: new_m = beta1 * m + (1 - beta1) * grad and "
        "new_v = beta2 * v + (1 - beta2) * grad**2": p(make, m_factor=False, v_factor=False),
        "beta1 and beta2 are swapped: beta1 belongs to the first moment m, beta2 to the second moment v": p(
            make, swap_betas=True
        ),
        "there is no bias correction: divide m by (1 - beta1**t) and v by (1 - beta2**t) before the step": p(
            make, correct_m=False, correct_v=False
        ),
        "only the first moment is bias-corrected: v needs its correction too, v_hat = new_v / (1 - beta2**t)": p(
            make, correct_v=False
        ),
        "only the second moment is bias-corrected: m needs its correction too, m_hat = new_m / (1 - beta1**t)": p(
            make, correct_m=False
        ),
        "the bias correction uses t - 1 instead of t: this is step t, so correct with 1 - beta**t "
        "(with t - 1 the first step divides by zero)": p(make, t_shift=-1),
        "the step count is off by one: the bias correction uses t + 1; t is already the number of this step "
        "(1 for the first), so correct with 1 - beta**t": p(make, t_shift=1),
        "epsilon is inside the square root: the denominator is sqrt(v_hat) + eps, with eps outside": p(
            make, eps_inside=True
        ),
        "epsilon is added before the bias correction: torch.optim.Adam (and this exercise) use "
        "sqrt(v_hat) + eps, with v_hat = new_v / (1 - beta2**t)": p(make, eps_before_correction=True),
        "the update has a sign error: the step goes against the gradient, update = -lr * m_hat / (sqrt(v_hat) + eps)": p(
            make, sign=1.0
        ),
        "the update uses the old moments: update m and v with this step's gradient first, then step": p(
            make, use_old=True
        ),
        "you returned the bias-corrected moments as the new state: keep the raw new_m and new_v (the corrections "
        "are recomputed from t at every step)": p(make, return_corrected=True),
    }


ADAM_MISTAKES = _adam_mistakes()


def _adam_cases():
    return [
        (_vec(0.5, -2.0, 0.1), _vec(0.2, -0.5, 0.05), _vec(0.3, 1.0, 0.02), 3, 0.01, 0.9, 0.999, 1e-8),
        (_rand((2, 3), 5, -3, 3), _rand((2, 3), 6, -1, 1), _rand((2, 3), 7, 0.5, 4.0), 10, 0.05, 0.8, 0.95, 1e-8),
        (_vec(3.0, -0.5, 0.0), torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), 1, 0.1, 0.9, 0.999, 1e-8),
        (_vec(0.02, -0.01, 0.0), _vec(0.01, -0.02, 0.03), _vec(1e-4, 4e-4, 1e-4), 2, 1.0, 0.5, 0.9, 0.1),
    ]


def check_adam_update(adam_update) -> Verdict:
    """Check ``adam_update(grad, m, v, t, lr, beta1, beta2, eps) -> (update, new_m, new_v)`` against scale_by_adam."""
    return _judge(
        adam_update,
        _adam_reference,
        _adam_cases(),
        what="Adam update",
        mistakes=ADAM_MISTAKES,
        output_names=("update", "new_m", "new_v"),
        verified=" (steps t = 1, 2, 3 and 10, three pairs of betas, a 2-D parameter, a zero gradient "
        "and a large eps), identical to optbook.transforms.scale_by_adam with bias correction",
    )


# --- Exercise 13: AdamW -----------------------------------------------------------------------------


def _adamw_reference(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay):
    chain = T.chain(
        T.scale_by_adam(beta1, beta2, eps), T.add_decayed_weights(weight_decay), T.scale_by_learning_rate(lr)
    )
    u, state = chain.update(grad, {"step": t - 1, "exp_avg": m, "exp_avg_sq": v}, param)
    return T.apply_updates(param, u), state["exp_avg"], state["exp_avg_sq"]


def _adamw_math(
    param,
    grad,
    m,
    v,
    t,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    *,
    coupled=False,
    decay_lr=True,
    decay_after=False,
    decay_sign=-1.0,
    **adam_switches,
):
    if coupled:
        grad = grad + weight_decay * param
    update, new_m, new_v = _adam_math(grad, m, v, t, lr, beta1, beta2, eps, **adam_switches)
    if coupled:
        return param + update, new_m, new_v
    decay = (lr if decay_lr else 1.0) * weight_decay
    if decay_after:
        stepped = param + update
        return stepped + decay_sign * decay * stepped, new_m, new_v
    return param + decay_sign * decay * param + update, new_m, new_v


def _adamw_mistakes():
    p = functools.partial
    mistakes = {
        "the weight decay is coupled into the moments (L2 regularisation, torch.optim.Adam's weight_decay): "
        "AdamW keeps grad out of it and shrinks the parameter directly, new_param = param - lr * weight_decay "
        "* param - lr * m_hat / (sqrt(v_hat) + eps)": p(_adamw_math, coupled=True),
        "the decay is not multiplied by the learning rate: torch.optim.AdamW shrinks by lr * weight_decay * param": p(
            _adamw_math, decay_lr=False
        ),
        "the weight decay has a sign error: it must SHRINK the parameter, param - lr * weight_decay * param": p(
            _adamw_math, decay_sign=1.0
        ),
        "the decay is applied to the parameter after the Adam step: torch.optim.AdamW decays the old parameter, "
        "param * (1 - lr * weight_decay), and then adds the Adam step": p(_adamw_math, decay_after=True),
    }
    for description, wrong in _adam_mistakes().items():
        mistakes[description] = p(_adamw_math, **wrong.keywords)
    return mistakes


ADAMW_MISTAKES = _adamw_mistakes()


def _adamw_cases():
    return [
        (
            _vec(1.5, -2.0, 0.5),
            _vec(0.5, -2.0, 0.1),
            _vec(0.2, -0.5, 0.05),
            _vec(0.3, 1.0, 0.02),
            3,
            0.1,
            0.9,
            0.999,
            1e-8,
            0.1,
        ),
        (
            _rand((2, 3), 8, -2, 2),
            _rand((2, 3), 5, -3, 3),
            _rand((2, 3), 6, -1, 1),
            _rand((2, 3), 7, 0.5, 4.0),
            10,
            0.05,
            0.8,
            0.95,
            1e-8,
            0.5,
        ),
        (
            _vec(1.0, -1.0, 2.0),
            _vec(3.0, -0.5, 0.0),
            torch.zeros(3, dtype=F64),
            torch.zeros(3, dtype=F64),
            1,
            0.1,
            0.9,
            0.999,
            1e-8,
            0.01,
        ),
        (
            _vec(-0.5, 0.3, 1.0),
            _vec(0.02, -0.01, 0.0),
            _vec(0.01, -0.02, 0.03),
            _vec(1e-4, 4e-4, 1e-4),
            2,
            0.5,
            0.5,
            0.9,
            0.1,
            0.2,
        ),
    ]


def check_adamw_update(adamw_update) -> Verdict:
    """Check ``adamw_update(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay)``.

    It returns ``(new_param, new_m, new_v)``; the reference is the library's AdamW chain.
    """
    return _judge(
        adamw_update,
        _adamw_reference,
        _adamw_cases(),
        what="AdamW update",
        mistakes=ADAMW_MISTAKES,
        output_names=("new_param", "new_m", "new_v"),
        verified=" (steps t = 1, 2, 3 and 10, weight decay from 0.01 to 0.5, a 2-D parameter, a zero "
        "gradient and a large eps), identical to chain(scale_by_adam, add_decayed_weights, "
        "scale_by_learning_rate), the pieces of torch.optim.AdamW",
    )


# --- Exercise 14: the counterexample of Reddi et al. -------------------------------------------------

REDDI = dict(large=3.0, small=1.0, period=3, steps=3000, lr=0.5, beta1=0.0, beta2=0.1, eps=1e-8)
"""The settings of exercise 14: $C = 3$, $\\beta_1 = 0$, $\\beta_2 = 1/(1 + C^2)$, $\\gamma_t = 0.5/\\sqrt t$."""


def _regret_reference(xs, landscape):
    steps = xs.shape[0] - 1
    played = sum(landscape.value(xs[t - 1 : t], t)[0] for t in range(1, steps + 1))
    best = sum(landscape.value(landscape.minimizer.to(xs)[None], t)[0] for t in range(1, steps + 1))
    return torch.as_tensor((played - best) / steps, dtype=xs.dtype)


def _regret_math(xs, landscape, *, shift=0, average=True, sign=1.0, baseline=True, count_points=False):
    steps = xs.shape[0] - 1
    slopes = torch.tensor(
        [landscape.slope(t + (shift if shift < 0 else 0)) for t in range(1, steps + 1)], dtype=xs.dtype
    )
    points = xs[1:] if shift > 0 else xs[:-1]
    total = (slopes * points[:, 0]).sum() - (slopes * landscape.minimizer.to(xs)[0]).sum() * baseline
    return sign * total / ((steps + 1 if count_points else steps) if average else 1)


REGRET_MISTAKES = {
    "the step count is off by one: f_t is played at the point the hiker stood on when f_t arrived, xs[t - 1], "
    "not at xs[t], the point after the step": functools.partial(_regret_math, shift=1),
    "the step count starts at 0: pair xs[t - 1] with f_t for t = 1, ..., T (landscape.value(x, t) with t from 1)": functools.partial(
        _regret_math, shift=-1
    ),
    "this is the total regret: the average regret divides it by the number of steps T": functools.partial(
        _regret_math, average=False
    ),
    "the regret has a sign error: it is the hiker's loss minus the loss of the best fixed point, "
    "sum f_t(x_t) - sum f_t(x*)": functools.partial(_regret_math, sign=-1.0),
    "the best fixed point is missing: regret compares with x* = -1, sum f_t(x_t) - sum f_t(x*)": functools.partial(
        _regret_math, baseline=False
    ),
    "the average divides by the number of points T + 1: there are T steps, and T losses": functools.partial(
        _regret_math, count_points=True
    ),
}


def _regret_cases():
    reddi, wide = ReddiCounterexample(), ReddiCounterexample(large=10.0, small=1.0, period=4)
    return [
        (_rand((10, 1), 11, -1, 1), reddi),
        (_vec(0.0, 0.5, 1.0, 1.0, -0.25, 0.75, 1.0).reshape(-1, 1), reddi),
        (_rand((9, 1), 12, -1, 1), wide),
    ]


def check_average_regret(average_regret) -> Verdict:
    """Check ``average_regret(xs, landscape)``: the mean of $f_t(x_{t-1}) - f_t(x^*)$ over a walk ``xs`` of T steps."""
    return _judge(
        average_regret,
        _regret_reference,
        _regret_cases(),
        what="average regret",
        mistakes=REGRET_MISTAKES,
        output_names=("the average regret",),
        verified=" (three walks on two versions of the counterexample, T = 6, 8 and 9 steps)",
    )


@functools.lru_cache(maxsize=4)
def reddi_reference(amsgrad: bool, **settings) -> tuple[float, float, float]:
    """Run Adam or AMSGrad on the counterexample: (final x, average regret, average regret off by one step)."""
    s = {**REDDI, **settings}
    problem = ReddiCounterexample(s["large"], s["small"], s["period"])
    lr0 = s["lr"]
    chain = T.chain(
        T.scale_by_adam(s["beta1"], s["beta2"], s["eps"], amsgrad=amsgrad),
        T.scale_by_learning_rate(lambda t: lr0 / math.sqrt(t)),
    )
    walk = run(chain, problem, steps=s["steps"])
    xs = walk.params
    return xs[-1, 0].item(), _regret_reference(xs, problem).item(), _regret_math(xs, problem, shift=1).item()


def check_reddi_counterexample(adam_final, adam_regret, amsgrad_final, amsgrad_regret) -> Verdict:
    """Check where Adam and AMSGrad end on :data:`REDDI`'s problem and their average regret after ``steps`` steps."""
    what = "Adam and AMSGrad on the counterexample"
    answers = (adam_final, adam_regret, amsgrad_final, amsgrad_regret)
    if all(is_unanswered(a) for a in answers):
        return not_attempted(what)
    adam, ams = reddi_reference(False), reddi_reference(True)
    steps = REDDI["steps"]
    checks = [
        compare_number(
            adam_final,
            adam[0],
            what="Adam's final x",
            atol=1e-4,
            rtol=0,
            hints={ams[0]: "that is where AMSGrad ends; Adam goes the other way"},
        ),
        compare_number(
            adam_regret,
            adam[1],
            what="Adam's average regret",
            rtol=1e-4,
            atol=1e-6,
            hints={
                adam[2]: "the step count is off by one: f_t is played at the point before step t",
                adam[1] * steps: "that is the total regret; divide it by the number of steps",
                -adam[1]: "sign error: regret is your loss minus the best point's loss",
            },
        ),
        compare_number(
            amsgrad_final,
            ams[0],
            what="AMSGrad's final x",
            atol=1e-4,
            rtol=0,
            hints={adam[0]: "that is where Adam ends; AMSGrad goes the other way"},
        ),
        compare_number(
            amsgrad_regret,
            ams[1],
            what="AMSGrad's average regret",
            rtol=1e-4,
            atol=1e-6,
            hints={
                ams[2]: "the step count is off by one: f_t is played at the point before step t",
                ams[1] * steps: "that is the total regret; divide it by the number of steps",
                -ams[1]: "sign error: regret is your loss minus the best point's loss",
            },
        ),
    ]
    for verdict in checks:
        if not verdict.passed:
            if verdict.status == FAILED:
                return failed(f"{what}: {verdict.message}", verdict.mistake)
            return not_attempted(verdict.message.split(":")[0])
    return passed(
        f"{what}: all four numbers match a reference run of {steps} steps (C = {REDDI['large']:g}, "
        f"beta1 = {REDDI['beta1']:g}, beta2 = {REDDI['beta2']:g}, lr_t = {REDDI['lr']:g}/sqrt(t)): "
        f"Adam ends at x = {adam[0]:+.4f} with average regret {adam[1]:.4f}, AMSGrad at "
        f"x = {ams[0]:+.4f} with {ams[1]:.4f}."
    )


# --- Exercise 15: Adam on float16 weights, safely ---------------------------------------------------

FP16_MISTAKE = "a float16 computation where float32 was meant"


def _fp16_reference(param, grad, m, v, t, lr, beta1, beta2, eps):
    chain = T.chain(T.scale_by_adam(beta1, beta2, eps), T.scale_by_learning_rate(lr))
    p32 = param.float()
    u, state = chain.update(grad.float(), {"step": t - 1, "exp_avg": m, "exp_avg_sq": v}, p32)
    return (p32 + u).to(param.dtype), state["exp_avg"], state["exp_avg_sq"]


def _fp16_math(param, grad, m, v, t, lr, beta1, beta2, eps, *, work=torch.float32, denom_dtype=None, **adam_switches):
    """Adam on a float16 parameter with the arithmetic in ``work`` (float16: the mistake)."""
    update, new_m, new_v = _adam_math(grad.to(work), m.to(work), v.to(work), t, lr, beta1, beta2, eps, **adam_switches)
    if denom_dtype is not None:  # the step recomputed with its denominator in float16
        c2 = 1 - beta2**t
        denom = ((new_v / c2).sqrt().to(denom_dtype) + torch.tensor(eps, dtype=denom_dtype)).to(work)
        update = -lr * (new_m / (1 - beta1**t)) / denom
    return (param.to(work) + update).to(param.dtype), new_m.float(), new_v.float()


FP16_MISTAKES = {
    f"{FP16_MISTAKE}: the moments and the step are computed in float16, where eps = 1e-8 rounds to 0 and a "
    "small grad**2 underflows to 0, so the step divides by zero; convert grad (and param) to float32 first": functools.partial(
        _fp16_math, work=torch.float16
    ),
    f"{FP16_MISTAKE}: the denominator sqrt(v_hat) + eps is computed in float16, where eps = 1e-8 rounds to 0": functools.partial(
        _fp16_math, denom_dtype=torch.float16
    ),
}
FP16_MISTAKES.update(
    {
        d: functools.partial(_fp16_math, **w.keywords)
        for d, w in ADAM_MISTAKES.items()
        if not w.keywords.get("eps_before_correction")
    }
)  # below float16 resolution here


def _fp16_cases():
    h, f = torch.float16, torch.float32
    zeros = torch.zeros(4, dtype=f)
    return [
        # the first step of pure-fp16 Adam: a tiny gradient (its square underflows in float16) and a zero one
        (
            _vec(0.01, 1.0, 0.02, -0.01, dtype=h),
            _vec(1e-4, 0.0, 1e-2, -3e-3, dtype=h),
            zeros.clone(),
            zeros.clone(),
            1,
            1e-3,
            0.9,
            0.999,
            1e-8,
        ),
        # a later step with memory, a larger learning rate
        (
            _vec(1.5, -0.75, 0.25, 2.0, dtype=h),
            _vec(0.5, -2.0, 1e-4, 0.0, dtype=h),
            _vec(0.2, -0.5, 1e-5, 1e-3, dtype=f),
            _vec(0.3, 1.0, 1e-9, 1e-8, dtype=f),
            3,
            1e-2,
            0.9,
            0.999,
            1e-8,
        ),
        # a 2-D parameter at step 10
        (
            _rand((2, 3), 9, -2, 2, dtype=h),
            _rand((2, 3), 10, -1e-2, 1e-2, dtype=h),
            _rand((2, 3), 6, -1e-2, 1e-2, dtype=f),
            _rand((2, 3), 7, 1e-6, 1e-4, dtype=f),
            10,
            5e-2,
            0.8,
            0.95,
            1e-8,
        ),
    ]


def _fp16_symptom(student, cases) -> str | None:
    """A float16 state, or inf/NaN where the float32 reference is finite: the float16 mistake, whatever its code."""
    for case in cases:
        try:
            got = call_student(student, *[a.clone() if isinstance(a, torch.Tensor) else a for a in case])
        except StudentError:
            return None
        if is_unanswered(got) or not isinstance(got, (tuple, list)) or len(got) != 3:
            return None
        if not all(isinstance(g, torch.Tensor) for g in got):
            return None
        for name, value in zip(("new_m", "new_v"), got[1:]):
            if value.dtype == torch.float16:
                return (
                    f"{FP16_MISTAKE}: your {name} is float16; the optimizer's memory must stay float32 "
                    "(grad**2 of a small gradient underflows to 0 in float16)"
                )
        expected = _fp16_reference(*case)
        if got[0].shape == expected[0].shape and not torch.isfinite(got[0]).all():
            return (
                f"{FP16_MISTAKE}: your new_param contains inf or NaN where the float32 computation is finite; "
                "in float16 eps = 1e-8 rounds to 0 and a tiny grad**2 underflows to 0, so the step divides by "
                "zero. Convert grad to float32 and compute the moments and the step there"
            )
    return None


def check_safe_fp16_adam_step(safe_fp16_adam_step) -> Verdict:
    """Check ``safe_fp16_adam_step(param, grad, m, v, t, lr, beta1, beta2, eps) -> (new_param, new_m, new_v)``.

    ``param`` and ``grad`` are float16, ``m`` and ``v`` float32. The new parameter must be free of inf and
    NaN and equal to the float32 computation rounded once to float16 (one float16 rounding step of slack);
    the moments must match the float32 reference to float32 precision.
    """
    what = "safe float16 Adam step"
    cases = _fp16_cases()
    symptom = _fp16_symptom(safe_fp16_adam_step, cases)
    if symptom:
        return failed(f"{what}: {symptom}.", FP16_MISTAKE)
    # new_param: within one float16 rounding of the float32 answer; the moments: float32 precision
    verdict = _judge(
        safe_fp16_adam_step,
        _fp16_reference,
        cases,
        what=what,
        mistakes=FP16_MISTAKES,
        output_names=("new_param", "new_m", "new_v"),
        rtol=2**-10,
        atol=1e-7,
        verified="",
    )
    if not verdict.passed:
        return verdict
    moments = compare_function(
        lambda *a: tuple(safe_fp16_adam_step(*a)[1:]),
        lambda *a: _fp16_reference(*a)[1:],
        cases,
        what=what,
        output_names=("new_m", "new_v"),
        rtol=1e-5,
        atol=1e-12,
    )
    if not moments.passed:
        return moments
    return passed(
        f"{what}: correct on all {len(cases)} test cases: no inf or NaN (a gradient of 1e-4 whose square "
        "underflows in float16, a zero gradient, eps = 1e-8), new_param within one float16 rounding of the "
        "float32 reference, and m and v equal to it in float32."
    )
