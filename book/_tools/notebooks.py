"""Upkeep of the book's notebooks: the shared bootstrap cell, execution in place, exercises from solutions.

    python book/_tools/notebooks.py execute [PATH ...]   # re-execute notebooks in place (folders or files)
    python book/_tools/notebooks.py exercises            # regenerate exercises/ from solutions/, executed
    python book/_tools/notebooks.py bootstrap            # rewrite every bootstrap cell from _config.yml

The repository URL lives in one place, ``_config.yml`` (``repository.url`` and ``repository.branch``):
the Colab buttons of the book read it there, and :func:`bootstrap_source` writes it into the first code
cell of every notebook. This module is for the book's maintainers; readers never need it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_FOLDERS = ("chapters", "exercises", "solutions")
BOOTSTRAP_MARKER = "# Bootstrap"
SOLUTION_BEGIN, SOLUTION_END, STUB_PREFIX = "### BEGIN SOLUTION", "### END SOLUTION", "# stub: "
DEFAULT_STUB = "return None  # YOUR CODE HERE"


def repository(config: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """The book's repository URL and branch, from ``_config.yml``."""
    import yaml

    repo = yaml.safe_load(config.read_text())["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


# The cell's text; <SPEC> becomes the pip requirement ``git+URL@BRANCH``. ruff formats it as it stands here
# (``make lint`` checks notebooks), so keep it within 120 columns and ruff-clean.
_BOOTSTRAP_CELL = """\
# Bootstrap, the same in every notebook: use optbook where it is installed, else install it
# from the book's repository (as on Colab). Its requirements are loose: what Colab has stays as it is.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("optbook") is None:
    source = "<SPEC>"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], capture_output=True, text=True)
    if pip.returncode != 0:  # say why in one sentence (git's or pip's own reason), not pip's traceback
        why = [s.strip() for s in pip.stderr.splitlines() if s.strip().startswith(("fatal:", "error: ", "ERROR:"))]
        why = [s for s in why if "subprocess-exited" not in s] or [f"pip exited with code {pip.returncode}"]
        raise RuntimeError(
            f"Could not install optbook from {source} ({why[0]}). Check that this machine is online and that "
            "the repository and branch exist, or install optbook by hand: download the repository, run "
            "`pip install <its folder>` (in a cell: `!pip install <its folder>`), and run this cell again."
        ) from None
    importlib.invalidate_caches()
import optbook

device = optbook.setup(seed=0)"""


def bootstrap_source(url: str | None = None, branch: str | None = None) -> str:
    """The first code cell of every notebook, pointing at the book's repository (or the one given).

    Where optbook is missing (Colab) the cell pip-installs it from the repository. Its requirements are
    floors that Colab's preinstalled packages meet, so nothing already there is replaced
    (``tests/test_colab_bootstrap.py`` proves it on Colab's stack). When pip fails, the cell raises one
    sentence: what it tried, git's or pip's reason, and how to install optbook by hand.
    """
    if url is None:
        url, default_branch = repository()
        branch = branch or default_branch
    return _BOOTSTRAP_CELL.replace("<SPEC>", f"git+{url}@{branch or 'main'}")


def notebooks(paths=NOTEBOOK_FOLDERS) -> list[Path]:
    found = []
    for path in map(Path, paths):
        path = path if path.is_absolute() else ROOT / path
        found += [path] if path.suffix == ".ipynb" else sorted(path.rglob("*.ipynb"))
    return [p for p in found if ".ipynb_checkpoints" not in p.parts and "_build" not in p.parts]


def first_code_cell(nb):
    return next(cell for cell in nb.cells if cell.cell_type == "code")


def sync_bootstrap(nb) -> bool:
    """Make the notebook's first code cell the bootstrap cell; True when it changed."""
    cell = first_code_cell(nb)
    if not cell.source.startswith(BOOTSTRAP_MARKER):
        raise ValueError("the first code cell of a book notebook must be the bootstrap cell")
    new = bootstrap_source()
    changed = cell.source != new
    cell.source = new
    return changed


KERNEL = "colab-stack"  # book/_tools/colab_stack.py: Colab's packages, optbook from lib/ (make colab-stack)
POLL_SLICE = 1.0  # seconds: the longest a client waits on one socket poll (see bounded_polls)


def bounded_polls(channel, slice_s: float = POLL_SLICE):
    """Make ``channel.get_msg(timeout)`` poll its socket in slices of at most ``slice_s`` seconds.

    nbclient's asyncio client (jupyter_client over zmq.asyncio) can miss the wake-up of a message that has
    already arrived: the reply then sits in the socket until the poll's own timeout, when pyzmq polls once
    more and finds it. With Colab's ipykernel 6.17.1 this happened to about one playground run in four, for
    the cell's whole timeout (600 s in make execute); the kernel's own timestamps show the reply sent on
    time. Polling in short slices bounds such a stall to one slice; the overall timeout is unchanged.
    """
    from queue import Empty
    from time import monotonic

    get = channel.get_msg

    async def get_msg(timeout: float | None = None):
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            left = slice_s if deadline is None else min(slice_s, max(0.0, deadline - monotonic()))
            try:
                return await get(timeout=left)
            except Empty:
                if deadline is not None and monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg
    return channel


def notebook_client(nb, kernel: str = KERNEL, timeout: int = 600, **kw):
    """An nbclient ``NotebookClient`` whose shell and IOPub polls are bounded (:func:`bounded_polls`), and for
    which outputs missing after a cell's reply are an error (nbclient's default only logs a warning)."""
    from nbclient import NotebookClient

    class Client(NotebookClient):
        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            bounded_polls(kc.shell_channel)
            bounded_polls(kc.iopub_channel)
            return kc

    # an output that has not come 4 s after the cell's reply is an error, not a silently shorter notebook
    kw.setdefault("raise_on_iopub_timeout", True)
    return Client(nb, timeout=timeout, kernel_name=kernel, **kw)


class NotebookError(RuntimeError):
    """A notebook failed to execute: its path and the error's last line."""


def execute(path: Path, timeout: int = 600, kernel: str = KERNEL) -> None:
    """Run a notebook top to bottom in a fresh ``kernel`` and save it with its outputs.

    Each cell may take ``timeout`` seconds; a failing or timed-out cell raises NotebookError naming the
    notebook, and the file is left as it was.
    """
    nb = nbformat.read(path, as_version=4)
    sync_bootstrap(nb)
    nb.metadata.pop("widgets", None)
    client = notebook_client(
        nb, kernel, timeout, record_timing=False, resources={"metadata": {"path": str(path.parent)}}
    )
    try:
        client.execute()
    except Exception as exc:  # any failure of any cell, reported by the notebook's name
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
        last = text.splitlines()[-1] if text else type(exc).__name__
        raise NotebookError(f"{_shown(path)}: {type(exc).__name__}: {last}") from None
    tidy_streams(nb)
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, path)


