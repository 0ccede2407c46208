"""The concept checks (exercises 01-09): they pass the solution, call the stub "not attempted", and name the
usual mistakes.

The student's functions are taken from the notebooks themselves: the solution cell of
``solutions/NN_name.ipynb`` is executed as written, and the stub is the same cell as the exercise shows it
(the ``exercise_stub`` metadata), so these tests break when a notebook and its check drift apart.
"""

import math

import nbformat
import pytest
import torch
from conftest import ROOT
from notebooks import STUB_KEY

from optbook.checks import concepts as C
from optbook.core import transforms as T

NAMES = [
    "01_steep_and_flat_adagrad",
    "02_adagrad_fisher",
    "03_adagrad_plateau",
    "04_changing_landscape",
    "05_rmsprop_scale_change",
    "06_why_beta1_below_beta2",
    "07_adamw_vs_l2",
    "08_epsilon_floor_fp16",
    "09_preconditioning_round_bowl",
]


def _namespace():
    # what the setup cells of the notebooks import or define before the solution cell
    return {"torch": torch, "math": math, "T": T, "per_sample_grads": C.per_sample_grads}


def _solution_cell(name):
    nb = nbformat.read(ROOT / "solutions" / f"{name}.ipynb", as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and STUB_KEY in c.metadata]
    assert len(cells) == 1, f"{name}: expected one solution cell"
    return cells[0]


def student(name, stub=False):
    """The functions of the solution cell (or of the exercise's stub), by name."""
    cell = _solution_cell(name)
    ns = _namespace()
    exec(compile(cell.metadata[STUB_KEY] if stub else cell.source, f"<{name}>", "exec"), ns)  # noqa: S102
    return ns


CHECKS = {
    "01_steep_and_flat_adagrad": lambda f: C.check_steep_and_flat(f["adagrad_effective_lrs"], f["flat_to_steep_ratio"]),
    "02_adagrad_fisher": lambda f: C.check_adagrad_fisher(f["empirical_fisher_diag"], f["fisher_diag"]),
    "03_adagrad_plateau": lambda f: C.check_adagrad_plateau(f["crossing_steps"], f["predicted_crossing_steps"]),
    "04_changing_landscape": lambda f: C.check_changing_landscape(f["old_memory_share"]),
    "05_rmsprop_scale_change": lambda f: C.check_rmsprop_scale_change(f["recovery_steps"], f["horizons_to_recover"]),
    "06_why_beta1_below_beta2": lambda f: C.check_beta1_below_beta2(f["bias_corrected_ema"], f["ema_noise_ratio"]),
    "07_adamw_vs_l2": lambda f: C.check_adamw_vs_l2(f["adam_with_l2"], f["adamw"], f["l2_decay_rate"]),
    "08_epsilon_floor_fp16": lambda f: C.check_epsilon_floor(f["step_ceiling"], f["first_step_effective_lr"]),
    "09_preconditioning_round_bowl": lambda f: C.check_round_bowl(f["preconditioner"], f["leap_steps"]),
}


@pytest.mark.parametrize("name", NAMES)
def test_the_solution_passes(name):
    verdict = CHECKS[name](student(name))
    assert verdict.passed, verdict.message
    assert repr(verdict).startswith("[correct]")


@pytest.mark.parametrize("name", NAMES)
def test_the_stub_is_not_attempted(name):
    verdict = CHECKS[name](student(name, stub=True))
    assert verdict.status == "not attempted", verdict.message
    assert "not attempted yet" in repr(verdict) and "YOUR CODE HERE" in verdict.message


def _with(name, **replace):
    functions = student(name)
    functions.update(replace)
    return CHECKS[name](functions)


def _fails_with(verdict, *words):
    assert verdict.status == "failed", verdict.message
    for word in words:
        assert word in verdict.message, verdict.message


# --- realistic wrong answers, written the way a student would get them wrong -------------------------------


