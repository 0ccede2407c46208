r"""Training in low precision: the recipes of mixed-precision training, side by side.

A *recipe* says where each number lives:

=========================  ==================  ====================  ==============  ============
recipe                     weights updated in  forward / backward    Adam's m, v     loss scaling
=========================  ==================  ====================  ==============  ============
``fp32``                   float32             float32               float32         no
``fp16``                   float16             float16               float16         no
``fp16 + fp32 state``      float16             float16               float32         no
``fp16 master``            float32 (master)    float16 copies        float32         no
``fp16 master + scaling``  float32 (master)    float16 copies        float32         yes
``fp16 AMP``               float32             autocast float16      float32         yes (GradScaler)
``bf16``                   bfloat16            bfloat16              bfloat16        no
``bf16 autocast``          float32             autocast bfloat16     float32         no
=========================  ==================  ====================  ==============  ============

Why the recipes differ (Micikevicius et al. 2018):

* float16 has a 5-bit exponent: values below $2^{-24}$ round to 0, so Adam's $\epsilon = 10^{-8}$ *is* 0, and
  $(1-\beta_2)g^2$ underflows for small $g$. Then $\hat m / (\sqrt{\hat v} + \epsilon)$ is $0/0 = $ NaN for a
  zero gradient and $m/0 = \pm\infty$ for a tiny one.
* Both float16 and bfloat16 have few mantissa bits (10 and 7): an update smaller than half the spacing of
  the numbers around a weight is lost, $w + \Delta w = w$ (in bfloat16 even $1 + 10^{-3} = 1$). Master
  weights keep the sum in float32; fp32 optimizer *state* alone does not, because the update is still
  added to a float16 weight.
* Loss scaling multiplies the loss by $S$ before the backward pass, so small gradients survive in float16,
  and divides the float32 gradients by $S$ before the step. :class:`LossScaler` follows the rules of
  ``torch.amp.GradScaler``: start at $S = 2^{16}$; if any gradient is inf/NaN skip the step and halve $S$;
  after ``growth_interval`` (2000) clean steps in a row double it.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
from torch import nn

from ..core import optim, validate
from ..core import transforms as T

__all__ = ["RECIPES", "LossScaler", "mlp", "History", "train", "first_adam_step", "lost_update"]

RECIPES = (
    "fp32",
    "fp16",
    "fp16 + fp32 state",
    "fp16 master",
    "fp16 master + scaling",
    "fp16 AMP",
    "bf16",
    "bf16 autocast",
)


class LossScaler:
    """A readable dynamic loss scaler with ``torch.amp.GradScaler``'s rules (for any device).

    ``scale(loss)`` returns $S \\cdot$ loss; ``unscale(grads)`` returns the gradients divided by $S$ in float32
    and whether any was inf/NaN; ``update(found_inf)`` then halves $S$ (``backoff_factor``) on inf, or counts
    a clean step and multiplies $S$ by ``growth_factor`` after ``growth_interval`` clean steps in a row.
    """

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        validate.positive("init_scale", init_scale)
        if not growth_factor > 1:
            raise ValueError(f"growth_factor must be > 1, got {growth_factor!r}")
        if not 0 < backoff_factor < 1:
            raise ValueError(f"backoff_factor must be in (0, 1), got {backoff_factor!r}")
        validate.integer_at_least("growth_interval", growth_interval, 1)
        self.scale_value = float(init_scale)
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval
        self.growth_tracker = 0

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * self.scale_value

    def unscale(self, grads) -> tuple[list, bool]:
        out = [g.float() / self.scale_value for g in grads]
        found_inf = any(not bool(torch.isfinite(g).all()) for g in out)
        return out, found_inf

    def update(self, found_inf: bool) -> None:
        if found_inf:
            self.scale_value *= self.backoff_factor
            self.growth_tracker = 0
        else:
            self.growth_tracker += 1
            if self.growth_tracker == self.growth_interval:
                self.scale_value *= self.growth_factor
                self.growth_tracker = 0


def mlp(n_in: int = 64, hidden: int = 64, n_out: int = 10, seed: int = 0) -> nn.Sequential:
    """The small ReLU network of the chapter, in float32, with weights drawn from a seeded generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out)
        )


