"""House rules for what the notebooks show, read from the committed notebooks.

* **No hand-picked colours.** A line's colour comes from the palette: ``plots.color(name)`` /
  ``plots.line(name)`` for an optimizer (the catalog), ``plots.neutral(...)`` for guides, limits, targets
  and alerts, ``plots.shades(n)`` for ordered series that are not optimizers. The scan reads every code
  cell's syntax tree and flags a string that names a colour (hex, ``"C0"``..``"C9"``, ``"tab:..."``, a
  matplotlib colour name such as ``"red"``) passed to a colour argument, a format string with a colour
  letter (``"k--"``, ``"w*"``), and a colour map sampled for line colours (``plt.cm.Blues(0.5)``).
  Allowed: a colour map *name* given to ``cmap=`` (a heatmap needs a map, and a map is not a line colour).
* **Printed lines fit the column.** The book's column is narrow: a printed line wider than 90 characters
  wraps or scrolls; a table belongs in ``markdown_table``. Checked over the stream outputs of Part I's
  sections 01-12, with a list of the cells not yet converted (each must still be wide, so the list shrinks).
* **Every "Try it" prompt has an answer** in a dropdown admonition after it, in the same markdown cell or
  the next one.
"""

import ast
import json
import re

import matplotlib.colors as mcolors
import pytest
from conftest import ROOT

CHAPTERS = sorted((ROOT / "chapters").glob("*/*.ipynb"))
PRINCIPLES = [p for p in CHAPTERS if p.parent.name == "01_principles" and int(p.name[:2]) <= 12]
IDS = [str(p.relative_to(ROOT / "chapters")) for p in CHAPTERS]

# ---------------------------------------------------------------------------------------------- colours
COLOUR_ARGS = {"color", "c", "colors", "facecolor", "edgecolor", "fc", "ec", "mfc", "mec"}
COLOUR_ARGS |= {"markerfacecolor", "markeredgecolor", "linecolor", "labelcolor"}
NAMED = {name.lower() for name in (*mcolors.CSS4_COLORS, *mcolors.XKCD_COLORS)} | set("bgrcmykw")
FORMAT = re.compile(r"[-.:o*xs^v<>dDhHp+|_,1-4]*[bgrcmykw][-.:o*xs^v<>dDhHp+|_,1-4]*")
PLOTTERS = {"plot", "loglog", "semilogx", "semilogy", "errorbar", "step"}

# Cells allowed a colour map sampled for colours, and why. Each must still contain the hit (the list cannot go
# stale): ten categories side by side in a stacked bar need a categorical map, not line colours.
ALLOWED_CELLS = {
    ("02_applications/03_federated_learning.ipynb", "1a1336be"): "ten digit classes in a stacked bar (tab10)",
}


