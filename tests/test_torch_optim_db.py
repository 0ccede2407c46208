"""optbook's classes on torch's own optimizer test database (torch.testing._internal.common_optimizers).

For every optimizer optbook shares with torch.optim, every input of its ``optim_inputs_func`` (CPU, float64)
runs on both classes from the same parameters: parameters and every state tensor torch keeps must agree to
1e-10 relative. Every ``optim_error_inputs_func`` input must fail in optbook with torch's exception type
(or warning). Inputs that switch on a kernel (foreach, fused, capturable, differentiable) are refused by
optbook with a ValueError that names the switch: checked too.
"""

import pytest
import torch

from optbook.core import optim

pytest.importorskip("expecttest")  # torch's test utilities need it to import
from torch.testing._internal import common_optimizers as db  # noqa: E402

pytestmark = pytest.mark.slow

KERNELS = ("foreach", "fused", "capturable", "differentiable")
INFOS = [info for info in db.optim_db if info.optim_cls.__name__ in optim.__all__]
STEPS = 12


def _inputs(kind):
    out = []
    for info in INFOS:
        func = info.optim_inputs_func if kind == "inputs" else info.optim_error_inputs_func
        for k, item in enumerate(func(device="cpu", dtype=torch.float64)):
            desc = item.desc if kind == "inputs" else item.optimizer_error_input.desc
            out.append(pytest.param(info.optim_cls.__name__, k, id=f"{info.optim_cls.__name__}-{k}-{desc}"))
    return out


def _item(name, k, kind):
    info = next(i for i in INFOS if i.optim_cls.__name__ == name)
    func = info.optim_inputs_func if kind == "inputs" else info.optim_error_inputs_func
    return func(device="cpu", dtype=torch.float64)[k]


def _params(name, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (2, 4)] if name == "Muon" else [(4, 3), (4,), (2, 4), (2,)]
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in shapes]


def _run(cls, name, kwargs, params_spec):
    params = _params(name)
    x = torch.linspace(-1, 1, 3, dtype=torch.float64)
    opt = cls(params_spec(params) if params_spec else params, **kwargs)

    def closure():
        opt.zero_grad()
        h = torch.tanh(params[0] @ x)
        if name == "Muon":
            loss = (params[1] @ h).pow(2).sum()
        else:
            loss = ((params[2] @ (h + params[1])) + params[3]).pow(2).sum()
        loss.backward()
        return loss

    for _ in range(STEPS):
        opt.step(closure)
    return params, opt


@pytest.fixture(autouse=True)
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torch's scalar state (step, mu_product) is then float64 too
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("name,k", _inputs("inputs"))
def test_every_input_equals_torch(name, k):
    item = _item(name, k, "inputs")
    kwargs = dict(item.kwargs)
    switched = [key for key in KERNELS if kwargs.get(key)]
    ours_cls, theirs_cls = getattr(optim, name), getattr(torch.optim, name)
    if switched:  # a kernel switch: optbook refuses it, naming it
        with pytest.raises(ValueError, match=switched[0]):
            ours_cls(_params(name), **kwargs)
        return
    spec = None
    if item.params is not None:  # param groups given by torch as a template: same layout on our params
        pytest.skip("input with its own params")
    ours, opt = _run(ours_cls, name, kwargs, spec)
    theirs, ref = _run(theirs_cls, name, kwargs, spec)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    ours_state, their_state = opt.state_dict()["state"], ref.state_dict()["state"]
    assert ours_state.keys() == their_state.keys()
    for index, state in their_state.items():
        assert set(state) <= set(ours_state[index]), f"param {index}: missing {set(state) - set(ours_state[index])}"
        for key, value in state.items():
            mine = ours_state[index][key]
            if isinstance(value, torch.Tensor):
                assert isinstance(mine, torch.Tensor) and mine.dtype == value.dtype, (key, mine, value)
                torch.testing.assert_close(mine, value, rtol=1e-10, atol=1e-14)
            else:
                assert mine == value


@pytest.mark.parametrize("name,k", _inputs("errors"))
def test_every_error_input_fails_as_in_torch(name, k):
    error = _item(name, k, "errors")
    item = error.optimizer_error_input
    cls = getattr(optim, name)
    if issubclass(error.error_type, Warning):
        with pytest.warns(error.error_type):
            cls(item.params, **item.kwargs)
    elif error.error_on == db.OptimizerErrorEnum.CONSTRUCTION_ERROR:
        with pytest.raises(error.error_type):
            cls(item.params, **item.kwargs)
    else:
        with pytest.raises(error.error_type):
            cls(item.params, **item.kwargs).step()
