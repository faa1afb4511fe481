"""Grader for notebook 06's RoI sampling exercise (Fast R-CNN section 2.3, "Mini-batch sampling").

Data-flow stage: none (teaching aid) for **proposals -> the RoIs a training iteration uses**. The
reference is the rule :func:`~fastrcnn_lite.sampling.sample_rois` follows (its own output is
checked against the rule too). The learner's function:

- ``sample(proposals, gt_boxes, gt_labels, batch_size_per_image, positive_fraction, generator)``
  with ``proposals`` Tensor[P, 4], ``gt_boxes`` Tensor[G, 4] and ``gt_labels`` Tensor[G] (1..K)
  -> dict with ``boxes`` (Tensor[R, 4]), ``labels`` (Tensor[R] int64, 0 = background) and
  ``regression_targets`` (Tensor[R, 4]), R the RoIs sampled from this image. Sampling is random,
  so it is graded by what any correct sample satisfies: how many foreground and background RoIs,
  each RoI a distinct candidate (gt boxes included) in the right IoU range with the right label
  and target, the same sample for the same seed and another one for another seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ...boxes import box_iou, encode_boxes
from ...sampling import sample_rois
from .boxes import random_boxes
from .core import Case, differ, exercise, grade

__all__ = ["check_sample_rois"]

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
    ).all(dim=2)  # (R, G + P)
    if not bool(same.any(dim=1).all()):
        row = int((~same.any(dim=1)).nonzero()[0])
        return f"RoI {row} {boxes[row].tolist()} is neither a proposal nor a gt box", None
    index = same.float().argmax(dim=1)  # (R,) candidate of each RoI
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
    """Grade ``fn(proposals, gt_boxes, gt_labels, batch_size_per_image, positive_fraction,
    generator)`` (see the module docstring). Notebook 06 grades its RoI sampling exercise with it."""
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
