"""torch.optim-compatible optimizers built from the chains of :mod:`optbook.transforms`.

Same constructor arguments, defaults, ``param_groups``, closures, ``zero_grad``, ``state_dict`` (state keys
and dtypes included: ``state["step"]`` is a float tensor, as torch keeps it) and learning-rate schedulers as
the torch.optim classes of the same names, so a reader can drop them into a training loop, and checkpoints
load both ways. Complex parameters are treated as pairs of reals (as torch does); SGD and Adagrad take
sparse gradients. Two extra keywords:

* ``state_dtype`` keeps the optimizer's memory (and its arithmetic) in a wider dtype than the parameters:
  float16 weights with float32 moments, for example;
* ``fast`` views all of a group's parameters, gradients and state as one flat buffer each and runs the
  same chain once over it (``fast="eager"``), compiled by ``torch.compile`` into one fused loop
  (``fast=True``). See :mod:`optbook.core.fast`.

The optimizers after Adam are here too: :class:`Adafactor`, :class:`Lion`, :class:`Muon` (and
:class:`MuonWithAdamW`, its usual pairing), :class:`AdamWScheduleFree` and :class:`SOAP`.

torch's kernel switches (``foreach``, ``fused``, ``capturable``, ``differentiable``) are accepted with
their default values and refused when switched on: each class has one readable implementation.
"""

from __future__ import annotations

import torch

from . import preconditioners as P
from . import transforms as T
from . import validate

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Adafactor",
    "Lion",
    "Muon",
    "MuonWithAdamW",
    "AdamWScheduleFree",
    "SOAP",
]

_KERNEL_OPTIONS = ("foreach", "fused", "capturable", "differentiable")
# state entries torch keeps as 0-dim tensors (the chains count steps as Python numbers, as torch reads them;
# NAdam's mu_product stays a tensor, so that it is rounded as torch rounds it)
_SCALAR_STATE = ("step", "mu_product")
_FAST_MODES = (False, True, "eager")


