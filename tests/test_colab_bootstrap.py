"""The book on Colab's stack: the bootstrap cell replaces nothing, and the widgets work under ipywidgets 7.

The environment is book/_tools/colab_stack.py's: the packages Colab has preinstalled (issue 15: numpy 2.0.2,
matplotlib 3.10.0, ipywidgets 7.7.1, ..., and Colab's kernel packages), the book's CPU torch, and what a
notebook installs on Colab itself (Flower). Every notebook is executed there by strict nbval
(``make test-notebooks`` runs its kernel, ``colab-stack``), and ``make execute`` writes the committed outputs
in the same kernel, so no second pass is needed here. The tests run, as a new Colab user would:

1. the bootstrap cell against a clone of this repository's HEAD (``git+file://``), and ``pip freeze``
   of the preinstalled packages must be the same afterwards: a floor in pyproject.toml above Colab's
   version would make pip upgrade it (``test_the_check_catches_a_floor_above_colab`` shows that it would
   fail with ``ipywidgets>=8``);
2. the playground's widget code under ipywidgets 7 (the Colab kernel) and 8 (the book's environment);
3. the bootstrap cell against a repository that cannot be reached: it must say so in one sentence;
4. what the Flower install does to Colab's packages, and that a client's polls stay bounded.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from colab_stack import COLAB_STACK, KERNEL, KERNEL_EXTRAS, canonical, changed, clean_env, ensure, freeze
from conftest import ROOT
from notebooks import bootstrap_source, bounded_polls, notebooks

_canonical, _clean_env = canonical, clean_env


def _sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw)


# --- Floors -----------------------------------------------------------------------------------------------


def _declared():
    import tomllib  # here, not above: ruff's target (py39) would sort it with the third-party imports

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", requirement)
        assert match, f"{requirement!r}: a dependency is a floor only ('name>=version')"
        floors[_canonical(match[1])] = match[2]
    return project, floors


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_declared_floors_are_the_tested_stack():
    """Every floor but torch's is the version the Colab-stack tests install, so each floor is exercised."""
    project, floors = _declared()
    assert {name: floors[name] for name in floors if name != "torch"} == {
        name: COLAB_STACK[name] for name in floors if name != "torch"
    }
    # the Python floor is the one make setup and these tests run on (Colab's 3.12 is above it)
    assert _version(project["requires-python"].removeprefix(">=")) == sys.version_info[:2]


