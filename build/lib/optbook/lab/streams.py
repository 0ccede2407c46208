r"""Gradient streams: sequences of gradients that do not depend on where the hiker stands.

To study an optimizer's *memory* on its own (how fast a moving average forgets, how noisy its
estimate is, how long it lags behind a change) it helps to feed it gradients from a known source
instead of a landscape:

* :func:`noisy_gradients` draws $g_t = \mu_t + \sigma\,\xi_t$ with $\xi_t \sim \mathcal N(0, 1)$ from a
  seeded generator, where the mean $\mu_t$ may jump from ``mean`` to ``new_mean`` at step ``change_at``;
* :func:`feed` passes a stream through a transform (a piece of :mod:`optbook.transforms`, or a chain)
  and records the update $u_t$ and the memory after every step, so a notebook can read $m_t$, $v_t$ or
  AdaGrad's sum straight from the library's own code.

Steps are counted from 1, as everywhere in the book: row ``k`` of a stream is $g_{k+1}$.
"""

from __future__ import annotations

import torch

from ..core import validate
from ..core.transforms import Transform


def noisy_gradients(
    steps: int,
    mean: float = 1.0,
    std: float = 1.0,
    shape=(),
    *,
    change_at: int | None = None,
    new_mean: float | None = None,
    seed: int = 0,
    dtype=torch.float64,
    device=None,
) -> torch.Tensor:
    r"""A stream of noisy gradients, shape ``(steps, *shape)``: $g_t = \mu_t + \sigma\,\xi_t$.

    $\mu_t$ is ``mean`` for $t < $ ``change_at`` and ``new_mean`` from step ``change_at`` on (no change
    when ``change_at`` is None); $\sigma$ is ``std``; the $\xi_t$ are independent standard normal draws
    from ``torch.Generator().manual_seed(seed)``, so the same arguments give the same stream.
    ``shape`` adds independent streams side by side (for averaging over many runs).
    """
    validate.integer_at_least("steps", steps, 1)
    if not (isinstance(std, (int, float)) and 0 <= std < float("inf")):
        raise ValueError(f"std must be a finite number >= 0, got {std!r}")
    if (change_at is None) != (new_mean is None):
        raise ValueError("change_at and new_mean go together: give both (a jump of the mean) or neither")
    if change_at is not None:
        validate.integer_at_least("change_at", change_at, 1, steps)
    shape = tuple(shape) if not isinstance(shape, int) else (shape,)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn((steps, *shape), generator=gen, dtype=dtype)
    t = torch.arange(1, steps + 1, dtype=dtype).reshape(steps, *([1] * len(shape)))
    mu = torch.full_like(t, float(mean))
    if change_at is not None:
        mu = torch.where(t >= change_at, torch.full_like(t, float(new_mean)), mu)
    return (mu + std * noise).to(device)


def feed(transform: Transform, grads: torch.Tensor, param: torch.Tensor | None = None, keys=None) -> dict:
    r"""Pass the stream ``grads`` (shape ``(steps, ...)``) through ``transform``, one row per step.

    The parameter is held fixed (``param``, zeros by default), so only the memory evolves. Returns a dict
    with ``"updates"``: the $u_t$ the transform returned, shape ``(steps, ...)`` (for a chain ending in
    ``scale_by_learning_rate`` these are the steps $\Delta\theta_t$), and one entry per tensor in the
    transform's memory (``exp_avg``, ``exp_avg_sq``, ``square_avg``, ``sum``, ...; or only ``keys``), each
    stacked over steps: row ``k`` is the memory after step $t = k + 1$. Hyperparameters given as
    broadcasting tensors (:func:`optbook.grid`) make the results grow the grid's axes.
    """
    if not isinstance(grads, torch.Tensor) or grads.dim() < 1 or grads.shape[0] < 1:
        raise ValueError("grads must be a tensor of shape (steps, ...) with at least one step")
    param = torch.zeros_like(grads[0]) if param is None else param
    if param.shape != grads.shape[1:]:
        raise ValueError(
            f"param must have the shape of one step of grads, {tuple(grads.shape[1:])}, got {tuple(param.shape)}"
        )
    state = transform.init(param)
    updates, memory = [], {}
    for g in grads:
        u, state = transform.update(g, state, param)
        updates.append(u)
        for name, value in state.items():
            if isinstance(value, torch.Tensor) and (keys is None or name in keys):
                memory.setdefault(name, []).append(value)

    def stack(seq):
        shape = torch.broadcast_shapes(*(s.shape for s in seq))
        return torch.stack([s.expand(shape) for s in seq])

    return {"updates": stack(updates), **{name: stack(values) for name, values in memory.items()}}
