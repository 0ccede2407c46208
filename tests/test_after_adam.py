"""The optimizers after Adam against references nobody here wrote: torch.optim.Adafactor, torch.optim.Muon,
lion-pytorch's Lion (and the Lion paper's Algorithm 2 written out below), schedulefree.AdamWScheduleFree.

Each runs 60 steps on a small multi-tensor network. float64: equal to 1e-10 relative. float32: as close
to the reference's float64 run as the reference's own float32 run is (within a small factor)."""

import copy
import io

import pytest
import torch

from optbook.core import optim

lion_pytorch = pytest.importorskip("lion_pytorch")
schedulefree = pytest.importorskip("schedulefree")

STEPS = 60


def make_problem(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.Tanh(), torch.nn.Linear(10, 16), torch.nn.Tanh())
    net.append(torch.nn.Linear(16, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    x = torch.randn(64, 6, generator=gen)
    y = torch.randn(64, 3, generator=gen)
    return net.to(dtype), x.to(dtype), y.to(dtype)


def train(make, dtype, steps=STEPS, only=None, schedule_free=False):
    """Parameters after ``steps`` steps (in eval mode for Schedule-Free), and the optimizer."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == torch.float64 else torch.float32)
    try:
        net, x, y = make_problem(dtype)
        params = [p for p in net.parameters() if only is None or only(p)]
        opt = make(params)
        if schedule_free:
            opt.train()
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(x), y).backward()
            opt.step()
        if schedule_free:
            opt.eval()
        return [p.detach().clone() for p in net.parameters()], opt
    finally:
        torch.set_default_dtype(previous)


def rel(ours, theirs):
    return max(
        float((a.detach().double() - b.detach().double()).abs().max() / b.double().abs().max())
        for a, b in zip(ours, theirs)
    )


def matrices(p):
    return p.ndim == 2


CASES = {
    "Adafactor": (optim.Adafactor, torch.optim.Adafactor, {"lr": 0.05}, None),
    "Adafactor-wd-d": (optim.Adafactor, torch.optim.Adafactor, {"lr": 0.05, "weight_decay": 0.1, "d": 2.0}, None),
    "Adafactor-eps": (optim.Adafactor, torch.optim.Adafactor, {"lr": 0.2, "eps": (1e-4, 1e-2), "maximize": True}, None),
    "Muon": (optim.Muon, torch.optim.Muon, {"lr": 0.02}, matrices),
    "Muon-plain-adamw-rms": (
        optim.Muon,
        torch.optim.Muon,
        {"lr": 0.01, "nesterov": False, "adjust_lr_fn": "match_rms_adamw", "weight_decay": 0.0, "ns_steps": 3},
        matrices,
    ),
    "Lion": (optim.Lion, lion_pytorch.Lion, {"lr": 1e-3}, None),
    "Lion-wd": (optim.Lion, lion_pytorch.Lion, {"lr": 3e-3, "betas": (0.95, 0.98), "weight_decay": 0.5}, None),
    "Lion-decoupled": (
        optim.Lion,
        lion_pytorch.Lion,
        {"lr": 3e-3, "weight_decay": 1e-3, "decoupled_weight_decay": True},
        None,
    ),
    "ScheduleFree": (optim.AdamWScheduleFree, schedulefree.AdamWScheduleFree, {"lr": 0.02}, None),
    "ScheduleFree-warmup-wd": (
        optim.AdamWScheduleFree,
        schedulefree.AdamWScheduleFree,
        {"lr": 0.05, "warmup_steps": 10, "weight_decay": 0.01, "betas": (0.95, 0.99), "r": 1.0},
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_equals_reference_float64(case):
    ours_cls, ref_cls, kwargs, only = CASES[case]
    sf = ours_cls is optim.AdamWScheduleFree
    ours, opt = train(lambda ps: ours_cls(ps, **kwargs), torch.float64, only=only, schedule_free=sf)
    theirs, ref = train(lambda ps: ref_cls(ps, **kwargs), torch.float64, only=only, schedule_free=sf)
    assert rel(ours, theirs) < 1e-10
    for p_ours, p_ref in zip(opt.state, ref.state):  # every state tensor the reference keeps, same names
        assert opt.state[p_ours].keys() == ref.state[p_ref].keys()
        for key, value in ref.state[p_ref].items():
            torch.testing.assert_close(opt.state[p_ours][key], value, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("case", ["Adafactor", "Muon", "Lion-wd", "ScheduleFree-warmup-wd"])
def test_float32_as_close_as_the_reference(case):
    ours_cls, ref_cls, kwargs, only = CASES[case]
    sf = ours_cls is optim.AdamWScheduleFree
    exact, _ = train(lambda ps: ref_cls(ps, **kwargs), torch.float64, only=only, schedule_free=sf)
    ref32, _ = train(lambda ps: ref_cls(ps, **kwargs), torch.float32, only=only, schedule_free=sf)
    ours32, _ = train(lambda ps: ours_cls(ps, **kwargs), torch.float32, only=only, schedule_free=sf)
    assert rel(ours32, exact) <= 3 * rel(ref32, exact) + 1e-6


def lion_paper_algorithm_2(params, grads, m, lr, b1, b2, wd):
    """Chen et al. (2023), Algorithm 2, line by line: c = b1 m + (1-b1) g; theta -= lr (sign(c) + wd theta);
    m = b2 m + (1-b2) g."""
    for theta, g, mt in zip(params, grads, m):
        c = b1 * mt + (1 - b1) * g
        theta -= lr * (torch.sign(c) + wd * theta)
        mt.copy_(b2 * mt + (1 - b2) * g)


def test_lion_is_the_papers_algorithm():
    torch.manual_seed(0)
    net, x, y = make_problem(torch.float64)
    by_hand = [p.detach().clone() for p in net.parameters()]
    m = [torch.zeros_like(p) for p in by_hand]
    opt = optim.Lion(net.parameters(), lr=3e-3, betas=(0.9, 0.99), weight_decay=0.3)
    for _ in range(STEPS):
        hand_net = copy.deepcopy(net)
        with torch.no_grad():
            for p, q in zip(hand_net.parameters(), by_hand):
                p.copy_(q)
        grads = torch.autograd.grad(torch.nn.functional.mse_loss(hand_net(x), y), list(hand_net.parameters()))
        lion_paper_algorithm_2(by_hand, grads, m, 3e-3, 0.9, 0.99, 0.3)
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    assert rel(list(net.parameters()), by_hand) < 1e-10


def test_adafactor_state_is_factored():
    """A 16x10 weight keeps 16 + 10 numbers of second moment; a bias keeps its own size."""
    _, opt = train(lambda ps: optim.Adafactor(ps, lr=0.05), torch.float32, steps=2)
    shapes = {tuple(p.shape): {k: tuple(v.shape) for k, v in opt.state[p].items()} for p in opt.state}
    assert shapes[(16, 10)] == {"step": (), "row_var": (16, 1), "col_var": (1, 10)}
    assert shapes[(16,)] == {"step": (), "variance": (16,)}


def test_muon_with_adamw_equals_torch_muon_plus_adamw():
    ours, opt = train(lambda ps: optim.MuonWithAdamW(ps), torch.float64)
    net_params = {}

    def two(ps):
        mats = [p for p in ps if p.ndim == 2]
        rest = [p for p in ps if p.ndim != 2]
        net_params["opts"] = (torch.optim.Muon(mats, lr=0.02, momentum=0.95), torch.optim.AdamW(rest, lr=3e-4))
        return _Both(*net_params["opts"])

    theirs, _ = train(two, torch.float64)
    assert rel(ours, theirs) < 1e-10
    assert [g["use_muon"] for g in opt.param_groups] == [True, False]


class _Both:
    def __init__(self, *opts):
        self.opts = opts

    def zero_grad(self):
        for o in self.opts:
            o.zero_grad()

    def step(self):
        for o in self.opts:
            o.step()


def test_muon_refuses_non_matrices():
    net, _, _ = make_problem(torch.float32)
    with pytest.raises(ValueError, match="2D parameters"):
        optim.Muon(net.parameters())


def test_schedule_free_modes_and_checkpoint():
    """step() before train() raises; eval() moves to x, train() back to y; a checkpoint continues equal."""
    net, x, y = make_problem(torch.float64)
    opt = optim.AdamWScheduleFree(net.parameters(), lr=0.02, warmup_steps=3)
    torch.nn.functional.mse_loss(net(x), y).backward()
    with pytest.raises(RuntimeError, match="train mode"):
        opt.step()
    ref_net = copy.deepcopy(net)
    ref = schedulefree.AdamWScheduleFree(ref_net.parameters(), lr=0.02, warmup_steps=3, foreach=False)
    for o in (opt, ref):
        o.train()
    for step in range(30):
        for model, o in ((net, opt), (ref_net, ref)):
            o.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            o.step()
        if step == 14:  # save in eval mode, reload into a fresh optimizer, go on
            opt.eval()
            buffer = io.BytesIO()
            torch.save(opt.state_dict(), buffer)
            opt = optim.AdamWScheduleFree(net.parameters(), lr=0.02, warmup_steps=3)
            opt.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
            opt.train()
    y_point = [p.detach().clone() for p in net.parameters()]
    for o in (opt, ref):
        o.eval()
    assert rel(list(net.parameters()), list(ref_net.parameters())) < 1e-10
    x_loss = float(torch.nn.functional.mse_loss(net(x), y))
    opt.train()
    assert rel(list(net.parameters()), y_point) < 1e-12
    assert x_loss != float(torch.nn.functional.mse_loss(net(x), y))  # y and x are different models
