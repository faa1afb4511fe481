"""Synthetic inputs the benchmarks share: boxes spread like selective-search proposals.

Data-flow stage: **proposals**, made up (no image is segmented): the RoI pooling benchmark
(``fastrcnn_lite.experiments.bench_roi_pool``), the detector benchmark (``fastrcnn_lite.experiments.bench_detectors``), notebook
04 and the tests draw their workloads here, so neither benchmark imports the other. Taught in
``notebooks/04_roi_pooling.ipynb``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["VOC_IMAGE_SIZE", "proposal_like_boxes", "paper_geometry"]

VOC_IMAGE_SIZE = (600, 800)  # (height, width) of a typical VOC photo (500 x 375) at scale 600


def proposal_like_boxes(
    num: int, image_size: tuple[int, int] = VOC_IMAGE_SIZE, seed: int = 0
) -> Tensor:
    """Random boxes spread like selective-search proposals.

    Sizes are log-uniform from 16 pixels to the whole image (many small boxes, some large),
    aspect ratios log-uniform in [1/2, 2], centres uniform, clipped to the image.

    Notebook 04 draws its benchmark's boxes with it.

    Returns:
        Tensor[P, 4] (P = ``num`` proposals): (x1, y1, x2, y2) in pixels.
    """
    height, width = image_size
    g = torch.Generator().manual_seed(seed)
    side = torch.exp(
        torch.empty(num).uniform_(math.log(16), math.log(min(height, width)), generator=g)
    )
    aspect = torch.exp(torch.empty(num).uniform_(-math.log(2), math.log(2), generator=g))
    w = (side * aspect.sqrt()).clamp(max=width)  # (num,)
    h = (side / aspect.sqrt()).clamp(max=height)
    cx = w / 2 + torch.rand(num, generator=g) * (width - w)
    cy = h / 2 + torch.rand(num, generator=g) * (height - h)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)  # (P, 4)


PAPER_SCALE, PAPER_MAX_SIZE, PAPER_WARP = 600, 1000, 224  # Fast R-CNN's test scale; VGG16's warp


def paper_geometry(input_size: int) -> tuple[int, int]:
    """(scale, max_size) at which a network with R-CNN warp size ``input_size`` sees the paper's
    proportions: the warp is ``224 / 600`` of the image's shorter side, as VGG16's 224 x 224 warps
    of a 600-pixel image. (600, 1000) for VGG16; (107, 178) for the small backbone's 40 x 40.

    Notebook 07 times the trained systems at it."""
    scale = round(input_size * PAPER_SCALE / PAPER_WARP)
    return scale, round(scale * PAPER_MAX_SIZE / PAPER_SCALE)
