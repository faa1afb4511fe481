"""Why SPPnet cannot fine-tune its conv layers: receptive fields and the cost of a backward pass.

Data-flow stage: none (an analysis of the **region features** stage). Fast R-CNN section 2.3:
back-propagation through SPP (or RoI) pooling is inefficient when each training RoI comes from a
different image, because an RoI's receptive field often spans the whole input image and the
forward pass must process all of it. :func:`receptive_field` computes the field of one cell of
a backbone's conv map, :func:`receptive_field_boxes` the image region behind each box
(Tensor[P, 4] -> Tensor[P, 4]), and :func:`backward_cost` what one mini-batch of R RoIs would
touch when sampled R-CNN / SPPnet's way (~R images) or Fast R-CNN's (N images, R / N RoIs each).
Taught in ``notebooks/05_sppnet.ipynb``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .backbones import Backbone
from .boxes import box_area, check_boxes, clip_boxes_to_image
from .config import Config
from .regions import draw_windows, load_target, training_windows
from .transforms import scale_factor

__all__ = ["receptive_field", "receptive_field_boxes", "backward_cost"]


def receptive_field(backbone: Backbone) -> dict:
    """Receptive field of one cell of ``backbone.body``'s output.

    Notebook 05 prints it for its backbone (and quotes VGG16's).

    Returns:
        dict with ``size`` (pixels on a side), ``stride`` (pixels between neighbouring cells) and
        ``centre`` (continuous x of the centre of cell 0's field; cell j is at centre + j * stride).
    """
    size, jump, centre = 1, 1, 0.5
    for layer in backbone.body.modules():
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            pair = lambda v: v if isinstance(v, int) else v[0]  # noqa: E731
            k, s, p = pair(layer.kernel_size), pair(layer.stride), pair(layer.padding)
            d = pair(layer.dilation)
            size += (k - 1) * d * jump
            centre += ((k - 1) * d / 2 - p) * jump
            jump *= s
        elif isinstance(layer, (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            raise ValueError(f"receptive_field does not handle {type(layer).__name__} layers.")
    return {"size": size, "stride": jump, "centre": centre}


def receptive_field_boxes(boxes: Tensor, backbone: Backbone, image_size: tuple[int, int]) -> Tensor:
    """The image pixels whose values reach a box's pooled features: the union of the receptive
    fields of the feature cells under the box, clipped to the image.

    No notebook: :func:`backward_cost` measures with it (notebook 05 shows the result).

    Args:
        boxes (Tensor[P, 4]): boxes in the pixels of the image the body runs on.

    Returns:
        Tensor[P, 4]: for each box, the image region a backward pass must reach.
    """
    check_boxes(boxes)
    rf = receptive_field(backbone)
    first = torch.floor(boxes[:, :2] / rf["stride"])  # (P, 2) first cell under the box
    last = torch.ceil(boxes[:, 2:] / rf["stride"]) - 1  # (P, 2) last cell
    half = rf["size"] / 2
    lo = rf["centre"] + first * rf["stride"] - half
    hi = rf["centre"] + last * rf["stride"] + half
    return clip_boxes_to_image(torch.cat([lo, hi], dim=1), image_size)  # (P, 4)


def backward_cost(
    backbone: Backbone,
    dataset,
    proposals: Sequence[Tensor],
    cfg: Config,
    images_per_batch: int | None = None,
    rois_per_batch: int = 128,
    positive_fraction: float = 0.25,
    seed: int = 0,
) -> dict:
    """What a backward pass into the conv layers would touch for one mini-batch of RoIs.

    Notebook 05 compares R-CNN / SPPnet's sampling with Fast R-CNN's with it.

    ``images_per_batch=None`` samples the batch like R-CNN and SPPnet: ``rois_per_batch`` windows
    (25% foreground) uniformly from all windows of all images, so they come from ~that many
    different images. ``images_per_batch=N`` samples like Fast R-CNN: N images, R / N windows each.
    Images are at the training scale (``cfg.scales[0]``).

    Returns:
        dict with ``num_images`` (distinct images in the batch), ``rf_pixels`` (pixels inside the
        union of the RoIs' receptive fields, summed over those images), ``image_pixels`` (their
        total area: the conv activations a backward pass needs at least the forward of),
        ``rf_fraction`` = mean over RoIs of (receptive-field area / image area).
    """
    gen = torch.Generator().manual_seed(seed)
    image_index, boxes, labels = training_windows(
        dataset, proposals, cfg.fg_iou_thresh, cfg.use_difficult
    )
    if images_per_batch is None:
        fg, bg = torch.where(labels > 0)[0], torch.where(labels == 0)[0]
        pick = draw_windows(fg, bg, rois_per_batch, positive_fraction, gen)  # (R,) the batch's RoIs
    else:
        images = torch.randperm(len(dataset), generator=gen)[:images_per_batch]
        per = rois_per_batch // images_per_batch
        pick = torch.cat([torch.where(image_index == i)[0][torch.randperm(int((image_index == i).sum()), generator=gen)[:per]]
                          for i in images.tolist()])  # fmt: skip
    rf_pixels, image_pixels, fractions = 0, 0, []
    used = image_index[pick].unique().tolist()
    for i in used:
        height, width = load_target(dataset, i)["size"]
        factor = scale_factor((height, width), cfg.scales[0], cfg.max_size)
        size = (round(height * factor), round(width * factor))
        rows = pick[image_index[pick] == i]
        fields = receptive_field_boxes(boxes[rows] * factor, backbone, size)  # (R_i, 4)
        mask = torch.zeros(size, dtype=torch.bool)
        for x1, y1, x2, y2 in fields.round().long().tolist():
            mask[y1:y2, x1:x2] = True
        rf_pixels += int(mask.sum())
        image_pixels += size[0] * size[1]
        fractions += (box_area(fields) / (size[0] * size[1])).tolist()
    return {"num_images": len(used), "rf_pixels": rf_pixels, "image_pixels": image_pixels,
            "rf_fraction": sum(fractions) / max(len(fractions), 1)}  # fmt: skip
