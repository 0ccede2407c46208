"""Optimizer-state sharding for real: 2 processes, gloo on 127.0.0.1, an optbook optimizer (ZeRO-1 and FSDP2)."""

import numpy as np
import pytest

from optbook.apps import distributed as D


@pytest.fixture(scope="module")
def runs():
    return D.single_run("Adam", steps=6), D.sharded_runs(optimizer="Adam", steps=6)


@pytest.mark.slow
def test_parameters_after_n_steps_equal_the_single_process_run(runs):
    single, sharded = runs
    moved = max(np.abs(p - q).max() for p, q in zip(single["params"], D._params(D._model())))
    assert moved > 1e-3  # the optimizer really stepped
    for run, ranks in sharded.items():
        for rank in ranks:
            for p, q in zip(rank["params"], single["params"]):
                np.testing.assert_allclose(p, q, rtol=0, atol=1e-6, err_msg=str(run))


@pytest.mark.slow
def test_state_is_split_across_ranks(runs):
    single, sharded = runs
    total = single["state_bytes"]
    n_params = sum(p.size for p in single["params"])
    assert total == 8 * n_params  # Adam: exp_avg and exp_avg_sq in float32 (step counters left out)
    for mode in D.MODES:
        (alone,) = sharded[(mode, 1)]
        assert alone["state_bytes"] == total and alone["state_tensors"] == 6
        pair = sharded[(mode, 2)]
        assert sum(r["state_bytes"] for r in pair) == total
        assert max(r["state_bytes"] for r in pair) < total
    zero = sharded[("zero1", 2)]
    assert sorted(r["state_tensors"] for r in zero) == [1, 5]  # whole tensors: the 64 x 64 weight on its own
    assert [r["state_bytes"] for r in sharded[("fsdp2", 2)]] == [total // 2, total // 2]  # every tensor halved


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="mode"):
        D.sharded_runs(runs=(("zero3", 2),))
    with pytest.raises(ValueError, match="world_size"):
        D.sharded_runs(runs=(("zero1", 3),))
    with pytest.raises(ValueError, match="optimizer"):
        D.single_run("Nope")
    with pytest.raises(ValueError, match="runs"):
        D.sharded_runs(runs=())
