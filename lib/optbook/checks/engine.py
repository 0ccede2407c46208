"""The one engine every exercise check uses: verdicts, safe calls, answer reading, known mistakes.

A check never shows a bare traceback. It returns a :class:`Verdict`, which prints as one clear
message: what was verified, or what exactly is wrong, or that the exercise is not attempted yet.

The usual pattern of a check:

    def check_adagrad_update(student):
        return compare_function(
            student, reference, cases=[...],          # inputs to try, as tuples of arguments
            mistakes={"the accumulator is averaged instead of summed": averaged_version, ...},
            what="AdaGrad update",
        )

``compare_function`` calls the student's function on copies of each case that it inspects afterwards
(an argument changed in place is named), reads each answer (a tensor, a number, a list or a numpy
array; never a string), compares it with the reference at a tolerance that follows the answer's dtype,
and when the answer is wrong asks :func:`recognise` for the known mistake whose output the answer
matches. :func:`recognise` is the only place where mistakes are recognised: numbers
(:func:`compare_number`), walks and matrices use it too.
"""

from __future__ import annotations

import inspect
import math
import numbers
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
        NOT_ATTEMPTED,
        f"{what}: not attempted yet. Replace the line marked YOUR CODE HERE, then run this check again.",
    )


def is_unanswered(value) -> bool:
    """A stub's answer: None, ``...`` or NotImplemented."""
    return value is None or value is Ellipsis or value is NotImplemented


class StudentError(Exception):
    """The student's code raised, or changed its input; the message says where, in their words."""


def not_a_function(student, what: str) -> Verdict | None:
    """A readable verdict when ``student`` is not a function (None: the defining cell was not run)."""
    if callable(student):
        return None
    if student is None:
        return failed(f"{what}: expected your function, got None; run the cell that defines it, then this check.")
    return failed(f"{what}: expected a function, got {type(student).__name__}; pass the function itself, no ().")


def _where(err: BaseException) -> str:
    frames = [
        f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith("<") or "ipykernel" in f.filename
    ]
    return f" (line {frames[-1].lineno} of your cell: `{frames[-1].line}`)" if frames and frames[-1].line else ""


def call_student(fn: Callable, *args, arg_names: Sequence[str] | None = None, **kwargs):
    """Call the student's function on copies of ``args``; an exception, or a copy changed in place, is a StudentError."""
    inputs = _clone(args)
    try:
        out = fn(*inputs, **kwargs)
    except Exception as err:  # noqa: BLE001 - anything the student's code raises is reported, not re-raised
        message = str(err).splitlines()[0] if str(err) else ""
        raise StudentError(f"your code raised {type(err).__name__}: {message}{_where(err)}") from None
    for k, (before, after) in enumerate(zip(args, inputs)):
        if isinstance(before, torch.Tensor) and not _identical(before, after):
            name = _argument_name(fn, k, arg_names)
            raise StudentError(
                f"your function changed its argument `{name}` in place; return new tensors instead "
                f"(write `{name} = ...` or `new = ...`, not `{name} += ...`, `{name}[...] = ...` or `{name}.mul_(...)`)"
            )
    return out


def _identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    return torch.equal(a.detach().nan_to_num(7.0), b.detach().nan_to_num(7.0))


def _argument_name(fn, k: int, arg_names) -> str:
    try:
        names = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        names = []
    if k < len(names):
        return names[k]
    return arg_names[k] if arg_names and k < len(arg_names) else f"number {k + 1}"


def _clone(case):
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in case)


# --- Reading an answer -------------------------------------------------------------------------------


def tolerance(dtype: torch.dtype, rtol: float, atol: float, scale: float = 1.0) -> tuple[float, float]:
    """The tolerance for an answer of ``dtype``: at least a few dozen roundings of that dtype."""
    if not dtype.is_floating_point or dtype == torch.float64:
        return rtol, atol
    eps = torch.finfo(dtype).eps
    roundings = 64 if eps < 1e-4 else 2  # float32: a chain of operations; float16: one rounding
    return max(rtol, roundings * eps), max(atol, roundings * eps * scale)


