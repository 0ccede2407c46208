"""Benchmarks, printed as ratios against torch measured side by side in the same process.

    python -m optbook.bench            # 10M parameters in 200 tensors, and the 64-setting sweep
    python -m optbook.bench --small    # a quick version (1M parameters) for smoke tests

Nothing here asserts a time: the numbers are for reading, and they change from machine to machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ..core import optim
from ..core import transforms as T
from ..lab import landscapes
from ..lab.run import grid, run


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, device, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _make_params(total: int, tensors: int, device):
    gen = torch.Generator().manual_seed(0)
    size = total // tensors
    params = [torch.nn.Parameter(torch.randn(size, generator=gen).to(device)) for _ in range(tensors)]
    for p in params:
        p.grad = torch.randn(size, generator=gen).to(device) * 1e-2
    return params


class _CompiledAdam:
    """optbook's Adam chain, with each tensor's update compiled by torch.compile into fused kernels."""

    def __init__(self, params, lr=1e-3):
        self.params = params
        chain = T.chain(T.scale_by_adam(), T.scale_by_learning_rate(lr))
        # the step count as a tensor, so that one compiled graph serves every step
        self.states = [{**chain.init(p.detach()), "step": torch.zeros((), device=p.device)} for p in params]
        self.update = torch.compile(chain.update, dynamic=False)

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            u, self.states[i] = self.update(p.grad, self.states[i], p.detach())
            p.add_(u)


def adam_step_times(device, total=10_000_000, tensors=200, repeats=10, try_compile=True):
    """Seconds per Adam step for optbook and for torch.optim.Adam's three implementations."""
    variants = {
        "optbook.optim.Adam": lambda ps: optim.Adam(ps, lr=1e-3),
        "torch Adam (default)": lambda ps: torch.optim.Adam(ps, lr=1e-3),
        "torch Adam (foreach)": lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True),
        "torch Adam (fused)": lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True),
    }
    if try_compile:
        variants["optbook Adam, torch.compile"] = lambda ps: _CompiledAdam(ps, lr=1e-3)
    results = {}
    for name, make in variants.items():
        params = _make_params(total, tensors, device)
        try:
            opt = make(params)
            results[name] = _median_time(opt.step, device, repeats)
        except Exception as err:  # a backend that is not available here is reported, not fatal
            results[name] = f"unavailable ({type(err).__name__}: {str(err).splitlines()[0][:80]})"
        del params
    return results


def sweep_times(device, settings=64, steps=200):
    """A 64-setting (lr x beta2) sweep of Adam on the 2-D canyon: one batched call against 64 calls."""
    canyon = landscapes.Canyon(kappa=100.0)
    side = int(settings**0.5)
    lrs = torch.logspace(-3, 0, side).tolist()
    b2s = (1 - torch.logspace(-3, -0.5, settings // side)).tolist()
    hyper = grid(lr=lrs, b2=b2s, device=device)

    def batched():
        return run(
            T.chain(T.scale_by_adam(b2=hyper["b2"]), T.scale_by_learning_rate(hyper["lr"])),
            canyon,
            steps=steps,
            device=device,
        )

    def looped():
        return [
            run(T.chain(T.scale_by_adam(b2=b2), T.scale_by_learning_rate(lr)), canyon, steps=steps, device=device)
            for lr in lrs
            for b2 in b2s
        ]

    return {
        "batched (1 call)": _median_time(batched, device, 3, 1),
        f"loop ({len(lrs) * len(b2s)} calls)": _median_time(looped, device, 3, 1),
    }


def _report(title, results, reference):
    print(f"\n{title}")
    ref = results[reference]
    for name, seconds in results.items():
        if isinstance(seconds, str):
            print(f"  {name:<32} {seconds}")
        else:
            print(f"  {name:<32} {seconds * 1e3:9.2f} ms   {seconds / ref:5.2f}x {reference}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="1M parameters, fewer repeats")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = parser.parse_args(argv)
    total, repeats = (1_000_000, 5) if args.small else (10_000_000, 10)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for device in devices:
        step = adam_step_times(device, total=total, repeats=repeats, try_compile=not args.no_compile)
        _report(
            f"Adam step, {total / 1e6:g}M float32 parameters in 200 tensors, on {device}", step, "torch Adam (default)"
        )
        sweep = sweep_times(device)
        _report(f"64-setting Adam sweep on the canyon, 200 steps, on {device}", sweep, "batched (1 call)")


if __name__ == "__main__":
    main()
