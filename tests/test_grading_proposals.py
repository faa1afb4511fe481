"""Notebook 01's grader ``check_recall``: the reference passes, plausible wrong answers fail."""

import pytest
import torch

from fastrcnn_lite.boxes import box_iou
from fastrcnn_lite.proposals import proposal_recall
from fastrcnn_lite.teaching import grading


def _recall(proposals_list, targets, iou_thresh, *, pooled=True, skip_difficult=True, op=">="):
    found, total, per_image = 0, 0, []
    for proposals, target in zip(proposals_list, targets, strict=True):
        gt = target["boxes"][~target["difficult"]] if skip_difficult else target["boxes"]
        hits = 0
        if len(gt) and len(proposals):
            best = box_iou(gt, proposals).max(dim=1).values
            hits = int((best >= iou_thresh if op == ">=" else best > iou_thresh).sum())
        found, total = found + hits, total + len(gt)
        if len(gt):
            per_image.append(hits / len(gt))
    return found / total if pooled else sum(per_image) / len(per_image)


def test_reference_matches_a_slow_loop():
    """The grader's reference (proposal_recall, all proposals, one threshold) is the slow loop."""
    g = torch.Generator().manual_seed(0)
    proposals_list, targets = [], []
    for _ in range(6):
        gt = torch.rand(3, 2, generator=g) * 40
        gt = torch.cat([gt, gt + 12], 1)
        props = gt.repeat(5, 1) + torch.randn(15, 4, generator=g) * 3
        props[:, 2:] = torch.maximum(props[:, 2:], props[:, :2] + 1)
        proposals_list.append(props)
        targets.append({"boxes": gt, "difficult": torch.rand(3, generator=g) < 0.3})
    for t in (0.5, 0.7):
        table = proposal_recall(proposals_list, targets, iou_thresholds=(t,), top_n=(15,))
        assert float(table.recall[0, 0]) == pytest.approx(_recall(proposals_list, targets, t))


def test_check_recall_accepts_the_reference_and_rejects_wrong_answers():
    assert "cases agree with fastrcnn_lite.proposals.proposal_recall" in grading.check_recall(
        _recall
    )
    cases = {
        r"case 4, a difficult gt box that no proposal finds: recall 0.5000 where 1.0000": dict(
            skip_difficult=False
        ),
        r"case 6, IoU exactly at the threshold: recall 0.0000 where 1.0000": dict(op=">"),
        r"case 8, gt boxes pooled over images.*recall 0.5000 where 0.2500": dict(pooled=False),
    }
    for message, wrong in cases.items():
        with pytest.raises(grading.GradingError, match=f"(?s){message}.*hint:"):
            grading.check_recall(lambda p, t, iou, wrong=wrong: _recall(p, t, iou, **wrong))


def test_check_recall_names_a_crash_on_an_image_without_proposals():
    def crashes(proposals_list, targets, iou_thresh):
        found = total = 0
        for proposals, target in zip(proposals_list, targets, strict=True):
            gt = target["boxes"][~target["difficult"]]
            found += int((box_iou(gt, proposals).max(dim=1).values >= iou_thresh).sum())
            total += len(gt)
        return found / total

    with pytest.raises(
        grading.GradingError, match=r"case 2, an image with no proposals: your function raised"
    ):
        grading.check_recall(crashes)
    assert grading.EXERCISES["check_recall"].notebook == "01"
