r"""The Fisher information of a small probabilistic model, and its empirical cousin.

For a model $p_\theta(y \mid x)$ and inputs $x_1, \dots, x_n$, write the **score** of one example as
$s(x, y) = \nabla_\theta \log p_\theta(y \mid x)$. Then

* the **Fisher information** averages over the inputs and over labels drawn *from the model*:
  $$F(\theta) = \frac1n \sum_{i=1}^n \mathbb E_{y \sim p_\theta(\cdot \mid x_i)}\big[s(x_i, y)\, s(x_i, y)^\top\big];$$
* the **empirical Fisher** uses the *observed* labels $y_i$ instead:
  $$\tilde F(\theta) = \frac1n \sum_{i=1}^n s(x_i, y_i)\, s(x_i, y_i)^\top .$$

They are different matrices (Kunstner et al., 2019); they agree only when the labels really come
from the model at $\theta$ and $n$ is large. AdaGrad's accumulator $G_t / t$, fed with one-example
gradients, estimates the diagonal of $\tilde F$ along the path, not of $F$.

The functions take a log-likelihood ``log_prob(theta, x, y)`` for *one* example, so any small model
works; :func:`logistic_log_prob` is logistic regression, $p_\theta(y = 1 \mid x) = \sigma(\theta^\top x)$,
whose Fisher has the closed form $X^\top \mathrm{diag}(p(1-p))\, X / n$ (:func:`logistic_fisher`), which is
also the Hessian of its mean negative log-likelihood.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..core import validate

__all__ = [
    "logistic_log_prob",
    "logistic_nll",
    "logistic_data",
    "logistic_fisher",
    "per_example_grads",
    "fisher",
    "empirical_fisher",
]

LogProb = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _check_design(theta: torch.Tensor, X: torch.Tensor):
    if theta.ndim != 1:
        raise ValueError(f"theta must be a vector of shape (d,), got shape {tuple(theta.shape)}")
    if X.ndim != 2 or X.shape[1] != theta.shape[0]:
        raise ValueError(f"X must have shape (n, {theta.shape[0]}) to match theta, got {tuple(X.shape)}")
    if X.shape[0] < 1:
        raise ValueError("X must hold at least one example (n >= 1)")


def logistic_log_prob(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""$\log p_\theta(y \mid x)$ for logistic regression, $y \in \{0, 1\}$, with $z = \theta^\top x$:
    $y \log \sigma(z) + (1 - y) \log \sigma(-z)$. Works for one example or a batch (``x`` of shape ``(n, d)``)."""
    z = x @ theta
    return y * F.logsigmoid(z) + (1 - y) * F.logsigmoid(-z)


