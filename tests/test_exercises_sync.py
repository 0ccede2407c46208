"""Every exercise is generated from its solution, and the committed pair agrees: same cells, solution code
replaced by stubs, every check cell "not attempted yet" in the exercise and "[correct]" in the solution."""

import re
import subprocess
import sys

import nbformat
import pytest
from conftest import ROOT
from notebooks import STUB_KEY, exercise_from_solution, exercise_path, notebooks, sources, titles

SOLUTIONS = notebooks(["solutions"])
EXERCISES = notebooks(["exercises"])
CHECK_CALL = re.compile(r"\bcheck_\w+\(")
MARKERS = {"solutions": "[correct]", "exercises": "[not attempted yet]"}
OTHERS = {"solutions": ("[not yet]", "[not attempted yet]"), "exercises": ("[correct]", "[not yet]")}


def ids(paths):
    return [p.relative_to(ROOT).as_posix() for p in paths]


def test_every_exercise_has_a_solution_and_every_solution_an_exercise():
    assert {p.name for p in SOLUTIONS} == {p.name for p in EXERCISES}


@pytest.mark.parametrize("solution", SOLUTIONS, ids=ids(SOLUTIONS))
def test_the_committed_exercise_is_generated_from_its_solution(solution):
    target = exercise_path(solution)
    assert target.exists(), f"run: python book/_tools/notebooks.py exercises {solution.relative_to(ROOT)}"
    expected = sources(exercise_from_solution(nbformat.read(solution, as_version=4), solution.name))
    assert sources(nbformat.read(target, as_version=4)) == expected, (
        f"{target.name} is out of sync with its solution: python book/_tools/notebooks.py exercises "
        f"{solution.relative_to(ROOT)}"
    )


def output_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"error: {out.ename}")
    return "".join(parts)


@pytest.mark.parametrize("path", SOLUTIONS + EXERCISES, ids=ids(SOLUTIONS + EXERCISES))
def test_every_check_cell_reports_the_expected_verdict(path):
    folder = path.relative_to(ROOT).parts[0]
    nb = nbformat.read(path, as_version=4)
    check_cells = [c for c in nb.cells if c.cell_type == "code" and CHECK_CALL.search(c.source)]
    assert check_cells, f"{path.name} has no check cell (a cell calling an optbook.checks check_... function)"
    for cell in check_cells:
        text = output_text(cell)
        assert MARKERS[folder] in text, f"{path.name}: a check cell says {text[:200]!r}, not {MARKERS[folder]}"
        for other in OTHERS[folder]:
            assert other not in text, f"{path.name}: a check cell says {text[:200]!r}"


@pytest.mark.parametrize("path", EXERCISES, ids=ids(EXERCISES))
def test_exercises_contain_no_solution(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        assert "### BEGIN SOLUTION" not in cell.source and "### END SOLUTION" not in cell.source
        assert "solution" not in cell.get("metadata", {}).get("tags", [])


MARKER_LINE = re.compile(r"^\s*(### BEGIN SOLUTION|### END SOLUTION|# stub:)", re.MULTILINE)


def h1(nb) -> str:
    return next(
        line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines() if line.startswith("# ")
    )


@pytest.mark.parametrize("solution", SOLUTIONS, ids=ids(SOLUTIONS))
def test_solution_pages_show_no_scaffolding_and_keep_their_stubs_in_metadata(solution):
    nb = nbformat.read(solution, as_version=4)
    for cell in nb.cells:
        assert not MARKER_LINE.search(cell.source), f"{solution.name}: a scaffolding marker is visible: {cell.source!r}"
    assert any(STUB_KEY in c.metadata for c in nb.cells if c.cell_type == "code"), f"{solution.name}: no stub"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=ids(SOLUTIONS))
def test_exercise_and_solution_titles_differ_and_the_exercise_links_its_solution(solution):
    sol, ex = nbformat.read(solution, as_version=4), nbformat.read(exercise_path(solution), as_version=4)
    assert h1(sol).startswith("# Solution: "), h1(sol)
    assert h1(ex).startswith("# Exercise: "), h1(ex)
    assert h1(sol).removeprefix("# Solution: ") == h1(ex).removeprefix("# Exercise: ")
    last = ex.cells[-1].source
    assert f"../solutions/{solution.name}" in last and "Solution: " in last, last


def test_titles():
    assert titles("# Exercise: the bowl") == ("Exercise: the bowl", "Solution: the bowl")
    assert titles("# Solution: the bowl") == ("Exercise: the bowl", "Solution: the bowl")
    assert titles("# the bowl") == ("Exercise: the bowl", "Solution: the bowl")


def test_all_titles_are_unique():
    heads = [h1(nbformat.read(p, as_version=4)) for p in SOLUTIONS + EXERCISES]
    assert len(set(heads)) == len(heads)


def test_generated_exercises_are_formatter_clean():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *map(str, EXERCISES)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
