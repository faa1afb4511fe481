"""Graders for notebook 01 (region proposals): the recall of a proposal set at an IoU threshold.

Data-flow stage: none (teaching aid). The reference is ``fastrcnn_lite.proposals.proposal_recall``
(all of each image's proposals, one threshold), itself checked against a slow loop in notebook 01
and ``tests/test_proposals.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...proposals import proposal_recall
from .boxes import random_boxes
from .core import Case, exercise, grade

__all__ = ["check_recall"]


def _target(boxes: list, difficult: list | None = None) -> dict:
    """A target dict as ``VOCDataset.load_target`` gives it (boxes, labels, difficult)."""
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)  # (G, 4)
    flags = [False] * len(boxes) if difficult is None else difficult
    return {
        "boxes": boxes,
        "labels": torch.ones(len(boxes), dtype=torch.long),
        "difficult": torch.tensor(flags, dtype=torch.bool),
    }


def _proposals(boxes: list) -> torch.Tensor:
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)  # (P, 4)


def _recall_reference(proposals_list: list, targets: list, iou_thresh: float) -> float:
    """``proposal_recall`` with every proposal of each image and the single threshold asked."""
    most = max([len(p) for p in proposals_list] + [1])
    table = proposal_recall(
        list(proposals_list), list(targets), iou_thresholds=(iou_thresh,), top_n=(most,)
    )
    return float(table.recall[0, 0])


def _close_recall(got, expected) -> str | None:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    try:
        value = float(got)
    except (TypeError, ValueError):
        return f"expected one number (a fraction of gt boxes), got {type(got).__name__}"
    return (
        None
        if abs(value - expected) < 1e-6
        else f"recall {value:.4f} where {expected:.4f} was expected"
    )


@exercise("01", points=2, task="recall of a proposal set at an IoU threshold")
def check_recall(fn: Callable[[list, list, float], float], trials: int = 20) -> str:
    """``fn(proposals_list, targets, iou_thresh) -> float`` must agree with ``proposal_recall``.

    Notebook 01 grades its recall exercise with it.

    ``proposals_list`` is a list of Tensor[P_i, 4] (P_i may be 0), ``targets`` a list of dicts
    with ``boxes`` (Tensor[G_i, 4]), ``labels`` and ``difficult`` (Tensor[G_i] bool); the answer is
    the fraction of non-difficult gt boxes, over all images, that have at least one proposal of
    their image with IoU >= ``iou_thresh``.
    """
    __tracebackhide__ = True
    square = [0.0, 0.0, 10.0, 10.0]
    far = [50.0, 50.0, 60.0, 60.0]
    cases = [
        Case(
            "one gt box and a proposal exactly on it",
            ([_proposals([square])], [_target([square])], 0.5),
            hint="A gt box is found when its best proposal has IoU >= the threshold.",
        ),
        Case(
            "an image with no proposals",
            ([_proposals([square]), _proposals([])], [_target([square]), _target([far])], 0.5),
            hint="An image without proposals (Tensor[0, 4]) finds none of its gt boxes: they count "
            "as missed, and box_iou's max over zero proposals must not be taken.",
        ),
        Case(
            "an image with no gt boxes",
            ([_proposals([square]), _proposals([far])], [_target([square]), _target([])], 0.5),
            hint="An image without gt boxes adds nothing to find: skip it, it must not add a 0 "
            "(or divide by 0).",
        ),
        Case(
            "a difficult gt box that no proposal finds",
            ([_proposals([square])], [_target([square, far], [False, True])], 0.5),
            hint="Difficult gt boxes are left out (target['difficult']), as in VOC evaluation: "
            "neither found nor missed.",
        ),
        Case(
            "a difficult gt box that a proposal finds",
            ([_proposals([far])], [_target([square, far], [False, True])], 0.5),
            hint="A difficult box does not count even when found: here the only box that counts "
            "is missed, so recall is 0.",
        ),
        Case(
            "IoU exactly at the threshold",
            ([_proposals([[0.0, 0.0, 10.0, 20.0]])], [_target([square])], 0.5),
            hint="IoU 100 / 200 = 0.5 exactly: found, since the test is IoU >= threshold (not >).",
        ),
        Case(
            "one proposal covering two gt boxes",
            ([_proposals([square])], [_target([square, [0.0, 0.0, 10.0, 8.0]])], 0.5),
            hint="Recall is not a one-to-one matching: one proposal may find several gt boxes "
            "(here IoU 1 and 0.8).",
        ),
        Case(
            "gt boxes pooled over images (1 of 1 found, 0 of 3 found)",
            (
                [_proposals([square]), _proposals([far])],
                [_target([square]), _target([square, [20.0, 0, 30, 10], [0.0, 20, 10, 30]])],
                0.5,
            ),
            hint="Divide the gt boxes found in all images by all gt boxes (1 / 4), not the mean of "
            "per-image recalls.",
        ),
        Case(
            "another threshold, 0.7",
            ([_proposals([[0.0, 0.0, 10.0, 16.0]])], [_target([square])], 0.7),
            hint="Use the iou_thresh argument: IoU 100 / 160 = 0.625 is found at 0.5, not at 0.7.",
        ),
    ]
    g = torch.Generator().manual_seed(4)
    for trial in range(trials):
        proposals_list, targets = [], []
        for _ in range(3):
            gt = random_boxes(int(torch.randint(0, 5, (), generator=g)), g, torch.float32)
            jitter = gt.repeat(4, 1) + torch.randn(4 * len(gt), 4, generator=g) * 4  # (4 G, 4)
            jitter[:, 2:] = torch.maximum(jitter[:, 2:], jitter[:, :2] + 1)  # valid boxes
            extra = random_boxes(int(torch.randint(0, 6, (), generator=g)), g, torch.float32)
            proposals_list.append(torch.cat([jitter, extra]))
            targets.append(
                {
                    "boxes": gt,
                    "labels": torch.ones(len(gt), dtype=torch.long),
                    "difficult": torch.rand(len(gt), generator=g) < 0.2,
                }
            )
        if sum(int((~t["difficult"]).sum()) for t in targets) == 0:
            continue  # recall of nothing is undefined: not asked
        cases.append(Case("3 random images", (proposals_list, targets, (0.5, 0.7)[trial % 2])))
    return grade(
        fn,
        _recall_reference,
        cases,
        name="check_recall",
        against="fastrcnn_lite.proposals.proposal_recall",
        compare=_close_recall,
        covered="no proposals, no gt, difficult boxes, IoU = threshold, one proposal for two gts",
    )
