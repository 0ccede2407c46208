"""Bad input gets a ValueError that names the argument and the allowed range."""

import math

import pytest
import torch

from optbook.core import optim
from optbook.core import transforms as T
from optbook.lab import landscapes
from optbook.lab.run import run


def params():
    return [torch.nn.Parameter(torch.ones(3))]


BAD = [
    (optim.SGD, {"lr": -0.1}, "lr"),
    (optim.SGD, {"lr": math.nan}, "lr"),
    (optim.SGD, {"momentum": -0.5}, "momentum"),
    (optim.SGD, {"weight_decay": -1.0}, "weight_decay"),
    (optim.SGD, {"nesterov": True}, "Nesterov"),
    (optim.SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "Nesterov"),
    (optim.SGD, {"momentum": 0.9, "dampening": 1.5}, "dampening"),
    (optim.Adagrad, {"lr": -1.0}, "lr"),
    (optim.Adagrad, {"lr_decay": -0.1}, "lr_decay"),
    (optim.Adagrad, {"initial_accumulator_value": -1.0}, "initial_accumulator_value"),
    (optim.Adagrad, {"eps": -1e-10}, "eps"),
    (optim.RMSprop, {"alpha": 1.0}, "alpha"),
    (optim.RMSprop, {"alpha": -0.1}, "alpha"),
    (optim.RMSprop, {"momentum": -0.9}, "momentum"),
    (optim.RMSprop, {"eps": -1.0}, "eps"),
    (optim.Adam, {"betas": (1.0, 0.999)}, "beta1"),
    (optim.Adam, {"betas": (0.9, 1.2)}, "beta2"),
    (optim.Adam, {"betas": (-0.1, 0.999)}, "beta1"),
    (optim.Adam, {"betas": (0.9, math.nan)}, "beta2"),
    (optim.Adam, {"betas": 0.9}, "betas"),
    (optim.Adam, {"eps": -1e-8}, "eps"),
    (optim.Adam, {"weight_decay": -0.01}, "weight_decay"),
    (optim.Adam, {"lr": math.inf}, "lr"),
    (optim.AdamW, {"weight_decay": -0.01}, "weight_decay"),
    (optim.AdamW, {"betas": (0.9, 1.0)}, "beta2"),
    (optim.NAdam, {"momentum_decay": -1.0}, "momentum_decay"),
    (optim.NAdam, {"betas": (1.5, 0.9)}, "beta1"),
    (optim.RAdam, {"eps": -1.0}, "eps"),
    (optim.RAdam, {"betas": (0.9, 1.0)}, "beta2"),
    (optim.Adam, {"fused": True}, "fused"),
    (optim.SGD, {"foreach": True}, "foreach"),
    (optim.Adam, {"state_dtype": torch.int32}, "state_dtype"),
    (optim.Adam, {"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
    (optim.Adam, {"fast": "yes"}, "fast"),
    (optim.Adafactor, {"lr": -0.1}, "lr"),
    (optim.Adafactor, {"beta2_decay": 0.5}, "beta2_decay"),
    (optim.Adafactor, {"eps": (-1.0, 1e-3)}, "eps1"),
    (optim.Adafactor, {"eps": (None, -1e-3)}, "eps2"),
    (optim.Adafactor, {"eps": 1e-3}, "eps"),
    (optim.Adafactor, {"d": 0.5}, "d"),
    (optim.Adafactor, {"weight_decay": -0.1}, "weight_decay"),
    (optim.Adafactor, {"fast": True}, "fast"),
    (optim.Lion, {"lr": -1e-4}, "lr"),
    (optim.Lion, {"betas": (1.5, 0.99)}, "beta1"),
    (optim.Lion, {"betas": (0.9, -0.1)}, "beta2"),
    (optim.Lion, {"weight_decay": -1.0}, "weight_decay"),
    (optim.Lion, {"use_triton": True}, "use_triton"),
    (optim.AdamWScheduleFree, {"lr": -1.0}, "lr"),
    (optim.AdamWScheduleFree, {"betas": (0.9, 1.0)}, "beta2"),
    (optim.AdamWScheduleFree, {"warmup_steps": -1}, "warmup_steps"),
    (optim.AdamWScheduleFree, {"warmup_steps": 2.5}, "warmup_steps"),
    (optim.AdamWScheduleFree, {"weight_decay": -0.1}, "weight_decay"),
    (optim.AdamWScheduleFree, {"weight_lr_power": -1.0}, "weight_lr_power"),
    (optim.AdamWScheduleFree, {"foreach": True}, "foreach"),
]

MUON_BAD = [
    ({"lr": -1.0}, "lr"),
    ({"momentum": 1.5}, "momentum"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"ns_steps": 100}, "ns_steps"),
    ({"ns_steps": 2.0}, "ns_steps"),
    ({"ns_coefficients": (1.0, 2.0)}, "ns_coefficients"),
    ({"adjust_lr_fn": "arbitrary"}, "adjust_lr_fn"),
    ({"eps": -1.0}, "eps"),
]


@pytest.mark.parametrize("kwargs,name", MUON_BAD, ids=[str(k) for k, _ in MUON_BAD])
def test_muon_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        optim.Muon([torch.nn.Parameter(torch.ones(3, 2))], **kwargs)
    with pytest.raises(ValueError, match="2D"):
        optim.Muon(params())


@pytest.mark.parametrize("cls,kwargs,name", BAD, ids=[f"{c.__name__}-{k}" for c, k, _ in BAD])
def test_constructor_names_the_argument(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(params(), **kwargs)


def test_allowed_range_is_stated():
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        optim.Adam(params(), betas=(0.9, 1.2))
    with pytest.raises(ValueError, match=">= 0"):
        optim.Adam(params(), lr=-1)


def test_bad_param_group_is_not_kept():
    opt = optim.Adam(params())
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2))], "lr": -1.0})
    assert len(opt.param_groups) == 1


