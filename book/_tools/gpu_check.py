"""make gpu-check: everything the book does differently on a GPU, in one command (about 8 minutes on one GPU).

    python book/_tools/gpu_check.py              # on a CUDA machine: run every part; elsewhere: a dry run
    python book/_tools/gpu_check.py --dry-run    # list what would run, run nothing
    python book/_tools/gpu_check.py --allow-cpu --parts notebooks --notebooks PATH   # rehearse a part on the CPU

The parts, each summarised in one line ``gpu-check <part>: PASS|FAIL ...``:

1. ``tests``: the tests that take a device, on CUDA: ``OPTBOOK_DEVICE=cuda pytest -m "device or cuda"``.
   A test joins by taking the ``device`` fixture (tests/conftest.py) or by ``@pytest.mark.cuda``; that is
   how the oracle, the torch-database and the kernel tests (torch's foreach and fused kernels as the
   reference, tests/test_device_kernels.py) run here.
2. ``cuda-cells``: the notebooks with a CUDA configuration (a code cell that tests ``device.type``, such as
   the fp16 and mixed-precision cells), executed on the GPU the bootstrap selects.
3. ``notebooks``: every other notebook, executed the same way.
4. ``bench``: ``python -m optbook.apps.bench``, which times the CPU and then CUDA side by side.

Executed notebooks and the benchmark's output go to ``_build/gpu-check/`` (the committed notebooks are not
touched). The exit status is non-zero when any part fails. Without CUDA (and without ``--allow-cpu``) the
script lists what it would do and exits 0.

It stops within ``--budget`` seconds (default 450, so the whole command ends within 8 minutes): every
command and every notebook runs in a process of its own with the time left as its limit, and is killed
(with its kernel) when that runs out; what did not finish is a FAIL naming it, and the parts not reached
are FAIL "not run (out of time)".
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from notebooks import NOTEBOOK_FOLDERS, ROOT, first_code_cell, notebooks

PARTS = ("tests", "cuda-cells", "notebooks", "bench")
BUDGET = 450  # seconds for all parts together: 8 minutes with room for torch's import and the summary
TEST_MARKERS = "device or cuda"
CUDA_CELL = re.compile(r"device\.type\s*==\s*['\"]cuda['\"]|device\.type\s*!=\s*['\"]cuda['\"]")


def has_cuda_configuration(path: Path) -> bool:
    """True when a code cell (other than the bootstrap) chooses its configuration by ``device.type``."""
    nb = nbformat.read(path, as_version=4)
    bootstrap = first_code_cell(nb)
    return any(c.cell_type == "code" and c is not bootstrap and CUDA_CELL.search(c.source) for c in nb.cells)


def _shown(path: Path) -> str:
    """A notebook's path relative to the root, or absolute when it lies elsewhere."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def plan(paths) -> dict[str, list[str]]:
    """What each part runs: commands for tests and bench, notebook paths (relative to the root) for the others."""
    found = [_shown(p) for p in notebooks(paths)]
    cuda = [p for p in found if has_cuda_configuration(ROOT / p)]
    return {
        "tests": [f'OPTBOOK_DEVICE=cuda {Path(sys.executable).name} -m pytest tests -m "{TEST_MARKERS}" -p no:xdist'],
        "cuda-cells": cuda,
        "notebooks": [p for p in found if p not in cuda],
        "bench": [f"{Path(sys.executable).name} -m optbook.apps.bench"],
    }