def _scalar_dtype():
    """The dtype torch.optim gives ``state["step"]``: float64 under a float64 default dtype, else float32."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _as_number(name: str, value):
    """A 1-element tensor hyperparameter is a number (torch's rule); a larger tensor is refused."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"Tensor {name} must be 1-element")
        return value.item()
    return value


def _numbers(group: dict) -> dict:
    """The group's hyperparameters with 1-element tensors (lr, betas, ...) turned into numbers."""
    out = {}
    for key, value in group.items():
        if key == "params":
            out[key] = value
        elif key == "betas" and isinstance(value, (tuple, list)):
            if len(value) == 2 and isinstance(value[0], torch.Tensor) != isinstance(value[1], torch.Tensor):
                raise ValueError("betas must be either both floats or both Tensors")
            out[key] = tuple(_as_number(f"betas[{i}]", b) for i, b in enumerate(value))
        else:
            out[key] = _as_number(key, value)
    return out


class ChainOptimizer(torch.optim.Optimizer):
    """A torch optimizer whose arithmetic is a chain of transforms, rebuilt from each param group.

    Subclasses only say which chain a group's hyperparameters mean (:meth:`build_chain`). The chain
    is rebuilt at every step, so a scheduler that changes ``group["lr"]`` takes effect at once.
    Class attributes say how the class follows torch: ``SPARSE`` (takes sparse gradients), ``COMPLEX``
    (takes complex parameters, as pairs of reals), ``COUNT_STEPS`` (keeps ``state["step"]`` though its
    chain needs no count), ``STATE_NAMES`` (chain key -> torch's key), ``ELEMENTWISE`` (the fast path applies).
    """

    SPARSE = False
    COMPLEX = True
    COUNT_STEPS = False
    STATE_NAMES: dict = {}
    ELEMENTWISE = True

    def __init__(self, params, defaults: dict, kernel_options: dict, fast=False):
        for name, value in kernel_options.items():
            if value:
                raise ValueError(
                    f"{name}={value!r}: optbook's {type(self).__name__} has a single, readable implementation; "
                    f"use torch.optim.{type(self).__name__} for its {name} kernel"
                )
        if not any(fast is mode for mode in _FAST_MODES) and fast != "eager":
            raise ValueError(f"fast must be False, True (flat buffer, compiled) or 'eager' (flat buffer), got {fast!r}")
        if fast and not self.ELEMENTWISE:
            raise ValueError(
                f"fast={fast!r}: {type(self).__name__}'s step is not element-wise (it looks at each tensor as a "
                "whole), so it has no flat-buffer path; use fast=False"
            )
        self.fast = fast
        self._flat = None  # the fast path's buffers, made on first use (optbook.core.fast)
        defaults.setdefault("state_dtype", None)
        defaults.update({k: v for k, v in kernel_options.items() if k in _KERNEL_OPTIONS})
        self.build_chain(_numbers(defaults))  # hyperparameters first, as torch checks them before the params
        super().__init__(params, defaults)

    @staticmethod
    def build_chain(group: dict) -> T.Transform:
        raise NotImplementedError

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            for name in _KERNEL_OPTIONS:
                if group.get(name):
                    raise ValueError(f"{name}={group[name]!r} is not supported by optbook's {type(self).__name__}")
            self.check_params(group)
            self.build_chain(_numbers(group))  # validates the group's hyperparameters
            if group["state_dtype"] is not None and not group["state_dtype"].is_floating_point:
                raise ValueError(f"state_dtype must be a floating dtype, got {group['state_dtype']}")
            if self.fast and group["state_dtype"] is not None:
                raise ValueError(
                    "state_dtype must be None with fast=True or 'eager' (the flat buffers use the params' dtype)"
                )
        except Exception:
            self.param_groups.pop()
            raise

    def check_params(self, group: dict) -> None:
        """Refuse parameters the class cannot optimize (Muon: anything but matrices)."""

    def __setstate__(self, state):
        super().__setstate__(state)
        # a checkpoint from torch.optim lacks optbook's extra keys: they take their defaults
        for group in self.param_groups:
            for key, value in getattr(self, "defaults", {}).items():
                group.setdefault(key, value)
        self.__dict__.setdefault("fast", False)
        self.__dict__.setdefault("_flat", None)

    def check_grad(self, p: torch.Tensor, group: dict) -> None:
        """torch's refusals, with torch's exception types."""
        name = type(self).__name__
        if p.grad.is_sparse and not self.SPARSE:
            raise RuntimeError(f"{name} does not support sparse gradients")
        if p.is_complex() and not self.COMPLEX:
            raise RuntimeError(f"{name} does not support complex parameters")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self.step_group(group, _numbers(group))
        return loss

    def step_group(self, group: dict, hyper: dict) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        for p in params:
            self.check_grad(p, group)
        if not params:
            return
        chain = self.build_chain(hyper)
        if self.fast:
            from . import fast

            if fast.step(self, group, hyper, params, chain):
                return
        for p in params:
            self.step_param(p, chain, group)

    def step_param(self, p: torch.Tensor, chain: T.Transform, group: dict) -> None:
        """One parameter through the chain: torch's state in, the chain's arithmetic, torch's state out."""
        is_complex = p.is_complex()
        work = p.dtype if is_complex else (group["state_dtype"] or p.dtype)
        param, grad = p.detach(), p.grad
        if work != p.dtype:
            param, grad = param.to(work), grad.to(work)
        if is_complex:
            param, grad = torch.view_as_real(param), torch.view_as_real(grad)
        state = self.state.get(p)
        state = self.chain_state(state) if state else self.initial_state(chain, param)
        update, new = chain.update(grad, state, param)
        new = self.torch_state(new, state, is_complex)
        if new:  # no entry for a memoryless optimizer (SGD without momentum), as torch
            self.state[p] = new
        if is_complex:
            update = torch.view_as_complex(update.contiguous())
        p.add_(update.to(p.dtype))

    @staticmethod
    def initial_state(chain: T.Transform, param: torch.Tensor) -> dict:
        """The chain's initial memory, with the products torch keeps as tensors (NAdam's mu_product) as tensors."""
        state = chain.init(param)
        for key in _SCALAR_STATE[1:]:
            if key in state and not isinstance(state[key], torch.Tensor):
                state[key] = torch.tensor(float(state[key]), dtype=_scalar_dtype())
        return state

    def chain_state(self, state: dict) -> dict:
        """torch's per-parameter state as the chain keeps it (counts as numbers, complex as real pairs)."""
        names = {torch_key: key for key, torch_key in self.STATE_NAMES.items()}
        out = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                if key == "step" and value.numel() == 1:
                    value = value.item()
                elif value.is_complex():
                    value = torch.view_as_real(value)
            out[names.get(key, key)] = value
        return out

    def torch_state(self, new: dict, old: dict, is_complex: bool) -> dict:
        out = {}
        for key, value in new.items():
            key = self.STATE_NAMES.get(key, key)
            if key in _SCALAR_STATE and not isinstance(value, torch.Tensor):
                value = torch.tensor(float(value), dtype=_scalar_dtype())
            elif is_complex and isinstance(value, torch.Tensor) and value.dim() > 0:
                value = torch.view_as_complex(value.contiguous())
            out[key] = value
        if self.COUNT_STEPS:  # the chain carries the old count along unchanged: count this step
            out["step"] = torch.tensor(float(old.get("step", 0)) + 1, dtype=_scalar_dtype())
        return out

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        # torch casts saved state to the parameter's dtype; keep the wider state dtype where one was asked.
        for group in self.param_groups:
            dtype = group["state_dtype"]
            for p in group["params"] if dtype is not None else ():
                for key, value in self.state[p].items():
                    if isinstance(value, torch.Tensor) and value.is_floating_point() and key not in _SCALAR_STATE:
                        self.state[p][key] = value.to(dtype)


def _prefix(group: dict) -> list:
    return [T.scale(-1)] if group.get("maximize") else []


def _weight_decay(group: dict, decoupled: bool):
    """Coupled L2 goes before the adaptive piece, decoupled decay after it: one piece, two places."""
    wd = group["weight_decay"]
    if wd == 0:
        return [], []
    piece = [T.add_decayed_weights(wd)]
    return ([], piece) if decoupled else (piece, [])


class SGD(ChainOptimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD (sparse gradients too)."""

    SPARSE = True

    def __init__(
        self,
        params,
        lr=1e-3,
        momentum=0,
        dampening=0,
        weight_decay=0,
        nesterov=False,
        *,
        maximize=False,
        foreach=None,
        differentiable=False,
        fused=None,
        state_dtype=None,
        fast=False,
    ):
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            state_dtype=state_dtype,
        )
        super().__init__(params, defaults, dict(foreach=foreach, differentiable=differentiable, fused=fused), fast)

    @staticmethod
    def build_chain(group):
        l2, _ = _weight_decay(group, decoupled=False)
        validate.non_negative("momentum", group["momentum"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")
        momentum = [T.trace(group["momentum"], group["dampening"], group["nesterov"])] if group["momentum"] else []
        return T.chain(*_prefix(group), *l2, *momentum, T.scale_by_learning_rate(group["lr"]))


class Adagrad(ChainOptimizer):
    """AdaGrad (Duchi et al. 2011), as torch.optim.Adagrad, sparse gradients included.

    A sparse gradient (``nn.Embedding(sparse=True)``) updates only the rows it touches: their sums of
    squares grow, the others' stay put, which is what the NLP chapter's rare features need.
    """

    SPARSE = True
    STATE_NAMES = {"schedule_step": "step"}  # the lr-decay schedule's counter is torch's state["step"]

    def __init__(
        self,
        params,
        lr=1e-2,
        lr_decay=0,
        weight_decay=0,
        initial_accumulator_value=0,
        eps=1e-10,
        foreach=None,
        *,
        maximize=False,
        differentiable=False,
        fused=None,
        state_dtype=None,
        fast=False,
    ):
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
            state_dtype=state_dtype,
        )
        super().__init__(params, defaults, dict(foreach=foreach, differentiable=differentiable, fused=fused), fast)

    def check_grad(self, p, group):
        super().check_grad(p, group)
        if p.grad.is_sparse and group["weight_decay"] != 0:
            raise RuntimeError("weight_decay option is not compatible with sparse gradients")

    @staticmethod
    def build_chain(group):
        l2, _ = _weight_decay(group, decoupled=False)
        lr = T.inverse_time_decay(group["lr"], group["lr_decay"])  # lr_decay=0: the constant lr, counted
        return T.chain(
            *_prefix(group),
            *l2,
            T.scale_by_rss_sparse(group["initial_accumulator_value"], group["eps"]),
            T.scale_by_learning_rate(lr),
        )


class RMSprop(ChainOptimizer):
    """RMSProp (Tieleman & Hinton 2012), as torch.optim.RMSprop: momentum acts on the rescaled gradient."""

    COUNT_STEPS = True

    def __init__(
        self,
        params,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0,
        momentum=0,
        centered=False,
        capturable=False,
        foreach=None,
        maximize=False,
        differentiable=False,
        *,
        state_dtype=None,
        fast=False,
    ):
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
            state_dtype=state_dtype,
        )
        super().__init__(
            params, defaults, dict(capturable=capturable, foreach=foreach, differentiable=differentiable), fast
        )

    @staticmethod
    def build_chain(group):
        l2, _ = _weight_decay(group, decoupled=False)
        validate.non_negative("momentum", group["momentum"])
        momentum = [T.trace(group["momentum"])] if group["momentum"] else []
        return T.chain(
            *_prefix(group),
            *l2,
            T.scale_by_rms(group["alpha"], group["eps"], group["centered"]),
            *momentum,
            T.scale_by_learning_rate(group["lr"]),
        )


def _betas(group):
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), each in [0, 1); got {betas!r}")
    return betas


class Adam(ChainOptimizer):
    """Adam (Kingma & Ba 2015), as torch.optim.Adam; ``decoupled_weight_decay=True`` makes it AdamW."""

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        amsgrad=False,
        *,
        foreach=None,
        maximize=False,
        capturable=False,
        differentiable=False,
        fused=None,
        decoupled_weight_decay=False,
        state_dtype=None,
        fast=False,
    ):
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
            state_dtype=state_dtype,
        )
        super().__init__(
            params,
            defaults,
            dict(foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused),
            fast,
        )

    @staticmethod
    def build_chain(group):
        l2, decoupled = _weight_decay(group, group["decoupled_weight_decay"])
        b1, b2 = _betas(group)
        adam = T.scale_by_adam(b1, b2, group["eps"], amsgrad=group["amsgrad"])
        return T.chain(*_prefix(group), *l2, adam, *decoupled, T.scale_by_learning_rate(group["lr"]))


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019), as torch.optim.AdamW: Adam with decoupled weight decay."""

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        *,
        maximize=False,
        foreach=None,
        capturable=False,
        differentiable=False,
        fused=None,
        state_dtype=None,
        fast=False,
    ):
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
            state_dtype=state_dtype,
            fast=fast,
        )


