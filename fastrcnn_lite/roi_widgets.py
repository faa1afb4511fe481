"""Interactive views of RoI pooling: the sub-window grid, the argmax cells, the gradient routing.

Data-flow stage: backbone feature map -> region features (Fast R-CNN section 2.1 and eq. 4),
drawn for ``notebooks/04_roi_pooling.ipynb``.

The state functions (:func:`roi_pool_view`, :func:`roi_backward_view`) and the drawing functions
(:func:`draw_roi_pool_view`, :func:`draw_roi_backward_view`) are plain functions, tested in
``tests/test_roi_widgets.py``; :func:`roi_pool_widget` and :func:`roi_backward_widget` only wire
them to ipywidgets sliders. The views use one feature channel, Tensor[H, W], so every number
can be printed in its cell; everything is computed by :mod:`fastrcnn_lite.roi_pool` itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from .roi_pool import roi_bin_edges, roi_cells, roi_pool, roi_pool_loop

__all__ = [
    "demo_feature_map",
    "RoIPoolView",
    "roi_pool_view",
    "draw_roi_pool_view",
    "RoIBackwardView",
    "roi_backward_view",
    "draw_roi_backward_view",
    "roi_pool_widget",
    "roi_backward_widget",
]

IMAGE_SIZE = (128, 160)  # (height, width) in pixels of the imaginary image the sliders move over
SCALES = {"1/4": 1 / 4, "1/8": 1 / 8, "1/16": 1 / 16, "1/2": 1 / 2}  # spatial_scale choices
TEXT_CELLS = 24  # print values in cells when the map is at most this wide


def demo_feature_map(height: int, width: int, seed: int = 0) -> Tensor:
    """A smooth, integer-valued one-channel map (0..9): blobs to pool, and plenty of ties.

    Returns:
        Tensor[H, W] float32.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None, :]
    centres = torch.rand(6, 2, generator=g)
    blobs = sum(torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 0.04) for cy, cx in centres)  # (H, W)
    noise = torch.rand(height, width, generator=g)  # (H, W)
    return torch.round(8 * blobs / blobs.max() + noise).clamp(max=9).float()


def _feature_size(image_size: tuple[int, int], spatial_scale: float) -> tuple[int, int]:
    """H x W of the feature map of an image (a stride-1/spatial_scale network, padded)."""
    return math.ceil(image_size[0] * spatial_scale), math.ceil(image_size[1] * spatial_scale)


# ----------------------------------------------------------------------------- forward view


@dataclass
class RoIPoolView:
    """Everything the forward drawing shows, for one RoI on one channel.

    ``roi_cells`` is the snapped RoI (x1, y1, x2, y2), corners inclusive, in feature cells;
    ``hstart/hend`` (h,) and ``wstart/wend`` (w,) the bin edges after clipping; ``empty`` (h, w)
    the bins that pool nothing; ``pooled`` (h, w) the output; ``argmax`` (h, w, 2) the (y, x)
    cell each output came from (-1 for an empty bin); ``bins_per_cell`` (H, W) how many bins
    cover each cell (2 or 4 where neighbouring bins overlap).
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
    empty: np.ndarray
    pooled: np.ndarray
    argmax: np.ndarray
    bins_per_cell: np.ndarray


def roi_pool_view(features: Tensor, box, output_size, spatial_scale: float) -> RoIPoolView:
    """State of the forward view: pool one RoI of a Tensor[H, W] map with the package's op.

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
        empty=empty,
        pooled=pooled[0, 0].numpy(),
        argmax=yx,
        bins_per_cell=bins_per_cell,
    )


def _draw_map(ax, features: Tensor, title: str) -> None:
    H, W = features.shape
    ax.imshow(features.numpy(), cmap="Greys", vmin=0, vmax=max(float(features.max()), 1) * 1.6)
    if W <= TEXT_CELLS:
        for y in range(H):
            for x in range(W):
                ax.text(
                    x,
                    y,
                    f"{features[y, x]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="0.35",
                )
    ax.set_title(title, fontsize=9)
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)


