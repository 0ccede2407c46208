r"""The terrain of the book: test functions with their gradients, minimizers and plotting windows.

Every landscape evaluates a batch of points at once: ``x`` has shape ``(..., d)``, ``value(x)`` returns
shape ``(...)`` and ``grad(x)`` shape ``(..., d)``. Gradients are written out by hand (the tests check
them against autograd), so that a reader sees the derivative next to the function. Some landscapes
change with the step ``t`` (counted from 1); the others ignore it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core import validate


class Landscape:
    """Base class. Subclasses set ``name``, ``dim``, ``minimizer``, ``start``, ``window``."""

    name: str = "landscape"
    dim: int = 2
    constrained = False

    def value(self, x: torch.Tensor, step: int = 1) -> torch.Tensor:
        raise NotImplementedError

    def grad(self, x: torch.Tensor, step: int = 1) -> torch.Tensor:
        raise NotImplementedError

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Map a point back into the feasible set (the identity, except on constrained problems)."""
        return x

    def _as_point(self, values) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64)

    def __repr__(self) -> str:
        return self.name


def _rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


class Quadratic(Landscape):
    r"""$f(x) = \tfrac12 (x - x^*)^\top H (x - x^*)$ for a symmetric positive definite $H$."""

    def __init__(self, hessian, minimizer=None, name="quadratic"):
        self.hessian = torch.as_tensor(hessian, dtype=torch.float64)
        eig = torch.linalg.eigvalsh(self.hessian)
        if eig.min() <= 0:
            raise ValueError("hessian must be symmetric positive definite (all eigenvalues > 0)")
        self.curvatures = eig
        self.dim = self.hessian.shape[0]
        self.minimizer = torch.zeros(self.dim, dtype=torch.float64) if minimizer is None else self._as_point(minimizer)
        self.start = self.minimizer + 1.0
        self.name = name

    @property
    def condition_number(self) -> float:
        return float(self.curvatures.max() / self.curvatures.min())

    def grad(self, x, step=1):
        return (x - self.minimizer.to(x)) @ self.hessian.to(x).T

    def value(self, x, step=1):
        return 0.5 * ((x - self.minimizer.to(x)) * self.grad(x)).sum(-1)


class Canyon(Quadratic):
    r"""The long, narrow canyon: $f = \tfrac12(u^2 + \kappa w^2)$, where $u$ runs along the floor and $w$
    across the walls, the floor turned by ``angle`` radians from the first axis.

    Curvature 1 along the floor and $\kappa$ across it, so $\kappa$ is the condition number.
    """

    def __init__(self, kappa: float = 100.0, angle: float = 0.0):
        validate.positive("kappa", kappa)
        rot = _rotation(angle)
        hessian = rot @ torch.diag(torch.tensor([1.0, float(kappa)], dtype=torch.float64)) @ rot.T
        super().__init__(hessian, name=f"canyon (kappa={kappa:g}" + (f", angle={angle:.2f})" if angle else ")"))
        self.kappa, self.angle = float(kappa), float(angle)
        self.start = rot @ torch.tensor([-2.0, 0.2], dtype=torch.float64)
        self.window = ((-2.5, 2.5), (-1.0, 1.0)) if angle == 0 else ((-2.5, 2.5), (-2.5, 2.5))


class Rosenbrock(Landscape):
    r"""$f(x, y) = (a - x)^2 + b\,(y - x^2)^2$: a curved, flat-bottomed valley; minimum at $(a, a^2)$."""

    def __init__(self, a: float = 1.0, b: float = 100.0):
        self.a, self.b = a, b
        self.name = "Rosenbrock"
        self.minimizer = self._as_point([a, a * a])
        self.start = self._as_point([-1.2, 1.0])
        self.window = ((-2.0, 2.0), (-1.0, 3.0))

    def value(self, x, step=1):
        return (self.a - x[..., 0]) ** 2 + self.b * (x[..., 1] - x[..., 0] ** 2) ** 2

    def grad(self, x, step=1):
        inner = x[..., 1] - x[..., 0] ** 2
        dx = -2 * (self.a - x[..., 0]) - 4 * self.b * x[..., 0] * inner
        dy = 2 * self.b * inner
        return torch.stack([dx, dy], dim=-1)