def read_tensor(value, name: str, like: torch.Tensor, *, dtype_required: bool = False) -> torch.Tensor:
    """The answer as a tensor shaped like ``like``; a ValueError with one sentence when it cannot be.

    Lists, tuples and numpy arrays of the right values are accepted (as is a number where one number is
    expected); the dtype only has to match where the exercise's text requires it.
    """
    if isinstance(value, str):
        raise ValueError(f"{name} is the text {value!r}; return a tensor of numbers, not a string")
    if isinstance(value, bool):
        raise ValueError(f"{name} is {value}, a True/False; it should be a tensor of numbers")
    if not isinstance(value, torch.Tensor):
        if isinstance(value, numbers.Number) and like.numel() == 1:
            value = torch.tensor(float(value), dtype=like.dtype).reshape(like.shape)
        elif isinstance(value, numbers.Number):
            raise ValueError(
                f"{name} is the number {value:g}; it should be a torch.Tensor of shape {tuple(like.shape)}"
            )
        else:
            try:
                value = torch.as_tensor(value.copy() if hasattr(value, "copy") else value)
            except (TypeError, ValueError, RuntimeError):
                raise ValueError(f"{name} should be a torch.Tensor, but it is {type(value).__name__}") from None
    value = value.detach().cpu()  # a tensor on the GPU, or one that requires grad, is read as its values
    if value.is_complex():
        raise ValueError(f"{name} has complex numbers ({value.dtype}); it should be real")
    if value.shape != like.shape:
        if value.numel() == like.numel() == 1:
            value = value.reshape(like.shape)
        else:
            raise ValueError(f"{name} has shape {tuple(value.shape)}, but it should have shape {tuple(like.shape)}")
    if dtype_required and value.dtype != like.dtype:
        raise ValueError(
            f"{name} has dtype {_dtype(value.dtype)}, but the exercise asks for {_dtype(like.dtype)}; "
            f"convert it with .to(torch.{_dtype(like.dtype)})"
        )
    if not value.dtype.is_floating_point:
        value = value.to(like.dtype if like.dtype.is_floating_point else torch.float64)
    if not torch.isfinite(value).all() and torch.isfinite(like).all():
        bad = "NaN" if torch.isnan(value).any() else "inf"
        raise ValueError(f"{name} contains {bad} where the answer is finite")
    return value


def read_number(value, name: str) -> float:
    """The answer as one float; a ValueError with one sentence when it is not a number."""
    if isinstance(value, str):
        try:
            float(value)
            how = f": write {value.strip()} without quotes"
        except ValueError:
            how = ""
        raise ValueError(f"expected a number, but {name} is the text {value!r}{how}")
    if isinstance(value, bool):
        raise ValueError(f"expected a number, but {name} is {value}, a True/False")
    if isinstance(value, torch.Tensor) or hasattr(value, "shape"):
        size = int(getattr(value, "numel", lambda: getattr(value, "size", 1))())
        if size != 1:
            raise ValueError(f"{name} has {size} values (shape {tuple(value.shape)}); it should be one number")
        value = value.item() if hasattr(value, "item") else value
    if isinstance(value, (list, tuple)):
        raise ValueError(f"{name} is a {type(value).__name__} of {len(value)} values; it should be one number")
    if isinstance(value, complex):
        raise ValueError(f"{name} is the complex number {value}; it should be real")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} should be a number, but it is {type(value).__name__}") from None


def _dtype(d: torch.dtype) -> str:
    return str(d).removeprefix("torch.")


def describe_difference(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-6, atol: float = 1e-9) -> str:
    """Where two tensors first differ, and by how much."""
    g64, e64 = got.double().reshape(-1), expected.double().reshape(-1)
    wrong = ~torch.isclose(g64, e64, rtol=rtol, atol=atol, equal_nan=True)
    flat = int(wrong.nonzero()[0].item()) if wrong.any() else int((g64 - e64).abs().nan_to_num(0).argmax().item())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), expected.shape)) if expected.dim() else ()
    g, e = g64[flat].item(), e64[flat].item()
    where = f"at index {index} " if index else ""
    return f"{where}you have {g:.6g} where the answer is {e:.6g} (off by {abs(g - e):.3g})"


