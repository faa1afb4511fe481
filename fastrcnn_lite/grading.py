"""Grader functions for the notebooks' exercises: a learner's function against the package's.

Data-flow stage: none (teaching). Each ``check_*`` runs the learner's function on random and
hand-picked inputs, compares it with the reference implementation in the package (itself
checked against torchvision.ops in tests/), and raises ``AssertionError`` with the first input
where they differ. Exercise cells in the notebooks carry nbgrader's ``### BEGIN SOLUTION`` /
``### END SOLUTION`` markers; ``tools/make_assignments.py`` turns them into student versions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .boxes import box_iou, decode_boxes, encode_boxes, nms

__all__ = ["check_iou_single", "check_nms", "check_encode"]


def _random_boxes(n: int, generator: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 50
    wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 30 + 1
    return torch.cat([xy, xy + wh], dim=1)  # (n, 4)


def check_iou_single(fn: Callable[[tuple, tuple], float], trials: int = 200) -> str:
    """``fn(box_a, box_b) -> float`` for two (x1, y1, x2, y2) tuples must agree with ``box_iou``."""
    g = torch.Generator().manual_seed(0)
    a, b = _random_boxes(trials, g), _random_boxes(trials, g)
    cases = [((0, 0, 10, 10), (20, 20, 30, 30)), ((0, 0, 10, 10), (0, 0, 10, 10))]
    cases += [(tuple(a[i].tolist()), tuple(b[i].tolist())) for i in range(trials)]
    for box_a, box_b in cases:
        expected = float(
            box_iou(
                torch.tensor([box_a], dtype=torch.float64),
                torch.tensor([box_b], dtype=torch.float64),
            )
        )
        got = float(fn(box_a, box_b))
        assert abs(got - expected) < 1e-6, (
            f"IoU of {box_a} and {box_b}: expected {expected:.6f}, got {got:.6f}"
        )
    return f"check_iou_single: all {len(cases)} cases agree with fastrcnn_lite.box_iou"


def check_nms(
    fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor], trials: int = 20
) -> str:
    """``fn(boxes, scores, iou_threshold)`` must keep the same indices, in the same order, as ``nms``."""
    g = torch.Generator().manual_seed(1)
    for t in range(trials):
        boxes = _random_boxes(60, g).float()
        scores = torch.rand(60, generator=g)
        expected = nms(boxes, scores, 0.3)
        got = torch.as_tensor(fn(boxes, scores, 0.3), dtype=torch.long)
        assert torch.equal(got, expected), (
            f"trial {t}: expected kept indices {expected.tolist()}, got {got.tolist()}"
        )
    return f"check_nms: all {trials} random cases agree with fastrcnn_lite.nms"


def check_encode(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """``fn(proposals, targets) -> deltas`` must match ``encode_boxes`` and invert with ``decode_boxes``."""
    g = torch.Generator().manual_seed(2)
    proposals, targets = _random_boxes(100, g), _random_boxes(100, g)
    got = fn(proposals, targets)
    torch.testing.assert_close(
        got, encode_boxes(proposals, targets), msg="deltas differ from encode_boxes"
    )
    torch.testing.assert_close(
        decode_boxes(proposals, got), targets, msg="decode_boxes(proposals, deltas) != targets"
    )
    return "check_encode: deltas match encode_boxes and decode back to the targets"
