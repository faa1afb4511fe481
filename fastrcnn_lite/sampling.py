"""Hierarchical sampling: which images and which RoIs make up one SGD mini-batch.

Data-flow stage: between **proposals** and **region features** (training only). Implements
paper section 2.3 ("Mini-batch sampling"): SGD mini-batches are sampled *hierarchically*,
first N images, then R / N RoIs from each image, so the RoIs of one image share its conv
forward and backward pass (N = 2, R = 128 in the paper: 64 RoIs per image).

Per image:

1. The gt boxes are added to the proposals (the paper's code puts them into every image's RoI
   set, so each object has at least one perfect foreground RoI).
2. Each RoI is labelled by its best-overlapping gt box (:func:`match_proposals`):
   foreground (class of that gt) if IoU >= ``fg_iou_thresh`` (0.5); background (class 0) if
   IoU in [``bg_iou_thresh_lo``, ``bg_iou_thresh_hi``) = [0.1, 0.5); the rest (IoU < 0.1) is not
   used: "the lower threshold of 0.1 appears to act as a heuristic for hard example mining".
3. Up to ``positive_fraction`` (25%) of the ``batch_size_per_image`` RoIs are drawn from the
   foreground, the rest from the background (:func:`sample_rois`), uniformly without
   replacement. As in the paper's code, an image with few candidates gives fewer RoIs.
4. Each foreground RoI gets a regression target ``v = encode_boxes(roi, gt)`` (R-CNN deltas).
   :func:`regression_target_stats` gives the training set's per-class means and stds that
   normalise them (section 2.3: "zero mean and unit variance").

An image without objects (G = 0) overlaps nothing, so no proposal reaches IoU 0.1; all its
proposals are then background candidates and it contributes all-background RoIs.

:class:`ImageSampler` draws the images (a new permutation each epoch), each image's scale and
its horizontal flip, from its own ``torch.Generator`` whose state a checkpoint saves, so a
resumed run sees exactly the mini-batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .boxes import box_iou, check_boxes, encode_boxes

__all__ = [
    "match_proposals",
    "sample_rois",
    "regression_target_stats",
    "ImageSampler",
]


def match_proposals(proposals: Tensor, gt_boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Each proposal's best-overlapping gt box.

    No notebook: :func:`sample_rois`, :func:`regression_target_stats` and R-CNN's and SPPnet's
    training windows (``regions.py``, ``region_heads.py``, ``sppnet.py``) label proposals with it.

    Args:
        proposals (Tensor[P, 4]): (x1, y1, x2, y2).
        gt_boxes (Tensor[G, 4]): (x1, y1, x2, y2); G may be 0.

    Returns:
        (max_iou, matched): Tensor[P] float, the highest IoU with any gt box (0 when G = 0), and
        Tensor[P] int64, the index of that gt box (0 when G = 0; check ``max_iou`` first).
    """
    check_boxes(proposals, "proposals")
    check_boxes(gt_boxes, "gt_boxes")
    if len(gt_boxes) == 0 or len(proposals) == 0:
        zeros = proposals.new_zeros(len(proposals))
        return zeros, zeros.long()
    iou = box_iou(proposals, gt_boxes)  # (P, G)
    max_iou, matched = iou.max(dim=1)  # (P,), (P,)
    return max_iou, matched