class History(NamedTuple):
    """One training run. Per step: ``loss`` (float64, NaN once the model has broken), ``scale`` (the loss
    scale used, 1 without scaling), ``skipped`` (the step was skipped for an inf gradient) and ``lost`` (the
    fraction of weights with a nonzero gradient that the step left unchanged). ``first_nonfinite``: the
    first step (from 1) whose weights contain inf/NaN, or None; ``accuracy``: on the test set at the end;
    ``model``: the trained network (the float32 master where the recipe keeps one)."""

    loss: torch.Tensor
    scale: torch.Tensor
    skipped: torch.Tensor
    lost: torch.Tensor
    first_nonfinite: int | None
    accuracy: float
    model: nn.Module


def _param_dtype(recipe):
    return {"fp16": torch.float16, "fp16 + fp32 state": torch.float16, "bf16": torch.bfloat16}.get(
        recipe, torch.float32
    )


def train(
    recipe: str,
    data,
    steps: int = 300,
    *,
    lr: float = 1e-3,
    eps: float = 1e-8,
    batch_size: int = 64,
    hidden: int = 64,
    seed: int = 0,
    device="cpu",
    scaler: str = "torch",
    init_scale: float = 2.0**16,
    growth_interval: int = 2000,
    progress=None,
) -> History:
    """Train :func:`mlp` with Adam (:class:`optbook.optim.Adam`) for ``steps`` steps under ``recipe``.

    ``data = (x_train, y_train, x_test, y_test)``; mini-batches come from a generator seeded with
    ``seed``, so every recipe sees the same batches. ``scaler`` chooses the loss scaler of the scaling
    recipes: ``"torch"`` (``torch.amp.GradScaler`` for ``device``) or ``"emulated"`` (:class:`LossScaler`).
    """
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    if scaler not in ("torch", "emulated"):
        raise ValueError(f"scaler must be 'torch' or 'emulated', got {scaler!r}")
    validate.integer_at_least("steps", steps, 1)
    device = torch.device(device)
    x_train, y_train, x_test, y_test = (t.to(device) for t in data)
    dtype = _param_dtype(recipe)
    master = mlp(x_train.shape[1], hidden, int(y_train.max()) + 1, seed).to(device)
    if recipe in ("fp16", "fp16 + fp32 state", "bf16"):
        model = master.to(dtype)  # the only copy: updated in low precision
        state_dtype = torch.float32 if recipe == "fp16 + fp32 state" else None
        opt = optim.Adam(model.parameters(), lr=lr, eps=eps, state_dtype=state_dtype)
    else:
        model = copy.deepcopy(master).half() if recipe.startswith("fp16 master") else master
        opt = optim.Adam(master.parameters(), lr=lr, eps=eps)
    scaling = recipe in ("fp16 master + scaling", "fp16 AMP")
    autocast = {"fp16 AMP": torch.float16, "bf16 autocast": torch.bfloat16}.get(recipe)
    if scaling and scaler == "torch":
        grad_scaler = torch.amp.GradScaler(device.type, init_scale=init_scale, growth_interval=growth_interval)
    elif scaling:
        grad_scaler = LossScaler(init_scale, growth_interval=growth_interval)
    gen = torch.Generator().manual_seed(seed)
    losses, scales, skipped, lost = [], [], [], []
    first_nonfinite = None
    loop = range(1, steps + 1) if progress is None else progress(range(1, steps + 1))
    for t in loop:
        idx = torch.randint(len(y_train), (batch_size,), generator=gen).to(device)
        xb, yb = x_train[idx], y_train[idx]
        if recipe.startswith("fp16 master"):
            with torch.no_grad():
                for w, m in zip(model.parameters(), master.parameters()):
                    w.copy_(m)  # fresh float16 copies of the float32 master weights
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = model(xb.to(next(model.parameters()).dtype) if autocast is None else xb)
        loss = nn.functional.cross_entropy(logits.float(), yb)
        scale = 1.0
        if scaling and scaler == "torch":
            scale = grad_scaler.get_scale()
        elif scaling:
            scale = grad_scaler.scale_value
        opt.zero_grad(set_to_none=True)
        model.zero_grad(set_to_none=True)
        (loss * scale if scaling and scaler == "emulated" else grad_scaler.scale(loss) if scaling else loss).backward()
        before = [p.detach().clone() for p in opt.param_groups[0]["params"]]
        if recipe.startswith("fp16 master"):
            grads = [w.grad for w in model.parameters()]
            if scaling and scaler == "emulated":
                grads, found_inf = grad_scaler.unscale(grads)
            else:
                grads, found_inf = [g.float() for g in grads], False
            for m, g in zip(master.parameters(), grads):
                m.grad = g
            if scaling and scaler == "torch":
                grad_scaler.step(opt)
                grad_scaler.update()
                found_inf = grad_scaler.get_scale() < scale
            elif not found_inf:
                opt.step()
            if scaling and scaler == "emulated":
                grad_scaler.update(found_inf)
        elif recipe == "fp16 AMP":
            if scaler == "torch":
                grad_scaler.step(opt)
                grad_scaler.update()
                found_inf = grad_scaler.get_scale() < scale
            else:
                grads, found_inf = grad_scaler.unscale([p.grad for p in master.parameters()])
                for p, g in zip(master.parameters(), grads):
                    p.grad = g
                if not found_inf:
                    opt.step()
                grad_scaler.update(found_inf)
        else:
            opt.step()
            found_inf = False
        params = opt.param_groups[0]["params"]
        changed = [(p.grad != 0) for p in params]
        n_moving = sum(int(c.sum()) for c in changed)
        n_lost = sum(int(((p.detach() == b) & c).sum()) for p, b, c in zip(params, before, changed))
        lost.append(n_lost / max(n_moving, 1) if not found_inf else float("nan"))
        finite = all(bool(torch.isfinite(p).all()) for p in params)
        if not finite and first_nonfinite is None:
            first_nonfinite = t
        losses.append(loss.item() if first_nonfinite is None else float("nan"))
        scales.append(scale)
        skipped.append(bool(found_inf))
    with torch.no_grad(), torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        if recipe.startswith("fp16 master"):
            for w, m in zip(model.parameters(), master.parameters()):
                w.copy_(m)
        logits = model(x_test.to(next(model.parameters()).dtype) if autocast is None else x_test)
        accuracy = (logits.float().argmax(-1) == y_test).double().mean().item()
    return History(
        torch.tensor(losses, dtype=torch.float64),
        torch.tensor(scales, dtype=torch.float64),
        torch.tensor(skipped),
        torch.tensor(lost, dtype=torch.float64),
        first_nonfinite,
        accuracy,
        master if recipe not in ("fp16", "fp16 + fp32 state", "bf16") else model,
    )


