"""torch.optim-compatible optimizers built from the chains of :mod:`optbook.transforms`.

Same constructor arguments, defaults, ``param_groups``, closures, ``zero_grad``, ``state_dict`` and
learning-rate schedulers as the torch.optim classes of the same names, so a reader can drop them into
a training loop. One extra keyword, ``state_dtype``, keeps the optimizer's memory (and its arithmetic)
in a wider dtype than the parameters: float16 weights with float32 moments, for example.
"""

from __future__ import annotations

import torch

from . import transforms as T
from . import validate

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "NAdam", "RAdam", "RMSprop"]

_KERNEL_OPTIONS = ("foreach", "fused", "capturable", "differentiable")


class ChainOptimizer(torch.optim.Optimizer):
    """A torch optimizer whose arithmetic is a chain of transforms, rebuilt from each param group.

    Subclasses only say which chain a group's hyperparameters mean (:meth:`build_chain`). The chain
    is rebuilt at every step, so a scheduler that changes ``group["lr"]`` takes effect at once.
    """

    def __init__(self, params, defaults: dict, kernel_options: dict):
        for name, value in kernel_options.items():
            if value:
                raise ValueError(
                    f"{name}={value!r}: optbook's {type(self).__name__} has a single, readable implementation; "
                    f"use torch.optim.{type(self).__name__} for its {name} kernel"
                )
        defaults.setdefault("state_dtype", None)
        super().__init__(params, defaults)

    @staticmethod
    def build_chain(group: dict) -> T.Transform:
        raise NotImplementedError

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self.build_chain(group)  # validates the group's hyperparameters
            if group["state_dtype"] is not None and not group["state_dtype"].is_floating_point:
                raise ValueError(f"state_dtype must be a floating dtype, got {group['state_dtype']}")
        except Exception:
            self.param_groups.pop()
            raise

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            chain = self.build_chain(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ValueError(f"{type(self).__name__} in optbook does not support sparse gradients")
                work = group["state_dtype"] or p.dtype
                param, grad = p.detach().to(work), p.grad.to(work)
                state = self.state[p] or chain.init(param)
                update, self.state[p] = chain.update(grad, state, param)
                p.add_(update.to(p.dtype))
        return loss

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        # torch casts saved state to the parameter's dtype; keep the wider state dtype where one was asked.
        for group in self.param_groups:
            dtype = group["state_dtype"]
            for p in group["params"] if dtype is not None else ():
                for key, value in self.state[p].items():
                    if isinstance(value, torch.Tensor) and value.is_floating_point():
                        self.state[p][key] = value.to(dtype)


def _prefix(group: dict) -> list:
    return [T.scale(-1)] if group["maximize"] else []


def _weight_decay(group: dict, decoupled: bool):
    """Coupled L2 goes before the adaptive piece, decoupled decay after it: one piece, two places."""
    wd = group["weight_decay"]
    if wd == 0:
        return [], []
    piece = [T.add_decayed_weights(wd)]
    return ([], piece) if decoupled else (piece, [])


class SGD(ChainOptimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD."""

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
        super().__init__(params, defaults, dict(foreach=foreach, differentiable=differentiable, fused=fused))

    @staticmethod
    def build_chain(group):
        l2, _ = _weight_decay(group, decoupled=False)
        validate.non_negative("momentum", group["momentum"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")
        momentum = [T.trace(group["momentum"], group["dampening"], group["nesterov"])] if group["momentum"] else []
        return T.chain(*_prefix(group), *l2, *momentum, T.scale_by_learning_rate(group["lr"]))


class Adagrad(ChainOptimizer):
    """AdaGrad (Duchi et al. 2011), as torch.optim.Adagrad."""

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
        super().__init__(params, defaults, dict(foreach=foreach, differentiable=differentiable, fused=fused))

    @staticmethod
    def build_chain(group):
        l2, _ = _weight_decay(group, decoupled=False)
        lr = group["lr"]
        if group["lr_decay"]:
            lr = T.inverse_time_decay(lr, group["lr_decay"])
        return T.chain(
            *_prefix(group),
            *l2,
            T.scale_by_rss(group["initial_accumulator_value"], group["eps"]),
            T.scale_by_learning_rate(lr),
        )


class RMSprop(ChainOptimizer):
    """RMSProp (Tieleman & Hinton 2012), as torch.optim.RMSprop: momentum acts on the rescaled gradient."""

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
        super().__init__(params, defaults, dict(capturable=capturable, foreach=foreach, differentiable=differentiable))

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
            params, defaults, dict(foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused)
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
        super().__init__(params, defaults, dict(foreach=foreach, capturable=capturable, differentiable=differentiable))

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
        super().__init__(params, defaults, dict(foreach=foreach, capturable=capturable, differentiable=differentiable))

    @staticmethod
    def build_chain(group):
        l2, decoupled = _weight_decay(group, group["decoupled_weight_decay"])
        b1, b2 = _betas(group)
        radam = T.scale_by_radam(b1, b2, group["eps"])
        return T.chain(*_prefix(group), *l2, radam, *decoupled, T.scale_by_learning_rate(group["lr"]))
