"""What the RoI pooling drawings show, computed by the package's own RoI pooling.

Data-flow stage: backbone feature map -> region features (Fast R-CNN section 2.1 and eq. 4), for
one feature channel, Tensor[H, W], so that every number can be printed in its cell. Taught in
``notebooks/04_roi_pooling.ipynb``.

:func:`roi_pool_view` pools one RoI with :func:`~fastrcnn_lite.roi_pool.roi_pool_loop` (and
checks :func:`~fastrcnn_lite.roi_pool.roi_pool` agrees) and keeps every bin edge and argmax;
:func:`roi_backward_view` runs the real backward of :func:`~fastrcnn_lite.roi_pool.roi_pool` over
R RoIs to see where each output's gradient goes. The views pass on plain numbers and arrays
(h x w bins, H x W cells) to the drawings of :mod:`fastrcnn_lite.teaching.roi_figures` and the
widgets of :mod:`fastrcnn_lite.teaching.roi_widgets`; tested in ``tests/test_roi_widgets.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..roi_pool import roi_bin_edges, roi_cells, roi_pool, roi_pool_loop

__all__ = [
    "IMAGE_SIZE",
    "demo_feature_map",
    "feature_size",
    "RoIPoolView",
    "roi_pool_view",
    "RoIBackwardView",
    "roi_backward_view",
]

IMAGE_SIZE = (128, 160)  # (height, width) in pixels of the imaginary image the sliders move over


def demo_feature_map(height: int, width: int, seed: int = 0) -> Tensor:
    """A smooth, integer-valued one-channel map (0..9): blobs to pool, and plenty of ties.

    Notebook 04 pools RoIs of it in its drawings and widgets.

    Returns:
        Tensor[H, W] float32 (H = ``height``, W = ``width``).
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None, :]
    centres = torch.rand(6, 2, generator=g)
    blobs = sum(torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 0.04) for cy, cx in centres)  # (H, W)
    noise = torch.rand(height, width, generator=g)  # (H, W)
    return torch.round(8 * blobs / blobs.max() + noise).clamp(max=9).float()


def feature_size(image_size: tuple[int, int], spatial_scale: float) -> tuple[int, int]:
    """H x W of the feature map of an image (a stride-1/spatial_scale network, padded).

    Notebook 04 (its widgets size the demo map with it).
    """
    return math.ceil(image_size[0] * spatial_scale), math.ceil(image_size[1] * spatial_scale)


# ----------------------------------------------------------------------------- forward view


@dataclass
class RoIPoolView:
    """Everything the forward drawing shows, for one RoI on one channel (Notebook 04 draws it).

    ``roi_cells`` is the snapped RoI (x1, y1, x2, y2), corners inclusive, in feature cells;
    ``hstart/hend`` (h,) and ``wstart/wend`` (w,) the bin edges after clipping to the map and
    ``*_raw`` the same edges before clipping (where the bin falls, on or off the map); ``empty``
    (h, w) the bins that pool nothing; ``pooled`` (h, w) the output; ``argmax`` (h, w, 2) the
    (y, x) cell each output came from (-1 for an empty bin); ``bins_per_cell`` (H, W) how many
    bins cover each cell (2 or 4 where neighbouring bins overlap).
    """

    features: Tensor
    box: tuple[float, float, float, float]
    output_size: tuple[int, int]
    spatial_scale: float
    roi_cells: tuple[int, int, int, int]
    hstart: list[int]
    hend: list[int]
    wstart: list[int]
    wend: list[int]
    hstart_raw: list[int]
    hend_raw: list[int]
    wstart_raw: list[int]
    wend_raw: list[int]
    empty: np.ndarray
    pooled: np.ndarray
    argmax: np.ndarray
    bins_per_cell: np.ndarray


