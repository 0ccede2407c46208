"""Explorable figures: figures with sliders that work everywhere, with no kernel and no network.

``explore(draw, controls)`` calls ``draw(**values)`` once for every combination of control values,
keeps each figure as a small image, and renders one self-contained HTML block: native
``<input type="range">`` sliders that show their current value, a figure that switches frame as a
slider moves, and a few lines of inline JavaScript (no external script). The default frame is an
ordinary image, so without JavaScript the figure still shows. Element ids are unique on the page, so
any number of explorables can share one.

What a reader sees, on a desktop and on a phone:

* Two sets of frames, drawn from the same figures. Desktop frames are the figure redrawn
  ``DESKTOP_IN`` inches wide and shown at the column's width (``COLUMN_PX`` CSS pixels at most), so
  1 pt of text is about 1.4 CSS px, as in the book's static figures (10 pt tick labels at 13.9 px).
  Phone frames are the same figure redrawn ``PHONE_IN`` inches wide (taller, long titles wrapped), so
  that its text stays readable in a phone's column. A CSS container query shows the phone frames when
  the explorable is narrower than ``PHONE_BELOW_PX`` (no JavaScript needed for the choice).
* Every text of the figure is between ``MIN_PT`` and ``MAX_PT`` points. So the smallest text is at
  least 9 CSS px wherever it is shown: about 10 px in a 390 px phone's 358 px column (9.3 px on a
  360 px phone), and 9.2-12.5 px for desktop frames (shown 560-760 px wide); and titles stay under
  20 px on a desktop. Each frame set records its smallest and largest text, in its own pixels, in
  ``data-text-px`` (measured from the figure's Text objects at render time), for the browser tests.
* Frames have ``SCALE`` (2) pixels per CSS pixel they are shown at (sharp on a 2x display); never
  under ``MIN_SCALE`` (1.5), also where the byte budget forces fewer pixels.
* Delta frames keep the size down: all frames of a set share one palette; the default frame is stored
  whole, and every other frame only as the pixels where it differs from the default (the rest
  transparent), drawn over the default frame. Axes, labels and legends rarely change, so a frame is
  often a tenth of a whole one. Over the default frame the delta rebuilds the frame exactly.
* Every slider's readout is a value: ``formats`` turns a value into its label, and ``readouts`` gives a
  label that depends on the other sliders (a learning rate picked by its index in each optimizer's grid).
* The controls are one grid whose tracks line up whatever the labels' lengths, and that fits a 390 px
  phone (labels go above their sliders there).

Keep each one light: the total size is checked against ``max_bytes`` (1.2 MB by default); where it is
over, fewer colours and then fewer pixels (down to ``MIN_SCALE``) are tried before giving up.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import io
import itertools
import json
import textwrap
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from PIL import Image

MAX_BYTES = 1_200_000
COLUMN_PX = 760  # the widest the book's column gets (CSS pixels); a frame is never shown wider
SCALE = 2  # frames have this many pixels per CSS pixel they are shown at...
MIN_SCALE = 1.5  # ... or at least this many, where twice as many would be over the byte budget
DESKTOP_IN = 7.6  # desktop frames: the figure this many inches wide, COLUMN_PX * SCALE pixels
PHONE_IN = 4.4  # phone frames: the figure this many inches wide...
PHONE_PX = 960  # ... this many pixels wide (2.7x in a 358 px column, >= MIN_SCALE up to 640 px)
PHONE_BELOW_PX = 560  # an explorable narrower than this (CSS px) shows its phone frames
MIN_PT, MAX_PT = 9.0, 14.0  # every text of an explorable's figure is within these sizes (points)
DESKTOP_ASPECT = (0.3, 0.62)  # height / width of desktop frames: the figure's own, within these
PHONE_ASPECT = (0.6, 0.9)  # ... of phone frames: taller, as a phone's column is narrow
PANEL_ASPECT = (0.45, 0.58)  # ... of each panel, where a phone frame stacks the figure's panels
GROW_PX = 4  # a delta frame also holds this many equal pixels around what differs
_counter = itertools.count(1)

# The controls' layout: one grid, so tracks line up whatever the labels' lengths; on a narrow column
# each label sits above its slider. The frame sets: desktop frames, or phone frames where the explorable
# is narrow (a container query on the explorable itself); a delta frame lies over the default frame.
# Scoped to .optbook-explorable; repeated per explorable (harmless).
STYLE = (
    "<style>"
    ".optbook-explorable{max-width:100%;box-sizing:border-box;container-type:inline-size}"
    ".optbook-explorable-controls{display:grid;grid-template-columns:fit-content(40%) minmax(6em,1fr) "
    "fit-content(30%);column-gap:.6em;row-gap:.2em;align-items:center;max-width:100%;margin:.2em 0}"
    ".optbook-explorable-controls label{display:contents}"
    ".optbook-explorable-controls input{width:100%;min-width:0;margin:0;box-sizing:border-box}"
    ".optbook-explorable-controls output{font-family:monospace;overflow-wrap:anywhere;min-width:4.5em}"
    ".optbook-explorable-view{position:relative;max-width:100%}"
    ".optbook-explorable-view img{display:block;width:100%;height:auto;max-width:100%}"
    ".optbook-explorable-view img.ob-delta{position:absolute;left:0;top:0}"
    ".optbook-explorable-view img[hidden],.optbook-explorable .ob-phone{display:none}"
    f"@container (max-width:{PHONE_BELOW_PX - 0.02}px){{.optbook-explorable .ob-desktop{{display:none}}"
    ".optbook-explorable .ob-phone{display:block}}"
    "@media (max-width:560px){.optbook-explorable-controls{grid-template-columns:minmax(0,1fr) fit-content(40%)}"
    ".optbook-explorable-controls span{grid-column:1/-1;margin-top:.3em}}"
    "</style>"
)


@dataclass(frozen=True)
class Layout:
    """How one frame set is drawn: the figure ``width_in`` inches wide, ``width_px`` pixels wide, its
    height / width within ``aspect``, long titles wrapped or not; shown at most ``shown_px`` CSS px wide."""

    name: str
    width_in: float
    width_px: int
    aspect: tuple[float, float]
    shown_px: int
    narrow: bool  # long titles wrapped, panels side by side stacked


DESKTOP = Layout("desktop", DESKTOP_IN, COLUMN_PX * SCALE, DESKTOP_ASPECT, COLUMN_PX, False)
PHONE = Layout("phone", PHONE_IN, PHONE_PX, PHONE_ASPECT, PHONE_BELOW_PX, True)


def _clamp_pt(size: float) -> float:
    return min(MAX_PT, max(MIN_PT, size))


def _fit_text(fig, text_scale: float) -> None:
    """Every text of ``fig`` (titles, labels, ticks, legends) ``text_scale`` times its size, within
    ``MIN_PT`` and ``MAX_PT``; tick labels also through their axis, so that ticks made at draw time follow."""
    axes = [(ax, name, which) for ax in fig.axes for name in ("x", "y") for which in ("major", "minor")]
    first = {}
    for ax, name, which in axes:
        axis = ax.xaxis if name == "x" else ax.yaxis
        ticks = axis.get_major_ticks() if which == "major" else axis.get_minor_ticks()
        if ticks:
            first[ax, name, which] = ticks[0].label1.get_fontsize()
    originals = [(text, text.get_fontsize()) for text in fig.findobj(Text)]
    for (ax, name, which), size in first.items():
        ax.tick_params(axis=name, which=which, labelsize=_clamp_pt(size * text_scale))
    for text, size in originals:
        text.set_fontsize(_clamp_pt(size * text_scale))


@contextlib.contextmanager
def _first_layout_skipped():
    """While ``draw`` runs, ``fig.tight_layout()`` (and ``plt.tight_layout()``) do nothing: every frame is laid
    out again at each of its sizes (``_layout``), so the layout a draw function asks for at its own size would
    be thrown away, and it took a fifth of an explorable's drawing time."""
    tight_layout = Figure.tight_layout
    Figure.tight_layout = lambda self, *args, **kwargs: None
    try:
        yield
    finally:
        Figure.tight_layout = tight_layout