def first_adam_step(
    grad: torch.Tensor, dtype: torch.dtype = torch.float16, eps: float = 1e-8, loss_scale: float = 1.0, lr: float = 1e-3
) -> dict:
    r"""Adam's first step on the gradient ``loss_scale * grad``, stored and computed in ``dtype``.

    Returns the step (float64) and counts: how many gradient entries are nonzero in float64 but 0 after
    rounding (``flushed``), inf after rounding (``overflowed``), how many steps are NaN or inf, and how many
    are exactly 0 for a nonzero gradient (``zero``: flushed, or $v$ overflowed to inf because the square
    $(Sg)^2$ exceeds the format's range). In exact
    arithmetic the first step is $-\gamma\, g/(|g| + \epsilon)$, about $-\gamma\,\mathrm{sign}(g)$, whatever
    the scale of $g$: loss scaling does not change it except through $\epsilon$. In ``dtype``, the square
    $(1-\beta_2)g^2$ can underflow, $\epsilon$ can round to 0, and a large scale can overflow.
    """
    validate.positive("loss_scale", loss_scale)
    validate.non_negative("eps", eps)
    g64 = torch.as_tensor(grad, dtype=torch.float64) * loss_scale
    g = g64.to(dtype)
    chain = T.chain(T.scale_by_adam(eps=eps), T.scale_by_learning_rate(lr))
    p = torch.zeros_like(g)
    step, _ = chain.update(g, chain.init(p), p)
    step = step.double()
    return {
        "step": step,
        "flushed": int(((g64 != 0) & (g == 0)).sum()),
        "overflowed": int(torch.isinf(g).sum()),
        "nan": int(torch.isnan(step).sum()),
        "inf": int(torch.isinf(step).sum()),
        "zero": int(((g64 != 0) & (step == 0)).sum()),
        "n": g.numel(),
    }


def lost_update(weight: float, update: float, dtype: torch.dtype) -> bool:
    """True when ``weight + update`` rounds back to ``weight`` in ``dtype``: the update is lost."""
    w = torch.tensor(weight, dtype=dtype)
    return bool(w + torch.tensor(update, dtype=dtype) == w) and update != 0 and math.isfinite(update)