class NAdam(ChainOptimizer):
    """NAdam (Dozat 2016) with torch's momentum warm-up, as torch.optim.NAdam."""

    def __init__(
        self,
        params,
        lr=2e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        momentum_decay=4e-3,
        decoupled_weight_decay=False,
        *,
        foreach=None,
        maximize=False,
        capturable=False,
        differentiable=False,
        state_dtype=None,
        fast=False,
    ):
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            state_dtype=state_dtype,
        )
        super().__init__(
            params, defaults, dict(foreach=foreach, capturable=capturable, differentiable=differentiable), fast
        )

    @staticmethod
    def build_chain(group):
        l2, decoupled = _weight_decay(group, group["decoupled_weight_decay"])
        b1, b2 = _betas(group)
        nadam = T.scale_by_nadam(b1, b2, group["eps"], group["momentum_decay"])
        return T.chain(*_prefix(group), *l2, nadam, *decoupled, T.scale_by_learning_rate(group["lr"]))


class RAdam(ChainOptimizer):
    """RAdam (Liu et al. 2020), as torch.optim.RAdam."""

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        decoupled_weight_decay=False,
        *,
        foreach=None,
        maximize=False,
        capturable=False,
        differentiable=False,
        state_dtype=None,
        fast=False,
    ):
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            state_dtype=state_dtype,
        )
        super().__init__(
            params, defaults, dict(foreach=foreach, capturable=capturable, differentiable=differentiable), fast
        )

    @staticmethod
    def build_chain(group):
        l2, decoupled = _weight_decay(group, group["decoupled_weight_decay"])
        b1, b2 = _betas(group)
        radam = T.scale_by_radam(b1, b2, group["eps"])
        return T.chain(*_prefix(group), *l2, radam, *decoupled, T.scale_by_learning_rate(group["lr"]))


