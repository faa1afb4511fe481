"""The grading engine every exercise uses: named cases, a reference, and feedback that teaches.

Data-flow stage: none (teaching aid). A grader (``check_*`` in the sibling modules) builds a list
of :class:`Case` objects, hand-picked edge cases first and then random ones, and calls
:func:`grade`, which runs the learner's function and the package's reference on each case:

- on the first case that differs it raises :class:`GradingError` naming the case in words, the
  input, what was expected and what came (shapes and dtypes included, long tensors shortened),
  and one hint;
- a ``NotImplementedError`` (the student stub) becomes "not answered yet";
- on success it returns one line that says what was checked, e.g.
  ``"check_roi_pool_forward: 37 cases agree with fastrcnn_lite.roi_pool (incl. ties, empty bins)"``.

Every grader registers itself with :func:`exercise` (notebook, points, what the learner writes),
so the README's exercise table and the student-notebook tests read one list: :data:`EXERCISES`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "Case",
    "Exercise",
    "EXERCISES",
    "GradingError",
    "exercise",
    "grade",
    "describe",
    "differ",
]


class GradingError(AssertionError):
    """A learner's answer disagrees with the reference; the message says where and why.

    Notebook 00 to 06: what a wrong answer to a graded exercise raises.
    """


@dataclass
class Case:
    """One input to grade on.

    No notebook: every ``check_*`` grader lists its cases with it.

    name: the case in words ("RoI half outside the map"), shown when it fails.
    args / kwargs: what the learner's function and the reference are called with (each gets its
        own deep copy, so an answer that modifies its input cannot spoil the reference).
    hint: one sentence that points a learner who fails this case in the right direction.
    """

    name: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    hint: str = ""


@dataclass(frozen=True)
class Exercise:
    """A graded exercise: which notebook teaches it, its points and what the learner writes.

    No notebook: :data:`EXERCISES`, ``tools/make_student.py`` and the README's table.
    """

    grader: str
    notebook: str
    points: int
    task: str


EXERCISES: dict[str, Exercise] = {}


def exercise(notebook: str, points: int, task: str) -> Callable[[Callable], Callable]:
    """Register a ``check_*`` function as the grader of an exercise in ``notebook``.

    No notebook: every ``check_*`` grader registers itself with it.
    """

    def register(check: Callable) -> Callable:
        EXERCISES[check.__name__] = Exercise(check.__name__, notebook, points, task)
        return check

    return register


def describe(value: Any, limit: int = 12) -> str:
    """A short, readable rendering of a value: shape and dtype for tensors, at most ``limit`` numbers.

    No notebook: :func:`grade`'s messages (inputs, expected, got).
    """
    if isinstance(value, torch.Tensor):
        head = f"Tensor{list(value.shape)} {str(value.dtype).replace('torch.', '')}"
        flat = value.detach().flatten()
        if flat.numel() == 0:
            return head + " (empty)"
        shown = ", ".join(_num(v) for v in flat[:limit].tolist())
        more = f", ... ({flat.numel() - limit} more)" if flat.numel() > limit else ""
        return f"{head} [{shown}{more}]"
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, (list, tuple)) and len(value) > limit:
        return (
            f"{type(value).__name__} of {len(value)}: "
            + describe(type(value)(value[:limit]))[:-1]
            + ", ...]"
        )
    if isinstance(value, (list, tuple)):
        inner = ", ".join(describe(v, limit) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe(v, limit)}" for k, v in value.items()) + "}"
    return repr(value)


def _num(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, float):
        return str(v)
    return f"{v:.4g}"


def differ(got: Any, expected: Any, atol: float = 1e-5, rtol: float = 1e-5) -> str | None:
    """``None`` when ``got`` matches ``expected``, else one sentence saying how they differ.

    No notebook: :func:`grade` and the graders' compare functions.

    Tensors must match in shape (dtype may differ) and values within ``atol + rtol * |expected|``;
    sequences element by element; numbers within the same tolerance; anything else by ``==``.
    """
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            try:
                got = torch.as_tensor(got)
            except (TypeError, ValueError, RuntimeError):
                return f"expected a Tensor, got {type(got).__name__}"
        if tuple(got.shape) != tuple(expected.shape):
            return f"shape {tuple(got.shape)} where {tuple(expected.shape)} was expected"
        if expected.dtype == torch.bool or not expected.is_floating_point():
            if not torch.equal(got.to(expected.dtype), expected):
                bad = (got.to(expected.dtype) != expected).flatten().nonzero()[0].item()
                return f"values differ (first at flat index {bad})"
            return None
        g, e = got.detach().double(), expected.detach().double()
        close = torch.isclose(g, e, atol=atol, rtol=rtol, equal_nan=True)
        if not bool(close.all()):
            bad = (~close).flatten().nonzero()[0].item()
            return (
                f"values differ at flat index {bad}: {_num(g.flatten()[bad].item())} where "
                f"{_num(e.flatten()[bad].item())} was expected ({int((~close).sum())} of {close.numel()} differ)"
            )
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            n = len(got) if isinstance(got, (list, tuple)) else type(got).__name__
            return f"expected a sequence of {len(expected)} items, got {n}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            why = differ(g, e, atol, rtol)
            if why:
                return f"item {i}: {why}"
        return None
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            g = float(got)
        except (TypeError, ValueError):
            return f"expected a number, got {type(got).__name__}"
        if math.isnan(expected) and math.isnan(g):
            return None
        if not abs(g - expected) <= atol + rtol * abs(expected):
            return f"{_num(g)} where {_num(float(expected))} was expected"
        return None
    return None if got == expected else f"{describe(got)} where {describe(expected)} was expected"


def grade(
    fn: Callable,
    reference: Callable,
    cases: Sequence[Case],
    *,
    name: str,
    against: str,
    compare: Callable[[Any, Any], str | None] = differ,
    covered: str = "",
) -> str:
    """Run ``fn`` and ``reference`` on every case; raise :class:`GradingError` at the first miss.

    No notebook: every ``check_*`` grader runs its cases with it.

    name: the grader's name, e.g. ``"check_nms"``.
    against: what the reference is, e.g. ``"fastrcnn_lite.nms"``, named in the success line.
    compare: ``compare(got, expected) -> None | str`` (default :func:`differ`).
    covered: the edge cases in a few words for the success line, e.g. ``"ties, empty bins"``.
    Returns the success line.
    """
    __tracebackhide__ = True  # IPython and pytest hide this frame: the message is what teaches
    if not callable(fn):
        raise GradingError(
            f"{name}: expected your function, got {type(fn).__name__} ({describe(fn)})."
        )
    for number, case in enumerate(cases, 1):
        expected = reference(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        try:
            got = fn(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        except NotImplementedError:
            raise GradingError(
                f"{name}: not answered yet. Replace `raise NotImplementedError()` in the exercise "
                "cell with your code, run that cell, then run this one again."
            ) from None
        except Exception as error:  # the learner's code crashed: say on which input
            raise GradingError(
                _message(
                    name,
                    number,
                    case,
                    f"your function raised {type(error).__name__}: {error}",
                    None,
                )
            ) from None
        why = compare(got, expected)
        if why:
            raise GradingError(_message(name, number, case, why, (expected, got)))
    extra = f" (incl. {covered})" if covered else ""
    return f"{name}: all {len(cases)} cases agree with {against}{extra}"


def _message(name: str, number: int, case: Case, why: str, pair: tuple | None) -> str:
    inputs = ", ".join(
        [describe(a) for a in case.args] + [f"{k}={describe(v)}" for k, v in case.kwargs.items()]
    )
    lines = [f"{name}: case {number}, {case.name}: {why}.", f"  input:    {inputs}"]
    if pair is not None:
        lines += [f"  expected: {describe(pair[0])}", f"  got:      {describe(pair[1])}"]
    if case.hint:
        lines.append(f"  hint:     {case.hint}")
    return "\n".join(lines)