HEX = re.compile(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?([0-9a-fA-F]{2})?")


def is_colour(text: str) -> bool:
    t = text.strip()
    return bool(
        HEX.fullmatch(t) or re.fullmatch(r"C\d", t) or t.lower().startswith(("tab:", "xkcd:")) or t.lower() in NAMED
    )


def colour_literals(source: str) -> list[str]:
    """Every hand-picked colour in ``source``, as 'line N: what'."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a cell with IPython magics: nothing of ours to read
        return []
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and HEX.fullmatch(node.value):
            hits.append(f"line {node.lineno}: hex colour {node.value!r}")  # a hex string is a colour wherever it is
        elif isinstance(node, ast.keyword) and node.arg in COLOUR_ARGS:
            for leaf in ast.walk(node.value):
                text = leaf.value if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str) else None
                if text is not None and is_colour(text) and not HEX.fullmatch(text):
                    hits.append(f"line {leaf.lineno}: {node.arg}={leaf.value!r}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in PLOTTERS:
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and FORMAT.fullmatch(arg.value):
                        hits.append(f"line {arg.lineno}: format string {arg.value!r} names a colour")
            owner = node.func.value
            if isinstance(owner, ast.Attribute) and owner.attr == "cm":  # plt.cm.Blues(0.5)
                hits.append(f"line {node.lineno}: colour map {node.func.attr} sampled for a colour")
        if isinstance(node, ast.Attribute) and node.attr == "CYCLE":  # optimizers' colours for other series
            hits.append(f"line {node.lineno}: plots.CYCLE (the optimizers' colours) for a series")
    return hits


def code_cells(path):
    nb = json.loads(path.read_text())
    return [(c.get("id"), "".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_no_hand_picked_colours(path):
    name = str(path.relative_to(ROOT / "chapters"))
    cells = code_cells(path)
    for (notebook, cid), why in ALLOWED_CELLS.items():
        if notebook == name:
            assert any(colour_literals(src) for c, src in cells if c == cid), f"cell {cid} no longer needs: {why}"
    allowed = {cid for notebook, cid in ALLOWED_CELLS if notebook == name}
    found = [f"cell {cid}, {hit}" for cid, src in cells if cid not in allowed for hit in colour_literals(src)]
    assert not found, "use plots.color/line, plots.neutral or plots.shades instead of: " + "; ".join(found)


@pytest.mark.parametrize(
    "source, expected",
    [
        ('ax.plot(x, y, color="red")', 1),
        ('ax.axhline(1, color="#8172b3")', 1),
        ('ax.plot(x, y, "k--")', 1),
        ('ax.plot(x, y, "w*", ms=3)', 1),
        ('ax.plot(x, y, color=plots.color(m, "C0"))', 1),
        ('ax.fill_between(x, a, b, facecolor="tab:blue")', 1),
        ("blues = [plt.cm.Blues(v) for v in (0.5, 0.7)]", 1),
        ('ax.plot(x, y, color=plots.CYCLE[i], label="beta")', 1),
        ('ratios = {"F": (values, "o", "#2f2f2f")}', 1),
        ('ax.plot(x, y, "o-", color=plots.color("Adam"))', 0),
        ('ax.axhline(1, color=plots.neutral("reference"))', 0),
        ('ax.imshow(z, cmap="viridis_r")', 0),
        ('ax.plot(x, y, label="beta")', 0),
    ],
)
def test_the_colour_scan_can_fail(source, expected):
    assert len(colour_literals(source)) == expected, colour_literals(source)


# ------------------------------------------------------------------------------------------ printed width
WIDTH = 90
# Cells of Part I 01-12 allowed a printout wider than the column. Each entry must still be wide (the test
# fails otherwise), so the list can only shrink.
# The cells listed here print a library function's source (inspect.getsource): a code listing whose docstring
# lines are up to the library's 120 characters; the book shows it in a scrolling code box.
KNOWN_WIDE: dict[str, set[str]] = {
    "01_gradient_descent.ipynb": {"b23a3c4e"},
    "03_adagrad.ipynb": {"2e54c32a"},
    "05_rmsprop.ipynb": {"bc6b3a05"},
    "06_momentum.ipynb": {"b4650f04"},
    "07_adam.ipynb": {"5adf60dd"},
    "09_adamw.ipynb": {"f06f1c7d", "0227d1e9"},
    "10_epsilon_and_low_precision.ipynb": {"1bff93c8", "550bda84"},
    "11_preconditioning.ipynb": {"e55df493", "0ff8de45", "20fe8fb3"},
}


def wide_lines(path):
    nb = json.loads(path.read_text())
    out = {}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                long = [line for line in "".join(o["text"]).splitlines() if len(line) > WIDTH]
                if long:
                    out.setdefault(cell.get("id"), []).extend(long)
    return out


@pytest.mark.parametrize("path", PRINCIPLES, ids=[p.name for p in PRINCIPLES])
def test_printed_lines_fit_the_column(path):
    wide = wide_lines(path)
    allowed = KNOWN_WIDE.get(path.name, set())
    new = {cid: lines for cid, lines in wide.items() if cid not in allowed}
    assert not new, f"lines over {WIDTH} characters (use markdown_table): " + "; ".join(
        f"cell {cid}: {lines[0][:60]!r}... ({len(lines[0])} chars)" for cid, lines in new.items()
    )
    fixed = sorted(allowed - set(wide))
    assert not fixed, f"these cells now fit the column: remove them from KNOWN_WIDE: {fixed}"


def test_the_width_scan_can_fail(tmp_path):
    nb = {
        "cells": [
            {"cell_type": "code", "id": "a", "source": [], "outputs": [{"output_type": "stream", "text": ["x" * 91]}]},
            {"cell_type": "code", "id": "b", "source": [], "outputs": [{"output_type": "stream", "text": ["x" * 90]}]},
        ]
    }
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    assert list(wide_lines(path)) == ["a"]


# ---------------------------------------------------------------------------------------- Try it answers
TRY_IT = re.compile(r"\*\*Try it[.:]?\*\*")
DROPDOWN = re.compile(r"^:class:\s*dropdown\s*$", re.M)

KNOWN_UNANSWERED: dict[str, str] = {}  # notebook -> why its prompt has no answer yet (strict: none today)


def unanswered_prompts(path) -> list[str]:
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    missing = []
    for k, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        prompts = list(TRY_IT.finditer(text))
        for j, prompt in enumerate(prompts):
            end = prompts[j + 1].start() if j + 1 < len(prompts) else len(text)
            after = text[prompt.end() : end]
            if j + 1 == len(prompts) and k + 1 < len(cells) and cells[k + 1]["cell_type"] == "markdown":
                after += "\n" + "".join(cells[k + 1]["source"])
            if not DROPDOWN.search(after):
                missing.append(f"cell {cell.get('id')}: {text[prompt.start() : prompt.start() + 50]!r}")
    return missing


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=KNOWN_UNANSWERED[i]))
        if i in KNOWN_UNANSWERED
        else p
        for p, i in zip(CHAPTERS, IDS)
    ],
    ids=IDS,
)
def test_every_try_it_has_an_answer_to_reveal(path):
    missing = unanswered_prompts(path)
    assert not missing, "a 'Try it' prompt without a dropdown answer: " + "; ".join(missing)


def test_part_one_has_try_it_prompts():
    assert all(any(TRY_IT.search(src) for src in _markdown(p)) for p in PRINCIPLES)


def _markdown(path):
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]


def test_the_try_it_scan_can_fail(tmp_path):
    answered = "**Try it.** Do this.\n\n:::{admonition} Answer\n:class: dropdown\nThat.\n:::"
    cells = [{"cell_type": "markdown", "source": [answered]}, {"cell_type": "markdown", "source": ["**Try it.** And?"]}]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    assert len(unanswered_prompts(path)) == 1
