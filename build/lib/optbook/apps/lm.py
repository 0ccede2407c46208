r"""A small Transformer language model, text with a known entropy rate, and the Transformer's schedule.

* :class:`MarkovText`: tokens from an order-$k$ Markov chain over a small vocabulary. Its entropy rate

  $$H = -\sum_{c} \pi(c) \sum_{v} P(v \mid c) \log P(v \mid c)$$

  (in nats, $\pi$ the stationary distribution of the $k$-token contexts $c$) is the lowest average
  cross-entropy any model can reach on positions that see $k$ tokens back: a floor for the loss curve.
* :class:`TinyTransformerLM`: token and position embeddings, ``torch.nn.TransformerEncoderLayer`` blocks
  with a causal mask (a position attends to itself and the past only), and a linear read-out.
* :func:`transformer_lr`: the schedule of Vaswani et al. (2017, §5.3) {cite}`vaswani2017attention`,

  $$\text{lrate}(t) = d_{model}^{-0.5}\cdot\min\big(t^{-0.5},\ t\cdot \text{warmup}^{-1.5}\big),$$

  and :func:`transformer_lambda`, the same as a factor for ``torch.optim.lr_scheduler.LambdaLR``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core import validate

__all__ = [
    "MarkovText",
    "TinyTransformerLM",
    "causal_mask",
    "transformer_lr",
    "transformer_lambda",
    "constant_then_decay_lambda",
]


# --- The text ---------------------------------------------------------------------------------------


class MarkovText:
    r"""An order-``order`` Markov chain over ``vocab_size`` tokens, with seeded random transitions.

    Each context of ``order`` tokens allows ``branching`` next tokens, with probabilities drawn from a
    Dirichlet distribution of concentration ``concentration`` (small: a few likely continuations).
    ``table[c]`` is $P(\cdot \mid c)$ for context index $c = \sum_i x_{t-order+i}\,V^{order-1-i}$.
    """

    def __init__(
        self, vocab_size: int = 16, order: int = 3, branching: int = 4, concentration: float = 0.5, seed: int = 0
    ):
        self.vocab_size = validate.integer_at_least("vocab_size", vocab_size, 2)
        self.order = validate.integer_at_least("order", order, 1)
        self.branching = validate.integer_at_least("branching", branching, 1)
        if self.branching > self.vocab_size:
            raise ValueError(f"Invalid branching: {branching}. branching must be in [1, vocab_size={vocab_size}].")
        if not concentration > 0:
            raise ValueError(f"Invalid concentration: {concentration!r}. concentration must be > 0.")
        if self.vocab_size**self.order > 2**20:
            raise ValueError("vocab_size ** order must be at most 2**20 contexts")
        rng = np.random.default_rng(seed)
        n = self.vocab_size**self.order
        table = np.zeros((n, self.vocab_size))
        for c in range(n):
            allowed = rng.choice(self.vocab_size, size=self.branching, replace=False)
            table[c, allowed] = rng.dirichlet(np.full(self.branching, concentration))
        table = np.maximum(table, 0.0)
        self.table = torch.tensor(table / table.sum(1, keepdims=True), dtype=torch.float64)
        self.stationary = self._stationary()

    @property
    def n_contexts(self) -> int:
        return self.vocab_size**self.order

    def _next_context(self, c, v):
        return (c * self.vocab_size) % self.n_contexts + v

    def _stationary(self, iterations: int = 10_000, tol: float = 1e-14) -> torch.Tensor:
        """Stationary distribution of the contexts, by power iteration on the context chain."""
        n, V = self.n_contexts, self.vocab_size
        c = torch.arange(n)[:, None].expand(n, V)
        nxt = self._next_context(c, torch.arange(V)[None, :].expand(n, V))
        pi = torch.full((n,), 1.0 / n, dtype=torch.float64)
        for _ in range(iterations):
            flow = (pi[:, None] * self.table).reshape(-1)
            new = torch.zeros(n, dtype=torch.float64).index_add_(0, nxt.reshape(-1), flow)
            # a lazy step (average with the old) converges also when the chain is periodic
            new = 0.5 * (new + pi)
            if (new - pi).abs().sum() < tol:
                return new
            pi = new
        return pi

    def entropy_rate(self) -> float:
        r"""$H = -\sum_c \pi(c) \sum_v P(v\mid c)\log P(v\mid c)$, in nats per token."""
        p = self.table
        plogp = torch.where(p > 0, p * p.clamp_min(1e-300).log(), torch.zeros_like(p))
        return float(-(self.stationary * plogp.sum(1)).sum())

    def block_entropy(self, n: int) -> float:
        r"""$H(x_1, \dots, x_n)$ of $n \le$ ``order`` consecutive tokens of the stationary chain, in nats."""
        validate.integer_at_least("n", n, 0)
        if n > self.order:
            raise ValueError(f"Invalid n: {n}. n must be in [0, order={self.order}].")
        if n == 0:
            return 0.0
        p = self.stationary.view(*([self.vocab_size] * self.order))
        if n < self.order:  # (sum over an empty tuple of dims would sum everything)
            p = p.sum(dim=tuple(range(self.order - n)))
        p = p.reshape(-1)
        return float(-(p[p > 0] * p[p > 0].log()).sum())

    def optimal_loss(self, length: int) -> float:
        r"""The lowest mean cross-entropy over positions $1..$``length`` of a window that starts anywhere in
        the stationary chain: position $t$ sees $t - 1$ tokens, so for $t \le$ ``order`` the floor is
        $H(x_t \mid x_{<t}) = H_t - H_{t-1}$ (block entropies), and the entropy rate after that."""
        validate.integer_at_least("length", length, 1)
        per = [self.block_entropy(t) - self.block_entropy(t - 1) for t in range(1, min(length, self.order) + 1)]
        per += [self.entropy_rate()] * (length - len(per))
        return sum(per) / length

    def next_token_floor(self, context: int) -> float:
        r"""The floor for :meth:`TinyTransformerLM.loss` on windows of ``context + 1`` tokens: the mean of
        $H(x_t \mid x_{<t})$ over the predicted positions $t = 2..$``context``$+1$ (the first token is given)."""
        validate.integer_at_least("context", context, 1)
        return (self.optimal_loss(context + 1) * (context + 1) - self.block_entropy(1)) / context

    def sample(self, batch: int, length: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``batch`` windows of ``length`` tokens, each starting in the stationary distribution; int64."""
        validate.integer_at_least("batch", batch, 1)
        validate.integer_at_least("length", length, 1)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        c = torch.multinomial(self.stationary, batch, replacement=True, generator=gen)
        first, out, V = [], [], self.vocab_size
        for i in range(self.order):  # the context's own tokens, most distant first
            first.append((c // V ** (self.order - 1 - i)) % V)
        out = first[:length]
        uniform = torch.rand(batch, max(0, length - self.order), generator=gen, dtype=torch.float64)
        cdf = self.table.cumsum(1)
        for t in range(max(0, length - self.order)):
            v = torch.searchsorted(cdf[c], uniform[:, t : t + 1].contiguous()).squeeze(1).clamp_max(V - 1)
            out.append(v)
            c = self._next_context(c, v)
        tokens = torch.stack(out, dim=1)
        return tokens if device is None else tokens.to(device)

    def log_prob(self, tokens: torch.Tensor) -> torch.Tensor:
        r"""$\log P(x_t \mid x_{t-order..t-1})$ for each position $t \ge$ ``order`` of ``tokens``, shape
        ``(batch, length - order)``: the true model's per-token log-likelihood."""
        V, k = self.vocab_size, self.order
        c = torch.zeros(tokens.shape[0], tokens.shape[1] - k, dtype=torch.long)
        for i in range(k):
            c = c * V + tokens[:, i : tokens.shape[1] - k + i].cpu()
        return self.table[c, tokens[:, k:].cpu()].log()


# --- The model --------------------------------------------------------------------------------------


def causal_mask(length: int, device=None) -> torch.Tensor:
    """Float mask with ``-inf`` above the diagonal: position ``t`` may attend to positions ``<= t`` only."""
    return nn.Transformer.generate_square_subsequent_mask(length, device=device)


class TinyTransformerLM(nn.Module):
    r"""A decoder-only Transformer: $\text{logits} = W_{out}\,\text{Blocks}(E[x] + P)$ with causal attention.

    ``norm_first=False`` (the default) is the post-LN block of Vaswani et al.: $x \leftarrow
    \text{LN}(x + \text{Attn}(x))$, $x \leftarrow \text{LN}(x + \text{FFN}(x))$, the variant that is known
    to need warmup; ``norm_first=True`` is the pre-LN block of GPT-2 and most models since.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        context: int = 32,
        d_ff: int | None = None,
        dropout: float = 0.0,
        norm_first: bool = False,
    ):
        super().__init__()
        validate.integer_at_least("vocab_size", vocab_size, 2)
        validate.integer_at_least("d_model", d_model, 1)
        validate.integer_at_least("n_heads", n_heads, 1)
        validate.integer_at_least("n_layers", n_layers, 1)
        validate.integer_at_least("context", context, 1)
        if d_model % n_heads:
            raise ValueError(f"Invalid n_heads: {n_heads}. d_model={d_model} must be divisible by n_heads.")
        self.context = context
        self.embed = nn.Embedding(vocab_size, d_model)
        self.position = nn.Parameter(torch.randn(context, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, d_ff or 4 * d_model, dropout, batch_first=True, norm_first=norm_first, activation="gelu"
        )
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(batch, length, vocab_size)``; position ``t`` predicts token ``t + 1``."""
        length = tokens.shape[1]
        if length > self.context:
            raise ValueError(f"tokens has length {length}, more than the model's context {self.context}")
        h = self.embed(tokens) + self.position[:length]
        h = self.blocks(h, mask=causal_mask(length, tokens.device), is_causal=True)
        return self.out(h)

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) of a batch of windows of ``context + 1`` tokens."""
        logits = self(tokens[:, :-1])
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


# --- The schedule -----------------------------------------------------------------------------------


def transformer_lr(step, d_model: int = 512, warmup: int = 4000):
    r"""$d_{model}^{-0.5}\min(t^{-0.5}, t\,\text{warmup}^{-1.5})$ for steps $t = 1, 2, \dots$ (numbers or tensors).

    Linear growth for ``warmup`` steps up to the peak $(d_{model}\,\text{warmup})^{-0.5}$, then decay as $t^{-1/2}$.
    """
    validate.integer_at_least("d_model", d_model, 1)
    validate.integer_at_least("warmup", warmup, 1)
    if isinstance(step, torch.Tensor):
        if (step < 1).any():
            raise ValueError("step must be >= 1 (steps are counted from 1)")
        t = step.double()
        return d_model**-0.5 * torch.minimum(t**-0.5, t * warmup**-1.5)
    if step < 1:
        raise ValueError(f"Invalid step: {step!r}. step must be >= 1 (steps are counted from 1).")
    return d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def transformer_lambda(d_model: int = 512, warmup: int = 4000, scale: float = 1.0):
    """The schedule as a ``LambdaLR`` factor: with the optimizer's ``lr=1.0`` (times ``scale``), the learning
    rate of the ``t``-th call to ``optimizer.step()`` is ``scale * transformer_lr(t)``. (``LambdaLR`` passes
    0 before the first step, so the factor is evaluated at ``index + 1``.)"""
    validate.integer_at_least("d_model", d_model, 1)
    validate.integer_at_least("warmup", warmup, 1)
    return lambda index: scale * transformer_lr(index + 1, d_model, warmup)


def constant_then_decay_lambda(d_model: int = 512, warmup: int = 4000, scale: float = 1.0):
    """No warmup: the schedule's peak from step 1, then the same $t^{-1/2}$ decay after ``warmup`` steps."""
    peak = transformer_lr(warmup, d_model, warmup)
    return lambda index: scale * (peak if index + 1 <= warmup else transformer_lr(index + 1, d_model, warmup))