def _flatten(result) -> list:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def same(got, expected, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """True when two answers agree value by value (an inf or NaN where the other has the same).

    Numbers, tensors, tuples of them; a tensor's tolerance widens to its own dtype's precision.
    """
    if isinstance(expected, (tuple, list)) or isinstance(got, (tuple, list)):
        got, expected = _flatten(got), _flatten(expected)
        return len(got) == len(expected) and all(same(g, e, rtol, atol) for g, e in zip(got, expected))
    try:
        g, e = (_as_tensor(x) for x in (got, expected))
    except (TypeError, ValueError, OverflowError, RuntimeError):
        return False
    if not isinstance(g, torch.Tensor) or not isinstance(e, torch.Tensor) or g.shape != e.shape:
        return False
    if g.is_complex() or e.is_complex():
        return False
    g64, e64 = g.detach().cpu().double(), e.detach().cpu().double()
    if not torch.equal(torch.isnan(g64), torch.isnan(e64)) or not torch.equal(torch.isinf(g64), torch.isinf(e64)):
        return False
    finite = torch.isfinite(e64)
    scale = float(e64[finite].abs().max()) if finite.any() else 1.0
    rtol, atol = tolerance(g.dtype if g.dtype.is_floating_point else torch.float64, rtol, atol, scale)
    if not torch.allclose(g64[finite], e64[finite], rtol=rtol, atol=atol):
        return False
    return torch.equal(g64[~finite].nan_to_num(), e64[~finite].nan_to_num())  # infs of the same sign


def _as_tensor(x):
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (str, bytes, bool)) or x is None:
        raise TypeError("not numbers")
    if isinstance(x, numbers.Real):
        return torch.tensor(float(x), dtype=torch.float64)
    return torch.as_tensor(x.copy() if hasattr(x, "copy") else x)


# --- The one mistake recogniser ----------------------------------------------------------------------


def recognise(
    answers: Sequence,
    cases: Sequence[tuple],
    expected: Sequence,
    mistakes: dict[str, Callable] | None,
    match: Callable = same,
) -> str | None:
    """The known mistake whose outputs equal the student's ``answers`` on every case (and differ from ``expected``).

    ``mistakes`` maps a description to a function that makes the mistake; it is called on copies of each
    case. ``match(answer, wrong_output)`` says when two answers agree; an inf or NaN in the student's
    answer matches one of the mistake's in the same place (a division by zero is named, not hidden).
    """
    for description, wrong in (mistakes or {}).items():
        try:
            outputs = [wrong(*_clone(case)) for case in cases]
        except Exception:  # noqa: BLE001 - a mistake that cannot be made on some case is not this one
            continue
        if all(match(a, o) for a, o in zip(answers, outputs)) and any(
            not match(o, e) for o, e in zip(outputs, expected)
        ):
            return description
    return None


# --- Comparing a function with the reference ---------------------------------------------------------


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
    dtype_required: bool = False,
    arg_names: Sequence[str] | None = None,
) -> Verdict:
    """Run ``student`` and ``reference`` on every case and say what is right or wrong.

    ``mistakes`` maps the description of a known mistake to a function that makes it; when the
    student's answers match one of them on every case (and the reference does not), the verdict names it.
    """
    bad = not_a_function(student, what)
    if bad is not None:
        return bad
    expected_all = [_flatten(reference(*_clone(case))) for case in cases]
    raw = []
    for case in cases:
        try:
            raw.append(call_student(student, *case, arg_names=arg_names))
        except StudentError as err:
            return failed(f"{what}: {err}.")
    parts = [_flatten(r) for r in raw]
    if all(is_unanswered(r) or any(is_unanswered(p) for p in ps) for r, ps in zip(raw, parts)):
        return not_attempted(what)
    problem = None
    answers = []
    for number, (ps, expected) in enumerate(zip(parts, expected_all), 1):
        if len(ps) != len(expected):
            problem = (
                f"your function returns {len(ps)} value(s), but it should return {len(expected)} "
                f"({', '.join(output_names)})"
            )
            break
        try:
            answers.append(
                [read_tensor(p, n, e, dtype_required=dtype_required) for p, n, e in zip(ps, output_names, expected)]
            )
        except ValueError as err:
            problem = f"{err} (test case {number})"
            break
    if problem is None and all(same(a, e, rtol, atol) for a, e in zip(answers, expected_all)):
        return passed(f"{what}: correct on all {len(cases)} test cases{verified}.")
    mistake = recognise(raw, cases, expected_all, mistakes, lambda a, o: same(a, o, rtol, atol))
    if mistake:
        return failed(f"{what}: {mistake}.", mistake)
    if problem:
        return failed(f"{what}: {problem}.")
    number = next(i for i, (a, e) in enumerate(zip(answers, expected_all)) if not same(a, e, rtol, atol))
    got, expected = answers[number], expected_all[number]
    k = next(i for i, (g, e) in enumerate(zip(got, expected)) if not same(g, e, rtol, atol))
    return failed(
        f"{what}: {output_names[k]} is wrong on test case {number + 1}: "
        f"{describe_difference(got[k], expected[k], rtol, atol)}."
    )


