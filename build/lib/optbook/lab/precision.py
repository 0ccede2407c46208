r"""Low-precision arithmetic as the optimizer sees it: float16, bfloat16 and float32 side by side.

* :func:`formats`: the constants of each format (range, smallest normal and subnormal, machine epsilon);
* :func:`round_to`: what a number becomes when stored in a dtype;
* :func:`squared_underflows`: which gradients vanish when squared, as Adam squares them for $v_t$;
* :func:`smallest_squarable`: the smallest gradient whose square is still nonzero;
* :func:`effective_lr_ceiling`: the largest step per unit of gradient, $\gamma/\epsilon$, that $\epsilon$
  allows when $v_t = 0$; infinite when $\epsilon$ itself rounds to zero.

Every function computes in the dtype it is given, with torch, so that the numbers are what the hardware
produces, not what we expect it to.
"""

from __future__ import annotations

import math

import torch

from ..core import validate

LOW_PRECISION = (torch.float16, torch.bfloat16, torch.float32)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def formats(dtypes=LOW_PRECISION) -> list[dict]:
    """One row per dtype: bit layout and the limits that matter for optimizer state."""
    rows = []
    for dtype in dtypes:
        info = torch.finfo(dtype)
        mantissa = round(-math.log2(info.eps))
        rows.append(
            {
                "dtype": dtype_name(dtype),
                "exponent bits": info.bits - 1 - mantissa,
                "mantissa bits": mantissa,
                "max": info.max,
                "smallest normal": info.smallest_normal,
                "smallest subnormal": smallest_subnormal(dtype),
                "machine eps": info.eps,
                "decimal digits": (mantissa + 1) * math.log10(2),
            }
        )
    return rows


def smallest_subnormal(dtype: torch.dtype) -> float:
    """The smallest positive number of the format: the smallest normal times machine epsilon."""
    info = torch.finfo(dtype)
    return float(torch.tensor(info.smallest_normal * info.eps, dtype=dtype))


def round_to(x, dtype: torch.dtype) -> torch.Tensor:
    """``x`` stored in ``dtype`` and read back as float64: the value the hardware actually keeps."""
    return torch.as_tensor(x, dtype=torch.float64).to(dtype).to(torch.float64)


def squared_underflows(grad, dtype: torch.dtype, factor: float = 1.0) -> torch.Tensor:
    r"""True where a nonzero gradient gives ``factor * g * g == 0`` when computed in ``dtype``.

    With ``factor = 1 - beta2`` this is the increment Adam adds to $v_t$; if it is zero, the optimizer
    never learns that this coordinate had a gradient.
    """
    validate.non_negative("factor", factor)
    g = torch.as_tensor(grad, dtype=torch.float64).to(dtype)
    return (g != 0) & (factor * (g * g) == 0)


def smallest_squarable(dtype: torch.dtype, factor: float = 1.0) -> float:
    """The smallest positive ``g`` of the format such that ``factor * g * g`` is nonzero in ``dtype``."""
    lo, hi = 0.0, 1.0  # the square underflows at lo and survives at hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if bool(squared_underflows(mid, dtype, factor)) or round_to(mid, dtype) == 0 else (lo, mid)
    return float(round_to(hi, dtype))


def effective_lr_ceiling(lr: float, eps: float, dtype: torch.dtype = torch.float32) -> float:
    r"""$\gamma / \epsilon$ computed in ``dtype``: the step per unit of gradient when $v_t = 0$.

    If ``eps`` rounds to zero in ``dtype`` there is no ceiling at all and the result is ``inf``.
    """
    validate.non_negative("lr", lr)
    validate.non_negative("eps", eps)
    return float(torch.tensor(lr, dtype=dtype) / torch.tensor(eps, dtype=dtype))