def logistic_nll(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""The training loss: the mean negative log-likelihood $-\frac1n\sum_i \log p_\theta(y_i \mid x_i)$."""
    _check_design(theta, X)
    return -logistic_log_prob(theta, X, y).mean()


def logistic_data(
    n: int,
    scales: Sequence[float],
    theta_true: Sequence[float],
    generator: torch.Generator,
    flip: float = 0.0,
    dtype=torch.float64,
):
    r"""Inputs $x_{ij} = c_j z_{ij}$ with $z_{ij} \sim \mathcal N(0, 1)$ and feature scales $c_j$ = ``scales``;
    labels $y_i \sim \mathrm{Bernoulli}(\sigma(\theta_\star^\top x_i))$, then a fraction ``flip`` of them
    flipped (a misspecified model: the labels no longer come from any $p_\theta$).

    Returns ``(X, y)`` of shapes ``(n, d)`` and ``(n,)``. All randomness comes from ``generator``.
    """
    validate.integer_at_least("n", n, 1)
    scales = torch.as_tensor(scales, dtype=dtype)
    theta_true = torch.as_tensor(theta_true, dtype=dtype)
    if scales.ndim != 1 or theta_true.shape != scales.shape:
        raise ValueError(
            f"scales and theta_true must be vectors of the same length, got {tuple(scales.shape)} "
            f"and {tuple(theta_true.shape)}"
        )
    if not 0.0 <= flip <= 1.0:
        raise ValueError(f"flip must be a fraction in [0, 1], got {flip!r}")
    X = torch.randn(n, scales.shape[0], generator=generator, dtype=dtype) * scales
    p = torch.sigmoid(X @ theta_true)
    y = (torch.rand(n, generator=generator, dtype=dtype) < p).to(dtype)
    flipped = torch.rand(n, generator=generator, dtype=dtype) < flip
    y = torch.where(flipped, 1 - y, y)
    return X, y


def logistic_fisher(theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    r"""The closed form for logistic regression: $F = X^\top \mathrm{diag}\big(p(1-p)\big) X / n$ with
    $p = \sigma(X\theta)$. (It does not depend on the labels, and it equals the Hessian of the mean NLL.)"""
    _check_design(theta, X)
    p = torch.sigmoid(X @ theta)
    return (X * (p * (1 - p))[:, None]).T @ X / X.shape[0]


def per_example_grads(log_prob: LogProb, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""The scores $s(x_i, y_i) = \nabla_\theta \log p_\theta(y_i \mid x_i)$, one row per example: shape ``(n, d)``.

    The gradient of the *loss* $-\log p$ of example $i$ is minus row $i$. Computed with ``torch.func``
    (one vectorised pass, no Python loop over examples).
    """
    _check_design(theta, X)
    if y.shape[:1] != X.shape[:1]:
        raise ValueError(f"y must hold one label per row of X ({X.shape[0]}), got shape {tuple(y.shape)}")
    score = torch.func.grad(log_prob)
    return torch.func.vmap(score, in_dims=(None, 0, 0))(theta, X, y)


def empirical_fisher(log_prob: LogProb, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""$\tilde F = \frac1n \sum_i s(x_i, y_i) s(x_i, y_i)^\top$, with the observed labels: shape ``(d, d)``."""
    s = per_example_grads(log_prob, theta, X, y)
    return s.T @ s / s.shape[0]


def fisher(
    log_prob: LogProb,
    theta: torch.Tensor,
    X: torch.Tensor,
    labels: Sequence = (0.0, 1.0),
    samples: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The Fisher information $F = \frac1n\sum_i \mathbb E_{y\sim p_\theta(\cdot\mid x_i)}[s\,s^\top]$ (``(d, d)``).

    With ``samples=None`` the expectation is exact, a sum over the possible ``labels`` weighted by
    $p_\theta(y \mid x_i)$. With ``samples=k`` it is a Monte Carlo estimate instead: ``k`` labels per input
    drawn from the model with ``generator`` (this is what "sampling $y$ from the model" means).
    """
    _check_design(theta, X)
    labels = [float(v) for v in labels]
    if len(labels) < 2:
        raise ValueError(f"labels must list at least two possible values, got {labels!r}")
    ys = torch.tensor(labels, dtype=X.dtype, device=X.device)
    # log p(y | x_i) for every input and label: shape (n, K)
    logp = torch.stack(
        [log_prob(theta, X, torch.full((X.shape[0],), v, dtype=X.dtype, device=X.device)) for v in labels], dim=-1
    ).detach()
    if samples is None:
        out = torch.zeros(theta.shape[0], theta.shape[0], dtype=X.dtype, device=X.device)
        for k, v in enumerate(labels):
            s = per_example_grads(log_prob, theta, X, torch.full((X.shape[0],), v, dtype=X.dtype, device=X.device))
            out = out + (s * logp[:, k].exp()[:, None]).T @ s
        return out / X.shape[0]
    validate.integer_at_least("samples (or None, exact)", samples, 1)
    if generator is None:
        raise ValueError("samples=k needs a generator (torch.Generator) so that the draw is reproducible")
    probs = logp.exp()
    probs = probs / probs.sum(-1, keepdim=True)
    draws = torch.multinomial(probs.cpu().float(), samples, replacement=True, generator=generator).to(X.device)
    y = ys[draws].reshape(-1)  # (n * samples,)
    s = per_example_grads(log_prob, theta, X.repeat_interleave(samples, dim=0), y)
    return s.T @ s / s.shape[0]
