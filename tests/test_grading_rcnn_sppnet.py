"""Graders of notebooks 03 (R-CNN) and 05 (SPPnet): each accepts the package's reference and
rejects a plausible wrong answer, naming the case it fails on."""

import pytest
import torch

from fastrcnn_lite.boxes import box_iou, encode_boxes
from fastrcnn_lite.region_heads import regression_targets
from fastrcnn_lite.roi_pool import roi_pool, spatial_pyramid_pool
from fastrcnn_lite.svm import mine_hard_negatives
from fastrcnn_lite.teaching import grading
from fastrcnn_lite.teaching.grading import GradingError
from fastrcnn_lite.warp import warp_regions


def warp_reference(image, box, size, context):
    return warp_regions(image, box[None], size, context)[0]


def mining_reference(features, weight, bias, negative_mask, cached):
    return mine_hard_negatives(features @ weight + bias, negative_mask, cached)


def spp_reference(features, box, levels, spatial_scale):
    return spatial_pyramid_pool(features[None], [box[None]], levels, spatial_scale)[0]


def test_graders_are_registered_for_their_notebooks():
    for name, notebook in (("check_warp", "03"), ("check_hard_negatives", "03"),
                           ("check_bbox_targets", "03"), ("check_spp_one_roi", "05")):  # fmt: skip
        assert grading.EXERCISES[name].notebook == notebook
        assert grading.EXERCISES[name].points > 0


def test_check_warp_accepts_reference_and_names_the_border_case():
    assert grading.check_warp(warp_reference).startswith("check_warp: all 15 cases agree")

    def zero_fill(image, box, size, context):  # pads with 0 instead of the image mean
        return warp_regions(image, box[None], size, context, fill=0.0)[0]

    with pytest.raises(GradingError, match="case 4, a proposal at the image border"):
        grading.check_warp(zero_fill)


def test_check_warp_names_the_context_case():
    def no_context(image, box, size, context):  # forgets to dilate the box
        return warp_regions(image, box[None], size, 0)[0]

    with pytest.raises(GradingError, match="case 2, .*3 px of context"):
        grading.check_warp(no_context)


def test_check_hard_negatives_accepts_reference_and_names_threshold_cases():
    assert grading.check_hard_negatives(mining_reference).startswith("check_hard_negatives: all")

    def inclusive(features, weight, bias, negative_mask, cached):  # >= instead of >
        scores = features @ weight + bias
        hard = negative_mask & (scores >= -1.0) & ~cached
        return (cached | hard) & ~(scores < -1.2), hard

    with pytest.raises(GradingError, match="score exactly at the hard threshold") as info:
        grading.check_hard_negatives(inclusive)
    assert "hint:" in str(info.value)

    def evicts_at_threshold(features, weight, bias, negative_mask, cached):  # <= instead of <
        scores = features @ weight + bias
        hard = negative_mask & (scores > -1.0) & ~cached
        return (cached | hard) & ~(scores <= -1.2), hard

    with pytest.raises(GradingError, match="exactly at the easy threshold"):
        grading.check_hard_negatives(evicts_at_threshold)


def test_check_hard_negatives_names_the_already_cached_case():
    def all_hard(features, weight, bias, negative_mask, cached):  # reports cached ones as new
        scores = features @ weight + bias
        hard = negative_mask & (scores > -1.0)
        return (cached | hard) & ~(scores < -1.2), hard

    with pytest.raises(GradingError, match="already in the cache"):
        grading.check_hard_negatives(all_hard)


def test_check_bbox_targets_accepts_reference_and_names_the_two_gt_case():
    assert grading.check_bbox_targets(regression_targets).startswith("check_bbox_targets: all")

    def first_gt_above(proposals, gt_boxes, gt_labels, min_iou):  # first gt over the threshold
        if len(gt_boxes) == 0 or len(proposals) == 0:
            return regression_targets(proposals, gt_boxes, gt_labels, min_iou)
        over = box_iou(proposals, gt_boxes) > min_iou  # (P, G)
        keep = over.any(dim=1)
        first = over.float().argmax(dim=1)[keep]
        return keep, gt_labels[first], encode_boxes(proposals[keep], gt_boxes[first])

    with pytest.raises(GradingError, match="overlapping two gt boxes"):
        grading.check_bbox_targets(first_gt_above)


