r"""Stability instruments: when does a step size keep the hiker in the valley, and when does it throw her out?

On one curvature direction $f = \tfrac12 h x^2$ every method of Part I is a linear recursion, and its
fate is decided by the roots of a polynomial:

* :func:`heavy_ball_radius`: the spectral radius of the heavy ball
  $x_{k+1} = x_k - \alpha h x_k + \beta(x_k - x_{k-1})$, the largest root of
  $z^2 - (1 + \beta - \alpha h) z + \beta$ (below 1: the hiker settles, at that rate per step);
* :func:`heavy_ball_threshold`: the largest stable $\alpha h$, $2(1+\beta)$; with an averaged (EMA)
  buffer $m = \beta m + (1-\beta)g$ the stride is $\alpha = \gamma(1-\beta)$, so $\gamma h < 2(1+\beta)/(1-\beta)$;
* :func:`optimal_heavy_ball`: Polyak's best $(\alpha^*, \beta^*)$ for curvatures in $[\mu, L]$;
* :func:`adam_ratio_bound`: the largest $|m_t|/\sqrt{v_t}$ that Adam's two moving averages allow;
* :class:`Factorization` and :func:`sharpness`: the smallest landscape with an edge of stability,
  $f(a, b) = \tfrac12 (ab - 1)^2$, and the top eigenvalue of a landscape's Hessian at a point.
"""

from __future__ import annotations

import math

import torch

from ..core import validate
from .landscapes import Landscape


def _tensor(x):
    return torch.as_tensor(x, dtype=torch.float64)


def heavy_ball_radius(lr, beta, curvature=1.0):
    r"""Spectral radius of the heavy ball with stride ``lr`` $=\alpha$ and momentum ``beta`` on curvature $h$.

    The largest modulus of the roots of $z^2 - (1 + \beta - \alpha h)z + \beta$. Broadcasts over tensors
    (a whole $(\alpha, \beta)$ grid in one call); returns a float for scalar arguments.
    """
    validate.non_negative("lr", lr)
    validate.in_unit_interval("beta", beta)
    validate.positive("curvature", curvature)
    trace = 1 + _tensor(beta) - _tensor(lr) * _tensor(curvature)
    disc = (trace * trace - 4 * _tensor(beta)).to(torch.complex128)
    root = disc.sqrt()
    radius = torch.maximum(((trace + root) / 2).abs(), ((trace - root) / 2).abs())
    return radius.item() if radius.dim() == 0 else radius


def heavy_ball_threshold(beta, averaged: bool = False):
    r"""The largest stable $\alpha h$: $2(1+\beta)$; with ``averaged=True`` the largest stable $\gamma h$ for
    the EMA buffer $m = \beta m + (1-\beta) g$, $\theta \mathrel{-}= \gamma m$: $2(1+\beta)/(1-\beta)$."""
    validate.in_unit_interval("beta", beta)
    out = 2 * (1 + _tensor(beta))
    if averaged:
        out = out / (1 - _tensor(beta))
    return out.item() if out.dim() == 0 else out


def optimal_heavy_ball(mu: float, L: float) -> tuple[float, float, float]:
    r"""Polyak's tuning for curvatures in $[\mu, L]$: $\alpha^* = 4/(\sqrt L + \sqrt\mu)^2$,
    $\beta^* = \big(\tfrac{\sqrt\kappa - 1}{\sqrt\kappa + 1}\big)^2$, rate $\sqrt{\beta^*}$, with $\kappa = L/\mu$."""
    validate.positive("mu", mu)
    validate.positive("L", L)
    if mu > L:
        raise ValueError(f"mu must be <= L (the smallest and largest curvature), got mu={mu:g} > L={L:g}")
    rk = math.sqrt(L / mu)
    rate = (rk - 1) / (rk + 1)
    return 4 / (math.sqrt(L) + math.sqrt(mu)) ** 2, rate**2, rate


