"""The checks of the implementation exercises (10-15): they pass the solution, report the stub as not
attempted, and name the usual mistakes, each written here as a student would write it.

The solution and the stub are not copied here: they are executed from the notebooks' own cells.
"""

import math

import nbformat
import pytest
import torch
from conftest import ROOT

from optbook.checks import implementations as I
from optbook.checks.engine import FAILED, NOT_ATTEMPTED, PASSED


def function_from(folder: str, notebook: str, name: str):
    """Execute the cell of ``folder/notebook`` that defines ``name`` and return the function it defines."""
    nb = nbformat.read(ROOT / folder / f"{notebook}.ipynb", as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source]
    assert len(cells) == 1, f"{folder}/{notebook} should define {name} in exactly one cell"
    namespace = {"torch": torch, "math": math}
    exec(compile(cells[0], f"<{folder}/{notebook}>", "exec"), namespace)  # noqa: S102 - our own notebook
    return namespace[name]


EXERCISES = [
    ("10_implement_adagrad", "adagrad_update", I.check_adagrad_update),
    ("11_implement_rmsprop", "rmsprop_update", I.check_rmsprop_update),
    ("12_implement_adam", "adam_update", I.check_adam_update),
    ("13_implement_adamw", "adamw_update", I.check_adamw_update),
    ("14_reddi_counterexample", "average_regret", I.check_average_regret),
    ("15_fp16_on_the_gpu", "safe_fp16_adam_step", I.check_safe_fp16_adam_step),
]


@pytest.mark.parametrize("notebook, name, check", EXERCISES, ids=[e[1] for e in EXERCISES])
def test_the_solution_passes(notebook, name, check):
    verdict = check(function_from("solutions", notebook, name))
    assert verdict.status == PASSED, verdict
    assert "correct on all" in verdict.message
    assert repr(verdict).startswith("[correct]")


@pytest.mark.parametrize("notebook, name, check", EXERCISES, ids=[e[1] for e in EXERCISES])
def test_the_stub_is_not_attempted(notebook, name, check):
    stub = function_from("exercises", notebook, name)
    verdict = check(stub)
    assert verdict.status == NOT_ATTEMPTED, verdict
    assert "not attempted yet" in repr(verdict)


def named(verdict, *words):
    """The verdict failed and names a mistake containing every one of ``words``."""
    assert verdict.status == FAILED, verdict
    assert verdict.mistake is not None, f"no mistake named: {verdict}"
    for word in words:
        assert word in verdict.mistake, f"{word!r} not in {verdict.mistake!r}"
    assert verdict.mistake in verdict.message
    return True


# --- AdaGrad ------------------------------------------------------------------------------------------


def adagrad_reset(grad, accumulator, lr, eps):
    accumulator = grad**2
    return -lr * grad / (accumulator.sqrt() + eps), accumulator


def adagrad_averaged(grad, accumulator, lr, eps):
    accumulator = (accumulator + grad**2) / 2
    return -lr * grad / (torch.sqrt(accumulator) + eps), accumulator


def adagrad_eps_inside(grad, accumulator, lr, eps):
    new = accumulator + grad * grad
    return -lr * grad / torch.sqrt(new + eps), new


def adagrad_sign(grad, accumulator, lr, eps):
    new = accumulator + grad * grad
    return lr * grad / (new.sqrt() + eps), new


def adagrad_old_accumulator(grad, accumulator, lr, eps):
    update = -lr * grad / (accumulator.sqrt() + eps)
    return update, accumulator + grad**2


@pytest.mark.parametrize(
    "wrong, words",
    [
        (adagrad_reset, ["reset"]),
        (adagrad_averaged, ["averaged instead of summed"]),
        (adagrad_eps_inside, ["epsilon is inside the square root"]),
        (adagrad_sign, ["sign error"]),
        (adagrad_old_accumulator, ["old accumulator"]),
    ],
)
def test_adagrad_mistakes_are_named(wrong, words):
    assert named(I.check_adagrad_update(wrong), *words)


