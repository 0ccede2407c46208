"""Exercise checks: each says what is right, names a known mistake, or reports "not attempted yet".

``core`` holds the shared machinery (verdicts, safe calls of student code, tensor comparison,
recognition of known mistakes). The checks themselves live in ``implementations`` (update rules
written by the student) and ``concepts`` (the exercises on each idea of the Principles part).
"""

from .core import Verdict, compare_function, compare_number, failed, not_attempted, passed

__all__ = ["Verdict", "compare_function", "compare_number", "failed", "not_attempted", "passed"]
