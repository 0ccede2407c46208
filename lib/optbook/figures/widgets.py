"""ipywidgets playgrounds, for free exploration in a live kernel (Colab, JupyterLab).

In the static book a widget has no kernel behind it and would be a dead control, so the book hides
a playground cell's output (cell tag ``remove-output``) and a note points to the Colab button; the
explorable figures of :mod:`optbook.explore` are what works on the page.

Works with ipywidgets 7 (Colab preinstalls 7.7.1; its widget manager has been reported not to render
8's widgets by default) and 8: only ``Output``, ``interactive`` and ``Dropdown`` are used, in ways both
majors share (``interactive`` keeps its output last in ``children`` in both). The tests in
``tests/test_colab_bootstrap.py`` drive the playground under each.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from IPython.display import display

from ..lab import catalog
from ..lab import landscapes as L
from ..lab.run import run_torch
from . import plots


def playground(draw: Callable, **controls) -> widgets.Widget:
    """Sliders for the keywords of ``draw(**values)`` (which returns a Figure), redrawn on every change.

    Controls use ipywidgets' abbreviations: ``lr=(0.001, 1.0, 0.001)`` is a float slider,
    ``name=["a", "b"]`` a dropdown, ``flag=True`` a checkbox.
    """
    out = widgets.Output()

    def redraw(**values):
        with out:
            out.clear_output(wait=True)
            fig = draw(**values)
            display(fig)
            plt.close(fig)

    ui = widgets.interactive(redraw, **controls)
    ui.children = (*ui.children[:-1], out)  # our Output replaces interactive's own
    return ui


def walk(
    landscape: L.Landscape, optimizer: str, lr: float, steps: int, beta1: float = 0.9, beta2: float = 0.999
) -> torch.Tensor:
    """Walk one of the book's optimizers (by its name in ``optbook.lab.catalog``) on a 2-D landscape."""
    entry = catalog.by_name(optimizer)
    # entry.make, not entry.cls: it also puts Schedule-Free in train mode, which it needs before a step
    return run_torch(lambda params: entry.make(params, lr, beta1, beta2), landscape, steps)


LANDSCAPES = {
    "canyon (kappa=100)": lambda: L.Canyon(100.0),
    "rotated canyon": lambda: L.Canyon(50.0, angle=0.5),
    "Rosenbrock": L.Rosenbrock,
    "Beale": L.Beale,
    "saddle": L.Saddle,
}


DIVERGED = 1e12  # a loss gap above this (or inf, NaN) counts as a diverged walk in the playground


def optimizer_playground(default_landscape: str = "canyon (kappa=100)") -> widgets.Widget:
    """Pick a landscape, an optimizer and its hyperparameters, and watch the hiker walk."""

    def draw(landscape, optimizer, log10_lr, steps, beta1, beta2):
        terrain = LANDSCAPES[landscape]()
        points = walk(terrain, optimizer, 10.0**log10_lr, steps, beta1, beta2)
        gap = terrain.value(points) - terrain.value(terrain.minimizer[None])
        title = f"{optimizer}, lr = {10.0**log10_lr:.3g}, {steps} steps on the {landscape}"
        # A diverging walk reaches inf or NaN: draw it up to that step and say so (an infinite value on the
        # log axis also breaks the tick labels of matplotlib 3.10, Colab's version, where 3.11 copes).
        blown = (~torch.isfinite(gap) | (gap > DIVERGED)).nonzero()
        if len(blown):
            points, gap = points[: int(blown[0])], gap[: int(blown[0])]
            title += f": diverged at step {int(blown[0])}"
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        plots.contour(terrain, {optimizer: points}, ax=left)
        plots.loss_curves({optimizer: gap}, ax=right, ylabel="loss above the minimum")
        fig.suptitle(title)
        return fig

    landscape = widgets.Dropdown(options=list(LANDSCAPES), value=default_landscape, description="landscape")
    return playground(
        draw,
        landscape=landscape,
        optimizer=catalog.names(),
        log10_lr=(-4.0, 0.5, 0.05),
        steps=(10, 500, 10),
        beta1=(0.0, 0.99, 0.01),
        beta2=(0.5, 0.9999, 0.0001),
    )
