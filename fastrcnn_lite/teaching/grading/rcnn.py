"""Graders for notebook 03 (R-CNN): the context warp, one round of hard-negative mining, the
bounding-box regression targets.

Data-flow stage: none (teaching aid). The references are the package's own stages:
``fastrcnn_lite.warp.warp_regions`` (checked against a slow loop in ``tests/test_warp.py``),
``fastrcnn_lite.svm.mine_hard_negatives`` (the rule ``train_svms`` applies) and
``fastrcnn_lite.region_heads.regression_targets`` (what ``SVMRegions.regression_set`` gathers
for the ridge regressors).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...region_heads import regression_targets
from ...svm import EASY_NEGATIVE_THRESH, HARD_NEGATIVE_THRESH, mine_hard_negatives
from ...warp import warp_regions
from .boxes import random_boxes
from .core import Case, describe, differ, exercise, grade

__all__ = ["check_warp", "check_hard_negatives", "check_bbox_targets"]


# ----------------------------------------------------------------------------------------------
# Warping one proposal with context
# ----------------------------------------------------------------------------------------------
def _warp_reference(image: torch.Tensor, box: torch.Tensor, size: int, context: int):
    return warp_regions(image, box[None], size, context)[0]  # (3, size, size)


def _warp_compare(got, expected) -> str | None:
    if not isinstance(got, torch.Tensor):
        return f"expected a Tensor[3, size, size], got {type(got).__name__}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"shape {tuple(got.shape)} where {tuple(expected.shape)} was expected"
    close = torch.isclose(got.detach().double(), expected.double(), atol=1e-4, rtol=0)
    if bool(close.all()):
        return None
    channel, row, col = (~close).nonzero()[0].tolist()
    return (
        f"{int((~close).sum())} of {close.numel()} values differ by more than 1e-4; the first at "
        f"channel {channel}, row {row}, column {col}: {got[channel, row, col].item():.4f} where "
        f"{expected[channel, row, col].item():.4f} was expected"
    )


@exercise("03", points=3, task="warp one proposal with context padding (R-CNN appendix A)")
def check_warp(
    fn: Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor], trials: int = 8
) -> str:
    """``fn(image, box, size, context) -> Tensor[3, size, size]`` must match ``warp_regions``.

    Notebook 03 grades its warp exercise with it.

    image (Tensor[3, H, W]) float, box (Tensor[4]) (x1, y1, x2, y2) continuous pixels; the box is
    dilated so that ``context`` output pixels of image surround it, the output pixel centres are
    sampled bilinearly, and outside the image the per-channel mean of the image fills in.
    """
    __tracebackhide__ = True
    g = torch.Generator().manual_seed(30)
    image = torch.rand(3, 24, 32, generator=g)  # H = 24, W = 32
    flat = torch.zeros(3, 24, 32)
    flat[0], flat[1], flat[2] = 0.2, 0.5, 0.8  # a flat image: every warp of it is its colour
    ramp = (torch.arange(32.0) / 31).expand(3, 24, 32).clone()  # brightness grows to the right

    def box(*xyxy: float) -> torch.Tensor:
        return torch.tensor(xyxy)

    cases = [
        Case(
            "a proposal in the middle of the image, no context",
            (image, box(8.0, 6.0, 20.0, 18.0), 12, 0),
            hint="Output pixel (i, j) samples the box at x = x1 + (j + 0.5) * (x2 - x1) / size "
            "(its centre), and bilinear interpolation uses the pixel centres at x = col + 0.5.",
        ),
        Case(
            "a proposal in the middle of the image, 3 px of context",
            (image, box(8.0, 6.0, 20.0, 18.0), 16, 3),
            hint="Dilate first: each side grows by context * width / (size - 2 * context) image "
            "pixels, so that the box fills the central size - 2 * context pixels of the crop.",
        ),
        Case(
            "a wide, short proposal (x and y are scaled separately)",
            (ramp, box(8.0, 10.0, 24.0, 14.0), 12, 2),
            hint="R-CNN warps anisotropically: the x step is (x2 - x1) / size and the y step "
            "(y2 - y1) / size, each from its own side of the (dilated) box.",
        ),
        Case(
            "a proposal at the image border: the context leaves the image",
            (image, box(0.0, 0.0, 10.0, 8.0), 16, 4),
            hint="Samples (and bilinear neighbours) outside the image take the image's "
            "per-channel mean, image.mean(dim=(1, 2)), not 0 and not the nearest edge pixel.",
        ),
        Case(
            "a flat image, proposal at the border: the whole crop is the image's colour",
            (flat, box(20.0, 14.0, 32.0, 24.0), 12, 3),
            hint="Outside the image the fill is the per-channel mean, so a flat image warps to "
            "its own colour everywhere.",
        ),
        Case(
            "a tiny proposal (1.5 x 1 pixels) blown up to 16 x 16",
            (image, box(10.25, 7.0, 11.75, 8.0), 16, 2),
            hint="Do not round the box to whole pixels: the corners are continuous, and a tiny "
            "box is interpolated between the centres of the pixels around it.",
        ),
        Case(
            "a proposal covering the whole image, with context all around it",
            (image, box(0.0, 0.0, 32.0, 24.0), 12, 2),
            hint="The context ring lies entirely outside the image: the mean fills it.",
        ),
    ]
    for _ in range(trials):
        size = int(torch.randint(8, 21, (1,), generator=g))
        context = int(torch.randint(0, (size - 1) // 2 + 1, (1,), generator=g))
        xy = torch.rand(2, generator=g) * torch.tensor([28.0, 20.0])
        wh = torch.rand(2, generator=g) * 14 + 0.5
        cases.append(
            Case(
                f"a random proposal, size {size}, context {context}",
                (image, torch.cat([xy, xy + wh]), size, context),
            )
        )
    return grade(
        fn,
        _warp_reference,
        cases,
        name="check_warp",
        against="fastrcnn_lite.warp_regions",
        compare=_warp_compare,
        covered="context leaving the image, tiny and anisotropic proposals",
    )


# ----------------------------------------------------------------------------------------------
# One round of hard-negative mining for one class
# ----------------------------------------------------------------------------------------------
def _mining_reference(features, weight, bias, negative_mask, cached):
    return mine_hard_negatives(features @ weight + bias, negative_mask, cached)


def _mining_compare(got, expected) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a pair (cached, hard) of bool Tensor[P], got {describe(got)}"
    for what, g, e in zip(("the new cache", "the hard negatives"), got, expected, strict=True):
        if not isinstance(g, torch.Tensor):
            return f"{what}: expected a bool Tensor[P], got {type(g).__name__}"
        if tuple(g.shape) != tuple(e.shape):
            return f"{what}: shape {tuple(g.shape)} where {tuple(e.shape)} was expected"
        g = g.bool()
        if not torch.equal(g, e):
            region = int((g != e).nonzero()[0, 0])
            return (
                f"{what} differs at region {region}: {bool(g[region])} where {bool(e[region])} "
                "was expected"
            )
    return None


@exercise("03", points=3, task="one round of hard-negative mining for one class")
def check_hard_negatives(fn: Callable, trials: int = 10) -> str:
    """``fn(features, weight, bias, negative_mask, cached) -> (cached, hard)`` must match
    ``mine_hard_negatives(features @ weight + bias, negative_mask, cached)``.

    Notebook 03 grades its hard-negative mining exercise with it.

    features (Tensor[P, F]), weight (Tensor[F]), bias (float): one class's SVM;
    negative_mask, cached (bool Tensor[P]). A negative scoring above -1 that is not cached yet is
    hard and joins the cache; a cached one scoring below -1.2 leaves it.
    """
    __tracebackhide__ = True
    # F = 2 and weight (1, 0): a region's score is its first feature (plus the bias), exactly.
    w = torch.tensor([1.0, 0.0], dtype=torch.float64)

    def regions(*scores: float) -> torch.Tensor:
        x = torch.tensor(scores, dtype=torch.float64)
        return torch.stack([x, torch.full_like(x, 7.0)], dim=1)  # (P, 2)

    def mask(*bits: int) -> torch.Tensor:
        return torch.tensor(bits, dtype=torch.bool)

    hard, easy = HARD_NEGATIVE_THRESH, EASY_NEGATIVE_THRESH
    cases = [
        Case(
            "negatives not cached yet, scored on both sides of the margin",
            (regions(0.5, -0.5, -2.0, -3.0), w, 0.0, mask(1, 1, 1, 1), mask(0, 0, 0, 0)),
            hint="score = features @ weight + bias; a negative is hard when its score > -1 "
            "(it is inside the SVM's margin), and hard ones join the cache.",
        ),
        Case(
            "the bias counts in the score",
            (regions(0.5, -0.5, -2.0), w, -1.0, mask(1, 1, 1), mask(0, 0, 0)),
            hint="The SVM's score is features @ weight + bias: -0.5 - 1 = -1.5 is not hard.",
        ),
        Case(
            f"a score exactly at the hard threshold ({hard:g})",
            (regions(hard, hard + 0.25, -1.1), w, 0.0, mask(1, 1, 1), mask(0, 0, 0)),
            hint="Hard means strictly above -1: a score of exactly -1 sits on the margin and is "
            "not added (score > -1, not >=).",
        ),
        Case(
            f"a cached negative scoring exactly at the easy threshold ({easy:g})",
            (regions(easy, -1.5, -1.1), w, 0.0, mask(1, 1, 1), mask(1, 1, 1)),
            hint="Only cached negatives scoring strictly below -1.2 leave the cache: exactly "
            "-1.2 stays, -1.5 leaves (score < -1.2, not <=).",
        ),
        Case(
            "a hard negative that is already in the cache",
            (regions(0.0, 0.3), w, 0.0, mask(1, 1), mask(1, 0)),
            hint="`hard` lists only the *new* hard negatives: leave out the ones already cached "
            "(they stay in the cache).",
        ),
        Case(
            "high-scoring regions that are not negatives (gt boxes, overlapping proposals)",
            (regions(2.0, 0.5, 0.5), w, 0.0, mask(0, 0, 1), mask(0, 0, 0)),
            hint="Only regions in negative_mask can become negatives, however high they score.",
        ),
        Case(
            "an image without this class (no positives): every region is a negative",
            (regions(-0.2, -0.9, -1.3, -4.0), w, 0.0, mask(1, 1, 1, 1), mask(0, 0, 1, 1)),
            hint="With no gt box of the class, every region is a negative: mine them all by the "
            "same two rules.",
        ),
        Case(
            "an untrained SVM (weight 0, bias 0): every score is 0",
            (regions(3.0, -3.0), torch.zeros(2, dtype=torch.float64), 0.0, mask(1, 1), mask(0, 1)),
            hint="0 > -1: every uncached negative is hard.",
        ),
        Case(
            "no regions",
            (torch.zeros(0, 2, dtype=torch.float64), w, 0.0, mask(), mask()),
            hint="With P = 0 regions return two empty bool tensors.",
        ),
    ]
    g = torch.Generator().manual_seed(31)
    for _ in range(trials):
        num, dim = 50, 8
        features = torch.randn(num, dim, generator=g)
        weight = torch.randn(dim, generator=g) * 0.5
        bias = float(torch.randn(1, generator=g))
        negative = torch.rand(num, generator=g) < 0.8
        cached = negative & (torch.rand(num, generator=g) < 0.4)
        cases.append(
            Case(f"{num} random regions", (features, weight, bias, negative, cached)),
        )
    return grade(
        fn,
        _mining_reference,
        cases,
        name="check_hard_negatives",
        against="fastrcnn_lite.svm.mine_hard_negatives",
        compare=_mining_compare,
        covered="scores exactly at -1 and -1.2, cached and non-negative regions, no positives",
    )


# ----------------------------------------------------------------------------------------------
# Bounding-box regression targets
# ----------------------------------------------------------------------------------------------
def _targets_compare(got, expected) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return f"expected a triple (keep, labels, targets), got {describe(got)}"
    keep, labels, targets = got
    if not isinstance(keep, torch.Tensor) or tuple(keep.shape) != tuple(expected[0].shape):
        shape = tuple(keep.shape) if isinstance(keep, torch.Tensor) else type(keep).__name__
        return f"keep: {shape} where a bool Tensor{list(expected[0].shape)} was expected"
    keep = keep.bool()
    if not torch.equal(keep, expected[0]):
        p = int((keep != expected[0]).nonzero()[0, 0])
        return f"keep differs at proposal {p}: {bool(keep[p])} where {bool(expected[0][p])} was expected"
    why = differ(labels, expected[1])
    if why:
        return f"labels: {why}"
    why = differ(targets, expected[2], atol=1e-5, rtol=1e-5)
    return f"targets: {why}" if why else None


@exercise("03", points=2, task="the bounding-box regression targets (IoU > 0.6, encoded deltas)")
def check_bbox_targets(fn: Callable, trials: int = 10) -> str:
    """``fn(proposals, gt_boxes, gt_labels, min_iou) -> (keep, labels, targets)`` must match
    ``regression_targets``: keep (Tensor[P] bool) the proposals whose best IoU with a gt box is
    > ``min_iou``; labels (Tensor[M]) and targets (Tensor[M, 4], ``encode_boxes``) of that box.

    Notebook 03 grades its box-regression targets exercise with it.
    """
    __tracebackhide__ = True
    f64 = torch.float64

    def boxes(*rows) -> torch.Tensor:
        return torch.tensor(rows, dtype=f64).reshape(-1, 4)

    def labels(*values: int) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long)

    gt = boxes([10, 10, 30, 30])
    cases = [
        Case(
            "a proposal equal to its gt box",
            (boxes([10, 10, 30, 30]), gt, labels(3), 0.6),
            hint="IoU 1 > 0.6: kept, with the gt box's class and deltas (0, 0, 0, 0).",
        ),
        Case(
            "proposals above and below the threshold",
            (boxes([12, 10, 32, 30], [20, 20, 40, 40], [0, 0, 8, 8]), gt, labels(2), 0.6),
            hint="Keep a proposal only when its best IoU with a gt box is above min_iou.",
        ),
        Case(
            "IoU exactly 0.6 (a 12 x 20 proposal inside a 20 x 20 gt box)",
            (boxes([10, 10, 22, 30], [10, 10, 23, 30]), gt, labels(1), 0.6),
            hint="R-CNN keeps IoU > 0.6 strictly: exactly 0.6 (240 / 400) is left out.",
        ),
        Case(
            "a proposal overlapping two gt boxes (the second fits it better)",
            (
                boxes([20, 0, 40, 20]),
                boxes([16, 0, 36, 20], [21, 0, 41, 20]),
                labels(1, 4),
                0.6,
            ),
            hint="Match each proposal to the gt box with the highest IoU (argmax over gt boxes), "
            "not to the first gt box above the threshold; take that box's label and deltas.",
        ),
        Case(
            "proposals in proposal order, matched to different gt boxes",
            (
                boxes([51, 50, 70, 72], [11, 9, 30, 31], [100, 100, 110, 110], [9, 10, 29, 30]),
                boxes([10, 10, 30, 30], [50, 50, 70, 70]),
                labels(5, 2),
                0.6,
            ),
            hint="Return the kept proposals in their original order, each with the class and "
            "deltas of *its own* best gt box.",
        ),
        Case(
            "an image with no gt box (no positives): nothing to regress",
            (boxes([0, 0, 10, 10], [5, 5, 20, 20]), boxes(), labels(), 0.6),
            hint="With G = 0 gt boxes keep nothing: keep all False, labels Tensor[0], targets "
            "Tensor[0, 4] (box_iou gives a (P, 0) matrix that has no max).",
        ),
        Case(
            "no proposals",
            (boxes(), gt, labels(3), 0.6),
            hint="With P = 0 return an empty keep, labels Tensor[0] and targets Tensor[0, 4].",
        ),
        Case(
            "another threshold (min_iou = 0.5)",
            (boxes([10, 10, 22, 30], [10, 10, 20, 30]), gt, labels(6), 0.5),
            hint="Use the min_iou argument, not a hard-coded 0.6.",
        ),
    ]
    g = torch.Generator().manual_seed(32)
    for _ in range(trials):
        gt_boxes = random_boxes(4, g)
        jitter = torch.randn(40, 4, generator=g, dtype=f64) * 2
        near = gt_boxes.repeat(10, 1) + jitter  # (40, 4) around the gt boxes
        size = (near[:, 2:] - near[:, :2]).clamp(min=1.0)  # (40, 2) at least 1 px wide and high
        proposals = torch.cat([near[:, :2], near[:, :2] + size], dim=1)  # (40, 4)
        classes = torch.randint(1, 7, (4,), generator=g)
        cases.append(
            Case("40 random proposals around 4 gt boxes", (proposals, gt_boxes, classes, 0.6))
        )
    return grade(
        fn,
        regression_targets,
        cases,
        name="check_bbox_targets",
        # its home is region_heads; rcnn re-exports it and notebook 03's checked output names it
        against="fastrcnn_lite.rcnn.regression_targets",
        compare=_targets_compare,
        covered="IoU exactly 0.6, a proposal on two gt boxes, no gt boxes",
    )