def _shown(path: Path) -> str:
    path = Path(path).resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


_CARRIAGE_RETURN = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)


def tidy_streams(nb) -> None:
    """Merge consecutive stream outputs of a cell and resolve carriage returns, keeping the output order.

    A progress bar redraws itself with ``\r``: Jupyter shows only its last state, but the book's HTML
    would show every redraw. The text stored is what a reader of the notebook sees, and it compares
    equal under nbval (which merges and resolves streams the same way before comparing).
    """
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged = []
        for output in cell.outputs:
            previous = merged[-1] if merged else None
            if (
                output.output_type == "stream"
                and previous is not None
                and previous.output_type == "stream"
                and previous.name == output.name
            ):
                previous.text += output.text
            else:
                merged.append(output)
        for output in merged:
            if output.output_type == "stream":
                output.text = _CARRIAGE_RETURN.sub("", output.text)
        cell.outputs = merged


def _execute_one(args) -> tuple[Path, str | None]:
    path, kernel, timeout = args
    try:
        execute(path, timeout, kernel)
    except NotebookError as exc:
        return path, str(exc)
    return path, None


def execute_all(paths, jobs: int = 2, kernel: str = KERNEL, timeout: int = 600) -> None:
    """Execute notebooks ``jobs`` at a time, each client in a process of its own (two nbclient clients in
    threads of one process can both wait forever); raise NotebookError listing every notebook that failed."""
    failed = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for path, error in pool.map(_execute_one, [(p, kernel, timeout) for p in notebooks(paths)]):
            print(f"executed {_shown(path)}" if error is None else f"FAILED {error}", flush=True)
            failed += [error] if error else []
    if failed:
        raise NotebookError(f"{len(failed)} notebook(s) failed:\n" + "\n".join(failed))