def test_01_mistakes():
    def averaged(grads, lr, eps=1e-10):
        t = torch.arange(1, len(grads) + 1, dtype=grads.dtype)[:, None]
        return lr / ((grads**2).cumsum(0) / t).sqrt().add(eps)

    def no_root(grads, lr, eps=1e-10):
        return lr / ((grads**2).cumsum(0) + eps)

    def before_adding(grads, lr, eps=1e-10):
        G, out = torch.zeros_like(grads[0]), []
        for g in grads:
            out.append(lr / (G.sqrt() + eps))
            G = G + g * g
        return torch.stack(out)

    _fails_with(_with("01_steep_and_flat_adagrad", adagrad_effective_lrs=averaged), "averaged")
    _fails_with(_with("01_steep_and_flat_adagrad", adagrad_effective_lrs=no_root), "square root is missing")
    _fails_with(_with("01_steep_and_flat_adagrad", adagrad_effective_lrs=before_adding), "off by one")
    _fails_with(_with("01_steep_and_flat_adagrad", flat_to_steep_ratio=lambda: 1e4), "without the square root")
    _fails_with(_with("01_steep_and_flat_adagrad", flat_to_steep_ratio=lambda: 0.01), "steep-to-flat")
    # a wrong answer that is no known mistake: say where it differs
    _fails_with(
        _with("01_steep_and_flat_adagrad", adagrad_effective_lrs=lambda g, lr, eps=1e-10: 2 * no_root(g, lr)),
        "test case 1",
        "where the answer is",
    )


def test_02_mistakes():
    def squared_mean(w, X, y):
        return ((torch.sigmoid(X @ w) - y)[:, None] * X).mean(0) ** 2

    def summed(w, X, y):
        return (((torch.sigmoid(X @ w) - y)[:, None] * X) ** 2).sum(0)

    def fisher_without_variance(w, X):
        return (X**2).mean(0)

    _fails_with(_with("02_adagrad_fisher", empirical_fisher_diag=squared_mean), "squared the average gradient")
    _fails_with(_with("02_adagrad_fisher", empirical_fisher_diag=summed), "summed over the samples")
    _fails_with(_with("02_adagrad_fisher", fisher_diag=fisher_without_variance), "p(1 - p) is missing")
    _fails_with(_with("02_adagrad_fisher", fisher_diag=lambda w, X: torch.zeros(2)), "shape (2,)", "(3,)")


def test_03_mistakes():
    def from_the_start(xs, start, end):
        hits = (xs >= end).nonzero()
        return int(hits[0]) if len(hits) else -1

    def zero_when_never(xs, start, end):
        a, b = (xs >= start).nonzero(), (xs >= end).nonzero()
        return int(b[0]) - int(a[0]) if len(a) and len(b) else 0

    _fails_with(_with("03_adagrad_plateau", crossing_steps=from_the_start), "very start of the walk")
    _fails_with(_with("03_adagrad_plateau", crossing_steps=zero_when_never), "return -1")
    _fails_with(
        _with("03_adagrad_plateau", predicted_crossing_steps=lambda lr, G, d, p: d * G / (lr * p)),
        "square root is missing",
    )
    _fails_with(
        _with("03_adagrad_plateau", predicted_crossing_steps=lambda lr, G, d, p: d / (lr * p)),
        "left out AdaGrad's memory",
    )


def test_04_mistakes():
    good = student("04_changing_landscape")["old_memory_share"]

    def inclusive(grads, at_step, beta=None):
        return good(grads, at_step + 1, beta)

    def adagrad_only(grads, at_step, beta=None):
        old = grads.clone()
        old[at_step - 1 :] = 0
        return (old**2).cumsum(0) / (grads**2).cumsum(0)

    _fails_with(_with("04_changing_landscape", old_memory_share=inclusive), "off by one at the change")
    _fails_with(_with("04_changing_landscape", old_memory_share=adagrad_only), "treats it as AdaGrad's sum")
    _fails_with(_with("04_changing_landscape", old_memory_share=lambda g, a, b=None: 1 - good(g, a, b)), "NEW")


def test_05_mistakes():
    def from_zero(beta, c):  # counts the step of the change as step 0
        return math.ceil(math.log(3 * c * c / (1 - c * c)) / math.log(beta)) - 1

    _fails_with(_with("05_rmsprop_scale_change", recovery_steps=from_zero), "off by one")
    _fails_with(_with("05_rmsprop_scale_change", recovery_steps=lambda b, c: round(1 / (1 - b))), "memory horizon")
    _fails_with(
        _with("05_rmsprop_scale_change", recovery_steps=lambda b, c: math.ceil(math.log(c / (1 - c)) / math.log(b))),
        "|g| instead",
    )
    _fails_with(_with("05_rmsprop_scale_change", horizons_to_recover=lambda c: math.log(1 / c**2)), "ln(1/c^2)")


