"""Explorable figures: figures with sliders that work everywhere, with no kernel and no network.

``explore(draw, controls)`` calls ``draw(**values)`` once for every combination of control values,
keeps each figure as a small PNG, and renders one self-contained HTML block: native
``<input type="range">`` sliders that show their current value, an image that switches frame as a
slider moves, and a few lines of inline JavaScript (no external script). The default frame is the
image's own ``src``, so without JavaScript the figure still shows. Element ids are unique on the page,
so any number of explorables can share one.

Keep each one light: the total size is checked against ``max_bytes`` (about 1 MB by default).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
from PIL import Image

MAX_BYTES = 1_200_000
_counter = itertools.count(1)


def _png(fig, dpi: int, colors: int) -> str:
    """The figure as a palette PNG (a few times smaller than full colour), base64-encoded."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


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
    ):
        self.frames, self.controls, self.default = frames, controls, default
        self.names = {n: (names or {}).get(n, n) for n in controls}
        self.labels, self.title, self.alt = labels, title, alt
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
        rows = []
        for k, name in enumerate(names):
            values = self.controls[name]
            shown = [self.labels[name](v) for v in values]
            rows.append(
                f'<label style="display:flex;align-items:center;gap:.6em;margin:.15em 0">'
                f'<span style="min-width:9em">{html.escape(self.names[name])}</span>'
                f'<input type="range" id="{uid}-s{k}" min="0" max="{len(values) - 1}" step="1" '
                f'value="{default_idx[k]}" aria-label="{html.escape(self.names[name])}" style="flex:1;max-width:22em">'
                f'<output id="{uid}-v{k}" style="min-width:5em;font-family:monospace">'
                f"{html.escape(shown[default_idx[k]])}</output></label>"
            )
        value_labels = {str(k): [self.labels[n](v) for v in self.controls[n]] for k, n in enumerate(names)}
        frames = json.dumps(self.frames, separators=(",", ":"))
        title = f'<div style="font-weight:600;margin-bottom:.3em">{html.escape(self.title)}</div>' if self.title else ""
        script = (
            "(function(){"
            f'var id="{uid}",n={len(names)},F={frames},L={json.dumps(value_labels)};'
            'function show(){var k=[];for(var i=0;i<n;i++){var s=document.getElementById(id+"-s"+i);'
            'k.push(s.value);document.getElementById(id+"-v"+i).textContent=L[i][s.value];}'
            'document.getElementById(id+"-img").src=F[k.join("-")];}'
            'for(var i=0;i<n;i++){document.getElementById(id+"-s"+i).addEventListener("input",show);}'
            "})();"
        )
        return (
            f'<div class="optbook-explorable" id="{uid}" style="margin:.5em 0">{title}'
            f'<div class="optbook-explorable-controls">{"".join(rows)}</div>'
            f'<img id="{uid}-img" src="{self.frames[self._key(default_idx)]}" alt="{html.escape(self.alt)}" '
            f'style="max-width:100%;height:auto">'
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
    names: dict | None = None,
    dpi: int = 72,
    colors: int = 96,
    max_bytes: int = MAX_BYTES,
    alt: str | None = None,
) -> Explorable:
    """Precompute ``draw(**values)`` (which returns a matplotlib Figure) on the grid of ``controls``.

    ``controls`` maps each slider's name (a keyword of ``draw``) to its values; ``default`` picks the
    starting value of each (the middle one otherwise); ``formats`` maps a name to a format spec or a
    function that turns a value into its label; ``names`` gives a slider a display name other than its keyword.
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
    formats = formats or {}
    labels = {n: _labeller(formats.get(n)) for n in controls}
    frames = {}
    for indices in itertools.product(*(range(len(v)) for v in controls.values())):
        values = {n: controls[n][i] for n, i in zip(controls, indices)}
        fig = draw(**values)
        if fig is None or not hasattr(fig, "savefig"):
            raise TypeError("draw(**values) must return a matplotlib Figure")
        frames["-".join(map(str, indices))] = _png(fig, dpi, colors)
    result = Explorable(frames, controls, default, labels, title, alt or title or "explorable figure", names)
    if result.size_bytes > max_bytes:
        raise ValueError(
            f"this explorable is {result.size_bytes / 1e6:.2f} MB, over the budget of {max_bytes / 1e6:.2f} MB: "
            "use fewer values per control, a smaller figure or a lower dpi"
        )
    return result