# --- After Adam --------------------------------------------------------------------------------------


class Adafactor(ChainOptimizer):
    r"""Adafactor (Shazeer & Stern 2018), as torch.optim.Adafactor.

    A matrix keeps a row and a column average of $g^2$ instead of Adam's full second moment
    (``state["row_var"]``, ``state["col_var"]``: $m + n$ numbers for $m \times n$ weights), a vector keeps
    ``state["variance"]``; there is no first moment. The step is relative to the weights' RMS and capped
    by ``lr`` (:func:`optbook.core.transforms.scale_by_adafactor`); ``weight_decay`` multiplies the
    weights by $1 - \gamma\lambda$. No sparse or complex support (as torch).
    """

    COMPLEX = False
    ELEMENTWISE = False

    def __init__(
        self,
        params,
        lr=1e-2,
        beta2_decay=-0.8,
        eps=(None, 1e-3),
        d=1.0,
        weight_decay=0.0,
        *,
        foreach=None,
        maximize=False,
        state_dtype=None,
        fast=False,
    ):
        defaults = dict(
            lr=lr,
            beta2_decay=beta2_decay,
            eps=eps,
            d=d,
            weight_decay=weight_decay,
            maximize=maximize,
            state_dtype=state_dtype,
        )
        super().__init__(params, defaults, dict(foreach=foreach), fast)

    @staticmethod
    def build_chain(group):
        eps = group["eps"]
        if not (isinstance(eps, (tuple, list)) and len(eps) == 2):
            raise ValueError(f"eps must be a pair (eps1 or None, eps2), each >= 0; got {eps!r}")
        validate.non_negative("weight_decay", group["weight_decay"])
        decay = [T.add_decayed_weights(group["lr"] * group["weight_decay"])] if group["weight_decay"] else []
        return T.chain(
            *_prefix(group),
            T.scale_by_adafactor(group["lr"], group["beta2_decay"], eps[0], eps[1], group["d"]),
            *decay,
            T.scale(-1),
        )


