"""Graders for notebook 06 (Fast R-CNN): RoI sampling, the multi-task loss, truncated SVD, detection.

Data-flow stage: none (teaching aid) for **sampling, losses, heads and detections**. The references
are the package's :func:`~fastrcnn_lite.sampling.sample_rois`,
:func:`~fastrcnn_lite.losses.fast_rcnn_loss`, :func:`~fastrcnn_lite.svd.svd_linear` and the
post-processing of :meth:`FastRCNN.postprocess <fastrcnn_lite.fast_rcnn.FastRCNN.postprocess>`
(:func:`detect_reference` composes the same steps; ``tests/test_grading_roi_fast.py`` checks they
agree). The learner's functions:

- ``sample(proposals, gt_boxes, gt_labels, batch_size_per_image, positive_fraction, generator)``
  -> dict with ``boxes`` (Tensor[S, 4]), ``labels`` (Tensor[S] int64) and ``regression_targets``
  (Tensor[S, 4]). Sampling is random, so it is graded by what any correct sample satisfies: how
  many foreground and background RoIs, each RoI a distinct candidate (gt boxes included) in the
  right IoU range with the right label and target, the same sample for the same seed and another
  one for another seed.
- ``loss(class_logits, box_deltas, labels, regression_targets, box_loss_weight)`` -> dict with
  ``loss_cls``, ``loss_box`` and ``loss``.
- ``compress(linear, rank)`` -> ``nn.Sequential`` of two ``nn.Linear`` (truncated SVD).
- ``postprocess(class_logits, box_deltas, proposals, image_size, box_means, box_stds,
  score_thresh, nms_thresh, detections_per_img)`` -> dict with ``boxes``, ``scores``, ``labels``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...boxes import box_iou, decode_boxes, encode_boxes
from ...detect import postprocess_detections
from ...losses import fast_rcnn_loss
from ...sampling import sample_rois
from ...svd import svd_linear
from .boxes import random_boxes
from .core import Case, differ, exercise, grade

__all__ = [
    "check_sample_rois",
    "check_multitask_loss",
    "check_truncated_svd",
    "check_detect",
    "detect_reference",
]

FG_IOU, BG_HI, BG_LO = 0.5, 0.5, 0.1  # the paper's thresholds (section 2.3)


# ----------------------------------------------------------------------------- sampling


@dataclass
class _SampleRule:
    """What every correct sample of one case satisfies (shown as "expected" when one fails)."""

    num_fg: int
    num_bg: int
    candidates: Tensor  # (G + P, 4): gt boxes first, then the proposals
    max_iou: Tensor  # (G + P,)
    label: Tensor  # (G + P,) the class of the best gt box, 0 below the fg threshold
    target: Tensor  # (G + P, 4) encode(candidate, best gt box), zeros for background

    def __repr__(self) -> str:
        return (
            f"{self.num_fg} foreground RoIs (IoU >= {FG_IOU}, labelled with their gt box's class) "
            f"+ {self.num_bg} background RoIs (IoU in [{BG_LO}, {BG_HI}), label 0)"
        )


def _sample_rule(proposals, gt_boxes, gt_labels, batch_size_per_image, positive_fraction, seeds):
    """The reference: what must hold (from the inputs, with an independent IoU count)."""
    candidates = torch.cat([gt_boxes, proposals])  # (G + P, 4)
    iou = box_iou(candidates, gt_boxes)  # (G + P, G)
    max_iou, matched = iou.max(dim=1)
    fg = max_iou >= FG_IOU
    bg = (max_iou >= BG_LO) & (max_iou < BG_HI)
    label = torch.where(fg, gt_labels[matched], 0)
    target = torch.where(fg[:, None], encode_boxes(candidates, gt_boxes[matched]), 0.0)
    num_fg = min(round(positive_fraction * batch_size_per_image), int(fg.sum()))
    num_bg = min(batch_size_per_image - num_fg, int(bg.sum()))
    # The package's sampler must satisfy the same rule (an internal check of the reference).
    package = sample_rois(
        proposals, gt_boxes, gt_labels, batch_size_per_image, positive_fraction,
        generator=torch.Generator().manual_seed(seeds[0]),
    )  # fmt: skip
    assert (
        int((package["labels"] > 0).sum()) == num_fg and len(package["labels"]) == num_fg + num_bg
    )
    return _SampleRule(num_fg, num_bg, candidates, max_iou, label, target)


def _check_one_sample(got, rule: _SampleRule) -> tuple[str | None, Tensor | None]:
    """(why it is wrong or None, the candidate index of each returned RoI)."""
    if not isinstance(got, dict) or not {"boxes", "labels", "regression_targets"} <= set(got):
        return "expected a dict with 'boxes', 'labels' and 'regression_targets'", None
    boxes, labels, targets = (
        torch.as_tensor(got[k]) for k in ("boxes", "labels", "regression_targets")
    )
    size = rule.num_fg + rule.num_bg
    if boxes.shape != (size, 4) or labels.shape != (size,) or targets.shape != (size, 4):
        return (
            f"boxes {tuple(boxes.shape)}, labels {tuple(labels.shape)}, regression_targets "
            f"{tuple(targets.shape)} where ({size}, 4), ({size},), ({size}, 4) were expected "
            f"({rule.num_fg} foreground + {rule.num_bg} background)"
        ), None
    num_fg = int((labels > 0).sum())
    if num_fg != rule.num_fg:
        return f"{num_fg} foreground RoIs where {rule.num_fg} were expected", None
    if size == 0:
        return None, boxes.new_zeros(0, dtype=torch.long)
    same = torch.isclose(
        boxes.double()[:, None, :], rule.candidates.double()[None], atol=1e-4, rtol=0
    ).all(dim=2)  # (S, G + P)
    if not bool(same.any(dim=1).all()):
        row = int((~same.any(dim=1)).nonzero()[0])
        return f"RoI {row} {boxes[row].tolist()} is neither a proposal nor a gt box", None
    index = same.float().argmax(dim=1)  # (S,) candidate of each RoI
    if len(set(index.tolist())) < size:
        return "the same candidate is sampled twice (sample without replacement)", None
    for row, i in enumerate(index.tolist()):
        iou = float(rule.max_iou[i])
        if int(labels[row]) != int(rule.label[i]) or (int(labels[row]) == 0 and iou < BG_LO):
            what = (
                "is never used (IoU < 0.1)"
                if iou < BG_LO
                else f"should have label {int(rule.label[i])}"
            )
            return f"RoI {row} (max IoU {iou:.3f}) has label {int(labels[row])} but {what}", None
    why = differ(targets.double(), rule.target[index].double(), atol=1e-4, rtol=1e-4)
    if why:
        return f"regression_targets: {why}", None
    return None, index


def _sample_compare(got, rule: _SampleRule) -> str | None:
    samples = got  # one result per seed
    indices = []
    for number, one in enumerate(samples):
        why, index = _check_one_sample(one, rule)
        if why:
            return why if len(samples) == 1 else f"with seed number {number + 1}: {why}"
        indices.append(set(index.tolist()))
    if len(indices) == 3:
        if indices[0] != indices[1]:
            return "the same seed gave two different samples: draw every random number from `generator`"
        if indices[0] == indices[2]:
            return "two different seeds gave the same sample: sample at random (torch.randperm with generator)"
    return None


@exercise(
    "06", points=3, task="sample one image's RoIs: 25% foreground, background IoU in [0.1, 0.5)"
)
def check_sample_rois(fn: Callable, random_cases: int = 10) -> str:
    """``fn(proposals, gt_boxes, gt_labels, batch_size_per_image, positive_fraction, generator)``."""
    __tracebackhide__ = True

    def run(proposals, gt_boxes, gt_labels, batch_size_per_image, positive_fraction, seeds):
        return [
            fn(
                proposals.clone(), gt_boxes.clone(), gt_labels.clone(), batch_size_per_image,
                positive_fraction, torch.Generator().manual_seed(s),
            )
            for s in seeds
        ]  # fmt: skip

    gt = torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 20.0, 90.0, 80.0]])
    labels = torch.tensor([2, 1])
    shifts = torch.arange(1, 41, 2.0)  # never 0: no proposal duplicates a gt box
    near_a = torch.stack(
        [10 + shifts, 10 + 0 * shifts, 50 + shifts, 50 + 0 * shifts], 1
    )  # IoU 1 .. 0
    near_b = torch.stack([60 + 0 * shifts, 20 + shifts, 90 + 0 * shifts, 80 + shifts], 1)
    many = torch.cat([near_a, near_b])  # (40, 4): every IoU range
    g = torch.Generator().manual_seed(7)
    cases = [
        Case(
            "the gt boxes join the proposals (no proposal reaches IoU 0.5)",
            (torch.tensor([[30.0, 30.0, 70.0, 70.0]]), gt, labels, 8, 0.25, (0,)),
            hint="Concatenate gt_boxes in front of the proposals before matching: each gt box is a "
            "foreground RoI of IoU 1.",
        ),
        Case(
            "IoU exactly 0.5 is foreground",
            (torch.tensor([[10.0, 10.0, 50.0, 90.0]]), gt[:1], labels[:1], 8, 0.5, (0,)),
            hint="Foreground means max IoU >= 0.5; background max IoU in [0.1, 0.5).",
        ),
        Case(
            "proposals below IoU 0.1 are never used",
            (
                torch.tensor([[0.0, 0.0, 8.0, 8.0], [200.0, 200.0, 220.0, 220.0]]),
                gt,
                labels,
                8,
                0.25,
                (0,),
            ),
            hint="A proposal whose best IoU is below 0.1 is neither foreground nor background: skip it.",
        ),
        Case(
            "a proposal overlapping two gt boxes takes the class of the better one",
            (
                torch.tensor([[20.0, 12.0, 70.0, 50.0], [40.0, 15.0, 85.0, 78.0]]),
                gt,
                labels,
                8,
                0.5,
                (0,),
            ),
            hint="Match each RoI to the gt box of highest IoU (argmax over gt boxes), take its label.",
        ),
        Case(
            "more foreground candidates than 25% of the batch",
            (many, gt, labels, 16, 0.25, (0,)),
            hint="At most round(positive_fraction * batch_size_per_image) foreground RoIs; fill the "
            "rest with background RoIs.",
        ),
        Case(
            "too few background candidates: fewer RoIs than the batch size",
            (near_a[:12], gt, labels, 64, 0.25, (0,)),
            hint="Take min(batch_size_per_image - num_fg, number of background candidates) "
            "background RoIs: the batch may be smaller than batch_size_per_image.",
        ),
        Case(
            "regression targets: deltas to the matched gt box, zeros for background",
            (near_a[:6] + 0.5, gt[:1], labels[:1], 8, 0.5, (0,)),
            hint="regression_targets = encode_boxes(roi, its best gt box) for foreground rows, 0 for "
            "background rows.",
        ),
        Case(
            "the same seed twice, then another seed (randomness from `generator`)",
            (many, gt, labels, 8, 0.25, (0, 0, 1)),
            hint="Choose with torch.randperm(n, generator=generator): reproducible for a seed, "
            "different across seeds.",
        ),
    ]
    for _ in range(random_cases):
        num_gt = int(torch.randint(1, 4, (1,), generator=g))
        gt_boxes = random_boxes(num_gt, g, torch.float32) * 2  # (G, 4) in a 160 x 160 image
        jitter = torch.randn(60, 4, generator=g) * 8
        raw = gt_boxes[torch.randint(0, num_gt, (60,), generator=g)] + jitter  # (60, 4)
        low, high = torch.minimum(raw[:, :2], raw[:, 2:]), torch.maximum(raw[:, :2], raw[:, 2:])
        props = torch.cat([low, high + 1], dim=1)  # (60, 4), x1 < x2 and y1 < y2
        gt_labels = torch.randint(1, 6, (num_gt,), generator=g)
        size, fraction = [(16, 0.25), (32, 0.25), (8, 0.5)][
            int(torch.randint(0, 3, (1,), generator=g))
        ]
        cases.append(Case("random image", (props, gt_boxes, gt_labels, size, fraction, (3,))))
    return grade(
        run,
        _sample_rule,
        cases,
        name="check_sample_rois",
        against="the rules of fastrcnn_lite.sample_rois (counts, IoU ranges, labels, targets)",
        compare=_sample_compare,
        covered="gt boxes as RoIs, IoU 0.5 exactly, the 25% cap, short batches, seeds",
    )


# ----------------------------------------------------------------------------- loss


def _loss_compare(got, expected) -> str | None:
    if not isinstance(got, dict):
        return f"expected a dict with 'loss_cls', 'loss_box' and 'loss', got {type(got).__name__}"
    for key in ("loss_cls", "loss_box", "loss"):
        if key not in got:
            return f"the dict has no '{key}'"
        value = got[key]
        if isinstance(value, Tensor) and value.dim() != 0:
            return f"'{key}' must be a scalar (a 0-d tensor); got shape {tuple(value.shape)}"
        why = differ(value, expected[key], atol=1e-5, rtol=1e-4)
        if why:
            return f"'{key}': {why}"
    return None


@exercise("06", points=2, task="the multi-task loss: log loss + lambda [u >= 1] smooth L1, per RoI")
def check_multitask_loss(fn: Callable, random_cases: int = 10) -> str:
    """``fn(class_logits, box_deltas, labels, regression_targets, box_loss_weight)`` -> dict."""
    __tracebackhide__ = True
    g = torch.Generator().manual_seed(8)
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 1.5, 0.2], [0.0, 0.3, 2.5], [1.0, 1.0, 1.0]])
    deltas = torch.tensor([
        [9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0],
        [0.2, -0.1, 0.5, 0.0, 7.0, 7.0, 7.0, 7.0],
        [5.0, 5.0, 5.0, 5.0, 0.4, 2.0, -0.3, -3.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ])  # fmt: skip
    targets = torch.tensor(
        [[0.0, 0.0, 0.0, 0.0], [0.1, 0.1, 0.0, 0.5], [0.0, 0.5, 0.2, 0.5], [0.3, -0.2, 0.1, 0.0]]
    )
    cases = [
        Case(
            "all RoIs background: no box term",
            (logits, deltas, torch.zeros(4, dtype=torch.long), targets, 1.0),
            hint="[u >= 1] switches the box term off for background (u = 0): loss_box is 0.",
        ),
        Case(
            "one foreground RoI: only its true class's deltas count",
            (logits[1:2], deltas[1:2], torch.tensor([1]), targets[1:2], 1.0),
            hint="Class u's deltas are columns 4(u - 1) to 4u of box_deltas (background has none).",
        ),
        Case(
            "residuals beyond 1: smooth L1 is linear there",
            (logits[2:3], deltas[2:3], torch.tensor([2]), targets[2:3], 1.0),
            hint="smooth_L1(x) = 0.5 x^2 if |x| < 1, else |x| - 0.5, summed over the 4 coordinates.",
        ),
        Case(
            "both terms averaged over all RoIs, background included",
            (logits, deltas, torch.tensor([0, 1, 2, 1]), targets, 1.0),
            hint="Divide both sums by the number of RoIs K (4 here), not by the foreground count.",
        ),
        Case(
            "lambda = 2",
            (logits, deltas, torch.tensor([0, 1, 2, 1]), targets, 2.0),
            hint="loss = loss_cls + box_loss_weight * loss_box.",
        ),
        Case(
            "large logits (a naive softmax overflows)",
            (logits * 400, deltas, torch.tensor([0, 1, 2, 1]), targets, 1.0),
            hint="exp(800) overflows float32: use F.cross_entropy or log_softmax, not log(softmax).",
        ),
    ]
    for _ in range(random_cases):
        k, classes = 32, 5
        cases.append(
            Case(
                "32 random RoIs, 5 classes",
                (
                    torch.randn(k, classes + 1, generator=g) * 2,
                    torch.randn(k, 4 * classes, generator=g) * 2,
                    torch.randint(0, classes + 1, (k,), generator=g),
                    torch.randn(k, 4, generator=g),
                    1.0,
                ),
            )
        )
    return grade(
        fn,
        fast_rcnn_loss,
        cases,
        name="check_multitask_loss",
        against="fastrcnn_lite.losses.fast_rcnn_loss",
        compare=_loss_compare,
        covered="background RoIs, the true class's deltas, |x| >= 1, per-RoI averaging, large logits",
    )


# ----------------------------------------------------------------------------- truncated SVD


def _factored_summary(module, linear: nn.Linear) -> dict:
    """The layers (as words) and the outputs on fixed inputs, to compare two factorisations."""
    if not isinstance(module, nn.Sequential) or not all(isinstance(m, nn.Linear) for m in module):
        kinds = (
            [type(m).__name__ for m in module]
            if isinstance(module, nn.Sequential)
            else type(module).__name__
        )
        return {"layers": f"not an nn.Sequential of nn.Linear layers: {kinds}"}
    layers = " -> ".join(
        f"Linear({m.in_features}->{m.out_features}, {'bias' if m.bias is not None else 'no bias'})"
        for m in module
    )
    x = torch.randn(5, linear.in_features, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        return {"layers": layers, "output": module(x).detach()}


def _svd_compare(got, expected) -> str | None:
    if got["layers"] != expected["layers"]:
        return f"layers {got['layers']} where {expected['layers']} was expected"
    why = differ(got["output"], expected["output"], atol=1e-4, rtol=1e-4)
    return f"outputs on 5 random inputs: {why}" if why else None


@exercise("06", points=2, task="truncated SVD of a linear layer: W ~ U_t S_t V_t^T as two layers")
def check_truncated_svd(fn: Callable, random_cases: int = 6) -> str:
    """``fn(linear, rank)`` -> ``nn.Sequential(Linear(v, t, bias=False), Linear(t, u))``."""
    __tracebackhide__ = True

    def run(compress):
        def wrapped(linear, rank):
            return _factored_summary(compress(linear, rank), linear)

        return wrapped

    def layer(v, u, bias=True, seed=0):
        torch.manual_seed(seed)  # nn.Linear draws its weights from the global generator
        return nn.Linear(v, u, bias=bias)

    with torch.random.fork_rng():
        cases = [
            Case(
                "full rank: the layer is reproduced",
                (layer(6, 4), 4),
                hint="At t = min(u, v) nothing is dropped: U S V^T is W itself.",
            ),
            Case(
                "rank 1",
                (layer(8, 5, seed=1), 1),
                hint="Keep the t LARGEST singular values (torch.linalg.svd sorts them in "
                "decreasing order): U[:, :t], S[:t], Vh[:t].",
            ),
            Case(
                "bias only on the second layer",
                (layer(10, 6, seed=2), 3),
                hint="The first layer S_t V_t^T has no bias (bias=False); the second, U_t, keeps the "
                "original bias.",
            ),
            Case(
                "a wide layer (v > u), rank 2",
                (layer(12, 3, seed=3), 2),
                hint="W is u x v (out x in): the first layer is t x v, the second u x t.",
            ),
            Case(
                "a layer without bias",
                (layer(7, 9, bias=False, seed=4), 3),
                hint="When the original layer has no bias, neither layer has one.",
            ),
        ]
        for seed in range(random_cases):
            v, u = (int(s) for s in torch.randint(4, 40, (2,)))
            rank = int(torch.randint(1, min(u, v) + 1, (1,)))
            cases.append(Case("a random layer", (layer(v, u, seed=10 + seed), rank)))
    return grade(
        run(fn),
        run(svd_linear),
        cases,
        name="check_truncated_svd",
        against="fastrcnn_lite.svd.svd_linear",
        compare=_svd_compare,
        covered="full rank, rank 1, bias placement, wide layers, no bias",
    )


# ----------------------------------------------------------------------------- detection


def detect_reference(
    class_logits: Tensor,
    box_deltas: Tensor,
    proposals: Tensor,
    image_size: tuple[int, int],
    box_means: Tensor,
    box_stds: Tensor,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.3,
    detections_per_img: int = 100,
) -> dict[str, Tensor]:
    """Test-time decoding of one image, the steps of ``FastRCNN.postprocess`` (section 3).

    Args:
        class_logits (Tensor[P, K + 1]), box_deltas (Tensor[P, 4K]): the head's outputs.
        proposals (Tensor[P, 4]): the image's proposals, in the pixels of ``image_size``.
        box_means, box_stds (Tensor[K, 4]): the regression-target statistics (un-normalise).

    Returns:
        dict with ``boxes`` (Tensor[D, 4]), ``scores`` (Tensor[D]), ``labels`` (Tensor[D] in 1..K).
    """
    num_props, k = len(proposals), box_means.shape[0]
    scores = F.softmax(class_logits, dim=1)  # (P, K + 1)
    deltas = box_deltas.reshape(num_props, k, 4) * box_stds + box_means  # (P, K, 4)
    boxes = decode_boxes(proposals, deltas.reshape(num_props, 4 * k))  # (P, 4K)
    return postprocess_detections(
        boxes.reshape(num_props, k, 4), scores[:, 1:], image_size, score_thresh, nms_thresh,
        detections_per_img,
    )  # fmt: skip


def _detections_compare(got, expected) -> str | None:
    if not isinstance(got, dict) or not {"boxes", "scores", "labels"} <= set(got):
        return "expected a dict with 'boxes', 'scores' and 'labels'"
    boxes, scores, labels = (torch.as_tensor(got[k]) for k in ("boxes", "scores", "labels"))
    if len(scores) != len(expected["scores"]):
        return f"{len(scores)} detections where {len(expected['scores'])} were expected"
    order = torch.argsort(scores, descending=True, stable=True)
    for key, value in (("scores", scores), ("labels", labels), ("boxes", boxes)):
        why = differ(value[order], expected[key], atol=1e-4, rtol=1e-4)
        if why:
            return f"'{key}' (sorted by score): {why}"
    return None


@exercise("06", points=3, task="test-time decoding: softmax, per-class boxes, per-class NMS")
def check_detect(fn: Callable, random_cases: int = 10) -> str:
    """``fn(class_logits, box_deltas, proposals, image_size, box_means, box_stds, score_thresh,
    nms_thresh, detections_per_img)`` must give :func:`detect_reference`'s detections."""
    __tracebackhide__ = True
    g = torch.Generator().manual_seed(11)
    size = (100, 120)  # (height, width)
    zeros2, ones2 = torch.zeros(2, 4), torch.ones(2, 4)

    def logits_for(*rows):  # probabilities -> logits
        return torch.tensor(rows).log()

    box = torch.tensor([[20.0, 20.0, 60.0, 60.0]])
    overlapping = torch.tensor([[20.0, 20.0, 60.0, 60.0], [24.0, 20.0, 64.0, 60.0]])  # IoU 0.82
    medium = torch.tensor([[20.0, 20.0, 60.0, 60.0], [36.0, 20.0, 76.0, 60.0]])  # IoU 0.43
    cases = [
        Case(
            "one proposal, class 2 wins",
            (
                logits_for([0.1, 0.2, 0.7]),
                torch.zeros(1, 8),
                box,
                size,
                zeros2,
                ones2,
                0.05,
                0.3,
                100,
            ),
            hint="Scores are the softmax of class_logits; column 0 is background, columns 1..K the "
            "classes (labels 1..K). Keep every class above score_thresh, not only the best.",
        ),
        Case(
            "background wins: nothing above the score threshold",
            (
                logits_for([0.97, 0.02, 0.01]),
                torch.zeros(1, 8),
                box,
                size,
                zeros2,
                ones2,
                0.05,
                0.3,
                100,
            ),
            hint="Drop the background column before thresholding: a background RoI is no detection.",
        ),
        Case(
            "each class uses its own deltas",
            (
                logits_for([0.1, 0.5, 0.4]),
                torch.tensor([[0.1, 0.0, 0.0, 0.0, -0.1, 0.0, 0.2, 0.0]]),
                box,
                size,
                zeros2,
                ones2,
                0.05,
                0.3,
                100,
            ),
            hint="Class k's deltas are columns 4(k - 1) to 4k of box_deltas: one box per class.",
        ),  # fmt: skip
        Case(
            "deltas are normalised: un-normalise with means and stds",
            (
                logits_for([0.1, 0.9, 0.0 + 1e-6]),
                torch.tensor([[1.0, -1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]]),
                box,
                size,
                torch.tensor([[0.05, 0.0, 0.1, 0.0]] * 2),
                torch.tensor([[0.1, 0.1, 0.2, 0.2]] * 2),
                0.05,
                0.3,
                100,
            ),
            hint="Before decoding: deltas * box_stds[k - 1] + box_means[k - 1] (the targets were "
            "normalised in training).",
        ),  # fmt: skip
        Case(
            "boxes pushed past the image border are clipped",
            (
                logits_for([0.1, 0.9, 1e-6]),
                torch.tensor([[-0.3, -0.4, 0.3, 0.3, 0.0, 0.0, 0.0, 0.0]]),
                torch.tensor([[2.0, 4.0, 40.0, 50.0]]),
                size,
                zeros2,
                ones2,
                0.05,
                0.3,
                100,
            ),
            hint="Clip x to [0, width] and y to [0, height]; image_size is (height, width).",
        ),  # fmt: skip
        Case(
            "two overlapping boxes of one class: NMS keeps the better",
            (
                logits_for([0.1, 0.8, 0.1], [0.2, 0.7, 0.1]),
                torch.zeros(2, 8),
                overlapping,
                size,
                zeros2,
                ones2,
                0.05,
                0.3,
                100,
            ),
            hint="Run NMS per class (IoU > nms_thresh suppresses), highest score first.",
        ),  # fmt: skip
        Case(
            "two overlapping boxes of different classes: per-class NMS keeps both",
            (
                logits_for([0.1, 0.85, 0.05], [0.1, 0.05, 0.85]),
                torch.zeros(2, 8),
                overlapping,
                size,
                zeros2,
                ones2,
                0.5,
                0.3,
                100,
            ),
            hint="Boxes of different classes never suppress each other (batched_nms with the labels).",
        ),  # fmt: skip
        Case(
            "IoU 0.43: above the paper's NMS threshold 0.3",
            (
                logits_for([0.1, 0.8, 0.1], [0.2, 0.7, 0.1]),
                torch.zeros(2, 8),
                medium,
                size,
                zeros2,
                ones2,
                0.05,
                0.3,
                100,
            ),
            hint="Use nms_thresh (0.3 in the paper), not 0.5.",
        ),  # fmt: skip
        Case(
            "at most detections_per_img, the best first",
            (
                torch.randn(30, 3, generator=g),
                torch.randn(30, 8, generator=g) * 0.1,
                random_boxes(30, g, torch.float32),
                size,
                zeros2,
                ones2,
                0.05,
                0.3,
                5,
            ),
            hint="After NMS keep the detections_per_img highest-scoring detections of all classes.",
        ),  # fmt: skip
    ]
    for _ in range(random_cases):
        p, k = 40, 3
        cases.append(
            Case(
                "40 random proposals, 3 classes",
                (
                    torch.randn(p, k + 1, generator=g) * 2,
                    torch.randn(p, 4 * k, generator=g),
                    random_boxes(p, g, torch.float32),
                    size,
                    torch.randn(k, 4, generator=g) * 0.02,
                    torch.rand(k, 4, generator=g) * 0.1 + 0.1,
                    0.05,
                    0.3,
                    100,
                ),
            )
        )
    return grade(
        fn,
        detect_reference,
        cases,
        name="check_detect",
        against="fastrcnn_lite's Fast R-CNN post-processing (FastRCNN.postprocess)",
        compare=_detections_compare,
        covered="background dropped, per-class deltas, un-normalising, clipping, per-class NMS, cap",
    )