class Beale(Landscape):
    r"""$f = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2$; minimum at $(3, 0.5)$."""

    name = "Beale"
    _c = (1.5, 2.25, 2.625)

    def __init__(self):
        self.minimizer = self._as_point([3.0, 0.5])
        self.start = self._as_point([1.0, 1.0])
        self.window = ((-4.5, 4.5), (-4.5, 4.5))

    def _terms(self, x):
        px, py = x[..., 0], x[..., 1]
        return [(c - px + px * py ** (k + 1), k + 1) for k, c in enumerate(self._c)]

    def value(self, x, step=1):
        return sum(t**2 for t, _ in self._terms(x))

    def grad(self, x, step=1):
        px, py = x[..., 0], x[..., 1]
        dx = sum(2 * t * (py**k - 1) for t, k in self._terms(x))
        dy = sum(2 * t * k * px * py ** (k - 1) for t, k in self._terms(x))
        return torch.stack([dx, dy], dim=-1)


class MountainsThenPlateau(Landscape):
    r"""A one-dimensional walk: steep, rugged mountains, then a long, nearly flat plateau, then a valley.

    $$f(x) = -p\,x + (m - p)\,w\,\mathrm{softplus}\big(\tfrac{a - x}{w}\big)
      + (p + q)\,w\,\mathrm{softplus}\big(\tfrac{x - b}{w}\big) + r \sin(kx)\,\sigma\big(\tfrac{a - x}{w}\big)$$

    Going right from ``start``: slope about ``-mountain_slope`` (with ripples of amplitude ``ripple``) until
    ``plateau_start``, then ``-plateau_slope`` until ``plateau_end``, then the valley wall rising with slope
    ``valley_slope``. The minimizer sits just past ``plateau_end``.
    """

    dim = 1
    name = "mountains then plateau"

    def __init__(
        self,
        mountain_slope=10.0,
        plateau_slope=0.01,
        valley_slope=1.0,
        plateau_start=0.0,
        plateau_end=5.0,
        ripple=0.2,
        ripple_freq=20.0,
        width=0.05,
    ):
        self.m, self.p, self.q = mountain_slope, plateau_slope, valley_slope
        self.a, self.b, self.w = plateau_start, plateau_end, width
        self.r, self.k = ripple, ripple_freq
        self.start = self._as_point([plateau_start - 1.0])
        self.window = (plateau_start - 1.2, plateau_end + 1.0)
        self.minimizer = self._solve_minimizer()

    def _gates(self, x):
        return torch.sigmoid((self.a - x) / self.w), torch.sigmoid((x - self.b) / self.w)

    def value(self, x, step=1):
        x1 = x[..., 0]
        mountains, _ = self._gates(x1)
        return (
            -self.p * x1
            + (self.m - self.p) * self.w * F.softplus((self.a - x1) / self.w)
            + (self.p + self.q) * self.w * F.softplus((x1 - self.b) / self.w)
            + self.r * torch.sin(self.k * x1) * mountains
        )

    def grad(self, x, step=1):
        x1 = x[..., 0]
        mountains, valley = self._gates(x1)
        d_mountains = -mountains * (1 - mountains) / self.w
        g = (
            -self.p
            - (self.m - self.p) * mountains
            + (self.p + self.q) * valley
            + self.r * (self.k * torch.cos(self.k * x1) * mountains + torch.sin(self.k * x1) * d_mountains)
        )
        return g[..., None]

    def _solve_minimizer(self):
        lo, hi = self.b - 20 * self.w, self.b + 20 * self.w  # f' < 0 at lo and > 0 at hi
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if self.grad(torch.tensor([mid], dtype=torch.float64))[0] < 0:
                lo = mid
            else:
                hi = mid
        return self._as_point([0.5 * (lo + hi)])