class Lion(ChainOptimizer):
    r"""Lion (Chen et al. 2023), as the ``lion-pytorch`` package's ``Lion`` (the paper's Algorithm 2).

    $\theta \leftarrow \theta(1 - \gamma\lambda) - \gamma\,\operatorname{sign}(\beta_1 m + (1-\beta_1) g)$, then
    $m \leftarrow \beta_2 m + (1-\beta_2) g$: one moment (``state["exp_avg"]``, 4 bytes per float32
    parameter), and every coordinate moves by exactly $\gamma$. ``decoupled_weight_decay=True`` divides
    $\lambda$ by the *initial* learning rate, as lion-pytorch does (the decay per step is then $\lambda$
    times the lr's current fraction of its start). ``use_triton`` (a GPU kernel) is refused.
    """

    def __init__(
        self,
        params,
        lr=1e-4,
        betas=(0.9, 0.99),
        weight_decay=0.0,
        use_triton=False,
        decoupled_weight_decay=False,
        *,
        maximize=False,
        state_dtype=None,
        fast=False,
    ):
        if use_triton:
            raise ValueError("use_triton=True: optbook's Lion has one readable implementation; use lion-pytorch's")
        validate.non_negative("lr", _as_number("lr", lr))
        self._init_lr = _as_number("lr", lr)
        defaults = dict(
            lr=lr,
            betas=betas,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            state_dtype=state_dtype,
        )
        super().__init__(params, defaults, {}, fast)

    def build_chain(self, group):
        b1, b2 = _betas(group)
        wd = group["weight_decay"]
        validate.non_negative("weight_decay", wd)
        if group["decoupled_weight_decay"] and wd:
            if not self._init_lr > 0:
                raise ValueError("lr must be > 0 with decoupled_weight_decay=True (the decay is divided by it)")
            wd = wd / self._init_lr
        decay = [T.add_decayed_weights(wd)] if wd else []
        return T.chain(*_prefix(group), T.scale_by_lion(b1, b2), *decay, T.scale_by_learning_rate(group["lr"]))


