"""The graders of notebooks 04 (RoI pooling) and 06 (Fast R-CNN) accept right answers and name wrong ones."""

import pytest
import torch
import torchvision
from torch import nn

from fastrcnn_lite.fast_rcnn import FastRCNN, FastRCNNHead
from fastrcnn_lite.losses import fast_rcnn_loss
from fastrcnn_lite.roi_pool import roi_bin_edges, roi_pool, roi_pool_loop
from fastrcnn_lite.sampling import sample_rois
from fastrcnn_lite.svd import svd_linear
from fastrcnn_lite.teaching import grading
from fastrcnn_lite.teaching.grading.detect import detect_reference


def _loop_backward(features, rois, output_size, scale, grad_output):
    """An independent answer: autograd through the package's loop version."""
    x = features.clone().requires_grad_()
    y = roi_pool_loop(x, rois, output_size, scale)
    if not y.requires_grad:  # every bin empty: nothing routed
        return torch.zeros_like(features)
    return torch.autograd.grad(y, x, grad_output)[0]


def _routing_backward(features, rois, output_size, scale, grad_output, amax=False, add=True):
    """Argmax routing by hand (the notebook's answer), with two classic mistakes switchable."""
    _, hs, he, ws, we = roi_bin_edges(rois, output_size, scale, *features.shape[-2:])
    grad = torch.zeros_like(features)
    channels = torch.arange(features.shape[1])
    for k in range(len(rois)):
        n = int(rois[k, 0])
        for i in range(output_size[0]):
            for j in range(output_size[1]):
                y0, y1, x0, x1 = int(hs[k, i]), int(he[k, i]), int(ws[k, j]), int(we[k, j])
                if y1 <= y0 or x1 <= x0:
                    continue
                window = features[n, :, y0:y1, x0:x1].reshape(features.shape[1], -1)
                if amax:  # gradient split among equal maxima
                    share = (window == window.amax(1, keepdim=True)).float()
                    share = share / share.sum(1, keepdim=True)
                    g = (share * grad_output[k, :, i, j, None]).view(-1, y1 - y0, x1 - x0)
                    grad[n, :, y0:y1, x0:x1] += g
                    continue
                where = window.argmax(dim=1)
                ys, xs = y0 + where // (x1 - x0), x0 + where % (x1 - x0)
                if add:
                    grad[n, channels, ys, xs] += grad_output[k, :, i, j]
                else:
                    grad[n, channels, ys, xs] = grad_output[k, :, i, j]
    return grad


def test_roi_pool_graders_accept_independent_answers():
    assert "42 cases agree" in grading.check_roi_pool_forward(roi_pool_loop)
    assert "agree" in grading.check_roi_pool_forward(torchvision.ops.roi_pool)
    assert "agree" in grading.check_roi_pool_backward(_loop_backward)
    assert "agree" in grading.check_roi_pool_backward(_routing_backward)


def test_roi_pool_forward_grader_names_the_mistake():
    def from_zero(features, rois, size, scale):  # a max that starts at 0
        return roi_pool(features, rois, size, scale).clamp(min=0)

    with pytest.raises(grading.GradingError, match=r"(?s)case 2, all features negative.*hint"):
        grading.check_roi_pool_forward(from_zero)

    def torch_round(features, rois, size, scale):  # halves to even: 2.5 -> 2
        snapped = torch.round(rois[:, 1:] * scale) / scale
        return roi_pool(features, torch.cat([rois[:, :1], snapped], 1), size, scale)

    with pytest.raises(grading.GradingError, match=r"(?s)corners on half cells.*std::round"):
        grading.check_roi_pool_forward(torch_round)

    def stub(*args):
        raise NotImplementedError()

    with pytest.raises(grading.GradingError, match="not answered yet"):
        grading.check_roi_pool_forward(stub)


def test_roi_pool_backward_grader_names_ties_and_shared_cells():
    with pytest.raises(
        grading.GradingError, match=r"(?s)case 8, equal maxima.*FIRST one in row-major"
    ):
        grading.check_roi_pool_backward(lambda *a: _routing_backward(*a, amax=True))
    with pytest.raises(
        grading.GradingError, match=r"(?s)neighbouring bins share cells.*sum of their gradients"
    ):
        grading.check_roi_pool_backward(lambda *a: _routing_backward(*a, add=False))


