"""Notebook 02's graders and their reference ``evaluate.match_detections``.

``match_detections`` is checked against a slow loop written from the VOC devkit's rules
(``VOCevaldet.m``); each grader accepts the package's answer and rejects a plausible wrong one,
naming the case that catches it.
"""

import numpy as np
import pytest
import torch

from fastrcnn_lite.evaluate import evaluate_detections, match_detections, voc_ap
from fastrcnn_lite.teaching import grading


def _devkit_loop(boxes, scores, gt_boxes, difficult, iou_thresh):
    """The devkit's loop for one image and one class, with plain Python numbers."""
    order = sorted(range(len(scores)), key=lambda d: -float(scores[d]))  # stable: ties keep order
    taken = [False] * len(gt_boxes)
    tp, fp = [False] * len(scores), [False] * len(scores)
    for d in order:
        bx1, by1, bx2, by2 = boxes[d].tolist()
        best, best_g = -np.inf, -1
        for g, (gx1, gy1, gx2, gy2) in enumerate(gt_boxes.tolist()):
            iw = max(0.0, min(bx2, gx2) - max(bx1, gx1))
            ih = max(0.0, min(by2, gy2) - max(by1, gy1))
            union = (bx2 - bx1) * (by2 - by1) + (gx2 - gx1) * (gy2 - gy1) - iw * ih
            if iw * ih / union > best:
                best, best_g = iw * ih / union, g
        if best < iou_thresh:
            fp[d] = True
        elif difficult[best_g]:
            pass
        elif not taken[best_g]:
            tp[d], taken[best_g] = True, True
        else:
            fp[d] = True
    return tp, fp


def test_match_detections_agrees_with_the_devkit_loop():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        num_gts = int(torch.randint(0, 6, (), generator=g))
        corners = torch.randint(0, 40, (num_gts, 2), generator=g)
        gt = torch.cat([corners, corners + torch.randint(3, 20, (num_gts, 2), generator=g)], 1)
        picks = torch.randint(0, max(num_gts, 1), (10,), generator=g)
        base = gt[picks] if num_gts else torch.zeros(10, 4, dtype=torch.long)
        dets = base + torch.randint(-3, 4, (10, 4), generator=g)
        dets[:, 2:] = torch.maximum(dets[:, 2:], dets[:, :2] + 1)
        scores = torch.randint(0, 4, (10,), generator=g).float()  # many ties
        difficult = torch.rand(num_gts, generator=g) < 0.3
        tp, fp = match_detections(dets.double(), scores, gt.double(), difficult)
        assert (tp.tolist(), fp.tolist()) == _devkit_loop(dets, scores, gt, difficult, 0.5)


def test_match_detections_agrees_with_evaluate_detections():
    """Counting the TPs per image gives evaluate_detections' num_tp."""
    g = torch.Generator().manual_seed(1)
    detections, targets, tp_total = [], [], 0
    for _ in range(5):
        gt = torch.rand(4, 2, generator=g) * 50
        gt = torch.cat([gt, gt + 10], 1)
        dets = gt.repeat(3, 1) + torch.randn(12, 4, generator=g) * 2
        scores = torch.rand(12, generator=g)
        difficult = torch.tensor([False, False, True, False])
        detections.append({"boxes": dets, "scores": scores, "labels": torch.ones(12).long()})
        targets.append({"boxes": gt, "labels": torch.ones(4).long(), "difficult": difficult})
        tp_total += int(match_detections(dets, scores, gt, difficult)[0].sum())
    assert evaluate_detections(detections, targets, ["thing"])["num_tp"]["thing"] == tp_total


def test_match_detections_errors():
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    with pytest.raises(ValueError, match=r"gt_difficult must be Tensor\[1\] bool"):
        match_detections(box, torch.ones(1), box, torch.tensor([True, False]))
    with pytest.raises(ValueError, match=r"iou_thresh must be in \(0, 1\]"):
        match_detections(box, torch.ones(1), box, iou_thresh=50)
    with pytest.raises(ValueError, match=r"gt_boxes must be Tensor\[G, 4\]"):
        match_detections(box, torch.ones(1), box[0])


def _no_sorting(boxes, scores, gt_boxes, difficult, iou_thresh):
    """Plausible wrong answer: walks the detections in input order, not by score."""
    order = torch.arange(len(scores))
    return _match_in_order(boxes, gt_boxes, difficult, iou_thresh, order)