# --- RMSProp ------------------------------------------------------------------------------------------


def rmsprop_no_factor(grad, square_avg, lr, beta, eps):
    v = beta * square_avg + grad**2
    return -lr * grad / (v.sqrt() + eps), v


def rmsprop_swapped(grad, square_avg, lr, beta, eps):
    v = (1 - beta) * square_avg + beta * grad**2
    return -lr * grad / (v.sqrt() + eps), v


def rmsprop_summed(grad, square_avg, lr, beta, eps):
    v = square_avg + grad**2
    return -lr * grad / (v.sqrt() + eps), v


def rmsprop_eps_inside(grad, square_avg, lr, beta, eps):
    v = beta * square_avg + (1 - beta) * grad**2
    return -lr * grad / torch.sqrt(v + eps), v


def rmsprop_sign(grad, square_avg, lr, beta, eps):
    v = beta * square_avg + (1 - beta) * grad**2
    return lr * grad / (v.sqrt() + eps), v


@pytest.mark.parametrize(
    "wrong, words",
    [
        (rmsprop_no_factor, ["no (1 - beta) factor"]),
        (rmsprop_swapped, ["swapped"]),
        (rmsprop_summed, ["summed"]),
        (rmsprop_eps_inside, ["epsilon is inside the square root"]),
        (rmsprop_sign, ["sign error"]),
    ],
)
def test_rmsprop_mistakes_are_named(wrong, words):
    assert named(I.check_rmsprop_update(wrong), *words)


# --- Adam ---------------------------------------------------------------------------------------------


