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
* :func:`warmup_cosine_lambda`: today's usual schedule, a linear warmup then a cosine decay to a floor.
* :func:`train_lm`: one training run that records the loss, the learning rate and the size of every step.
* :func:`stacked_loss` and :func:`train_stacked`: many :class:`TinyTransformerLM` models trained side by
  side as one batched computation (a grid of settings times seeds), with optbook's Adam/AdamW pieces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..core import transforms as T
from ..core import validate

__all__ = [
    "MarkovText",
    "TinyTransformerLM",
    "causal_mask",
    "transformer_lr",
    "transformer_lambda",
    "constant_then_decay_lambda",
    "warmup_cosine_lambda",
    "LMRun",
    "train_lm",
    "stack_models",
    "stacked_loss",
    "StackedRuns",
    "train_stacked",
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


def warmup_cosine_lambda(warmup: int, total: int, final: float = 0.1):
    r"""A ``LambdaLR`` factor: linear warmup over ``warmup`` steps, then a cosine decay to ``final`` at ``total``.

    For the $t$-th call to ``optimizer.step()`` ($t = 1, 2, \dots$) the factor is $t/\text{warmup}$ while
    $t \le$ ``warmup``, then $\text{final} + (1 - \text{final})\,\tfrac12\big(1 + \cos(\pi s)\big)$ with
    $s = (t - \text{warmup} - 1) / (\text{total} - \text{warmup} - 1)$: the peak at steps ``warmup`` and
    ``warmup + 1``, ``final`` at step ``total`` and after. ``warmup = 0`` starts at the peak. Multiply by the
    optimizer's ``lr`` (the peak).
    """
    validate.integer_at_least("warmup", warmup, 0)
    validate.integer_at_least("total", total, warmup + 2)
    if not (0.0 <= final <= 1.0):
        raise ValueError(f"Invalid final: {final!r}. final must be in [0, 1].")

    def factor(index):
        t = index + 1
        if t <= warmup:
            return t / warmup
        s = min(1.0, (t - warmup - 1) / max(total - warmup - 1, 1))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * s))

    return factor


@dataclass
class LMRun:
    """One training run of :func:`train_lm`: per step the training loss, the learning rate, the norm of
    the parameter change $\\lVert\theta_t - \theta_{t-1}\rVert$ and whether the gradient was clipped; and
    the loss on held-out text at the end."""

    losses: np.ndarray
    lrs: np.ndarray
    step_sizes: np.ndarray
    clipped: np.ndarray
    held_out: float


def train_lm(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_lambda,
    text: MarkovText,
    steps: int,
    batch: int,
    *,
    data_seed: int = 100,
    clip: float | None = None,
    held_out: int = 512,
    progress=None,
) -> LMRun:
    """Train ``model`` on fresh windows of ``text`` for ``steps`` steps (a ``LambdaLR(optimizer, lr_lambda)``
    schedule; ``clip``: clip the gradient's global norm with ``torch.nn.utils.clip_grad_norm_``).

    Every step draws ``batch`` new windows of ``model.context + 1`` tokens from a generator seeded with
    ``data_seed``, so runs with the same ``data_seed`` see the same text, and the training loss is a loss on
    unseen text. The held-out loss is measured on ``held_out`` windows of a fixed, separate seed.
    """
    validate.integer_at_least("steps", steps, 1)
    validate.integer_at_least("batch", batch, 1)
    if clip is not None:
        validate.positive("clip", clip)
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    gen = torch.Generator().manual_seed(data_seed)
    losses, lrs, sizes, clipped = [], [], [], []
    loop = range(steps) if progress is None else progress(range(steps))
    model.train()
    for _ in loop:
        tokens = text.sample(batch, model.context + 1, gen, device=device)
        loss = model.loss(tokens)
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
            clipped.append(bool(norm > clip))
        else:
            clipped.append(False)
        before = [p.detach().clone() for p in params]
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.step()
        sizes.append(math.sqrt(sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(params, before))))
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        tokens = text.sample(held_out, model.context + 1, torch.Generator().manual_seed(7), device=device)
        final = model.loss(tokens).item()
    return LMRun(np.array(losses), np.array(lrs), np.array(sizes), np.array(clipped), final)


# --- Many models at once --------------------------------------------------------------------------


