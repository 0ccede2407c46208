"""Shared paths and fixtures. The book's upkeep tools (book/_tools) are importable from every test."""

from __future__ import annotations

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
