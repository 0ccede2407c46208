"""Curves made readable: the moving average used to smooth noisy training losses."""

from __future__ import annotations

import torch

from ..core import validate

__all__ = ["moving_average"]


def moving_average(values, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of each run of ``window`` consecutive values, and the (1-based) step each mean ends at.

    ``moving_average(losses, 20)`` returns ``(steps, means)`` with ``means[k]`` the mean of
    ``losses[k : k + 20]`` and ``steps[k] = k + 20``: plot ``means`` against ``steps`` so the smoothed
    curve is not shifted to the left. Computed from a cumulative sum in float64, so it is exact to
    rounding for any length.
    """
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    validate.integer_at_least("window", window, 1, max(len(v), 1))
    c = torch.cat([torch.zeros(1, dtype=v.dtype), v.cumsum(0)])
    return torch.arange(window, len(v) + 1), (c[window:] - c[:-window]) / window
