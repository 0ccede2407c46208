r"""Federated learning with an adaptive optimizer on the server (Reddi et al. 2021, "FedOpt").

A round $t$ of the simulation:

1. the server holds the model $x_t$ and picks $m$ of the $C$ clients;
2. each picked client $i$ starts from $x_t$ and runs $K$ local SGD steps with client learning rate
   $\eta_l$ on mini-batches of its own data, ending at $x_t^{(i)}$;
3. the server averages the clients' changes, weighted by their number of examples $n_i$,
   $$\Delta_t = \sum_i \frac{n_i}{\sum_j n_j}\,\bigl(x_t^{(i)} - x_t\bigr),$$
   and treats $-\Delta_t$ as a **pseudo-gradient** for a server optimizer with learning rate $\eta$.

The server optimizers are chains of :mod:`optbook.transforms` (:func:`server_optimizer`). With
$m_t = \beta_1 m_{t-1} + (1-\beta_1)\Delta_t$ they step

$$x_{t+1} = x_t + \eta\,\frac{m_t}{\sqrt{v_t} + \tau},$$

* FedAdagrad: $v_t = v_{t-1} + \Delta_t^2$;
* FedAdam:    $v_t = \beta_2 v_{t-1} + (1-\beta_2)\Delta_t^2$;
* FedYogi:    $v_t = v_{t-1} - (1-\beta_2)\,\Delta_t^2\,\operatorname{sign}(v_{t-1} - \Delta_t^2)$;

with $v_0 = m_0 = 0$ and no bias correction (as in Flower's strategies). $\tau$ sets the degree of
adaptivity: for $\tau \gg \sqrt{v_t}$ the step is plain (momentum) SGD with learning rate $\eta/\tau$.
FedAvg (McMahan et al. 2017) is server SGD with $\eta = 1$: $x_{t+1} = x_t + \Delta_t$, the weighted
average of the client models.

Everything is batched over $S$ server settings (a grid of $\eta$ and $\tau$, say): the server model is a
tensor of shape ``(S, P)``, one flat parameter vector per setting, and every setting sees the same
clients and the same mini-batches (common random numbers), so differences between settings are the
optimizer's alone.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from ..core import transforms as T
from ..core import validate

__all__ = [
    "dirichlet_split",
    "label_histogram",
    "ClientData",
    "pad_clients",
    "MLP",
    "server_optimizer",
    "SERVER_OPTIMIZERS",
    "FederatedResult",
    "simulate",
]


# --- Splitting the data over clients ------------------------------------------------------------------


def dirichlet_split(
    labels: torch.Tensor, n_clients: int, alpha: float, seed: int = 0, min_size: int = 2
) -> list[torch.Tensor]:
    r"""Split example indices over ``n_clients`` clients with label skew set by ``alpha``.

    For every class $k$ draw proportions $p_k \sim \mathrm{Dirichlet}(\alpha, \dots, \alpha)$ over the
    clients and deal the (shuffled) examples of class $k$ out in those proportions. Small $\alpha$ (0.1)
    gives each client a few classes; large $\alpha$ (100) gives nearly the same mix to all (IID). A client
    left with fewer than ``min_size`` examples is topped up with random examples of the largest client.
    ``seed`` seeds a numpy generator, so the split is reproducible. Returns one sorted index tensor per
    client; together they partition ``range(len(labels))``.
    """
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError("labels must be a non-empty 1-D tensor of class indices")
    most = len(labels) // max(min_size, 1)
    validate.integer_at_least("n_clients", n_clients, 1, most)
    validate.positive("alpha", alpha)
    rng = np.random.default_rng(seed)
    y = labels.cpu().numpy()
    parts = [[] for _ in range(n_clients)]
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        cuts = np.round(np.cumsum(rng.dirichlet(np.full(n_clients, float(alpha)))) * len(idx)).astype(int)
        for c, piece in enumerate(np.split(idx, np.minimum(cuts[:-1], len(idx)))):
            parts[c].append(piece)
    parts = [list(np.concatenate(p)) for p in parts]
    # top up clients below min_size with examples taken at random from the largest client
    for c in range(n_clients):
        while len(parts[c]) < min_size:
            donor = max(range(n_clients), key=lambda i: len(parts[i]))
            parts[c].append(parts[donor].pop(int(rng.integers(len(parts[donor])))))
    return [torch.from_numpy(np.sort(np.array(p, dtype=np.int64))) for p in parts]


def label_histogram(labels: torch.Tensor, parts: list[torch.Tensor], n_classes: int) -> torch.Tensor:
    """Counts of each class on each client: shape ``(n_clients, n_classes)``."""
    labels = torch.as_tensor(labels)
    return torch.stack([torch.bincount(labels[p], minlength=n_classes) for p in parts])


class ClientData(NamedTuple):
    """Every client's examples, padded to the largest client: ``x (C, n_max, d)``, ``y (C, n_max)``,
    ``counts (C,)`` (the first ``counts[i]`` rows of client ``i`` are real)."""

    x: torch.Tensor
    y: torch.Tensor
    counts: torch.Tensor

    def to(self, device) -> ClientData:
        return ClientData(self.x.to(device), self.y.to(device), self.counts.to(device))


def pad_clients(x: torch.Tensor, y: torch.Tensor, parts: list[torch.Tensor]) -> ClientData:
    """Stack the clients' shards into padded tensors (padding repeats the client's first example)."""
    n_max = max(len(p) for p in parts)
    idx = torch.stack([torch.cat([p, p[:1].expand(n_max - len(p))]) for p in parts])
    return ClientData(x[idx], y[idx], torch.tensor([len(p) for p in parts]))


# --- The model: a small MLP on flat parameter vectors, batched over settings and clients -----------------


class MLP:
    """A one-hidden-layer ReLU network (or, with ``hidden=0``, multinomial logistic regression) whose
    parameters live in one flat vector, so that a batch of models is a tensor of shape ``(..., P)``."""

    def __init__(self, n_in: int, hidden: int, n_out: int):
        validate.integer_at_least("n_in", n_in, 1)
        validate.integer_at_least("n_out", n_out, 1)
        validate.integer_at_least("hidden", hidden, 0)
        dims = [n_in, hidden, n_out] if hidden else [n_in, n_out]
        self.shapes = []
        for a, b in zip(dims[:-1], dims[1:]):
            self.shapes += [(a, b), (b,)]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.size = sum(self.sizes)

    def init(self, generator: torch.Generator | None = None, dtype=torch.float32) -> torch.Tensor:
        """He-uniform weights, zero biases: one flat vector of length ``size``."""
        pieces = []
        for shape in self.shapes:
            if len(shape) == 2:
                bound = math.sqrt(6 / shape[0])
                pieces.append((torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1).flatten() * bound)
            else:
                pieces.append(torch.zeros(shape, dtype=dtype))
        return torch.cat(pieces)

    def logits(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``theta (..., P)`` and ``x (..., n, d)`` broadcast to logits ``(..., n, n_out)``."""
        views = torch.split(theta, self.sizes, dim=-1)
        h = x
        for k in range(0, len(views), 2):
            w = views[k].unflatten(-1, self.shapes[k])
            h = h @ w + views[k + 1].unsqueeze(-2)
            if k + 2 < len(views):
                h = torch.relu(h)
        return h

    def accuracy(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Fraction of ``x`` classified correctly by each model in the batch ``theta (..., P)``."""
        with torch.no_grad():
            return (self.logits(theta, x).argmax(-1) == y).double().mean(-1)


# --- Server optimizers ------------------------------------------------------------------------------------


SERVER_OPTIMIZERS = ("FedAvg", "FedAdagrad", "FedAdam", "FedYogi")


def server_optimizer(name: str, lr=1.0, tau=1e-3, b1=0.9, b2=0.99) -> T.Transform:
    r"""The server's chain, applied to the pseudo-gradient $g_t = -\Delta_t$.

    * ``FedAvg``:     ``chain(scale_by_learning_rate(lr))`` (FedAvg proper is ``lr = 1``);
    * ``FedAdagrad``: ``chain(scale_by_rss(eps=tau), scale_by_learning_rate(lr))``, AdaGrad's piece as it is
      (so $\beta_1 = 0$ here; Algorithm 2 of the paper also allows server momentum);
    * ``FedAdam``:    ``chain(scale_by_adam(b1, b2, eps=tau, bias_correction=False), scale_by_learning_rate(lr))``;
    * ``FedYogi``:    ``chain(scale_by_yogi(b1, b2, eps=tau), scale_by_learning_rate(lr))``.

    ``lr`` and ``tau`` may be tensors of shape ``(S, 1)``: one server setting per row.
    Defaults follow Flower's FedAdam (``b1 = 0.9``, ``b2 = 0.99``), except ``tau = 1e-3``, the value the
    authors recommend as a start (Flower's default is ``1e-9``).
    """
    if name == "FedAvg":
        return T.chain(T.scale_by_learning_rate(lr))
    if name == "FedAdagrad":
        return T.chain(T.scale_by_rss(eps=tau), T.scale_by_learning_rate(lr))
    if name == "FedAdam":
        return T.chain(T.scale_by_adam(b1, b2, eps=tau, bias_correction=False), T.scale_by_learning_rate(lr))
    if name == "FedYogi":
        return T.chain(T.scale_by_yogi(b1, b2, eps=tau), T.scale_by_learning_rate(lr))
    raise ValueError(f"name must be one of {SERVER_OPTIMIZERS}, got {name!r}")


# --- The simulation ---------------------------------------------------------------------------------------


class FederatedResult(NamedTuple):
    """``accuracy (rounds + 1, S)`` on the evaluation set per round (row 0: the starting model); the final
    models' mean cross-entropy over all clients' data, ``train_loss (S,)``; the final models ``theta (S, P)``."""

    accuracy: torch.Tensor
    train_loss: torch.Tensor
    theta: torch.Tensor

    @property
    def final(self) -> torch.Tensor:
        return self.accuracy[-1]

    @property
    def best(self) -> torch.Tensor:
        return self.accuracy.nan_to_num(0.0).max(0).values


def _client_loss(model: MLP, theta, x, y, weight):
    """Sum over settings and clients of each client's mean cross-entropy on its mini-batch."""
    logits = model.logits(theta, x)  # (S, m, b, classes)
    nll = -torch.log_softmax(logits, -1).gather(-1, y.unsqueeze(-1).expand(*logits.shape[:-1], 1)).squeeze(-1)
    return (nll * weight).sum()


def _mean_loss(model: MLP, theta, x, y) -> torch.Tensor:
    with torch.no_grad():
        return (
            torch.nn.functional.cross_entropy(
                model.logits(theta, x).flatten(0, -2), y.expand(len(theta), -1).flatten(), reduction="none"
            )
            .view(len(theta), -1)
            .mean(-1)
        )


def simulate(
    model: MLP,
    data: ClientData,
    server: T.Transform,
    theta0: torch.Tensor,
    rounds: int,
    *,
    n_settings: int = 1,
    clients_per_round: int = 10,
    local_steps: int = 5,
    batch_size: int = 16,
    client_lr: float = 0.05,
    eval_x: torch.Tensor | None = None,
    eval_y: torch.Tensor | None = None,
    full_batch: bool = False,
    generator: torch.Generator | None = None,
    progress=None,
) -> FederatedResult:
    r"""Run ``rounds`` rounds of FedOpt for ``n_settings`` server settings at once.

    ``theta0 (P,)`` is the common starting model; ``server`` a chain whose hyperparameters broadcast
    against ``(n_settings, P)``. Each round picks ``clients_per_round`` clients uniformly without
    replacement; each runs ``local_steps`` SGD steps of learning rate ``client_lr`` on mini-batches of
    ``batch_size`` examples drawn with replacement from its own data (``full_batch=True``: on all of its
    data, i.e. local gradient descent). ``progress`` wraps the round loop
    (``optbook.progress``, for a bar).
    """
    validate.integer_at_least("rounds", rounds, 1)
    n_clients = len(data.counts)
    validate.integer_at_least("clients_per_round", clients_per_round, 1, n_clients)
    for name, value in (("local_steps", local_steps), ("batch_size", batch_size), ("n_settings", n_settings)):
        validate.integer_at_least(name, value, 1)
    validate.positive("client_lr", client_lr)
    theta = theta0.expand(n_settings, -1).clone()
    state = server.init(theta)
    dev = theta0.device
    data = data.to(dev)
    real = torch.arange(data.x.shape[1], device=dev) < data.counts.unsqueeze(-1)
    train_x, train_y = data.x[real], data.y[real]
    if eval_x is None:
        eval_x, eval_y = train_x, train_y
    acc = [model.accuracy(theta, eval_x, eval_y)]
    rounds_iter = range(rounds) if progress is None else progress(range(rounds))
    for _ in rounds_iter:
        picked = torch.randperm(n_clients, generator=generator)[:clients_per_round].to(dev)
        counts = data.counts[picked]
        weights = (counts / counts.sum()).to(theta.dtype)
        local = theta[:, None].expand(-1, clients_per_round, -1).clone()  # (S, m, P)
        if full_batch:
            xb, yb = data.x[picked], data.y[picked]  # (m, n_max, d): the padding rows get weight 0
            mask = (torch.arange(xb.shape[1], device=dev) < counts[:, None]).to(theta.dtype)
            weight = mask / counts[:, None].to(theta.dtype)
        for _ in range(local_steps):
            if not full_batch:
                u = torch.rand(clients_per_round, batch_size, generator=generator, dtype=torch.float64).to(dev)
                rows = (u * counts[:, None]).long()  # uniform over each client's own rows
                xb, yb = data.x[picked[:, None], rows], data.y[picked[:, None], rows]  # (m, b, d)
                weight = 1.0 / batch_size
            local.requires_grad_(True)
            (grad,) = torch.autograd.grad(_client_loss(model, local, xb, yb, weight), local)
            local = (local - client_lr * grad).detach()
        delta = torch.einsum("m,smp->sp", weights, local - theta[:, None])
        update, state = server.update(-delta, state, theta)
        theta = T.apply_updates(theta, update)
        acc.append(model.accuracy(theta, eval_x, eval_y))
    return FederatedResult(torch.stack(acc), _mean_loss(model, theta, train_x, train_y), theta)
