"""Graders for notebook 02 (evaluation): matching detections to gt, 11-point AP, area AP.

Data-flow stage: none (teaching aid). The references are ``fastrcnn_lite.evaluate``'s
:func:`~fastrcnn_lite.evaluate.match_detections` and :func:`~fastrcnn_lite.evaluate.voc_ap`,
themselves checked against a numpy port of the VOC devkit loop and hand-worked cases in
``tests/test_evaluate.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...evaluate import match_detections, voc_ap
from .core import Case, exercise, grade

__all__ = ["check_match_detections", "check_voc_ap_07", "check_voc_ap_area"]


def _boxes(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)  # (N, 4)


def _flags(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.bool)


def _verdicts(result) -> list[str] | str:
    """(tp, fp) -> one word per detection: "TP", "FP", "ignored" (both False) or "TP and FP"."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        return f"not a pair (tp, fp) but {type(result).__name__}"
    try:
        tp, fp = (torch.as_tensor(r).flatten().bool().tolist() for r in result)
    except (TypeError, ValueError, RuntimeError):
        return "a pair whose items are not tensors or lists of booleans"
    if len(tp) != len(fp):
        return f"tp has {len(tp)} entries but fp has {len(fp)}"
    words = {(True, False): "TP", (False, True): "FP", (False, False): "ignored"}
    return [words.get((t, f), "TP and FP") for t, f in zip(tp, fp, strict=True)]


def _same_verdicts(got, expected) -> str | None:
    if isinstance(got, str):
        return f"your function returned {got}"
    if len(got) != len(expected):
        return f"{len(got)} verdicts for {len(expected)} detections (one tp and fp entry per detection)"
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        if g != e:
            return f"detection {i} (input order) is {g} where {e} was expected"
    return None


