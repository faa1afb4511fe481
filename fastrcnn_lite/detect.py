"""From per-RoI class scores and boxes to final detections.

Data-flow stage: **detections (NMS)**. R-CNN, SPPnet and Fast R-CNN all end here (paper
section 3: per-class NMS at IoU 0.3 after scoring every proposal): from per-proposal class boxes
(Tensor[P, K, 4]) and scores (Tensor[P, K]) of one image to its D detections.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .boxes import batched_nms, clip_boxes_to_image, remove_small_boxes

__all__ = ["postprocess_detections"]


def postprocess_detections(
    class_boxes: Tensor,
    class_scores: Tensor,
    image_size: tuple[int, int],
    score_thresh: float = 0.05,
    nms_thresh: float = 0.3,
    detections_per_img: int = 100,
) -> dict[str, Tensor]:
    """Score threshold, clipping, per-class NMS and a per-image cap.

    Notebook 06 rebuilds these steps in an exercise; R-CNN, SPPnet and Fast R-CNN end with it.

    Args:
        class_boxes (Tensor[P, K, 4]): one box per proposal and foreground class (class k + 1),
            continuous pixels of the image whose ``image_size`` is given. Pass the proposals
            repeated K times when there is no box regression.
        class_scores (Tensor[P, K]): score of each proposal for each foreground class
            (softmax probabilities or SVM scores; background dropped).
        image_size: (height, width) to clip to.

    Returns:
        dict with ``boxes`` (Tensor[D, 4]), ``scores`` (Tensor[D]) and ``labels`` (Tensor[D] int64 in
        1..K), sorted by decreasing score, D <= detections_per_img.
    """
    if class_boxes.dim() != 3 or class_boxes.shape[-1] != 4:
        raise ValueError(
            f"class_boxes must be Tensor[P, K, 4]; got shape {tuple(class_boxes.shape)}."
        )
    if class_scores.shape != class_boxes.shape[:2]:
        raise ValueError(
            f"class_scores must be Tensor[P, K] = {tuple(class_boxes.shape[:2])} to match class_boxes; "
            f"got shape {tuple(class_scores.shape)}."
        )
    num_props, num_classes = class_scores.shape
    labels = torch.arange(1, num_classes + 1, device=class_scores.device).expand(
        num_props, -1
    )  # (P, K)
    boxes = clip_boxes_to_image(class_boxes.reshape(-1, 4), image_size)  # (P*K, 4)
    scores = class_scores.reshape(-1)  # (P*K,)
    labels = labels.reshape(-1)  # (P*K,)
    keep = torch.where(scores > score_thresh)[0]
    keep = keep[remove_small_boxes(boxes[keep], 1e-2)]
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, nms_thresh)[:detections_per_img]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}
