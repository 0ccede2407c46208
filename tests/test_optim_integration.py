"""optbook's classes inside torch's training machinery, each against torch.optim doing the same:
schedulers that edit lr and betas, GradScaler skipping an inf step, gradient clipping, hooks, a param group
added mid-run, ZeroRedundancyOptimizer, checkpoints both ways, complex parameters, sparse embeddings."""

import copy
import io
import os
import socket

import pytest
import torch

from optbook.core import optim

SHARED = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "NAdam", "RAdam"]


def make_net(seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype) * 0.5)
    x = torch.randn(32, 5, generator=gen, dtype=dtype)
    y = torch.randn(32, 3, generator=gen, dtype=dtype)
    return net, x, y


def loss_of(net, x, y):
    return torch.nn.functional.mse_loss(net(x), y)


def both(loop, name="Adam", steps=30, **kwargs):
    """Run ``loop(net, opt, x, y, steps)`` with optbook's and torch's class; return both parameter lists."""
    out = []
    for module in (optim, torch.optim):
        net, x, y = make_net()
        opt = getattr(module, name)(net.parameters(), **kwargs)
        loop(net, opt, x, y, steps)
        out.append([p.detach().clone() for p in net.parameters()])
    return out


def assert_same(ours, theirs, rtol=1e-10):
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=rtol, atol=1e-13)


def plain_loop(make_sched=None, sched_arg=False):
    def loop(net, opt, x, y, steps):
        sched = make_sched(opt) if make_sched else None
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_of(net, x, y)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step(loss.item()) if sched_arg else sched.step()

    return loop


def test_one_cycle_with_cycle_momentum_edits_betas():
    make = lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=30, cycle_momentum=True)  # noqa: E731
    ours, theirs = both(plain_loop(make), "Adam", lr=0.01)
    assert_same(ours, theirs)
    ours, theirs = both(plain_loop(make), "SGD", lr=0.01, momentum=0.9)
    assert_same(ours, theirs)


def test_cyclic_lr_reduce_on_plateau_sequential():
    cyclic = lambda opt: torch.optim.lr_scheduler.CyclicLR(opt, 0.001, 0.05, step_size_up=5)  # noqa: E731
    assert_same(*both(plain_loop(cyclic), "SGD", lr=0.01, momentum=0.9))
    plateau = lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0.05)  # noqa: E731
    assert_same(*both(plain_loop(plateau, sched_arg=True), "RMSprop", lr=0.01))

    def sequential(opt):
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5)
        decay = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
        return torch.optim.lr_scheduler.SequentialLR(opt, [warm, decay], milestones=[5])

    assert_same(*both(plain_loop(sequential), "NAdam", lr=0.02))


def test_swalr_and_averaged_model():
    def loop(net, opt, x, y, steps):
        swa = torch.optim.swa_utils.AveragedModel(net)
        sched = torch.optim.swa_utils.SWALR(opt, swa_lr=0.005, anneal_epochs=5)
        for _ in range(steps):
            opt.zero_grad()
            loss_of(net, x, y).backward()
            opt.step()
            swa.update_parameters(net)
            sched.step()
        with torch.no_grad():
            for p, q in zip(net.parameters(), swa.module.parameters()):
                p.copy_(q)

    assert_same(*both(loop, "Adam", lr=0.02))


def test_grad_scaler_skips_the_inf_step():
    def loop(net, opt, x, y, steps):
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
        for step in range(steps):
            opt.zero_grad()
            scaler.scale(loss_of(net, x, y)).backward()
            if step == 3:
                next(net.parameters()).grad[0, 0] = float("inf")
            scaler.step(opt)
            scaler.update()
        loop.scale = scaler.get_scale()

    ours, theirs = both(loop, "Adam", steps=10, lr=0.01)
    assert_same(ours, theirs)
    assert loop.scale == 2.0**7  # the inf step was seen (scale halved) and skipped by both


def test_clip_grad_norm():
    def loop(net, opt, x, y, steps):
        for _ in range(steps):
            opt.zero_grad()
            (100 * loss_of(net, x, y)).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=0.5)
            opt.step()

    assert_same(*both(loop, "AdamW", lr=0.01))
    assert_same(*both(loop, "SGD", lr=0.05, momentum=0.9))


def test_step_and_state_dict_hooks_run():
    net, x, y = make_net()
    opt = optim.Adam(net.parameters(), lr=0.01)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    opt.register_state_dict_pre_hook(lambda o: calls.append("save"))
    opt.register_load_state_dict_post_hook(lambda o: calls.append("load"))
    loss_of(net, x, y).backward()
    opt.step()
    opt.load_state_dict(opt.state_dict())
    assert calls == ["pre", "post", "save", "load"]


