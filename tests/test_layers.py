"""The library's layers: imports only point down (core <- lab <- figures/apps/checks), and the core is light.

The layer test reads every module's import statements (relative and absolute) from the source, so it
fails on an upward arrow even in a function body that no other test happens to run.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from conftest import LIB

import optbook

# A layer may import from itself and from the layers listed for it.
ALLOWED = {
    "core": {"core"},
    "lab": {"core", "lab"},
    "figures": {"core", "lab", "figures"},
    "apps": {"core", "lab", "apps"},
    "checks": {"core", "lab", "checks"},
}


def optbook_imports(path, tree=None):
    """(line, layer imported) for every import of an optbook layer in the module at ``path``."""
    tree = tree or ast.parse(path.read_text())
    package = path.relative_to(LIB.parent).with_suffix("").parts[:-1]  # ("optbook", "core")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [a.name] for a in node.names] if len(target) == 1 else [target]
            else:
                target = (node.module or "").split(".")
                names = [target + [a.name] for a in node.names] if target == ["optbook"] else [target]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        else:
            continue
        for parts in names:
            if parts[0] == "optbook" and len(parts) > 1:
                # a short name of the package (optbook.plots) belongs to the layer of the module behind it
                short = optbook._SHORT_NAMES.get(parts[1])
                found.append((node.lineno, short[0].split(".")[1] if short else parts[1]))
    return found


def layer_violations(path, source=None):
    layer = path.relative_to(LIB).parts[0]
    tree = ast.parse(source) if source is not None else None
    return [
        (line, target)
        for line, target in optbook_imports(path, tree)
        if target in ALLOWED and target not in ALLOWED[layer]
    ]


MODULES = sorted(p for p in LIB.rglob("*.py") if p.relative_to(LIB).parts[0] in ALLOWED)


def test_every_module_is_in_a_layer():
    loose = [p.name for p in LIB.glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside the layers: {loose}"
    assert {p.relative_to(LIB).parts[0] for p in MODULES} == set(ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(LIB)) for p in MODULES])
def test_imports_point_down(path):
    assert not layer_violations(path), f"{path.relative_to(LIB)} imports upward: {layer_violations(path)}"


@pytest.mark.parametrize(
    "source",
    [
        "from ..figures import plots\n",  # relative
        "from optbook.apps import bench\n",  # absolute
        "def f():\n    from ..checks.engine import passed\n",  # hidden in a function
        "from .. import widgets\n",  # a short name of the package
    ],
)
def test_an_upward_arrow_is_caught(source):
    """The test above is not vacuous: a core module importing figures, apps or checks is reported."""
    assert layer_violations(LIB / "core" / "optim.py", source)


def test_a_downward_arrow_is_allowed():
    assert not layer_violations(LIB / "figures" / "plots.py", "from ..core import optim\nfrom ..lab import catalog\n")


# What the core must not pull in (torch itself may load others, such as tqdm, on its own).
HEAVY = ("matplotlib", "PIL", "sklearn", "ipywidgets", "IPython")


def heavy_modules_loaded_by(statement: str) -> str:
    code = f"import sys; {statement}; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize(
    "statement", ["import optbook.core.optim", "from optbook import optim, transforms", "import optbook.lab.run"]
)
def test_the_core_imports_torch_only(statement):
    assert heavy_modules_loaded_by(statement) == "[]"


def test_the_weight_test_would_notice_a_heavy_import():
    assert "matplotlib" in heavy_modules_loaded_by("import optbook.figures.plots")
