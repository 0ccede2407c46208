"""The optimizers' colours: readable on the page, and every pair of lines can be told apart.

WCAG 2 contrast ratio, (L1 + 0.05) / (L2 + 0.05) with L the relative luminance of sRGB colours: every
line's colour has at least 3:1 against the white page, and two lines whose colours are under 3:1 against
each other have different line styles.
"""

import itertools

import pytest

from optbook.figures import plots
from optbook.lab import catalog

PAGE = "#ffffff"


def luminance(hex_color: str) -> float:
    channels = [int(hex_color.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    lo, hi = sorted([luminance(a), luminance(b)])
    return (hi + 0.05) / (lo + 0.05)


def lines():
    styles = catalog.dashes()
    return {name: (color, styles[name]) for name, color in catalog.colors().items()}


def test_contrast_formula_matches_known_values():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # WCAG's classic example
    assert contrast("#0072B2", "#0072B2") == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(catalog.colors()))
def test_every_line_stands_out_from_the_page(name):
    color = catalog.colors()[name]
    assert contrast(color, PAGE) >= 3, f"{name}'s colour {color} has {contrast(color, PAGE):.2f}:1 on white"


def test_every_pair_of_lines_differs_in_contrast_or_style():
    distinct = {name: value for name, value in lines().items() if name in catalog.names() or name == "Newton"}
    bad = [
        f"{a} and {b}: {contrast(ca, cb):.2f}:1, both {sa!r}"
        for (a, (ca, sa)), (b, (cb, sb)) in itertools.combinations(distinct.items(), 2)
        if contrast(ca, cb) < 3 and sa == sb
    ]
    assert not bad, "pairs of lines that cannot be told apart: " + "; ".join(bad)


def test_old_palette_would_fail():
    """The test can fail: Okabe-Ito's orange and sky blue are under 3:1 on white, and 1.03:1 to each other."""
    assert contrast("#E69F00", PAGE) < 3 and contrast("#56B4E9", "#E69F00") < 1.5


def test_plots_use_the_catalog_styles():
    assert plots.line("Adam") == {"color": catalog.by_name("Adam").color, "linestyle": catalog.by_name("Adam").dash}
    assert plots.line("not an optimizer", 1)["color"] == plots.CYCLE[1]


def test_pieces_drawn_beside_the_optimizers_are_told_apart_from_every_line():
    """Full-matrix AdaGrad and Shampoo (catalog.OTHER_COLORS) join the pairwise rule of the optimizers."""
    every = lines()
    others = set(catalog.OTHER_COLORS)
    bad = [
        f"{a} and {b}"
        for (a, (ca, sa)), (b, (cb, sb)) in itertools.combinations(every.items(), 2)
        if (a in others or b in others) and ca != cb and contrast(ca, cb) < 3 and sa == sb
    ]
    assert not bad, "pairs of lines that cannot be told apart: " + "; ".join(bad)
    for name in others:
        assert contrast(catalog.OTHER_COLORS[name], PAGE) >= 3, name


@pytest.mark.parametrize("name", [k for k in plots.NEUTRAL if k != "on image"])
def test_neutral_colours_stand_out_from_the_page(name):
    assert contrast(plots.neutral(name), PAGE) >= 3, f"{name}: {contrast(plots.neutral(name), PAGE):.2f}:1 on white"


@pytest.mark.parametrize("n", range(1, 7))
def test_shades_for_ordered_series_differ_in_contrast_or_style(n):
    series = plots.shades(n)
    assert len(series) == n
    for s in series:
        assert contrast(s["color"], PAGE) >= 3, s
    for a, b in itertools.combinations(series, 2):
        assert contrast(a["color"], b["color"]) >= 3 or a["linestyle"] != b["linestyle"], (a, b)


def test_shades_and_neutral_refuse_bad_input():
    for bad in (0, 7, 2.0, True):
        with pytest.raises(ValueError, match="n must be an integer from 1 to 6"):
            plots.shades(bad)
    with pytest.raises(ValueError, match="name must be one of"):
        plots.neutral("red")
