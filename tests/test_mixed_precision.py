"""Mixed-precision recipes: the loss scaler against torch's GradScaler, and what each recipe does."""

import pytest
import torch

from optbook.apps import mixed_precision as MP


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 8, generator=g)
    y = torch.arange(240) % 3
    x = centers[y] + 0.5 * torch.randn(240, 8, generator=g)
    return x[:180], y[:180], x[180:], y[180:]


def test_loss_scaler_follows_gradscaler_on_the_same_inf_pattern():
    pattern = [True, True] + [False] * 7 + [True] + [False] * 9
    ours = MP.LossScaler(init_scale=2.0**16, growth_interval=3)
    theirs = torch.amp.GradScaler("cpu", init_scale=2.0**16, growth_interval=3)
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=0.1)
    for bad in pattern:
        loss = (p * (float("inf") if bad else 1.0)).sum()
        opt.zero_grad()
        theirs.scale(loss).backward()
        theirs.step(opt)
        theirs.update()
        ours.update(bad)
        assert ours.scale_value == theirs.get_scale()
    # 2 infs halve twice, 3 clean steps double, ...
    assert MP.LossScaler().scale_value == 65536.0


def test_loss_scaler_defaults_and_trace():
    s = MP.LossScaler()
    assert (s.scale_value, s.growth_factor, s.backoff_factor, s.growth_interval) == (65536.0, 2.0, 0.5, 2000)
    s.update(True)
    s.update(True)
    assert s.scale_value == 16384.0
    for _ in range(2000):
        s.update(False)
    assert s.scale_value == 32768.0
    grads, found = s.unscale([torch.tensor([32768.0], dtype=torch.float16), torch.tensor([float("inf")])])
    assert found and grads[0].dtype == torch.float32 and grads[0].item() == 1.0


def test_loss_scaler_rejects_bad_input():
    with pytest.raises(ValueError, match="backoff_factor"):
        MP.LossScaler(backoff_factor=1.5)
    with pytest.raises(ValueError, match="growth_interval"):
        MP.LossScaler(growth_interval=0)


def test_pure_fp16_adam_with_default_eps_breaks_at_step_one(data):
    h = MP.train("fp16", data, steps=3, eps=1e-8)
    assert h.first_nonfinite == 1 and torch.isnan(h.loss[1:]).all()
    ok = MP.train("fp16 + fp32 state", data, steps=3, eps=1e-8)
    assert ok.first_nonfinite is None


def test_fp16_master_weights_track_fp32(data):
    ref = MP.train("fp32", data, steps=40, lr=1e-2)
    master = MP.train("fp16 master", data, steps=40, lr=1e-2)
    assert master.first_nonfinite is None
    assert abs(master.loss[-10:].mean() - ref.loss[-10:].mean()) < 0.05
    assert (master.lost[1:] == 0).all()  # float32 master weights keep every update


def test_pure_bf16_loses_updates_and_master_weights_do_not(data):
    bf16 = MP.train("bf16", data, steps=30, lr=1e-3)
    auto = MP.train("bf16 autocast", data, steps=30, lr=1e-3)
    assert bf16.lost.nanmean() > 0.02
    assert (auto.lost == 0).all()
    assert MP.lost_update(1.0, 1e-3, torch.bfloat16) and not MP.lost_update(1.0, 1e-3, torch.float32)


@pytest.mark.parametrize("recipe", ["fp16 master + scaling", "fp16 AMP"])
def test_emulated_scaler_matches_gradscaler_in_training(data, recipe):
    kw = dict(steps=25, growth_interval=5, init_scale=2.0**20)
    a = MP.train(recipe, data, scaler="torch", **kw)
    b = MP.train(recipe, data, scaler="emulated", **kw)
    assert torch.equal(a.scale, b.scale) and torch.equal(a.skipped, b.skipped)
    assert a.skipped.any()  # 2**20 overflows float16 somewhere, so the scale backs off
    assert torch.allclose(a.loss, b.loss, atol=1e-5)


def test_first_adam_step_in_fp16():
    g = torch.tensor([1e-4, 0.0, 1e-2])
    exact = MP.first_adam_step(g, torch.float64, eps=1e-8)
    assert torch.allclose(exact["step"], -1e-3 * g.double() / (g.double().abs() + 1e-8))
    half = MP.first_adam_step(g, torch.float16, eps=1e-8)
    assert half["inf"] == 1 and half["nan"] == 1  # m / 0 and 0 / 0, as in the content brief's table
    scaled = MP.first_adam_step(g, torch.float16, eps=1e-8, loss_scale=2.0**10)
    assert scaled["inf"] == 0 and scaled["nan"] == 1  # scaling rescues the tiny gradient, not the zero one
    assert MP.first_adam_step(g, torch.float16, loss_scale=2.0**24)["overflowed"] == 1


def test_train_rejects_bad_input(data):
    with pytest.raises(ValueError, match="recipe"):
        MP.train("fp8", data)
    with pytest.raises(ValueError, match="scaler"):
        MP.train("fp16 AMP", data, scaler="apex")


def test_first_adam_step_counts_a_square_that_overflows():
    # (S g)^2 = 1e6 > 65504: v = inf in float16, so the step collapses to 0 although g itself is representable
    r = MP.first_adam_step(torch.tensor([1e-3]), torch.float16, eps=1e-8, loss_scale=1e6)
    assert r["overflowed"] == 0 and r["zero"] == 1 and r["step"].item() == 0.0
