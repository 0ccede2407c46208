r"""Minibatch noise on any landscape: the hiker feels the slope through a shaking stick.

A minibatch gradient is the true gradient plus noise whose variance falls as $1/B$ with the batch size
$B$. :class:`NoisyLandscape` wraps a landscape of :mod:`optbook.lab.landscapes` and returns

$$g_t(x) = \nabla f(x) + \frac{\sigma}{\sqrt B}\,\xi_t,\qquad \xi_t \sim \mathcal N(0, I),$$

while ``value`` stays the true loss $f(x)$ (what we want to minimise). The noise of step $t$ comes from
``torch.Generator().manual_seed(seed * 1_000_003 + t)`` drawn in the shape of ``x``, so:

* a run is reproducible (same ``seed``, same noise), and two seeds give independent noise;
* every point of a batch of starts (``x0`` of shape ``(R, d)``) draws its own noise: ``R`` copies of one
  start are ``R`` independent chains in one call of :func:`optbook.run`.

:func:`stationary_variance` is the closed form of SGD's noise floor on a quadratic (content of Part I,
"Stochastic gradients").
"""

from __future__ import annotations

import math

import torch

from ..core import validate
from .landscapes import Landscape


class NoisyLandscape(Landscape):
    r"""``base`` with additive Gaussian gradient noise of standard deviation ``std / sqrt(batch)``."""

    def __init__(self, base: Landscape, std: float, batch: int = 1, seed: int = 0):
        if not isinstance(base, Landscape):
            raise ValueError(f"base must be an optbook landscape, got {type(base).__name__}")
        validate.non_negative("std", std)
        validate.integer_at_least("batch", batch, 1)
        validate.integer_at_least("seed", seed, 0)
        self.base, self.std, self.batch, self.seed = base, float(std), int(batch), int(seed)
        self.dim = base.dim
        self.constrained = base.constrained
        self.minimizer, self.start = base.minimizer, base.start
        self.window = getattr(base, "window", None)
        self.name = f"{base.name}, noise {std:g}/sqrt({batch})"

    @property
    def noise_std(self) -> float:
        r"""$\sigma/\sqrt{B}$: the standard deviation of each coordinate of the gradient noise."""
        return self.std / math.sqrt(self.batch)

    def noise(self, shape, step: int, dtype=torch.float64, device=None) -> torch.Tensor:
        """The noise added at step ``step`` to gradients of shape ``shape``."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(step))
        return (self.noise_std * torch.randn(tuple(shape), generator=gen, dtype=torch.float64)).to(
            dtype=dtype, device=device
        )

    def value(self, x, step=1):
        return self.base.value(x, step)

    def grad(self, x, step=1):
        return self.base.grad(x, step) + self.noise(x.shape, step, x.dtype, x.device)

    def project(self, x):
        return self.base.project(x)


def stationary_variance(lr, curvature, std):
    r"""SGD's noise floor on $f = \tfrac12 h x^2$ with gradient noise of standard deviation $\sigma$:

    $$\operatorname{Var}(x_\infty) = \frac{\gamma\sigma^2}{h\,(2 - \gamma h)},\qquad 0 < \gamma h < 2.$$

    From $x_{t+1} = (1-\gamma h)x_t - \gamma\sigma\xi_t$: $V = (1-\gamma h)^2 V + \gamma^2\sigma^2$.
    """
    validate.positive("lr", lr)
    validate.positive("curvature", curvature)
    validate.non_negative("std", std)
    lr_h = torch.as_tensor(lr, dtype=torch.float64) * torch.as_tensor(curvature, dtype=torch.float64)
    if bool((lr_h >= 2).any()):
        raise ValueError(f"lr * curvature must be in (0, 2) for a stationary spread, got {lr_h.max().item():g}")
    out = (
        torch.as_tensor(lr, dtype=torch.float64)
        * std**2
        / (torch.as_tensor(curvature, dtype=torch.float64) * (2 - lr_h))
    )
    return out.item() if out.dim() == 0 else out


def heavy_ball_stationary_variance(lr, beta, curvature, std):
    r"""The heavy ball's noise floor on $f = \tfrac12 h x^2$ (stride $\alpha$ = ``lr``, momentum $\beta$):

    $$\operatorname{Var}(x_\infty) = \frac{\alpha\sigma^2}{1-\beta}
      \cdot\frac{1+\beta}{h\,\big(2(1+\beta) - \alpha h\big)},\qquad 0 < \alpha h < 2(1+\beta).$$

    With the effective learning rate $\alpha/(1-\beta)$ and $\alpha h \ll 1$ this is SGD's floor
    (:func:`stationary_variance`) at that learning rate; ``beta=0`` gives SGD's floor exactly.
    """
    validate.positive("lr", lr)
    validate.in_unit_interval("beta", beta)
    validate.positive("curvature", curvature)
    validate.non_negative("std", std)
    edge = 2 * (1 + beta)
    if lr * curvature >= edge:
        raise ValueError(f"lr * curvature must be in (0, 2 (1 + beta)) = (0, {edge:g}), got {lr * curvature:g}")
    return lr * std**2 * (1 + beta) / ((1 - beta) * curvature * (edge - lr * curvature))