def _muon_chain(group):
    wd = group["weight_decay"]
    validate.non_negative("weight_decay", wd)
    validate.non_negative("momentum", group["momentum"])
    return T.chain(
        T.ema_momentum(group["momentum"], group["nesterov"]),
        T.orthogonalize(group["ns_coefficients"], group["ns_steps"], group["eps"]),
        T.scale_by_shape(group["adjust_lr_fn"]),
        *([T.add_decayed_weights(wd)] if wd else []),
        T.scale_by_learning_rate(group["lr"]),
    )


def _only_matrices(params, name="Muon"):
    for p in params:
        if p.ndim != 2:
            raise ValueError(
                f"{name} only supports 2D parameters whereas we found a parameter with size: {p.size()} "
                "(give the others to AdamW, for example with optbook's MuonWithAdamW)"
            )


class Muon(ChainOptimizer):
    r"""Muon (Jordan et al. 2024), as torch.optim.Muon: momentum, then orthogonalised, for matrices only.

    $B \leftarrow \mu B + (1-\mu) g$; the Nesterov input $(1-\mu) g + \mu B$ is orthogonalised by five
    Newton-Schulz steps in bfloat16 ($O \approx UV^\top$), then
    $\theta \leftarrow \theta(1 - \gamma\lambda) - \gamma\, r(\text{shape})\, O$ with $r$ from
    ``adjust_lr_fn`` (:func:`optbook.core.transforms.muon_lr_ratio`). Every parameter must be 2-D; the
    usual recipe gives biases, gains and embeddings to AdamW: see :class:`MuonWithAdamW`.
    """

    COMPLEX = False
    ELEMENTWISE = False

    def __init__(
        self,
        params,
        lr=1e-3,
        weight_decay=0.1,
        momentum=0.95,
        nesterov=True,
        ns_coefficients=T.MUON_NS_COEFFICIENTS,
        eps=1e-7,
        ns_steps=5,
        adjust_lr_fn=None,
        *,
        state_dtype=None,
        fast=False,
    ):
        defaults = dict(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_coefficients=ns_coefficients,
            eps=eps,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
            state_dtype=state_dtype,
        )
        super().__init__(params, defaults, {}, fast)

    def check_params(self, group):
        _only_matrices(group["params"])

    @staticmethod
    def build_chain(group):
        return _muon_chain(group)


class MuonWithAdamW(ChainOptimizer):
    r"""The usual way to train with Muon: Muon for the hidden matrices, AdamW for everything else.

    Two kinds of param group in one optimizer (one ``state_dict``, one scheduler): groups with
    ``use_muon=True`` follow :class:`Muon`, the others :class:`AdamW`. Given plain parameters, matrices
    (``p.ndim == 2``) go to Muon (``lr``, ``momentum``, ``weight_decay``, as torch's docstring example:
    ``Muon(lr=0.02, momentum=0.95)``) and the rest to AdamW (``adamw_lr=3e-4``, ``adamw_weight_decay=0.01``).
    Equal to ``torch.optim.Muon`` and ``torch.optim.AdamW`` run side by side on the two sets. (Embeddings and
    the output layer are matrices too; pass explicit groups with ``use_muon=False`` to give them to AdamW.)
    """

    COMPLEX = False
    ELEMENTWISE = False

    def __init__(
        self,
        params,
        lr=0.02,
        momentum=0.95,
        weight_decay=0.1,
        adamw_lr=3e-4,
        adamw_betas=(0.9, 0.999),
        adamw_eps=1e-8,
        adamw_weight_decay=0.01,
        *,
        nesterov=True,
        ns_coefficients=T.MUON_NS_COEFFICIENTS,
        ns_steps=5,
        adjust_lr_fn=None,
    ):
        params = list(params)
        if params and not isinstance(params[0], dict):
            params = [
                {"params": [p for p in params if p.ndim == 2], "use_muon": True},
                {"params": [p for p in params if p.ndim != 2], "use_muon": False},
            ]
            params = [g for g in params if g["params"]]
        adamw = dict(lr=adamw_lr, betas=adamw_betas, eps=adamw_eps, weight_decay=adamw_weight_decay)
        for g in params:
            if not g.get("use_muon", False):
                for key, value in adamw.items():
                    g.setdefault(key, value)
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
            ns_coefficients=ns_coefficients,
            eps=1e-7,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
            betas=adamw_betas,
            amsgrad=False,
            maximize=False,
            use_muon=True,
        )
        super().__init__(params, defaults, {}, False)

    def check_params(self, group):
        if group["use_muon"]:
            _only_matrices(group["params"], "MuonWithAdamW's Muon groups")

    @staticmethod
    def build_chain(group):
        if group["use_muon"]:
            return _muon_chain(group)
        b1, b2 = _betas(group)
        _, decoupled = _weight_decay(group, decoupled=True)
        adam = T.scale_by_adam(b1, b2, group["eps"])
        return T.chain(adam, *decoupled, T.scale_by_learning_rate(group["lr"]))