def _layout(fig) -> None:
    """Lay the figure out again for its new size: tight, unless it has a constrained layout of its own."""
    if not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig.tight_layout()


def _wrap_long_labels(fig, renderer) -> bool:
    """Break a title or axis label wider than its panel into lines (plain text only); True if any was."""
    wrapped = False
    for ax in fig.axes:
        box = ax.get_window_extent(renderer)
        for text, room, along in (
            (ax.title, box.width, 0),
            (ax.xaxis.label, box.width, 0),
            (ax.yaxis.label, box.height, 1),
        ):
            words = text.get_text()
            if not words.strip() or "$" in words or not text.get_visible():
                continue
            extent = text.get_window_extent(renderer)
            length = extent.height if along else extent.width
            if length <= 0.95 * room or room <= 0:
                continue
            lines = words.split("\n")
            chars = max(8, int(max(map(len, lines)) * room / length))
            text.set_text("\n".join(textwrap.fill(line, chars) for line in lines))
            wrapped = True
    return wrapped


def _stack_panels(fig) -> int:
    """Panels side by side (one row of one grid, with their colorbars) stacked in one column instead, for a
    phone's narrow frame. Returns how many panels were stacked; 1 where the figure is left as it is (one
    panel, several rows, or axes not on the grid such as insets)."""
    specs = [(ax, ax.get_subplotspec()) for ax in fig.axes]
    if not specs or any(spec is None for _, spec in specs):
        return 1
    grid = specs[0][1].get_topmost_subplotspec().get_gridspec()
    rows, cols = grid.get_geometry()
    if rows != 1 or cols < 2:
        return 1
    for _, spec in specs:
        top = spec.get_topmost_subplotspec()
        outer = spec.get_gridspec()
        parent = getattr(outer, "_subplot_spec", None)  # a colorbar's grid within a panel's cell
        if top.get_gridspec() is not grid or len(top.colspan) != 1:
            return 1
        if outer is not grid and (parent is None or parent.get_gridspec() is not grid):
            return 1
    column = GridSpec(cols, 1, figure=fig)
    for ax, spec in specs:
        cell = column[spec.get_topmost_subplotspec().colspan.start, 0]
        if spec.get_gridspec() is grid:
            ax.set_subplotspec(cell)
        else:
            spec.get_gridspec()._subplot_spec = cell
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.subplots_adjust()  # (every panel where its new cell is, before the labels are measured)
    return cols