def test_06_mistakes():
    def uncorrected(xs, beta):
        m, out = torch.zeros_like(xs[0]), []
        for x in xs:
            m = beta * m + (1 - beta) * x
            out.append(m)
        return torch.stack(out)

    def swapped(xs, beta):
        m, out = torch.zeros_like(xs[0]), []
        for t, x in enumerate(xs, 1):
            m = (1 - beta) * m + beta * x
            out.append(m / (1 - (1 - beta) ** t))
        return torch.stack(out)

    _fails_with(_with("06_why_beta1_below_beta2", bias_corrected_ema=uncorrected), "bias correction is missing")
    _fails_with(_with("06_why_beta1_below_beta2", bias_corrected_ema=swapped), "weights are swapped")
    _fails_with(_with("06_why_beta1_below_beta2", ema_noise_ratio=lambda b: math.sqrt(1 - b)), "1/(1 + beta)")
    _fails_with(_with("06_why_beta1_below_beta2", ema_noise_ratio=lambda b: (1 - b) / (1 + b)), "square root")


def test_07_mistakes():
    def adamw_as_l2(lr, wd):
        return T.chain(T.add_decayed_weights(wd), T.scale_by_adam(), T.scale_by_learning_rate(lr))

    def decay_after_lr(lr, wd):
        return T.chain(T.scale_by_adam(), T.scale_by_learning_rate(lr), T.add_decayed_weights(wd))

    _fails_with(_with("07_adamw_vs_l2", adamw=adamw_as_l2), "BEFORE scale_by_adam", "L2")
    _fails_with(_with("07_adamw_vs_l2", adamw=decay_after_lr), "GROWS the weights")
    _fails_with(
        _with("07_adamw_vs_l2", adam_with_l2=lambda lr, wd: T.chain(T.scale_by_adam(), T.scale_by_learning_rate(lr))),
        "no weight decay",
    )
    _fails_with(
        _with("07_adamw_vs_l2", adam_with_l2=lambda lr, wd: [T.add_decayed_weights(wd), T.scale_by_adam()]),
        "should return a chain",
    )
    _fails_with(
        _with("07_adamw_vs_l2", l2_decay_rate=lambda lr, wd, v, eps=1e-8: torch.full_like(v, lr * wd)), "AdamW's rate"
    )
    _fails_with(
        _with("07_adamw_vs_l2", l2_decay_rate=lambda lr, wd, v, eps=1e-8: lr * wd / (v + eps).sqrt()),
        "inside the square root",
    )


def test_08_mistakes():
    def in_float64(g, lr, eps, dtype, beta2=0.999):
        v_hat = (1 - beta2) * g * g / (1 - beta2)
        return lr / (v_hat.sqrt() + eps)

    def without_correction(g, lr, eps, dtype, beta2=0.999):
        g = g.to(dtype)
        return lr / (((1 - beta2) * g * g).sqrt() + torch.tensor(eps, dtype=dtype))

    _fails_with(_with("08_epsilon_floor_fp16", step_ceiling=lambda lr, eps, dtype: lr / eps), "float64", "inf")
    _fails_with(_with("08_epsilon_floor_fp16", step_ceiling=lambda lr, eps, dtype: eps / lr), "upside down")
    _fails_with(_with("08_epsilon_floor_fp16", first_step_effective_lr=in_float64), "nothing underflows")
    _fails_with(_with("08_epsilon_floor_fp16", first_step_effective_lr=without_correction), "bias correction")
    _fails_with(
        _with("08_epsilon_floor_fp16", first_step_effective_lr=lambda g, lr, eps, dtype, b=0.999: g[:2]), "shape"
    )


def test_09_mistakes():
    _fails_with(_with("09_preconditioning_round_bowl", preconditioner=torch.linalg.inv), "H^{-1}", "square root")
    _fails_with(
        _with("09_preconditioning_round_bowl", preconditioner=lambda H: torch.diag(torch.diagonal(H) ** -0.5)),
        "rotated",
    )
    _fails_with(
        _with("09_preconditioning_round_bowl", preconditioner=lambda H: 2 * torch.eye(len(H))),
        "still has condition number 100",
    )
    _fails_with(_with("09_preconditioning_round_bowl", preconditioner=lambda H: torch.eye(2)), "shape")
    _fails_with(_with("09_preconditioning_round_bowl", leap_steps=lambda: 0), "step 0 is the starting point")
    # any P with P^T H P = I is a round bowl: the Cholesky change of variables passes too
    cholesky = lambda H: torch.linalg.inv(torch.linalg.cholesky(H)).T  # noqa: E731
    verdict = _with("09_preconditioning_round_bowl", preconditioner=cholesky)
    assert verdict.passed, verdict.message


# --- exceptions, None and wrong types become readable messages ----------------------------------------------