def adam_written(
    grad, m, v, t, lr, beta1, beta2, eps, *, v_weight=None, power_m=None, power_v=None, eps_inside=False, sign=-1.0
):
    """A student's Adam, spelled out; the keyword arguments let a test change one line of it."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2 if v_weight is None else v_weight) * grad**2
    m_hat = m / (1 - beta1 ** (t if power_m is None else power_m(t))) if power_m != "none" else m
    v_hat = v / (1 - beta2 ** (t if power_v is None else power_v(t))) if power_v != "none" else v
    denom = torch.sqrt(v_hat + eps) if eps_inside else torch.sqrt(v_hat) + eps
    return sign * lr * m_hat / denom, m, v


def adam_no_beta2_factor(grad, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + grad**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return -lr * m_hat / (v_hat.sqrt() + eps), m, v


def adam_no_correction(grad, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    return -lr * m / (v.sqrt() + eps), m, v


def adam_t_minus_one(grad, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat = m / (1 - beta1 ** (t - 1))
    v_hat = v / (1 - beta2 ** (t - 1))
    return -lr * m_hat / (v_hat.sqrt() + eps), m, v


def adam_zero_based_step(grad, m, v, t, lr, beta1, beta2, eps):
    step = t + 1  # "the step count starts at 0, so this is step t + 1"
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    return -lr * (m / (1 - beta1**step)) / ((v / (1 - beta2**step)).sqrt() + eps), m, v


def adam_only_m_corrected(grad, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    return -lr * (m / (1 - beta1**t)) / (v.sqrt() + eps), m, v


def adam_eps_inside(grad, m, v, t, lr, beta1, beta2, eps):
    return adam_written(grad, m, v, t, lr, beta1, beta2, eps, eps_inside=True)


def adam_sign(grad, m, v, t, lr, beta1, beta2, eps):
    return adam_written(grad, m, v, t, lr, beta1, beta2, eps, sign=1.0)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (adam_no_beta2_factor, ["second moment has no (1 - beta2) factor"]),
        (adam_no_correction, ["no bias correction"]),
        (adam_t_minus_one, ["t - 1"]),
        (adam_zero_based_step, ["off by one"]),
        (adam_only_m_corrected, ["only the first moment is bias-corrected"]),
        (adam_eps_inside, ["epsilon is inside the square root"]),
        (adam_sign, ["sign error"]),
    ],
)
def test_adam_mistakes_are_named(wrong, words):
    assert named(I.check_adam_update(wrong), *words)


def test_adam_spelled_out_correctly_passes():
    assert I.check_adam_update(adam_written).passed


# --- AdamW --------------------------------------------------------------------------------------------


def adamw_l2(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay):
    grad = grad + weight_decay * param  # "weight decay is the gradient of the penalty"
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v


def adamw_decay_without_lr(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay):
    update, m, v = adam_written(grad, m, v, t, lr, beta1, beta2, eps)
    return param * (1 - weight_decay) + update, m, v


def adamw_decay_after_step(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay):
    update, m, v = adam_written(grad, m, v, t, lr, beta1, beta2, eps)
    param = param + update
    param = param - lr * weight_decay * param
    return param, m, v


def adamw_decay_sign(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay):
    update, m, v = adam_written(grad, m, v, t, lr, beta1, beta2, eps)
    return param + lr * weight_decay * param + update, m, v


def adamw_no_correction(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    return param * (1 - lr * weight_decay) - lr * m / (v.sqrt() + eps), m, v


@pytest.mark.parametrize(
    "wrong, words",
    [
        (adamw_l2, ["coupled into the moments", "L2"]),
        (adamw_decay_without_lr, ["not multiplied by the learning rate"]),
        (adamw_decay_after_step, ["after the Adam step"]),
        (adamw_decay_sign, ["weight decay has a sign error"]),
        (adamw_no_correction, ["no bias correction"]),
    ],
)
def test_adamw_mistakes_are_named(wrong, words):
    assert named(I.check_adamw_update(wrong), *words)


def test_adamw_written_as_torch_does_it_passes():
    def adamw_torch_style(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay):
        param = param * (1 - lr * weight_decay)
        update, m, v = adam_written(grad, m, v, t, lr, beta1, beta2, eps)
        return param + update, m, v

    assert I.check_adamw_update(adamw_torch_style).passed


# --- Exercise 14: regret and the counterexample -------------------------------------------------------


def regret_after_the_step(xs, landscape):
    steps = xs.shape[0] - 1
    return sum(landscape.value(xs[t], t) - landscape.value(landscape.minimizer, t) for t in range(1, steps + 1)) / steps


def regret_total(xs, landscape):
    steps = xs.shape[0] - 1
    return sum(landscape.value(xs[t - 1], t) - landscape.value(landscape.minimizer, t) for t in range(1, steps + 1))


def regret_no_baseline(xs, landscape):
    steps = xs.shape[0] - 1
    return sum(landscape.value(xs[t - 1], t) for t in range(1, steps + 1)) / steps


def regret_sign(xs, landscape):
    steps = xs.shape[0] - 1
    best = landscape.minimizer
    return sum(landscape.value(best, t) - landscape.value(xs[t - 1], t) for t in range(1, steps + 1)) / steps


@pytest.mark.parametrize(
    "wrong, words",
    [
        (regret_after_the_step, ["off by one"]),
        (regret_total, ["total regret"]),
        (regret_no_baseline, ["best fixed point is missing"]),
        (regret_sign, ["sign error"]),
    ],
)
def test_regret_mistakes_are_named(wrong, words):
    assert named(I.check_average_regret(wrong), *words)


def reddi_by_hand(amsgrad: bool):
    """Adam / AMSGrad on the counterexample in plain Python floats: (final x, average regret)."""
    s = I.REDDI
    x, m, v, v_max, regret = 0.0, 0.0, 0.0, 0.0, 0.0
    for t in range(1, s["steps"] + 1):
        g = s["large"] if t % s["period"] == 1 else -s["small"]
        regret += g * x - g * (-1.0)
        m = s["beta1"] * m + (1 - s["beta1"]) * g
        v = s["beta2"] * v + (1 - s["beta2"]) * g * g
        v_max = max(v_max, v)
        denominator = math.sqrt((v_max if amsgrad else v) / (1 - s["beta2"] ** t)) + s["eps"]
        x -= s["lr"] / math.sqrt(t) * (m / (1 - s["beta1"] ** t)) / denominator
        x = min(1.0, max(-1.0, x))
    return x, regret / s["steps"]


def test_reddi_reference_matches_a_hand_written_loop_and_the_paper():
    adam, ams = reddi_by_hand(False), reddi_by_hand(True)
    assert I.reddi_reference(False)[:2] == pytest.approx(adam, abs=1e-9)
    assert I.reddi_reference(True)[:2] == pytest.approx(ams, abs=1e-9)
    assert adam[0] == pytest.approx(1.0) and ams[0] < -0.99  # Adam at the worst point, AMSGrad near x* = -1
    assert adam[1] == pytest.approx(2 * (I.REDDI["large"] - 2) / 3, abs=0.01)
    verdict = I.check_reddi_counterexample(adam[0], adam[1], ams[0], ams[1])
    assert verdict.passed, verdict


def test_reddi_numbers_mistakes():
    adam, ams = reddi_by_hand(False), reddi_by_hand(True)
    swapped = I.check_reddi_counterexample(ams[0], adam[1], adam[0], ams[1])
    assert swapped.status == FAILED and "AMSGrad ends" in swapped.message
    total = I.check_reddi_counterexample(adam[0], adam[1] * I.REDDI["steps"], ams[0], ams[1])
    assert total.status == FAILED and "total regret" in total.message
    shifted = I.reddi_reference(False)[2]
    late = I.check_reddi_counterexample(adam[0], shifted, ams[0], ams[1])
    assert late.status == FAILED and "off by one" in late.message
    assert I.check_reddi_counterexample(None, None, None, None).status == NOT_ATTEMPTED
    partly = I.check_reddi_counterexample(adam[0], adam[1], None, None)
    assert partly.status == NOT_ATTEMPTED and "AMSGrad" in partly.message
    text = I.check_reddi_counterexample("far right", adam[1], ams[0], ams[1])
    assert text.status == FAILED and "expected a number" in text.message


# --- Exercise 15: float16 -----------------------------------------------------------------------------


def fp16_everything_in_half(param, grad, m, v, t, lr, beta1, beta2, eps):
    m, v = m.half(), v.half()
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    step = lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps)
    return param - step, m, v


def fp16_cast_back_at_the_end(param, grad, m, v, t, lr, beta1, beta2, eps):
    new_param, m, v = fp16_everything_in_half(param, grad, m, v, t, lr, beta1, beta2, eps)
    return new_param, m.float(), v.float()


def fp16_denominator_in_half(param, grad, m, v, t, lr, beta1, beta2, eps):
    g = grad.float()
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    denom = (v / (1 - beta2**t)).sqrt().to(param.dtype) + eps  # "the weights are float16, so is this"
    return (param.float() - lr * (m / (1 - beta1**t)) / denom).half(), m, v


def fp16_no_correction(param, grad, m, v, t, lr, beta1, beta2, eps):
    g = grad.float()
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    return (param.float() - lr * m / (v.sqrt() + eps)).half(), m, v


def fp16_library_pieces(param, grad, m, v, t, lr, beta1, beta2, eps):
    """A right answer by another road: the library's chain in float32, the update added in float16."""
    from optbook.core import transforms as T

    chain = T.chain(T.scale_by_adam(beta1, beta2, eps), T.scale_by_learning_rate(lr))
    u, state = chain.update(grad.float(), {"step": t - 1, "exp_avg": m, "exp_avg_sq": v}, param.float())
    return param + u.half(), state["exp_avg"], state["exp_avg_sq"]


