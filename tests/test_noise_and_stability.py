"""Minibatch noise on landscapes, and the stability instruments, against closed forms and brute force."""

import math

import pytest
import torch

from optbook.core import transforms as T
from optbook.lab import landscapes as L
from optbook.lab import noise as N
from optbook.lab import stability as S
from optbook.lab.run import run


def test_noisy_landscape_is_reproducible_and_has_the_right_spread():
    base = L.Quadratic([[2.0]])
    a, b, c = (
        N.NoisyLandscape(base, std=2.0, batch=4, seed=1),
        N.NoisyLandscape(base, 2.0, 4, 1),
        N.NoisyLandscape(base, 2.0, 4, 2),
    )
    x = torch.zeros(20000, 1, dtype=torch.float64)
    assert torch.equal(a.grad(x, 5), b.grad(x, 5))
    assert not torch.equal(a.grad(x, 5), c.grad(x, 5)) and not torch.equal(a.grad(x, 5), a.grad(x, 6))
    noise = a.grad(x, 3) - base.grad(x)
    assert abs(noise.std().item() - 1.0) < 0.02  # 2 / sqrt(4)
    assert abs(noise.mean().item()) < 0.03
    assert torch.equal(a.value(x), base.value(x))


def test_noise_free_wrapper_is_the_base_landscape():
    base = L.Canyon(kappa=10.0)
    quiet = N.NoisyLandscape(base, std=0.0)
    x = torch.randn(5, 2, dtype=torch.float64)
    assert torch.equal(quiet.grad(x, 2), base.grad(x, 2))