def adam_ratio_bound(beta1, beta2, steps: int | None = None):
    r"""The largest $|m_t|/\sqrt{v_t}$ over all gradient sequences (no bias correction, $\epsilon = 0$):

    $$\frac{1-\beta_1}{\sqrt{1-\beta_2}}\sqrt{\frac{1 - (\beta_1^2/\beta_2)^t}{1 - \beta_1^2/\beta_2}},$$

    after ``steps`` $= t$ steps, or its limit $t \to \infty$ (``steps=None``), finite only if
    $\beta_1 < \sqrt{\beta_2}$ (otherwise ``inf``). From Cauchy-Schwarz; equality for the sequence of
    :func:`adam_worst_case`.
    """
    validate.in_unit_interval("beta1", beta1)
    validate.in_unit_interval("beta2", beta2)
    if beta2 == 0:
        raise ValueError("beta2 must be in (0, 1) for the bound (beta2 = 0 makes v_t = g_t^2), got 0")
    q = beta1**2 / beta2
    front = (1 - beta1) / math.sqrt(1 - beta2)
    if steps is None:
        return front / math.sqrt(1 - q) if q < 1 else math.inf
    validate.integer_at_least("steps", steps, 1)
    geometric = steps if q == 1 else (1 - q**steps) / (1 - q)
    return front * math.sqrt(geometric)


def adam_worst_case(beta1: float, beta2: float, steps: int) -> torch.Tensor:
    r"""The gradient sequence $g_1, \dots, g_T$ that attains :func:`adam_ratio_bound` at step $T$:
    $g_{T-k} \propto (\beta_1/\beta_2)^k$, a gradient that grows by $\beta_2/\beta_1$ per step (normalised to
    end at 1)."""
    validate.in_unit_interval("beta1", beta1)
    validate.in_unit_interval("beta2", beta2)
    validate.integer_at_least("steps", steps, 1)
    if beta1 == 0 or beta2 == 0:
        raise ValueError("beta1 and beta2 must be > 0 for the worst-case sequence")
    k = torch.arange(steps - 1, -1, -1, dtype=torch.float64)
    return (math.log(beta1 / beta2) * k).exp()


class Factorization(Landscape):
    r"""$f(a, b) = \tfrac12 (ab - 1)^2$: a network of two weights in a row, fitting $y = x$.

    Every point of the hyperbola $ab = 1$ is a minimum, and they differ in sharpness: there the Hessian's
    top eigenvalue is $a^2 + b^2$, from 2 at $(1, 1)$ to as large as you like along the arms. Gradient
    descent with step $\gamma$ cannot settle where the sharpness exceeds $2/\gamma$.
    """

    name = "factorization"

    def __init__(self, start=(3.0, 0.05)):
        self.start = self._as_point(list(start))
        self.minimizer = self._as_point([1.0, 1.0])  # the flattest minimum
        self.window = ((-0.5, 4.0), (-0.5, 3.0))

    def value(self, x, step=1):
        return 0.5 * (x[..., 0] * x[..., 1] - 1) ** 2

    def grad(self, x, step=1):
        r = x[..., 0] * x[..., 1] - 1
        return torch.stack([r * x[..., 1], r * x[..., 0]], dim=-1)

    def hessian_at(self, x, step=1):
        r"""The Hessian $\begin{pmatrix} b^2 & 2ab - 1 \\ 2ab - 1 & a^2 \end{pmatrix}$ at each point.

        Shape ``(..., 2, 2)``."""
        a, b = x[..., 0], x[..., 1]
        off = 2 * a * b - 1
        return torch.stack([torch.stack([b * b, off], -1), torch.stack([off, a * a], -1)], -2)


def sharpness(landscape: Landscape, x, step: int = 1) -> torch.Tensor:
    """The largest eigenvalue of the Hessian of ``landscape.value`` at each point of ``x`` (shape ``(..., d)``),
    from the landscape's ``hessian_at`` where it has one, else by automatic differentiation of its formula."""
    if not isinstance(landscape, Landscape):
        raise ValueError(f"landscape must be an optbook landscape, got {type(landscape).__name__}")
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.shape[-1:] != (landscape.dim,):
        raise ValueError(f"x must have shape (..., {landscape.dim}), got {tuple(x.shape)}")
    if hasattr(landscape, "hessian_at"):  # a landscape with its Hessian written out: all points at once
        return torch.linalg.eigvalsh(landscape.hessian_at(x))[..., -1]
    flat = x.reshape(-1, landscape.dim)
    tops = []
    for point in flat:
        h = torch.autograd.functional.hessian(lambda p: landscape.value(p, step), point)
        tops.append(torch.linalg.eigvalsh(0.5 * (h + h.T))[-1])
    return torch.stack(tops).reshape(x.shape[:-1])
