"""The book on Colab's stack: the bootstrap cell replaces nothing, and every notebook runs there.

One virtual environment holds the packages Colab has preinstalled (issue 15: numpy 2.0.2, matplotlib 3.10.0,
ipywidgets 7.7.1, ...), except torch, which is the CPU build of the book's own pin (the older torch builds
on the package index are multi-GB CUDA wheels). The tests then run, as a new Colab user would:

1. the bootstrap cell against a clone of this repository's HEAD (``git+file://``), and ``pip freeze``
   of the preinstalled packages must be the same afterwards: a floor in pyproject.toml above Colab's
   version would make pip upgrade it (``test_the_check_catches_a_floor_above_colab`` shows that it would
   fail with ``ipywidgets>=8``);
2. every notebook, in a kernel of that environment: no cell may raise (outputs may differ);
3. the playground's widget code under ipywidgets 7 (there) and 8 (the book's environment);
4. the bootstrap cell against a repository that cannot be reached: it must say so in one sentence.

The environment is cached in ``.venv/colab-stack`` (``OPTBOOK_COLAB_VENV`` moves it) and reused while its
pins and its ``pip freeze`` are unchanged; a clean clone builds it once (pip's cache makes that quick).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
import torch
from conftest import ROOT
from notebooks import bootstrap_source, notebooks

# Colab's preinstalled versions (issue 15), torch excepted. pillow is not in the list: the version
# pinned here is the one the floor in pyproject.toml is tested at.
COLAB_STACK = {
    "numpy": "2.0.2",
    "matplotlib": "3.10.0",
    "ipywidgets": "7.7.1",
    "scikit-learn": "1.6.1",
    "scipy": "1.15.3",
    "tqdm": "4.67.1",
    "ipykernel": "6.17.1",
    "ipython": "7.34.0",
    "pandas": "2.2.2",
    "pillow": "11.3.0",
}
TORCH = torch.__version__.split("+")[0]  # the book's pin; on this index it is the CPU build
VENV = Path(os.environ.get("OPTBOOK_COLAB_VENV", ROOT / ".venv" / "colab-stack"))


def _sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw)


def _clean_env():
    """The environment of a process in the Colab venv: nothing of ours leaks in."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def freeze(python) -> dict[str, str]:
    """name -> version of every installed distribution (pip freeze --all), names canonicalised; a package
    installed from a URL (optbook from git: ``optbook @ git+file://...``) maps to that URL."""
    lines = _sh(python, "-m", "pip", "freeze", "--all", env=_clean_env()).stdout.splitlines()
    pairs = (re.split(r"==| @ ", line, maxsplit=1) for line in lines if "==" in line or " @ " in line)
    return {_canonical(name): version for name, version in pairs}


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The preinstalled packages that an install replaced or removed, as 'name old -> new'."""
    return [f"{n} {v} -> {after.get(n, 'removed')}" for n, v in sorted(before.items()) if after.get(n) != v]


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


def _pins() -> list[str]:
    return [f"torch=={TORCH}"] + [f"{name}=={version}" for name, version in COLAB_STACK.items()]


@pytest.fixture(scope="module")
def stack():
    """(python, pip freeze) of the cached Colab-stack venv, without optbook: reused while its pins and its
    packages are unchanged, else rebuilt."""
    python, record = VENV / "bin" / "python", VENV / "colab-stack.json"
    pins = _pins()
    if python.exists() and record.exists() and json.loads(record.read_text())["pins"] == pins:
        subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "optbook"], capture_output=True, env=_clean_env())
        baseline = json.loads(record.read_text())["freeze"]
        if freeze(python) == baseline:
            return python, baseline
    shutil.rmtree(VENV, ignore_errors=True)
    _sh(sys.executable, "-m", "venv", VENV)
    _sh(python, "-m", "pip", "install", "-q", *pins, env=_clean_env())  # torch's local CPU file, as make setup
    baseline = freeze(python)
    assert {name: baseline.get(name) for name in COLAB_STACK} == COLAB_STACK
    record.write_text(json.dumps({"pins": pins, "freeze": baseline}, indent=1))
    return python, baseline


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


# Run by a python of its own per notebook (two nbclient clients in one process can hang, and forking a pytest
# worker is not safe): the notebook's error, if any, is the process's last line of stderr.
EXECUTE = """
import re, sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient
path, kernel = Path(sys.argv[1]), sys.argv[2]
nb = nbformat.read(path, as_version=4)
try:
    NotebookClient(nb, timeout=600, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}}).execute()
