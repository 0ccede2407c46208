"""The one list of the book's optimizers: display name, class, keyword arguments, colour.

Widgets, plots, the family table of Part I and the at-scale page all read this list, so adding an
optimizer to the book touches its piece (``optbook.core.transforms``), its class (``optbook.core.optim``),
one entry here and one test row.

``options(lr, beta1, beta2)`` turns the three knobs every playground offers into the class's keyword
arguments (an optimizer without a second moment ignores ``beta2``, and so on). Colours are hues of the
Okabe-Ito palette, which stays distinguishable under the common forms of colour blindness, darkened where
needed so that every line has at least 3:1 contrast against the white page. Two lines whose colours are
under 3:1 against each other have different line styles (``dash``), so that every pair can be told apart
in greyscale too; ``tests/test_palette.py`` computes the WCAG contrast ratios and checks both.
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
    dash: str | tuple = "-"  # matplotlib linestyle: tells apart lines whose colours are close in lightness
    aliases: tuple[str, ...] = ()  # other names the book's figures use for the same method

    def make(self, params, lr: float, beta1: float = 0.9, beta2: float = 0.999):
        """The optimizer on ``params`` with the playground's three knobs (Schedule-Free: in train mode)."""
        opt = self.cls(params, **self.options(lr, beta1, beta2))
        if hasattr(opt, "train"):
            opt.train()  # Schedule-Free steps only in train mode; call opt.eval() before evaluating
        return opt


DASHDOTDOT, LONGDASH, SPARSEDOT = (0, (5, 1.5, 1, 1.5, 1, 1.5)), (0, (9, 3)), (0, (1, 3.5))

OPTIMIZERS: tuple[BookOptimizer, ...] = (
    BookOptimizer("SGD", optim.SGD, lambda lr, b1, b2: {"lr": lr}, "#0072B2", "--", aliases=("GD",)),
    BookOptimizer(
        "Momentum", optim.SGD, lambda lr, b1, b2: {"lr": lr, "momentum": b1}, "#332288", "-", aliases=("Heavy ball",)
    ),
    BookOptimizer("AdaGrad", optim.Adagrad, lambda lr, b1, b2: {"lr": lr}, "#A66A00", "-."),
    BookOptimizer("RMSProp", optim.RMSprop, lambda lr, b1, b2: {"lr": lr, "alpha": b2}, "#009E73", ":"),
    BookOptimizer("Adam", optim.Adam, lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2)}, "#D55E00", "-"),
    BookOptimizer("AdamW", optim.AdamW, lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2)}, "#CC79A7", DASHDOTDOT),
    BookOptimizer(
        "AMSGrad", optim.Adam, lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2), "amsgrad": True}, "#5E1240", ":"
    ),
    BookOptimizer("NAdam", optim.NAdam, lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2)}, "#6E6E6E", LONGDASH),
    BookOptimizer("RAdam", optim.RAdam, lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2)}, "#1B5E20", SPARSEDOT),
    # After Adam
    BookOptimizer("Adafactor", optim.Adafactor, lambda lr, b1, b2: {"lr": lr}, "#117733", (0, (3, 1, 1, 1))),
    BookOptimizer("Lion", optim.Lion, lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2)}, "#7A7A1F", (0, (1, 1))),
    # Muon orthogonalises matrices only: the entry is the usual pairing (AdamW for the other tensors)
    BookOptimizer(
        "Muon", optim.MuonWithAdamW, lambda lr, b1, b2: {"lr": lr, "momentum": b1}, "#AA4499", (0, (7, 2, 2, 2))
    ),
    BookOptimizer(
        "Schedule-Free AdamW",
        optim.AdamWScheduleFree,
        lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2)},
        "#2A7F75",
        (0, (4, 2, 4, 2, 1, 2)),
        aliases=("AdamWScheduleFree", "Schedule-Free"),
    ),
    # SOAP's betas default to (0.95, 0.95); its weight decay (0.01) and bases refreshed every 10 steps are kept
    BookOptimizer("SOAP", optim.SOAP, lambda lr, b1, b2: {"lr": lr, "betas": (b1, b2)}, "#8C510A", (0, (2, 1, 2, 3))),
)

# Methods the book draws that are not torch-style classes here (Newton uses the Hessian itself).
# Full-matrix AdaGrad and Shampoo are pieces of core/preconditioners.py that Part I draws beside the others.
OTHER_COLORS = {"Newton": "#000000", "full-matrix AdaGrad": "#6B3E9E", "Shampoo": "#8C2D04"}
OTHER_DASHES = {"Newton": "--", "full-matrix AdaGrad": (0, (6, 2)), "Shampoo": (0, (2, 2, 6, 2))}


def by_name(name: str) -> BookOptimizer:
    """The entry called ``name`` (or one of its aliases)."""
    for entry in OPTIMIZERS:
        if name == entry.name or name in entry.aliases:
            return entry
    known = ", ".join(e.name for e in OPTIMIZERS)
    raise ValueError(f"optimizer must be one of the book's optimizers ({known}), got {name!r}")


def names() -> list[str]:
    return [entry.name for entry in OPTIMIZERS]


def dashes() -> dict[str, str | tuple]:
    """Every name and alias the book uses, mapped to its line style."""
    out = dict(OTHER_DASHES)
    for entry in OPTIMIZERS:
        for name in (entry.name, *entry.aliases):
            out[name] = entry.dash
    return out


def colors() -> dict[str, str]:
    """Every name and alias the book uses, mapped to its colour."""
    out = dict(OTHER_COLORS)
    for entry in OPTIMIZERS:
        for name in (entry.name, *entry.aliases):
            out[name] = entry.color
    return out
