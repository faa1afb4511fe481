"""R-CNN's region warp: each proposal, with context, stretched to the network's input square.

Data-flow stage: **region features** (R-CNN style). R-CNN (Girshick et al. 2014, section 2.1 and
appendix A) feeds every proposal through the whole CNN on its own: the proposal is warped
*anisotropically* (x and y scaled independently) to ``input_size x input_size`` pixels (227 for
CaffeNet, 224 for VGG16, 40 for the course's small backbone). Before warping, the box is dilated
so that, at the warped size, there are exactly ``context`` pixels of image around the original
box (R-CNN's p = 16); the original box fills the central ``size - 2 * context`` pixels.

Where the dilated box leaves the image, R-CNN fills with the mean image (zero after its mean
subtraction); here the fill is the image's per-channel mean by default.

The warp is bilinear point sampling at the centre of each output pixel (R-CNN used ``imresize``
with ``'bilinear'`` and no anti-aliasing), done for all P boxes of an image in one
``F.grid_sample`` call: no Python loop over regions. ``grid_sample`` with
``align_corners=False`` uses the package's continuous pixel convention directly (-1 and +1 are the
outer edges of the first and last pixels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .boxes import check_boxes

__all__ = ["context_boxes", "warp_regions"]


def context_boxes(boxes: Tensor, size: int, context: int) -> Tensor:
    """Dilate each box so that, warped to ``size x size``, it has ``context`` pixels of margin.

    Notebook 03 draws the context it adds.

    The box maps to ``[context, size - context]`` of the output, so each side grows by
    ``context * width / (size - 2 * context)`` image pixels (and the same for the height).

    Args:
        boxes (Tensor[P, 4]): (x1, y1, x2, y2), continuous pixels.
        size: the warped square's side (``backbone.input_size``).
        context: pixels of context at the warped size (R-CNN's p = 16 at 227).

    Returns:
        Tensor[P, 4]: the dilated boxes (may extend outside the image).
    """
    check_boxes(boxes)
    if not 0 <= 2 * context < size:
        raise ValueError(
            f"context must satisfy 0 <= 2 * context < size; got context={context}, size={size}."
        )
    wh = boxes[:, 2:] - boxes[:, :2]  # (P, 2)
    pad = wh * (context / (size - 2 * context))  # (P, 2) image pixels per side
    return torch.cat([boxes[:, :2] - pad, boxes[:, 2:] + pad], dim=1)  # (P, 4)


def warp_regions(
    image: Tensor,
    boxes: Tensor,
    size: int,
    context: int = 16,
    fill: Tensor | float | None = None,
) -> Tensor:
    """Warp every box of one image (with context) to a ``size x size`` crop, R-CNN style.

    Notebook 03 warps proposals with it and grades the exercise that writes one warp.

    Args:
        image (Tensor[3, H, W]): float image (in [0, 1] for the package's backbones).
        boxes (Tensor[P, 4]): (x1, y1, x2, y2) in continuous pixels of ``image``.
        size: output side (``backbone.input_size``: 227 CaffeNet, 224 VGG16, 40 small).
        context: pixels of context around the box at the warped size (``cfg.warp_context``;
            R-CNN's 16). 0 warps the tight box.
        fill (Tensor[3] | float | None): value outside the image; None = the image's per-channel
            mean (R-CNN: the mean, i.e. zero after mean subtraction).

    Returns:
        Tensor[P, 3, size, size]: the warped regions. P = 0 gives an empty Tensor[0, 3, size, size].
    """
    if not isinstance(image, Tensor) or image.dim() != 3:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(
            f"image must be Tensor[3, H, W] (one image, no batch dimension); got {got}."
        )
    check_boxes(boxes)
    if not image.is_floating_point():
        raise TypeError(
            f"image must be a float tensor (e.g. in [0, 1]); got dtype {image.dtype}. Use image.float() / 255."
        )
    num_boxes = boxes.shape[0]
    channels, height, width = image.shape
    if num_boxes == 0:
        return image.new_zeros((0, channels, size, size))
    if fill is None:
        fill = image.mean(dim=(1, 2))  # (3,)
    fill = torch.as_tensor(fill, dtype=image.dtype, device=image.device).reshape(
        -1, 1, 1
    )  # (3|1, 1, 1)

    outer = context_boxes(boxes.to(image.dtype), size, context)  # (P, 4)
    # Centres of the size x size output pixels inside each dilated box, in image pixels.
    steps = (torch.arange(size, dtype=image.dtype, device=image.device) + 0.5) / size  # (size,)
    xs = outer[:, 0, None] + steps[None] * (outer[:, 2] - outer[:, 0])[:, None]  # (P, size)
    ys = outer[:, 1, None] + steps[None] * (outer[:, 3] - outer[:, 1])[:, None]  # (P, size)
    # grid_sample's normalised coordinates (align_corners=False): -1 = left edge of pixel 0, +1 = right edge.
    gx = xs * (2.0 / width) - 1.0  # (P, size)
    gy = ys * (2.0 / height) - 1.0  # (P, size)
    grid = torch.stack(
        [gx[:, None, :].expand(-1, size, -1), gy[:, :, None].expand(-1, -1, size)], dim=-1
    )  # (P, size, size, 2)
    # All P crops as one tall "image" of (P * size) x size samples: one grid_sample call, no copies
    # of the input. Zero padding on (image - fill) = padding the image with ``fill``.
    grid = grid.reshape(1, num_boxes * size, size, 2)  # (1, P*size, size, 2)
    shifted = (image - fill)[None]  # (1, 3, H, W)
    out = F.grid_sample(
        shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (1, 3, P*size, size)
    out = out.reshape(channels, num_boxes, size, size).permute(1, 0, 2, 3)  # (P, 3, size, size)
    return out + fill
