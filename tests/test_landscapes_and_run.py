"""Landscapes against autograd, and batched runs against one-by-one runs."""

import itertools

import pytest
import torch

from optbook.core import transforms as T
from optbook.lab import landscapes as L
from optbook.lab.run import grid, run

ALL = [
    L.Canyon(100.0),
    L.Canyon(30.0, angle=0.6),
    L.Rosenbrock(),
    L.Beale(),
    L.MountainsThenPlateau(),
    L.ChangingLandscape(L.Canyon(10.0), at_step=5, factor=0.01, shift=[0.5, -0.2]),
    L.ReddiCounterexample(),
    L.ReddiCounterexample(1010.0, 10.0, 101),
    L.Saddle(),
]


def points(landscape, n=64):
    gen = torch.Generator().manual_seed(1)
    window = landscape.window if isinstance(landscape.window[0], tuple) else (landscape.window,)
    cols = [lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64) for lo, hi in window]
    return torch.stack(cols, dim=-1)


@pytest.mark.parametrize("landscape", ALL, ids=repr)
@pytest.mark.parametrize("step", [1, 2, 10])
def test_gradient_equals_autograd(landscape, step):
    x = points(landscape).requires_grad_(True)
    (auto,) = torch.autograd.grad(landscape.value(x, step).sum(), x)
    torch.testing.assert_close(landscape.grad(x.detach(), step), auto, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("landscape", [ls for ls in ALL if not ls.constrained], ids=repr)
def test_minimizer_has_zero_gradient(landscape):
    step = getattr(landscape, "at_step", 1)
    g = landscape.grad(landscape.minimizer[None], step)
    assert g.abs().max() < 1e-10
    # and it is a minimum: nearby points are higher
    near = landscape.minimizer + 1e-3 * torch.randn(16, landscape.dim, dtype=torch.float64)
    assert (landscape.value(near, step) >= landscape.value(landscape.minimizer[None], step)).all()


def test_reddi_minimizer_is_the_left_end():
    problem = L.ReddiCounterexample(large=3.0)
    xs = torch.linspace(-1, 1, 201, dtype=torch.float64)[:, None]
    assert xs[problem.average_value(xs).argmin()].item() == -1.0


def test_canyon_condition_number_and_saddle():
    assert L.Canyon(250.0, angle=0.3).condition_number == pytest.approx(250.0)
    saddle = L.Saddle()
    assert saddle.grad(saddle.saddle_point[None]).abs().max() == 0


CHAINS = {
    "adam": lambda h: T.chain(T.scale_by_adam(b1=h["b1"], b2=h["b2"]), T.scale_by_learning_rate(h["lr"])),
    "radam": lambda h: T.chain(T.scale_by_radam(b1=h["b1"], b2=h["b2"]), T.scale_by_learning_rate(h["lr"])),
    "momentum": lambda h: T.chain(T.trace(h["b1"]), T.scale_by_learning_rate(h["lr"])),
    "rmsprop": lambda h: T.chain(T.scale_by_rms(h["b2"], centered=True), T.scale_by_learning_rate(h["lr"])),
    "adagrad": lambda h: T.chain(T.scale_by_rss(h["b1"]), T.scale_by_learning_rate(h["lr"])),
    "nadam": lambda h: T.chain(
        T.scale_by_nadam(h["b1"], h["b2"]), T.add_decayed_weights(h["lr"]), T.scale_by_learning_rate(h["lr"])
    ),
}


@pytest.mark.parametrize("name", CHAINS)
def test_batched_grid_equals_separate_runs(name):
    axes = dict(lr=[0.01, 0.05, 0.1], b1=[0.0, 0.5, 0.9], b2=[0.5, 0.9, 0.999])
    landscape = L.Canyon(10.0, angle=0.4)
    batched = run(CHAINS[name](grid(**axes)), landscape, steps=40)
    assert torch.isfinite(batched.params).all()
    # axes a chain does not use stay of size 1 and broadcast
    batched.params, batched.losses = batched.params.expand(41, 3, 3, 3, 2), batched.losses.expand(41, 3, 3, 3)
    for (i, lr), (j, b1), (k, b2) in itertools.product(*(enumerate(v) for v in axes.values())):
        single = run(CHAINS[name](dict(lr=lr, b1=b1, b2=b2)), landscape, steps=40)
        torch.testing.assert_close(batched.params[:, i, j, k], single.params, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(batched.losses[:, i, j, k], single.losses, rtol=1e-12, atol=1e-14)


def test_many_starting_points_in_one_run():
    canyon = L.Canyon(10.0)
    starts = torch.tensor([[-2.0, 0.2], [1.0, -0.5], [0.3, 0.9]], dtype=torch.float64)
    together = run(T.chain(T.scale_by_adam(), T.scale_by_learning_rate(0.05)), canyon, starts, steps=30)
    for i, start in enumerate(starts):
        alone = run(T.chain(T.scale_by_adam(), T.scale_by_learning_rate(0.05)), canyon, start, steps=30)
        torch.testing.assert_close(together.params[:, i], alone.params, rtol=1e-12, atol=0)


def test_effective_lr_of_adagrad_is_lr_over_root_sum():
    canyon = L.Canyon(10.0)
    trajectory = run(T.chain(T.scale_by_rss(eps=0.0), T.scale_by_learning_rate(0.1)), canyon, steps=20)
    expected = 0.1 / trajectory.grads.pow(2).cumsum(0).sqrt()
    torch.testing.assert_close(trajectory.effective_lr, expected, rtol=1e-10, atol=0)


def test_projection_keeps_reddi_in_bounds():
    problem = L.ReddiCounterexample()
    trajectory = run(T.chain(T.scale_by_adam(0.0, 0.1), T.scale_by_learning_rate(0.5)), problem, steps=60)
    assert trajectory.params.abs().max() <= 1.0


def test_noisy_landscape_mean_variance_and_seeds():
    base = L.Canyon(10.0)
    noisy = L.Noisy(base, sigma=0.5, seed=3)
    x = torch.zeros(20000, 2, dtype=torch.float64) + base.start
    g = noisy.grad(x, 7)
    assert torch.allclose(g.mean(0), base.grad(base.start), atol=0.02)  # unbiased
    assert abs(g.std(0).mean().item() - 0.5) < 0.02  # spread sigma
    assert torch.equal(g, noisy.grad(x, 7))  # fixed by (seed, step)
    assert not torch.equal(g, noisy.grad(x, 8))
    assert not torch.equal(g, L.Noisy(base, sigma=0.5, seed=4).grad(x, 7))
    assert torch.equal(noisy.value(x[:3]), base.value(x[:3]))  # the reported loss is noiseless
    assert torch.equal(L.Noisy(base, sigma=0.0).grad(x[:3]), base.grad(x[:3]))


@pytest.mark.parametrize("kw", [{"sigma": -1.0}, {"sigma": 1.0, "seed": -1}, {"sigma": 1.0, "seed": 1.5}])
def test_noisy_landscape_bad_input(kw):
    with pytest.raises(ValueError, match="sigma|seed"):
        L.Noisy(L.Canyon(), **kw)
