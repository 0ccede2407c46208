"""optbook.optim against torch.optim, the oracle: same network, same data, step by step."""

import copy
import io

import pytest
import torch

from optbook.core import optim

# (class name, learning rate, options): every option that changes the arithmetic, alone and combined.
CASES = [
    ("SGD", 0.1, {}),
    ("SGD", 0.1, {"momentum": 0.9}),
    ("SGD", 0.1, {"momentum": 0.9, "dampening": 0.5}),
    ("SGD", 0.1, {"momentum": 0.9, "nesterov": True}),
    ("SGD", 0.1, {"momentum": 0.8, "weight_decay": 0.1, "nesterov": True, "maximize": True}),
    ("SGD", 0.1, {"weight_decay": 0.1}),
    ("Adagrad", 0.1, {}),
    ("Adagrad", 0.1, {"lr_decay": 0.01, "initial_accumulator_value": 0.1}),
    ("Adagrad", 0.1, {"weight_decay": 0.1, "eps": 1e-3, "maximize": True}),
    ("RMSprop", 0.01, {}),
    ("RMSprop", 0.01, {"centered": True}),
    ("RMSprop", 0.01, {"momentum": 0.9}),
    ("RMSprop", 0.01, {"centered": True, "momentum": 0.9, "weight_decay": 0.1, "alpha": 0.9}),
    ("RMSprop", 0.01, {"eps": 1e-3, "maximize": True}),
    ("Adam", 0.01, {}),
    ("Adam", 0.01, {"amsgrad": True}),
    ("Adam", 0.01, {"weight_decay": 0.1}),
    ("Adam", 0.01, {"weight_decay": 0.1, "decoupled_weight_decay": True, "amsgrad": True}),
    ("Adam", 0.01, {"betas": (0.5, 0.9), "eps": 1e-3, "maximize": True}),
    ("AdamW", 0.01, {}),
    ("AdamW", 0.01, {"weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", 0.01, {"maximize": True, "betas": (0.8, 0.99)}),
    ("NAdam", 0.01, {}),
    ("NAdam", 0.01, {"weight_decay": 0.1, "momentum_decay": 0.01}),
    ("NAdam", 0.01, {"weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("RAdam", 0.01, {}),
    ("RAdam", 0.01, {"betas": (0.9, 0.99), "weight_decay": 0.1}),
    ("RAdam", 0.01, {"weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True, "eps": 1e-3}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in opts.items()) or 'defaults'}" for name, _, opts in CASES]
STEPS = 60


def make_problem(dtype, seed=0):
    """A small multi-tensor network (two layers, weights and biases) and a fixed regression task."""
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    net = net.to(dtype)
    x = torch.randn(32, 5, generator=gen).to(dtype)
    y = torch.randn(32, 3, generator=gen).to(dtype)
    return net, x, y


def train(opt_class, lr, opts, dtype, steps=STEPS, scheduler=None, reload_at=None, seed=0, **extra):
    """Train with a closure; return the parameters after every step (and the optimizer).

    With ``maximize`` the closure returns the negated loss, so that both runs descend the same valley.
    In float64 torch keeps its scalar state (NAdam's mu_product) in the default dtype, so we make that
    float64 too: otherwise torch's own rounding to float32 is what the comparison would measure.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == torch.float64 else torch.float32)
    try:
        return _train(opt_class, lr, opts, dtype, steps, scheduler, reload_at, seed, **extra)
    finally:
        torch.set_default_dtype(previous)


def _train(opt_class, lr, opts, dtype, steps, scheduler, reload_at, seed, **extra):
    sign = -1.0 if opts.get("maximize") else 1.0
    net, x, y = make_problem(dtype, seed)
    opt = opt_class(net.parameters(), lr=lr, **opts, **extra)
    sched = scheduler(opt) if scheduler else None
    history = []
    for step in range(steps):
        if step == reload_at:  # save mid-run through bytes, continue with a brand-new optimizer
            buffer = io.BytesIO()
            torch.save({"opt": opt.state_dict(), "sched": sched.state_dict() if sched else None}, buffer)
            buffer.seek(0)
            saved = torch.load(buffer, weights_only=False)
            opt = opt_class(net.parameters(), lr=lr, **opts, **extra)
            sched = scheduler(opt) if sched else None  # build first: a new scheduler rewrites the lr
            opt.load_state_dict(saved["opt"])
            if sched:
                sched.load_state_dict(saved["sched"])

        def closure(opt=opt):
            opt.zero_grad()
            loss = sign * torch.nn.functional.mse_loss(net(x), y)
            loss.backward()
            return loss

        loss = opt.step(closure)
        assert torch.isfinite(loss)
        if sched:
            sched.step()
        history.append([p.detach().clone() for p in net.parameters()])
    return history, opt


def max_relative_error(ours, theirs):
    worst = 0.0
    for step_ours, step_theirs in zip(ours, theirs):
        for a, b in zip(step_ours, step_theirs):
            a, b = a.double(), b.double()
            worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)))
    return worst


@pytest.mark.parametrize("name,lr,opts", CASES, ids=IDS)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)], ids=["float64", "float32"])
def test_equals_torch(name, lr, opts, dtype, tol):
    ours, _ = train(getattr(optim, name), lr, opts, dtype)
    theirs, _ = train(getattr(torch.optim, name), lr, opts, dtype)
    assert max_relative_error(ours, theirs) < tol


def _step_lr(opt):
    return torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)


def _warmup_cosine(opt):
    warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=10)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50)
    return torch.optim.lr_scheduler.SequentialLR(opt, [warmup, cosine], milestones=[10])


@pytest.mark.parametrize("name,lr,opts", CASES, ids=IDS)
@pytest.mark.parametrize("scheduler", [None, _step_lr, _warmup_cosine], ids=["constant", "steplr", "warmup-cosine"])
def test_scheduler_and_reload_mid_run(name, lr, opts, scheduler):
    ours, _ = train(getattr(optim, name), lr, opts, torch.float64, scheduler=scheduler, reload_at=25)
    theirs, _ = train(getattr(torch.optim, name), lr, opts, torch.float64, scheduler=scheduler)
    assert max_relative_error(ours, theirs) < 1e-10


DEFAULT_CASES = [(case, case_id) for case, case_id in zip(CASES, IDS) if not case[2]]


@pytest.mark.parametrize("name,lr,opts", [c for c, _ in DEFAULT_CASES], ids=[i for _, i in DEFAULT_CASES])
@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-2), (torch.bfloat16, 1e-1)], ids=["float16", "bfloat16"])
def test_low_precision_close_to_torch(name, lr, opts, dtype, tol):
    """Pure float16 / bfloat16 parameters and state: both libraries round, so agreement is approximate."""
    opts = {**opts, "eps": 1e-3} if "Adagrad" != name and "SGD" != name else opts
    ours, _ = train(getattr(optim, name), lr, opts, dtype, steps=20)
    theirs, _ = train(getattr(torch.optim, name), lr, opts, dtype, steps=20)
    assert all(torch.isfinite(p).all() for p in ours[-1])
    assert max_relative_error(ours, theirs) < tol


def test_wider_state_dtype_survives_reload():
    """float16 parameters with float32 moments: the state stays float32 across a state_dict round trip."""
    history, opt = train(optim.Adam, 0.01, {}, torch.float16, steps=30, reload_at=15, state_dtype=torch.float32)
    for state in opt.state.values():
        assert state["exp_avg"].dtype == torch.float32 and state["exp_avg_sq"].dtype == torch.float32
    reference, _ = train(torch.optim.Adam, 0.01, {}, torch.float32, steps=30)
    pure_fp16, _ = train(optim.Adam, 0.01, {}, torch.float16, steps=30)
    wide = max_relative_error(history[-1:], reference[-1:])
    narrow = max_relative_error(pure_fp16[-1:], reference[-1:])
    assert wide < 1e-2 and wide <= narrow


def test_defaults_match_torch():
    net, _, _ = make_problem(torch.float64)
    for name in [n for n in optim.__all__ if hasattr(torch.optim, n)]:
        params = [p for p in net.parameters() if p.ndim == 2] if name == "Muon" else net.parameters()
        ours = getattr(optim, name)(params).defaults
        params = [p for p in net.parameters() if p.ndim == 2] if name == "Muon" else net.parameters()
        theirs = getattr(torch.optim, name)(params).defaults
        shared = {k: v for k, v in theirs.items() if k not in ("foreach", "fused", "capturable", "differentiable")}
        assert {k: ours[k] for k in shared} == shared, name


def test_state_uses_torch_names():
    history, opt = train(optim.Adam, 0.01, {"amsgrad": True}, torch.float64, steps=3)
    state = next(iter(opt.state.values()))
    assert {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"} <= state.keys() and state["step"] == 3


def test_param_groups_with_their_own_hyperparameters():
    net, x, y = make_problem(torch.float64)
    net2 = copy.deepcopy(net)
    groups = lambda n: [{"params": n[0].parameters(), "lr": 0.05}, {"params": n[2].parameters()}]
    ours = optim.Adam(groups(net), lr=0.01, weight_decay=0.1)
    theirs = torch.optim.Adam(groups(net2), lr=0.01, weight_decay=0.1)
    for _ in range(10):
        for model, opt in ((net, ours), (net2, theirs)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    for a, b in zip(net.parameters(), net2.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)
