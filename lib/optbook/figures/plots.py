"""The book's one matplotlib style, and the figures every chapter draws.

* :func:`use_style`: fonts, colours and sizes for the whole book (called by :func:`optbook.setup`);
* :func:`contour`: a landscape's contour map, with trajectories of one or many hikers on top;
* :func:`profile`: a one-dimensional landscape as a curve, with hikers' positions;
* :func:`loss_curves`: losses (or distances) against steps, on a log scale;
* :func:`effective_lr`: the per-coordinate step per unit of gradient against steps;
* :func:`seed_band`: a result over seeds, mean as a line and min..max as a band.

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
DASHES = catalog.dashes()  # lines whose colours are close in lightness differ in style
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
    """The book's style; in a notebook, figures are also shown sharp and described (see ``figure_png``)."""
    plt.rcParams.update(STYLE)
    _show_figures_described()


def _plain(text: str) -> str:
    """Text as a screen reader should read it: no TeX dollars, braces or backslashes."""
    return " ".join(text.replace("$", "").replace("\\", "").replace("{", "").replace("}", "").split())


def describe(fig) -> str:
    """What ``fig`` shows, in words, for its alt text: its titles, what each panel plots and its legend."""
    parts = []
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        parts.append(_plain(suptitle.get_text()) + ".")
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    for ax in panels:
        title = next((ax.get_title(loc) for loc in ("center", "left", "right") if ax.get_title(loc)), "")
        x, y = _plain(ax.get_xlabel()), _plain(ax.get_ylabel())
        what = f"{y or 'a quantity'} against {x or 'its index'}"
        legend = ax.get_legend()
        names = [_plain(t.get_text()) for t in legend.get_texts()] if legend is not None else []
        sentence = (f"{_plain(title)}: " if title else "") + what + (f", for {', '.join(names)}" if names else "")
        parts.append(sentence[0].upper() + sentence[1:] + ".")
    if not parts:
        return "A figure."
    kind = "A figure" if len(panels) <= 1 else f"A figure with {len(panels)} panels"
    return f"{kind}. " + " ".join(parts)


def figure_png(fig, **kwargs):
    """A notebook's PNG of ``fig``: twice the pixels it is shown at, described in its metadata.

    Returns ``(base64 PNG, metadata)`` as IPython expects of a formatter: the metadata's width and height
    are half the pixels (the book and Jupyter show it at that size, sharp on a 2x display), and the PNG
    carries ``describe(fig)`` as its ``Description``, which the book's build turns into the alt text.
    """
    from IPython.core.pylabtools import retina_figure

    kwargs.setdefault("bbox_inches", "tight")
    return retina_figure(fig, base64=True, metadata={"Description": describe(fig), "Software": None}, **kwargs)


def _show_figures_described() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or "inline" not in str(plt.rcParams.get("backend", "")):
        return
    try:  # configures the inline backend's own formatters first, so that ours replaces them
        import matplotlib_inline.backend_inline  # noqa: F401
    except ImportError:
        return
    from matplotlib.figure import Figure

    shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)


# Colours for what is not an optimizer, so that no notebook picks its own. Each line colour has at least
# 3:1 contrast against the white page (tests/test_palette.py); "on image" is for markers drawn on a heatmap.
NEUTRAL = {
    "reference": "#595959",  # a guide: a theory curve, an exact value, a level or the edge of a region (grey)
    "ink": "#000000",  # a threshold the text names (a stability limit, the step of a change), an outline
    "target": "#8A6D00",  # where the hiker should arrive: a minimum, a valley bottom (dark gold)
    "alert": "#B2182B",  # a failure: a diverged or non-finite point, the edge past which a method diverges
    "on image": "#FFFFFF",  # a marker drawn on a colour map (its background is the image, not the page)
}
# Ordered series that are not optimizers (several betas, learning rates or noise levels): dark shades of
# viridis, each with its own line style, so that neighbours differ in style where their contrast is low.
SHADE_STYLES = ("-", "--", ":", "-.", (0, (5, 1.5, 1, 1.5, 1, 1.5)), (0, (9, 3)))


def color(name: str, default=None):
    return COLORS.get(name, default)


def neutral(name: str) -> str:
    """The book's colour for a series that is not an optimizer: one of ``NEUTRAL``'s names."""
    if name not in NEUTRAL:
        raise ValueError(f"name must be one of {', '.join(repr(k) for k in NEUTRAL)}, got {name!r}")
    return NEUTRAL[name]


def shades(n: int) -> list[dict]:
    """``color`` and ``linestyle`` for ``n`` ordered series that are not optimizers (``ax.plot(..., **s)``).

    Colours run through the dark two thirds of viridis (each at least 3:1 on white) and every series has
    its own line style, so any two can be told apart in colour or in style.
    """
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(SHADE_STYLES):
        raise ValueError(f"n must be an integer from 1 to {len(SHADE_STYLES)}, got {n!r}")
    cmap = matplotlib.colormaps["viridis"]
    spots = np.linspace(0.0, 0.55, n) if n > 1 else [0.0]
    return [{"color": matplotlib.colors.to_hex(cmap(x)), "linestyle": SHADE_STYLES[k]} for k, x in enumerate(spots)]


def line(name: str, index: int = 0) -> dict:
    """``color`` and ``linestyle`` of the optimizer ``name`` (``ax.plot(x, y, **plots.line("Adam"))``).

    A name outside the catalog gets the ``index``-th colour of the cycle and a solid line.
    """
    return {"color": COLORS.get(name, CYCLE[index % len(CYCLE)]), "linestyle": DASHES.get(name, "-")}


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
                pts[:, k, 0],
                pts[:, k, 1],
                color=c,
                linestyle=DASHES.get(label, "-"),
                lw=1.5,
                marker="o",
                markersize=2.5,
                label=label if k == 0 else None,
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
            **line(label, i),
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


def seed_band(x, runs, label, ax=None, marker="o", color=None, linestyle=None):
    """Results over seeds: the mean across seeds (axis 0 of ``runs``) as a line, the min..max as a band.

    ``runs`` has shape ``(seeds, len(x))``; non-finite entries (diverged runs) are left out of the line.
    The colour and line style are the optimizer's own (``label`` is looked up in the catalog); a series
    that is not an optimizer passes ``color`` and ``linestyle`` (from :func:`shades` or :func:`neutral`).
    """
    ax = _axes(ax)
    v, xs = _numpy(runs), _numpy(x)
    if v.ndim != 2 or v.shape[1] != xs.shape[0]:
        raise ValueError(f"runs must have shape (seeds, {xs.shape[0]}) to match x, got {v.shape}")
    ok = np.isfinite(v).all(axis=0)
    col = COLORS.get(label) if color is None else color
    style = DASHES.get(label, "-") if linestyle is None else linestyle
    mean = v[:, ok].mean(0)
    ax.plot(xs[ok], mean, marker=marker, ms=3, color=col, ls=style, label=f"{label} (mean of {v.shape[0]} seeds)")
    ax.fill_between(xs[ok], v[:, ok].min(0), v[:, ok].max(0), color=col, alpha=0.25, lw=0)
    return ax