class AdamWScheduleFree(ChainOptimizer):
    r"""Schedule-Free AdamW (Defazio et al. 2024), as ``schedulefree.AdamWScheduleFree``.

    No learning-rate schedule: instead of decaying $\gamma$, it *averages* the iterates. It keeps
    $z$ (AdamW without momentum; ``state["z"]``) and $v$ (``state["exp_avg_sq"]``), and the parameter holds
    $y = (1-\beta_1) z + \beta_1 x$, where the gradient is taken, while $x$, the running weighted average of
    the $z$'s, is the point to *evaluate*: the average is what converges (see
    :func:`optbook.core.transforms.schedule_free_adamw`).

    **Call** ``optimizer.train()`` **and** ``optimizer.eval()`` wherever you call ``model.train()`` and
    ``model.eval()``. ``eval()`` moves the parameters from $y$ to $x$, ``train()`` back to $y$. Forget
    ``eval()`` and you validate (and save) $y$, a point that still carries a $(1-\beta_1)$ share of the
    noisy $z$: the validation loss is that of a different, usually worse, model than the one you trained.
    ``step()`` in eval mode raises, as the reference does. Save checkpoints in eval mode.
    The averaging weights and warmup live in each param group (``k``, ``lr_max``, ``weight_sum``).
    """

    ELEMENTWISE = False

    def __init__(
        self,
        params,
        lr=0.0025,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        warmup_steps=0,
        r=0.0,
        weight_lr_power=2.0,
        foreach=None,
        *,
        state_dtype=None,
        fast=False,
    ):
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            r=r,
            k=0,
            warmup_steps=warmup_steps,
            train_mode=False,
            weight_sum=0.0,
            lr_max=-1.0,
            scheduled_lr=0.0,
            weight_lr_power=weight_lr_power,
            weight_decay=weight_decay,
            state_dtype=state_dtype,
        )
        super().__init__(params, defaults, dict(foreach=foreach), fast)

    @staticmethod
    def build_chain(group):
        b1, b2 = _betas(group)
        validate.integer_at_least("warmup_steps", group["warmup_steps"], 0)
        validate.non_negative("weight_lr_power", group["weight_lr_power"])
        validate.non_negative("r", group["r"])
        validate.non_negative("lr", group["lr"])
        lr, _, _, c = T.schedule_free_weight(
            group["k"], group["lr"], group["warmup_steps"], group["r"], group["weight_lr_power"],
            group["lr_max"], group["weight_sum"],
        )  # fmt: skip
        return T.schedule_free_adamw(lr, c, group["k"], b1, b2, group["eps"], group["weight_decay"])

    @torch.no_grad()
    def step(self, closure=None):
        if not self.param_groups[0]["train_mode"]:
            raise RuntimeError(
                "Optimizer was not in train mode when step is called: call optimizer.train() before training "
                "and optimizer.eval() before evaluating (as model.train() / model.eval())"
            )
        return super().step(closure)

    def step_group(self, group, hyper):
        super().step_group(group, hyper)
        group["scheduled_lr"], group["lr_max"], group["weight_sum"], _ = T.schedule_free_weight(
            group["k"], hyper["lr"], group["warmup_steps"], group["r"], group["weight_lr_power"],
            group["lr_max"], group["weight_sum"],
        )  # fmt: skip
        group["k"] += 1

    @torch.no_grad()
    def eval(self):
        """Parameters to the evaluation point $x$ (the average): before validating or saving."""
        self._switch(False, T.schedule_free_eval_point)

    @torch.no_grad()
    def train(self):
        """Parameters back to the training point $y$: before the next ``step()``."""
        self._switch(True, T.schedule_free_train_point)

    def _switch(self, train_mode: bool, point):
        for group in self.param_groups:
            if group["train_mode"] != train_mode:
                b1 = _as_number("betas[0]", group["betas"][0])
                for p in group["params"]:
                    if "z" in self.state[p]:
                        p.copy_(point(p, self.state[p]["z"].to(p.device), b1))
                group["train_mode"] = train_mode


