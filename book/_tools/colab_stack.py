"""The Colab-stack environment and its Jupyter kernel, ``colab-stack``: where every notebook is executed.

    python book/_tools/colab_stack.py     # make colab-stack: build or reuse .venv/colab-stack, install the kernel

One virtual environment holds the packages Colab has preinstalled (issue 15), except torch, which is the CPU
build of the book's own pin (the older torch builds on the package index are multi-GB CUDA wheels). The
kernel packages (pyzmq, tornado, jupyter_client, jupyter_core, traitlets) are pinned to Colab's versions as
well: googlecolab/backend-info's ``pip-freeze.txt`` (commit 1764c367, 2026-08-14, the last with numpy 2.0.2).

Then the packages a notebook installs on Colab itself (``KERNEL_EXTRAS``: the Flower cell's
``flwr[simulation]``), installed after the Colab pins, as on Colab; what they replace is recorded.

The kernel ``colab-stack`` (installed into the book's venv, ``.venv/share/jupyter/kernels``) runs that
environment's python with ``PYTHONPATH=lib``: the notebooks import optbook from the working tree, so the
bootstrap cell installs nothing there. ``make execute`` and strict nbval (``make test-notebooks``) both use
this kernel, so the committed outputs are the Colab-stack run and nbval checks them in it.

The environment is reused while its pins and its ``pip freeze`` are unchanged (a record,
``colab-stack.json``, keeps both); otherwise it is rebuilt (pip's cache makes that about two minutes).
``tests/test_colab_bootstrap.py`` uses the same environment for the bootstrap checks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("OPTBOOK_COLAB_VENV", ROOT / ".venv" / "colab-stack"))
KERNEL = "colab-stack"

# Colab's preinstalled versions. The first group is issue 15's list (pillow: the version pyproject.toml's floor
# is tested at); the second, the packages a kernel and its client talk through, from Colab's pip-freeze.txt.
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
    "pyzmq": "26.2.1",
    "tornado": "6.5.7",
    "jupyter-client": "7.4.9",
    "jupyter-core": "5.9.1",
    "traitlets": "5.7.1",
    "packaging": "26.3",
}
# What notebooks install on Colab themselves (chapters/02_applications/03_federated_learning.ipynb, its
# "On Colab only" cell): the same requirement, so the Flower run's outputs are the ones the book shows.
KERNEL_EXTRAS = ["flwr[simulation]==1.42.0"]


def torch_pin() -> str:
    """The book's torch pin (requirements.txt), CPU build on this index."""
    found = re.search(r"^torch==([0-9.]+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    if not found:
        raise ValueError("requirements.txt must pin torch exactly ('torch==X.Y.Z')")
    return found[1]


def pins() -> list[str]:
    return [f"torch=={torch_pin()}"] + [f"{name}=={version}" for name, version in COLAB_STACK.items()]


def clean_env() -> dict[str, str]:
    """The environment of a process in the Colab venv: nothing of ours leaks in."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def _sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def freeze(python) -> dict[str, str]:
    """name -> version of every installed distribution (pip freeze --all), names canonicalised; a package
    installed from a URL (optbook from git: ``optbook @ git+file://...``) maps to that URL."""
    lines = _sh(python, "-m", "pip", "freeze", "--all", env=clean_env()).stdout.splitlines()
    pairs = (re.split(r"==| @ ", line, maxsplit=1) for line in lines if "==" in line or " @ " in line)
    return {canonical(name): version for name, version in pairs}


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The packages of ``before`` that an install replaced or removed, as 'name old -> new'."""
    return [f"{n} {v} -> {after.get(n, 'removed')}" for n, v in sorted(before.items()) if after.get(n) != v]


def record_path(venv: Path = VENV) -> Path:
    return venv / "colab-stack.json"


def ensure(venv: Path = VENV, log=print) -> tuple[Path, dict]:
    """(python, record) of the Colab-stack venv without optbook, built or reused; the kernel installed.

    The record holds ``pins``, ``extras``, ``colab`` (pip freeze after the Colab pins),
    ``extras_replaced`` (what installing KERNEL_EXTRAS replaced of it) and ``freeze`` (the final state).
    """
    python, record = venv / "bin" / "python", record_path(venv)
    wanted = {"pins": pins(), "extras": KERNEL_EXTRAS}
    if python.exists() and record.exists():
        kept = json.loads(record.read_text())
        if {k: kept.get(k) for k in wanted} == wanted:
            # the bootstrap test installs optbook from a clone; the kernel uses the working tree instead
            subprocess.run(
                [python, "-m", "pip", "uninstall", "-q", "-y", "optbook"], capture_output=True, env=clean_env()
            )
            if freeze(python) == kept["freeze"]:
                install_kernel(python)
                return python, kept
            log(f"{venv}: its packages changed since it was built; rebuilding it")
    log(f"building the Colab-stack venv in {venv} (pip's cache makes this about two minutes)")
    shutil.rmtree(venv, ignore_errors=True)
    _sh(sys.executable, "-m", "venv", venv)
    # --no-compile: no .pyc for the ~40k files of torch and ray now; a kernel compiles what it imports, once
    _sh(
        python, "-m", "pip", "install", "-q", "--no-compile", *wanted["pins"], env=clean_env()
    )  # CPU torch, as make setup
    colab = freeze(python)
    wrong = {n: colab.get(n) for n in COLAB_STACK if colab.get(n) != COLAB_STACK[n]}
    if wrong:
        raise RuntimeError(f"the Colab-stack venv did not get Colab's versions: {wrong}")
    _sh(python, "-m", "pip", "install", "-q", "--no-compile", *KERNEL_EXTRAS, env=clean_env())
    final = freeze(python)
    kept = {**wanted, "colab": colab, "extras_replaced": changed(colab, final), "freeze": final}
    record.write_text(json.dumps(kept, indent=1))
    install_kernel(python)
    return python, kept


def install_kernel(python: Path, prefix: Path = Path(sys.prefix)) -> Path:
    """Write the ``colab-stack`` kernel spec into ``prefix`` (the book's venv): Colab's python, optbook from lib/."""
    spec = prefix / "share" / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {
            "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (Colab stack)",
            "language": "python",
            # debugpy's warning about frozen modules would be printed at every kernel start
            "env": {"PYTHONPATH": str(ROOT / "lib"), "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
        },
        indent=1,
    )
    if not (spec / "kernel.json").exists() or (spec / "kernel.json").read_text() != text:
        (spec / "kernel.json").write_text(text)
    return spec


def main() -> int:
    python, record = ensure()
    print(f"kernel {KERNEL}: {python} (ipykernel {record['freeze']['ipykernel']}, optbook from {ROOT / 'lib'})")
    if record["extras_replaced"]:
        print(f"installing {', '.join(KERNEL_EXTRAS)} replaced: {', '.join(record['extras_replaced'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