def compare_scalar_function(
    student: Callable,
    reference: Callable,
    cases: Sequence[tuple],
    *,
    what: str,
    mistakes: dict[str, Callable] | None = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    show: Callable[[tuple], str] | None = None,
    verified: str = "",
    also_right: Callable | None = None,
    arg_names: Sequence[str] | None = None,
) -> Verdict:
    """Like :func:`compare_function`, for a function that returns one number (an int, a float, a 0-d tensor).

    ``also_right(answer, expected)`` accepts another form of the right answer (a count rounded up, say).
    """
    bad = not_a_function(student, what)
    if bad is not None:
        return bad
    show = show or (lambda case: ", ".join(_fmt(a) for a in case))
    raw = []
    for case in cases:
        try:
            raw.append(call_student(student, *case, arg_names=arg_names))
        except StudentError as err:
            return failed(f"{what}: {err}.")
    if all(is_unanswered(a) for a in raw):
        return not_attempted(what)
    expected = [float(reference(*_clone(case))) for case in cases]
    numbers_, problem = [], None
    for case, got in zip(cases, raw):
        if is_unanswered(got):
            problem = f"your function returns {got!r} for ({show(case)}); it should return a number"
            break
        try:
            numbers_.append(read_number(got, "your answer"))
        except ValueError as err:
            problem = f"for ({show(case)}) {err}" if case else str(err)
            break

    def ok(g, e):
        return _close(g, e, rtol, atol) or (also_right is not None and also_right(g, e))

    if problem is None and all(ok(g, e) for g, e in zip(numbers_, expected)):
        if len(cases) == 1:
            return passed(f"{what}: {numbers_[0]:.6g} is right{verified}.")
        return passed(f"{what}: correct on all {len(cases)} test cases{verified}.")
    mistake = recognise(numbers_ if problem is None else raw, cases, expected, mistakes, _number_match(rtol, atol))
    if mistake:
        return failed(f"{what}: {mistake}.", mistake)
    if problem:
        return failed(f"{what}: {problem}.")
    k = next(i for i, (g, e) in enumerate(zip(numbers_, expected)) if not ok(g, e))
    where = f"for ({show(cases[k])}) " if cases[k] else ""
    return failed(f"{what}: {where}you have {numbers_[k]:.6g} where the answer is {expected[k]:.6g}.")


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    if math.isinf(a) or math.isinf(b) or math.isnan(a) or math.isnan(b):
        return a == b or (math.isnan(a) and math.isnan(b))
    return abs(a - b) <= atol + rtol * abs(b)


def _number_match(rtol, atol):
    def match(a, o):
        try:
            return _close(read_number(a, "a"), read_number(o, "o"), rtol, atol)
        except ValueError:
            return False

    return match


def compare_number(
    value,
    expected: float,
    *,
    what: str,
    rtol: float = 1e-3,
    atol: float = 0.0,
    hints=None,
    unit: str = "",
    decimals: int | None = None,
) -> Verdict:
    """Check a numeric answer; ``hints`` maps a wrong value to the mistake that produces it.

    ``decimals``: the answer may be copied from a printout with that many decimals, so a number within
    half a unit of the last printed decimal is right.
    """
    if is_unanswered(value):
        return not_attempted(what)
    try:
        number = read_number(value, "your answer")
    except ValueError as err:
        return failed(f"{what}: {err}.")
    if decimals is not None:
        atol = max(atol, 0.5 * 10.0**-decimals * (1 + 1e-9))
    match = _number_match(rtol, atol)
    if match(number, expected):
        return passed(f"{what}: {number:.6g}{unit} is right.")
    hints = hints or {}
    mistake = recognise([number], [()], [expected], {m: (lambda w=w: w) for w, m in hints.items()}, match)
    if mistake:
        return failed(f"{what}: {mistake}.", mistake)
    off = abs(number - expected)
    return failed(f"{what}: you have {number:.6g}{unit}, but that is not it (off by {off:.3g}{unit}).")


def _fmt(x) -> str:
    if isinstance(x, (tuple, list)):
        return ", ".join(_fmt(a) for a in x)
    if isinstance(x, torch.dtype):
        return _dtype(x)
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    return f"{x:g}" if isinstance(x, float) else str(x)
