"""The benchmark runs and reports every variant (its numbers are for reading; no timing is asserted)."""

import torch

from optbook.apps import bench


def test_adam_step_times_reports_every_variant():
    warmups = {}
    results = bench.adam_step_times(
        torch.device("cpu"), total=20_000, tensors=20, repeats=2, try_compile=False, warmups=warmups
    )
    expected = {
        "optbook.optim.Adam",
        "optbook Adam, fast='eager'",
        "torch Adam (default)",
        "torch Adam (foreach)",
        "torch Adam (fused)",
    }
    assert set(results) == expected and set(warmups) <= expected
    assert all(isinstance(v, (float, str)) for v in results.values())
    assert isinstance(results["optbook.optim.Adam"], float) and results["optbook.optim.Adam"] > 0


def test_variants_take_the_same_steps():
    """After the benchmark's steps every variant holds the same parameters (the same work was timed)."""
    runs = {}
    for name, make in bench._variants(try_compile=False).items():
        params = bench._make_params(2_000, 4, torch.device("cpu"))
        opt = make(params)
        for _ in range(3):
            opt.step()
        runs[name] = params
    reference = runs.pop("torch Adam (default)")
    for params in runs.values():
        for p, q in zip(params, reference):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_triad_bandwidth_is_positive():
    assert bench.triad_bandwidth(torch.device("cpu"), n=10_000, repeats=2) > 0


def test_sweep_times_compares_batched_and_loop():
    results = bench.sweep_times(torch.device("cpu"), settings=4, steps=5)
    assert list(results) == ["batched (1 call)", "loop (4 calls)"]


def test_benchmark_params_are_identical_across_variants():
    a = bench._make_params(1000, 10, torch.device("cpu"))
    b = bench._make_params(1000, 10, torch.device("cpu"))
    assert all(torch.equal(x, y) and torch.equal(x.grad, y.grad) for x, y in zip(a, b))
