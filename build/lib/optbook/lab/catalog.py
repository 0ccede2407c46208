"""The one list of the book's optimizers: display name, class, keyword arguments, colour.

Widgets, plots, the family table of Part I and the at-scale page all read this list, so adding an
optimizer to the book touches its piece (``optbook.core.transforms``), its class (``optbook.core.optim``),
one entry here and one test row.

``options(lr, beta1, beta2)`` turns the three knobs every playground offers into the class's keyword
arguments (an optimizer without a second moment ignores ``beta2``, and so on). Colours come from the
Okabe-Ito palette, which stays distinguishable under the common forms of colour blindness; optimizers
that the book rarely draws side by side share a hue family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core import optim


@dataclass(frozen=True)
class BookOptimizer:
    name: str  # the name the book uses in prose, legends and menus
    cls: type  # the optbook.core.optim class
    options: Callable[[float, float, float], dict]  # (lr, beta1, beta2) -> keyword arguments
    color: str
    aliases: tuple[str, ...] = ()  # other names the book's figures use for the same method

    def make(self, params, lr: float, beta1: float = 0.9, beta2: float = 0.999):
        """The optimizer on ``params`` with the playground's three knobs."""
        return self.cls(params, **self.options(lr, beta1, beta2))


OPTIMIZERS: tuple[BookOptimizer, ...] = (
    BookOptimizer("SGD", optim.SGD, lambda lr, b1, b2: {"lr": lr}, "#0072B2", aliases=("GD",)),
    BookOptimizer(
        "Momentum", optim.SGD, lambda lr, b1, b2: {"lr": lr, "momentum": b1}, "#56B4E9", aliases=("Heavy ball",)
    ),
    BookOptimizer("AdaGrad", optim.Adagrad, lambda lr, b1, b2: {"lr": lr}, "#E69F00"),
    BookOptimizer("RMSProp", optim.RMSprop, lambda lr, b1, b2: {"lr": lr, "alpha": b2}, "#009E73"),
    BookOptimizer("Adam", optim.Adam, lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2)}, "#D55E00"),
    BookOptimizer("AdamW", optim.AdamW, lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2)}, "#CC79A7"),
    BookOptimizer("AMSGrad", optim.Adam, lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2), "amsgrad": True}, "#882255"),
    BookOptimizer("NAdam", optim.NAdam, lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2)}, "#7F7F7F"),
    BookOptimizer("RAdam", optim.RAdam, lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2)}, "#332288"),
)

# Methods the book draws that are not torch-style classes here (Newton uses the Hessian itself).
OTHER_COLORS = {"Newton": "#000000"}


def by_name(name: str) -> BookOptimizer:
    """The entry called ``name`` (or one of its aliases)."""
    for entry in OPTIMIZERS:
        if name == entry.name or name in entry.aliases:
            return entry
    known = ", ".join(e.name for e in OPTIMIZERS)
    raise ValueError(f"optimizer must be one of the book's optimizers ({known}), got {name!r}")


def names() -> list[str]:
    return [entry.name for entry in OPTIMIZERS]


def colors() -> dict[str, str]:
    """Every name and alias the book uses, mapped to its colour."""
    out = dict(OTHER_COLORS)
    for entry in OPTIMIZERS:
        for name in (entry.name, *entry.aliases):
            out[name] = entry.color
    return out
