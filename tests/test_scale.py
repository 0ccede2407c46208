"""The at-scale page's library: state measured from the catalog's optimizers, and the recipes."""

import pytest

from optbook.apps import scale
from optbook.lab import catalog


@pytest.fixture(scope="module")
def state():
    return scale.measured_state()


def test_every_optimizer_of_the_catalog_is_measured(state):
    assert list(state) == catalog.names()
    assert state["SGD"]["per_param"] == 0
    for name in ["Momentum", "AdaGrad", "RMSProp", "Lion"]:
        assert state[name]["per_param"] == 4
    for name in ["Adam", "AdamW", "NAdam", "RAdam", "Schedule-Free AdamW"]:
        assert state[name]["per_param"] == 8
    assert state["AMSGrad"]["per_param"] == 12
    # Adafactor: row and column averages of the 1024 x 1024 weight, the full second moment of the bias
    assert state["Adafactor"]["per_param"] == pytest.approx(4 * (1024 + 1024 + 1024) / (1024 * 1024 + 1024))
    # Muon: a momentum buffer for the matrix, Adam's two moments for the bias
    assert state["Muon"]["per_param"] == pytest.approx(4 * (1024 * 1024 + 2 * 1024) / (1024 * 1024 + 1024))


def test_recipes_follow_the_zero_accounting(state):
    by_name = {r[0]: r for r in scale.recipes(state)}
    assert by_name["fp32 Adam"].total == 16
    assert by_name["mixed precision Adam"].total == 16  # 2 + 2 + 4 master + 8 state: no saving over fp32
    assert by_name["mixed precision Adam, fp32 grads"].total == 18
    assert by_name["8-bit Adam, mixed precision"].total == pytest.approx(10 + 2 * 4 / 2048)
    assert scale.gigabytes(by_name["fp32 Adam"], 7e9) == [28, 28, 0, 56]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="n_params"):
        scale.gigabytes(scale.Recipe("x", 4, 4, 0, 8), 0)
