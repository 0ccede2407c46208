r"""Where each framework puts $\epsilon$: the same optimizer, written the way each library writes it.

Every function returns a :class:`~optbook.transforms.Transform` that maps a gradient to the step direction
(before the learning rate), exactly as that framework computes it. Besides the optimizer's own memory, each
keeps one extra entry in its state, ``"effective_eps"``: the $\epsilon'$ that the *reference* form of the
same method would need to take the very same step. The reference forms are

* Adam family (Kingma & Ba, Algorithm 1, torch.optim.Adam): $u_t = \hat m_t / (\sqrt{\hat v_t} + \epsilon')$,
  with $\hat m_t = m_t/(1-\beta_1^t)$ and $\hat v_t = v_t/(1-\beta_2^t)$;
* AdaGrad (torch.optim.Adagrad with a zero start): $u_t = g_t / (\sqrt{G_t} + \epsilon')$, $G_t = \sum_{s\le t} g_s^2$;
* RMSProp (torch.optim.RMSprop): $u_t = g_t / (\sqrt{v_t} + \epsilon')$.

So a table of ``effective_eps`` compares the conventions in one unit: the number added to the root of the
second moment. The conventions:

* ``adam_torch``: $u_t = \hat m_t / (\sqrt{\hat v_t} + \epsilon)$; $\epsilon' = \epsilon$.
* ``adam_optax``: $u_t = \hat m_t / (\sqrt{\hat v_t + \bar\epsilon} + \epsilon)$;
  $\epsilon' = \sqrt{\hat v_t + \bar\epsilon} - \sqrt{\hat v_t} + \epsilon$.
* ``adam_eps_hat``: $u_t = \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\, m_t / (\sqrt{v_t} + \hat\epsilon)$;
  $\epsilon' = \hat\epsilon / \sqrt{1-\beta_2^t}$.
* ``radam_torch``: $u_t = r_t\,\hat m_t\,\sqrt{1-\beta_2^t} / (\sqrt{v_t} + \epsilon)$ once $\rho_t > 5$, else
  $\hat m_t$; $\epsilon' = \epsilon/\sqrt{1-\beta_2^t}$ (besides the factor $r_t$), NaN while there is no denominator.
* ``adagrad_torch``: $u_t = g_t / (\sqrt{G_0 + G_t} + \epsilon)$; $\epsilon' = \sqrt{G_0+G_t} - \sqrt{G_t} + \epsilon$.
* ``adagrad_optax``: $u_t = g_t / \sqrt{G_0 + G_t + \epsilon}$ (0 where the sum is 0);
  $\epsilon' = \sqrt{G_0+G_t+\epsilon} - \sqrt{G_t}$.
* ``rmsprop_torch``: $u_t = g_t / (\sqrt{v_t} + \epsilon)$; $\epsilon' = \epsilon$.
* ``rmsprop_optax``: $u_t = g_t / \sqrt{v_t + \epsilon}$ (``eps_in_sqrt=True``);
  $\epsilon' = \sqrt{v_t+\epsilon} - \sqrt{v_t}$.

$G_0$ is the initial accumulator (torch: 0, optax: 0.1). The ε-hat form is Kingma & Ba's "efficient"
reordering (the formula just before their Section 2.1), used by TensorFlow/Keras: algebraically it is
Algorithm 1 with $\epsilon = \hat\epsilon/\sqrt{1-\beta_2^t}$, which is $31.6\,\hat\epsilon$ at $t = 1$ for
$\beta_2 = 0.999$ and tends to $\hat\epsilon$ later. These are written out formula by formula for
comparison; the library's own pieces are :func:`optbook.transforms.scale_by_adam` (the torch form) and friends.
"""

from __future__ import annotations

import torch

from ..core import validate
from ..core.transforms import Transform


def _root(x):
    return x**0.5


def _adam_init(param):
    z = torch.zeros_like(param)
    return {"step": 0, "exp_avg": z, "exp_avg_sq": z.clone(), "effective_eps": torch.full_like(param, float("nan"))}