def test_sgd_noise_floor_matches_the_closed_form():
    h, lr, std = 4.0, 0.1, 1.0
    noisy = N.NoisyLandscape(L.Quadratic([[h]]), std=std, seed=0)
    walk = run(T.chain(T.scale_by_learning_rate(lr)), noisy, x0=torch.zeros(4000, 1), steps=150)
    var = walk.params[-1, :, 0].var().item()
    predicted = N.stationary_variance(lr, h, std)
    assert predicted == pytest.approx(lr * std**2 / (h * (2 - lr * h)))
    assert var == pytest.approx(predicted, rel=0.08)


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: N.NoisyLandscape(L.Quadratic([[1.0]]), std=-1.0), "std"),
        (lambda: N.NoisyLandscape(L.Quadratic([[1.0]]), std=1.0, batch=0), "batch"),
        (lambda: N.NoisyLandscape(L.Quadratic([[1.0]]), std=1.0, seed=-1), "seed"),
        (lambda: N.NoisyLandscape("canyon", std=1.0), "base"),
        (lambda: N.stationary_variance(2.5, 1.0, 1.0), "lr \\* curvature"),
        (lambda: N.stationary_variance(0.1, 0.0, 1.0), "curvature"),
        (lambda: S.heavy_ball_radius(0.1, 1.0), "beta"),
        (lambda: S.heavy_ball_radius(-0.1, 0.5), "lr"),
        (lambda: S.optimal_heavy_ball(10.0, 1.0), "mu"),
        (lambda: S.adam_ratio_bound(0.9, 0.0), "beta2"),
        (lambda: S.adam_ratio_bound(0.9, 0.99, steps=0), "steps"),
        (lambda: S.sharpness(L.Canyon(), torch.zeros(3)), "x"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_heavy_ball_radius_is_the_companion_matrix_radius():
    for lr, beta, h in [(0.1, 0.5, 3.0), (0.033, 0.67, 100.0), (1.9, 0.0, 1.0), (0.5, 0.9, 7.0)]:
        companion = torch.tensor([[1 + beta - lr * h, -beta], [1.0, 0.0]], dtype=torch.float64)
        expected = torch.linalg.eigvals(companion).abs().max().item()
        assert S.heavy_ball_radius(lr, beta, h) == pytest.approx(expected, rel=1e-12)
    grid = S.heavy_ball_radius(torch.tensor([[0.1], [0.2]]), torch.tensor([[0.0, 0.5]]), 2.0)
    assert grid.shape == (2, 2)


def test_threshold_separates_stable_from_unstable():
    for beta in [0.0, 0.5, 0.9]:
        edge = S.heavy_ball_threshold(beta)
        assert S.heavy_ball_radius(0.999 * edge, beta) < 1 < S.heavy_ball_radius(1.001 * edge, beta)
    assert S.heavy_ball_threshold(0.9, averaged=True) == pytest.approx(38.0)


def test_optimal_heavy_ball_beats_its_neighbours():
    alpha, beta, rate = S.optimal_heavy_ball(1.0, 100.0)
    assert (alpha, beta, rate) == pytest.approx((0.0330579, 0.669421, 0.818182), rel=1e-5)

    def worst(a, b):
        return max(S.heavy_ball_radius(a, b, h) for h in (1.0, 100.0))

    assert worst(alpha, beta) == pytest.approx(rate, rel=1e-6)  # a double root: sqrt of ~0
    for a, b in [(0.9 * alpha, beta), (1.1 * alpha, beta), (alpha, 0.95 * beta), (alpha, 1.05 * beta)]:
        assert worst(a, b) > rate


def test_adam_bound_is_attained_by_the_worst_case_sequence():
    for b1, b2, bound in [(0.9, 0.999, 7.2703), (0.9, 0.99, 2.3452), (0.95, 0.95, 1.0)]:
        assert S.adam_ratio_bound(b1, b2) == pytest.approx(bound, abs=1e-4)
        g = S.adam_worst_case(b1, b2, 300)
        m = v = 0.0
        for gt in g.tolist():
            m, v = b1 * m + (1 - b1) * gt, b2 * v + (1 - b2) * gt * gt
        assert m / math.sqrt(v) == pytest.approx(S.adam_ratio_bound(b1, b2, steps=300), rel=1e-10)
    assert S.adam_ratio_bound(0.99, 0.9) == math.inf


def test_random_sequences_stay_under_the_bound():
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(200, 500, generator=gen, dtype=torch.float64) ** 3
    m = torch.zeros(500, dtype=torch.float64)
    v = torch.zeros(500, dtype=torch.float64)
    worst = 0.0
    for gt in g:
        m, v = 0.9 * m + 0.1 * gt, 0.99 * v + 0.01 * gt * gt
        worst = max(worst, (m.abs() / v.sqrt()).max().item())
    assert 0 < worst <= S.adam_ratio_bound(0.9, 0.99)


def test_factorization_gradient_and_sharpness():
    land = S.Factorization()
    x = torch.tensor([[1.5, 0.3], [2.0, 0.5]], dtype=torch.float64, requires_grad=True)
    land.value(x).sum().backward()
    torch.testing.assert_close(land.grad(x.detach()), x.grad)
    # on the minimum ab = 1 the top eigenvalue of the Hessian is a^2 + b^2
    on_min = torch.tensor([[2.0, 0.5], [1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(S.sharpness(land, on_min), (on_min**2).sum(-1))
    points = torch.randn(7, 2, dtype=torch.float64)
    auto = torch.stack([torch.autograd.functional.hessian(lambda p: land.value(p), q) for q in points])
    torch.testing.assert_close(land.hessian_at(points), auto)
    canyon = L.Canyon(kappa=50.0)
    assert S.sharpness(canyon, torch.zeros(2)).item() == pytest.approx(50.0)


def test_heavy_ball_noise_floor_matches_simulation_and_reduces_to_sgd():
    assert N.heavy_ball_stationary_variance(0.1, 0.0, 4.0, 1.0) == pytest.approx(N.stationary_variance(0.1, 4.0, 1.0))
    h, lr, beta = 10.0, 0.05, 0.5
    noisy = N.NoisyLandscape(L.Quadratic([[h]]), std=1.0, seed=3)
    walk = run(T.chain(T.trace(momentum=beta), T.scale_by_learning_rate(lr)), noisy, x0=torch.zeros(3000, 1), steps=200)
    var = walk.params[100:, :, 0].var(dim=1).mean().item()
    assert var == pytest.approx(N.heavy_ball_stationary_variance(lr, beta, h, 1.0), rel=0.05)
    with pytest.raises(ValueError, match="lr \\* curvature"):
        N.heavy_ball_stationary_variance(0.4, 0.5, 10.0, 1.0)
