"""Gradient streams and feeding them through transforms, against closed forms and hand-written loops."""

import math

import pytest
import torch

from optbook.core import transforms as T
from optbook.lab import streams as S
from optbook.lab.run import grid


def test_noisy_gradients_is_seeded_and_has_the_requested_moments():
    a = S.noisy_gradients(20000, mean=2.0, std=3.0, seed=7)
    b = S.noisy_gradients(20000, mean=2.0, std=3.0, seed=7)
    c = S.noisy_gradients(20000, mean=2.0, std=3.0, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (20000,) and a.dtype == torch.float64
    assert abs(a.mean().item() - 2.0) < 4 * 3.0 / math.sqrt(20000)
    assert abs(a.std().item() - 3.0) < 0.05


def test_noisy_gradients_equals_mean_plus_scaled_generator_noise():
    g = S.noisy_gradients(50, mean=0.5, std=2.0, shape=(3,), change_at=11, new_mean=-4.0, seed=3)
    xi = torch.randn((50, 3), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mu = torch.tensor([0.5] * 10 + [-4.0] * 40, dtype=torch.float64)[:, None]
    torch.testing.assert_close(g, mu + 2.0 * xi, rtol=0, atol=0)


def test_noiseless_stream_with_a_jump():
    g = S.noisy_gradients(6, mean=1.0, std=0.0, change_at=4, new_mean=-2.0)
    assert g.tolist() == [1.0, 1.0, 1.0, -2.0, -2.0, -2.0]


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": 10, "std": -1.0}, "std"),
        ({"steps": 10, "change_at": 3}, "change_at"),
        ({"steps": 10, "change_at": 11, "new_mean": 0.0}, "change_at"),
        ({"steps": 10, "change_at": 0, "new_mean": 0.0}, "change_at"),
    ],
)
def test_noisy_gradients_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        S.noisy_gradients(**kwargs)


def test_feed_impulse_response_of_rmsprop_is_geometric():
    beta = 0.9
    spike = torch.zeros(30, dtype=torch.float64)
    spike[0] = 1.0
    out = S.feed(T.scale_by_rms(alpha=beta, eps=0.0), spike[:, None])
    t = torch.arange(1, 31, dtype=torch.float64)
    torch.testing.assert_close(out["square_avg"][:, 0], (1 - beta) * beta ** (t - 1), rtol=1e-12, atol=0)


def test_feed_adam_matches_a_hand_written_loop_over_a_grid():
    g = S.noisy_gradients(40, mean=0.3, std=1.0, shape=(2,), seed=1)
    b1 = grid(b1=[0.5, 0.9])["b1"]  # shape (2, 1): two settings, each on both coordinates
    out = S.feed(T.scale_by_adam(b1=b1, b2=0.99, eps=1e-8), g)
    assert out["exp_avg"].shape == (40, 2, 2) and out["updates"].shape == (40, 2, 2)
    assert out["exp_avg_sq"].shape == (40, 2)  # beta2 is a plain number: v does not grow the grid axis
    for k, beta1 in enumerate([0.5, 0.9]):
        m = torch.zeros(2, dtype=torch.float64)
        v = torch.zeros(2, dtype=torch.float64)
        for t in range(1, 41):
            m = beta1 * m + (1 - beta1) * g[t - 1]
            v = 0.99 * v + 0.01 * g[t - 1] ** 2
            u = (m / (1 - beta1**t)) / ((v / (1 - 0.99**t)).sqrt() + 1e-8)
            torch.testing.assert_close(out["exp_avg"][t - 1, k], m, rtol=1e-12, atol=1e-15)
            torch.testing.assert_close(out["exp_avg_sq"][t - 1], v, rtol=1e-12, atol=1e-15)
            torch.testing.assert_close(out["updates"][t - 1, k], u, rtol=1e-10, atol=1e-14)


def test_feed_keys_and_bad_input():
    out = S.feed(T.scale_by_rss(), torch.ones(4, 1, dtype=torch.float64), keys=["sum"])
    assert set(out) == {"updates", "sum"}
    assert out["sum"][:, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="grads"):
        S.feed(T.scale_by_rss(), torch.tensor(1.0))
    with pytest.raises(ValueError, match="param"):
        S.feed(T.scale_by_rss(), torch.ones(4, 2, dtype=torch.float64), param=torch.zeros(3, dtype=torch.float64))
