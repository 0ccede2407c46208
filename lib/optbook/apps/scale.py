r"""Optimizers at scale: bytes per parameter of every optimizer of the book and of the usual training
recipes (the time floor of one step is :mod:`optbook.apps.bench`'s).

The optimizer state is *measured*: :func:`measured_state` builds each optimizer of
:mod:`optbook.lab.catalog` on a small transformer-like layer (a ``1024 x 1024`` weight and a ``1024``
bias), takes one step, and adds up the bytes of what it keeps in ``optimizer.state``. The recipes
(:func:`recipes`) then add weights, gradients and master weights by arithmetic:

* fp32: weights and gradients in float32 (4 + 4 bytes), the state as measured;
* mixed precision (Micikevicius et al. 2018; the accounting of ZeRO, Rajbhandari et al. 2020): bf16/fp16
  weights and gradients (2 + 2), a float32 master copy (4) and float32 state: Adam costs 16 bytes per
  parameter, *the same as fp32 Adam*; 18 with float32 gradient accumulation;
* 8-bit state (Dettmers et al. 2022): each state tensor in 1 byte plus one float32 absmax per block of 2048.
"""

from __future__ import annotations

import torch

from ..core import validate
from ..lab import catalog

__all__ = ["LAYER", "measured_state", "Recipe", "recipes", "gigabytes"]

LAYER = ((1024, 1024), (1024,))  # the shapes the state is measured on
DETTMERS_BLOCK = 2048


def measured_state(shapes=LAYER, dtype=torch.float32) -> dict[str, dict]:
    """For every optimizer of the catalog: ``{"per_param": bytes per parameter of state tensors as large as
    a row or more, "scalars": bytes of 0-d tensors (steps), "keys": the state's keys}``, after one step."""
    out = {}
    numel = sum(torch.Size(s).numel() for s in shapes)
    for entry in catalog.OPTIMIZERS:
        params = [torch.nn.Parameter(torch.zeros(s, dtype=dtype)) for s in shapes]
        opt = entry.make(params, lr=1e-3)
        g = torch.Generator().manual_seed(0)
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=dtype)
        opt.step()
        big = small = 0
        keys = set()
        for p in params:
            for key, value in opt.state[p].items():
                if isinstance(value, torch.Tensor):
                    size = value.numel() * value.element_size()
                    if value.dim() == 0:
                        small += size
                    else:
                        big += size
                        keys.add(key)
        out[entry.name] = {"per_param": big / numel, "scalars": small, "keys": sorted(keys)}
    return out


class Recipe(tuple):
    """``(name, weights, gradients, master, state)``: bytes per parameter of each part."""

    def __new__(cls, name, weights, grads, master, state):
        return super().__new__(cls, (name, weights, grads, master, state))

    @property
    def total(self) -> float:
        return sum(self[1:])


def recipes(state: dict[str, dict]) -> list[Recipe]:
    """The book's recipes, from the measured ``state`` (:func:`measured_state`)."""
    s = {name: entry["per_param"] for name, entry in state.items()}
    eight_bit = 2 * (1 + 4 / DETTMERS_BLOCK)  # m and v: 1 byte each plus one float32 per 2048 values
    rows = [Recipe(f"fp32 {name}", 4, 4, 0, value) for name, value in s.items()]
    rows += [
        Recipe("mixed precision Adam", 2, 2, 4, s["Adam"]),
        Recipe("mixed precision Adam, fp32 grads", 2, 4, 4, s["Adam"]),
        Recipe("8-bit Adam, fp32 weights", 4, 4, 0, eight_bit),
        Recipe("8-bit Adam, mixed precision", 2, 2, 4, eight_bit),
        Recipe("mixed precision Adafactor", 2, 2, 4, s["Adafactor"]),
        Recipe("mixed precision Lion", 2, 2, 4, s["Lion"]),
        Recipe("mixed precision Muon", 2, 2, 4, s["Muon"]),
    ]
    return rows


def gigabytes(recipe: Recipe, n_params: float) -> list[float]:
    """Weights, gradients, master and state of ``n_params`` parameters, in GB (1e9 bytes)."""
    validate.positive("n_params", n_params)
    return [b * n_params / 1e9 for b in recipe[1:]]
