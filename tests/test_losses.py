"""The multi-task loss (paper section 2.3) against torch.nn.functional and a per-RoI loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastrcnn_lite.losses import fast_rcnn_loss, smooth_l1


def test_smooth_l1_matches_torch_and_hand_values():
    x = torch.cat(
        [
            torch.linspace(-3, 3, 601, dtype=torch.float64),
            torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64),
        ]
    )
    ref = F.smooth_l1_loss(x, torch.zeros_like(x), reduction="none", beta=1.0)
    torch.testing.assert_close(smooth_l1(x), ref, rtol=0, atol=1e-15)
    # Hand-worked: 0.5 x^2 inside (-1, 1), |x| - 0.5 outside; both give 0.5 at |x| = 1.
    assert smooth_l1(torch.tensor([0.5, -2.0, 1.0])).tolist() == [0.125, 1.5, 0.5]


def test_smooth_l1_gradient_is_bounded_by_one():
    x = torch.tensor([-100.0, -1.5, -0.25, 0.0, 0.75, 30.0], requires_grad=True)
    smooth_l1(x).sum().backward()
    assert x.grad.tolist() == [-1.0, -1.0, -0.25, 0.0, 0.75, 1.0]


def _reference_loss(class_logits, box_deltas, labels, targets, lam):
    """The paper's formula written as a loop over RoIs, averaged over the K RoIs."""
    num_rois = len(labels)
    cls = sum(-F.log_softmax(class_logits[i], dim=0)[labels[i]] for i in range(num_rois)) / num_rois
    box = 0.0
    for i in range(num_rois):
        u = int(labels[i])
        if u >= 1:  # [u >= 1]
            t_u = box_deltas[i, 4 * (u - 1) : 4 * u]
            box = box + F.smooth_l1_loss(t_u, targets[i], reduction="sum", beta=1.0)
    box = box / num_rois
    return cls, box, cls + lam * box


@pytest.mark.parametrize("lam", [1.0, 0.5])
def test_fast_rcnn_loss_matches_loop_reference(lam):
    g = torch.Generator().manual_seed(0)
    num_rois, num_classes = 12, 5
    class_logits = torch.randn(num_rois, num_classes + 1, generator=g, dtype=torch.float64)
    box_deltas = 2 * torch.randn(num_rois, 4 * num_classes, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 0, 0, 5, 1, 0, 3])
    targets = torch.randn(num_rois, 4, generator=g, dtype=torch.float64)
    out = fast_rcnn_loss(class_logits, box_deltas, labels, targets, lam)
    cls, box, total = _reference_loss(class_logits, box_deltas, labels, targets, lam)
    torch.testing.assert_close(out["loss_cls"], cls)
    torch.testing.assert_close(out["loss_cls"], F.cross_entropy(class_logits, labels))
    torch.testing.assert_close(out["loss_box"], box)
    torch.testing.assert_close(out["loss"], total)


def test_background_rois_and_other_classes_get_no_box_gradient():
    g = torch.Generator().manual_seed(1)
    class_logits = torch.randn(4, 4, generator=g)
    box_deltas = torch.randn(4, 12, generator=g, requires_grad=True)
    labels = torch.tensor([0, 2, 0, 3])
    targets = torch.randn(4, 4, generator=g)
    fast_rcnn_loss(class_logits, box_deltas, labels, targets)["loss_box"].backward()
    grad = box_deltas.grad.view(4, 3, 4)
    nonzero = grad.abs().sum(dim=2) > 0  # (K, num_classes)
    expected = torch.tensor([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]], dtype=torch.bool)
    assert torch.equal(nonzero, expected)
    # The regression targets of background rows are ignored entirely.
    changed = targets.clone()
    changed[[0, 2]] = 100.0
    a = fast_rcnn_loss(class_logits, box_deltas, labels, targets)["loss_box"]
    b = fast_rcnn_loss(class_logits, box_deltas, labels, changed)["loss_box"]
    assert a.item() == b.item()


def test_all_background_batch_has_zero_box_loss_and_empty_batch_is_zero():
    logits = torch.randn(5, 3)
    out = fast_rcnn_loss(
        logits, torch.randn(5, 8), torch.zeros(5, dtype=torch.long), torch.randn(5, 4)
    )
    assert out["loss_box"].item() == 0.0
    torch.testing.assert_close(
        out["loss"], F.cross_entropy(logits, torch.zeros(5, dtype=torch.long))
    )
    empty = fast_rcnn_loss(
        torch.zeros(0, 3), torch.zeros(0, 8), torch.zeros(0, dtype=torch.long), torch.zeros(0, 4)
    )
    assert empty["loss"].item() == 0.0


def test_fast_rcnn_loss_shape_errors():
    logits, labels, targets = torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.zeros(4, 4)
    with pytest.raises(ValueError, match=r"box_deltas must be Tensor\[4, 8\]"):
        fast_rcnn_loss(logits, torch.zeros(4, 12), labels, targets)  # 4 (K + 1) instead of 4K
    with pytest.raises(ValueError, match="labels must be Tensor"):
        fast_rcnn_loss(logits, torch.zeros(4, 8), labels[:3], targets)
