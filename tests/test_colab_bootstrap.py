"""The bootstrap cell, run as a new Colab user would run it.

A fresh virtual environment that has torch (as Colab does) but not optbook runs the bootstrap cell,
with the repository URL pointed at this clone. The cell must install optbook from the repository and
import it, and must leave the torch that was there untouched.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import ROOT
from notebooks import bootstrap_source

pytestmark = pytest.mark.slow  # each test builds a book or a virtual environment


def _sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def colab_like_env(tmp_path_factory):
    venv = tmp_path_factory.mktemp("colab") / "venv"
    _sh(sys.executable, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    # torch as Colab has it: the same version as ours, installed before optbook
    _sh(str(python), "-m", "pip", "install", "--quiet", f"torch=={torch.__version__.split('+')[0]}")
    return python


def test_bootstrap_installs_optbook_without_touching_torch(colab_like_env, tmp_path):
    python = colab_like_env
    head = _sh("git", "-C", str(ROOT), "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    if head == "HEAD":
        pytest.skip("detached HEAD: the bootstrap installs from a branch")
    probe = "import torch, pathlib; p = pathlib.Path(torch.__file__); print(torch.__version__, p, p.stat().st_mtime)"
    before = _sh(str(python), "-c", probe).stdout
    assert _sh(str(python), "-c", "import importlib.util as u; print(u.find_spec('optbook'))").stdout.strip() == "None"

    cell = bootstrap_source(url=f"file://{ROOT}", branch=head)
    script = tmp_path / "first_cell.py"
    script.write_text(
        cell
        + textwrap.dedent("""
        import optbook.transforms
        print("imported", optbook.__version__, "from", optbook.__file__, "on", device)
    """)
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run([str(python), str(script)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "imported 0.1.0" in out.stdout and str(ROOT / "lib") not in out.stdout  # a real install, not our tree
    assert _sh(str(python), "-c", probe).stdout == before, "the bootstrap reinstalled torch"
