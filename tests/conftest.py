"""Shared paths and fixtures. The book's upkeep tools (book/_tools) are importable from every test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "optbook"
TOOLS = ROOT / "book" / "_tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))


@pytest.fixture
def root() -> Path:
    return ROOT


# --- Devices: how a test runs on a GPU (make gpu-check) --------------------------------------------------
# A test that takes the ``device`` fixture runs on the device OPTBOOK_DEVICE names ("cpu" when unset):
# on the CPU in make test, on CUDA in make gpu-check, which selects such tests by the marker ``device``
# that the hook below gives them. A test that only makes sense on a GPU says @pytest.mark.cuda: it is
# skipped without one. Parametrising a test on "device" yourself also marks it.
def selected_device():
    import torch

    name = os.environ.get("OPTBOOK_DEVICE", "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"OPTBOOK_DEVICE must be 'cpu' or 'cuda', got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"OPTBOOK_DEVICE is 'cuda' but torch {torch.__version__} sees no CUDA device")
    return torch.device(name)


@pytest.fixture
def device():
    return selected_device()


def pytest_collection_modifyitems(config, items):
    cuda_tests = [item for item in items if item.get_closest_marker("cuda")]
    if cuda_tests:
        import torch

        if not torch.cuda.is_available():
            for item in cuda_tests:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (run by make gpu-check)"))
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)
