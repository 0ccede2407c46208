"""make gpu-check without a GPU: a dry run that lists every part, and a rehearsal that fails when a part fails."""

import os
import subprocess
import sys

import nbformat
import pytest
from conftest import ROOT
from notebooks import bootstrap_source, notebooks

pytestmark = pytest.mark.slow  # each test starts pytest or Jupyter kernels in a subprocess

SCRIPT = ROOT / "book" / "_tools" / "gpu_check.py"


def _run(*args):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine that has one
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, cwd=ROOT, env=env)


def test_dry_run_without_cuda_lists_what_it_would_do():
    out = _run()
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("gpu-check: dry run (no CUDA device")
    assert "on a GPU it would run, within 450 s, in this order:" in out.stdout  # 8 minutes with the start-up
    for part in ("tests", "cuda-cells", "notebooks", "bench"):
        assert f"gpu-check {part}: would run" in out.stdout
    assert 'OPTBOOK_DEVICE=cuda python -m pytest tests -m "device or cuda"' in out.stdout
    assert "tests/test_device_kernels.py" in out.stdout  # tests that take the device fixture are selected
    listed = [p.relative_to(ROOT).as_posix() for p in notebooks()]
    assert all(f"    {p}\n" in out.stdout for p in listed)
    cuda_part = out.stdout.split("gpu-check cuda-cells:")[1].split("gpu-check notebooks:")[0]
    assert "chapters/02_applications/04_mixed_precision.ipynb" in cuda_part  # the fp16/AMP cells have a CUDA branch


def test_rehearsal_fails_when_a_notebook_fails(tmp_path):
    for name, code in [("good", "print('fine')"), ("bad", "raise ValueError('planted failure')")]:
        cells = [nbformat.v4.new_code_cell(bootstrap_source()), nbformat.v4.new_code_cell(code)]
        nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / f"{name}.ipynb")
    out = _run("--allow-cpu", "--parts", "notebooks", "--notebooks", str(tmp_path), "--out", str(tmp_path / "out"))
    assert out.returncode == 1, out.stdout + out.stderr[-2000:]
    summary = out.stdout.split("summary")[1]
    assert (
        f"gpu-check notebooks: FAIL 1/2 notebooks ran without error on cpu; failed: {tmp_path / 'bad.ipynb'}" in summary
    )
    assert "ValueError: planted failure" in out.stdout
    assert (tmp_path / "out" / "good.ipynb").exists()


def test_rehearsal_stops_at_its_budget(tmp_path):
    """A notebook that would run past the budget is killed and named, and the parts after it are not run."""
    cells = [nbformat.v4.new_code_cell(bootstrap_source()), nbformat.v4.new_code_cell("import time\ntime.sleep(600)")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "slow.ipynb")
    args = ["--allow-cpu", "--parts", "notebooks,bench", "--notebooks", str(tmp_path), "--out", str(tmp_path / "out")]
    out = _run(*args, "--budget", "20")
    assert out.returncode == 1, out.stdout + out.stderr[-2000:]
    summary = out.stdout.split("summary")[1]
    assert f"FAIL {tmp_path / 'slow.ipynb'}: out of time (killed at the end of the budget)" in out.stdout
    assert "gpu-check bench: FAIL not run (out of time: the budget of 20 s is spent)" in summary