@pytest.mark.parametrize(
    "wrong, words",
    [
        (fp16_everything_in_half, ["float16 computation where float32 was meant", "moments and the step"]),
        (fp16_cast_back_at_the_end, ["float16 computation where float32 was meant"]),
        (fp16_denominator_in_half, ["float16 computation where float32 was meant"]),
    ],
)
def test_fp16_mistakes_are_named(wrong, words):
    verdict = I.check_safe_fp16_adam_step(wrong)
    assert verdict.status == FAILED and I.FP16_MISTAKE in verdict.mistake, verdict
    for word in words:
        assert word in verdict.message


def test_fp16_check_names_adam_mistakes_and_accepts_other_right_answers():
    assert named(I.check_safe_fp16_adam_step(fp16_no_correction), "no bias correction")
    assert I.check_safe_fp16_adam_step(fp16_library_pieces).passed


def test_fp16_weights_left_in_float32():
    def forgot_to_round(param, grad, m, v, t, lr, beta1, beta2, eps):
        g = grad.float()
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        return param.float() - lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps), m, v

    verdict = I.check_safe_fp16_adam_step(forgot_to_round)
    assert (
        verdict.status == FAILED and "new_param has dtype float32, but the exercise asks for float16" in verdict.message
    )


# --- What every check does with broken answers --------------------------------------------------------

