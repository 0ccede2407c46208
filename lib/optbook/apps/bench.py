"""Benchmarks, printed as ratios against torch measured side by side in the same process.

    python -m optbook.apps.bench            # 10M parameters in 200 tensors, and the 64-setting sweep
    python -m optbook.apps.bench --small    # a quick version (1M parameters)

The Adam table puts optbook's per-tensor chain, its flat-buffer fast path (eager and compiled) and
torch.optim.Adam's three implementations side by side, as ratios to torch's fused kernel and to the
memory-bandwidth floor (a measured STREAM triad bandwidth times the bytes Adam must move).

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


ADAM_BYTES_PER_PARAM = 28  # float32: read param, grad, exp_avg, exp_avg_sq (16 B), write param and both (12 B)


def triad_bandwidth(device, n=20_000_000, repeats=7) -> float:
    """Bytes per second of the STREAM triad ``a = b + s*c`` on ``n`` float32 numbers, on all threads.

    Counted: 16 bytes per element: read b and c, write a, and the read that a CPU cache makes of a line
    before it writes it (STREAM itself counts 12 and so reports 3/4 of the traffic; Adam's writes all go
    to arrays it has just read, so its 28 bytes have no such hidden read). Best of ``repeats`` runs
    (STREAM's convention; on a shared machine the best run is the least disturbed).
    """
    b = torch.rand(n, device=device)
    c = torch.rand(n, device=device)
    a = torch.zeros_like(b)
    for _ in range(2):
        torch.add(b, c, alpha=3.0, out=a)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        torch.add(b, c, alpha=3.0, out=a)
        _sync(device)
        times.append(time.perf_counter() - start)
    return 16 * n / min(times)  # STREAM reports the best time


def _variants(try_compile: bool):
    variants = {
        "optbook.optim.Adam": lambda ps: optim.Adam(ps, lr=1e-3),
        "optbook Adam, fast='eager'": lambda ps: optim.Adam(ps, lr=1e-3, fast="eager"),
        "torch Adam (default)": lambda ps: torch.optim.Adam(ps, lr=1e-3),
        "torch Adam (foreach)": lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True),
        "torch Adam (fused)": lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True),
    }
    if try_compile:
        variants["optbook Adam, fast=True"] = lambda ps: optim.Adam(ps, lr=1e-3, fast=True)
    return variants


def adam_step_times(device, total=10_000_000, tensors=200, repeats=10, try_compile=True, warmups=None):
    """Median seconds per Adam step for optbook (per tensor, flat, flat compiled) and torch.optim's three.

    Every variant gets its own copy of the same parameters and gradients. After a warm-up (the first two
    steps: the state is made, and the fast path is compiled), the variants take turns, one step each per
    round, so that a slow moment of a shared machine hits them all alike. The warm-up seconds of each
    variant (steps 1 and 2, where ``torch.compile`` does its work) go into ``warmups`` if a dict is given.
    """
    results, runners = {}, {}
    for name, make in _variants(try_compile).items():
        params = _make_params(total, tensors, device)
        try:
            opt = make(params)
            start = time.perf_counter()
            for _ in range(2):
                opt.step()
            _sync(device)
            if warmups is not None:
                warmups[name] = time.perf_counter() - start
            runners[name] = (opt, params)
        except Exception as err:  # a backend that is not available here is reported, not fatal
            results[name] = f"unavailable ({type(err).__name__}: {str(err).splitlines()[0][:80]})"
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, (opt, _) in runners.items():
            _sync(device)
            start = time.perf_counter()
            opt.step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    for name in _variants(try_compile):
        if name in times:
            results[name] = statistics.median(times[name])
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


def _report(title, results, reference, floor=None):
    print(f"\n{title}")
    ref = results.get(reference)
    head = f"  {'':<30} {'ms/step':>9} {'x ' + reference:>22}" + (f" {'x floor':>8}" if floor else "")
    print(head)
    for name, seconds in results.items():
        if isinstance(seconds, str):
            print(f"  {name:<30} {seconds}")
            continue
        ratio = f"{seconds / ref:22.2f}" if isinstance(ref, float) else f"{'-':>22}"
        print(f"  {name:<30} {seconds * 1e3:9.2f} {ratio}" + (f" {seconds / floor:8.2f}" if floor else ""))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="1M parameters, fewer repeats")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 15; --small 5)")
    args = parser.parse_args(argv)
    total, repeats = (1_000_000, 5) if args.small else (10_000_000, 15)
    repeats = args.repeats or repeats
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, medians of {repeats} interleaved rounds")
    for device in devices:
        before = triad_bandwidth(device)
        warmups = {}
        step = adam_step_times(device, total=total, repeats=repeats, try_compile=not args.no_compile, warmups=warmups)
        after = triad_bandwidth(device)
        bandwidth = max(before, after)  # a shared machine: the less disturbed of the two measurements
        floor = ADAM_BYTES_PER_PARAM * total / bandwidth
        print(
            f"\n{device}: triad bandwidth {bandwidth / 1e9:.1f} GB/s (16 B per element, write-allocate "
            f"counted; best of "
            f"{before / 1e9:.1f} before and {after / 1e9:.1f} after the Adam rounds); Adam moves "
            f"{ADAM_BYTES_PER_PARAM} B per float32 parameter (read p, g, m, v; write p, m, v), so the floor "
            f"for {total / 1e6:g}M parameters is {floor * 1e3:.2f} ms"
        )
        _report(
            f"Adam step, {total / 1e6:g}M float32 parameters in 200 tensors, on {device}",
            step,
            "torch Adam (fused)",
            floor,
        )
        print("  warm-up, steps 1-2 (state made; torch.compile for fast=True), not in the medians:")
        print("  " + ", ".join(f"{name} {sec:.2f} s" for name, sec in warmups.items()))
        sweep = sweep_times(device)
        _report(f"64-setting Adam sweep on the canyon, 200 steps, on {device}", sweep, "batched (1 call)")


if __name__ == "__main__":
    main()