def test_transform_hyperparameters_checked_elementwise():
    with pytest.raises(ValueError, match="beta2"):
        T.scale_by_adam(b2=torch.tensor([0.9, 0.99, 1.0]))
    with pytest.raises(ValueError, match="lr"):
        T.scale_by_learning_rate(torch.tensor([0.1, -0.1]))
    with pytest.raises(ValueError, match="lr"):
        T.scale_by_learning_rate("fast")


@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.ones(4), "shape"),
        (torch.ones(3, dtype=torch.float32), "dtype"),
        ([1.0, 2.0, 3.0], "torch.Tensor"),
    ],
)
def test_gradient_of_wrong_kind(bad, match):
    chain = T.chain(T.scale_by_adam(), T.scale_by_learning_rate(0.1))
    p = torch.ones(3, dtype=torch.float64)
    with pytest.raises((ValueError, TypeError), match=match):
        chain.update(bad, chain.init(p), p)


def test_gradient_on_wrong_device_is_named():
    if not torch.cuda.is_available():
        pytest.skip("needs a second device (CUDA) to place the gradient elsewhere")
    chain = T.chain(T.scale_by_adam(), T.scale_by_learning_rate(0.1))
    p = torch.ones(3)
    with pytest.raises(ValueError, match="device|on cuda"):
        chain.update(torch.ones(3, device="cuda"), chain.init(p), p)


def test_run_rejects_bad_arguments():
    chain = T.chain(T.scale_by_adam(), T.scale_by_learning_rate(0.1))
    with pytest.raises(ValueError, match="x0"):
        run(chain, landscapes.Rosenbrock(), x0=torch.zeros(3), steps=5)
    with pytest.raises(ValueError, match="steps"):
        run(chain, landscapes.Rosenbrock(), steps=0)


def test_landscape_arguments():
    with pytest.raises(ValueError, match="kappa"):
        landscapes.Canyon(kappa=-1)
    with pytest.raises(ValueError, match="large"):
        landscapes.ReddiCounterexample(large=1.5)
    with pytest.raises(ValueError, match="positive definite"):
        landscapes.Quadratic([[1.0, 0.0], [0.0, -1.0]])


def test_duplicate_state_keys_in_a_chain():
    chain = T.chain(T.trace(0.9), T.trace(0.5))
    with pytest.raises(ValueError, match="momentum_buffer"):
        chain.init(torch.ones(2))