def draw_roi_pool_view(view: RoIPoolView, fig: Figure | None = None) -> Figure:
    """Left: the map, the RoI (dashed: in image pixels; solid: snapped to cells), the bins with
    their floor/ceil edges (green and purple alternate; cells in two or more bins shaded
    orange), each bin's argmax (red dot). Right: the pooled h x w output (empty bins hatched,
    output 0)."""
    fig = fig or plt.figure(figsize=(10, 4))
    fig.clear()
    ax_map, ax_out = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    x1, y1, x2, y2 = view.roi_cells
    s = view.spatial_scale
    _draw_map(
        ax_map,
        view.features,
        f"RoI {tuple(round(c) for c in view.box)} px x {s:g} -> cells x {x1}..{x2}, y {y1}..{y2}",
    )
    overlap = np.ma.masked_less(view.bins_per_cell, 2)
    ax_map.imshow(overlap, cmap="Oranges", vmin=0, vmax=5, alpha=0.5)
    bx1, by1, bx2, by2 = (c * s for c in view.box)  # continuous feature coordinates (cell centres)
    ax_map.add_patch(
        Rectangle((bx1, by1), bx2 - bx1, by2 - by1, fill=False, ls="--", ec="tab:blue", lw=1)
    )
    ax_map.add_patch(
        Rectangle(
            (x1 - 0.5, y1 - 0.5),
            max(x2 - x1 + 1, 1),
            max(y2 - y1 + 1, 1),
            fill=False,
            ec="tab:blue",
            lw=2,
        )
    )
    h, w = view.output_size
    for i in range(h):
        for j in range(w):
            if view.empty[i, j]:
                continue
            ys, ye, xs, xe = view.hstart[i], view.hend[i], view.wstart[j], view.wend[j]
            inset = 0.06 if (i + j) % 2 == 0 else 0.14  # neighbours drawn apart: overlaps show
            colour = "tab:green" if (i + j) % 2 == 0 else "tab:purple"
            ax_map.add_patch(
                Rectangle(
                    (xs - 0.5 + inset, ys - 0.5 + inset),
                    xe - xs - 2 * inset,
                    ye - ys - 2 * inset,
                    fill=False,
                    ec=colour,
                    lw=0.9,
                )
            )
            ay, ax_ = view.argmax[i, j]
            if ay >= 0:
                ax_map.plot(ax_, ay, "o", color="tab:red", ms=4)
    ax_out.imshow(view.pooled, cmap="Greys", vmin=0, vmax=max(float(view.features.max()), 1) * 1.6)
    for i in range(h):
        for j in range(w):
            if view.empty[i, j]:
                ax_out.add_patch(
                    Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", ec="tab:purple")
                )
            ax_out.text(j, i, f"{view.pooled[i, j]:.0f}", ha="center", va="center", fontsize=8)
    ax_out.set_title(f"pooled {h}x{w} ({int(view.empty.sum())} empty bins)", fontsize=9)
    for a in (ax_map, ax_out):
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- backward view


@dataclass
class RoIBackwardView:
    """Everything the backward drawing shows.

    ``hits`` (H, W): how many outputs (over all RoIs and bins) send their gradient to each cell,
    computed by the package's backward with an all-ones output gradient; ``picked`` the chosen
    output (k, i, j) and ``target`` the (y, x) cell its gradient reaches (None for an empty bin);
    ``pooled`` (K, h, w) the outputs.
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

    Args:
        features (Tensor[H, W]): one channel.
        boxes (sequence of (x1, y1, x2, y2)): RoIs in image pixels.
        picked ((k, i, j)): the output whose gradient is followed.
    """
    h, w = output_size
    k, i, j = picked
    x = features.float()[None, None].clone().requires_grad_()  # (1, 1, H, W)
    rois = torch.tensor([[0.0, *b] for b in boxes])  # (K, 5)
    pooled = roi_pool(x, rois, (h, w), spatial_scale)  # (K, 1, h, w)
    pooled.backward(
        torch.ones_like(pooled)
    )  # each cell collects one per output it was the argmax of
    hits = x.grad[0, 0].round().long().numpy()
    x.grad = None
    one_hot = torch.zeros_like(pooled)
    one_hot[k, 0, i, j] = 1.0
    roi_pool(x, rois, (h, w), spatial_scale).backward(one_hot)  # the gradient of one output
    reached = (x.grad[0, 0] != 0).nonzero().tolist()
    return RoIBackwardView(
        features=features,
        boxes=[tuple(float(c) for c in b) for b in boxes],
        output_size=(h, w),
        spatial_scale=spatial_scale,
        picked=(k, i, j),
        target=tuple(reached[0]) if reached else None,
        hits=hits,
        pooled=pooled.detach()[:, 0].numpy(),
    )


