r"""Preconditioning, measured: the condition number of the bowl a preconditioned step sees.

On a quadratic $f(x) = \tfrac12 x^\top H x$ the step with $P$ is gradient descent in the variables
$y = P^{-1/2} x$, where the curvature is $P^{1/2} H P^{1/2}$; the condition number of that matrix
(:func:`condition_number_after`) says how round the bowl has become. :func:`jacobi` and
:func:`diagonal_preconditioner` build the diagonal preconditioners to compare; the update rules that use
whole matrices (Newton, full-matrix AdaGrad, Shampoo) are pieces in :mod:`optbook.core.preconditioners`.
"""

from __future__ import annotations

import torch

from ..core import validate
from ..core.preconditioners import square_matrix

__all__ = ["condition_number_after", "diagonal_preconditioner", "jacobi"]


def jacobi(hessian) -> torch.Tensor:
    r"""The Jacobi (diagonal) preconditioner $P = \mathrm{diag}(H)^{-1}$: the best a diagonal can do cheaply.

    It rescales each coordinate by its own curvature, which makes an *axis-aligned* quadratic perfectly
    round; it cannot undo a rotation.
    """
    h = square_matrix("hessian", hessian)
    d = torch.diagonal(h, dim1=-2, dim2=-1)
    if bool((d <= 0).any()):
        raise ValueError("hessian must have a positive diagonal (every entry H_ii > 0) for the Jacobi preconditioner")
    return torch.diag_embed(1.0 / d)


def diagonal_preconditioner(second_moment: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    r"""The diagonal matrix an adaptive method divides by: $P = \mathrm{diag}\bigl(1/(\sqrt{s} + \epsilon)\bigr)$.

    ``second_moment`` $s$ is AdaGrad's ``sum`` or Adam's bias-corrected $\hat v_t$ (shape ``(..., d)``);
    the result has shape ``(..., d, d)``.
    """
    validate.non_negative("eps", eps)
    s = torch.as_tensor(second_moment)
    if bool((s < 0).any()):
        raise ValueError("second_moment must be >= 0 everywhere (it is a sum or average of squares)")
    return torch.diag_embed(1.0 / (s.sqrt() + eps))


def condition_number_after(hessian, preconditioner) -> torch.Tensor:
    r"""The condition number of $P^{1/2} H P^{1/2}$: the curvature the preconditioned step sees.

    $P = I$ gives $\kappa(H)$; $P = H^{-1}$ gives 1, the perfectly round bowl. Both arguments may carry
    batch axes ``(..., d, d)``; the result has shape ``(...)``.
    """
    h = square_matrix("hessian", hessian)
    p = square_matrix("preconditioner", preconditioner).to(h)
    lam_p, vec = torch.linalg.eigh(p)
    if bool((lam_p <= 0).any()):
        raise ValueError("preconditioner must be symmetric positive definite (all eigenvalues > 0)")
    half = (vec * lam_p.sqrt()[..., None, :]) @ vec.mT
    lam = torch.linalg.eigvalsh(half @ h @ half)
    if bool((lam <= 0).any()):
        raise ValueError("hessian must be symmetric positive definite (all eigenvalues > 0)")
    return lam[..., -1] / lam[..., 0]
