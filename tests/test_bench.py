"""The benchmark runs and reports every variant (its numbers are for reading; no timing is asserted)."""

import torch

from optbook.apps import bench


def test_adam_step_times_reports_every_variant():
    results = bench.adam_step_times(torch.device("cpu"), total=20_000, tensors=20, repeats=1, try_compile=False)
    assert set(results) == {"optbook.optim.Adam", "torch Adam (default)", "torch Adam (foreach)", "torch Adam (fused)"}
    assert all(isinstance(v, (float, str)) for v in results.values())
    assert isinstance(results["optbook.optim.Adam"], float) and results["optbook.optim.Adam"] > 0


def test_sweep_times_compares_batched_and_loop():
    results = bench.sweep_times(torch.device("cpu"), settings=4, steps=5)
    assert list(results) == ["batched (1 call)", "loop (4 calls)"]


def test_benchmark_params_are_identical_across_variants():
    a = bench._make_params(1000, 10, torch.device("cpu"))
    b = bench._make_params(1000, 10, torch.device("cpu"))
    assert all(torch.equal(x, y) and torch.equal(x.grad, y.grad) for x, y in zip(a, b))