def test_check_bbox_targets_names_the_threshold_and_empty_cases():
    def inclusive(proposals, gt_boxes, gt_labels, min_iou):  # >= instead of >
        return regression_targets(proposals, gt_boxes, gt_labels, min_iou - 1e-12)

    with pytest.raises(GradingError, match="IoU exactly 0.6"):
        grading.check_bbox_targets(inclusive)

    def no_empty_guard(proposals, gt_boxes, gt_labels, min_iou):
        max_iou, best = box_iou(proposals, gt_boxes).max(dim=1)  # fails for G = 0
        keep = max_iou > min_iou
        return keep, gt_labels[best[keep]], encode_boxes(proposals[keep], gt_boxes[best[keep]])

    with pytest.raises(GradingError, match="no gt box .*your function raised"):
        grading.check_bbox_targets(no_empty_guard)


def test_check_spp_accepts_reference_and_a_roi_pool_answer():
    assert grading.check_spp_one_roi(spp_reference).startswith("check_spp_one_roi: all 18 cases")

    def with_roi_pool(features, box, levels, spatial_scale):
        return torch.cat(
            [roi_pool(features[None], [box[None]], n, spatial_scale).flatten() for n in levels]
        )

    assert grading.check_spp_one_roi(with_roi_pool).startswith("check_spp_one_roi: all")


def test_check_spp_names_layout_and_level_order_cases():
    def bin_major(features, box, levels, spatial_scale):  # (n, n, C) instead of (C, n, n)
        return torch.cat([
            roi_pool(features[None], [box[None]], n, spatial_scale)[0].permute(1, 2, 0).flatten()
            for n in levels
        ])  # fmt: skip

    with pytest.raises(GradingError, match="case 1, one level of 2 x 2 bins, 3 channels"):
        grading.check_spp_one_roi(bin_major)

    def sorted_levels(features, box, levels, spatial_scale):
        return spp_reference(features, box, sorted(levels, reverse=True), spatial_scale)

    with pytest.raises(GradingError, match="levels in another order"):
        grading.check_spp_one_roi(sorted_levels)


def test_a_stub_is_not_answered_yet():
    def stub(*args):
        raise NotImplementedError()

    for check in (grading.check_warp, grading.check_hard_negatives, grading.check_bbox_targets,
                  grading.check_spp_one_roi):  # fmt: skip
        with pytest.raises(GradingError, match="not answered yet"):
            check(stub)


def test_regression_targets_match_a_slow_loop():
    g = torch.Generator().manual_seed(0)
    gt = torch.tensor([[10.0, 10.0, 30.0, 30.0], [40.0, 5.0, 60.0, 40.0]])
    labels = torch.tensor([2, 5])
    proposals = gt.repeat(20, 1) + torch.randn(40, 4, generator=g) * 3
    keep, kept_labels, targets = regression_targets(proposals, gt, labels, 0.6)
    rows = []
    for p in range(len(proposals)):  # IoU by hand, best gt by a loop
        ious = []
        for box in gt.tolist():
            a = proposals[p].tolist()
            w = max(0.0, min(a[2], box[2]) - max(a[0], box[0]))
            h = max(0.0, min(a[3], box[3]) - max(a[1], box[1]))
            inter = w * h
            union = (a[2] - a[0]) * (a[3] - a[1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter
            ious.append(inter / union)
        best = max(range(len(gt)), key=lambda j: ious[j])
        assert bool(keep[p]) == (ious[best] > 0.6)
        if ious[best] > 0.6:
            rows.append(best)
    assert 0 < len(rows) < len(proposals)
    assert kept_labels.tolist() == [labels[j].item() for j in rows]
    torch.testing.assert_close(targets, encode_boxes(proposals[keep], gt[rows]))


def test_mine_hard_negatives_hand_worked():
    scores = torch.tensor([0.5, -1.0, -1.1, -1.2, -1.3, 2.0])
    negative = torch.tensor([True, True, True, True, True, False])
    cached = torch.tensor([False, False, True, True, True, False])
    new_cache, hard = mine_hard_negatives(scores, negative, cached)
    assert hard.tolist() == [True, False, False, False, False, False]
    assert new_cache.tolist() == [True, False, True, True, False, False]
