"""Argument checks shared by the transforms and the optimizers.

Every check names the argument and the allowed range, so a reader who passes ``betas=(0.9, 1.2)``
learns what went wrong instead of watching the loss turn into NaN.
Hyperparameters may be numbers or tensors (a grid of settings); a tensor is checked element-wise.
"""

from __future__ import annotations

import math
import numbers

import torch


def _values(value):
    """All the numbers in a hyperparameter, as floats (a tensor contributes each element)."""
    if isinstance(value, torch.Tensor):
        return value.detach().double().flatten().tolist()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number or a tensor, got {type(value).__name__}")
    return [float(value)]


def _check(name: str, value, ok, allowed: str):
    try:
        values = _values(value)
    except TypeError as err:
        raise ValueError(f"{name} must be a number or a tensor ({allowed}); {err}") from None
    for v in values:
        if math.isnan(v) or not ok(v):
            shown = value if not isinstance(value, torch.Tensor) else f"a tensor containing {v!r}"
            raise ValueError(f"Invalid {name}: {shown}. {name} must be {allowed}.")
    return value


def non_negative(name: str, value):
    """``value >= 0`` and finite."""
    return _check(name, value, lambda v: 0.0 <= v < math.inf, "a finite number >= 0")


def positive(name: str, value):
    return _check(name, value, lambda v: 0.0 < v < math.inf, "a finite number > 0")


def in_unit_interval(name: str, value):
    """``0 <= value < 1``: the range of every decay rate (beta, alpha, momentum's dampening)."""
    return _check(name, value, lambda v: 0.0 <= v < 1.0, "in [0, 1)")


def in_closed_unit_interval(name: str, value):
    return _check(name, value, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")


def same_tensor_kind(grad: torch.Tensor, param: torch.Tensor, where: str = "gradient"):
    """A gradient must match its parameter in shape, dtype and device."""
    if not isinstance(grad, torch.Tensor):
        raise TypeError(f"the {where} must be a torch.Tensor, got {type(grad).__name__}")
    if grad.shape != param.shape:
        raise ValueError(f"the {where} has shape {tuple(grad.shape)} but its parameter has shape {tuple(param.shape)}")
    if grad.dtype != param.dtype:
        raise ValueError(f"the {where} has dtype {grad.dtype} but its parameter has dtype {param.dtype}")
    if grad.device != param.device:
        raise ValueError(f"the {where} is on {grad.device} but its parameter is on {param.device}")


def integer_at_least(name: str, value, low: int, high: int | None = None) -> int:
    """An integer count (steps, clients, a width) in ``[low, high]``; booleans and floats are refused.

    The message has one format everywhere: ``steps must be an integer >= 1, got 0``.
    """
    allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
        or (high is not None and value > high)
    ):
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return int(value)
