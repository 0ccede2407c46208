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

from typing import Callable, NamedTuple, Protocol

import torch

from . import validate

State = dict
Schedule = Callable[[int], "float | torch.Tensor"]


class InitFn(Protocol):
    """``init(param) -> state``: the memory a piece keeps for one parameter tensor (``{}`` if none)."""

    def __call__(self, param: torch.Tensor) -> State: ...


class UpdateFn(Protocol):
    """``update(u, state, param) -> (u, state)``: turn the incoming update into the outgoing one.

    ``u`` is the gradient for the first piece of a chain and the previous piece's output after that;
    ``param`` is read, never written; the returned state replaces the old one (pieces are functional).
    """

    def __call__(self, updates: torch.Tensor, state: State, param: torch.Tensor) -> tuple[torch.Tensor, State]: ...


class Transform(NamedTuple):
    """A piece of an optimizer, typed as optax types its gradient transformations: a pair of functions,
    ``init`` (:class:`InitFn`) and ``update`` (:class:`UpdateFn`)."""

    init: InitFn
    update: UpdateFn


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


def _item(x):
    """A 0-dim tensor as a Python number (as torch.optim reads its scalar state), except inside torch.compile."""
    if isinstance(x, torch.Tensor) and x.dim() == 0 and not torch.compiler.is_compiling():
        return x.item()
    return x


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


def decay_after_update(rate) -> Transform:
    r"""$u \leftarrow u - r\,(\theta_{t-1} + u)$: the weights are stepped first, then multiplied by $1 - r$.

    $\theta_t = (\theta_{t-1} + u)(1 - r)$ with $r = \gamma\lambda$ is the decoupled decay of SOAP's reference
    code (``p.add_(p, alpha=-lr * weight_decay)`` after the step), which differs from
    :func:`add_decayed_weights` after the learning rate by the product $r\,u$.
    """
    validate.non_negative("weight decay rate (lr * weight_decay)", rate)

    return Transform(lambda param: {}, lambda u, state, param: (u - rate * (param + u), {}))


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


def scale_by_rss_sparse(initial_accumulator_value=0.0, eps=1e-10) -> Transform:
    r""":func:`scale_by_rss` that also takes sparse gradients, as torch.optim.Adagrad does.

    A sparse gradient (an ``nn.Embedding(sparse=True)`` touching a few rows) is first coalesced (repeated
    rows summed: the update is not linear in $g$); then only the touched rows' $G$ grow, and the step
    $g/(\sqrt{G}+\epsilon)$ is sparse too: rare words keep their large steps. Dense gradients go to
    :func:`scale_by_rss` unchanged.
    """
    dense = scale_by_rss(initial_accumulator_value, eps)

    def update(g, state, param):
        if not g.is_sparse:
            return dense.update(g, state, param)
        g = g.coalesce()
        index, values = g._indices(), g._values()
        total = state["sum"] + torch.sparse_coo_tensor(index, values * values, g.shape, check_invariants=False)
        root = total.sparse_mask(g)._values().sqrt() + eps
        return torch.sparse_coo_tensor(index, values / root, g.shape, check_invariants=False), {"sum": total}

    return Transform(dense.init, update)


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
        mu_product = state["mu_product"] * mu  # a 0-dim tensor in torch's state: rounded as torch rounds it
        mp = _item(mu_product)
        denom = (v / (1 - b2**t)).sqrt() + eps
        u = (1 - mu) / (1 - mp) * g / denom + mu_next / (1 - mp * mu_next) * m / denom
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


# --- After Adam: Adafactor, Lion, Muon, Schedule-Free ------------------------------------------------


