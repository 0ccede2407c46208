"""The fast path (``fast="eager"``: one flat buffer per group; ``fast=True``: the same, compiled) equals the
per-tensor path: parameters and every state tensor, with schedulers, both kinds of zero_grad, checkpoints."""

import io

import pytest
import torch

from optbook.core import optim

CASES = [
    ("Adam", {}),
    ("Adam", {"amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    ("AdamW", {"betas": (0.8, 0.99)}),
    ("NAdam", {"decoupled_weight_decay": True, "weight_decay": 0.1}),
    ("RAdam", {}),
    ("RMSprop", {"momentum": 0.9, "centered": True}),
    ("Adagrad", {"lr_decay": 0.01}),
    ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("Lion", {"weight_decay": 0.1}),
]


def make_problem(dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype) * 0.5)
    return net, torch.randn(32, 5, generator=gen, dtype=dtype), torch.randn(32, 3, generator=gen, dtype=dtype)


def train(name, opts, fast, steps=30, reload_at=None, cls=None):
    net, x, y = make_problem()
    opt = (cls or getattr(optim, name))(net.parameters(), lr=0.01, fast=fast, **opts)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)
    for i in range(steps):
        opt.zero_grad(set_to_none=i % 3 == 0)  # both: gradients copied in, and accumulated in place
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        sched.step()
        if i == reload_at:
            buffer = io.BytesIO()
            torch.save(opt.state_dict(), buffer)
            opt = getattr(optim, name)(net.parameters(), lr=0.01, fast=fast, **opts)
            opt.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5, last_epoch=i)
    return [p.detach().clone() for p in net.parameters()], opt, net


@pytest.mark.parametrize("name,opts", CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_flat_path_equals_per_tensor_path(name, opts):
    plain, opt_plain, _ = train(name, opts, fast=False)
    flat, opt_flat, net = train(name, opts, fast="eager")
    assert opt_flat._flat, "the flat path was not taken"
    for a, b in zip(flat, plain):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)
    for p, q in zip(opt_flat.state, opt_plain.state):
        assert opt_flat.state[p].keys() == opt_plain.state[q].keys()
        for key, value in opt_plain.state[q].items():
            if value is not None:
                torch.testing.assert_close(opt_flat.state[p][key], value, rtol=1e-10, atol=0)


def test_parameters_live_in_one_buffer():
    _, opt, net = train("Adam", {}, fast="eager", steps=3)
    (bucket,) = opt._flat.values()
    start = bucket.flat_param.data_ptr()
    item = bucket.flat_param.element_size()
    offsets = [0, 40, 48, 72]  # Linear(5, 8) and Linear(8, 3): 40 + 8 + 24 + 3 numbers
    assert [(p.data_ptr() - start) // item for p in net.parameters()] == offsets
    assert all(p.grad.data_ptr() - bucket.flat_grad.data_ptr() == o * item for p, o in zip(net.parameters(), offsets))


def test_checkpoint_mid_run_and_into_torch():
    """A fast optimizer's checkpoint reloads (into optbook or into torch.optim) and training continues equal."""
    plain, _, _ = train("Adam", {}, fast=False)
    reloaded, _, _ = train("Adam", {}, fast="eager", reload_at=12)
    for a, b in zip(reloaded, plain):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)
    _, opt, net = train("Adam", {}, fast="eager", steps=5)
    theirs = torch.optim.Adam(net.parameters(), lr=0.01)
    theirs.load_state_dict(opt.state_dict())
    assert all(torch.equal(theirs.state[p]["exp_avg"], opt.state[p]["exp_avg"]) for p in net.parameters())


def test_refused_where_not_elementwise():
    net, _, _ = make_problem()
    for cls in (optim.Adafactor, optim.AdamWScheduleFree):
        with pytest.raises(ValueError, match="fast"):
            cls(net.parameters(), fast=True)
    with pytest.raises(ValueError, match="fast must be"):
        optim.Adam(net.parameters(), fast="yes")
    with pytest.raises(ValueError, match="state_dtype"):
        optim.Adam(net.parameters(), fast=True, state_dtype=torch.float32)


@pytest.mark.slow
def test_compiled_flat_path_smoke():
    """torch.compile over the flat chain (slow: the compile takes seconds): close to the per-tensor path."""
    plain, opt_plain, _ = train("Adam", {}, fast=False, steps=10)
    compiled, opt, _ = train("Adam", {}, fast=True, steps=10)
    assert opt._flat, "the flat path was not taken"
    for a, b in zip(compiled, plain):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for p, q in zip(opt.state, opt_plain.state):  # the step counts too (a 0-dim state tensor)
        for key, value in opt_plain.state[q].items():
            torch.testing.assert_close(opt.state[p][key], value, rtol=1e-9, atol=1e-12)
