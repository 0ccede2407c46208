"""optbook.conventions: each framework's epsilon placement, against independent computations."""

import math

import pytest
import torch

from optbook.core import transforms as T
from optbook.lab import conventions as C


def history(steps=40, scale=1e-3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(5, generator=gen, dtype=torch.float64) for _ in range(steps)]


def walk(transform, grads):
    param = torch.zeros_like(grads[0])
    state = transform.init(param)
    out = []
    for g in grads:
        u, state = transform.update(g, state, param)
        out.append((u, state))
    return out


def test_torch_convention_equals_scale_by_adam_and_torch_optim():
    grads = history()
    ours = walk(C.adam_torch(0.9, 0.99, 1e-4), grads)
    lib = walk(T.scale_by_adam(0.9, 0.99, 1e-4), grads)
    for (u, _), (w, _) in zip(ours, lib):
        torch.testing.assert_close(u, w, rtol=1e-12, atol=0)
    p = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=1.0, betas=(0.9, 0.99), eps=1e-4)
    for g, (u, _) in zip(grads, ours):
        before = p.detach().clone()
        p.grad = g.clone()
        opt.step()
        torch.testing.assert_close(p.detach() - before, -u, rtol=1e-10, atol=1e-15)


def test_eps_hat_equals_algorithm_1_with_rescaled_eps():
    b1, b2, eps_hat = 0.9, 0.999, 1e-4
    grads = history(scale=1e-4)
    m = v = torch.zeros(5, dtype=torch.float64)
    for t, (g, (u, state)) in enumerate(zip(grads, walk(C.adam_eps_hat(b1, b2, eps_hat), grads)), start=1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        eps_t = eps_hat / math.sqrt(1 - b2**t)  # the brief's algebra: Algorithm 1 with this epsilon
        expected = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps_t)
        torch.testing.assert_close(u, expected, rtol=1e-12, atol=0)
        torch.testing.assert_close(state["effective_eps"], torch.full_like(u, eps_t))
    assert not torch.allclose(
        walk(C.adam_eps_hat(b1, b2, eps_hat), grads)[0][0], walk(C.adam_torch(b1, b2, eps_hat), grads)[0][0]
    )


