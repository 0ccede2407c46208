"""Explorables as readers see them: sharp frames that fill the column, readouts that are values."""

import base64
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from optbook.figures import explore as ex  # noqa: E402


def draw(a, b):
    fig, ax = plt.subplots(figsize=(5.0, 2.5))
    ax.plot([0, 1, 2], [0, a, b], label="line")
    ax.set(title=f"a={a}", xlabel="step", ylabel="value")
    ax.legend()
    return fig


def frame_width(data_url):
    data = base64.b64decode(data_url.split(",", 1)[1])
    return Image.open(io.BytesIO(data)).width


def test_frames_have_twice_the_pixels_they_are_shown_at():
    e = ex.explore(draw, {"a": [1, 2], "b": [3, 4]})
    assert e.width == ex.COLUMN_PX  # a 5-inch figure fills the column...
    widths = {frame_width(f) for f in e.frames.values()}
    assert min(widths) >= 1.5 * e.width  # ...with at least 1.5 (here 2) pixels per CSS pixel
    assert f"max-width:min(100%,{e.width}px)" in e.html


def test_readouts_are_values_that_may_depend_on_other_sliders():
    grid = {1: [0.1, 0.2], 2: [0.3, 0.4]}
    e = ex.explore(
        draw,
        {"a": [1, 2], "b": [0, 1]},
        default={"a": 1, "b": 1},
        readouts={"b": lambda v: f"{grid[v['a']][v['b']]:g}"},
    )
    assert e.labels["1-0"] == ["2", "0.3"] and e.labels["0-1"] == ["1", "0.2"]
    assert re.search(r"<output[^>]*>0\.2</output>", e.html)  # the default frame's readout


def test_controls_are_one_grid_that_fits_a_phone():
    html = ex.explore(draw, {"a": [1, 2], "b": [3, 4]}, names={"a": "a very long slider label indeed"}).html
    assert "display:grid" in html and "@media (max-width:560px)" in html
    assert "min-width:9em" not in html  # the old fixed label column that pushed sliders off a phone


def test_over_budget_fails_with_a_clear_message():
    with pytest.raises(ValueError, match="over the budget"):
        ex.explore(draw, {"a": [1, 2], "b": [3, 4]}, max_bytes=1000)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"dpi": 5}, "dpi"),
        ({"colors": 1}, "colors"),
        ({"text_scale": 9}, "text_scale"),
        ({"readouts": {"z": len}}, "readouts"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, word):
    with pytest.raises(ValueError, match=word):
        ex.explore(draw, {"a": [1, 2], "b": [3, 4]}, **kwargs)