class SOAP(ChainOptimizer):
    r"""SOAP (Vyas et al. 2024), as the authors' ``SOAP`` class (github.com/nikhilvyas/SOAP, ``soap.py``).

    Adam in the eigenbasis of Shampoo's preconditioner: each axis of a weight (up to ``max_precond_dim``
    long) keeps a moving average of the gradient's outer products along it (``state["GG0"]``, ...) and
    that average's eigenbasis (``state["Q0"]``, ...), refreshed every ``precondition_frequency`` steps;
    Adam's moments ``exp_avg`` and ``exp_avg_sq`` live in the rotated coordinates
    (:func:`optbook.core.preconditioners.scale_by_soap`). Then
    $\theta \leftarrow (\theta - \gamma u)(1 - \gamma\lambda)$: the decay acts on the stepped weights.
    The first ``step()`` of each parameter only starts its statistics and leaves the weights alone.
    Same arguments and defaults as the reference (``shampoo_beta=-1`` means ``betas[1]``), plus
    ``state_dtype``; the eigensolvers run in the state's dtype (the reference uses float32 always).
    """

    COMPLEX = False
    ELEMENTWISE = False

    def __init__(
        self,
        params,
        lr=3e-3,
        betas=(0.95, 0.95),
        shampoo_beta=-1,
        eps=1e-8,
        weight_decay=0.01,
        precondition_frequency=10,
        max_precond_dim=10000,
        merge_dims=False,
        precondition_1d=False,
        normalize_grads=False,
        data_format="channels_first",
        correct_bias=True,
        *,
        state_dtype=None,
        fast=False,
    ):
        defaults = dict(
            lr=lr,
            betas=betas,
            shampoo_beta=shampoo_beta,
            eps=eps,
            weight_decay=weight_decay,
            precondition_frequency=precondition_frequency,
            max_precond_dim=max_precond_dim,
            merge_dims=merge_dims,
            precondition_1d=precondition_1d,
            normalize_grads=normalize_grads,
            data_format=data_format,
            correct_bias=correct_bias,
            state_dtype=state_dtype,
        )
        super().__init__(params, defaults, {}, fast)

    @staticmethod
    def build_chain(group, first=False):
        b1, b2 = _betas(group)
        validate.non_negative("lr", group["lr"])
        validate.non_negative("weight_decay", group["weight_decay"])
        piece = P.scale_by_soap(
            b1, b2, group["shampoo_beta"], group["eps"], group["precondition_frequency"], group["max_precond_dim"],
            group["merge_dims"], group["precondition_1d"], group["normalize_grads"], group["data_format"],
            group["correct_bias"],
        )  # fmt: skip
        rate = group["lr"] * group["weight_decay"]
        decay = [T.decay_after_update(rate)] if rate and not first else []
        return T.chain(piece, T.scale_by_learning_rate(group["lr"]), *decay)

    def step_param(self, p, chain, group):
        if not self.state.get(p):  # the first call starts the preconditioner: no step, so no decay either
            chain = self.build_chain(_numbers(group), first=True)
        super().step_param(p, chain, group)
