"""Image scales, flips and batching: what happens to an image before the backbone sees it.

Data-flow stage: between **image** and **backbone feature map**. Fast R-CNN rescales each
image so its shorter side is ``scale`` pixels (600 in the paper) with the longer side capped at
``max_size`` (1000), flips training images horizontally with p = 0.5, and pads the N images of
a mini-batch to one tensor. Boxes are transformed with their image, in continuous pixels. At
test time with several scales (an image pyramid), :func:`pyramid_levels` picks the scale each
proposal is pooled from.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .boxes import box_area

__all__ = ["scale_factor", "pyramid_levels", "resize", "hflip", "batch_images"]


def scale_factor(size: tuple[int, int], scale: int, max_size: int) -> float:
    """The factor that makes the shorter side ``scale`` pixels, unless the longer side would pass ``max_size``.

    Notebook 05 scales its images with it, and so does notebook 06.

    Args:
        size: (height, width) of the original image.
    """
    short, long = min(size), max(size)
    factor = scale / short
    if round(long * factor) > max_size:
        factor = max_size / long
    return factor


def pyramid_levels(proposals: Tensor, factors: Tensor, target_area: float) -> Tensor:
    """The pyramid level each proposal is pooled from (section 5.2, the paper's ``_project_im_rois``).

    Notebook 06 shows which scale each proposal is pooled from.

    Fast R-CNN's and SPPnet's multi-scale test use the same rule: each proposal is pooled at the
    scale where its area is closest to ``target_area``.

    Args:
        proposals (Tensor[P, 4]): boxes in original image pixels.
        factors (Tensor[L]): the scale factor of each pyramid level.
        target_area: the area (pixels^2) a scaled RoI should be closest to (224 x 224).

    Returns:
        Tensor[P] int64: for each proposal, ``argmin over levels of |area * factor^2 - target_area|``.
    """
    areas = box_area(proposals).cpu().double()[:, None] * factors.double()[None, :] ** 2  # (P, L)
    return (areas - target_area).abs().argmin(dim=1)  # (P,)


def resize(image: Tensor, boxes: Tensor, factor: float) -> tuple[Tensor, Tensor]:
    """Resize ``image`` (Tensor[3, H, W]) by ``factor`` (bilinear) and scale ``boxes`` (Tensor[G, 4]) with it.

    Notebook 05 resizes its images with it, and so does notebook 06.
    """
    if image.dim() != 3:
        raise ValueError(f"image must be Tensor[3, H, W]; got shape {tuple(image.shape)}.")
    if factor == 1.0:
        return image, boxes
    h, w = image.shape[1:]
    new_size = (max(1, round(h * factor)), max(1, round(w * factor)))
    resized = F.interpolate(
        image[None], size=new_size, mode="bilinear", align_corners=False, antialias=factor < 1
    )[0]
    # Scale boxes by the exact per-axis ratio so they stay aligned with the rounded image size.
    ratio = boxes.new_tensor([new_size[1] / w, new_size[0] / h, new_size[1] / w, new_size[0] / h])
    return resized, boxes * ratio


def hflip(image: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Mirror ``image`` (Tensor[3, H, W]) left-right and its ``boxes`` (Tensor[G, 4]) with it.

    No notebook: Fast R-CNN's training flips images with it.
    """
    width = image.shape[-1]
    flipped = boxes[:, [2, 1, 0, 3]] * boxes.new_tensor([-1, 1, -1, 1]) + boxes.new_tensor(
        [width, 0, width, 0]
    )
    return image.flip(-1), flipped


def batch_images(images: list[Tensor]) -> Tensor:
    """Pad N images of different sizes at the bottom/right with zeros into Tensor[N, 3, H_max, W_max].

    Notebook 06 pads a mini-batch with it.

    Padding at the bottom/right keeps every box's pixel coordinates valid in the batch tensor.
    """
    if not images:
        raise ValueError("batch_images needs at least one image.")
    h = max(im.shape[1] for im in images)
    w = max(im.shape[2] for im in images)
    batch = images[0].new_zeros((len(images), 3, h, w))  # (N, 3, H_max, W_max)
    for i, im in enumerate(images):
        batch[i, :, : im.shape[1], : im.shape[2]] = im
    return batch
