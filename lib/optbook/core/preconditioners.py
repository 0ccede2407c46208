r"""Preconditioner pieces: update rules that multiply the gradient by a whole matrix.

A preconditioned step is $\theta_t = \theta_{t-1} - \gamma\,P_t\,g_t$ for a symmetric positive definite
matrix $P_t$. Gradient descent takes $P = I$, Newton's method $P = H^{-1}$, AdaGrad a diagonal
$P = \mathrm{diag}(\sum_s g_s^2)^{-1/2}$. The diagonal pieces live in :mod:`optbook.core.transforms`;
these keep matrices, in the same ``init(param) -> state``, ``update(u, state, param) -> (u, state)`` form:

* :func:`scale_by_newton`: $u = H^{-1} g$ for a fixed Hessian (Newton's method with ``lr = 1``);
* :func:`scale_by_full_matrix_rss`: full-matrix AdaGrad, $G_t = \sum_{s\le t} g_s g_s^\top$,
  $u = (G_t^{1/2} + \epsilon I)^{-1} g$; rotation invariant, unlike the diagonal AdaGrad;
* :func:`scale_by_shampoo`: Shampoo for matrix parameters, $u = L_t^{-1/4} G_t R_t^{-1/4}$;
* :func:`scale_by_soap`: SOAP, Adam run in the eigenbasis of Shampoo's $L_t$ and $R_t$ (any rank);

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
    "scale_by_soap",
    "soap_merge_dims",
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


# --- SOAP: Adam in the eigenbasis of Shampoo's preconditioner ------------------------------------------

SOAP_DATA_FORMATS = ("channels_first", "channels_last")


def soap_merge_dims(x: torch.Tensor, max_precond_dim: int, data_format: str = "channels_first") -> torch.Tensor:
    """The reference's ``merge_dims``: consecutive axes are merged while their product stays
    <= ``max_precond_dim`` (a 4-D ``channels_last`` tensor is first permuted to NCHW)."""
    if data_format == "channels_last" and x.dim() == 4:
        x = x.permute(0, 3, 1, 2)
    new_shape, current = [], 1
    for size in x.shape:
        if current * size > max_precond_dim:
            if current > 1:
                new_shape.append(current)
                current = size
            else:
                new_shape.append(size)
                current = 1
        else:
            current *= size
    if current > 1 or not new_shape:
        new_shape.append(current)
    return x.reshape(new_shape)


def _soap_view(x, merge_dims, max_precond_dim, data_format):
    """``x`` as SOAP preconditions it, and a function that restores the original layout."""
    if not merge_dims:
        return x, lambda y: y
    shape = x.shape
    if data_format == "channels_last" and x.dim() == 4:
        permuted = x.permute(0, 3, 1, 2).shape
        return soap_merge_dims(x, max_precond_dim, data_format), lambda y: y.reshape(permuted).permute(0, 2, 3, 1)
    return soap_merge_dims(x, max_precond_dim, data_format), lambda y: y.reshape(shape)


def _soap_rotate(x, bases, back, merge_dims, max_precond_dim, data_format):
    r"""The reference's ``project`` ($x \mapsto x \times_k Q_k^\top$ along every axis $k$) and ``project_back``
    ($\times_k Q_k$). Each product moves the axis it rotates to the end; an axis without a basis
    (``None``) is moved to the end unrotated, so after all axes the original order is back."""
    x, restore = _soap_view(x, merge_dims, max_precond_dim, data_format)
    for q in bases:
        x = torch.movedim(x, 0, -1)  # tensordot(x, q, dims=[[0], [0 or 1]]), as one matmul
        if q is not None:
            x = x @ (q.mT if back else q)
    return restore(x)


def _eig_dtype(m: torch.Tensor) -> torch.dtype:
    """The eigensolvers run in float32 at least (torch's eigh and qr take neither float16 nor bfloat16)."""
    return m.dtype if m.dtype in (torch.float32, torch.float64) else torch.float32


def _soap_eigenbasis(m: torch.Tensor) -> torch.Tensor:
    """The reference's ``get_orthogonal_matrix``: the eigenvectors of $m$, largest eigenvalue first."""
    work = m.to(_eig_dtype(m))
    eye = torch.eye(work.shape[0], dtype=work.dtype, device=work.device)
    try:
        _, q = torch.linalg.eigh(work + 1e-30 * eye)
    except torch.linalg.LinAlgError:  # the reference retries in float64
        _, q = torch.linalg.eigh(work.double() + 1e-30 * eye.double())
        q = q.to(work.dtype)
    return torch.flip(q, [1]).to(m.dtype)


def scale_by_soap(
    b1=0.95,
    b2=0.95,
    shampoo_beta=-1.0,
    eps=1e-8,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    merge_dims: bool = False,
    precondition_1d: bool = False,
    normalize_grads: bool = False,
    data_format: str = "channels_first",
    correct_bias: bool = True,
) -> Transform:
    r"""SOAP (Vyas et al. 2024), as the authors' ``soap.py`` (github.com/nikhilvyas/SOAP), before the
    learning rate: Adam, run in the eigenbasis of Shampoo's preconditioner.

    For a matrix gradient $G_t$ ($n\times m$) SOAP keeps Shampoo's two statistics as moving averages,
    $L_t = \beta_s L_{t-1} + (1-\beta_s) G_t G_t^\top$ and $R_t = \beta_s R_{t-1} + (1-\beta_s) G_t^\top G_t$
    ($\beta_s$ = ``shampoo_beta``, or $\beta_2$ when it is negative), and their eigenbases $Q_L$, $Q_R$.
    The gradient is rotated into that basis, $G'_t = Q_L^\top G_t Q_R$, where Adam's moments live:

    $$m_t = \beta_1 m_{t-1} + (1-\beta_1) G'_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) G'^2_t,\quad
      u_t = \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\; Q_L \frac{m_t}{\sqrt{v_t} + \epsilon} Q_R^\top .$$

    Every ``precondition_frequency`` steps the bases are refreshed by one power-iteration step and a QR
    decomposition ($Q \leftarrow \mathrm{qr}(L Q)$, columns sorted by $\mathrm{diag}(Q^\top L Q)$, $v$'s axes
    permuted to match), and $m$ is carried into the new basis (it is stored rotated; $v$ only permuted).
    The very first call only starts the statistics and takes the bases from ``eigh``: it returns a zero
    update, so that the current gradient is never used in its own projection (as the reference).

    A tensor of any rank gets one such matrix per axis (a vector one only with ``precondition_1d=True``,
    and no axis longer than ``max_precond_dim``: those stay unrotated); ``merge_dims`` first merges
    consecutive axes while their product stays <= ``max_precond_dim``. ``normalize_grads`` divides the step
    by its RMS. The state is ``step``, ``exp_avg`` (rotated), ``exp_avg_sq``, and per rotated axis $k$
    ``GG{k}`` (the statistic) and ``Q{k}`` (its basis): for an $n\times m$ matrix,
    $2(n^2 + m^2)$ numbers on top of Adam's $2nm$, twice Shampoo's. One difference from the reference: it
    runs ``eigh`` and ``qr`` in float32 whatever the parameter's dtype; here float64 parameters keep
    float64 (float16 and bfloat16 still use float32). The whole tensor is one parameter (no batch axes).
    """
    validate.in_unit_interval("beta1 (betas[0])", b1)
    validate.in_unit_interval("beta2 (betas[1])", b2)
    if not (float(shampoo_beta) < 0 or 0 <= float(shampoo_beta) < 1):
        raise ValueError(
            f"Invalid shampoo_beta: {shampoo_beta}. shampoo_beta must be in [0, 1), or negative to use betas[1]."
        )
    validate.non_negative("eps", eps)
    validate.integer_at_least("precondition_frequency", precondition_frequency, 1)
    validate.integer_at_least("max_precond_dim", max_precond_dim, 0)
    if data_format not in SOAP_DATA_FORMATS:
        raise ValueError(f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}")
    beta_s = b2 if shampoo_beta < 0 else shampoo_beta
    view = dict(merge_dims=merge_dims, max_precond_dim=max_precond_dim, data_format=data_format)

    def axes(param):
        """The size of each axis SOAP preconditions, None for an axis it leaves unrotated."""
        if param.dim() == 1:
            n = param.shape[0]
            return [n if precondition_1d and n <= max_precond_dim else None]
        shape = soap_merge_dims(param, max_precond_dim, data_format).shape if merge_dims else param.shape
        return [n if n <= max_precond_dim else None for n in shape]

    def init(param):
        state = {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}
        for k, n in enumerate(axes(param)):
            if n is not None:
                state[f"GG{k}"] = torch.zeros(n, n, dtype=param.dtype, device=param.device)
        return state  # no "step" yet: the first call starts the preconditioner and takes no step

    def bases(state, param):
        return [state.get(f"Q{k}") for k in range(len(axes(param)))]

    def rotate(x, state, param, back=False):
        return _soap_rotate(x, bases(state, param), back, **view)

    def statistics(g, state, param):
        """The reference's ``update_preconditioner`` up to the basis: the new ``GG{k}``."""
        new = {}
        if g.dim() == 1:
            if f"GG{0}" in state:
                new["GG0"] = torch.lerp(state["GG0"], g.unsqueeze(1) @ g.unsqueeze(0), 1 - beta_s)
            return new
        gm = soap_merge_dims(g, max_precond_dim, data_format) if merge_dims else g
        for k in range(gm.dim()):
            if f"GG{k}" in state:  # the outer product contracted over every other axis
                rows = torch.movedim(gm, k, 0).reshape(gm.shape[k], -1)
                new[f"GG{k}"] = torch.lerp(state[f"GG{k}"], rows @ rows.mT, 1 - beta_s)
        return new

    def refresh(state, exp_avg_sq):
        """The reference's ``get_orthogonal_matrix_QR``: one power step and QR per basis, v permuted to match."""
        new = {}
        v, restore = _soap_view(exp_avg_sq, merge_dims, max_precond_dim, data_format)
        for k in range(v.dim()):
            if f"Q{k}" not in state:
                continue
            m, q = state[f"GG{k}"], state[f"Q{k}"]
            work = _eig_dtype(m)
            m, q = m.to(work), q.to(work)
            order = torch.argsort(torch.diag(q.T @ m @ q), descending=True)
            v = v.index_select(k, order)
            new[f"Q{k}"] = torch.linalg.qr(m @ q[:, order])[0].to(state[f"GG{k}"].dtype)
        return new, restore(v)

    def update(g, state, param):
        if "step" not in state:  # the first call: statistics and their eigenbases only, no step
            new = statistics(g, state, param)
            new.update({f"Q{k[2:]}": _soap_eigenbasis(m) for k, m in new.items()})
            return torch.zeros_like(g), {**new, "step": 0}
        t = state["step"] + 1
        g_rot = rotate(g, state, param)
        m = state["exp_avg"].mul(b1).add(g_rot, alpha=1 - b1)
        v = state["exp_avg_sq"].mul(b2).add(g_rot.square(), alpha=1 - b2)
        u = rotate(m / v.sqrt().add(eps), state, param, back=True)
        if normalize_grads:
            u = u / (1e-30 + torch.mean(u**2) ** 0.5)
        if correct_bias:
            u = u * ((1 - b2**t) ** 0.5 / (1 - b1**t))
        # the reference's update_preconditioner: new statistics and, every precondition_frequency steps, new
        # bases, with m carried into them. (The reference rotates m back and forth at every step; between
        # refreshes that is Q^T Q m = m up to rounding, so it is done only when the basis changes.)
        new = {"step": t, **statistics(g, state, param)}
        if t % precondition_frequency == 0:
            basis, v = refresh({**state, **new}, v)
            new.update(basis)
            m = rotate(rotate(m, state, param, back=True), {**state, **new}, param)
        new.update(exp_avg=m, exp_avg_sq=v)
        return u, new

    return Transform(init, update)