# --- Exercises --------------------------------------------------------------------------------------


def strip_solution(source: str) -> str:
    """Replace each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block by its stub.

    The stub is the block's ``# stub: `` lines (prefix removed), or ``return None  # YOUR CODE HERE``
    at the block's indentation when it has none: stubs run without error, and a check then reports the
    exercise as not attempted yet.
    """
    out, block, indent = [], None, ""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == SOLUTION_BEGIN:
            block, indent = [], line[: len(line) - len(line.lstrip())]
        elif stripped == SOLUTION_END:
            if block is None:
                raise ValueError(f"{SOLUTION_END} without {SOLUTION_BEGIN}")
            out += block or [indent + DEFAULT_STUB]
            block = None
        elif block is not None:
            if stripped.startswith(STUB_PREFIX):
                block.append(line[: len(line) - len(line.lstrip())] + stripped[len(STUB_PREFIX) :])
        else:
            out.append(line)
    if block is not None:
        raise ValueError(f"{SOLUTION_BEGIN} without {SOLUTION_END}")
    return "\n".join(out)


STUB_KEY = "exercise_stub"  # a solution cell's metadata: the code the exercise shows in its place
TITLE = re.compile(r"^# (Solution|Exercise): ", re.MULTILINE)


def solution_cell_stub(cell) -> str | None:
    """The exercise's version of a solution code cell: its ``exercise_stub`` metadata, or its markers stripped.

    Solutions keep the stub in the cell's metadata, so that readers of the solution page see clean code;
    the ``### BEGIN SOLUTION`` markers are still understood (``migrate_markers`` moves them to metadata).
    """
    if STUB_KEY in cell.get("metadata", {}):
        return cell.metadata[STUB_KEY]
    if SOLUTION_BEGIN in cell.source:
        return strip_solution(cell.source)
    return None


def migrate_markers(cell) -> bool:
    """Move a code cell's ``### BEGIN/END SOLUTION`` and ``# stub:`` lines into its metadata; True if it had any."""
    if cell.cell_type != "code" or SOLUTION_BEGIN not in cell.source:
        return False
    stub = strip_solution(cell.source)
    keep = [
        line
        for line in cell.source.splitlines()
        if line.strip() not in (SOLUTION_BEGIN, SOLUTION_END) and not line.strip().startswith(STUB_PREFIX)
    ]
    cell.metadata[STUB_KEY] = formatted(stub)
    cell.source = formatted("\n".join(keep))
    return True


def formatted(source: str) -> str:
    """``source`` as ruff's formatter writes it (the project's settings), or unchanged where ruff cannot."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(ROOT / "exercises" / "cell.py"), "-"],
            input=source,
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
    except OSError:
        return source
    return done.stdout.rstrip("\n") if done.returncode == 0 else source


def titles(solution_title: str) -> tuple[str, str]:
    """("Exercise: ...", "Solution: ...") from a solution notebook's H1 (either prefix, or none)."""
    topic = TITLE.sub("", solution_title.strip().removeprefix("# ").strip(), count=1)
    topic = re.sub(r"^(Solution|Exercise): ", "", topic)
    return f"Exercise: {topic}", f"Solution: {topic}"


def _h1(nb) -> tuple[int, str] | None:
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return k, line
    return None


