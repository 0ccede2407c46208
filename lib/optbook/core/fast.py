"""The fast path of the torch-style classes: one flat buffer per group, the same chain run once over it.

``optim.Adam(params, fast="eager")`` views every parameter of a group (of one dtype and device) as a slice
of one flat tensor, its gradient as a slice of a second and each piece of state as a slice of a third, and
calls the class's chain *once* on the three flat tensors instead of once per parameter: a few large
element-wise operations instead of hundreds of small ones. ``fast=True`` also compiles that one call with
``torch.compile``, which fuses the chain's operations into one loop over memory: each byte of parameter,
gradient and state is read and written once per step, as torch's ``fused=True`` kernel does.

The arithmetic is still the chain's, so there is one definition of each update rule: the tests check the
flat path against the per-tensor path. What stays per tensor is unchanged for the user: ``p`` is still a
parameter of its own shape (its storage now lives in the flat buffer), ``optimizer.state[p]`` still holds
torch's keys (slices of the flat state), checkpoints load both ways. The flat path is skipped (the
per-tensor path runs) on the first step, when a parameter of the group has no gradient, for sparse or
complex tensors, and for classes whose step is not element-wise (Adafactor, Muon, Schedule-Free).
Gradients: after a fast step each ``p.grad`` is a view of the flat gradient, so ``zero_grad(set_to_none=False)``
keeps them there and the next backward accumulates in place; with ``set_to_none=True`` (torch's default) the
new gradients are copied into the flat buffer first (one extra read and write per parameter).
A compiled chain is recompiled when a hyperparameter other than ``lr`` changes (``lr`` is a tensor input).
"""

from __future__ import annotations

import types

import torch

_SCALAR_STATE = ("step", "mu_product")


class _Bucket:
    """One group's parameters of one dtype and device, viewed as flat buffers."""

    def __init__(self, params):
        self.params = list(params)
        self.numels = [p.numel() for p in self.params]
        self.flat_param = torch.cat([p.detach().reshape(-1) for p in self.params])
        for p, view in zip(self.params, self.flat_param.split(self.numels)):
            p.data = view.view(p.shape)
        self.ptrs = [p.data_ptr() for p in self.params]
        self.flat_grad = torch.empty_like(self.flat_param)
        self.grads = [None] * len(self.params)
        self.state = None  # chain key -> flat tensor (or 0-dim float64 tensor for counts)
        self.views = {}  # torch key -> the per-parameter tensors handed to optimizer.state
        self.lr = torch.zeros((), dtype=torch.float64, device=self.flat_param.device)
        self.kernels = {}

    def current(self, params) -> bool:
        return (
            len(params) == len(self.params)
            and all(p is q for p, q in zip(params, self.params))
            and all(p.data_ptr() == ptr for p, ptr in zip(self.params, self.ptrs))
        )

    def gather_grads(self):
        if all(p.grad is g for p, g in zip(self.params, self.grads)):
            return  # the gradients already live in the flat buffer
        torch.cat([p.grad.reshape(-1) for p in self.params], out=self.flat_grad)
        self.grads = [view.view(p.shape) for p, view in zip(self.params, self.flat_grad.split(self.numels))]
        for p, g in zip(self.params, self.grads):
            p.grad = g

    def gather_state(self, opt) -> bool:
        """Flat state from the per-parameter state (after the plain path or a checkpoint); False if not flat-able."""
        if self.state is not None and all(
            all(opt.state[p].get(key) is view for p, view in zip(self.params, views))
            for key, views in self.views.items()
        ):
            return True
        states = [opt.chain_state(opt.state[p]) for p in self.params]
        keys = states[0].keys()
        flat, views = {}, {}
        torch_name = lambda key: opt.STATE_NAMES.get(key, key)  # noqa: E731
        for key in keys:
            values = [s.get(key) for s in states]
            dtype = torch.float64  # step counts: exact, and bias corrections computed in double
            if key in _SCALAR_STATE and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in values):
                dtype = values[0].dtype  # a product kept as torch keeps it (NAdam's mu_product): same rounding
                values = [v.item() for v in values]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                if any(v != values[0] for v in values):
                    return False  # parameters at different step counts: the per-tensor path handles them
                flat[key] = torch.tensor(float(values[0]), dtype=dtype, device=self.flat_param.device)
            elif all(isinstance(v, torch.Tensor) and v.shape == p.shape for v, p in zip(values, self.params)):
                flat[key] = torch.cat([v.detach().reshape(-1).to(self.flat_param.dtype) for v in values])
                views[torch_name(key)] = [
                    view.view(p.shape) for p, view in zip(self.params, flat[key].split(self.numels))
                ]
            else:
                return False
        for key, per_param in views.items():
            for p, view in zip(self.params, per_param):
                opt.state[p][key] = view
        self.state, self.views = flat, views
        return True

    def publish_counts(self, opt, counted: bool):
        """The counts (``step``, NAdam's ``mu_product``) back into each parameter's own 0-dim tensor."""
        if counted:  # a class that keeps torch's step count though its chain does not need it (RMSprop)
            self.state["step"] += 1
        for key, value in self.state.items():
            if value.dim() == 0:
                name = opt.STATE_NAMES.get(key, key)
                targets = [opt.state[p][name] for p in self.params]
                value.copy_(value.to(targets[0].dtype))  # rounded as torch's (and the per-tensor path's) count
                torch._foreach_copy_(targets, [value.to(targets[0].dtype)] * len(targets))


