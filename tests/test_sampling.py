"""Hierarchical sampling (paper section 2.3) on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastrcnn_lite.boxes import box_iou, encode_boxes
from fastrcnn_lite.sampling import (
    ImageSampler,
    match_proposals,
    regression_target_stats,
    sample_rois,
)

GT = torch.tensor([[0.0, 0.0, 10.0, 10.0]])


def _strips(widths):
    """Boxes [0, 0, w, 10] inside the gt box [0, 0, 10, 10]: IoU = w / 10 exactly."""
    return torch.tensor([[0.0, 0.0, w, 10.0] for w in widths])


def test_thresholds_on_hand_built_ious():
    # IoU:            0.05  0.1   0.3   0.49  0.5   0.8
    proposals = _strips([0.5, 1.0, 3.0, 4.9, 5.0, 8.0])
    max_iou, matched = match_proposals(proposals, GT)
    torch.testing.assert_close(max_iou, torch.tensor([0.05, 0.1, 0.3, 0.49, 0.5, 0.8]))
    assert matched.tolist() == [0] * 6
    out = sample_rois(proposals, GT, torch.tensor([3]), batch_size_per_image=64, add_gt=False)
    # Foreground: IoU >= 0.5 (0.5 and 0.8), class 3; background: IoU in [0.1, 0.5); 0.05 unused.
    fg = out["labels"] > 0
    assert sorted(out["max_iou"][fg].tolist()) == pytest.approx([0.5, 0.8])
    assert sorted(out["max_iou"][~fg].tolist()) == pytest.approx([0.1, 0.3, 0.49])
    assert set(out["labels"][fg].tolist()) == {3}
    # Foreground RoIs come first.
    assert out["labels"].tolist()[:2] == [3, 3] and out["labels"].tolist()[2:] == [0, 0, 0]


def test_gt_boxes_are_added_as_foreground():
    proposals = _strips([1.0, 3.0])  # background only
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 40.0]])
    out = sample_rois(proposals, gt, torch.tensor([2, 5]))
    assert out["labels"].tolist()[:2] in ([2, 5], [5, 2])
    fg_boxes = out["boxes"][:2]
    assert {tuple(b) for b in fg_boxes.tolist()} == {tuple(b) for b in gt.tolist()}
    assert torch.equal(out["regression_targets"][:2], torch.zeros(2, 4))  # a gt box needs no move
    without = sample_rois(proposals, gt, torch.tensor([2, 5]), add_gt=False)
    assert (without["labels"] == 0).all()


def test_fractions_with_plenty_and_with_few_foreground():
    g = torch.Generator().manual_seed(0)
    # 100 foreground strips (IoU 0.5..0.99) and 200 background strips (IoU 0.1..0.49).
    fg_widths = 5.0 + 4.9 * torch.rand(100, generator=g)
    bg_widths = 1.0 + 3.9 * torch.rand(200, generator=g)
    proposals = _strips(torch.cat([fg_widths, bg_widths]).tolist())
    out = sample_rois(
        proposals,
        GT,
        torch.tensor([1]),
        batch_size_per_image=64,
        positive_fraction=0.25,
        generator=g,
    )
    assert len(out["labels"]) == 64
    assert (out["labels"] > 0).sum() == 16  # 25% of 64
    assert ((out["max_iou"] >= 0.5) == (out["labels"] > 0)).all()
    assert (out["max_iou"][16:] >= 0.1).all() and (out["max_iou"][16:] < 0.5).all()
    # Only 3 proposals (+ the gt) are foreground: all 4 are taken, the rest is background.
    proposals = _strips(fg_widths[:3].tolist() + bg_widths.tolist())
    out = sample_rois(proposals, GT, torch.tensor([1]), batch_size_per_image=64, generator=g)
    assert (out["labels"] > 0).sum() == 4 and len(out["labels"]) == 64
    # Few candidates of both kinds: fewer RoIs, as in the paper's code.
    out = sample_rois(_strips([2.0, 6.0]), GT, torch.tensor([1]), batch_size_per_image=64)
    assert sorted(out["labels"].tolist()) == [0, 1, 1]


def test_sampling_is_uniform_without_replacement():
    proposals = _strips((5.0 + 0.01 * torch.arange(100)).tolist())  # 100 foreground candidates
    counts = torch.zeros(101)
    g = torch.Generator().manual_seed(3)
    for _ in range(400):
        out = sample_rois(
            proposals,
            GT,
            torch.tensor([1]),
            batch_size_per_image=40,
            positive_fraction=0.25,
            generator=g,
        )
        widths = out["boxes"][:, 2]
        assert len(set(widths.tolist())) == len(widths) == 10  # no repeats
        idx = torch.round((widths - 5.0) / 0.01).long().clamp(0, 100)
        counts[idx] += 1
    # 101 candidates (with the gt), 10 drawn each time: each drawn 400 * 10 / 101 ~ 39.6 times.
    assert counts.min() > 15 and counts.max() < 70


def test_regression_targets_match_encode_boxes_with_the_best_gt():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [30.0, 30.0, 50.0, 60.0]])
    proposals = torch.tensor(
        [[1.0, 1.0, 11.0, 10.0], [32.0, 28.0, 52.0, 58.0], [100.0, 100.0, 110.0, 110.0]]
    )
    out = sample_rois(proposals, gt, torch.tensor([4, 6]), add_gt=False)
    assert out["labels"].tolist()[:2] in ([4, 6], [6, 4])
    for box, label, target in zip(
        out["boxes"][:2], out["labels"][:2], out["regression_targets"][:2], strict=True
    ):
        best = box_iou(box[None], gt).argmax()
        assert label == [4, 6][best]
        torch.testing.assert_close(target, encode_boxes(box[None], gt[best][None])[0])


def test_image_without_objects_gives_all_background():
    proposals = torch.tensor(
        [[0.0, 0.0, 5.0, 5.0], [10.0, 10.0, 40.0, 30.0], [2.0, 3.0, 9.0, 20.0]]
    )
    out = sample_rois(
        proposals, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), batch_size_per_image=64
    )
    assert out["labels"].tolist() == [0, 0, 0]
    assert torch.equal(out["regression_targets"], torch.zeros(3, 4))
    # And no proposals either: an empty sample, not an error.
    out = sample_rois(torch.zeros(0, 4), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert out["boxes"].shape == (0, 4) and out["labels"].shape == (0,)


def test_sample_rois_checks_inputs():
    with pytest.raises(ValueError, match=r"gt_labels must be Tensor\[1\]"):
        sample_rois(_strips([5.0]), GT, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="RoI tensor"):
        sample_rois(torch.zeros(3, 5), GT, torch.tensor([1]))


def test_regression_target_stats_against_numpy():
    g = torch.Generator().manual_seed(0)
    targets, proposals, rows = [], [], {1: [], 2: []}
    for _ in range(5):
        gt = torch.tensor([[10.0, 10.0, 50.0, 40.0], [60.0, 5.0, 90.0, 70.0]])
        labels = torch.tensor([1, 2])
        props = gt.repeat(6, 1) + 4 * torch.randn(12, 4, generator=g)
        props = torch.cat([props, torch.tensor([[200.0, 200.0, 210.0, 210.0]])])  # background
        targets.append({"boxes": gt, "labels": labels})
        proposals.append(props)
        for box in torch.cat([gt, props]):  # gt added, as in training
            iou = box_iou(box[None], gt)[0]
            if iou.max() >= 0.5:
                rows[int(labels[iou.argmax()])].append(
                    encode_boxes(box[None], gt[iou.argmax()][None])[0].numpy()
                )
    means, stds = regression_target_stats(proposals, targets, num_classes=3)
    for c in (1, 2):
        a = np.stack(rows[c]).astype(np.float64)
        np.testing.assert_allclose(means[c - 1].numpy(), a.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stds[c - 1].numpy(), a.std(0), rtol=1e-4, atol=1e-6)
    # Class 3 never occurs: mean 0, std 1 (no normalisation).
    assert means[2].tolist() == [0.0] * 4 and stds[2].tolist() == [1.0] * 4


def test_image_sampler_epochs_flips_scales_and_state():
    sampler = ImageSampler(7, images_per_batch=2, scales=(160, 192, 224), flip_prob=0.5, seed=0)
    drawn = [sampler.next_batch() for _ in range(70)]  # 140 images = 20 epochs of 7
    indices = [i for batch in drawn for i, _, _ in batch]
    for epoch in range(20):
        # Each image once per epoch.
        assert sorted(indices[7 * epoch : 7 * epoch + 7]) == list(range(7))
    flips = [f for batch in drawn for _, _, f in batch]
    assert 40 < sum(flips) < 100
    assert {s for batch in drawn for _, s, _ in batch} == {160, 192, 224}
    # The state round-trips: a copy continues exactly like the original.
    state = sampler.state_dict()
    twin = ImageSampler(7, images_per_batch=2, scales=(160, 192, 224), flip_prob=0.5, seed=123)
    twin.load_state_dict(state)
    assert [twin.next_batch() for _ in range(9)] == [sampler.next_batch() for _ in range(9)]
    with pytest.raises(ValueError, match="7 images"):
        ImageSampler(8).load_state_dict(state)
