"""The book's one matplotlib style, and the figures every chapter draws.

* :func:`use_style`: fonts, colours and sizes for the whole book (called by :func:`optbook.setup`);
* :func:`contour`: a landscape's contour map, with trajectories of one or many hikers on top;
* :func:`profile`: a one-dimensional landscape as a curve, with hikers' positions;
* :func:`loss_curves`: losses (or distances) against steps, on a log scale;
* :func:`effective_lr`: the per-coordinate step per unit of gradient against steps.

Every function takes an ``ax`` (made for you when omitted) and returns it, so figures compose.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..lab import catalog

# One colour per optimizer, read from the book's one list, so "AdaGrad" is the same colour everywhere.
COLORS = catalog.colors()
CYCLE = [e.color for e in catalog.OPTIMIZERS]

STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "axes.prop_cycle": matplotlib.cycler(color=CYCLE),
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "image.cmap": "viridis",
    "svg.hashsalt": "optbook",  # reproducible files
}


def use_style() -> None:
    plt.rcParams.update(STYLE)


def color(name: str, default=None):
    return COLORS.get(name, default)


def _numpy(x):
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _axes(ax, **figure):
    if ax is None:
        _, ax = plt.subplots(**figure)
    return ax


def contour(
    landscape,
    trajectories=None,
    ax=None,
    window=None,
    levels=30,
    log_levels=True,
    resolution=200,
    show_minimum=True,
    legend=True,
    step=1,
):
    """Contour map of a 2-D ``landscape`` with trajectories drawn on it.

    ``trajectories`` maps a label to the points visited, shape ``(steps + 1, 2)`` or
    ``(steps + 1, n, 2)`` for several hikers; a :class:`optbook.Trajectory` works too.
    """
    ax = _axes(ax)
    (x0, x1), (y0, y1) = window or landscape.window
    xs, ys = (
        torch.linspace(x0, x1, resolution, dtype=torch.float64),
        torch.linspace(y0, y1, resolution, dtype=torch.float64),
    )
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    z = _numpy(landscape.value(torch.stack([gx, gy], dim=-1), step))
    if log_levels:
        zmin = z.min()
        z = np.log10(z - zmin + 1e-3 * (z.max() - zmin) + 1e-12)
    ax.contourf(_numpy(gx), _numpy(gy), z, levels=levels, alpha=0.85, cmap="Blues_r")
    ax.contour(_numpy(gx), _numpy(gy), z, levels=levels, colors="white", linewidths=0.3, alpha=0.6)
    if show_minimum and getattr(landscape, "minimizer", None) is not None:
        m = _numpy(landscape.minimizer)
        ax.plot(
            m[0], m[1], marker="*", color="gold", markersize=14, markeredgecolor="black", zorder=5, linestyle="none"
        )
    for i, (label, points) in enumerate((trajectories or {}).items()):
        pts = _numpy(getattr(points, "params", points))
        pts = pts.reshape(pts.shape[0], -1, 2)
        c = COLORS.get(label, CYCLE[i % len(CYCLE)])
        for k in range(pts.shape[1]):
            ax.plot(
                pts[:, k, 0], pts[:, k, 1], color=c, lw=1.5, marker="o", markersize=2.5, label=label if k == 0 else None
            )
            ax.plot(pts[0, k, 0], pts[0, k, 1], marker="s", color="black", markersize=5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.grid(False)
    if legend and trajectories:
        ax.legend(loc="upper right", frameon=True, framealpha=0.9)
    return ax


def profile(landscape, positions=None, ax=None, window=None, resolution=600, step=1):
    """A 1-D ``landscape`` as a curve; ``positions`` maps a label to points (shape ``(k, 1)``) to mark."""
    ax = _axes(ax)
    lo, hi = window or landscape.window
    xs = torch.linspace(lo, hi, resolution, dtype=torch.float64)[:, None]
    ax.plot(_numpy(xs[:, 0]), _numpy(landscape.value(xs, step)), color="#444444", lw=1.5)
    for i, (label, pts) in enumerate((positions or {}).items()):
        p = _numpy(pts).reshape(-1)
        ax.plot(
            p,
            _numpy(landscape.value(torch.as_tensor(p)[:, None], step)),
            "o",
            color=COLORS.get(label, CYCLE[i % len(CYCLE)]),
            label=label,
            markersize=4,
        )
    ax.set_xlabel("$x$")
    ax.set_ylabel("$f(x)$")
    if positions:
        ax.legend()
    return ax


def loss_curves(curves: dict, ax=None, log=True, xlabel="step", ylabel="loss", floor=1e-16):
    """One line per label; ``curves`` maps a label to a 1-D sequence of values."""
    ax = _axes(ax)
    for i, (label, values) in enumerate(curves.items()):
        v = _numpy(values).reshape(-1)
        ax.plot(
            np.arange(len(v)),
            np.maximum(v, floor) if log else v,
            label=label,
            color=COLORS.get(label, CYCLE[i % len(CYCLE)]),
        )
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax


def effective_lr(trajectory, ax=None, labels=("$x_1$", "$x_2$"), title=None):
    """The step per unit of gradient of each coordinate, against steps, on a log scale."""
    ax = _axes(ax)
    eff = _numpy(trajectory.effective_lr)
    eff = eff.reshape(eff.shape[0], -1)
    for k in range(eff.shape[1]):
        ax.plot(np.arange(1, eff.shape[0] + 1), np.abs(eff[:, k]), label=labels[k] if k < len(labels) else None)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("effective learning rate")
    if title:
        ax.set_title(title)
    ax.legend()
    return ax