# Inductor inlines scalar expressions into the loop that uses them: Adam's bias corrections (powers of the
# step count) were then recomputed for every vector of 16 numbers, which made the step twice as slow. A low
# op-count threshold makes it compute such expressions once, in their own tiny kernel, before the loop.
_INDUCTOR = {"realize_opcount_threshold": 2}


def _signature(hyper: dict):
    """What a compiled kernel depends on: every hyperparameter except lr (a tensor input)."""
    return tuple(sorted((k, repr(v)) for k, v in hyper.items() if k not in ("params", "lr")))


def _kernel(chain, name: str):
    def kernel(param, grad, state):
        update, new = chain.update(grad, state, param)
        param.add_(update)
        counts = {}
        for key, value in new.items():
            if key in state and not isinstance(state[key], torch.Tensor):
                counts[key] = value  # a count passed as a number (fast="eager")
            elif key in state and value is not state[key]:
                if state[key].dim() == 0:
                    counts[key] = value  # written outside: a compiled in-place write to a 0-dim input is lost
                else:
                    state[key].copy_(value)
        return counts

    # a code object of its own, so that torch.compile's cache (and its recompile limit) is per kernel
    return types.FunctionType(kernel.__code__.replace(co_name=name), kernel.__globals__, name, None, kernel.__closure__)


def step(opt, group: dict, hyper: dict, params: list, chain) -> bool:
    """One step of ``group`` on the flat buffers; False when the per-tensor path must run instead."""
    if len(params) != len(group["params"]):
        return False
    if any(p.grad.is_sparse or p.is_complex() or not p.is_floating_point() for p in params):
        return False
    if any(not opt.state.get(p) for p in params):
        return False  # the first step makes the state; the flat buffers start from it
    if opt._flat is None:
        opt._flat = {}
    buckets = {}
    for p in params:
        buckets.setdefault((p.device, p.dtype), []).append(p)
    for key, members in buckets.items():
        slot = (id(group), key)
        bucket = opt._flat.get(slot)
        if bucket is None or not bucket.current(members):
            bucket = opt._flat[slot] = _Bucket(members)
        if not bucket.gather_state(opt):
            opt._flat.pop(slot)
            return False
    for key in buckets:
        bucket = opt._flat[(id(group), key)]
        bucket.gather_grads()
        bucket.lr.fill_(hyper["lr"])
        signature = _signature(hyper)
        kernel = bucket.kernels.get(signature)
        if kernel is None:
            kernel = _kernel(
                opt.build_chain({**hyper, "lr": bucket.lr}), f"{type(opt).__name__}_flat_step_{id(bucket)}"
            )
            if opt.fast is True:
                kernel = torch.compile(kernel, dynamic=False, options=_INDUCTOR)
            bucket.kernels = {signature: kernel}
        state = bucket.state
        if opt.fast == "eager":  # the step count as a number, exactly as the per-tensor path sees it
            state = {k: v.item() if k == "step" or opt.STATE_NAMES.get(k) == "step" else v for k, v in state.items()}
        for key, value in kernel(bucket.flat_param, bucket.flat_grad, state).items():
            bucket.state[key].fill_(value) if not isinstance(value, torch.Tensor) else bucket.state[key].copy_(value)
        bucket.publish_counts(opt, opt.COUNT_STEPS)
    return True