def test_optax_eps_root_inside_the_root():
    grads = history(scale=1e-3)
    zero_root = walk(C.adam_optax(eps=1e-8, eps_root=0.0), grads)
    for (u, _), (w, _) in zip(zero_root, walk(C.adam_torch(eps=1e-8), grads)):
        torch.testing.assert_close(u, w, rtol=1e-12, atol=0)
    b1, b2, eps, root = 0.9, 0.999, 1e-8, 1e-6
    m = v = torch.zeros(5, dtype=torch.float64)
    for t, (g, (u, _)) in enumerate(zip(grads, walk(C.adam_optax(b1, b2, eps, root), grads)), start=1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        expected = (m / (1 - b1**t)) / ((v / (1 - b2**t) + root).sqrt() + eps)
        torch.testing.assert_close(u, expected, rtol=1e-12, atol=0)


def test_radam_matches_library_and_torch():
    grads = history(steps=12)
    ours = walk(C.radam_torch(eps=1e-6), grads)
    for (u, _), (w, _) in zip(ours, walk(T.scale_by_radam(eps=1e-6), grads)):
        torch.testing.assert_close(u, w, rtol=1e-12, atol=0)
    assert torch.isnan(ours[4][1]["effective_eps"]).all()  # t = 5: rho_t < 5, no denominator yet
    torch.testing.assert_close(
        ours[5][1]["effective_eps"], torch.full((5,), 1e-6 / math.sqrt(1 - 0.999**6), dtype=torch.float64)
    )
    p = torch.zeros(5, dtype=torch.float64)
    opt = torch.optim.RAdam([p.requires_grad_()], lr=1.0, eps=1e-6)
    for g, (u, _) in zip(grads, ours):
        before = p.detach().clone()
        p.grad = g.clone()
        opt.step()
        torch.testing.assert_close(p.detach() - before, -u, rtol=1e-10, atol=1e-15)


def test_adagrad_conventions():
    grads = history(steps=20, scale=1e-2)
    for (u, _), (w, _) in zip(walk(C.adagrad_torch(), grads), walk(T.scale_by_rss(), grads)):
        torch.testing.assert_close(u, w, rtol=1e-12, atol=0)
    total = torch.full((5,), 0.1, dtype=torch.float64)
    for g, (u, _) in zip(grads, walk(C.adagrad_optax(), grads)):
        total = total + g * g
        torch.testing.assert_close(u, g * torch.rsqrt(total + 1e-7), rtol=1e-12, atol=0)
    # optax returns a zero step where the sum is still zero (no start value)
    u, state = walk(C.adagrad_optax(0.0, 1e-7), [torch.tensor([0.0, 1e-3], dtype=torch.float64)])[0]
    assert u[0] == 0 and u[1] == pytest.approx(1e-3 / math.sqrt(1e-6 + 1e-7))
    assert math.isinf(state["effective_eps"][0])


def test_rmsprop_conventions():
    grads = history(scale=1e-4)
    for (u, _), (w, _) in zip(
        walk(C.rmsprop_optax(0.9, 1e-8, eps_in_sqrt=False), grads), walk(T.scale_by_rms(0.9, 1e-8), grads)
    ):
        torch.testing.assert_close(u, w, rtol=1e-12, atol=0)
    for (u, _), (w, _) in zip(walk(C.rmsprop_torch(0.99, 1e-8), grads), walk(T.scale_by_rms(0.99, 1e-8), grads)):
        torch.testing.assert_close(u, w, rtol=1e-12, atol=0)
    v = torch.zeros(5, dtype=torch.float64)
    for g, (u, _) in zip(grads, walk(C.rmsprop_optax(0.9, 1e-8), grads)):
        v = 0.9 * v + 0.1 * g * g
        torch.testing.assert_close(u, g / (v + 1e-8).sqrt(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("make", [C.adam_torch, lambda: C.adam_optax(eps_root=1e-9), C.adam_eps_hat, C.radam_torch])
def test_effective_eps_reproduces_the_step_in_the_reference_form(make):
    grads = history(steps=30, scale=1e-6)
    for u, state in walk(make(), grads):
        if torch.isnan(state["effective_eps"]).all():
            continue
        t = state["step"]
        m_hat, root = state["exp_avg"] / (1 - 0.9**t), (state["exp_avg_sq"] / (1 - 0.999**t)).sqrt()
        reference = m_hat / (root + state["effective_eps"])
        if make is C.radam_torch:  # RAdam also multiplies by its rectification r_t
            ratio = u / reference
            torch.testing.assert_close(ratio, ratio[:1].expand_as(ratio), rtol=1e-10, atol=0)
            assert 0 < ratio[0] < 1
        else:
            torch.testing.assert_close(u, reference, rtol=1e-9, atol=0)
            torch.testing.assert_close(
                C.effective_eps_from_step(u, m_hat, root), state["effective_eps"], rtol=1e-5, atol=1e-18
            )


def test_effective_eps_of_the_root_families():
    grads = history(steps=20, scale=1e-4)
    total = torch.zeros(5, dtype=torch.float64)
    for g, (u, state) in zip(grads, walk(C.adagrad_optax(), grads)):
        total = total + g * g
        torch.testing.assert_close(u, g / (total.sqrt() + state["effective_eps"]), rtol=1e-10, atol=0)
    v = torch.zeros(5, dtype=torch.float64)
    for g, (u, state) in zip(grads, walk(C.rmsprop_optax(), grads)):
        v = 0.9 * v + 0.1 * g * g
        torch.testing.assert_close(u, g / (v.sqrt() + state["effective_eps"]), rtol=1e-10, atol=0)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: C.adam_torch(b1=1.0), "b1"),
        (lambda: C.adam_eps_hat(eps_hat=-1.0), "eps_hat"),
        (lambda: C.adam_optax(eps_root=-1e-8), "eps_root"),
        (lambda: C.adagrad_optax(initial_accumulator_value=-0.1), "initial_accumulator_value"),
        (lambda: C.rmsprop_optax(decay=1.5), "decay"),
        (lambda: C.radam_torch(b2=-0.1), "b2"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