def _number(name: str, value) -> float:
    """A hyperparameter that must be one number (the pieces below take norms over a whole tensor)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name} must be a single number (a 1-element tensor at most), got shape {tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def scale_by_adafactor(lr=1e-2, beta2_decay=-0.8, eps1=None, eps2=1e-3, d=1.0) -> Transform:
    r"""Adafactor's step (Shazeer & Stern 2018) as torch.optim.Adafactor codes it, before the minus sign.

    With $t$ the step, $G_t$ the gradient and $\hat\beta_{2,t} = 1 - t^{\tau}$ ($\tau$ = ``beta2_decay``):

    * a matrix (any tensor with 2 or more dimensions, factored over its last two) keeps a row and a column
      mean of $G_t^2$: $R_t = \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{cols}}(G_t^2)$,
      $C_t = \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{rows}}(G_t^2)$ and
      $\hat V_t = R_t C_t / \max(\mathrm{mean}(R_t), \epsilon_1)$: $m+n$ numbers instead of $mn$;
    * a vector keeps the full $\hat V_t = \hat\beta_{2,t} \hat V_{t-1} + (1-\hat\beta_{2,t}) G_t^2$;

    $$U_t = \frac{G_t}{\max(\sqrt{\hat V_t}, \epsilon_1)},\qquad
      \rho_t = \min\!\Bigl(\gamma, \frac{1}{\sqrt t}\Bigr),\qquad
      \alpha_t = \max\bigl(\epsilon_2, \mathrm{RMS}(\theta_{t-1})\bigr)\,\rho_t,\qquad
      u_t = \alpha_t\,\frac{U_t}{\max\bigl(1, \mathrm{RMS}(U_t)/d\bigr)}.$$

    The step is *relative* to the size of the weights ($\alpha_t$), and $\gamma$ only caps $\rho_t$.
    $\epsilon_1$ = ``eps1`` (``None``: the machine epsilon of the parameter's dtype). At $t = 1$,
    $\hat\beta_{2,1} = 0$, so no bias correction is needed. Hyperparameters are single numbers here.
    """
    lr = _number("lr", lr)
    validate.non_negative("lr", lr)
    beta2_decay = _number("beta2_decay", beta2_decay)
    if not beta2_decay <= 0:
        raise ValueError(f"Invalid beta2_decay: {beta2_decay}. beta2_decay must be <= 0.")
    if eps1 is not None:
        validate.non_negative("eps1 (eps[0])", eps1)
    validate.non_negative("eps2 (eps[1])", eps2)
    if not _number("d", d) >= 1:
        raise ValueError(f"Invalid d: {d}. d (the clipping threshold) must be >= 1.")

    def init(param):
        if param.dim() > 1:
            return {
                "step": 0,
                "row_var": param.new_zeros((*param.shape[:-1], 1)),
                "col_var": param.new_zeros((*param.shape[:-2], 1, param.shape[-1])),
            }
        return {"step": 0, "variance": torch.zeros_like(param)}

    def update(g, state, param):
        t = state["step"] + 1
        e1 = torch.finfo(param.dtype).eps if eps1 is None else eps1
        decay = t**beta2_decay  # 1 - beta2_hat
        rho = min(lr, 1 / (t**0.5))
        alpha = max(eps2, param.norm(2).item() / (param.numel() ** 0.5)) * rho
        if g.dim() > 1:
            row = torch.lerp(state["row_var"], torch.norm(g, dim=-1, keepdim=True).square() / g.size(-1), decay)
            col = torch.lerp(state["col_var"], torch.norm(g, dim=-2, keepdim=True).square() / g.size(-2), decay)
            v_hat = (row @ col) / row.mean(dim=-2, keepdim=True).clamp(min=e1)
            new_state = {"step": t, "row_var": row, "col_var": col}
        else:
            v_hat = torch.lerp(state["variance"], g * g, decay)
            new_state = {"step": t, "variance": v_hat}
        u = v_hat.clamp(min=e1 * e1).rsqrt() * g
        clip = max(1.0, u.norm(2).item() / ((u.numel() ** 0.5) * d))
        return u * (alpha / clip), new_state

    return Transform(init, update)


def scale_by_lion(b1=0.9, b2=0.99) -> Transform:
    r"""Lion's sign step (Chen et al. 2023, Algorithm 2), before the learning rate.

    $$c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad u_t = \operatorname{sign}(c_t),\qquad
      m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t,$$

    with $m_0 = 0$ (state ``exp_avg``). Every coordinate moves by exactly $\pm 1$ (0 where $c_t = 0$):
    the update's size is set by the learning rate alone, so Lion wants a learning rate 3-10 times
    smaller than AdamW's. The step interpolates with $\beta_1$, the memory with $\beta_2$; with
    $\beta_1 = \beta_2$ this is Signum.
    """
    validate.in_closed_unit_interval("beta1 (betas[0])", b1)
    validate.in_closed_unit_interval("beta2 (betas[1])", b2)

    def init(param):
        return {"exp_avg": torch.zeros_like(param)}

    def update(g, state, param):
        m = state["exp_avg"]
        u = (m * b1 + g * (1 - b1)).sgn()
        return u, {"exp_avg": m * b2 + g * (1 - b2)}

    return Transform(init, update)


def ema_momentum(momentum=0.95, nesterov: bool = True) -> Transform:
    r"""Muon's momentum: an exponential moving average of the gradient from zero, optionally Nesterov.

    $$B_t = \mu B_{t-1} + (1-\mu) g_t,\qquad
      u_t = \begin{cases} (1-\mu) g_t + \mu B_t & \text{Nesterov} \\ B_t & \text{otherwise.} \end{cases}$$

    (torch's docstring writes the summed buffer $B_t = \mu B_{t-1} + g_t$; the two differ by the factor
    $1/(1-\mu)$, which the Newton-Schulz step normalises away.)
    """
    validate.in_closed_unit_interval("momentum", momentum)

    def init(param):
        return {"momentum_buffer": torch.zeros_like(param)}

    def update(g, state, param):
        buf = torch.lerp(state["momentum_buffer"], g, 1 - momentum)
        return (torch.lerp(g, buf, momentum) if nesterov else buf), {"momentum_buffer": buf}

    return Transform(init, update)


MUON_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(x: torch.Tensor, coefficients=MUON_NS_COEFFICIENTS, steps: int = 5, eps: float = 1e-7):
    r"""Muon's approximate orthogonalisation of a matrix, in bfloat16 as torch.optim.Muon computes it.

    $X_0 = X / \max(\lVert X\rVert_F, \epsilon)$ (so every singular value is at most 1), then ``steps``
    times $A = X X^\top$, $X \leftarrow aX + (bA + cA^2)X$: each singular value $\sigma$ goes to
    $a\sigma + b\sigma^3 + c\sigma^5$, which pushes them all into a band around 1 (about 0.7 to 1.2,
    not exactly 1). The result is close to $UV^\top$ for $X = USV^\top$. Wide orientation inside.
    """
    a, b, c = coefficients
    y = x.bfloat16()
    if x.size(0) > x.size(1):
        y = y.T
    y = y / y.norm().clamp(min=eps)
    for _ in range(steps):
        gram = y @ y.T
        y = torch.addmm(y, torch.addmm(gram, gram, gram, beta=b, alpha=c), y, beta=a)
    return y.T if x.size(0) > x.size(1) else y


def orthogonalize(coefficients=MUON_NS_COEFFICIENTS, steps: int = 5, eps: float = 1e-7) -> Transform:
    r"""$u \leftarrow \mathrm{NS}(u)$ for a 2-D parameter (see :func:`newton_schulz`), back in $u$'s dtype."""
    if not (isinstance(coefficients, (tuple, list)) and len(coefficients) == 3):
        raise ValueError(f"ns_coefficients must be three numbers (a, b, c), got {coefficients!r}")
    validate.integer_at_least("ns_steps", steps, 0, 99)
    validate.non_negative("eps", eps)

    def update(u, state, param):
        if u.dim() != 2:
            raise ValueError(f"Muon's update needs a 2-D parameter (a matrix), got {u.dim()} dimensions")
        return newton_schulz(u, coefficients, steps, eps).to(u.dtype), {}

    return Transform(lambda param: {}, update)


def muon_lr_ratio(shape, adjust_lr_fn: str | None = None) -> float:
    r"""Muon's per-matrix factor on the learning rate, for an $A\times B$ matrix.

    ``None`` or ``"original"`` (Keller Jordan): $\sqrt{\max(1, A/B)}$; ``"match_rms_adamw"`` (Moonshot):
    $0.2\sqrt{\max(A, B)}$, which gives the update about AdamW's RMS, so AdamW's lr and decay carry over.
    """
    a, b = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return max(1, a / b) ** 0.5
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * max(a, b) ** 0.5
    raise ValueError(f"adjust_lr_fn must be None, 'original' or 'match_rms_adamw', got {adjust_lr_fn!r}")


def scale_by_shape(adjust_lr_fn: str | None = None) -> Transform:
    r"""$u \leftarrow r(\text{shape})\,u$ with Muon's factor $r$ (:func:`muon_lr_ratio`)."""
    muon_lr_ratio((1, 1), adjust_lr_fn)  # validates the name
    return Transform(lambda param: {}, lambda u, state, param: (u * muon_lr_ratio(param.shape, adjust_lr_fn), {}))


def schedule_free_weight(k: int, lr, warmup_steps=0, r=0.0, weight_lr_power=2.0, lr_max=-1.0, weight_sum=0.0):
    r"""Schedule-Free's bookkeeping for step $k = 0, 1, \dots$ of a parameter group.

    Returns ``(lr_k, lr_max, weight_sum, c)``: the warmed-up $\gamma_k = \gamma\min(1, (k+1)/W)$, the
    running maximum $\gamma_{\max}$, $\sum w$, and the averaging weight $c_{k+1} = w_k / \sum_{i\le k} w_i$ with
    $w_k = (k+1)^r\,\gamma_{\max}^{p}$. With the defaults ($r = 0$, $p = 2$) the average is uniform after
    warmup, and warmup steps count less.
    """
    sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
    lr_k = lr * sched
    lr_max = max(lr_k, lr_max)
    weight = ((k + 1) ** r) * (lr_max**weight_lr_power)
    weight_sum = weight_sum + weight
    c = weight / weight_sum if weight_sum != 0 else 0.0
    return lr_k, lr_max, weight_sum, c


def schedule_free_adamw(lr, c, k: int, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0) -> Transform:
    r"""One step of Schedule-Free AdamW (Defazio et al. 2024) on the training point $y$.

    Three sequences: $z$ (the base AdamW-without-momentum iterate), $x$ (the weighted average of the
    $z$'s, where the loss should be *evaluated*) and $y = (1-\beta_1) z + \beta_1 x$, where gradients are
    taken and which the parameter holds during training. Only $z$ and $v$ are stored; $x$ is implied:
    $$v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\qquad
      \hat g_t = \frac{g_t}{\sqrt{v_t / (1-\beta_2^{k+1})} + \epsilon} + \lambda y_t,$$
    $$y_{t+1} = (1-c)\,y_t + c\,z_t + \gamma_k\bigl(\beta_1(1-c) - 1\bigr)\hat g_t,\qquad
      z_{t+1} = z_t - \gamma_k \hat g_t.$$
    ``lr``, ``c`` and ``k`` come from :func:`schedule_free_weight`. The returned update is
    $y_{t+1} - y_t$ (no separate learning-rate piece: $\gamma_k$ acts on $y$ and $z$ differently).
    """
    _check_betas(b1, b2)
    validate.non_negative("eps", eps)
    validate.non_negative("weight_decay", weight_decay)
    bias_correction2 = 1 - b2 ** (k + 1)

    def init(param):
        return {"z": param.clone(), "exp_avg_sq": torch.zeros_like(param)}

    def update(g, state, y):
        z = state["z"]
        v = state["exp_avg_sq"] * b2 + g * g * (1 - b2)
        g_hat = g / ((v / bias_correction2).sqrt() + eps)
        if weight_decay != 0:
            g_hat = g_hat + weight_decay * y
        y_new = torch.lerp(y, z, c) + g_hat * (lr * (b1 * (1 - c) - 1))
        return y_new - y, {"z": z - lr * g_hat, "exp_avg_sq": v}

    return Transform(init, update)


def schedule_free_eval_point(y: torch.Tensor, z: torch.Tensor, b1=0.9) -> torch.Tensor:
    r"""The evaluation point $x = (y - (1-\beta_1) z)/\beta_1$, computed as torch's ``lerp(y, z, 1 - 1/\beta_1)``."""
    return torch.lerp(y, z, 1 - 1 / b1)


def schedule_free_train_point(x: torch.Tensor, z: torch.Tensor, b1=0.9) -> torch.Tensor:
    r"""The training point $y = (1-\beta_1) z + \beta_1 x$, computed as ``lerp(x, z, 1 - \beta_1)``."""
    return torch.lerp(x, z, 1 - b1)


# --- GloVe's AdaGrad --------------------------------------------------------------------------------


def scale_by_glove_adagrad(eta=0.05, initial_accumulator_value=1.0, clip=100.0) -> Transform:
    r"""AdaGrad as GloVe's reference code ``glove.c`` writes it (stanfordnlp/GloVe, ``src/glove.c``).

    $$s_t = \eta\,\operatorname{clip}(g_t, \pm c),\qquad u_t = \frac{s_t}{\sqrt{G_{t-1}}},\qquad
      G_t = G_{t-1} + s_t^2,\qquad G_0 = 1 .$$

    Three differences from :func:`scale_by_rss`: the accumulator sums $(\eta g)^2$, not $g^2$; it starts at
    1 ("so initial value of eta is equal to initial learning rate"); and the step divides by it *before*
    the current term is added. Equivalently $u_t = g_t / \sqrt{1/\eta^2 + \sum_{s<t} g_s^2}$ (without
    clipping): AdaGrad with learning rate 1, a prior accumulator $1/\eta^2$ and past gradients only.
    ``torch.optim.Adagrad(lr=1, initial_accumulator_value=1/eta**2, eps=0)`` is the nearest torch setting;
    it differs by the current $g_t^2$ in the denominator, so no torch setting is exact.
    At glove.c's HEAD the word and context vectors use ``eta = 0.05, clip = 100``; the biases use no
    $\eta$ and no clipping (``eta = 1, clip = None``). The piece already carries $\eta$: chain it with
    ``scale_by_learning_rate(1.0)`` for the minus sign. A zero gradient moves nothing and adds nothing,
    so on dense gradients with zero rows it is the sparse update of glove.c.
    """
    validate.positive("eta", eta)
    validate.positive("initial_accumulator_value", initial_accumulator_value)
    if clip is not None:
        validate.positive("clip", clip)

    def init(param):
        return {"gradsq": torch.zeros_like(param) + initial_accumulator_value}

    def update(g, state, param):
        s = eta * (g if clip is None else g.clamp(-clip, clip))
        return s / state["gradsq"].sqrt(), {"gradsq": state["gradsq"] + s * s}

    return Transform(init, update)