ADAGRAD_SOLUTION = I._adagrad_reference


def test_an_unknown_mistake_shows_where_and_by_how_much():
    def doubled(grad, accumulator, lr, eps):
        update, new = ADAGRAD_SOLUTION(grad, accumulator, lr, eps)
        return 2 * update, new

    verdict = I.check_adagrad_update(doubled)
    assert verdict.status == FAILED and verdict.mistake is None
    assert "update is wrong on test case 1: at index (0,) you have" in verdict.message
    assert "off by" in verdict.message


def test_an_exception_is_reported_with_the_line():
    def broken(grad, accumulator, lr, eps):
        new = accumulator + grad.square()
        return -lr * grad / (new.sqroot() + eps), new

    verdict = I.check_adagrad_update(broken)
    assert verdict.status == FAILED
    assert "your code raised AttributeError" in verdict.message and "sqroot" in verdict.message


@pytest.mark.parametrize(
    "answer, words",
    [
        (lambda g, a, lr, eps: (g.sum(), a + g * g), "update has shape ()"),
        (lambda g, a, lr, eps: ("-0.1", a + g * g), "update is the text '-0.1'"),
        (lambda g, a, lr, eps: -lr * g / ((a + g * g).sqrt() + eps), "returns 1 value(s), but it should return 2"),
        (lambda g, a, lr, eps: ([1.0, 2.0], a + g * g), "update has shape (2,)"),
        (lambda g, a, lr, eps: ({"u": 1}, a + g * g), "update should be a torch.Tensor, but it is dict"),
    ],
)
def test_wrong_shapes_dtypes_and_types_are_explained(answer, words):
    verdict = I.check_adagrad_update(answer)
    assert verdict.status == FAILED and words in verdict.message, verdict


@pytest.mark.parametrize(
    "check",
    [
        I.check_adagrad_update,
        I.check_rmsprop_update,
        I.check_adam_update,
        I.check_adamw_update,
        I.check_average_regret,
        I.check_safe_fp16_adam_step,
    ],
)
def test_none_and_non_functions(check):
    assert check(lambda *args: None).status == NOT_ATTEMPTED
    assert check(None).status == FAILED and "expected your function, got None" in check(None).message
    assert check(print).status != PASSED


def test_an_exception_in_the_fp16_step_is_reported():
    def broken(param, grad, m, v, t, lr, beta1, beta2, eps):
        return param.float32(), m, v

    verdict = I.check_safe_fp16_adam_step(broken)
    assert verdict.status == FAILED and "your code raised AttributeError" in verdict.message


def test_every_known_mistake_is_told_apart_from_the_others():
    """Each mistake, played as the student, is named as itself: the test cases can tell them all apart."""
    table = [
        (I.check_adagrad_update, I.ADAGRAD_MISTAKES),
        (I.check_rmsprop_update, I.RMSPROP_MISTAKES),
        (I.check_adam_update, I.ADAM_MISTAKES),
        (I.check_adamw_update, I.ADAMW_MISTAKES),
        (I.check_average_regret, I.REGRET_MISTAKES),
    ]
    for check, mistakes in table:
        for description, wrong in mistakes.items():
            assert check(wrong).mistake == description
