r"""The update rules of the book, as small pieces that chain into optimizers.

Each piece is a :class:`Transform`: a pair of pure functions

* ``init(param) -> state``: the memory the piece keeps for one parameter tensor, a dict of tensors;
* ``update(u, state, param) -> (u, state)``: turn the incoming direction ``u`` (at first the gradient
  $g_t$) into a new one, and return the new memory.

An optimizer is a :func:`chain` of pieces whose last one scales by $-\gamma$; the step is then
$\theta_t = \theta_{t-1} + u_t$ (:func:`apply_updates`). For example

* Adam  = ``chain(scale_by_adam(), scale_by_learning_rate(lr))``
* Adam with L2 = ``chain(add_decayed_weights(wd), scale_by_adam(), scale_by_learning_rate(lr))``
* AdamW = ``chain(scale_by_adam(), add_decayed_weights(wd), scale_by_learning_rate(lr))``

The last two are the same two pieces in a different order: L2 adds $\lambda\theta$ to the gradient
*before* Adam rescales it, decoupled weight decay adds it to the update *after*.

Notation (the book's): $\gamma$ learning rate, $\lambda$ weight decay, $g_t$ gradient at step $t$
(counted from 1), $\beta_1, \beta_2$ decay rates, $\epsilon$ the small constant. Operations are element-wise.

Hyperparameters may be numbers or tensors that broadcast against the parameter: with ``lr`` of shape
``(64, 1)`` and a parameter of shape ``(2,)`` one call runs 64 learning rates at once, and the state
grows to shape ``(64, 2)`` on the first step. Everything is plain torch, so the same code runs on CPU and
CUDA and in any floating dtype.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from . import validate

State = dict
Schedule = Callable[[int], "float | torch.Tensor"]


class Transform(NamedTuple):
    """A piece of an optimizer: ``init(param) -> state`` and ``update(u, state, param) -> (u, state)``."""

    init: Callable
    update: Callable


def chain(*transforms: Transform) -> Transform:
    """Compose pieces left to right.

    The chain keeps one flat dict of memory per parameter, each piece owning its own keys
    (``exp_avg``, ``exp_avg_sq``, ``momentum_buffer``, ... named as torch.optim names them), so that
    ``optimizer.state[p]`` reads like torch's. Two pieces may not claim the same key.
    """

    def init(param):
        state = {}
        for t in transforms:
            piece = t.init(param)
            if clash := state.keys() & piece.keys():
                raise ValueError(f"two pieces of this chain both keep {sorted(clash)} in their state")
            state.update(piece)
        return state

    def update(grad, state, param):
        validate.same_tensor_kind(grad, param)
        new_state = dict(state)
        u = grad
        for t in transforms:
            u, piece = t.update(u, new_state, param)
            new_state.update(piece)
        return u, new_state

    return Transform(init, update)


def apply_updates(param: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    r"""$\theta_t = \theta_{t-1} + u_t$ (the chain's last piece already carries the minus sign)."""
    return param + u


def _sqrt(x):
    return x**0.5  # works for numbers and tensors alike


# --- Scaling ----------------------------------------------------------------------------------------


def scale(factor) -> Transform:
    r"""$u \leftarrow c\,u$ for a constant $c$ (``scale(-1)`` turns minimisation into maximisation)."""

    return Transform(lambda param: {}, lambda u, state, param: (factor * u, {}))


def scale_by_learning_rate(lr: float | torch.Tensor | Schedule) -> Transform:
    r"""$u_t \leftarrow -\gamma_t\,u_t$.

    ``lr`` is a number, a tensor (a grid of learning rates), or a schedule: a function of the step
    $t = 1, 2, \dots$ returning $\gamma_t$.
    """
    if not callable(lr):
        validate.non_negative("lr", lr)
        return Transform(lambda param: {}, lambda u, state, param: (-lr * u, {}))

    def update(u, state, param):
        t = state["schedule_step"] + 1
        return -lr(t) * u, {"schedule_step": t}

    return Transform(lambda param: {"schedule_step": 0}, update)


def inverse_time_decay(lr, decay) -> Schedule:
    r"""AdaGrad's learning-rate decay: $\gamma_t = \gamma / (1 + (t-1)\,\eta_{\text{decay}})$."""
    validate.non_negative("lr", lr)
    validate.non_negative("lr_decay", decay)
    return lambda t: lr / (1 + (t - 1) * decay)


# --- Weight decay -----------------------------------------------------------------------------------


def add_decayed_weights(weight_decay) -> Transform:
    r"""$u \leftarrow u + \lambda\,\theta_{t-1}$.

    Placed *before* an adaptive piece this is L2 regularisation (the penalty's gradient is rescaled
    with the data gradient); placed *after* it, just before the learning rate, it is decoupled weight
    decay: $\theta_t = \theta_{t-1} - \gamma(\text{adaptive step} + \lambda\theta_{t-1})$, as in AdamW.
    """
    validate.non_negative("weight_decay", weight_decay)

    return Transform(lambda param: {}, lambda u, state, param: (u + weight_decay * param, {}))


# --- Momentum ---------------------------------------------------------------------------------------


def trace(momentum=0.9, dampening=0.0, nesterov: bool = False) -> Transform:
    r"""Heavy-ball momentum, with torch.optim.SGD's conventions.

    $$b_1 = g_1,\qquad b_t = \mu\, b_{t-1} + (1-\tau)\, g_t,\qquad
      u_t = \begin{cases} g_t + \mu\, b_t & \text{Nesterov} \\ b_t & \text{otherwise} \end{cases}$$

    $\mu$ is ``momentum`` and $\tau$ ``dampening``. The buffer starts at the first gradient, not at
    zero, so dampening does not shrink the first step.
    """
    validate.non_negative("momentum", momentum)
    validate.in_closed_unit_interval("dampening", dampening)
    if nesterov and (bool((torch.as_tensor(momentum) <= 0).any()) or bool((torch.as_tensor(dampening) != 0).any())):
        raise ValueError("Nesterov momentum requires momentum > 0 and dampening = 0")

    def init(param):
        return {"momentum_buffer": None}

    def update(g, state, param):
        buf = state["momentum_buffer"]
        buf = g.clone() if buf is None else momentum * buf + (1 - dampening) * g
        u = g + momentum * buf if nesterov else buf
        return u, {"momentum_buffer": buf}

    return Transform(init, update)


# --- AdaGrad ----------------------------------------------------------------------------------------


def scale_by_rss(initial_accumulator_value=0.0, eps=1e-10) -> Transform:
    r"""AdaGrad's root of the sum of squares.

    $$G_t = G_{t-1} + g_t^2,\qquad u_t = \frac{g_t}{\sqrt{G_t} + \epsilon},$$

    with $G_0$ = ``initial_accumulator_value``. $G_t$ only grows, so the step per unit of gradient,
    $1/(\sqrt{G_t}+\epsilon)$, can only fall.
    """
    validate.non_negative("initial_accumulator_value", initial_accumulator_value)
    validate.non_negative("eps", eps)

    def init(param):
        return {"sum": torch.zeros_like(param) + initial_accumulator_value}

    def update(g, state, param):
        total = state["sum"] + g * g
        return g / (total.sqrt() + eps), {"sum": total}

    return Transform(init, update)


# --- RMSProp ----------------------------------------------------------------------------------------


def scale_by_rms(alpha=0.99, eps=1e-8, centered: bool = False) -> Transform:
    r"""RMSProp's exponential moving average of squared gradients (torch's ``alpha`` is the book's $\beta$).

    $$v_t = \alpha v_{t-1} + (1-\alpha) g_t^2,\qquad u_t = \frac{g_t}{\sqrt{v_t} + \epsilon}.$$

    Centered: also $\bar g_t = \alpha \bar g_{t-1} + (1-\alpha) g_t$, and the denominator is
    $\sqrt{v_t - \bar g_t^2} + \epsilon$ (an estimate of the standard deviation, not the RMS).
    """
    validate.in_unit_interval("alpha", alpha)
    validate.non_negative("eps", eps)

    def init(param):
        state = {"square_avg": torch.zeros_like(param)}
        if centered:
            state["grad_avg"] = torch.zeros_like(param)
        return state

    def update(g, state, param):
        v = torch.lerp(state["square_avg"], g * g, 1 - alpha)
        new_state = {"square_avg": v}
        if centered:
            gbar = torch.lerp(state["grad_avg"], g, 1 - alpha)
            new_state["grad_avg"] = gbar
            v = v - gbar * gbar
        return g / (v.sqrt() + eps), new_state

    return Transform(init, update)


# --- Adam and its relatives -------------------------------------------------------------------------


def _check_betas(b1, b2):
    validate.in_unit_interval("beta1 (betas[0])", b1)
    validate.in_unit_interval("beta2 (betas[1])", b2)


def _moments(g, state, b1, b2):
    """Adam's two memories: m = EMA of g (weight 1 - beta1), v = EMA of g^2 (weight 1 - beta2)."""
    t = state["step"] + 1
    m = torch.lerp(state["exp_avg"], g, 1 - b1)
    v = torch.lerp(state["exp_avg_sq"], g * g, 1 - b2)
    return t, m, v


def _adam_init(param):
    return {"step": 0, "exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}


def scale_by_adam(b1=0.9, b2=0.999, eps=1e-8, amsgrad: bool = False, bias_correction: bool = True) -> Transform:
    r"""Adam's two moments with bias correction (Kingma & Ba, Algorithm 1).

    $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,$$
    $$\hat m_t = \frac{m_t}{1-\beta_1^t},\qquad \hat v_t = \frac{v_t}{1-\beta_2^t},\qquad
      u_t = \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}.$$

    $\epsilon$ sits outside the square root of the bias-corrected $\hat v_t$, as in torch.optim and optax.
    ``amsgrad=True`` divides by $\sqrt{\max_{s\le t} v_s / (1-\beta_2^t)}$ instead: the maximum of the
    *raw* $v$, as torch.optim computes it. ``bias_correction=False`` drops both corrections (for
    teaching: the first steps are then too small by $(1-\beta_1)/\sqrt{1-\beta_2}$ or too large).
    """
    _check_betas(b1, b2)
    validate.non_negative("eps", eps)

    def init(param):
        state = _adam_init(param)
        if amsgrad:
            state["max_exp_avg_sq"] = torch.zeros_like(param)
        return state

    def update(g, state, param):
        t, m, v = _moments(g, state, b1, b2)
        new_state = {"step": t, "exp_avg": m, "exp_avg_sq": v}
        if amsgrad:
            v = torch.maximum(state["max_exp_avg_sq"], v)
            new_state["max_exp_avg_sq"] = v
        if not bias_correction:
            return m / (v.sqrt() + eps), new_state
        # m_hat / (sqrt(v_hat) + eps), with the two corrections folded into scalars (two passes fewer)
        root_c2 = _sqrt(1 - b2**t)
        return m * (root_c2 / (1 - b1**t)) / (v.sqrt() + eps * root_c2), new_state

    return Transform(init, update)


def scale_by_amsgrad(b1=0.9, b2=0.999, eps=1e-8) -> Transform:
    r"""AMSGrad (Reddi et al. 2018): Adam whose denominator never shrinks, $\hat v_t = \max(\hat v_{t-1}, v_t)$."""
    return scale_by_adam(b1, b2, eps, amsgrad=True)


def scale_by_nadam(b1=0.9, b2=0.999, eps=1e-8, momentum_decay=4e-3) -> Transform:
    r"""NAdam (Dozat 2016) with torch.optim's momentum warm-up.

    $$\mu_t = \beta_1\bigl(1 - \tfrac12\, 0.96^{t\psi}\bigr),\qquad \Pi_t = \prod_{i\le t}\mu_i,\qquad
      D_t = \sqrt{v_t/(1-\beta_2^t)} + \epsilon,$$
    $$u_t = \frac{1-\mu_t}{1-\Pi_t}\,\frac{g_t}{D_t} + \frac{\mu_{t+1}}{1-\Pi_t\,\mu_{t+1}}\,\frac{m_t}{D_t},$$

    with $m_t, v_t$ Adam's moments and $\psi$ = ``momentum_decay``: the Nesterov look-ahead inside Adam.
    """
    _check_betas(b1, b2)
    validate.non_negative("eps", eps)
    validate.non_negative("momentum_decay", momentum_decay)

    def init(param):
        return {**_adam_init(param), "mu_product": 1.0}

    def update(g, state, param):
        t, m, v = _moments(g, state, b1, b2)
        mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        mu_product = state["mu_product"] * mu
        denom = (v / (1 - b2**t)).sqrt() + eps
        u = (1 - mu) / (1 - mu_product) * g / denom + mu_next / (1 - mu_product * mu_next) * m / denom
        return u, {"step": t, "exp_avg": m, "exp_avg_sq": v, "mu_product": mu_product}

    return Transform(init, update)


def scale_by_radam(b1=0.9, b2=0.999, eps=1e-8, threshold=5.0) -> Transform:
    r"""RAdam (Liu et al. 2020): Adam whose adaptive step is switched on only when its variance is tractable.

    $$\rho_\infty = \frac{2}{1-\beta_2} - 1,\qquad \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t},\qquad
      r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}},$$
    $$u_t = \begin{cases} \hat m_t\, r_t\, \dfrac{\sqrt{1-\beta_2^t}}{\sqrt{v_t}+\epsilon} & \rho_t > 5 \\
      \hat m_t & \text{otherwise (momentum SGD)} \end{cases}$$

    Note that $\epsilon$ is added to $\sqrt{v_t}$ *before* the bias correction, unlike Adam.
    """
    _check_betas(b1, b2)
    validate.non_negative("eps", eps)

    def update(g, state, param):
        t, m, v = _moments(g, state, b1, b2)
        bc2 = 1 - b2**t
        m_hat = m / (1 - b1**t)
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2**t / bc2
        new_state = {"step": t, "exp_avg": m, "exp_avg_sq": v}
        tractable = rho_t > threshold
        if isinstance(tractable, bool) and not tractable:
            return m_hat, new_state
        rect = _sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        adaptive = m_hat * rect * _sqrt(bc2) / (v.sqrt() + eps)
        if isinstance(tractable, torch.Tensor):  # a grid of beta2: choose per setting
            adaptive = torch.where(tractable, adaptive, m_hat)
        return adaptive, new_state

    return Transform(_adam_init, update)


def scale_by_yogi(b1=0.9, b2=0.99, eps=1e-3) -> Transform:
    r"""Yogi's moments, without bias correction (the server piece of FedYogi).

    $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
      v_t = v_{t-1} - (1-\beta_2)\, g_t^2\, \operatorname{sign}(v_{t-1} - g_t^2),\qquad
      u_t = \frac{m_t}{\sqrt{v_t} + \epsilon},$$

    with $m_0 = v_0 = 0$. Adam's $v_t$ moves toward $g_t^2$ by a fraction $(1-\beta_2)$ of the *gap*;
    Yogi's moves by $(1-\beta_2)\,g_t^2$ in the direction of the gap, so a sudden small $g_t^2$ cannot shrink
    $v$ quickly (and the step cannot jump). $v_t$ stays $\ge 0$ whenever $\beta_2 \ge 0$.
    In FedYogi $g_t = -\Delta_t$ and $\epsilon$ is the paper's $\tau$.
    """
    validate.in_unit_interval("beta1 (b1)", b1)
    validate.in_unit_interval("beta2 (b2)", b2)
    validate.non_negative("eps (tau)", eps)

    def init(param):
        return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}

    def update(g, state, param):
        m = torch.lerp(state["exp_avg"], g, 1 - b1)
        g2 = g * g
        v = state["exp_avg_sq"] - (1 - b2) * g2 * torch.sign(state["exp_avg_sq"] - g2)
        return m / (v.sqrt() + eps), {"exp_avg": m, "exp_avg_sq": v}

    return Transform(init, update)


def side_by_side(*blocks: tuple[Transform, int]) -> Transform:
    """Run different chains on different rows of one ``(S, P)`` tensor: ``blocks`` are ``(chain, rows)``
    pairs whose rows add up to ``S``. One simulation then compares several server optimizers on exactly the
    same clients and mini-batches."""
    sizes = []
    for k, block in enumerate(blocks):
        if not (isinstance(block, tuple) and len(block) == 2 and isinstance(block[1], int) and block[1] >= 1):
            raise ValueError(f"block {k} must be a pair (chain, number of rows >= 1), got {block!r}")
        sizes.append(block[1])

    def split(x):
        if x.shape[0] != sum(sizes):
            raise ValueError(f"side_by_side expects {sum(sizes)} rows (the sum of the blocks), got {x.shape[0]}")
        return torch.split(x, sizes)

    def init(param):
        return {f"block{k}": chain.init(p) for k, ((chain, _), p) in enumerate(zip(blocks, split(param)))}

    def update(g, state, param):
        outs, new = [], {}
        for k, ((chain, _), gk, pk) in enumerate(zip(blocks, split(g), split(param))):
            u, new[f"block{k}"] = chain.update(gk, state[f"block{k}"], pk)
            outs.append(u)
        return torch.cat(outs), new

    return Transform(init, update)