def _sample(proposals, gt_boxes, gt_labels, size, fraction, generator):
    return sample_rois(proposals, gt_boxes, gt_labels, size, fraction, generator=generator)


def test_sample_rois_grader_checks_properties_not_one_draw():
    assert "agree" in grading.check_sample_rois(_sample)

    def reversed_order(*args):  # another valid draw order: still correct
        out = _sample(*args)
        return {k: v.flip(0) for k, v in out.items()}

    assert "agree" in grading.check_sample_rois(reversed_order)

    def no_gt(proposals, gt_boxes, gt_labels, size, fraction, generator):
        return sample_rois(
            proposals, gt_boxes, gt_labels, size, fraction, add_gt=False, generator=generator
        )

    with pytest.raises(grading.GradingError, match=r"(?s)case 1, the gt boxes join.*Concatenate"):
        grading.check_sample_rois(no_gt)

    def first_ones(proposals, gt_boxes, gt_labels, size, fraction, generator):  # no randomness
        return sample_rois(
            proposals, gt_boxes, gt_labels, size, fraction, generator=torch.Generator()
        )

    with pytest.raises(grading.GradingError, match="two different seeds gave the same sample"):
        grading.check_sample_rois(first_ones)


def test_multitask_loss_grader():
    assert "agree" in grading.check_multitask_loss(fast_rcnn_loss)

    def per_foreground(logits, deltas, labels, targets, weight):  # box term over fg RoIs only
        out = fast_rcnn_loss(logits, deltas, labels, targets, weight)
        num_fg = max(int((labels > 0).sum()), 1)
        box = out["loss_box"] * len(labels) / num_fg
        return {
            "loss_cls": out["loss_cls"],
            "loss_box": box,
            "loss": out["loss_cls"] + weight * box,
        }

    with pytest.raises(grading.GradingError, match=r"(?s)averaged over all RoIs.*'loss_box'"):
        grading.check_multitask_loss(per_foreground)


def test_truncated_svd_grader():
    assert "agree" in grading.check_truncated_svd(svd_linear)

    def bias_first(linear, rank):
        first, second = svd_linear(linear, rank)
        moved = nn.Linear(first.in_features, first.out_features, bias=True)
        moved.weight.data.copy_(first.weight)
        moved.bias.data.zero_()
        return nn.Sequential(moved, second)

    with pytest.raises(grading.GradingError, match=r"layers Linear\(6->4, bias\)"):
        grading.check_truncated_svd(bias_first)


def test_detect_reference_is_the_models_postprocess():
    head = FastRCNNHead(nn.Identity(), 8, num_classes=3)
    g = torch.Generator().manual_seed(0)
    means, stds = torch.randn(3, 4, generator=g) * 0.02, torch.rand(3, 4, generator=g) * 0.1 + 0.1
    model = FastRCNN(nn.Identity(), nn.Identity(), head, means, stds)
    logits, deltas = torch.randn(50, 4, generator=g) * 2, torch.randn(50, 12, generator=g)
    props = torch.rand(50, 2, generator=g) * 60
    props = torch.cat([props, props + 5 + torch.rand(50, 2, generator=g) * 40], 1)
    ours = detect_reference(logits, deltas, props, (100, 120), means, stds)
    theirs = model.postprocess(logits, deltas, props, (100, 120))
    assert len(theirs["scores"]) > 5
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(ours[key], theirs[key])


def test_detect_grader():
    assert "agree" in grading.check_detect(detect_reference)

    def global_nms(*args):  # one NMS over all classes
        out = detect_reference(*args)
        keep = torchvision.ops.nms(out["boxes"], out["scores"], args[7])
        return {k: v[keep] for k, v in out.items()}

    with pytest.raises(
        grading.GradingError, match=r"(?s)case 1, one proposal, class 2 wins: 1 detections where 2"
    ):
        grading.check_detect(global_nms)


def test_graders_are_registered_for_their_notebooks():
    for name, notebook in (
        ("check_roi_pool_forward", "04"),
        ("check_roi_pool_backward", "04"),
        ("check_sample_rois", "06"),
        ("check_multitask_loss", "06"),
        ("check_truncated_svd", "06"),
        ("check_detect", "06"),
    ):
        assert grading.EXERCISES[name].notebook == notebook and grading.EXERCISES[name].points > 0