def _moments(g, state, b1, b2):
    t = state["step"] + 1
    m = b1 * state["exp_avg"] + (1 - b1) * g
    v = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
    return t, m, v


def _check_adam(b1, b2, **eps):
    validate.in_unit_interval("b1", b1)
    validate.in_unit_interval("b2", b2)
    for name, value in eps.items():
        validate.non_negative(name, value)


def adam_torch(b1=0.9, b2=0.999, eps=1e-8) -> Transform:
    r"""torch.optim.Adam, Kingma & Ba's Algorithm 1: $\epsilon$ outside the root of the bias-corrected $\hat v_t$."""
    _check_adam(b1, b2, eps=eps)

    def update(g, state, param):
        t, m, v = _moments(g, state, b1, b2)
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        u = m_hat / (v_hat.sqrt() + eps)
        return u, {"step": t, "exp_avg": m, "exp_avg_sq": v, "effective_eps": torch.full_like(u, eps)}

    return Transform(_adam_init, update)


def adam_optax(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0) -> Transform:
    r"""optax.scale_by_adam: $\hat m_t / (\sqrt{\hat v_t + \bar\epsilon} + \epsilon)$.

    ``eps_root`` $=\bar\epsilon$ sits inside the root (optax's default is 0)."""
    _check_adam(b1, b2, eps=eps, eps_root=eps_root)

    def update(g, state, param):
        t, m, v = _moments(g, state, b1, b2)
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        u = m_hat / ((v_hat + eps_root).sqrt() + eps)
        eff = (v_hat + eps_root).sqrt() - v_hat.sqrt() + eps
        return u, {"step": t, "exp_avg": m, "exp_avg_sq": v, "effective_eps": eff}

    return Transform(_adam_init, update)


def adam_eps_hat(b1=0.9, b2=0.999, eps_hat=1e-7) -> Transform:
    r"""TensorFlow/Keras Adam (``epsilon`` is "epsilon hat", default 1e-7).

    $$\alpha_t = \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t},\qquad u_t = \alpha_t\,\frac{m_t}{\sqrt{v_t} + \hat\epsilon}
      = \frac{\hat m_t}{\sqrt{\hat v_t} + \hat\epsilon/\sqrt{1-\beta_2^t}}.$$
    """
    _check_adam(b1, b2, eps_hat=eps_hat)

    def update(g, state, param):
        t, m, v = _moments(g, state, b1, b2)
        alpha_t = _root(1 - b2**t) / (1 - b1**t)
        u = alpha_t * m / (v.sqrt() + eps_hat)
        eff = torch.full_like(u, 1.0) * (eps_hat / _root(1 - b2**t))
        return u, {"step": t, "exp_avg": m, "exp_avg_sq": v, "effective_eps": eff}

    return Transform(_adam_init, update)