def stack_models(models) -> dict:
    """The parameters of same-shaped :class:`TinyTransformerLM` models, stacked: name -> tensor ``(M, ...)``."""
    models = list(models)
    if not models:
        raise ValueError("models must hold at least one TinyTransformerLM")
    names = [n for n, _ in models[0].named_parameters()]
    return {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).clone() for n in names}


def stacked_loss(params: dict, tokens: torch.Tensor, n_heads: int, norm_first: bool = False) -> torch.Tensor:
    r"""The mean next-token cross-entropy of each of ``M`` stacked models (:func:`stack_models`) on its own
    windows ``tokens`` of shape ``(M, batch, length + 1)``; returns shape ``(M,)``.

    The same computation as :meth:`TinyTransformerLM.loss` (post-LN or pre-LN blocks, GELU, causal
    attention, dropout 0), written with a leading model dimension so that a grid of models trains in one
    pass; a test checks it against the module.
    """
    F = nn.functional
    M, B, L = tokens.shape
    x, y = tokens[..., :-1], tokens[..., 1:]
    T_ = L - 1
    E = params["embed.weight"]
    d = E.shape[-1]
    if d % n_heads:
        raise ValueError(f"Invalid n_heads: {n_heads}. d_model={d} must be divisible by n_heads.")
    dh = d // n_heads
    h = torch.gather(E, 1, x.reshape(M, -1, 1).expand(-1, -1, d)).view(M, B, T_, d) + params["position"][:, None, :T_]
    layers = sorted({int(n.split(".")[2]) for n in params if n.startswith("blocks.layers.")})

    def lin(z, w, b):
        return torch.einsum("mbti,moi->mbto", z, w) + b[:, None, None]

    for layer in layers:
        P = {n.split(".", 3)[3]: v for n, v in params.items() if n.startswith(f"blocks.layers.{layer}.")}

        def attention(z, P=P):
            qkv = lin(z, P["self_attn.in_proj_weight"], P["self_attn.in_proj_bias"])
            q, k, v = qkv.view(M, B, T_, 3, n_heads, dh).permute(3, 0, 1, 4, 2, 5).reshape(3, M * B, n_heads, T_, dh)
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            o = o.view(M, B, n_heads, T_, dh).transpose(2, 3).reshape(M, B, T_, d)
            return lin(o, P["self_attn.out_proj.weight"], P["self_attn.out_proj.bias"])

        def feed_forward(z, P=P):
            return lin(F.gelu(lin(z, P["linear1.weight"], P["linear1.bias"])), P["linear2.weight"], P["linear2.bias"])

        def norm(z, name, P=P):
            return F.layer_norm(z, (d,)) * P[name + ".weight"][:, None, None] + P[name + ".bias"][:, None, None]

        if norm_first:
            h = h + attention(norm(h, "norm1"))
            h = h + feed_forward(norm(h, "norm2"))
        else:
            h = norm(h + attention(h), "norm1")
            h = norm(h + feed_forward(h), "norm2")
    logits = lin(h, params["out.weight"], params["out.bias"])
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
    return ce.view(M, -1).mean(1)


@dataclass
class StackedRuns:
    """The result of :func:`train_stacked` for ``M`` models: per step and model the training loss, the
    learning rate, the norm of the parameter change and whether the gradient was clipped (arrays of shape
    ``(steps, M)``), and each model's loss on held-out text at the end (shape ``(M,)``)."""

    losses: np.ndarray
    lrs: np.ndarray
    step_sizes: np.ndarray
    clipped: np.ndarray
    held_out: np.ndarray


