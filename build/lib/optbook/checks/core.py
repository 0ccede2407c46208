"""The machinery every exercise check shares: verdicts, safe calls, tensor comparison, known mistakes.

A check never shows a bare traceback. It returns a :class:`Verdict`, which prints as one clear
message: what was verified, or what exactly is wrong, or that the exercise is not attempted yet.

The usual pattern of an implementation check:

    def check_adagrad_update(student):
        return compare_function(
            student, reference, cases=[...],          # inputs to try, as tuples of arguments
            mistakes={"the accumulator is averaged instead of summed": averaged_version, ...},
            what="AdaGrad update",
        )

``compare_function`` calls the student's function on each case (catching exceptions), checks type,
shape and dtype, compares against the reference, and when the answer is wrong looks for a known
mistake whose output the student's matches: then it names that mistake.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
_ICONS = {PASSED: "[correct]", FAILED: "[not yet]", NOT_ATTEMPTED: "[not attempted yet]"}


@dataclass
class Verdict:
    """The answer of a check: ``status`` is passed, failed or not attempted; ``message`` says why."""

    status: str
    message: str
    mistake: str | None = None  # the name of the known mistake, when one was recognised

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"{_ICONS[self.status]} {self.message}"

    def _repr_html_(self) -> str:
        colour = {PASSED: "#1b7f3b", FAILED: "#b3261e", NOT_ATTEMPTED: "#7a5a00"}[self.status]
        from html import escape

        return (
            f'<div style="border-left:4px solid {colour};padding:.4em .8em;margin:.3em 0">'
            f'<b style="color:{colour}">{escape(_ICONS[self.status])}</b> {escape(self.message)}</div>'
        )


def passed(message: str) -> Verdict:
    return Verdict(PASSED, message)


def failed(message: str, mistake: str | None = None) -> Verdict:
    return Verdict(FAILED, message, mistake)


def not_attempted(what: str) -> Verdict:
    return Verdict(
        NOT_ATTEMPTED, f"{what}: not attempted yet. Replace the line marked YOUR CODE HERE, then run this check again."
    )


def is_unanswered(value) -> bool:
    """A stub's answer: None, ``...`` or NotImplemented."""
    return value is None or value is Ellipsis or value is NotImplemented


class StudentError(Exception):
    """The student's code raised; the message says where, in their words."""


