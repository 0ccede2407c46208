"""Explorables as readers see them: sharp frames that fill the column on a desktop, text readable on a
phone, delta frames that rebuild every frame exactly, a byte budget, readouts that are values."""

import base64
import io
import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from optbook.figures import explore as ex  # noqa: E402

PHONE_COLUMN = 358  # CSS px: the book's column on a 390 px phone (measured in tests/test_browser.py)


def draw(a, b):
    fig, ax = plt.subplots(figsize=(5.0, 2.5))
    ax.plot([0, 1, 2], [0, a, b], label="line")
    ax.set(title=f"a={a}", xlabel="step", ylabel="value")
    ax.legend()
    return fig


def draw_two_panels(a, b):
    """Two panels side by side, a colorbar, a tiny legend and a huge, long title: what a phone struggles with."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.6, 3.0))
    mesh = left.pcolormesh(np.arange(12).reshape(3, 4) * a)
    fig.colorbar(mesh, ax=left, label="value")
    left.set_title(f"a long title for a narrow panel that says a = {a} and b = {b}", fontsize=30)
    right.semilogy([1, 2, 3], [1, 10**a, 10**b], label="curve")
    right.legend(fontsize=5)
    fig.tight_layout()
    return fig


def decode(data_url):
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def rebuilt(frame_set, key):
    """The frame ``key`` as a browser shows it: its group's frame (if any) drawn over the default frame, and
    its own delta (if any) over that."""
    image = decode(frame_set.whole).convert("RGBA")
    for layer in (frame_set.groups.get(frame_set.group_of[key], ""), frame_set.deltas[key]):
        if layer:
            image = Image.alpha_composite(image, decode(layer).convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def frame_set(frames, base, colors=16, groupings=()):
    whole, groups, deltas, group, width, height = ex._encode_set(frames, base, colors, groupings=groupings)
    return ex.FrameSet(
        ex.DESKTOP, whole, groups, dict(enumerate(group)), dict(enumerate(deltas)), width, height, (0, 0)
    )


@pytest.fixture(scope="module")
def two_panels():
    return ex.explore(draw_two_panels, {"a": [1, 2], "b": [3, 4]}, default={"a": 2, "b": 4})


def test_desktop_frames_fill_the_column_with_twice_its_pixels():
    e = ex.explore(draw, {"a": [1, 2], "b": [3, 4]})
    desktop, phone = e.sets
    assert (desktop.layout, phone.layout) == (ex.DESKTOP, ex.PHONE)
    assert desktop.width == ex.SCALE * ex.COLUMN_PX  # any figure, 5 or 8.6 inches wide...
    assert 'class="optbook-explorable-view ob-desktop" style="max-width:min(100%,760px)"' in e.html  # ...fills it
    assert phone.width == ex.PHONE_PX and phone.width >= ex.MIN_SCALE * ex.PHONE_BELOW_PX
    assert f"@container (max-width:{ex.PHONE_BELOW_PX - 0.02}px)" in e.html  # phone frames where it is narrow
    for s in e.sets:
        assert {decode(s.whole).width} | {decode(d).width for d in s.deltas.values() if d} == {s.width}


def test_text_is_clamped_and_recorded_from_the_figure(two_panels):
    """A 5 pt legend and a 30 pt title come out at MIN_PT and MAX_PT; data-text-px says so, in frame pixels."""
    for s in two_panels.sets:
        px_per_pt = s.width / s.layout.width_in / 72
        assert s.text_px == pytest.approx((ex.MIN_PT * px_per_pt, ex.MAX_PT * px_per_pt), abs=0.01)
        low, high = re.search(rf'ob-{s.layout.name}"[^>]*data-text-px="([\d.]+) ([\d.]+)"', two_panels.html).groups()
        assert (float(low), float(high)) == pytest.approx(s.text_px, abs=0.06)


def test_text_is_readable_on_a_phone_and_not_huge_on_a_desktop(two_panels):
    desktop, phone = two_panels.sets
    assert phone.text_px[0] * PHONE_COLUMN / phone.width >= 10  # smallest text, 390 px phone: >= 10 CSS px
    assert phone.text_px[0] * 328 / phone.width >= 9  # ... and >= 9 on a 360 px phone
    assert desktop.text_px[0] * ex.PHONE_BELOW_PX / desktop.width >= 9  # desktop frames, where narrowest
    assert desktop.text_px[1] * ex.COLUMN_PX / desktop.width <= 20  # the largest text on a desktop


def test_phone_frames_stack_side_by_side_panels(two_panels):
    desktop, phone = two_panels.sets
    assert desktop.height / desktop.width < 0.4 < 0.8 < phone.height / phone.width
    fig = draw_two_panels(1, 3)
    left, right = fig.axes[0], fig.axes[1]
    assert ex._stack_panels(fig) == 2
    assert left.get_position().y0 > right.get_position().y1  # one above the other...
    colorbar = fig.axes[2].get_position()
    assert colorbar.y0 >= left.get_position().y0 - 1e-9 and colorbar.x0 > left.get_position().x1  # ...bar kept
    plt.close(fig)
    fig, ax = plt.subplots()
    ax.inset_axes([0.5, 0.5, 0.4, 0.4])
    assert ex._stack_panels(fig) == 1  # an inset is not on the grid: left as it is
    plt.close(fig)


def test_long_titles_wrap_in_phone_frames():
    fig = draw_two_panels(1, 3)
    ex._fit_text(fig, 1.0)
    ex._draw_pixels(fig, ex.PHONE, (8.6, 3.0))
    assert "\n" in fig.axes[0].get_title()
    plt.close(fig)


def test_delta_frames_rebuild_every_frame_exactly():
    rng = np.random.default_rng(0)
    base = np.full((40, 60, 3), 255, np.uint8)
    base[5:35, 10] = (0, 0, 0)
    frames = []
    for k in range(5):
        frame = base.copy()
        frame[10 + k : 14 + k, 20 : 30 + 5 * k] = rng.integers(0, 255, 3)  # a small change...
        frames.append(frame)
    frames.append(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))  # ...and a frame unlike the others
    s = frame_set(frames, base=2)
    assert (s.width, s.height) == (60, 40) and s.deltas[2] == "" and not s.groups
    palette = ex._palette(frames, 16)
    for k, frame in enumerate(frames):
        assert np.array_equal(rebuilt(s, k), palette[ex._indices(frame, palette)]), k
    assert decode(s.deltas[0]).mode == "RGBA" and np.asarray(decode(s.deltas[0]))[..., 3].mean() < 128  # mostly clear
    assert decode(s.deltas[5]).mode == "RGB"  # the unlike frame is stored whole


def test_frames_grouped_by_the_slider_that_redraws_most():
    """3 x 3 frames: slider A repaints a large panel, slider B moves a small mark. Grouped by A, each panel
    is stored once (a group frame), and each frame adds only its mark; every frame is still exact."""
    rng = np.random.default_rng(1)
    panels = [rng.integers(0, 255, (1, 1, 3)) * np.ones((30, 40, 1), np.uint8) for _ in range(3)]
    frames = []
    for a in range(3):
        for b in range(3):
            frame = np.full((48, 64, 3), 255, np.uint8)
            frame[4:34, 4:44] = panels[a]
            frame[40:44, 8 + 16 * b : 12 + 16 * b] = 0
            frames.append(frame)
    by_a = [3 * a + 1 for a in range(3) for b in range(3)]  # default (a, b) = (1, 1), frame 4
    by_b = [3 + b for a in range(3) for b in range(3)]
    grouped, flat = frame_set(frames, 4, groupings=[by_a, by_b]), frame_set(frames, 4)
    assert set(grouped.groups) == {1, 7} and grouped.group_of[0] == 1 and grouped.group_of[5] == 4
    palette = ex._palette(frames, 16)
    for k, frame in enumerate(frames):
        assert np.array_equal(rebuilt(grouped, k), palette[ex._indices(frame, palette)]), k

    def size(s):
        return sum(map(len, [s.whole, *s.groups.values(), *s.deltas.values()]))

    assert size(grouped) < size(flat)


def test_delta_frames_rebuild_the_figures_exactly(two_panels):
    for s in two_panels.sets:
        default = rebuilt(s, "1-1")
        for key in two_panels.labels:
            frame = rebuilt(s, key)
            assert frame.shape == default.shape
            assert (key == "1-1") == np.array_equal(frame, default)  # every other frame differs from the default


def test_white_stays_white_and_frames_are_small(two_panels):
    for s in two_panels.sets:
        assert tuple(np.asarray(decode(s.whole).convert("RGB"))[1, 1]) == (255, 255, 255)
    deltas = [len(d) for d in two_panels.sets[0].deltas.values() if d]
    assert max(deltas) < len(two_panels.sets[0].whole)  # a delta costs less than the whole frame
    assert two_panels.size_bytes < ex.MAX_BYTES


def draw_line_on_a_colour_map(a):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.imshow(np.linspace(0, 1, 400).reshape(20, 20) * a, cmap="Blues")
    ax.plot([0, 19], [0, 19], color="#0072B2", lw=3)
    return fig


def test_the_figure_s_own_colours_stay_exact():
    """Even with 16 colours for a whole colour map, the line keeps its own colour (an optimizer's colour)."""
    e = ex.explore(draw_line_on_a_colour_map, {"a": [0.5, 1.0]}, colors=16)
    pixels = np.asarray(decode(e.sets[0].whole).convert("RGB")).reshape(-1, 3)
    assert ((pixels == (0, 0x72, 0xB2)).all(1)).sum() > 100
    assert 0x0072B2 in ex._artist_colours(draw_line_on_a_colour_map(1.0))


def test_script_swaps_deltas_of_both_sets():
    e = ex.explore(draw, {"a": [1, 2], "b": [3, 4]}, default={"a": 1, "b": 4})
    frames = json.loads(re.search(r"F=(\{.*?\}),G=", e.html).group(1))
    groups = json.loads(re.search(r"G=(\[.*?\]),L=", e.html).group(1))
    assert frames["0-1"] == [["0-1", ""], ["0-1", ""]]  # the default frame: nothing drawn over it
    for key, sets in frames.items():
        assert len(sets) == 2 and all(g == "0-1" or g in groups[j] for j, (g, _) in enumerate(sets))
        assert key == "0-1" or all(groups[j].get(g) or d for j, (g, d) in enumerate(sets))
    assert e.html.count('class="ob-delta" alt="" hidden') == 4  # a group layer and a frame layer per set
    assert e.html.count('class="ob-frame"') == 2 and 'data-frames="4"' in e.html


@pytest.mark.slow
def test_over_budget_tries_fewer_colours_then_fewer_pixels(two_panels):
    full = two_panels.size_bytes
    e = ex.explore(draw_two_panels, {"a": [1, 2], "b": [3, 4]}, default={"a": 2, "b": 4}, max_bytes=int(0.9 * full))
    assert e.size_bytes <= 0.9 * full
    for s in e.sets:
        assert s.width >= ex.MIN_SCALE * s.layout.shown_px  # never under 1.5 pixels per CSS pixel


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


@pytest.mark.slow
def test_over_budget_fails_with_a_clear_message():
    with pytest.raises(ValueError, match="over the budget"):
        ex.explore(draw, {"a": [1, 2], "b": [3, 4]}, max_bytes=1000)


def test_draw_must_return_a_figure():
    with pytest.raises(TypeError, match="must return a matplotlib Figure"):
        ex.explore(lambda a: None, {"a": [1, 2]})


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"dpi": 5}, "dpi"),
        ({"colors": 1}, "colors"),
        ({"text_scale": 9}, "text_scale"),
        ({"readouts": {"z": len}}, "readouts"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"default": {"a": 7}}, "default"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, word):
    with pytest.raises(ValueError, match=word):
        ex.explore(draw, {"a": [1, 2], "b": [3, 4]}, **kwargs)


def test_controls_need_two_values():
    with pytest.raises(ValueError, match="at least two values"):
        ex.explore(draw, {"a": [1], "b": [3, 4]})


def test_a_draw_functions_own_tight_layout_is_skipped_and_restored():
    """explore lays every frame out at each size itself; the draw function's own tight_layout is skipped while
    it runs (it would be thrown away), and matplotlib's is back afterwards, also after a draw that raised."""
    from matplotlib.figure import Figure

    original, inside = Figure.tight_layout, []

    def draw(a):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot([0, 1], [0, a])
        inside.append(Figure.tight_layout is original)
        fig.tight_layout()
        return fig

    ex.explore(draw, {"a": [1, 2]})
    assert inside == [False, False] and Figure.tight_layout is original

    def broken(a):
        raise RuntimeError("a draw function that fails")

    with pytest.raises(RuntimeError):
        ex.explore(broken, {"a": [1, 2]})
    assert Figure.tight_layout is original