class ChangingLandscape(Landscape):
    r"""A landscape that changes during training: from step ``at_step`` on, $f_t(x) = c\, f(x - \delta)$.

    ``factor`` $c$ rescales every gradient (the terrain becomes gentler or steeper) and ``shift`` $\delta$
    moves the valley. Before ``at_step`` it is the ``base`` landscape unchanged.
    """

    def __init__(self, base: Landscape, at_step: int, factor: float = 1.0, shift=None):
        validate.positive("factor", factor)
        self.base, self.at_step, self.factor = base, int(at_step), float(factor)
        self.dim = base.dim
        self.shift = torch.zeros(base.dim, dtype=torch.float64) if shift is None else self._as_point(shift)
        self.name = f"{base.name}, changed at step {at_step}"
        self.start, self.window = base.start, getattr(base, "window", None)
        self.minimizer = base.minimizer + self.shift  # the minimizer after the change

    def minimizer_at(self, step: int) -> torch.Tensor:
        return self.minimizer if step >= self.at_step else self.base.minimizer

    def _changed(self, step):
        return step >= self.at_step

    def value(self, x, step=1):
        if not self._changed(step):
            return self.base.value(x)
        return self.factor * self.base.value(x - self.shift.to(x))

    def grad(self, x, step=1):
        if not self._changed(step):
            return self.base.grad(x)
        return self.factor * self.base.grad(x - self.shift.to(x))


class ReddiCounterexample(Landscape):
    r"""The online problem of Reddi, Kale & Kumar (2018) on which Adam converges to the worst point.

    $$f_t(x) = \begin{cases} C\,x & t \bmod n = 1 \\ -s\,x & \text{otherwise} \end{cases},\qquad x \in [-1, 1].$$

    With the defaults ($n = 3$, $s = 1$, $C > 2$) the average loss $(C - 2)x/3$ is smallest at $x^* = -1$.
    ``period=101, large=1010, small=10`` gives the paper's synthetic experiment.
    """

    dim = 1
    constrained = True

    def __init__(self, large: float = 3.0, small: float = 1.0, period: int = 3):
        if period < 2:
            raise ValueError(f"period must be an integer >= 2, got {period}")
        if not large > (period - 1) * small:
            raise ValueError("large must exceed (period - 1) * small, so that x* = -1")
        self.large, self.small, self.period = float(large), float(small), int(period)
        self.name = f"Reddi et al. counterexample (C={large:g})"
        self.minimizer = self._as_point([-1.0])
        self.start = self._as_point([0.0])
        self.window = (-1.0, 1.0)

    def slope(self, step: int) -> float:
        return self.large if step % self.period == 1 else -self.small

    def value(self, x, step=1):
        return self.slope(step) * x[..., 0]

    def grad(self, x, step=1):
        return torch.full_like(x, self.slope(step))

    def average_value(self, x):
        """The average of $f_t$ over one period: what the hiker should minimise."""
        return sum(self.value(x, t) for t in range(1, self.period + 1)) / self.period

    def project(self, x):
        return x.clamp(-1.0, 1.0)


class Saddle(Landscape):
    r"""$f(x, y) = x^2 + \tfrac14 y^4 - \tfrac12 y^2$: a saddle at the origin between minima at $(0, \pm 1)$."""

    name = "saddle"

    def __init__(self):
        self.minimizer = self._as_point([0.0, 1.0])
        self.saddle_point = self._as_point([0.0, 0.0])
        self.start = self._as_point([1.0, 1e-3])
        self.window = ((-1.5, 1.5), (-1.6, 1.6))

    def value(self, x, step=1):
        return x[..., 0] ** 2 + 0.25 * x[..., 1] ** 4 - 0.5 * x[..., 1] ** 2

    def grad(self, x, step=1):
        return torch.stack([2 * x[..., 0], x[..., 1] ** 3 - x[..., 1]], dim=-1)