def _draw_pixels(fig, layout: Layout, size_in: tuple[float, float]):
    """``fig`` drawn as ``layout`` says (its original size ``size_in``): RGB pixels and its smallest and
    largest text in those pixels, measured from the figure's Text objects as drawn."""
    width, height = size_in
    stacked = _stack_panels(fig) if layout.narrow else 1
    if stacked > 1:
        aspect = stacked * min(PANEL_ASPECT[1], max(PANEL_ASPECT[0], height / (width / stacked)))
    else:
        aspect = min(layout.aspect[1], max(layout.aspect[0], height / width))
    fig.set_size_inches(layout.width_in, layout.width_in * aspect)
    fig.set_dpi(layout.width_px / layout.width_in)
    canvas = FigureCanvasAgg(fig)
    if layout.narrow:  # (against the panels' sizes before the new layout: close enough, and one layout less)
        _wrap_long_labels(fig, canvas.get_renderer())
    _layout(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    px = fig.dpi / 72
    return pixels, (min(sizes) * px, max(sizes) * px) if sizes else (0.0, 0.0)


def _data_url(image) -> str:
    """``image`` as a lossless WebP data URL (every browser shows WebP, and it is smaller than a PNG)."""
    out = io.BytesIO()
    image.save(out, format="WEBP", lossless=True, quality=80, method=4)
    return "data:image/webp;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _artist_colours(fig) -> set:
    """The opaque colours ``fig`` draws with, as 0xRRGGBB: its lines, markers, texts, patches and small
    collections (a colour map's many colours aside)."""
    found = []
    for line in fig.findobj(Line2D):
        found += [line.get_color(), line.get_markerfacecolor(), line.get_markeredgecolor()]
    found += [text.get_color() for text in fig.findobj(Text)]
    for patch in fig.findobj(Patch):
        found += [patch.get_facecolor(), patch.get_edgecolor()]
    for collection in fig.findobj(Collection):
        for colours in (collection.get_facecolor(), collection.get_edgecolor()):
            found += list(colours) if len(colours) <= 8 else []
    codes = set()
    for colour in found:
        try:
            r, g, b, a = to_rgba(colour)
        except (ValueError, TypeError):
            continue
        if a == 1:
            codes.add(round(r * 255) * 65536 + round(g * 255) * 256 + round(b * 255))
    return codes


def _palette(frames: list, colors: int, keep: set = frozenset()):
    """One palette for a whole frame set, from a sample of its frames (so equal pixels stay equal).

    Kept exactly: the colours the figure draws with (``keep``: each optimizer's own colour stays its own),
    black and white, and the sample's most common colours, where the sample has them (a quarter of the
    palette at most). A median cut finds most of the rest, and the last eighth goes to the colours farthest
    from all the others (a colour map's small yellow end is not merged into its neighbours)."""
    sample = np.concatenate([f[::2, ::2] for f in frames[:: max(1, len(frames) // 8)][:8]], axis=0)
    codes, counts = np.unique(sample.reshape(-1, 3).astype(np.int64) @ [65536, 256, 1], return_counts=True)
    by_count = [int(c) for c in codes[np.argsort(counts)[::-1]]]
    wanted = by_count[:4] + [c for c in (0, 0xFFFFFF) if (codes == c).any()] + [c for c in by_count if c in keep]
    kept = list(dict.fromkeys(wanted + by_count[4 : colors // 4]))[: colors // 4]
    exact = np.array([[c // 65536, c // 256 % 256, c % 256] for c in kept], dtype=np.int64).reshape(-1, 3)
    farthest = colors // 8
    rest = colors - len(exact) - farthest
    cut = Image.fromarray(sample).quantize(max(1, rest), method=Image.Quantize.MEDIANCUT)
    palette = np.concatenate([exact, np.array(cut.getpalette()[: 3 * rest], dtype=np.int64).reshape(-1, 3)])
    every = np.stack([codes // 65536, codes // 256 % 256, codes % 256], axis=1)
    distance = ((every[:, None, :] - palette[None, :, :]) ** 2).sum(-1).min(1)
    for _ in range(farthest):
        far = int(distance.argmax())
        palette = np.concatenate([palette, every[far : far + 1]])
        distance = np.minimum(distance, ((every - every[far]) ** 2).sum(-1))
    return palette.astype(np.uint8)


def _indices(frame, palette):
    """Each pixel of ``frame`` as the index of its nearest palette colour (no dithering: equal pixels, equal
    indices). Exact nearest colours, found per distinct colour of the frame."""
    codes, inverse = np.unique(frame.reshape(-1, 3).astype(np.int64) @ [65536, 256, 1], return_inverse=True)
    colours = np.stack([codes // 65536, codes // 256 % 256, codes % 256], axis=1)
    distance = ((colours[:, None, :] - palette[None, :, :].astype(np.int64)) ** 2).sum(-1)
    return distance.argmin(1).astype(np.uint8)[inverse].reshape(frame.shape[:2])


def _grow(mask, radius: int):
    """``mask`` grown by ``radius`` pixels in every direction (a square neighbourhood)."""
    for axis in (0, 1):
        grown = mask.copy()
        for shift in range(1, radius + 1):
            if axis == 0:
                grown[shift:] |= mask[:-shift]
                grown[:-shift] |= mask[shift:]
            else:
                grown[:, shift:] |= mask[:, :-shift]
                grown[:, :-shift] |= mask[:, shift:]
        mask = grown
    return mask


def _delta(frame, reference, rgb) -> str:
    """``frame`` (palette indices) as a delta over ``reference``: "" where they are equal; else RGBA, opaque
    where it differs (with a margin) and transparent elsewhere, or the whole frame where most of it differs."""
    differs = frame != reference
    if not differs.any():
        return ""
    # a margin of equal pixels around what differs: where the browser scales the frames down, the delta's
    # edge then blends pixels equal to those under it, so no trace of the frame below shows through
    differs = _grow(differs, GROW_PX)
    if differs.mean() > 0.5:  # mostly new: the whole frame (opaque, it covers what is under it)
        return _data_url(Image.fromarray(rgb[frame]))
    rgba = np.zeros(frame.shape + (4,), dtype=np.uint8)
    rgba[differs, :3] = rgb[frame[differs]]
    rgba[differs, 3] = 255
    return _data_url(Image.fromarray(rgba, "RGBA"))


def _encode_set(frames: list, base: int, colors: int, groupings: Sequence = (), keep: set = frozenset()):
    """A frame set as (the default frame whole, the group frames, every frame's delta, its group, width, height).

    Each frame is mapped onto the set's palette with no dithering. A frame is shown as the default frame, its
    group's frame drawn over it as a delta (the frame with the same value of one slider and the default
    values of the others), and its own delta over that. Of ``groupings`` (each a list: the group frame of
    every frame) and no grouping at all, the one that changes the fewest pixels is used: where one slider
    redraws a whole panel (a landscape) and another only a path on it, the panel is stored once per value
    of the first slider, not once per frame. Every frame is rebuilt exactly."""
    rgb = _palette(frames, colors, keep)
    index = [_indices(f, rgb) for f in frames]  # (every frame has the same size: drawn at the same inches and dpi)

    def changed(k, r):
        return 0 if k == r else int((index[k] != index[r]).sum())

    options = [[base] * len(frames), *groupings]
    costs = [sum(changed(r, base) for r in set(g)) + sum(changed(k, g[k]) for k in range(len(frames))) for g in options]
    group = options[int(np.argmin(costs))]
    whole = _data_url(Image.fromarray(rgb[index[base]]))
    groups = {r: _delta(index[r], index[base], rgb) for r in sorted(set(group)) if r != base}
    deltas = [_delta(index[k], index[group[k]], rgb) for k in range(len(frames))]
    return whole, groups, deltas, group, frames[0].shape[1], frames[0].shape[0]


def _label(value, fmt) -> str:
    if fmt is not None:
        return fmt(value) if callable(fmt) else format(value, fmt)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _labeller(fmt):
    return lambda value: _label(value, fmt)


@dataclass
class FrameSet:
    """One set of frames (desktop or phone): the default frame whole; the group frames as deltas over it
    (by their key); each frame's group (a key) and its own delta over its group's frame ("" where there is
    nothing to draw); the pixel size; the smallest and largest text in those pixels; and how it is shown."""

    layout: Layout
    whole: str
    groups: dict
    group_of: dict
    deltas: dict
    width: int
    height: int
    text_px: tuple[float, float]

    @property
    def scale(self) -> float:
        """Pixels per CSS pixel where the frames are shown widest."""
        return self.width / self.layout.shown_px


class Explorable:
    """A precomputed figure with sliders; displays itself as HTML in notebooks and in the book."""

    def __init__(
        self,
        sets: list,
        controls: dict,
        default: dict,
        labels: dict,
        title: str | None,
        alt: str,
        names: dict | None = None,
    ):
        """``sets`` are the frame sets (desktop, then phone); ``labels[key]`` is the list of readouts (one
        per slider) shown at the frame ``key``."""
        self.sets, self.controls, self.default = sets, controls, default
        self.names = {n: (names or {}).get(n, n) for n in controls}
        self.labels, self.title, self.alt = labels, title, alt
        self.width = COLUMN_PX  # the widest it is shown (CSS pixels)
        data = "".join(s.whole + "".join(s.groups.values()) + "".join(s.deltas.values()) for s in sets)
        digest = hashlib.sha1(data.encode()).hexdigest()[:8]
        self.id = f"ob-x{next(_counter)}-{digest}"
        self.html = self._render()

    @property
    def size_bytes(self) -> int:
        return len(self.html.encode())

    def _key(self, indices) -> str:
        return "-".join(str(i) for i in indices)

    def _render(self) -> str:
        uid = self.id
        names = list(self.controls)
        default_idx = [self.controls[n].index(self.default[n]) for n in names]
        shown = self.labels[self._key(default_idx)]
        rows = []
        for k, name in enumerate(names):
            label = html.escape(self.names[name])
            rows.append(
                f'<label for="{uid}-s{k}"><span>{label}</span>'
                f'<input type="range" id="{uid}-s{k}" min="0" max="{len(self.controls[name]) - 1}" step="1" '
                f'value="{default_idx[k]}" aria-label="{label}">'
                f'<output id="{uid}-v{k}" for="{uid}-s{k}">{html.escape(shown[k])}</output></label>'
            )
        deltas = {key: [[s.group_of[key], s.deltas[key]] for s in self.sets] for key in self.labels}
        frames = json.dumps(deltas, separators=(",", ":"))
        groups = json.dumps([s.groups for s in self.sets], separators=(",", ":"))
        labels = json.dumps(self.labels, separators=(",", ":"), ensure_ascii=False)
        title = f'<div style="font-weight:600;margin-bottom:.3em">{html.escape(self.title)}</div>' if self.title else ""
        script = (
            "(function(){"
            f'var id="{uid}",n={len(names)},F={frames},G={groups},L={labels};'
            'var V=document.getElementById(id).querySelectorAll(".optbook-explorable-view");'
            "function put(img,src){if(src){img.src=src;img.hidden=false;}"
            'else{img.hidden=true;img.removeAttribute("src");}}'
            'function show(){var k=[];for(var i=0;i<n;i++){k.push(document.getElementById(id+"-s"+i).value);}'
            'k=k.join("-");for(var i=0;i<n;i++){document.getElementById(id+"-v"+i).textContent=L[k][i];}'
            'for(var j=0;j<V.length;j++){var d=V[j].querySelectorAll("img.ob-delta");'
            'put(d[0],G[j][F[k][j][0]]||"");put(d[1],F[k][j][1]);}}'
            'for(var i=0;i<n;i++){document.getElementById(id+"-s"+i).addEventListener("input",show);}'
            "})();"
        )
        alt = html.escape(self.alt)
        views = "".join(
            f'<div class="optbook-explorable-view ob-{s.layout.name}" '
            f'style="max-width:min(100%,{s.layout.shown_px}px)" '
            f'data-text-px="{s.text_px[0]:.1f} {s.text_px[1]:.1f}">'
            f'<img class="ob-frame" src="{s.whole}" alt="{alt}" width="{s.width}" height="{s.height}">'
            f'<img class="ob-delta" alt="" hidden width="{s.width}" height="{s.height}">'
            f'<img class="ob-delta" alt="" hidden width="{s.width}" height="{s.height}"></div>'
            for s in self.sets
        )
        return (
            f'<div class="optbook-explorable" id="{uid}" data-frames="{len(self.labels)}" style="margin:.5em 0">'
            f'{STYLE}{title}<div class="optbook-explorable-controls">{"".join(rows)}</div>{views}'
            f"<script>{script}</script></div>"
        )

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<Explorable {self.title or ''!s}: {len(self.labels)} frames, {self.size_bytes / 1e3:.0f} kB>"


def explore(
    draw: Callable,
    controls: dict[str, Sequence],
    default: dict | None = None,
    *,
    title: str | None = None,
    formats: dict | None = None,
    readouts: dict | None = None,
    names: dict | None = None,
    dpi: float | None = None,
    colors: int = 64,
    text_scale: float = 1.0,
    max_bytes: int = MAX_BYTES,
    alt: str | None = None,
) -> Explorable:
    """Precompute ``draw(**values)`` (which returns a matplotlib Figure) on the grid of ``controls``.

    ``controls`` maps each slider's name (a keyword of ``draw``) to its values; ``default`` picks the
    starting value of each (the middle one otherwise); ``formats`` maps a name to a format spec or a
    function that turns a value into its label; ``readouts`` maps a name to a function of all the current
    values (a dict) that returns the label, for a slider whose value means something only with the others;
    ``names`` gives a slider a display name other than its keyword. Each figure is drawn twice, as a
    desktop frame and as a phone frame (see the module's docstring), with its text ``text_scale`` times
    larger (within ``MIN_PT`` and ``MAX_PT``) and ``colors`` colours at most. ``dpi`` is accepted for older
    calls and has no effect: the frames' pixels follow from the column they are shown in.
    """
    if not controls:
        raise ValueError("controls must name at least one slider and its values")
    controls = {name: list(values) for name, values in controls.items()}
    for name, values in controls.items():
        if len(values) < 2:
            raise ValueError(f"control {name!r} needs at least two values to be a slider, got {values!r}")
    default = {n: v[len(v) // 2] for n, v in controls.items()} | (default or {})
    for name, value in default.items():
        if name not in controls or value not in controls[name]:
            raise ValueError(f"default {name}={value!r} is not one of the values of control {name!r}")
    readouts = readouts or {}
    for name, readout in readouts.items():
        if name not in controls or not callable(readout):
            raise ValueError(f"readouts must map a control's name to a function of the values, got {name!r}")
    if dpi is not None and not 10 <= dpi <= 1000:
        raise ValueError(f"dpi must be between 10 and 1000 (or None), got {dpi!r}")
    if not 2 <= colors <= 256:
        raise ValueError(f"colors must be between 2 and 256, got {colors!r}")
    if not 0.5 <= text_scale <= 3:
        raise ValueError(f"text_scale must be between 0.5 and 3, got {text_scale!r}")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive number of bytes, got {max_bytes!r}")
    formats = formats or {}
    labellers = {n: _labeller(formats.get(n)) for n in controls}
    combos = [
        ("-".join(map(str, indices)), {n: controls[n][i] for n, i in zip(controls, indices)})
        for indices in itertools.product(*(range(len(v)) for v in controls.values()))
    ]
    labels = {
        key: [str(readouts[n](dict(values))) if n in readouts else labellers[n](values[n]) for n in controls]
        for key, values in combos
    }
    default_idx = [controls[n].index(default[n]) for n in controls]
    base = [key for key, _ in combos].index("-".join(map(str, default_idx)))
    # the frames grouped by each slider: a frame's group frame has its value of that slider, the others' default
    position = {key: k for k, (key, _) in enumerate(combos)}
    groupings = [
        [
            position["-".join(str(i if c == j else default_idx[j]) for j, i in enumerate(map(int, key.split("-"))))]
            for key, _ in combos
        ]
        for c in range(len(controls))
        if len(controls) > 1
    ]

    def render(factor):
        """Every frame drawn as desktop and phone frames, ``factor`` times the pixels (never under
        MIN_SCALE per CSS pixel): their pixels, text sizes, and the colours the figures draw with."""
        layouts = [
            replace(lay, width_px=round(lay.width_px * max(factor, MIN_SCALE * lay.shown_px / lay.width_px)))
            for lay in (DESKTOP, PHONE)
        ]
        pixels, text, keep, size_in = [[], []], [[], []], set(), None
        for _, values in combos:
            with _first_layout_skipped():
                fig = draw(**values)
            if fig is None or not hasattr(fig, "savefig"):
                raise TypeError("draw(**values) must return a matplotlib Figure")
            plt.close(fig)  # (drawn here, on a canvas of its own, not shown by pyplot)
            size_in = size_in or tuple(fig.get_size_inches())  # every frame the size of the first
            keep |= _artist_colours(fig)
            _fit_text(fig, text_scale)
            for j, layout in enumerate(layouts):
                frame, text_px = _draw_pixels(fig, layout, size_in)
                pixels[j].append(frame)
                text[j].append(text_px)
        return layouts, pixels, text, keep

    # Over the budget: fewer colours, then fewer pixels (drawn again: frames scaled down after drawing
    # would lose what equal pixels they share), never under MIN_SCALE per CSS pixel.
    attempts = [(1.0, colors), (1.0, min(colors, 32)), (0.875, min(colors, 32)), (0.75, min(colors, 32))]
    attempts += [(MIN_SCALE / SCALE, min(colors, 16))]
    drawn = {}
    keys = list(labels)
    for factor, n_colors in attempts:
        drawn = drawn if factor in drawn else {factor: render(factor)}
        layouts, pixels, text, keep = drawn[factor]
        sets = []
        for j, layout in enumerate(layouts):
            whole, groups, deltas, group, width, height = _encode_set(pixels[j], base, n_colors, groupings, keep)
            low, high = min(t[0] for t in text[j]), max(t[1] for t in text[j])
            groups = {keys[r]: url for r, url in groups.items()}
            group_of = {key: keys[r] for key, r in zip(keys, group)}
            sets.append(FrameSet(layout, whole, groups, group_of, dict(zip(keys, deltas)), width, height, (low, high)))
        result = Explorable(sets, controls, default, labels, title, alt or title or "explorable figure", names)
        if result.size_bytes <= max_bytes:
            return result
    raise ValueError(
        f"this explorable is {result.size_bytes / 1e6:.2f} MB, over the budget of {max_bytes / 1e6:.2f} MB: "
        "use fewer values per control, a smaller figure or fewer colors"
    )
