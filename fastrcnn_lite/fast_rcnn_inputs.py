"""What Fast R-CNN's forward pass accepts: the checks of its inputs and the image batch.

Data-flow stage: between **image + proposals** and the **backbone feature map**. A mini-batch
of N images (a list of Tensor[3, H_i, W_i], padded here into one Tensor[N, 3, H, W], or that
tensor itself), their proposals (a list of N Tensor[P_i, 4]) and, in training, their targets
(N dicts with ``boxes`` Tensor[G_i, 4] and ``labels`` Tensor[G_i] in 1..K). A wrong input is
refused with a message that says what was expected and what came, before any layer runs;
``fastrcnn_lite.fast_rcnn.FastRCNN`` then works on the checked batch and the image sizes.
"""

from __future__ import annotations

from torch import Tensor

from .boxes import check_boxes
from .transforms import batch_images

__all__ = ["check_inputs"]


def check_inputs(
    images, proposals, targets, num_classes: int, training: bool
) -> tuple[Tensor, list[tuple[int, int]]]:
    """Check a Fast R-CNN mini-batch and pad its images into one tensor.

    No notebook: :meth:`FastRCNN.forward <fastrcnn_lite.fast_rcnn.FastRCNN.forward>` calls it
    (notebook 06 shows its messages).

    Args:
        images: list of N Tensor[3, H_i, W_i] in [0, 1], or one Tensor[N, 3, H, W].
        proposals: list of N Tensor[P_i, 4], (x1, y1, x2, y2) in the pixels of ``images``.
        targets: training only; list of N dicts with ``boxes`` (Tensor[G_i, 4]) and ``labels``
            (Tensor[G_i] int64 in 1..K).
        num_classes: K, the model's foreground classes.
        training: the model's mode; targets are required (and checked) only in training.

    Returns:
        (batch Tensor[N, 3, H, W] padded at the bottom / right, sizes: the N (H_i, W_i)).
    """
    if isinstance(images, Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be Tensor[N, 3, H, W] or a list of Tensor[3, H, W]; got shape {tuple(images.shape)}."
                + (" For one image use [image] or image[None]." if images.dim() == 3 else "")
            )
        batch, sizes = images, [tuple(images.shape[-2:])] * len(images)
    else:
        images = list(images)
        for i, im in enumerate(images):
            if not isinstance(im, Tensor) or im.dim() != 3 or im.shape[0] != 3:
                got = tuple(im.shape) if isinstance(im, Tensor) else type(im).__name__
                raise ValueError(f"images[{i}] must be Tensor[3, H, W] in [0, 1]; got {got}.")
        batch, sizes = batch_images(images), [tuple(im.shape[-2:]) for im in images]
    if isinstance(proposals, Tensor) or not isinstance(proposals, (list, tuple)):
        got = (
            f"a Tensor of shape {tuple(proposals.shape)}"
            if isinstance(proposals, Tensor)
            else type(proposals).__name__
        )
        raise TypeError(
            f"proposals must be a list of N = {len(sizes)} per-image Tensor[P_i, 4]; got {got}. "
            "For one image pass [proposals]; do not pass an RoI Tensor[R, 5] (the model makes it)."
        )
    if len(proposals) != len(sizes):
        raise ValueError(
            f"Got {len(sizes)} images but {len(proposals)} proposal tensors; pass one Tensor[P_i, 4] per image."
        )
    for i, p in enumerate(proposals):
        check_boxes(p, f"proposals[{i}]")
    if training:
        if targets is None:
            raise ValueError(
                "In training mode FastRCNN needs targets (a list of dicts with 'boxes' and 'labels' per "
                "image). For detections call model.eval() first."
            )
        if len(targets) != len(sizes):
            raise ValueError(
                f"Got {len(sizes)} images but {len(targets)} targets; pass one dict per image."
            )
        for i, t in enumerate(targets):
            if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
                raise ValueError(
                    f"targets[{i}] must be a dict with 'boxes' (Tensor[G, 4]) and 'labels' (Tensor[G])."
                )
            check_boxes(t["boxes"], f"targets[{i}]['boxes']")
            labels = t["labels"]
            if labels.shape != (len(t["boxes"]),):
                raise ValueError(
                    f"targets[{i}]['labels'] must be Tensor[{len(t['boxes'])}]; got shape {tuple(labels.shape)}."
                )
            bad = labels[(labels < 1) | (labels > num_classes)]
            if len(bad):
                raise ValueError(
                    f"targets[{i}]['labels'] must be in 1..{num_classes} (num_classes = {num_classes}; 0 is "
                    f"background and is assigned by the sampler); got {bad.tolist()}. Does the model's "
                    "num_classes match the dataset's classes?"
                )
    return batch, sizes