def collected_tests() -> str:
    """How many tests, in which files, the tests part selects (pytest --collect-only)."""
    command = [sys.executable, "-m", "pytest", "tests", "-m", TEST_MARKERS, "-p", "no:xdist", "--collect-only", "-q"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    files: dict[str, int] = {}
    for line in result.stdout.splitlines():
        if "::" in line:
            name = line.split("::", 1)[0]
            files[name] = files.get(name, 0) + 1
    if not files:
        return f"no tests (pytest exit {result.returncode})"
    return f"{sum(files.values())} tests: " + ", ".join(f"{n} in {f}" for f, n in sorted(files.items()))


def _line(part: str, ok: bool, detail: str) -> str:
    return f"gpu-check {part}: {'PASS' if ok else 'FAIL'} {detail}"


class Deadline:
    """The time left of the budget; ``run`` is subprocess.run limited to it, killing the process group."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def run(self, command, **kw) -> subprocess.CompletedProcess | None:
        """The finished process, or None when it ran out of time (it and its children are killed)."""
        if self.left() <= 0:
            return None
        with subprocess.Popen(command, start_new_session=True, text=True, **kw) as process:
            try:
                out, err = process.communicate(timeout=self.left())
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the client and the kernel it started
                process.communicate()
                return None
        return subprocess.CompletedProcess(command, process.returncode, out, err)


def run_tests(device: str, out: Path, deadline: Deadline) -> tuple[bool, str]:
    env = {**os.environ, "OPTBOOK_DEVICE": device}
    command = [sys.executable, "-m", "pytest", "tests", "-m", TEST_MARKERS, "-p", "no:xdist", "-q", "-rs"]
    result = deadline.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if result is None:
        return False, "out of time: the tests did not finish within the budget"
    (out / "tests.txt").write_text(result.stdout + result.stderr)
    last = (result.stdout.strip().splitlines() or ["no output"])[-1].strip("= ")
    # exit 5 is "no tests collected": a device run that runs nothing proves nothing
    return result.returncode == 0, f"{last} on {device} (log: {(out / 'tests.txt').relative_to(ROOT)})"


# Run by a python of its own per notebook (make execute's client, with bounded polls): prints the device the
# bootstrap chose; a failure's last line is the error's ("ValueError: ...").
EXECUTE = """
import re, sys
from pathlib import Path
import nbformat
sys.path.insert(0, sys.argv[4])
from notebooks import first_code_cell, notebook_client
source, target, timeout = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
nb = nbformat.read(source, as_version=4)
client = notebook_client(nb, "python3", timeout, resources={"metadata": {"path": str(source.parent)}})
error = None
try:
    client.execute()
except Exception as exc:
    text = re.sub(r"\\x1b\\[[0-9;]*m", "", str(exc)).strip()
    error = text.splitlines()[-1] if text else type(exc).__name__
target.parent.mkdir(parents=True, exist_ok=True)
nbformat.write(nb, target)
text = "".join(o.get("text", "") for o in first_code_cell(nb).get("outputs", []) if o.output_type == "stream")
chosen = re.search(r"computing on (\\w+)", text)
print("device:", chosen.group(1) if chosen else "unknown")
sys.exit(error)
"""


def _execute(path: str, out: Path, timeout: int, deadline: Deadline) -> tuple[str | None, str]:
    """Execute one notebook into ``out``: (error or None, the device its bootstrap chose)."""
    source = ROOT / path
    target = out / (path if not Path(path).is_absolute() else Path(path).name)
    limit = max(1, int(min(timeout, deadline.left())))
    command = [sys.executable, "-c", EXECUTE, source, target, str(limit), Path(__file__).parent]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as make execute: the CPU parts give the committed digits
    result = deadline.run([str(c) for c in command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if result is None:
        return "out of time (killed at the end of the budget)", "unknown"
    chosen = re.search(r"device: (\w+)", result.stdout)
    error = (
        None if result.returncode == 0 else (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
    )
    return error, chosen.group(1) if chosen else "unknown"


def run_notebooks(
    paths: list[str], device: str, out: Path, jobs: int, timeout: int, deadline: Deadline
) -> tuple[bool, str]:
    if not paths:
        return True, "no notebooks"
    failures = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = pool.map(lambda p: _execute(p, out, timeout, deadline), paths)
        for path, (error, chosen) in zip(paths, results):
            if error is None and chosen != device:
                error = f"its bootstrap chose {chosen}, not {device}"
            print(f"  {'ok  ' if error is None else 'FAIL'} {path}" + (f": {error}" if error else ""), flush=True)
            if error:
                failures.append(path)
    detail = f"{len(paths) - len(failures)}/{len(paths)} notebooks ran without error on {device}"
    return not failures, detail + (f"; failed: {', '.join(failures)}" if failures else "")


def run_bench(out: Path, deadline: Deadline) -> tuple[bool, str]:
    command = [sys.executable, "-m", "optbook.apps.bench"]
    result = deadline.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if result is None:
        return False, "out of time: the benchmark did not finish within the budget"
    (out / "bench.txt").write_text(result.stdout + result.stderr)
    print(result.stdout, flush=True)
    return result.returncode == 0, f"exit {result.returncode} (output: {(out / 'bench.txt').relative_to(ROOT)})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="list what would run, run nothing")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no GPU (a rehearsal)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--notebooks", nargs="*", default=list(NOTEBOOK_FOLDERS), help="notebooks or folders")
    parser.add_argument("--jobs", type=int, default=4, help="notebooks executed at a time (default 4)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per notebook cell (default 300)")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "gpu-check", help="where results go")
    parser.add_argument("--budget", type=float, default=BUDGET, help=f"seconds for all parts (default {BUDGET})")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"--parts must name parts among {', '.join(PARTS)}, got {', '.join(unknown)}")

    import torch

    cuda = torch.cuda.is_available()
    work = plan(args.notebooks)
    if args.dry_run or not (cuda or args.allow_cpu):
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        why = "--dry-run" if args.dry_run else f"no CUDA device (torch {torch.__version__}, {build})"
        print(f"gpu-check: dry run ({why}); on a GPU it would run, within {args.budget:.0f} s, in this order:")
        for part in parts:
            print(f"gpu-check {part}: would run {len(work[part])} item(s)")
            for item in work[part]:
                print(f"    {item}")
            if part == "tests":
                print(f"    selecting {collected_tests()} (on this machine's collection)")
        return 0

    device = "cuda" if cuda else "cpu"
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"gpu-check on {torch.cuda.get_device_name(0) if cuda else 'the CPU (rehearsal)'}, torch {torch.__version__}")
    lines, started, deadline = [], time.perf_counter(), Deadline(args.budget)
    for part in parts:
        print(f"--- {part}", flush=True)
        t0 = time.perf_counter()
        if deadline.left() <= 0:
            ok, detail = False, f"not run (out of time: the budget of {args.budget:.0f} s is spent)"
        elif part == "tests":
            ok, detail = run_tests(device, out, deadline)
        elif part == "bench":
            ok, detail = run_bench(out, deadline)
        else:
            ok, detail = run_notebooks(work[part], device, out, args.jobs, args.timeout, deadline)
        lines.append(_line(part, ok, f"{detail} [{time.perf_counter() - t0:.0f} s]"))
        print(lines[-1], flush=True)
    print(f"\nsummary ({time.perf_counter() - started:.0f} s in all):")
    print("\n".join(lines))
    return 0 if all(" PASS " in line for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
