"""Explorable figures: figures with sliders that work everywhere, with no kernel and no network.

``explore(draw, controls)`` calls ``draw(**values)`` once for every combination of control values,
keeps each figure as a small PNG, and renders one self-contained HTML block: native
``<input type="range">`` sliders that show their current value, an image that switches frame as a
slider moves, and a few lines of inline JavaScript (no external script). The default frame is the
image's own ``src``, so without JavaScript the figure still shows. Element ids are unique on the page,
so any number of explorables can share one.

What a reader sees, on a desktop and on a phone:

* frames are rendered with twice the pixels they are shown at (sharp on a 2x display) and fill the
  book's column (``COLUMN_PX`` CSS pixels at most), scaling down with it on a phone;
* the figure's text is enlarged by ``text_scale`` before rendering, so tick labels stay readable when a
  wide figure shrinks to a phone's column;
* every slider's readout is a value: ``formats`` turns a value into its label, and ``readouts`` gives a
  label that depends on the other sliders (a learning rate picked by its index in each optimizer's grid);
* the controls are one grid whose tracks line up whatever the labels' lengths, and that fits a 390 px
  phone (labels go above their sliders there).

Keep each one light: the total size is checked against ``max_bytes`` (about 1 MB by default).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import math
import warnings
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
from PIL import Image

MAX_BYTES = 1_200_000
COLUMN_PX = 760  # the widest the book's column gets (CSS pixels); a frame is never shown wider
SCALE = 2  # frames have this many pixels per CSS pixel they are shown at
MIN_SCALE = 1.5  # ... or this many, where twice as many would be over the byte budget
_counter = itertools.count(1)

# The controls' layout: one grid, so tracks line up whatever the labels' lengths; on a narrow column
# each label sits above its slider. Scoped to .optbook-explorable; repeated per explorable (harmless).
STYLE = (
    "<style>"
    ".optbook-explorable{max-width:100%;box-sizing:border-box}"
    ".optbook-explorable-controls{display:grid;grid-template-columns:fit-content(40%) minmax(6em,1fr) "
    "fit-content(30%);column-gap:.6em;row-gap:.2em;align-items:center;max-width:100%;margin:.2em 0}"
    ".optbook-explorable-controls label{display:contents}"
    ".optbook-explorable-controls input{width:100%;min-width:0;margin:0;box-sizing:border-box}"
    ".optbook-explorable-controls output{font-family:monospace;overflow-wrap:anywhere;min-width:4.5em}"
    ".optbook-explorable img{display:block;width:100%;height:auto;max-width:100%}"
    "@media (max-width:560px){.optbook-explorable-controls{grid-template-columns:minmax(0,1fr) fit-content(40%)}"
    ".optbook-explorable-controls span{grid-column:1/-1;margin-top:.3em}}"
    "</style>"
)


def _dpi(fig, scale: float) -> float:
    """Pixels per inch that give a frame ``scale`` pixels per CSS pixel at the column's width."""
    width_in = fig.get_size_inches()[0]
    return scale * max(float(plt.rcParams["figure.dpi"]), COLUMN_PX / width_in) if width_in > 0 else 200.0


def _enlarge_text(fig, factor: float) -> None:
    """Every text of ``fig`` (titles, labels, ticks, legends) ``factor`` times larger, then re-laid out."""
    if factor == 1:
        return
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        text.set_fontsize(text.get_fontsize() * factor)
    if fig.get_layout_engine() is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig.tight_layout()


def _render(fig, dpi: float, text_scale: float = 1.0):
    """The figure as an RGB image (then closed)."""
    _enlarge_text(fig, text_scale)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _encode(image, colors: int, factor: float = 1.0) -> str:
    """``image`` resized by ``factor``, reduced to ``colors`` colours, as a lossless WebP data URL.

    Every browser shows WebP, and lossless WebP is smaller than an optimised palette PNG of the same pixels.
    """
    if factor != 1.0:
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    image = image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="WEBP", lossless=True, quality=100, method=4)
    return "data:image/webp;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _label(value, fmt) -> str:
    if fmt is not None:
        return fmt(value) if callable(fmt) else format(value, fmt)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _labeller(fmt):
    return lambda value: _label(value, fmt)


