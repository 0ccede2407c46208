r"""Preconditioner pieces: update rules that multiply the gradient by a whole matrix.

A preconditioned step is $\theta_t = \theta_{t-1} - \gamma\,P_t\,g_t$ for a symmetric positive definite
matrix $P_t$. Gradient descent takes $P = I$, Newton's method $P = H^{-1}$, AdaGrad a diagonal
$P = \mathrm{diag}(\sum_s g_s^2)^{-1/2}$. The diagonal pieces live in :mod:`optbook.core.transforms`;
these keep matrices, in the same ``init(param) -> state``, ``update(u, state, param) -> (u, state)`` form:

* :func:`scale_by_newton`: $u = H^{-1} g$ for a fixed Hessian (Newton's method with ``lr = 1``);
* :func:`scale_by_full_matrix_rss`: full-matrix AdaGrad, $G_t = \sum_{s\le t} g_s g_s^\top$,
  $u = (G_t^{1/2} + \epsilon I)^{-1} g$; rotation invariant, unlike the diagonal AdaGrad;
* :func:`scale_by_shampoo`: Shampoo for matrix parameters, $u = L_t^{-1/4} G_t R_t^{-1/4}$;

and :func:`inverse_root`, the matrix function they share. Vectors live in the last axis (``(..., d)``),
so the pieces run a batch of hikers (a grid of learning rates) like every other transform.
"""

from __future__ import annotations

import torch

from . import validate
from .transforms import Transform, chain, scale_by_learning_rate

__all__ = [
    "full_matrix_adagrad",
    "inverse_root",
    "newton",
    "scale_by_full_matrix_rss",
    "scale_by_newton",
    "scale_by_shampoo",
    "square_matrix",
]


def square_matrix(name: str, m) -> torch.Tensor:
    m = torch.as_tensor(m, dtype=torch.float64) if not isinstance(m, torch.Tensor) else m
    if m.ndim < 2 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"{name} must be a square matrix (shape (..., d, d)), got shape {tuple(m.shape)}")
    if not torch.allclose(m, m.mT, rtol=1e-10, atol=1e-12 * float(m.abs().max()) + 1e-300):
        raise ValueError(f"{name} must be symmetric")
    return m


def inverse_root(matrix: torch.Tensor, p: float, eps: float = 0.0, rcond: float = 0.0) -> torch.Tensor:
    r"""$(M^{1/p} + \epsilon I)^{-1}$ for a symmetric positive semi-definite $M$, by its eigendecomposition.

    $M = V \Lambda V^\top$ gives
    $(M^{1/p} + \epsilon I)^{-1} = V\,\mathrm{diag}(1/(\lambda_i^{1/p} + \epsilon))\,V^\top$.
    Eigenvalues that rounding makes slightly negative count as 0. A direction with
    $\lambda_i \le$ ``rcond`` $\cdot \lambda_{\max}$, or with $\lambda_i^{1/p} + \epsilon = 0$, gets 0, as in a
    pseudo-inverse (use it when the vector to multiply is known to lie in the range of $M$).
    Works on a batch ``(..., d, d)``.
    """
    validate.positive("p", p)
    validate.non_negative("eps", eps)
    validate.non_negative("rcond", rcond)
    matrix = square_matrix("matrix", matrix)
    lam, vec = torch.linalg.eigh(matrix)
    root = lam.clamp_min(0) ** (1.0 / p) + eps
    keep = (root > 0) & (lam > rcond * lam[..., -1:]) if rcond > 0 else root > 0
    inv = torch.where(keep, 1.0 / torch.where(keep, root, torch.ones_like(root)), torch.zeros_like(root))
    return (vec * inv[..., None, :]) @ vec.mT


