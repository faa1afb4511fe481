"""Grader for notebook 06's multi-task loss exercise (Fast R-CNN section 2.3, eq. 1).

Data-flow stage: none (teaching aid) for **heads -> losses**. The reference is
:func:`~fastrcnn_lite.losses.fast_rcnn_loss`. The learner's function:

- ``loss(class_logits, box_deltas, labels, regression_targets, box_loss_weight)`` with
  ``class_logits`` Tensor[R, K + 1], ``box_deltas`` Tensor[R, 4K], ``labels`` Tensor[R] (0..K) and
  ``regression_targets`` Tensor[R, 4] -> dict with the scalars ``loss_cls``, ``loss_box`` and
  ``loss``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ...losses import fast_rcnn_loss
from .core import Case, differ, exercise, grade

__all__ = ["check_multitask_loss"]


def _loss_compare(got, expected) -> str | None:
    if not isinstance(got, dict):
        return f"expected a dict with 'loss_cls', 'loss_box' and 'loss', got {type(got).__name__}"
    for key in ("loss_cls", "loss_box", "loss"):
        if key not in got:
            return f"the dict has no '{key}'"
        value = got[key]
        if isinstance(value, Tensor) and value.dim() != 0:
            return f"'{key}' must be a scalar (a 0-d tensor); got shape {tuple(value.shape)}"
        why = differ(value, expected[key], atol=1e-5, rtol=1e-4)
        if why:
            return f"'{key}': {why}"
    return None


@exercise("06", points=2, task="the multi-task loss: log loss + lambda [u >= 1] smooth L1, per RoI")
def check_multitask_loss(fn: Callable, random_cases: int = 10) -> str:
    """Grade ``fn(class_logits, box_deltas, labels, regression_targets, box_loss_weight)`` -> dict.

    Notebook 06 grades its multi-task loss exercise with it.
    """
    __tracebackhide__ = True
    g = torch.Generator().manual_seed(8)
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 1.5, 0.2], [0.0, 0.3, 2.5], [1.0, 1.0, 1.0]])
    deltas = torch.tensor([
        [9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0],
        [0.2, -0.1, 0.5, 0.0, 7.0, 7.0, 7.0, 7.0],
        [5.0, 5.0, 5.0, 5.0, 0.4, 2.0, -0.3, -3.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ])  # fmt: skip
    targets = torch.tensor(
        [[0.0, 0.0, 0.0, 0.0], [0.1, 0.1, 0.0, 0.5], [0.0, 0.5, 0.2, 0.5], [0.3, -0.2, 0.1, 0.0]]
    )
    cases = [
        Case(
            "all RoIs background: no box term",
            (logits, deltas, torch.zeros(4, dtype=torch.long), targets, 1.0),
            hint="[u >= 1] switches the box term off for background (u = 0): loss_box is 0.",
        ),
        Case(
            "one foreground RoI: only its true class's deltas count",
            (logits[1:2], deltas[1:2], torch.tensor([1]), targets[1:2], 1.0),
            hint="Class u's deltas are columns 4(u - 1) to 4u of box_deltas (background has none).",
        ),
        Case(
            "residuals beyond 1: smooth L1 is linear there",
            (logits[2:3], deltas[2:3], torch.tensor([2]), targets[2:3], 1.0),
            hint="smooth_L1(x) = 0.5 x^2 if |x| < 1, else |x| - 0.5, summed over the 4 coordinates.",
        ),
        Case(
            "both terms averaged over all RoIs, background included",
            (logits, deltas, torch.tensor([0, 1, 2, 1]), targets, 1.0),
            hint="Divide both sums by the number of RoIs R (4 here), not by the foreground count.",
        ),
        Case(
            "lambda = 2",
            (logits, deltas, torch.tensor([0, 1, 2, 1]), targets, 2.0),
            hint="loss = loss_cls + box_loss_weight * loss_box.",
        ),
        Case(
            "large logits (a naive softmax overflows)",
            (logits * 400, deltas, torch.tensor([0, 1, 2, 1]), targets, 1.0),
            hint="exp(800) overflows float32: use F.cross_entropy or log_softmax, not log(softmax).",
        ),
    ]
    for _ in range(random_cases):
        r, classes = 32, 5
        cases.append(
            Case(
                "32 random RoIs, 5 classes",
                (
                    torch.randn(r, classes + 1, generator=g) * 2,
                    torch.randn(r, 4 * classes, generator=g) * 2,
                    torch.randint(0, classes + 1, (r,), generator=g),
                    torch.randn(r, 4, generator=g),
                    1.0,
                ),
            )
        )
    return grade(
        fn,
        fast_rcnn_loss,
        cases,
        name="check_multitask_loss",
        against="fastrcnn_lite.losses.fast_rcnn_loss",
        compare=_loss_compare,
        covered="background RoIs, the true class's deltas, |x| >= 1, per-RoI averaging, large logits",
    )