class Explorable:
    """A precomputed figure with sliders; displays itself as HTML in notebooks and in the book."""

    def __init__(
        self,
        frames: dict,
        controls: dict,
        default: dict,
        labels: dict,
        title: str | None,
        alt: str,
        names: dict | None = None,
        width: int | None = None,
    ):
        """``labels[key]`` is the list of readouts (one per slider) shown at the frame ``key``."""
        self.frames, self.controls, self.default = frames, controls, default
        self.names = {n: (names or {}).get(n, n) for n in controls}
        self.labels, self.title, self.alt = labels, title, alt
        self.width = width  # CSS pixels: the frame's pixel width / SCALE
        digest = hashlib.sha1("".join(frames.values()).encode()).hexdigest()[:8]
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
        frames = json.dumps(self.frames, separators=(",", ":"))
        labels = json.dumps(self.labels, separators=(",", ":"), ensure_ascii=False)
        title = f'<div style="font-weight:600;margin-bottom:.3em">{html.escape(self.title)}</div>' if self.title else ""
        script = (
            "(function(){"
            f'var id="{uid}",n={len(names)},F={frames},L={labels};'
            'function show(){var k=[];for(var i=0;i<n;i++){k.push(document.getElementById(id+"-s"+i).value);}'
            'k=k.join("-");for(var i=0;i<n;i++){document.getElementById(id+"-v"+i).textContent=L[k][i];}'
            'document.getElementById(id+"-img").src=F[k];}'
            'for(var i=0;i<n;i++){document.getElementById(id+"-s"+i).addEventListener("input",show);}'
            "})();"
        )
        size = f' style="max-width:min(100%,{self.width}px)"' if self.width else ""
        return (
            f'<div class="optbook-explorable" id="{uid}" style="margin:.5em 0">{STYLE}{title}'
            f'<div class="optbook-explorable-controls">{"".join(rows)}</div>'
            f'<img id="{uid}-img" src="{self.frames[self._key(default_idx)]}" alt="{html.escape(self.alt)}"{size}>'
            f"<script>{script}</script></div>"
        )

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<Explorable {self.title or ''!s}: {len(self.frames)} frames, {self.size_bytes / 1e3:.0f} kB>"


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
    text_scale: float = 1.25,
    max_bytes: int = MAX_BYTES,
    alt: str | None = None,
) -> Explorable:
    """Precompute ``draw(**values)`` (which returns a matplotlib Figure) on the grid of ``controls``.

    ``controls`` maps each slider's name (a keyword of ``draw``) to its values; ``default`` picks the
    starting value of each (the middle one otherwise); ``formats`` maps a name to a format spec or a
    function that turns a value into its label; ``readouts`` maps a name to a function of all the current
    values (a dict) that returns the label, for a slider whose value means something only with the others;
    ``names`` gives a slider a display name other than its keyword. Frames are rendered at
    ``SCALE`` pixels per CSS pixel of the column (``MIN_SCALE`` where that is over ``max_bytes``; ``dpi``
    overrides both) with their text ``text_scale``
    times larger, and shown at most ``COLUMN_PX`` CSS pixels wide.
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
        raise ValueError(f"dpi must be between 10 and 1000 (or None for twice the column's pixels), got {dpi!r}")
    if not 2 <= colors <= 256:
        raise ValueError(f"colors must be between 2 and 256, got {colors!r}")
    if not 0.5 <= text_scale <= 3:
        raise ValueError(f"text_scale must be between 0.5 and 3, got {text_scale!r}")
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

    def frame(values, factor):
        fig = draw(**values)
        if fig is None or not hasattr(fig, "savefig"):
            raise TypeError("draw(**values) must return a matplotlib Figure")
        image = _render(fig, dpi * factor if dpi else _dpi(fig, SCALE) * factor, text_scale)
        return _encode(image, colors), image.width

    # Twice the column's pixels where the byte budget allows; else fewer, never under MIN_SCALE per CSS
    # pixel: then the frame is shown narrower than the column (never under half of it). The first frame,
    # drawn at each size, tells which size fits; the whole set is then drawn once (again if it did not fit).
    factors = [1.0] if dpi else [1.0, 0.875, 0.75, 0.66, 0.58, 0.5, 0.44, 0.38]
    sizes = {f: len(frame(combos[0][1], f)[0]) for f in factors} if len(factors) > 1 else {1.0: 0}
    fitting = [f for f in factors if sizes[f] * len(combos) * 1.05 <= max_bytes] or factors[-1:]
    for factor in factors[factors.index(fitting[0]) :]:
        frames, widths = {}, []
        for key, values in combos:
            frames[key], width = frame(values, factor)
            widths.append(width)
        scale = SCALE * factor if dpi else max(MIN_SCALE, SCALE * factor)
        shown = min(COLUMN_PX, math.floor(max(widths) / scale))
        result = Explorable(frames, controls, default, labels, title, alt or title or "explorable figure", names, shown)
        if result.size_bytes <= max_bytes:
            return result
    raise ValueError(
        f"this explorable is {result.size_bytes / 1e6:.2f} MB, over the budget of {max_bytes / 1e6:.2f} MB: "
        "use fewer values per control, a smaller figure, fewer colors or a lower dpi"
    )