def sample_rois(
    proposals: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    batch_size_per_image: int = 64,
    positive_fraction: float = 0.25,
    fg_iou_thresh: float = 0.5,
    bg_iou_thresh_hi: float = 0.5,
    bg_iou_thresh_lo: float = 0.1,
    add_gt: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Sample one image's training RoIs and give each its class and box target.

    Notebook 06 teaches it (section 2.3's hierarchical sampling).

    Args:
        proposals (Tensor[P, 4]): the image's proposals, in the same pixels as ``gt_boxes``.
        gt_boxes (Tensor[G, 4]): its gt boxes (G may be 0).
        gt_labels (Tensor[G] int64): their classes, 1..K.
        batch_size_per_image: R / N, RoIs per image (64).
        positive_fraction: at most this fraction of them foreground (0.25).
        fg_iou_thresh: foreground if max IoU >= this (0.5).
        bg_iou_thresh_hi, bg_iou_thresh_lo: background if max IoU in [lo, hi) ([0.1, 0.5)).
        add_gt: add the gt boxes to the proposals first (the paper's code does).
        generator: random source for the draws (the global torch RNG when None).

    Returns:
        dict with ``boxes`` (Tensor[S, 4]: foreground RoIs first, then background),
        ``labels`` (Tensor[S] int64: gt class or 0), ``regression_targets`` (Tensor[S, 4]:
        un-normalised deltas to the matched gt box, zeros for background), ``max_iou``
        (Tensor[S]), with S <= batch_size_per_image.
    """
    check_boxes(proposals, "proposals")
    check_boxes(gt_boxes, "gt_boxes")
    if gt_labels.shape != (len(gt_boxes),):
        raise ValueError(
            f"gt_labels must be Tensor[{len(gt_boxes)}] (one per gt box); got shape {tuple(gt_labels.shape)}."
        )
    if add_gt:
        proposals = torch.cat([gt_boxes.to(proposals.dtype), proposals])  # (G + P, 4)
    max_iou, matched = match_proposals(proposals, gt_boxes)  # (P,), (P,)

    fg = torch.where(max_iou >= fg_iou_thresh)[0]
    if len(gt_boxes) == 0:
        # No object: nothing reaches the lower IoU bound, so every proposal is a background.
        bg = torch.where(max_iou < bg_iou_thresh_hi)[0]
    else:
        bg = torch.where((max_iou >= bg_iou_thresh_lo) & (max_iou < bg_iou_thresh_hi))[0]

    num_fg = min(round(positive_fraction * batch_size_per_image), len(fg))
    num_bg = min(batch_size_per_image - num_fg, len(bg))
    fg = fg[torch.randperm(len(fg), generator=generator)[:num_fg]]
    bg = bg[torch.randperm(len(bg), generator=generator)[:num_bg]]
    keep = torch.cat([fg, bg])  # (S,)

    boxes = proposals[keep]  # (S, 4)
    labels = torch.zeros(len(keep), dtype=torch.int64, device=proposals.device)  # (S,)
    targets = torch.zeros_like(boxes)  # (S, 4)
    if num_fg > 0:
        labels[:num_fg] = gt_labels[matched[fg]]
        targets[:num_fg] = encode_boxes(boxes[:num_fg], gt_boxes[matched[fg]].to(boxes.dtype))
    return {
        "boxes": boxes,
        "labels": labels,
        "regression_targets": targets,
        "max_iou": max_iou[keep],
    }


def regression_target_stats(
    proposals: list[Tensor],
    targets: list[dict],
    num_classes: int,
    fg_iou_thresh: float = 0.5,
    add_gt: bool = True,
) -> tuple[Tensor, Tensor]:
    """Per-class mean and std of the regression targets of every foreground RoI in a training set.

    The paper's code computes them over all (not only sampled) RoIs with IoU >= 0.5, gt boxes
    included, per class; a class with fewer than two such RoIs gets mean 0 and std 1.
    No notebook: Fast R-CNN's training (``train.target_stats``) normalises its targets with them.

    Args:
        proposals (list of Tensor[P_i, 4]): per-image proposals (original image pixels).
        targets (list of dict): per-image ``boxes`` (Tensor[G_i, 4]) and ``labels`` (Tensor[G_i]).
        num_classes: K (foreground classes).

    Returns:
        (means, stds): Tensor[K, 4] each; row k - 1 belongs to class k.
    """
    sums = torch.zeros(num_classes, 4, dtype=torch.float64)
    squares = torch.zeros(num_classes, 4, dtype=torch.float64)
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for props, target in zip(proposals, targets, strict=True):
        gt_boxes, gt_labels = target["boxes"], target["labels"]
        if len(gt_boxes) == 0:
            continue
        boxes = torch.cat([gt_boxes.to(props.dtype), props]) if add_gt else props  # (G + P, 4)
        max_iou, matched = match_proposals(boxes, gt_boxes)
        fg = torch.where(max_iou >= fg_iou_thresh)[0]
        gt_fg = gt_boxes[matched[fg]].to(boxes.dtype)  # (R_fg, 4): each RoI's gt box
        deltas = encode_boxes(boxes[fg], gt_fg).double()  # (R_fg, 4)
        labels = gt_labels[matched[fg]] - 1  # (R_fg,) 0-based
        sums.index_add_(0, labels, deltas)
        squares.index_add_(0, labels, deltas * deltas)
        counts.index_add_(0, labels, torch.ones_like(labels, dtype=torch.float64))
    enough = counts >= 2
    n = counts.clamp(min=1)[:, None]
    means = torch.where(enough[:, None], sums / n, 0.0)
    variance = (squares / n - means**2).clamp(min=0)
    stds = torch.where(enough[:, None], variance.sqrt(), 1.0)
    stds = torch.where(stds > 1e-6, stds, 1.0)  # a constant target (e.g. dw of square boxes)
    return means.float(), stds.float()


class ImageSampler:
    """The image level of hierarchical sampling: which N images, at what scale, flipped or not.

    Notebook 06 teaches it; Fast R-CNN's training (``train.py``) draws its images with it.

    Images are visited in a fresh random permutation each epoch, ``images_per_batch`` at a time
    (an epoch's leftover images are carried into the next permutation's first batch). Each drawn
    image gets a scale (uniform over ``scales``; one scale = single-scale training) and a flip
    (probability ``flip_prob``).

    The state (generator, permutation, position) round-trips through :meth:`state_dict` /
    :meth:`load_state_dict` as tensors and ints, so ``torch.load(..., weights_only=True)`` reads it.
    """

    def __init__(
        self,
        num_images: int,
        images_per_batch: int = 2,
        scales: tuple[int, ...] = (600,),
        flip_prob: float = 0.5,
        seed: int = 0,
    ):
        if num_images < 1:
            raise ValueError(f"ImageSampler needs at least one image; got num_images={num_images}.")
        self.num_images = num_images
        self.images_per_batch = images_per_batch
        self.scales = tuple(scales)
        self.flip_prob = flip_prob
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(num_images, generator=self.generator)
        self.position = 0
        self.epoch = 0

    def _next_index(self) -> int:
        if self.position == len(self.order):
            self.order = torch.randperm(self.num_images, generator=self.generator)
            self.position = 0
            self.epoch += 1
        index = int(self.order[self.position])
        self.position += 1
        return index

    def next_batch(self) -> list[tuple[int, int, bool]]:
        """The next mini-batch: ``images_per_batch`` tuples ``(image index, scale, flip)``."""
        batch = []
        for _ in range(self.images_per_batch):
            index = self._next_index()
            scale = self.scales[
                int(torch.randint(len(self.scales), (1,), generator=self.generator))
            ]
            flip = bool(torch.rand(1, generator=self.generator) < self.flip_prob)
            batch.append((index, scale, flip))
        return batch

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "order": self.order.clone(),
            "position": self.position,
            "epoch": self.epoch,
            "num_images": self.num_images,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["num_images"] != self.num_images:
            raise ValueError(
                f"The sampler state is for a dataset of {state['num_images']} images; this one has "
                f"{self.num_images}. Resume with the same training set."
            )
        self.generator.set_state(state["generator"])
        self.order = state["order"].clone()
        self.position = int(state["position"])
        self.epoch = int(state["epoch"])
