"""Boxes: area, IoU, NMS, clipping, the R-CNN box deltas, and the RoI tensor format.

Data-flow stage: used by every stage (proposals, sampling, heads, detection, evaluation).
Written from scratch for teaching; ``tests/test_boxes.py`` checks each function against
``torchvision.ops``.

Pixel convention (the one place it is decided)
----------------------------------------------
Inside the package a box is ``(x1, y1, x2, y2)`` in *continuous* pixel coordinates with the
origin at the top-left corner of the top-left pixel, so a box covering pixel columns
``0..9`` is ``x1 = 0, x2 = 10`` and its width is ``x2 - x1 = 10``.

VOC annotations use 1-based *inclusive* pixel indices: ``xmin = 1, xmax = 10`` covers the
same ten columns. :func:`voc_to_xyxy` and :func:`xyxy_to_voc` convert between the two; the VOC
reader and the VOC results files (``voc_results.py``) are their only callers. With this
convention the VOC evaluation code's ``(x2 - x1 + 1) * (y2 - y1 + 1)`` areas become plain
``(x2 - x1) * (y2 - y1)``.

Box deltas (R-CNN appendix C, Fast R-CNN eq. 3)
-----------------------------------------------
For a proposal ``P`` (centre ``px, py``, size ``pw, ph``) and a target box ``G``::

    dx = (gx - px) / pw    dy = (gy - py) / ph    dw = log(gw / pw)    dh = log(gh / ph)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "box_area",
    "box_iou",
    "nms",
    "batched_nms",
    "clip_boxes_to_image",
    "remove_small_boxes",
    "encode_boxes",
    "decode_boxes",
    "voc_to_xyxy",
    "xyxy_to_voc",
    "boxes_to_rois",
    "check_boxes",
]

# Deltas larger than this (log(1000/16)) are clamped before exp() so a wild prediction
# cannot overflow to inf; the same bound torchvision uses.
BOX_DELTA_CLAMP = math.log(1000.0 / 16)


def check_boxes(boxes: Tensor, name: str = "boxes") -> None:
    """Raise a teaching error unless ``boxes`` is a floating Tensor[G, 4].

    No notebook: every stage checks its box arguments with it (``name`` names the argument).
    """
    if not isinstance(boxes, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor[G, 4] (x1, y1, x2, y2); got {type(boxes).__name__}."
        )
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        hint = ""
        if boxes.dim() == 2 and boxes.shape[-1] == 5:
            hint = " It has 5 columns: is it an RoI tensor (batch_index, x1, y1, x2, y2)? Drop column 0."
        elif boxes.dim() == 1 and boxes.numel() == 4:
            hint = " For a single box use boxes[None] to make it Tensor[1, 4]."
        raise ValueError(
            f"{name} must be Tensor[G, 4] (x1, y1, x2, y2); got shape {tuple(boxes.shape)}.{hint}"
        )
    if not boxes.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor; got dtype {boxes.dtype}. Use {name}.float()."
        )


def box_area(boxes: Tensor) -> Tensor:
    """Area of each box. Notebook 00 measures the objects' sizes with it.

    Args:
        boxes (Tensor[G, 4]): (x1, y1, x2, y2), continuous pixels.

    Returns:
        Tensor[G]: ``(x2 - x1) * (y2 - y1)``; a degenerate box (x2 < x1) gives a negative or zero
        value, exactly as torchvision.ops.box_area does. float16/bfloat16 boxes give a float32
        area (as torchvision does): a 300 x 300 box has area 90,000, beyond float16's 65,504.
    """
    check_boxes(boxes)
    boxes = _upcast(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _upcast(t: Tensor) -> Tensor:
    """float16/bfloat16 -> float32 (products of pixel sizes overflow float16); others unchanged."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair of boxes. Notebook 00 teaches it.

    Args:
        boxes1 (Tensor[A, 4]): (x1, y1, x2, y2).
        boxes2 (Tensor[B, 4]): (x1, y1, x2, y2).

    Returns:
        Tensor[A, B]: IoU in [0, 1]; float32 for float16/bfloat16 boxes, as torchvision returns
        (areas and intersections are computed in float32, where they cannot overflow).
    """
    check_boxes(boxes1, "boxes1")
    check_boxes(boxes2, "boxes2")
    area1 = box_area(boxes1)  # (A,)
    area2 = box_area(boxes2)  # (B,)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # (A, B, 2)
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (A, B, 2)
    wh = _upcast(bottom_right - top_left).clamp(min=0)  # (A, B, 2)
    inter = wh[..., 0] * wh[..., 1]  # (A, B)
    union = area1[:, None] + area2[None, :] - inter  # (A, B)
    return inter / union


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression. Notebook 00 teaches it.

    Repeatedly keep the highest-scoring box left and drop every remaining box whose IoU with
    it is above ``iou_threshold``. As in torchvision's kernel, the IoU is computed in the boxes'
    dtype (float32 for float16 boxes) and compared with the threshold in float64: a float32 IoU
    of 3/10 rounds to 0.30000001 and is suppressed at ``iou_threshold=0.3``, while an IoU of
    exactly 0.5 is kept at ``iou_threshold=0.5``.

    Args:
        boxes (Tensor[P, 4]): (x1, y1, x2, y2).
        scores (Tensor[P]): one score per box.
        iou_threshold (float): boxes with IoU > this are suppressed (0.3 in Fast R-CNN's test).

    Returns:
        Tensor[M] int64: indices of the kept boxes, in decreasing score order (torchvision's
        order; ties broken by the lower index, as a stable sort does).
    """
    check_boxes(boxes)
    if not isinstance(scores, Tensor) or scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(f"scores must be Tensor[{boxes.shape[0]}] (one per box); got {got}.")
    order = torch.sort(scores, descending=True, stable=True).indices  # (P,)
    iou = box_iou(boxes[order], boxes[order])  # (P, P), in score order
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    # One Python step per *kept* box; each step suppresses a whole row at once.
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i].double() > iou_threshold  # float64 threshold, as torchvision
    return order[torch.as_tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """NMS run independently per class (boxes of different labels never suppress each other).

    Notebook 06 uses it in its detection step, as
    :func:`~fastrcnn_lite.detect.postprocess_detections` does.

    Args:
        boxes (Tensor[P, 4]): (x1, y1, x2, y2).
        scores (Tensor[P]): one score per box.
        labels (Tensor[P] int64): the class of each box.
        iou_threshold (float): boxes of one class with IoU > this are suppressed.

    Returns:
        Tensor[M] int64: kept indices in decreasing score order.
    """
    check_boxes(boxes)
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    # Shift each class into its own region of the plane so one NMS pass handles all classes.
    offsets = labels.to(boxes) * (boxes.max() - boxes.min() + 1)  # (P,)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip boxes to an image of ``size = (height, width)``: x in [0, width], y in [0, height].

    Notebook 06 uses it in its detection step. ``boxes`` is Tensor[G, 4]; returns Tensor[G, 4].
    """
    check_boxes(boxes)
    height, width = size
    x = boxes[:, 0::2].clamp(0, width)  # (G, 2)
    y = boxes[:, 1::2].clamp(0, height)  # (G, 2)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)  # (G, 4)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes whose width and height are both at least ``min_size`` pixels.

    Notebook 06 uses it in its detection step. ``boxes`` is Tensor[G, 4]; returns Tensor[M]
    int64, the kept indices in increasing order.
    """
    check_boxes(boxes)
    wh = boxes[:, 2:] - boxes[:, :2]  # (G, 2)
    return torch.where((wh >= min_size).all(dim=1))[0]


def encode_boxes(proposals: Tensor, targets: Tensor) -> Tensor:
    """R-CNN box deltas that move each proposal onto its target box. Notebook 00 teaches them.

    Args:
        proposals (Tensor[P, 4]): (x1, y1, x2, y2), positive width and height.
        targets (Tensor[P, 4]): the matched gt boxes, same format.

    Returns:
        Tensor[P, 4]: (dx, dy, dw, dh).
    """
    check_boxes(proposals, "proposals")
    check_boxes(targets, "targets")
    if proposals.shape != targets.shape:
        raise ValueError(
            f"proposals and targets must have the same shape; got {tuple(proposals.shape)} and {tuple(targets.shape)}."
        )
    pw = proposals[:, 2] - proposals[:, 0]
    ph = proposals[:, 3] - proposals[:, 1]
    px = proposals[:, 0] + 0.5 * pw
    py = proposals[:, 1] + 0.5 * ph
    gw = targets[:, 2] - targets[:, 0]
    gh = targets[:, 3] - targets[:, 1]
    gx = targets[:, 0] + 0.5 * gw
    gy = targets[:, 1] + 0.5 * gh
    return torch.stack(
        [(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=1
    )


def decode_boxes(proposals: Tensor, deltas: Tensor) -> Tensor:
    """Apply box deltas to proposals: the inverse of :func:`encode_boxes` (Notebook 00).

    Args:
        proposals (Tensor[P, 4]): (x1, y1, x2, y2).
        deltas (Tensor[P, 4 * M]): (dx, dy, dw, dh) for M classes (M = 1 or K).

    Returns:
        Tensor[P, 4 * M]: the moved boxes, one (x1, y1, x2, y2) per class.
    """
    check_boxes(proposals, "proposals")
    if deltas.dim() != 2 or deltas.shape[1] % 4 != 0 or deltas.shape[0] != proposals.shape[0]:
        raise ValueError(
            f"deltas must be Tensor[{proposals.shape[0]}, 4 * M]; got shape {tuple(deltas.shape)}."
        )
    deltas = deltas.to(proposals.dtype)
    pw = (proposals[:, 2] - proposals[:, 0])[:, None]  # (P, 1)
    ph = (proposals[:, 3] - proposals[:, 1])[:, None]
    px = proposals[:, 0, None] + 0.5 * pw
    py = proposals[:, 1, None] + 0.5 * ph
    dx, dy = deltas[:, 0::4], deltas[:, 1::4]  # (P, M)
    dw = deltas[:, 2::4].clamp(max=BOX_DELTA_CLAMP)
    dh = deltas[:, 3::4].clamp(max=BOX_DELTA_CLAMP)
    cx, cy = dx * pw + px, dy * ph + py  # (P, M)
    w, h = torch.exp(dw) * pw, torch.exp(dh) * ph
    out = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=2)  # (P, M, 4)
    return out.flatten(1)  # (P, 4 * M)


def voc_to_xyxy(voc_boxes: Tensor) -> Tensor:
    """VOC 1-based inclusive corners (xmin, ymin, xmax, ymax) -> continuous (x1, y1, x2, y2).

    Notebook 00 shows the conversion. ``voc_boxes`` is Tensor[G, 4]; returns Tensor[G, 4].
    """
    return voc_boxes - voc_boxes.new_tensor([1.0, 1.0, 0.0, 0.0])


def xyxy_to_voc(boxes: Tensor) -> Tensor:
    """Continuous (x1, y1, x2, y2) -> VOC 1-based inclusive corners, the results-file format.

    No notebook: :func:`~fastrcnn_lite.voc_results.write_voc_results`. ``boxes`` is
    Tensor[D, 4]; returns Tensor[D, 4].
    """
    return boxes + boxes.new_tensor([1.0, 1.0, 0.0, 0.0])


def boxes_to_rois(boxes_per_image: list[Tensor]) -> Tensor:
    """Per-image boxes -> the (R, 5) RoI tensor that RoI pooling consumes.

    This is the only place the batch-index column is made. Notebook 04 builds its RoIs with it.

    Args:
        boxes_per_image (list of N Tensor[P_i, 4]): (x1, y1, x2, y2) for image i.

    Returns:
        Tensor[R, 5]: (batch_index, x1, y1, x2, y2), R = sum of P_i, rows in image order.
    """
    if isinstance(boxes_per_image, Tensor):
        raise TypeError(
            "boxes_to_rois expects a list of per-image Tensor[P_i, 4]; got a single Tensor of shape "
            f"{tuple(boxes_per_image.shape)}. Wrap one image's boxes as [boxes]."
        )
    for i, b in enumerate(boxes_per_image):
        check_boxes(b, f"boxes_per_image[{i}]")
    if len(boxes_per_image) == 0:
        return torch.zeros(0, 5)
    cat = torch.cat(list(boxes_per_image), dim=0)  # (R, 4)
    index = torch.cat(
        [
            torch.full((len(b), 1), i, dtype=cat.dtype, device=cat.device)
            for i, b in enumerate(boxes_per_image)
        ]
    )  # (R, 1)
    return torch.cat([index, cat], dim=1)  # (R, 5)