def scale_by_newton(hessian) -> Transform:
    r"""Newton's direction for a fixed Hessian: $u = H^{-1} g$.

    Chained with ``scale_by_learning_rate(1.0)`` it reaches the minimizer of any quadratic in one step:
    $x - H^{-1} H (x - x^*) = x^*$.
    """
    h = square_matrix("hessian", hessian)
    if bool((torch.linalg.eigvalsh(h) <= 0).any()):
        raise ValueError("hessian must be symmetric positive definite (all eigenvalues > 0)")

    def update(g, state, param):
        return torch.linalg.solve(h.to(g), g.unsqueeze(-1)).squeeze(-1), {}

    return Transform(lambda param: {}, update)


def newton(hessian, lr=1.0) -> Transform:
    r"""Newton's method: $\theta_t = \theta_{t-1} - \gamma H^{-1} g_t$ (``lr`` $=\gamma$, 1 by default)."""
    return chain(scale_by_newton(hessian), scale_by_learning_rate(lr))


def scale_by_full_matrix_rss(eps: float = 1e-10) -> Transform:
    r"""Full-matrix AdaGrad (Duchi et al. 2011): the sum of outer products instead of squares.

    $$G_t = G_{t-1} + g_t g_t^\top,\qquad u_t = \bigl(G_t^{1/2} + \epsilon I\bigr)^{-1} g_t .$$

    The diagonal of $G_t$ is AdaGrad's ``sum``. Since $g_t$ lies in the range of $G_t$, directions that
    $G_t$ has not seen yet (eigenvalues at rounding level) are dropped rather than divided by $\epsilon$,
    which would only amplify rounding noise. Keeping the whole matrix costs $d^2$ numbers per
    parameter vector, but makes the step rotation invariant: running on $f(Rx)$ from $R^\top x_0$
    visits exactly the rotated points. The state is ``{"outer_sum": (..., d, d)}``.
    """
    validate.non_negative("eps", eps)

    def init(param):
        d = param.shape[-1]
        return {"outer_sum": torch.zeros(d, d, dtype=param.dtype, device=param.device)}

    def update(g, state, param):
        total = state["outer_sum"] + g.unsqueeze(-1) * g.unsqueeze(-2)
        rcond = 64 * total.shape[-1] * torch.finfo(total.dtype).eps
        u = (inverse_root(total, 2.0, eps, rcond) @ g.unsqueeze(-1)).squeeze(-1)
        return u, {"outer_sum": total}

    return Transform(init, update)


def full_matrix_adagrad(lr=1e-2, eps: float = 1e-10) -> Transform:
    r"""$\theta_t = \theta_{t-1} - \gamma\,(G_t^{1/2} + \epsilon I)^{-1} g_t$, $G_t = \sum_{s\le t} g_s g_s^\top$."""
    return chain(scale_by_full_matrix_rss(eps), scale_by_learning_rate(lr))


def scale_by_shampoo(eps: float = 1e-4) -> Transform:
    r"""Shampoo (Gupta, Koren & Singer 2018) for a matrix parameter $W$ of shape ``(..., n, m)``.

    $$L_t = L_{t-1} + G_t G_t^\top,\quad R_t = R_{t-1} + G_t^\top G_t,\quad L_0 = \epsilon I_n,\ R_0 = \epsilon I_m,
      \qquad u_t = L_t^{-1/4}\, G_t\, R_t^{-1/4}.$$

    Two small matrices ($n^2 + m^2$ numbers) stand in for the $nm \times nm$ full-matrix AdaGrad: their
    Kronecker product $L^{1/2} \otimes R^{1/2}$ approximates $G^{\text{full}}$ (here the gradient is a matrix).
    """
    validate.positive("eps", eps)

    def init(param):
        if param.ndim < 2:
            raise ValueError(f"scale_by_shampoo needs a matrix parameter (ndim >= 2), got shape {tuple(param.shape)}")
        n, m = param.shape[-2:]
        eye = lambda k: torch.eye(k, dtype=param.dtype, device=param.device)
        return {"left": eps * eye(n), "right": eps * eye(m)}

    def update(g, state, param):
        left = state["left"] + g @ g.mT
        right = state["right"] + g.mT @ g
        u = inverse_root(left, 4.0) @ g @ inverse_root(right, 4.0)
        return u, {"left": left, "right": right}

    return Transform(init, update)