def solution_link(solution_path_name: str, solution_title: str) -> str:
    """The exercise's last cell: a clearly labelled link to its solution page."""
    return (
        "```{admonition} When you are done: the solution\n"
        ":class: tip\n"
        "When every check says [correct], or when you are stuck, compare your work with the worked solution, "
        f"code and reasoning: **[{solution_title}](../solutions/{solution_path_name})**.\n"
        "```"
    )


def exercise_from_solution(solution, name: str | None = None) -> nbformat.NotebookNode:
    """The student's notebook: solution code replaced by stubs (formatted as ruff would), cells tagged
    ``solution`` removed, the H1 "Exercise: ...", and a labelled link to the solution at the end."""
    nb = nbformat.v4.new_notebook(metadata=solution.metadata)
    found = _h1(solution)
    exercise_title, solution_title = titles(found[1] if found else "# this exercise")
    for cell in solution.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "solution" in tags:
            continue
        if cell.cell_type == "code":
            stub = solution_cell_stub(cell)
            new = nbformat.v4.new_code_cell(formatted(stub) if stub is not None else cell.source)
            new.metadata = {k: v for k, v in cell.metadata.items() if k in ("tags",)}
        else:
            source = cell.source
            if found and cell is solution.cells[found[0]]:
                source = source.replace(found[1], f"# {exercise_title}", 1)
            new = nbformat.v4.new_markdown_cell(source, metadata=dict(cell.metadata))
        nb.cells.append(new)
    if name:
        nb.cells.append(nbformat.v4.new_markdown_cell(solution_link(name, solution_title)))
    return nb


def exercise_path(solution_path: Path) -> Path:
    return ROOT / "exercises" / solution_path.name


def sources(nb) -> list[tuple[str, str]]:
    """What the sync test compares: each cell's type and source."""
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def make_exercises(run: bool = True, only=None) -> list[Path]:
    """Regenerate (and execute) the exercises whose solution changed; ``only`` limits it to some solutions."""
    written = []
    for solution_path in notebooks(only or ["solutions"]):
        solution = nbformat.read(solution_path, as_version=4)
        target = exercise_path(solution_path)
        exercise = exercise_from_solution(solution, solution_path.name)
        if target.exists() and sources(nbformat.read(target, as_version=4)) == sources(exercise):
            continue  # unchanged: keep its executed outputs
        target.parent.mkdir(exist_ok=True)
        nbformat.write(exercise, target)
        written.append(target)
    if run and written:
        execute_all(written)
    for stale in set(notebooks(["exercises"])) - {exercise_path(p) for p in notebooks(["solutions"])}:
        stale.unlink()
        print(f"removed {stale.relative_to(ROOT)} (its solution is gone)")
    return written


def rewrite_bootstraps() -> None:
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        if sync_bootstrap(nb):
            nbformat.write(nb, path)
            print(f"updated the bootstrap cell of {path.relative_to(ROOT)} (re-execute it: make execute NB={path})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("execute", help="re-execute notebooks in place")
    run.add_argument("paths", nargs="*", default=list(NOTEBOOK_FOLDERS))
    run.add_argument("--jobs", type=int, default=2)
    run.add_argument("--kernel", default=KERNEL, help=f"the Jupyter kernel to run them in (default {KERNEL})")
    run.add_argument("--timeout", type=int, default=600, help="seconds a cell may take (default 600)")
    ex = sub.add_parser("exercises", help="regenerate exercises/ from solutions/")
    ex.add_argument("solutions", nargs="*", help="only these solution notebooks (default: all)")
    sub.add_parser("bootstrap", help="rewrite every bootstrap cell from _config.yml")
    args = parser.parse_args(argv)
    try:
        if args.command == "execute":
            execute_all(args.paths, args.jobs, args.kernel, args.timeout)
        elif args.command == "exercises":
            written = make_exercises(only=args.solutions or None)
            print("\n".join(f"wrote {p.relative_to(ROOT)}" for p in written) or "exercises are up to date")
        else:
            rewrite_bootstraps()
    except NotebookError as exc:  # one line per failed notebook, not a traceback
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
