"""Graders for notebook 00 (data and boxes): IoU of two boxes, NMS, box deltas both ways.

Data-flow stage: none (teaching aid). The references are ``fastrcnn_lite.boxes``, itself checked
against ``torchvision.ops`` in ``tests/test_boxes.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...boxes import box_iou, decode_boxes, encode_boxes, nms
from .core import Case, exercise, grade

__all__ = ["check_iou_single", "check_nms", "check_encode", "check_decode"]


def random_boxes(n: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """Tensor[n, 4] of valid boxes (x1 < x2, y1 < y2) inside a 80x80 canvas.

    No notebook: the graders' random cases.
    """
    xy = torch.rand(n, 2, generator=generator, dtype=dtype) * 50
    wh = torch.rand(n, 2, generator=generator, dtype=dtype) * 30 + 1
    return torch.cat([xy, xy + wh], dim=1)  # (n, 4)


def _iou_reference(box_a: tuple, box_b: tuple) -> float:
    a = torch.tensor([box_a], dtype=torch.float64)
    b = torch.tensor([box_b], dtype=torch.float64)
    return float(box_iou(a, b))


@exercise("00", points=2, task="IoU of two boxes (x1, y1, x2, y2)")
def check_iou_single(fn: Callable[[tuple, tuple], float], trials: int = 200) -> str:
    """``fn(box_a, box_b) -> float`` for two (x1, y1, x2, y2) tuples must agree with ``box_iou``.

    Notebook 00 grades its IoU exercise with it.
    """
    __tracebackhide__ = True
    cases = [
        Case(
            "disjoint boxes",
            ((0, 0, 10, 10), (20, 20, 30, 30)),
            hint="No overlap: the intersection's width or height is negative; clamp it at 0.",
        ),
        Case(
            "identical boxes",
            ((0, 0, 10, 10), (0, 0, 10, 10)),
            hint="A box overlaps itself completely: IoU 1.",
        ),
        Case(
            "boxes touching along an edge",
            ((0, 0, 10, 10), (10, 0, 20, 10)),
            hint="Touching boxes share a line of zero area: IoU 0.",
        ),
        Case(
            "one box inside the other",
            ((0, 0, 10, 10), (2, 2, 6, 6)),
            hint="IoU = area of the small box / area of the big one.",
        ),
        Case(
            "half overlap",
            ((0, 0, 10, 10), (5, 0, 15, 10)),
            hint="Intersection 50, union 100 + 100 - 50 = 150.",
        ),
    ]
    g = torch.Generator().manual_seed(0)
    a, b = random_boxes(trials, g), random_boxes(trials, g)
    cases += [
        Case("random boxes", (tuple(a[i].tolist()), tuple(b[i].tolist()))) for i in range(trials)
    ]
    return grade(
        fn,
        _iou_reference,
        cases,
        name="check_iou_single",
        against="fastrcnn_lite.box_iou",
        compare=_close_number,
        covered="disjoint, touching, nested boxes",
    )


def _close_number(got, expected) -> str | None:
    try:
        value = float(got)
    except (TypeError, ValueError):
        return f"expected a number, got {type(got).__name__}"
    return (
        None
        if abs(value - expected) < 1e-6
        else f"IoU {value:.6f} where {expected:.6f} was expected"
    )


def _kept(got, expected) -> str | None:
    got = torch.as_tensor(got, dtype=torch.long).flatten()
    if torch.equal(got, expected):
        return None
    if sorted(got.tolist()) == sorted(expected.tolist()):
        return "the right boxes are kept but in another order (return them by decreasing score)"
    return f"kept indices {got.tolist()} where {expected.tolist()} was expected"


@exercise("00", points=3, task="greedy non-maximum suppression")
def check_nms(
    fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor], trials: int = 20
) -> str:
    """``fn(boxes, scores, iou_threshold)`` must keep the same indices, in the same order, as ``nms``.

    Notebook 00 grades its NMS exercise with it.
    """
    __tracebackhide__ = True
    square = [0.0, 0.0, 10.0, 10.0]
    cases = [
        Case(
            "no boxes",
            (torch.zeros(0, 4), torch.zeros(0), 0.5),
            hint="With no boxes, return an empty tensor of indices.",
        ),
        Case(
            "one box",
            (torch.tensor([square]), torch.tensor([0.9]), 0.5),
            hint="A single box is always kept.",
        ),
        Case(
            "two identical boxes",
            (torch.tensor([square, square]), torch.tensor([0.6, 0.9]), 0.5),
            hint="Keep the higher-scoring one (index 1) and suppress the other.",
        ),
        Case(
            "overlap just under the threshold",
            (
                torch.tensor([[0.0, 0.0, 10.0, 10.0], [4.0, 0.0, 14.0, 10.0]]),
                torch.tensor([0.9, 0.8]),
                0.5,
            ),
            hint="IoU 60/140 = 0.43 < 0.5: both boxes stay. Suppress only when IoU > threshold.",
        ),
        Case(
            "overlap exactly at the threshold",
            (
                torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 20.0]]),
                torch.tensor([0.9, 0.8]),
                0.5,
            ),
            hint="IoU 100/200 = 0.5, not above 0.5: both boxes stay (suppress when IoU > "
            "threshold, as torchvision does).",
        ),
        Case(
            "a chain: A suppresses B, so B cannot suppress C",
            (
                torch.tensor(
                    [[0.0, 0.0, 10.0, 10.0], [3.0, 0.0, 13.0, 10.0], [6.0, 0.0, 16.0, 10.0]]
                ),
                torch.tensor([0.9, 0.8, 0.7]),
                0.4,
            ),
            hint="Only boxes that are kept suppress others: after A removes B, compare C with A only.",
        ),
        Case(
            "scores not in order",
            (
                torch.tensor([[20.0, 20.0, 30.0, 30.0], square, [1.0, 1.0, 11.0, 11.0]]),
                torch.tensor([0.2, 0.5, 0.9]),
                0.5,
            ),
            hint="Visit boxes by decreasing score, and return kept indices in that order.",
        ),
    ]
    g = torch.Generator().manual_seed(1)
    for _ in range(trials):
        cases.append(
            Case("60 random boxes", (random_boxes(60, g).float(), torch.rand(60, generator=g), 0.3))
        )
    return grade(
        fn,
        nms,
        cases,
        name="check_nms",
        against="fastrcnn_lite.nms",
        compare=_kept,
        covered="no boxes, duplicates, IoU = threshold, chains, unsorted scores",
    )


@exercise("00", points=2, task="encode a target box as deltas (dx, dy, dw, dh) from a proposal")
def check_encode(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """``fn(proposals, targets) -> deltas`` (Tensor[G, 4] each) must match ``encode_boxes``.

    Notebook 00 grades its box-encoding exercise with it.
    """
    __tracebackhide__ = True
    p = torch.tensor([[10.0, 10.0, 30.0, 50.0]], dtype=torch.float64)
    cases = [
        Case(
            "target equal to the proposal",
            (p, p.clone()),
            hint="The same box needs no change: all four deltas are 0.",
        ),
        Case(
            "target shifted right by half a width",
            (p, p + torch.tensor([10.0, 0, 10.0, 0], dtype=torch.float64)),
            hint="dx = (gx - px) / pw with centres and widths, not corners.",
        ),
        Case(
            "target twice as tall",
            (p, torch.tensor([[10.0, -10.0, 30.0, 70.0]], dtype=torch.float64)),
            hint="dh = log(gh / ph): the natural log of the height ratio.",
        ),
    ]
    g = torch.Generator().manual_seed(2)
    cases += [Case("100 random pairs", (random_boxes(100, g), random_boxes(100, g)))]
    return grade(
        fn,
        encode_boxes,
        cases,
        name="check_encode",
        against="fastrcnn_lite.encode_boxes",
        covered="identity, shift, scale",
    )


@exercise("00", points=2, task="decode deltas back into a box")
def check_decode(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """``fn(proposals, deltas) -> boxes`` (Tensor[G, 4] each) must match ``decode_boxes``.

    Notebook 00 grades its box-decoding exercise with it.
    """
    __tracebackhide__ = True
    p = torch.tensor([[10.0, 10.0, 30.0, 50.0]], dtype=torch.float64)
    cases = [
        Case(
            "zero deltas",
            (p, torch.zeros(1, 4, dtype=torch.float64)),
            hint="Zero deltas give back the proposal itself.",
        ),
        Case(
            "dx = 0.5",
            (p, torch.tensor([[0.5, 0.0, 0.0, 0.0]], dtype=torch.float64)),
            hint="The centre moves by dx * pw; the size stays.",
        ),
        Case(
            "dw = log 2",
            (p, torch.tensor([[0.0, 0.0, 0.6931471805599453, 0.0]], dtype=torch.float64)),
            hint="The width becomes pw * exp(dw), around the same centre.",
        ),
    ]
    g = torch.Generator().manual_seed(3)
    proposals = random_boxes(100, g)
    cases += [
        Case("100 random round trips", (proposals, encode_boxes(proposals, random_boxes(100, g))))
    ]
    return grade(
        fn,
        decode_boxes,
        cases,
        name="check_decode",
        against="fastrcnn_lite.decode_boxes",
        covered="zero, shift, log-scale deltas",
    )