# torch APIs newer than 2.0 that the library or a notebook may use, with the release that introduced them.
TORCH_APIS = {"torch.amp.GradScaler": "2.3", "torch.optim.Adafactor": "2.5", "torch.optim.Muon": "2.9"}
TORCH_BEFORE_2 = {"Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "Adadelta", "Adamax", "ASGD", "LBFGS", "NAdam"}
TORCH_BEFORE_2 |= {"RAdam", "RMSprop", "Rprop", "SparseAdam", "autocast"}


def _torch_apis_called(source: str) -> set[str]:
    """``torch.optim.X`` / ``torch.amp.X`` names in the code (not in docstrings or comments, which may name an
    API the code never calls, as optbook's Muon docstring names torch.optim.Muon)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a notebook cell with IPython syntax: read it as text
        return set(re.findall(r"torch\.(?:optim|amp)\.[A-Z]\w*", source))
    names = {ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    return {name for name in names if re.fullmatch(r"torch\.(?:optim|amp)\.[A-Z]\w*", name)}


def test_torch_floor_covers_the_torch_apis_used():
    """torch's floor is checked against what the library and the notebooks call (the CPU torch the tests
    run is newer: Colab's torch 2.9.1 and the floor itself are admitted, not run)."""
    _, floors = _declared()
    texts = [p.read_text() for p in (ROOT / "lib").rglob("*.py")]
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        texts += [cell.source for cell in nb.cells if cell.cell_type == "code"]
    used = set().union(*(_torch_apis_called(text) for text in texts))
    unknown = sorted(api for api in used if api not in TORCH_APIS and api.rsplit(".", 1)[1] not in TORCH_BEFORE_2)
    assert not unknown, f"add these to TORCH_APIS with the torch release that introduced them: {unknown}"
    needed = max((TORCH_APIS[api] for api in used if api in TORCH_APIS), key=_version, default="2.0")
    assert _version(floors["torch"]) >= _version(needed), f"the code uses torch {needed} APIs; raise torch's floor"
    assert _version(floors["torch"]) <= _version("2.9.1"), "torch's floor must admit Colab's torch 2.9.1"


# --- The Colab-like environment ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack():
    """(python, pip freeze) of the Colab-stack venv, without optbook (make colab-stack builds it; reused)."""
    python, record = ensure(log=lambda message: None)
    return python, record["freeze"]


@pytest.mark.slow
def test_the_stack_is_colabs():
    """The venv holds Colab's versions, and what the Flower cell installs replaces only what it is known to.

    On Colab, the federated page's "On Colab only" cell runs ``pip install flwr[simulation]==1.42.0``:
    it downgrades ``packaging`` (Colab's 26.3) to 25.0 and replaces nothing else of Colab's.
    """
    _, record = ensure(log=lambda message: None)
    assert {name: record["colab"].get(name) for name in COLAB_STACK} == COLAB_STACK
    assert record["extras"] == KERNEL_EXTRAS
    assert record["extras_replaced"] == ["packaging 26.3 -> 25.0"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A clone of this repository's HEAD (committed work only), its HEAD on a branch named ``book``."""
    path = tmp_path_factory.mktemp("repo") / "optbook"
    head = _sh("git", "-C", ROOT, "rev-parse", "HEAD").stdout.strip()
    _sh("git", "clone", "-q", "--no-checkout", ROOT, path)
    _sh("git", "-C", path, "checkout", "-q", "-b", "book", head)
    return path


def _run_cell(python, cell: str, cwd: Path, extra: str = ""):
    script = cwd / "first_cell.py"
    script.write_text(cell + "\n" + extra)
    return subprocess.run([python, script], capture_output=True, text=True, env=_clean_env(), cwd=cwd)


def _would_change(python, before, requirement) -> list[str]:
    """What ``pip install requirement`` would replace, asked of pip without installing (--dry-run).

    optbook must not be installed yet (pip would call the requirement satisfied and resolve nothing): these
    tests come before the bootstrap's in this file, and pytest runs a module's tests in order.
    """
    assert "optbook" not in freeze(python), "run the dry-run checks before the bootstrap installs optbook"
    report = _sh(python, "-m", "pip", "install", "-q", "--dry-run", "--report", "-", requirement, env=_clean_env())
    after = dict(before)
    after.update(
        {_canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in json.loads(report.stdout)["install"]}
    )
    return changed(before, after)


@pytest.mark.slow
@pytest.mark.parametrize("floor", [None, "ipywidgets>=8"], ids=["as-declared", "ipywidgets>=8"])
def test_the_check_catches_a_floor_above_colab(stack, clone, tmp_path, floor):
    """The same freeze comparison, asked of pip's dry run: clean as declared, and failing with a wrong floor."""
    python, before = stack
    repo = clone
    if floor is not None:  # the repository with one floor raised above Colab's version, committed
        repo = tmp_path / "wrong-floor"
        _sh("git", "clone", "-q", "--branch", "book", clone, repo)
        pyproject = repo / "pyproject.toml"
        name = floor.split(">=")[0]
        text, n = re.subn(rf'"{name}>=[^"]*"', f'"{floor}"', pyproject.read_text())
        assert n == 1
        pyproject.write_text(text)
        _sh("git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "wrong floor")
    upgrades = _would_change(python, before, f"git+file://{repo}@book")
    if floor is None:
        assert upgrades == []
    else:
        assert [u for u in upgrades if u.startswith("ipywidgets 7.7.1 -> 8.")], upgrades


@pytest.fixture(scope="module")
def bootstrapped(stack, clone, tmp_path_factory):
    """The Colab-stack venv after the bootstrap cell installed optbook from the clone: (python, output)."""
    python, _ = stack
    cell = bootstrap_source(url=f"file://{clone}", branch="book")
    probe = (
        'from optbook import transforms\nprint("imported", optbook.__version__, "from", optbook.__file__, "on", device)'
    )
    out = _run_cell(python, cell, tmp_path_factory.mktemp("cell"), probe)
    assert out.returncode == 0, out.stderr[-3000:]
    return python, out.stdout


@pytest.mark.slow
def test_bootstrap_installs_optbook_and_replaces_nothing(stack, bootstrapped, clone):
    python, before = stack
    _, output = bootstrapped
    assert "imported 0.1.0" in output and str(ROOT / "lib") not in output  # a real install, not our tree
    after = freeze(python)
    assert not changed(before, after), f"the bootstrap replaced Colab's packages: {changed(before, after)}"
    assert "optbook" in after


# --- Widgets under ipywidgets 7 and 8 ---------------------------------------------------------------------

WIDGET_CELLS = [
    "import ipywidgets\nfrom IPython.display import display\nfrom optbook.figures import widgets\n"
    "ui = widgets.optimizer_playground()\ndisplay(ui)\nprint('ipywidgets', ipywidgets.__version__)",
    "controls = {c.description: c for c in ui.children[:-1]}\n"
    "controls['landscape'].value = 'Rosenbrock'\ncontrols['optimizer'].value = controls['optimizer'].options[-1]\n"
    "controls['log10_lr'].value = -2.0\ncontrols['steps'].value = 50",
]


# Run by a python of its own, as the notebooks are: prints the kernel's cell outputs and the outputs that the
# playground's Output widget received (nbclient plays the front end), as JSON. The client is make execute's
# (book/_tools/notebooks.py), whose bounded polls keep a missed wake-up from stalling it (see bounded_polls).
PLAY = """
import json, sys
import nbformat
sys.path.insert(0, sys.argv[4])
from notebooks import notebook_client
cells, kernel, folder = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
client = notebook_client(nb, kernel, timeout=120, resources={"metadata": {"path": folder}})
client.execute()
widgets = [s.get("outputs") or [] for s in client.widget_state.values() if s.get("_model_name") == "OutputModel"]
print(json.dumps({"cells": [c.outputs for c in nb.cells], "widgets": widgets}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("environment", ["book", "colab"])
def test_playground_draws_under_both_ipywidgets_majors(environment, request, tmp_path):
    """The playground's controls redraw its figure in a live kernel: ipywidgets 8 in the book's environment,
    7.7.1 in Colab's (the kernel make execute and nbval use). nbclient plays the front end, so the Output
    widget's figure is what a reader sees."""
    kernel = "python3"
    if environment == "colab":
        request.getfixturevalue("stack")  # the venv and its kernel exist
        kernel = KERNEL
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-c", PLAY, json.dumps(WIDGET_CELLS), kernel, tmp_path, ROOT / "book" / "_tools"]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=540)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    major = result["cells"][0][-1]["text"].split()[1].split(".")[0]
    assert major == {"book": "8", "colab": "7"}[environment]
    inside = [o for outputs in result["widgets"] for o in outputs]
    errors = [o.get("evalue") for o in inside if o.get("output_type") == "error"]
    assert not errors, f"the playground raised inside its Output: {errors}"
    figures = [o for o in inside if "image/png" in o.get("data", {})]
    assert len(figures) == 1, f"the playground's Output holds {len(figures)} figures, not 1"
    assert not any(o["output_type"] == "error" for outputs in result["cells"] for o in outputs)


# --- When the repository cannot be reached ----------------------------------------------------------------


@pytest.mark.slow
def test_bootstrap_failure_is_one_sentence(clone, tmp_path):
    """A repository or branch that does not exist: the cell says what it tried, why, and what to do."""
    venv = tmp_path / "venv"
    _sh(sys.executable, "-m", "venv", venv)  # pip, and no optbook
    for url, branch, reason in [
        ("file:///nonexistent/optbook", "main", "does not appear to be a git repository"),
        (f"file://{clone}", "no-such-branch", "did not match any file(s) known to git"),
    ]:
        out = _run_cell(venv / "bin" / "python", bootstrap_source(url=url, branch=branch), tmp_path)
        assert out.returncode != 0
        message = out.stderr.strip().splitlines()[-1]
        assert message.startswith(f"RuntimeError: Could not install optbook from git+{url}@{branch} (")
        assert reason in message and "install optbook by hand" in message and "pip install <its folder>" in message
        assert "CalledProcessError" not in out.stderr and "subprocess-exited" not in out.stderr


# --- The client that executes notebooks (make execute, the playground test, gpu-check) -------------------


class _MissedWakeup:
    """A channel whose message has arrived but whose poll only notices it when the poll times out (the stall
    seen with Colab's ipykernel 6.17.1): ``get_msg(timeout)`` returns the message after ``wakes_after`` calls
    or, as pyzmq's last check at a poll's timeout does, on any call. It records the timeouts it was given."""

    def __init__(self, empty_calls: int = 0):
        self.asked, self.empty_calls = [], empty_calls

    async def get_msg(self, timeout=None):
        from queue import Empty

        self.asked.append(timeout)
        if len(self.asked) <= self.empty_calls:
            raise Empty
        return {"msg_type": "execute_reply"}


def test_bounded_polls_wait_one_slice_at_a_time():
    import asyncio
    from queue import Empty

    channel = bounded_polls(_MissedWakeup(), slice_s=0.5)
    assert asyncio.run(channel.get_msg(timeout=600)) == {"msg_type": "execute_reply"}
    assert channel.asked == [0.5]  # a missed wake-up costs one slice, not the cell's 600 s
    channel = bounded_polls(_MissedWakeup(empty_calls=3), slice_s=0.5)
    assert asyncio.run(channel.get_msg(timeout=None))["msg_type"] == "execute_reply"
    assert channel.asked == [0.5] * 4
    channel = bounded_polls(_MissedWakeup(empty_calls=10**6), slice_s=0.01)
    with pytest.raises(Empty):  # nothing arrives: the overall timeout still ends the wait
        asyncio.run(channel.get_msg(timeout=0.05))
    assert 1 < len(channel.asked) and max(channel.asked) <= 0.01


def test_execute_and_nbval_use_the_colab_kernel():
    """The committed outputs are written (make execute) and checked (strict nbval) in the same kernel."""
    import notebooks

    makefile = (ROOT / "Makefile").read_text()
    nbval = re.search(r"^test-notebooks:.*?\n\n", makefile, re.MULTILINE | re.DOTALL)[0]
    assert f"--nbval-kernel-name {KERNEL}" in nbval and "--nbval-current-env" not in nbval
    assert notebooks.KERNEL == KERNEL
    assert re.search(r"^execute: colab-stack$", makefile, re.MULTILINE)


@pytest.mark.slow
def test_execute_names_the_notebook_that_failed(tmp_path):
    """make execute: a failing cell stops with the notebook's path and the error, and the file is unchanged."""
    from notebooks import NotebookError, execute_all

    for name, code in [("good", "print('fine')"), ("bad", "raise ValueError('planted failure')")]:
        cells = [nbformat.v4.new_code_cell(bootstrap_source()), nbformat.v4.new_code_cell(code)]
        nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / f"{name}.ipynb")
    before = (tmp_path / "bad.ipynb").read_text()
    with pytest.raises(NotebookError) as failed:
        execute_all([tmp_path], jobs=2, kernel="python3", timeout=120)
    assert (
        str(failed.value)
        == f"1 notebook(s) failed:\n{tmp_path / 'bad.ipynb'}: CellExecutionError: ValueError: planted failure"
    )
    assert (tmp_path / "bad.ipynb").read_text() == before
    assert nbformat.read(tmp_path / "good.ipynb", as_version=4).cells[1].outputs[0].text == "fine\n"