def train_stacked(
    models,
    text: MarkovText,
    steps: int,
    batch: int,
    lrs,
    *,
    beta1=0.9,
    beta2=0.999,
    eps: float = 1e-8,
    weight_decay=0.0,
    clip=None,
    data_seeds=None,
    n_heads: int = 4,
    norm_first: bool = False,
    held_out: int = 512,
    progress=None,
) -> StackedRuns:
    r"""Train ``M`` :class:`TinyTransformerLM` models side by side, each with its own Adam(W) settings.

    ``lrs`` has shape ``(steps, M)``: model ``m``'s learning rate at step ``t`` (a schedule per model).
    ``beta1``, ``beta2``, ``weight_decay`` and ``clip`` are numbers or sequences of ``M`` values; the
    update of each model is optbook's ``chain(scale_by_adam(beta1, beta2, eps), add_decayed_weights(wd),
    scale_by_learning_rate(lr_t))``, AdamW's order, with the decay applied to matrices only (no biases, no
    norms). ``clip`` (``None`` or ``inf``: off) scales the model's whole gradient to that norm when it is
    larger, as ``torch.nn.utils.clip_grad_norm_`` does. Model ``m`` draws its windows with the generator
    seeded by ``data_seeds[m]`` (default 100 for all), as :func:`train_lm` does, so with the same seeds and
    an Adam setting the two give the same run (a test checks it).
    """
    models = list(models)
    M = len(models)
    validate.integer_at_least("steps", steps, 1)
    validate.integer_at_least("batch", batch, 1)
    device = next(models[0].parameters()).device
    lrs = torch.as_tensor(np.asarray(lrs, dtype=np.float64), dtype=torch.float32, device=device)
    if lrs.shape != (steps, M):
        raise ValueError(f"lrs must have shape (steps, M) = ({steps}, {M}), got {tuple(lrs.shape)}")

    def per_model(name, value):
        t = torch.as_tensor(value, dtype=torch.float32, device=device).flatten()
        if t.numel() == 1:
            t = t.expand(M)
        if t.numel() != M:
            raise ValueError(f"{name} must be a number or {M} values (one per model), got {t.numel()}")
        return t

    b1, b2 = per_model("beta1", beta1), per_model("beta2", beta2)
    wd = per_model("weight_decay", weight_decay)
    limit = per_model("clip", float("inf") if clip is None else clip)
    if bool((limit <= 0).any()):
        raise ValueError("Invalid clip: clip must be > 0 (or None / inf for no clipping).")
    seeds = [100] * M if data_seeds is None else [int(s) for s in data_seeds]
    if len(seeds) != M:
        raise ValueError(f"data_seeds must hold {M} seeds (one per model), got {len(seeds)}")
    params = stack_models(models)
    context = models[0].context
    chains, states = {}, {}
    for name, p in params.items():
        shape = (M,) + (1,) * (p.dim() - 1)
        decay = wd.view(shape) if p.dim() >= 3 else 0.0

        def lr_at(t, shape=shape):
            return lrs[t - 1].view(shape)

        chains[name] = T.chain(
            T.scale_by_adam(b1.view(shape), b2.view(shape), eps),
            T.add_decayed_weights(decay),
            T.scale_by_learning_rate(lr_at),
        )
        states[name] = chains[name].init(p)
    generators = {s: torch.Generator().manual_seed(s) for s in sorted(set(seeds))}
    losses, sizes, clipped = [], [], []
    loop = range(steps) if progress is None else progress(range(steps))
    for _ in loop:
        drawn = {s: text.sample(batch, context + 1, g, device=device) for s, g in generators.items()}
        tokens = torch.stack([drawn[s] for s in seeds])
        leaves = {n: p.requires_grad_() for n, p in params.items()}
        loss = stacked_loss(leaves, tokens, n_heads, norm_first)
        grads = dict(zip(leaves, torch.autograd.grad(loss.sum(), list(leaves.values()))))
        with torch.no_grad():
            norm = torch.sqrt(sum(g.pow(2).flatten(1).sum(1) for g in grads.values()))
            coef = (limit / (norm + 1e-6)).clamp(max=1.0)
            clipped.append((norm > limit).cpu().numpy())
            moved = torch.zeros(M, device=device)
            for n, p in params.items():
                g = grads[n] * coef.view((M,) + (1,) * (p.dim() - 1))
                u, states[n] = chains[n].update(g, states[n], p.detach())
                params[n] = p.detach() + u
                moved += u.pow(2).flatten(1).sum(1)
        sizes.append(moved.sqrt().cpu().numpy())
        losses.append(loss.detach().cpu().numpy())
    with torch.no_grad():
        tokens = text.sample(held_out, context + 1, torch.Generator().manual_seed(7), device=device)
        final = stacked_loss(params, tokens[None].expand(M, -1, -1), n_heads, norm_first).cpu().numpy()
    return StackedRuns(np.array(losses), lrs.cpu().numpy(), np.array(sizes), np.array(clipped), final)