def _raises(*args, **kwargs):
    raise KeyError("oops")


@pytest.mark.parametrize(
    "name, key",
    [
        ("01_steep_and_flat_adagrad", "adagrad_effective_lrs"),
        ("02_adagrad_fisher", "fisher_diag"),
        ("03_adagrad_plateau", "crossing_steps"),
        ("04_changing_landscape", "old_memory_share"),
        ("05_rmsprop_scale_change", "recovery_steps"),
        ("06_why_beta1_below_beta2", "bias_corrected_ema"),
        ("07_adamw_vs_l2", "adamw"),
        ("08_epsilon_floor_fp16", "step_ceiling"),
        ("09_preconditioning_round_bowl", "preconditioner"),
    ],
)
def test_an_exception_is_reported_not_raised(name, key):
    verdict = _with(name, **{key: _raises})
    _fails_with(verdict, "raised KeyError", "oops")


def test_partial_answers_and_wrong_types():
    # one part done, one still a stub: not attempted, saying what is already right
    stub = student("01_steep_and_flat_adagrad", stub=True)
    verdict = C.check_steep_and_flat(
        student("01_steep_and_flat_adagrad")["adagrad_effective_lrs"], stub["flat_to_steep_ratio"]
    )
    assert verdict.status == "not attempted" and "correct on all 3" in verdict.message
    # a number where a tensor is expected, a string where a number is expected, a non-function
    _fails_with(_with("04_changing_landscape", old_memory_share=lambda g, a, b=None: 0.5), "torch.Tensor")
    _fails_with(_with("05_rmsprop_scale_change", recovery_steps=lambda b, c: "eighty"), "expected a number")
    _fails_with(_with("06_why_beta1_below_beta2", ema_noise_ratio=0.3), "expected a function")
    # None for some inputs only is a wrong answer, not an unattempted one
    partial = student("03_adagrad_plateau")["crossing_steps"]
    verdict = _with(
        "03_adagrad_plateau", crossing_steps=lambda xs, s, e: None if partial(xs, s, e) < 0 else partial(xs, s, e)
    )
    _fails_with(verdict, "returns None")
    # a tensor of the right values but a wrong shape
    _fails_with(
        _with(
            "01_steep_and_flat_adagrad",
            adagrad_effective_lrs=lambda g, lr, eps=1e-10: (lr / ((g**2).cumsum(0).sqrt() + eps))[-1],
        ),
        "shape",
    )


def test_the_references_agree_with_independent_formulas():
    # 05: the simulated recovery equals the closed form; 06: the noise ratio equals sqrt((1-b)/(1+b))
    for beta, c in [(0.9, 0.01), (0.99, 0.01), (0.95, 0.05)]:
        assert C.recovery_reference(beta, c) == math.ceil(math.log(3 * c * c / (1 - c * c)) / math.log(beta))
    for beta in [0.5, 0.9, 0.99]:
        assert C.noise_ratio_reference(beta) == pytest.approx(math.sqrt((1 - beta) / (1 + beta)), rel=1e-9)
    # 02: Fisher by Monte Carlo over labels drawn from the model
    X, y, w = C.logistic_data()
    gen = torch.Generator().manual_seed(0)
    p = torch.sigmoid(X @ w)
    ys = torch.bernoulli(p.expand(20000, -1), generator=gen)
    mc = (((p - ys)[..., None] * X) ** 2).mean((0, 1))
    assert torch.allclose(mc, C.fisher_reference(w, X), rtol=2e-2)
    # 08: float16 really produces inf for Adam's first step on a tiny gradient with eps = 1e-8
    ref = C.first_step_reference(torch.tensor([1e-4, 1.0], dtype=torch.float64), 1e-3, 1e-8, torch.float16)
    assert math.isinf(ref[0]) and ref[1] == pytest.approx(1e-3, rel=1e-6)


def test_the_fisher_references_agree_with_optbook_fisher():
    # the check's closed forms against the general, autograd-based module (exact sum over the two labels)
    fisher = pytest.importorskip("optbook.lab.fisher")
    for w, X, y in C.fisher_cases():
        emp = fisher.empirical_fisher(fisher.logistic_log_prob, w, X, y)
        full = fisher.fisher(fisher.logistic_log_prob, w, X)
        assert torch.allclose(C.empirical_fisher_reference(w, X, y), torch.diagonal(emp), rtol=1e-10, atol=1e-12)
        assert torch.allclose(C.fisher_reference(w, X), torch.diagonal(full), rtol=1e-10, atol=1e-12)