def test_add_param_group_mid_run():
    def loop(net, opt, x, y, steps):
        first, second = list(net[0].parameters()), list(net[2].parameters())
        opt.param_groups[0]["params"] = first
        opt.state.clear()
        for step in range(steps):
            if step == 10:
                opt.add_param_group({"params": second, "lr": 0.05})
            opt.zero_grad()
            loss_of(net, x, y).backward()
            opt.step()

    for name in ("Adam", "Adagrad", "RMSprop"):
        assert_same(*both(loop, name, lr=0.01))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_zero_redundancy_optimizer_with_an_optbook_class():
    """ZeroRedundancyOptimizer (gloo, world size 1) builds and steps optbook's Adam like torch's."""
    dist = pytest.importorskip("torch.distributed")
    from torch.distributed.optim import ZeroRedundancyOptimizer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        out = []
        for cls in (optim.Adam, torch.optim.Adam):
            net, x, y = make_net()
            opt = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=cls, lr=0.01, weight_decay=0.1)
            plain_loop()(net, opt, x, y, 15)
            opt.consolidate_state_dict(to=0)
            state = opt.state_dict()
            out.append([p.detach().clone() for p in net.parameters()])
        assert_same(*out)
        assert isinstance(opt.optim, torch.optim.Adam) and state["state"]
    finally:
        dist.destroy_process_group()


def _save(opt):
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    return torch.load(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("name", SHARED)
@pytest.mark.parametrize("direction", ["optbook-to-torch", "torch-to-optbook"])
def test_checkpoints_both_ways_training_continues_equal(name, direction):
    kwargs = {"lr": 0.01, "weight_decay": 0.1}
    kwargs.update(
        {"SGD": {"momentum": 0.9}, "Adagrad": {"lr_decay": 0.01}, "RMSprop": {"centered": True}}.get(name, {})
    )
    first, second = (optim, torch.optim) if direction == "optbook-to-torch" else (torch.optim, optim)
    torch.set_default_dtype(torch.float64)
    try:
        net, x, y = make_net()
        reference = copy.deepcopy(net)
        ref = getattr(torch.optim, name)(reference.parameters(), **kwargs)
        plain_loop()(reference, ref, x, y, 30)
        opt = getattr(first, name)(net.parameters(), **kwargs)
        plain_loop()(net, opt, x, y, 15)
        resumed = getattr(second, name)(net.parameters(), **kwargs)
        resumed.load_state_dict(_save(opt))
        plain_loop()(net, resumed, x, y, 15)
    finally:
        torch.set_default_dtype(torch.float32)
    assert_same(list(net.parameters()), list(reference.parameters()))


@pytest.mark.parametrize("name", SHARED)
def test_complex_parameters_as_torch(name):
    kwargs = {"lr": 0.01, "weight_decay": 0.1, **({"momentum": 0.9} if name in ("SGD", "RMSprop") else {})}
    out = []
    for module in (optim, torch.optim):
        gen = torch.Generator().manual_seed(0)
        p = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.complex128, generator=gen))
        target = torch.randn(4, 3, dtype=torch.complex128, generator=gen)
        opt = getattr(module, name)([p], **kwargs)
        for _ in range(20):
            opt.zero_grad()
            (p - target).abs().pow(2).sum().backward()
            opt.step()
        out.append((p.detach().clone(), opt.state[p]))
    (ours, ours_state), (theirs, their_state) = out
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-13)
    for key, value in their_state.items():
        torch.testing.assert_close(ours_state[key], value, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("SGD", {"lr": 0.01}),
        ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
        ("Adagrad", {"lr": 0.1}),
        ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
    ],
)
def test_sparse_embeddings_as_torch(name, kwargs):
    out = []
    for module in (optim, torch.optim):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(50, 4, sparse=True, dtype=torch.float64)
        opt = getattr(module, name)(emb.parameters(), **kwargs)
        gen = torch.Generator().manual_seed(1)
        for _ in range(20):
            words = torch.randint(0, 50, (16,), generator=gen)  # repeated words: coalescing matters
            opt.zero_grad()
            emb(words).sum(dim=1).pow(2).mean().backward()
            opt.step()
        out.append((emb.weight.detach().clone(), opt.state[emb.weight]))
    (ours, ours_state), (theirs, their_state) = out
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-13)
    for key, value in their_state.items():
        value = value.to_dense() if value.is_sparse else value
        mine = ours_state[key].to_dense() if ours_state[key].is_sparse else ours_state[key]
        torch.testing.assert_close(mine, value, rtol=1e-10, atol=1e-13)


def test_sparse_refused_where_torch_refuses():
    emb = torch.nn.Embedding(5, 2, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        optim.Adam(emb.parameters()).step()
    with pytest.raises(RuntimeError, match="weight_decay"):
        optim.Adagrad(emb.parameters(), weight_decay=0.1).step()


def test_tensor_hyperparameters_follow_torch():
    net, x, y = make_net()
    with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
        optim.Adam(net.parameters(), lr=torch.tensor([0.1, 0.2]))
    betas = (torch.tensor([[[0.9]]], dtype=torch.float64), torch.tensor([[0.99]], dtype=torch.float64))
    ours, theirs = both(plain_loop(), "Adam", lr=torch.tensor(0.01, dtype=torch.float64), betas=betas)
    assert_same(ours, theirs)  # 1-element tensors of extra dimensions are scalars, as in torch