def radam_torch(b1=0.9, b2=0.999, eps=1e-8, threshold=5.0) -> Transform:
    r"""torch.optim.RAdam: $\epsilon$ added to $\sqrt{v_t}$ *before* the bias correction, and no denominator at all
    (a momentum-SGD step $\hat m_t$) while $\rho_t \le 5$; then ``effective_eps`` is NaN."""
    _check_adam(b1, b2, eps=eps)
    validate.non_negative("threshold", threshold)
    rho_inf = 2 / (1 - b2) - 1

    def update(g, state, param):
        t, m, v = _moments(g, state, b1, b2)
        bc2 = 1 - b2**t
        m_hat = m / (1 - b1**t)
        rho_t = rho_inf - 2 * t * b2**t / bc2
        new = {"step": t, "exp_avg": m, "exp_avg_sq": v}
        if rho_t <= threshold:
            return m_hat, {**new, "effective_eps": torch.full_like(m_hat, float("nan"))}
        rect = _root((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        u = m_hat * rect * _root(bc2) / (v.sqrt() + eps)
        return u, {**new, "effective_eps": torch.full_like(u, eps / _root(bc2))}

    return Transform(_adam_init, update)


def _rss_init(initial_accumulator_value):
    def init(param):
        return {
            "sum": torch.zeros_like(param) + initial_accumulator_value,
            "effective_eps": torch.full_like(param, float("nan")),
        }

    return init


def adagrad_torch(initial_accumulator_value=0.0, eps=1e-10) -> Transform:
    r"""torch.optim.Adagrad: $g_t / (\sqrt{G_0 + G_t} + \epsilon)$, $\epsilon$ outside the root, $G_0 = 0$."""
    validate.non_negative("initial_accumulator_value", initial_accumulator_value)
    validate.non_negative("eps", eps)

    def update(g, state, param):
        total = state["sum"] + g * g
        eff = total.sqrt() - (total - initial_accumulator_value).clamp_min(0).sqrt() + eps
        return g / (total.sqrt() + eps), {"sum": total, "effective_eps": eff}

    return Transform(_rss_init(initial_accumulator_value), update)


def adagrad_optax(initial_accumulator_value=0.1, eps=1e-7) -> Transform:
    r"""optax.scale_by_rss (optax.adagrad): $g_t / \sqrt{G_0 + G_t + \epsilon}$, $\epsilon$ inside the root,
    $G_0 = 0.1$ by default, and a zero step where the accumulated sum is still zero."""
    validate.non_negative("initial_accumulator_value", initial_accumulator_value)
    validate.non_negative("eps", eps)

    def update(g, state, param):
        total = state["sum"] + g * g
        positive = total > 0
        u = torch.where(positive, g / (total + eps).sqrt(), torch.zeros_like(g))
        own = (total - initial_accumulator_value).clamp_min(0).sqrt()
        eff = torch.where(positive, (total + eps).sqrt() - own, torch.full_like(g, float("inf")))
        return u, {"sum": total, "effective_eps": eff}

    return Transform(_rss_init(initial_accumulator_value), update)


def _rms_init(param):
    return {"square_avg": torch.zeros_like(param), "effective_eps": torch.full_like(param, float("nan"))}


def rmsprop_torch(alpha=0.99, eps=1e-8) -> Transform:
    r"""torch.optim.RMSprop: $v_t = \alpha v_{t-1} + (1-\alpha) g_t^2$, $u_t = g_t/(\sqrt{v_t} + \epsilon)$."""
    validate.in_unit_interval("alpha", alpha)
    validate.non_negative("eps", eps)

    def update(g, state, param):
        v = alpha * state["square_avg"] + (1 - alpha) * g * g
        return g / (v.sqrt() + eps), {"square_avg": v, "effective_eps": torch.full_like(g, eps)}

    return Transform(_rms_init, update)


def rmsprop_optax(decay=0.9, eps=1e-8, eps_in_sqrt: bool = True) -> Transform:
    r"""optax.scale_by_rms (optax.rmsprop): $g_t / \sqrt{v_t + \epsilon}$ by default (``eps_in_sqrt=True``),
    $g_t/(\sqrt{v_t}+\epsilon)$ otherwise; optax calls the decay ``decay`` (default 0.9), torch ``alpha`` (0.99)."""
    validate.in_unit_interval("decay", decay)
    validate.non_negative("eps", eps)

    def update(g, state, param):
        v = decay * state["square_avg"] + (1 - decay) * g * g
        if eps_in_sqrt:
            u, eff = g / (v + eps).sqrt(), (v + eps).sqrt() - v.sqrt()
        else:
            u, eff = g / (v.sqrt() + eps), torch.full_like(g, eps)
        return u, {"square_avg": v, "effective_eps": eff}

    return Transform(_rms_init, update)


def effective_eps_from_step(step, numerator, root):
    r"""Solve $u = n / (r + \epsilon')$ for $\epsilon'$: the epsilon the reference form needs to take step ``step``."""
    step, numerator, root = (torch.as_tensor(x) for x in (step, numerator, root))
    return numerator / step - root
