"""optbook's optimizers against torch's own kernels on the selected device (OPTBOOK_DEVICE, cpu by default).

torch has up to three implementations of each optimizer: the single-tensor loop, ``foreach`` (one kernel
per operation over all tensors) and ``fused`` (one kernel for the whole step). On a GPU the last two are
the defaults, so they are the reference a GPU user compares with. ``make gpu-check`` runs this module on
CUDA; ``make test`` runs it on the CPU, where torch has foreach everywhere and fused for some optimizers.
A combination torch does not implement on the device is skipped with torch's own reason.
"""

import pytest
import torch

from optbook.core import optim

KERNELS = ("single-tensor", "foreach", "fused")
CASES = [
    ("SGD", 0.1, {"momentum": 0.9, "weight_decay": 0.01}),
    ("Adagrad", 0.1, {"weight_decay": 0.01}),
    ("RMSprop", 0.01, {"momentum": 0.9, "centered": True}),
    ("Adam", 0.01, {"weight_decay": 0.01}),
    ("Adam", 0.01, {"amsgrad": True}),
    ("AdamW", 0.01, {"weight_decay": 0.1}),
    ("NAdam", 0.01, {}),
    ("RAdam", 0.01, {}),
]
STEPS = 30


def _kernel_options(kernel):
    return {"single-tensor": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[kernel]


def _train(make_optimizer, device, steps=STEPS):
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    x, y = torch.randn(64, 6, generator=gen), torch.randn(64, 3, generator=gen)
    net, x, y = net.to(device), x.to(device), y.to(device)
    opt = make_optimizer(net.parameters())
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    return [p.detach().double().cpu() for p in net.parameters()]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name,lr,opts", CASES, ids=[f"{n}-{'-'.join(o) or 'defaults'}" for n, _, o in CASES])
def test_matches_torch_kernel(name, lr, opts, kernel, device):
    reference = getattr(torch.optim, name)
    try:
        probe = torch.nn.Parameter(torch.zeros(2, device=device))
        probe.grad = torch.ones_like(probe)
        reference([probe], lr=lr, **opts, **_kernel_options(kernel)).step()
    except (RuntimeError, TypeError, ValueError) as error:
        pytest.skip(f"torch {torch.__version__} has no {kernel} {name} on {device.type}: {error}")
    theirs = _train(lambda ps: reference(ps, lr=lr, **opts, **_kernel_options(kernel)), device)
    ours = _train(lambda ps: getattr(optim, name)(ps, lr=lr, **opts), device)
    for a, b in zip(ours, theirs):
        assert torch.isfinite(a).all()
        assert float((a - b).abs().max() / b.abs().max()) < 1e-4, f"{name} vs torch's {kernel} kernel on {device}"