def draw_roi_backward_view(view: RoIBackwardView, fig: Figure | None = None) -> Figure:
    """Left: the map, each RoI, the number of outputs routed to each cell (cells collecting
    from several outputs outlined in red), the picked output's target cell (star). Right: the
    picked RoI's pooled output with the picked cell outlined."""
    fig = fig or plt.figure(figsize=(10, 4))
    fig.clear()
    ax_map, ax_out = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    k, i, j = view.picked
    target = (
        "no cell (empty bin)"
        if view.target is None
        else f"cell (y={view.target[0]}, x={view.target[1]})"
    )
    _draw_map(ax_map, view.features, f"gradient of output (RoI {k}, bin {i},{j}) -> {target}")
    ax_map.imshow(
        np.ma.masked_equal(view.hits, 0),
        cmap="Blues",
        vmin=0,
        vmax=max(int(view.hits.max()), 1) + 1,
        alpha=0.6,
    )
    s = view.spatial_scale
    for n, (bx1, by1, bx2, by2) in enumerate(view.boxes):
        colour = "tab:orange" if n == k else "tab:blue"
        ax_map.add_patch(
            Rectangle(
                (bx1 * s, by1 * s), (bx2 - bx1) * s, (by2 - by1) * s, fill=False, ec=colour, lw=1.5
            )
        )
    for y, x in view.shared_cells:
        ax_map.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, ec="tab:red", lw=1.2))
        if view.hits.shape[1] <= TEXT_CELLS:
            ax_map.text(x + 0.3, y - 0.25, str(view.hits[y, x]), color="tab:red", fontsize=6)
    if view.target is not None:
        ax_map.plot(view.target[1], view.target[0], "*", color="tab:orange", ms=12, mec="k")
    h, w = view.output_size
    ax_out.imshow(
        view.pooled[k], cmap="Greys", vmin=0, vmax=max(float(view.features.max()), 1) * 1.6
    )
    for a in range(h):
        for b in range(w):
            ax_out.text(b, a, f"{view.pooled[k, a, b]:.0f}", ha="center", va="center", fontsize=8)
    ax_out.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="tab:orange", lw=2.5))
    ax_out.set_title(f"RoI {k} pooled; {len(view.shared_cells)} cells shared", fontsize=9)
    for a in (ax_map, ax_out):
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- ipywidgets


def roi_pool_widget(image_size: tuple[int, int] = IMAGE_SIZE, seed: int = 0):
    """Sliders for the RoI (image pixels), h x w and spatial_scale, drawing :func:`draw_roi_pool_view`."""
    import ipywidgets as widgets
    from IPython.display import display

    height, width = image_size
    slider = {
        "x1": widgets.IntSlider(value=24, min=-32, max=width + 32, description="x1 (px)"),
        "y1": widgets.IntSlider(value=20, min=-32, max=height + 32, description="y1 (px)"),
        "x2": widgets.IntSlider(value=100, min=-32, max=width + 32, description="x2 (px)"),
        "y2": widgets.IntSlider(value=76, min=-32, max=height + 32, description="y2 (px)"),
        "h": widgets.IntSlider(value=3, min=1, max=9, description="h (bins)"),
        "w": widgets.IntSlider(value=5, min=1, max=9, description="w (bins)"),
        "scale": widgets.Dropdown(options=list(SCALES), value="1/8", description="spatial_scale"),
    }
    out = widgets.Output()

    def update(**values):
        scale = SCALES[values["scale"]]
        features = demo_feature_map(*_feature_size(image_size, scale), seed=seed)
        box = (values["x1"], values["y1"], values["x2"], values["y2"])
        with out:
            out.clear_output(wait=True)
            fig = draw_roi_pool_view(
                roi_pool_view(features, box, (values["h"], values["w"]), scale)
            )
            display(fig)
            plt.close(fig)

    ui = widgets.VBox(
        [widgets.HBox(list(slider.values())[:4]), widgets.HBox(list(slider.values())[4:]), out]
    )
    widgets.interactive_output(update, slider)
    return ui


def roi_backward_widget(
    boxes, image_size: tuple[int, int] = IMAGE_SIZE, spatial_scale: float = 1 / 8, seed: int = 0
):
    """Pick an output (RoI, bin row, bin column) and see where its gradient goes."""
    import ipywidgets as widgets
    from IPython.display import display

    features = demo_feature_map(*_feature_size(image_size, spatial_scale), seed=seed)
    size = widgets.IntSlider(value=3, min=1, max=7, description="h = w")
    roi = widgets.IntSlider(value=0, min=0, max=len(boxes) - 1, description="RoI")
    row = widgets.IntSlider(value=0, min=0, max=6, description="bin row")
    col = widgets.IntSlider(value=0, min=0, max=6, description="bin col")
    out = widgets.Output()

    def update(size, roi, row, col):
        picked = (roi, min(row, size - 1), min(col, size - 1))
        with out:
            out.clear_output(wait=True)
            fig = draw_roi_backward_view(
                roi_backward_view(features, boxes, (size, size), spatial_scale, picked)
            )
            display(fig)
            plt.close(fig)

    widgets.interactive_output(update, {"size": size, "roi": roi, "row": row, "col": col})
    return widgets.VBox([widgets.HBox([size, roi, row, col]), out])
