"""The book's rules for its notebooks, checked on every committed notebook."""

import json

import nbformat
import pytest
from conftest import ROOT
from notebooks import bootstrap_source, notebooks, repository

ALL = notebooks()
IDS = [str(p.relative_to(ROOT)) for p in ALL]


def test_there_are_notebooks():
    assert any("chapters" in p.parts for p in ALL)


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_first_code_cell_is_the_bootstrap(path):
    nb = nbformat.read(path, as_version=4)
    first = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert first.source == bootstrap_source(), "run `python book/_tools/notebooks.py bootstrap`, then re-execute"


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_committed_executed_without_errors(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert all(c["execution_count"] is not None for c in code), "commit notebooks executed (make execute)"
    assert not [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert "widgets" not in nb["metadata"], "widget state must not be saved: the static book would show dead widgets"


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_size_budget(path):
    assert path.stat().st_size < 5_000_000, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB (budget: 5 MB)"


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_playground_outputs_are_hidden_in_the_book(path):
    """A cell that displays an ipywidgets view must hide its output in the static book."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        shows_widget = any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.outputs)
        if shows_widget:
            tags = cell.metadata.get("tags", [])
            assert "remove-output" in tags and "nbval-ignore-output" in tags, cell.source[:80]


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_opens_with_what_the_reader_will_do_and_is_in_the_toc(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    toc = (ROOT / "_toc.yml").read_text()
    assert str(path.relative_to(ROOT).with_suffix("")) in toc, "every notebook belongs in _toc.yml"


def test_repository_url_lives_in_config():
    url, branch = repository()
    assert url.startswith("https://") and branch
    assert url in bootstrap_source()


def test_hands_on_index_lists_every_exercise_with_its_solution():
    index = (ROOT / "chapters" / "03_hands_on" / "index.md").read_text()
    for solution in sorted((ROOT / "solutions").glob("*.ipynb")):
        assert f"../../exercises/{solution.name}" in index, solution.name
        assert f"../../solutions/{solution.name}" in index, solution.name


# The problems the source document cites, and the exercise that answers each.
CITED_PROBLEMS = {
    "3095407": "01_steep_and_flat_adagrad",
    "3096990": "02_adagrad_fisher",
    "3096952": "03_adagrad_plateau",
    "3095442": "04_changing_landscape",
    "3095397": "05_rmsprop_scale_change",
    "2152241": "06_why_beta1_below_beta2",
    "3096924": "07_adamw_vs_l2",
    "3097000": "08_epsilon_floor_fp16",
    "3096965": "09_preconditioning_round_bowl",
}


@pytest.mark.parametrize("problem,exercise", CITED_PROBLEMS.items())
def test_principles_text_links_each_cited_problem(problem, exercise):
    assert (ROOT / "exercises" / f"{exercise}.ipynb").exists()
    linking = [
        p.name
        for p in (ROOT / "chapters" / "01_principles").glob("*.ipynb")
        if f"exercises/{exercise}.ipynb"
        in "".join(c.source for c in nbformat.read(p, as_version=4).cells if c.cell_type == "markdown")
    ]
    assert linking, f"no Principles section links the exercise for problem {problem}"