@exercise("02", points=3, task="greedy matching of scored detections to ground truth")
def check_match_detections(fn: Callable, trials: int = 20) -> str:
    """``fn(boxes, scores, gt_boxes, gt_difficult, iou_thresh) -> (tp, fp)`` must match ``match_detections``.

    Notebook 02 grades its matching exercise with it.

    One class in one image: ``boxes`` (Tensor[D, 4]), ``scores`` (Tensor[D]), ``gt_boxes``
    (Tensor[G, 4]), ``gt_difficult`` (Tensor[G] bool); ``tp`` and ``fp`` are Tensor[D] bool in the
    input order, both False for a detection on a difficult gt box.
    """
    __tracebackhide__ = True
    square = [0.0, 0.0, 10.0, 10.0]
    far = [50.0, 50.0, 60.0, 60.0]
    cases = [
        Case(
            "one detection exactly on one gt box",
            (_boxes([square]), torch.tensor([0.9]), _boxes([square]), _flags([False]), 0.5),
            hint="IoU 1 >= 0.5 with an unmatched gt box: a true positive.",
        ),
        Case(
            "no detections",
            (_boxes([]), torch.zeros(0), _boxes([square]), _flags([False]), 0.5),
            hint="Return two empty bool tensors: there is nothing to label.",
        ),
        Case(
            "no gt box of this class in the image",
            (_boxes([square, far]), torch.tensor([0.9, 0.8]), _boxes([]), _flags([]), 0.5),
            hint="Without gt boxes every detection is a false positive (and box_iou has 0 columns: "
            "do not take a max over them).",
        ),
        Case(
            "a duplicate: two detections on one gt box, the weaker one first",
            (
                _boxes([[1.0, 0.0, 11.0, 10.0], square]),
                torch.tensor([0.6, 0.9]),
                _boxes([square]),
                _flags([False]),
                0.5,
            ),
            hint="Visit detections by decreasing score: the 0.9 one takes the gt box, the 0.6 one "
            "is then a duplicate, a false positive.",
        ),
        Case(
            "IoU exactly 0.5",
            (
                _boxes([[0.0, 0.0, 10.0, 20.0]]),
                torch.tensor([0.9]),
                _boxes([square]),
                _flags([False]),
                0.5,
            ),
            hint="IoU 100 / 200 = 0.5: the devkit's test is IoU >= threshold, so this is a TP.",
        ),
        Case(
            "IoU just below 0.5",
            (
                _boxes([[0.0, 0.0, 10.0, 21.0]]),
                torch.tensor([0.9]),
                _boxes([square]),
                _flags([False]),
                0.5,
            ),
            hint="IoU 100 / 210 < 0.5: a false positive, even though it overlaps the gt box.",
        ),
        Case(
            "a detection on a difficult gt box",
            (_boxes([square]), torch.tensor([0.9]), _boxes([square]), _flags([True]), 0.5),
            hint="A detection whose best gt box is difficult is ignored: tp and fp both False.",
        ),
        Case(
            "two detections on one difficult gt box",
            (
                _boxes([square, square]),
                torch.tensor([0.9, 0.8]),
                _boxes([square]),
                _flags([True]),
                0.5,
            ),
            hint="A difficult gt box is never 'taken': every detection on it is ignored, "
            "the second one is not a duplicate.",
        ),
        Case(
            "best overlap with a difficult gt, a normal gt overlapping too",
            (
                _boxes([[0.5, 0.0, 10.5, 10.0]]),
                torch.tensor([0.9]),
                _boxes([[2.0, 0.0, 12.0, 10.0], square]),
                _flags([False, True]),
                0.5,
            ),
            hint="Assign each detection to the gt box it overlaps most (here the difficult one, "
            "IoU 0.90 vs 0.74) first, then decide: on a difficult gt it is ignored.",
        ),
        Case(
            "the best gt box is taken: no fall-back to the second best",
            (
                _boxes([square, [0.5, 0.0, 10.5, 10.0]]),
                torch.tensor([0.9, 0.8]),
                _boxes([square, [2.0, 0.0, 12.0, 10.0]]),
                _flags([False, False]),
                0.5,
            ),
            hint="Detection 1 overlaps gt 0 most (0.90; gt 1 only 0.74) but gt 0 is already "
            "matched: as in the VOC devkit it is a false positive, it does not move on to gt 1.",
        ),
        Case(
            "the highest IoU wins, not the first gt box",
            (
                _boxes([[1.5, 0.0, 11.5, 10.0], square]),
                torch.tensor([0.9, 0.8]),
                _boxes([square, [2.0, 0.0, 12.0, 10.0]]),
                _flags([False, False]),
                0.5,
            ),
            hint="Detection 0 overlaps gt 1 more (0.90) than gt 0 (0.74): it takes gt 1, which "
            "leaves gt 0 free for detection 1.",
        ),
        Case(
            "a tie in score: the earlier detection wins",
            (
                _boxes([square, square]),
                torch.tensor([0.7, 0.7]),
                _boxes([square]),
                _flags([False]),
                0.5,
            ),
            hint="With equal scores keep the input order: sort with "
            "torch.sort(scores, descending=True, stable=True).",
        ),
        Case(
            "another threshold, 0.7",
            (
                _boxes([[0.0, 0.0, 10.0, 16.0]]),
                torch.tensor([0.9]),
                _boxes([square]),
                _flags([False]),
                0.7,
            ),
            hint="Use the iou_thresh argument: IoU 0.625 is a TP at 0.5, an FP at 0.7.",
        ),
    ]
    g = torch.Generator().manual_seed(5)
    for _ in range(trials):
        num_gts = int(torch.randint(0, 5, (), generator=g))
        corners = torch.randint(0, 60, (num_gts, 2), generator=g)
        gt = torch.cat([corners, corners + torch.randint(4, 30, (num_gts, 2), generator=g)], 1)
        picks = torch.randint(0, max(num_gts, 1), (8,), generator=g)
        shift = torch.randint(-4, 5, (8, 4), generator=g)
        dets = (gt[picks] if num_gts else torch.zeros(8, 4, dtype=torch.long)) + shift  # (8, 4)
        dets[:, 2:] = torch.maximum(dets[:, 2:], dets[:, :2] + 1)  # valid boxes
        scores = torch.randint(0, 6, (8,), generator=g).float() / 5  # ties are likely
        difficult = torch.rand(num_gts, generator=g) < 0.2
        cases.append(
            Case(
                f"random: 8 detections (integer corners), {num_gts} gt boxes",
                (dets.float(), scores, gt.float(), difficult, 0.5),
            )
        )
    return grade(
        lambda *args: _verdicts(fn(*args)),
        lambda *args: _verdicts(match_detections(*args)),
        cases,
        name="check_match_detections",
        against="fastrcnn_lite.evaluate.match_detections",
        compare=_same_verdicts,
        covered="duplicates, difficult boxes, IoU = 0.5, no detections, no gt, ties in score",
    )