def call_student(fn: Callable, *args, **kwargs):
    """Call the student's function; turn an exception into a readable StudentError."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - anything the student's code raises is reported, not re-raised
        frames = [
            f
            for f in traceback.extract_tb(err.__traceback__)
            if f.filename.startswith("<") or "ipykernel" in f.filename
        ]
        where = f" (line {frames[-1].lineno} of your cell: `{frames[-1].line}`)" if frames and frames[-1].line else ""
        raise StudentError(f"your code raised {type(err).__name__}: {err}{where}") from None


def describe_difference(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-6, atol: float = 1e-9) -> str:
    """Where two tensors first differ, and by how much."""
    g64, e64 = got.double().reshape(-1), expected.double().reshape(-1)
    wrong = ~torch.isclose(g64, e64, rtol=rtol, atol=atol, equal_nan=True)
    flat = int(wrong.nonzero()[0].item()) if wrong.any() else int((g64 - e64).abs().argmax().item())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), expected.shape)) if expected.dim() else ()
    g, e = g64[flat].item(), e64[flat].item()
    where = f"at index {index} " if index else ""
    return f"{where}you have {g:.6g} where the answer is {e:.6g} (off by {abs(g - e):.3g})"


def as_tensor_answer(value, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """Check that an answer is a tensor of the expected shape and dtype; raise ValueError with a clear message."""
    if isinstance(value, (int, float)) and like is not None and like.dim() == 0:
        value = torch.tensor(value, dtype=like.dtype)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} should be a torch.Tensor, but it is {type(value).__name__}")
    if like is not None:
        if value.shape != like.shape:
            raise ValueError(f"{name} has shape {tuple(value.shape)}, but it should have shape {tuple(like.shape)}")
        if value.dtype != like.dtype:
            raise ValueError(f"{name} has dtype {value.dtype}, but it should be {like.dtype}")
        if not torch.isfinite(value).all() and torch.isfinite(like).all():
            raise ValueError(f"{name} contains inf or NaN where the answer is finite")
    return value


def _flatten(result) -> list:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def close(got, expected, rtol: float, atol: float) -> bool:
    return all(torch.allclose(g.double(), e.double(), rtol=rtol, atol=atol) for g, e in zip(got, expected))


def compare_function(
    student: Callable,
    reference: Callable,
    cases: Sequence[tuple],
    *,
    what: str,
    mistakes: dict[str, Callable] | None = None,
    output_names: Sequence[str] = ("the result",),
    rtol: float = 1e-6,
    atol: float = 1e-9,
    verified: str = "",
) -> Verdict:
    """Run ``student`` and ``reference`` on every case and say what is right or wrong.

    ``mistakes`` maps the description of a known mistake to a function that makes it; when the
    student's output matches one of them on every case (and the reference does not), the verdict names it.
    """
    if student is None or not callable(student):
        return failed(f"{what}: expected a function, got {type(student).__name__}")
    for number, case in enumerate(cases, 1):
        expected = _flatten(reference(*_clone(case)))
        try:
            got = call_student(student, *_clone(case))
        except StudentError as err:
            return failed(f"{what}: {err}")
        if is_unanswered(got) or (isinstance(got, (tuple, list)) and any(is_unanswered(g) for g in got)):
            return not_attempted(what)
        got = _flatten(got)
        if len(got) != len(expected):
            return failed(
                f"{what}: your function returns {len(got)} value(s), but it should return {len(expected)} "
                f"({', '.join(output_names)})"
            )
        try:
            got = [as_tensor_answer(g, n, e) for g, n, e in zip(got, output_names, expected)]
        except ValueError as err:
            return failed(f"{what}: {err}")
        if not close(got, expected, rtol, atol):
            mistake = recognise_mistake(student, reference, cases, mistakes or {}, rtol, atol)
            if mistake:
                return failed(f"{what}: {mistake}.", mistake)
            k = next(i for i, (g, e) in enumerate(zip(got, expected)) if not close([g], [e], rtol, atol))
            return failed(
                f"{what}: {output_names[k]} is wrong on test case {number}: "
                f"{describe_difference(got[k], expected[k], rtol, atol)}."
            )
    return passed(f"{what}: correct on all {len(cases)} test cases{verified}.")


def _clone(case):
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in case)


def compare_number(
    value, expected: float, *, what: str, rtol: float = 1e-3, atol: float = 0.0, hints=None, unit: str = ""
) -> Verdict:
    """Check a numeric answer; ``hints`` maps a wrong value to the mistake that produces it."""
    if is_unanswered(value):
        return not_attempted(what)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return failed(f"{what}: expected a number, got {type(value).__name__}")
    if abs(number - expected) <= atol + rtol * abs(expected):
        return passed(f"{what}: {number:.6g}{unit} is right.")
    for wrong, mistake in (hints or {}).items():
        if abs(number - wrong) <= atol + rtol * abs(wrong):
            return failed(f"{what}: {mistake}.", mistake)
    off = abs(number - expected)
    return failed(f"{what}: you have {number:.6g}{unit}, but that is not it (off by {off:.3g}{unit}).")


def _same_answer(got, expected, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """True when two answers agree value by value, an inf or NaN where the other has the same."""
    got, expected = _flatten(got), _flatten(expected)
    if len(got) != len(expected):
        return False
    for g, e in zip(got, expected):
        g, e = (torch.as_tensor(x) if isinstance(x, (int, float)) else x for x in (g, e))
        if not isinstance(g, torch.Tensor) or not isinstance(e, torch.Tensor) or g.shape != e.shape:
            return False
        g64, e64 = g.detach().double(), e.double()
        if not torch.equal(torch.isnan(g64), torch.isnan(e64)) or not torch.equal(torch.isinf(g64), torch.isinf(e64)):
            return False
        finite = torch.isfinite(e64)
        if not torch.allclose(g64[finite], e64[finite], rtol=rtol, atol=atol):
            return False
        if not torch.equal(g64[~finite].nan_to_num(), e64[~finite].nan_to_num()):  # infs of the same sign
            return False
    return True


def recognise_mistake(
    student: Callable,
    reference: Callable,
    cases: Sequence[tuple],
    mistakes: dict[str, Callable],
    rtol: float = 1e-6,
    atol: float = 1e-9,
) -> str | None:
    """The known mistake that ``student`` makes on every case, where it also blows up where the mistake does.

    Unlike the recognition inside :func:`compare_function`, an inf or NaN of the student's counts as
    matching an inf or NaN of the mistake in the same place: a bias correction with ``t - 1`` divides by
    zero at ``t = 1``, and a float16 computation overflows, and both should still be named. A mistake is
    only named when it differs from the reference on at least one case.
    """
    for description, wrong in mistakes.items():
        differs = False
        for case in cases:
            try:
                got = call_student(student, *_clone(case))
            except StudentError:
                return None
            bad, good = wrong(*_clone(case)), reference(*_clone(case))
            if not _same_answer(got, bad, rtol, atol):
                break
            differs = differs or not _same_answer(bad, good, rtol, atol)
        else:
            if differs:
                return description
    return None
