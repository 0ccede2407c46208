"""Run a chain of transforms on a landscape and keep the whole walk.

One call runs many hikers at once: several starting points (``x0`` of shape ``(..., d)``) and a whole
grid of hyperparameters (tensors made by :func:`grid`, which broadcast against the points). The batch
shape is whatever the broadcast gives, so a 8 x 8 grid of (lr, beta) on a 2-D landscape walks
64 hikers in one loop of tensor operations instead of 64 Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import validate
from ..core.transforms import Transform, apply_updates
from .landscapes import Landscape


@dataclass
class Trajectory:
    """The record of a run. ``k`` indexes steps; ``...`` is the batch (grid and starting points).

    * ``params``: ``(steps + 1, ..., d)``, the points visited, the start first;
    * ``losses``: ``(steps + 1, ...)``, the value of the landscape at each point;
    * ``grads``: ``(steps, ..., d)``, the gradient that each step saw;
    * ``effective_lr``: ``(steps, ..., d)``, the step taken per unit of gradient, $-\\Delta\\theta / g$
      (NaN where the gradient was exactly zero). For AdaGrad and RMSProp without momentum this is
      exactly $\\gamma / (\\sqrt{G_t} + \\epsilon)$, the per-coordinate learning rate of the book.
    * ``state``: the optimizer's memory after the last step.
    """

    params: torch.Tensor
    losses: torch.Tensor
    grads: torch.Tensor
    effective_lr: torch.Tensor
    state: dict

    @property
    def final(self) -> torch.Tensor:
        return self.params[-1]

    def distance_to(self, point) -> torch.Tensor:
        """Euclidean distance of every visited point to ``point``: shape ``(steps + 1, ...)``."""
        return (self.params - torch.as_tensor(point).to(self.params)).norm(dim=-1)

    def steps_to_reach(self, point, tol: float) -> torch.Tensor:
        """First step at which the hiker is within ``tol`` of ``point`` (``-1`` where it never gets there)."""
        close = self.distance_to(point) <= tol
        first = close.float().argmax(dim=0)
        return torch.where(close.any(dim=0), first, torch.full_like(first, -1))


def grid(dtype=torch.float64, device=None, **axes) -> dict:
    """Hyperparameter tensors for a batched run, one axis per keyword, with a trailing axis for coordinates.

    ``grid(lr=[0.1, 0.01], beta=[0.9, 0.99, 0.999])`` gives ``lr`` of shape ``(2, 1, 1)`` and ``beta`` of
    shape ``(1, 3, 1)``: passed to a transform, they make a run over all 6 combinations.
    """
    n = len(axes)
    out = {}
    for i, (name, values) in enumerate(axes.items()):
        shape = [1] * (n + 1)
        shape[i] = -1
        out[name] = torch.as_tensor(values, dtype=dtype, device=device).reshape(shape)
    return out


def run(
    transform: Transform, landscape: Landscape, x0=None, steps: int = 100, *, dtype=torch.float64, device=None
) -> Trajectory:
    """Walk ``steps`` steps of ``transform`` on ``landscape`` from ``x0`` (default: the landscape's start).

    Step ``t = 1, ..., steps`` uses the gradient of $f_t$ at the current point; constrained landscapes
    project each new point back into their domain.
    """
    validate.integer_at_least("steps", steps, 1)
    x = torch.as_tensor(landscape.start if x0 is None else x0, dtype=dtype, device=device)
    if x.shape[-1:] != (landscape.dim,):
        raise ValueError(f"x0 must have shape (..., {landscape.dim}) for {landscape.name}, got {tuple(x.shape)}")
    state = transform.init(x)
    params, losses, grads, eff = [x], [landscape.value(x, 1)], [], []
    for t in range(1, steps + 1):
        g = landscape.grad(x, t)
        u, state = transform.update(g, state, x)
        new_x = landscape.project(apply_updates(x, u))
        step_taken = new_x - x
        eff.append(torch.where(g != 0, -step_taken / g, torch.full_like(step_taken, float("nan"))))
        x = new_x
        grads.append(g)
        params.append(x)
        losses.append(landscape.value(x, t))

    def stack(seq):
        shape = torch.broadcast_shapes(*(s.shape for s in seq))
        return torch.stack([s.expand(shape) for s in seq])

    return Trajectory(stack(params), stack(losses), stack(grads), stack(eff), state)


def run_torch(
    optimizer_class, landscape: Landscape, steps: int = 100, *, x0=None, dtype=torch.float64, device=None, **options
) -> torch.Tensor:
    """Walk a ``torch.optim``-style optimizer (``optimizer_class(params, **options)``) on ``landscape``.

    The point is one ``nn.Parameter``; step ``t = 1, ..., steps`` sets its ``.grad`` to the landscape's
    gradient of $f_t$ and calls ``step()``, exactly as a training loop would. Returns the points visited,
    shape ``(steps + 1, d)``, the start first. Works for ``torch.optim`` and ``optbook.optim`` alike, so a
    notebook can walk both and compare.
    """
    validate.integer_at_least("steps", steps, 1)
    start = torch.as_tensor(landscape.start if x0 is None else x0, dtype=dtype, device=device)
    x = torch.nn.Parameter(start.clone())
    optimizer = optimizer_class([x], **options)
    points = [x.detach().clone()]
    for t in range(1, steps + 1):
        optimizer.zero_grad()
        x.grad = landscape.grad(x.detach(), t)
        optimizer.step()
        with torch.no_grad():
            x.copy_(landscape.project(x))
        points.append(x.detach().clone())
    return torch.stack(points)