def _curve(tp: list, npos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Recall and precision (Tensor[D] float64) after each of the D ranked detections."""
    hits = torch.tensor(tp, dtype=torch.float64).cumsum(0)  # (D,)
    ranks = torch.arange(1, len(tp) + 1, dtype=torch.float64)  # (D,)
    return hits / npos, hits / ranks


def _ap_cases(metric: str) -> list[Case]:
    area = metric == "area"
    cases = [
        Case(
            "no detections (an empty curve)",
            _curve([], 4),
            hint="With no points the AP is 0: guard the empty case (max over nothing fails).",
        ),
        Case(
            "a perfect detector",
            _curve([1, 1, 1, 1], 4),
            hint="Precision 1 at every recall up to 1: AP 1.",
        ),
        Case(
            "a single hit: recall 0.1 at precision 1",
            _curve([1], 10),
            hint=(
                "The envelope is 1 up to recall 0.1 and 0 beyond: the area is 0.1."
                if area
                else "Only t = 0 and t = 0.1 have a point with recall >= t: AP = 2 / 11."
            ),
        ),
        Case(
            "recall exactly 0.3 = 3 / 10",
            _curve([1, 1, 1], 10),
            hint=(
                "Add the sentinels (recall 0 and 1, precision 0) and sum (r[i] - r[i-1]) * p[i] "
                "where the recall changes."
                if area
                else "Use t = i / 10 for i in range(11): 0.1 * 3 and np.arange(0, 1.1, 0.1) give "
                "0.30000000000000004, which a recall of exactly 3 / 10 does not reach."
            ),
        ),
        Case(
            "precision rises again later (the envelope)",
            _curve([1, 0, 0, 1, 1, 0, 1], 4),
            hint=(
                "Make precision monotone first: each point takes the highest precision at any "
                "higher recall, sweeping from the right."
                if area
                else "At each t take the highest precision at any recall >= t, not the precision "
                "at the first point that reaches t."
            ),
        ),
        Case(
            "the first detection is a false positive",
            _curve([0, 1, 0, 1], 2),
            hint="Recall stays 0 at the first point: that point still counts for t = 0 (07) and "
            "adds no area (area).",
        ),
        Case(
            "recall never reaches 1",
            _curve([1, 1, 0, 1, 0, 0], 8),
            hint=(
                "Beyond the last recall the envelope is 0 (the sentinel): no area there."
                if area
                else "A threshold t that no recall reaches contributes 0 to the mean over 11."
            ),
        ),
        Case(
            "false positives between hits (repeated recall values)",
            _curve([1, 0, 0, 0, 1, 0, 1, 1], 5),
            hint="Several points share one recall value: count each recall step once.",
        ),
    ]
    g = torch.Generator().manual_seed(6 if area else 7)
    for _ in range(30):
        tp = (torch.rand(40, generator=g) < torch.linspace(0.9, 0.1, 40)).long().tolist()
        cases.append(Case("random curve of 40 detections", _curve(tp, sum(tp) + 5)))
    return cases


@exercise("02", points=2, task="VOC2007 11-point interpolated AP")
def check_voc_ap_07(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> str:
    """``fn(recall, precision) -> float`` (Tensor[D] float64 each) must match ``voc_ap(..., "07")``.

    Notebook 02 grades its 11-point AP exercise with it.
    """
    __tracebackhide__ = True
    return grade(
        fn,
        lambda recall, precision: voc_ap(recall, precision, "07"),
        _ap_cases("07"),
        name="check_voc_ap_07",
        against='fastrcnn_lite.evaluate.voc_ap(metric="07")',
        compare=_close_ap,
        covered="empty curve, recall exactly 0.3, rising precision, recall below 1",
    )


@exercise("02", points=2, task="VOC2010+ area under the precision envelope (area AP)")
def check_voc_ap_area(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> str:
    """``fn(recall, precision) -> float`` (Tensor[D] float64 each) must match ``voc_ap(..., "area")``.

    Notebook 02 grades its area AP exercise with it.
    """
    __tracebackhide__ = True
    return grade(
        fn,
        lambda recall, precision: voc_ap(recall, precision, "area"),
        _ap_cases("area"),
        name="check_voc_ap_area",
        against='fastrcnn_lite.evaluate.voc_ap(metric="area")',
        compare=_close_ap,
        covered="empty curve, rising precision, repeated recall values, recall below 1",
    )


def _close_ap(got, expected) -> str | None:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    try:
        value = float(got)
    except (TypeError, ValueError):
        return f"expected one number (the AP), got {type(got).__name__}"
    return (
        None
        if abs(value - expected) < 1e-9
        else f"AP {value:.6f} where {expected:.6f} was expected"
    )