def _unclipped_edges(snapped, h: int, w: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """Bin edges before clipping: the kernel's floor/ceil of multiples of the float32 bin size."""
    x1, y1, x2, y2 = snapped
    bin_h = torch.tensor(max(y2 - y1 + 1, 1), dtype=torch.float32) / h
    bin_w = torch.tensor(max(x2 - x1 + 1, 1), dtype=torch.float32) / w
    i = torch.arange(h, dtype=torch.float32)
    j = torch.arange(w, dtype=torch.float32)
    return (
        (torch.floor(i * bin_h).long() + y1).tolist(),
        (torch.ceil((i + 1) * bin_h).long() + y1).tolist(),
        (torch.floor(j * bin_w).long() + x1).tolist(),
        (torch.ceil((j + 1) * bin_w).long() + x1).tolist(),
    )


def roi_pool_view(features: Tensor, box, output_size, spatial_scale: float) -> RoIPoolView:
    """State of the forward view: pool one RoI of a Tensor[H, W] map with the package's op.

    Notebook 04 draws it (:func:`~fastrcnn_lite.teaching.roi_figures.draw_roi_pool_view`).

    Args:
        features (Tensor[H, W]): one channel.
        box ((x1, y1, x2, y2)): the RoI in image pixels.
        output_size ((h, w)): bins.
        spatial_scale (float): image pixels -> feature cells.
    """
    h, w = output_size
    H, W = features.shape
    x = features.float()[None, None]  # (1, 1, H, W)
    rois = torch.tensor([[0.0, *box]])  # (1, 5)
    _, hs, he, ws, we = roi_bin_edges(rois, (h, w), spatial_scale, H, W)
    pooled, argmax = roi_pool_loop(x, rois, (h, w), spatial_scale, return_argmax=True)
    assert torch.equal(pooled, roi_pool(x, rois, (h, w), spatial_scale))  # the two versions agree
    flat = argmax[0, 0].numpy()  # (h, w) y * W + x, or -1
    yx = np.stack([np.where(flat >= 0, flat // W, -1), np.where(flat >= 0, flat % W, -1)], axis=-1)
    hs, he, ws, we = (t[0].tolist() for t in (hs, he, ws, we))
    empty = np.array([[he[i] <= hs[i] or we[j] <= ws[j] for j in range(w)] for i in range(h)])
    bins_per_cell = np.zeros((H, W), dtype=int)
    for i in range(h):
        for j in range(w):
            bins_per_cell[hs[i] : he[i], ws[j] : we[j]] += 1
    snapped = tuple(roi_cells(rois, spatial_scale)[0].tolist())  # (x1, y1, x2, y2) cells
    raw = _unclipped_edges(snapped, h, w)
    clip = (H, H, W, W)
    assert all(  # clipping the raw edges gives the package's edges
        [min(max(v, 0), n) for v in r] == c
        for r, c, n in zip(raw, (hs, he, ws, we), clip, strict=True)
    )
    return RoIPoolView(
        features=features,
        box=tuple(float(c) for c in box),
        output_size=(h, w),
        spatial_scale=spatial_scale,
        roi_cells=snapped,
        hstart=hs,
        hend=he,
        wstart=ws,
        wend=we,
        hstart_raw=raw[0],
        hend_raw=raw[1],
        wstart_raw=raw[2],
        wend_raw=raw[3],
        empty=empty,
        pooled=pooled[0, 0].numpy(),
        argmax=yx,
        bins_per_cell=bins_per_cell,
    )


# ----------------------------------------------------------------------------- backward view


@dataclass
class RoIBackwardView:
    """Everything the backward drawing shows (Notebook 04 draws it).

    ``hits`` (H, W): how many outputs (over all RoIs and bins) send their gradient to each cell,
    computed by the package's backward with an all-ones output gradient; ``picked`` the chosen
    output (r, i, j) and ``target`` the (y, x) cell its gradient reaches (None for an empty bin);
    ``pooled`` (R, h, w) the outputs.
    """

    features: Tensor
    boxes: list[tuple[float, float, float, float]]
    output_size: tuple[int, int]
    spatial_scale: float
    picked: tuple[int, int, int]
    target: tuple[int, int] | None
    hits: np.ndarray
    pooled: np.ndarray

    @property
    def shared_cells(self) -> list[tuple[int, int]]:
        """Cells that collect gradient from several bins or RoIs (their gradients add up)."""
        return [tuple(int(v) for v in c) for c in np.argwhere(self.hits >= 2)]


def roi_backward_view(
    features: Tensor, boxes, output_size, spatial_scale: float, picked=(0, 0, 0)
) -> RoIBackwardView:
    """State of the backward view, from the real backward of :func:`roi_pool`.

    Notebook 04 draws it (:func:`~fastrcnn_lite.teaching.roi_figures.draw_roi_backward_view`).

    Args:
        features (Tensor[H, W]): one channel.
        boxes (sequence of R (x1, y1, x2, y2)): RoIs in image pixels.
        output_size ((h, w)): bins.
        spatial_scale (float): image pixels -> feature cells.
        picked ((r, i, j)): the output whose gradient is followed (RoI r, bin row i, bin column j).
    """
    h, w = output_size
    r, i, j = picked
    x = features.float()[None, None].clone().requires_grad_()  # (1, 1, H, W)
    rois = torch.tensor([[0.0, *b] for b in boxes])  # (R, 5)
    pooled = roi_pool(x, rois, (h, w), spatial_scale)  # (R, 1, h, w)
    pooled.backward(torch.ones_like(pooled))  # each cell collects one per output it won
    hits = x.grad[0, 0].round().long().numpy()
    x.grad = None
    one_hot = torch.zeros_like(pooled)
    one_hot[r, 0, i, j] = 1.0
    roi_pool(x, rois, (h, w), spatial_scale).backward(one_hot)  # the gradient of one output
    reached = (x.grad[0, 0] != 0).nonzero().tolist()
    return RoIBackwardView(
        features=features,
        boxes=[tuple(float(c) for c in b) for b in boxes],
        output_size=(h, w),
        spatial_scale=spatial_scale,
        picked=(r, i, j),
        target=tuple(reached[0]) if reached else None,
        hits=hits,
        pooled=pooled.detach()[:, 0].numpy(),
    )