except Exception as exc:
    sys.exit((re.sub(r"\\x1b\\[[0-9;]*m", "", str(exc)).strip().splitlines() or [type(exc).__name__])[-1])
"""


def _execute_in(path: Path, kernel: str, env: dict) -> str | None:
    """Execute one notebook in ``kernel``; None, or the error's last line ("ValueError: ...")."""
    out = subprocess.run([sys.executable, "-c", EXECUTE, path, kernel], capture_output=True, text=True, env=env)
    return None if out.returncode == 0 else (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]


@pytest.fixture(scope="module")
def colab_kernel(bootstrapped, tmp_path_factory):
    """A Jupyter kernel spec, ``colab-stack``, that runs the Colab-stack venv's python (ipykernel 6.17.1):
    its name, and the environment (JUPYTER_PATH, one thread per kernel as in make execute) that finds it."""
    python, _ = bootstrapped
    path = tmp_path_factory.mktemp("jupyter")
    spec = path / "kernels" / "colab-stack"
    spec.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Colab stack", "language": "python"}))
    return "colab-stack", {**os.environ, "JUPYTER_PATH": str(path), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.mark.colab_full
def test_every_notebook_runs_on_colabs_stack(colab_kernel):
    kernel, env = colab_kernel
    paths = notebooks()
    with ThreadPoolExecutor(max_workers=2) as pool:  # two notebooks at a time, each in its own process
        errors = list(pool.map(lambda p: _execute_in(p, kernel, env), paths))
    failed = [f"{p.relative_to(ROOT)}: {e}" for p, e in zip(paths, errors) if e]
    assert not failed, f"{len(failed)} of {len(paths)} notebooks failed on Colab's stack:\n" + "\n".join(failed)


# --- Widgets under ipywidgets 7 and 8 ---------------------------------------------------------------------

WIDGET_CELLS = [
    "import ipywidgets\nfrom IPython.display import display\nfrom optbook.figures import widgets\n"
    "ui = widgets.optimizer_playground()\ndisplay(ui)\nprint('ipywidgets', ipywidgets.__version__)",
    "controls = {c.description: c for c in ui.children[:-1]}\n"
    "controls['landscape'].value = 'Rosenbrock'\ncontrols['optimizer'].value = controls['optimizer'].options[-1]\n"
    "controls['log10_lr'].value = -2.0\ncontrols['steps'].value = 50",
]


# Run by a python of its own, as the notebooks are: prints the kernel's cell outputs and the outputs that the
# playground's Output widget received (nbclient plays the front end), as JSON. Each cell takes seconds; under
# ipykernel 6.17.1 the run sometimes stalls for the client's whole timeout and then completes (cause not found),
# hence a short one.
PLAY = """
import json, sys
import nbformat
from nbclient import NotebookClient
cells, kernel, folder = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
client = NotebookClient(nb, timeout=60, kernel_name=kernel, resources={"metadata": {"path": folder}})
client.execute()
widgets = [s.get("outputs") or [] for s in client.widget_state.values() if s.get("_model_name") == "OutputModel"]
print(json.dumps({"cells": [c.outputs for c in nb.cells], "widgets": widgets}))
"""


@pytest.mark.colab_full
@pytest.mark.parametrize("environment", ["book", "colab"])
def test_playground_draws_under_both_ipywidgets_majors(environment, request, tmp_path):
    """The playground's controls redraw its figure in a live kernel: ipywidgets 8 in the book's environment,
    7.7.1 in Colab's. nbclient plays the front end, so the Output widget's figure is what a reader sees."""
    kernel, env = "python3", dict(os.environ)
    if environment == "colab":
        kernel, env = request.getfixturevalue("colab_kernel")
    command = [sys.executable, "-c", PLAY, json.dumps(WIDGET_CELLS), kernel, tmp_path]
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
