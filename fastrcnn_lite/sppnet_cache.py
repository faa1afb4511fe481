"""SPPnet's conv maps: one conv pass per image, cached to disk, and the pyramids pooled from them.

Data-flow stage: **backbone feature map** (once per image, SPPnet's saving over R-CNN) ->
**region features** (the spatial pyramid of each cached box). He et al., ECCV 2014, section 4:
SPPnet's conv layers are frozen during fine-tuning, so the conv map of a training image never
changes; it is computed once and written to disk (float16, one file per image, ~10x smaller than
R-CNN's per-region features). The fc fine-tuning (``fastrcnn_lite.sppnet_finetune``) and the
SVM / ridge training (``fastrcnn_lite.sppnet``) then pool their pyramids from it::

    image Tensor[3, H, W] --resize (cfg.scales[0]), body--> conv Tensor[C, H', W'] (disk)
    (conv, boxes Tensor[G + P, 4]) --SpatialPyramidPool--> Tensor[G + P, C * sum n*n]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .backbones import Backbone
from .checkpoint import module_digest, proposals_digest
from .config import Config
from .regions import (
    FeatureCache,
    check_proposals,
    dataset_key,
    feature_cache_folder,
    load_image,
    training_boxes,
)
from .roi_pool import SpatialPyramidPool
from .transforms import resize, scale_factor

__all__ = ["conv_map", "extract_conv_features", "cached_pyramids"]


def conv_map(backbone: Backbone, image: Tensor, scale: int, max_size: int) -> tuple[Tensor, float]:
    """Resize (shorter side ``scale``) and run the body once: (Tensor[C, H', W'], resize factor).

    No notebook: :func:`extract_conv_features` (training) and ``SPPNet.region_features`` (test)
    run it; notebook 05 draws the same conv map by hand.

    Args:
        image (Tensor[3, H, W]): in [0, 1], original pixels.
        scale, max_size: the shorter side after resizing and the cap of the longer side.
    """
    factor = scale_factor(tuple(image.shape[1:]), scale, max_size)
    resized, _ = resize(image, image.new_zeros(0, 4), factor)
    resized = resized[None].contiguous(memory_format=torch.channels_last)  # (1, 3, H', W')
    return backbone.body(resized)[0].contiguous(), factor  # (C, h, w)


def extract_conv_features(
    backbone: Backbone,
    dataset,
    proposals: Sequence[Tensor],
    cfg: Config,
    max_proposals_per_image: int | None = None,
    progress: bool = True,
) -> FeatureCache:
    """SPPnet's disk cache: the conv map of every training image (float16) with its boxes.

    Notebook 05 reports its size (through ``load_or_train_sppnet``'s ``info["cache_bytes"]``).

    Each ``<cache_dir>/sppnet_features/<key>/<i>.pt`` holds ``conv`` (Tensor[C, H', W'] float16),
    ``factor`` (image resize factor), ``boxes`` (Tensor[G + P, 4], gt first, original image
    pixels) and ``num_gt``. Reused when the key (network, proposals, data, settings) matches.
    """
    check_proposals(dataset, proposals)
    scale = cfg.scales[0]
    folder = feature_cache_folder(cfg, "sppnet", [
        module_digest(backbone.body), proposals_digest(proposals), dataset_key(dataset),
        scale, cfg.max_size, cfg.use_difficult, max_proposals_per_image, cfg.seed,
    ])  # fmt: skip
    if FeatureCache.is_complete(folder):
        return FeatureCache(folder)
    gen = torch.Generator().manual_seed(cfg.seed)

    def record(i: int) -> dict:
        boxes, num_gt = training_boxes(
            dataset, proposals, i, cfg.use_difficult, max_proposals_per_image, gen
        )
        conv, factor = conv_map(backbone, load_image(dataset, i), scale, cfg.max_size)
        return {"conv": conv.half(), "factor": factor, "boxes": boxes, "num_gt": num_gt}

    backbone.body.eval()
    with torch.inference_mode():
        return FeatureCache.write(
            folder, record, len(dataset), "SPPnet conv maps -> disk", progress
        )


def cached_pyramids(spp: SpatialPyramidPool, record: dict, rows: Tensor | None = None) -> Tensor:
    """Pyramid features of the cached boxes (all, or ``rows``) of one image.

    No notebook: SPPnet's fc fine-tuning and its SVM / ridge training read their features so.

    Args:
        spp: the pyramid (``cfg.spp_levels``, spatial scale 1 / the body's stride).
        record: one image of the cache (:func:`extract_conv_features`).
        rows (Tensor[M] int64 | None): which of its G + P cached boxes; None: all.

    Returns:
        Tensor[M, C * sum n*n] (M = G + P for all boxes), float32.
    """
    boxes = record["boxes"] if rows is None else record["boxes"][rows]
    if len(boxes) == 0:
        return torch.zeros(0, record["conv"].shape[0] * spp.num_bins)
    return spp(record["conv"][None].float(), [boxes * record["factor"]])  # (M, C * sum n*n)