def _match_in_order(boxes, gt_boxes, difficult, iou_thresh, order, skip_difficult=False):
    tp = torch.zeros(len(boxes), dtype=torch.bool)
    fp = torch.zeros(len(boxes), dtype=torch.bool)
    if len(gt_boxes) == 0:
        return tp, ~fp
    from fastrcnn_lite.boxes import box_iou

    iou = box_iou(boxes.double(), gt_boxes.double())
    if skip_difficult:
        iou[:, difficult] = -1
    taken = set()
    for d in order.tolist():
        best, g = iou[d].max(0)
        if best < iou_thresh:
            fp[d] = True
        elif difficult[g] and not skip_difficult:
            pass
        elif int(g) in taken:
            fp[d] = True
        else:
            tp[d] = True
            taken.add(int(g))
    return tp, fp


def test_check_match_detections_accepts_the_reference_and_names_the_failed_case():
    assert "all 33 cases agree" in grading.check_match_detections(match_detections)
    with pytest.raises(
        grading.GradingError,
        match=r"(?s)case 4, a duplicate: two detections on one gt box.*detection 0 \(input order\) "
        r"is TP where FP was expected.*expected: \['FP', 'TP'\].*hint:",
    ):
        grading.check_match_detections(_no_sorting)

    def strict_threshold(boxes, scores, gt_boxes, difficult, iou_thresh):
        return match_detections(boxes, scores, gt_boxes, difficult, iou_thresh + 1e-9)

    with pytest.raises(grading.GradingError, match=r"case 5, IoU exactly 0.5: detection 0"):
        grading.check_match_detections(strict_threshold)

    def difficult_dropped_first(boxes, scores, gt_boxes, difficult, iou_thresh):
        order = torch.sort(scores, descending=True, stable=True).indices
        return _match_in_order(boxes, gt_boxes, difficult, iou_thresh, order, skip_difficult=True)

    with pytest.raises(grading.GradingError, match=r"case 7, a detection on a difficult gt box"):
        grading.check_match_detections(difficult_dropped_first)


def test_check_match_detections_says_not_answered_and_bad_return():
    def stub(*args):
        raise NotImplementedError()

    with pytest.raises(grading.GradingError, match="not answered yet"):
        grading.check_match_detections(stub)
    with pytest.raises(grading.GradingError, match=r"case 1, .*not a pair \(tp, fp\) but Tensor"):
        grading.check_match_detections(lambda *args: match_detections(*args)[0])


def _ap07_with_arange(recall, precision):
    """Plausible wrong answer: thresholds from np.arange (0.30000000000000004 for t = 0.3)."""
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        above = precision[recall >= t]
        ap += (float(above.max()) if len(above) else 0.0) / 11
    return ap


def _area_without_envelope(recall, precision):
    """Plausible wrong answer: the raw precision under each recall step (no monotone envelope)."""
    mrec = torch.cat([torch.zeros(1, dtype=recall.dtype), recall])
    return float(((mrec[1:] - mrec[:-1]) * precision).sum())


def test_check_voc_ap_graders():
    assert "all 38 cases agree" in grading.check_voc_ap_07(lambda r, p: voc_ap(r, p, "07"))
    assert "all 38 cases agree" in grading.check_voc_ap_area(lambda r, p: voc_ap(r, p, "area"))
    with pytest.raises(
        grading.GradingError,
        match=r"(?s)case 4, recall exactly 0.3 = 3 / 10: AP 0.272727 where 0.363636.*arange",
    ):
        grading.check_voc_ap_07(_ap07_with_arange)
    with pytest.raises(grading.GradingError, match=r"case 5, precision rises again later"):
        grading.check_voc_ap_area(_area_without_envelope)
    with pytest.raises(grading.GradingError, match=r"case 1, no detections .*raised"):
        grading.check_voc_ap_07(lambda r, p: float(p.max()))
    # The two metrics differ: each grader rejects the other's answer.
    with pytest.raises(grading.GradingError, match=r"case 3, a single hit: recall 0.1"):
        grading.check_voc_ap_area(lambda r, p: voc_ap(r, p, "07"))


def test_hand_worked_ap_values():
    """The single-hit case of the figure in notebook 02: 2 / 11 with 11 points, 0.1 as an area."""
    recall, precision = torch.tensor([0.1]), torch.tensor([1.0])
    assert voc_ap(recall, precision, "07") == pytest.approx(2 / 11)
    assert voc_ap(recall, precision, "area") == pytest.approx(0.1)


def test_registered_for_notebook_02():
    for name in ("check_match_detections", "check_voc_ap_07", "check_voc_ap_area"):
        assert grading.EXERCISES[name].notebook == "02"
