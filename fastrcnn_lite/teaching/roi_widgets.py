"""Interactive views of RoI pooling: the sub-window grid, the argmax cells, the gradient routing.

Data-flow stage: backbone feature map -> region features (Fast R-CNN section 2.1 and eq. 4),
drawn for ``notebooks/04_roi_pooling.ipynb``.

The state functions (:func:`roi_pool_view`, :func:`roi_backward_view`) and the drawing functions
(:func:`draw_roi_pool_view`, :func:`draw_roi_backward_view` and their panels) are plain
functions, tested in ``tests/test_roi_widgets.py``; :func:`roi_pool_widget` and
:func:`roi_backward_widget` only wire them to ipywidgets controls (tested in a real browser by
``tests/test_browser.py``). The views use one feature channel, Tensor[H, W], so every number
can be printed in its cell; everything is computed by :mod:`fastrcnn_lite.roi_pool` itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from torch import Tensor

from ..roi_pool import roi_bin_edges, roi_cells, roi_pool, roi_pool_loop

__all__ = [
    "demo_feature_map",
    "RoIPoolView",
    "roi_pool_view",
    "draw_roi_pool_map",
    "draw_pooled",
    "draw_roi_pool_view",
    "roi_pool_readout",
    "RoIBackwardView",
    "roi_backward_view",
    "draw_roi_backward_map",
    "draw_backward_output",
    "draw_roi_backward_view",
    "roi_backward_readout",
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


def feature_size(image_size: tuple[int, int], spatial_scale: float) -> tuple[int, int]:
    """H x W of the feature map of an image (a stride-1/spatial_scale network, padded)."""
    return math.ceil(image_size[0] * spatial_scale), math.ceil(image_size[1] * spatial_scale)


# ----------------------------------------------------------------------------- forward view


@dataclass
class RoIPoolView:
    """Everything the forward drawing shows, for one RoI on one channel.

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


# ----------------------------------------------------------------------------- drawing helpers

BIN_COLOURS = ("tab:green", "tab:purple")  # neighbouring bins alternate, on the map and the output
ARGMAX_COLOUR = "tab:red"
OUTSIDE_HATCH = dict(facecolor="white", edgecolor="none", hatch="///", hatchcolor="0.72")


def _bin_colour(i: int, j: int) -> str:
    return BIN_COLOURS[(i + j) % 2]


def _vmax(features: Tensor) -> float:
    return max(float(features.max()), 1) * 1.6  # light greys: black digits stay readable


def _draw_map(ax, features: Tensor, limits: tuple[float, float, float, float]) -> None:
    """The map with its values in the cells, on a hatched ground where the view leaves the map.

    ``limits`` = (left, right, bottom, top) in cell coordinates (cell (y, x) is centred at (x, y)).
    """
    H, W = features.shape
    left, right, bottom, top = limits
    ax.add_patch(Rectangle((left, top), right - left, bottom - top, zorder=0.1, **OUTSIDE_HATCH))
    ax.imshow(features.numpy(), cmap="Greys", vmin=0, vmax=_vmax(features), zorder=0.2)
    ax.add_patch(Rectangle((-0.5, -0.5), W, H, fill=False, ec="0.2", lw=0.8, zorder=0.3))
    if W <= TEXT_CELLS:
        for y in range(H):
            for x in range(W):
                ax.text(x, y, f"{features[y, x]:.0f}", ha="center", va="center", fontsize=7)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_xticks([])
    ax.set_yticks([])


def _cell_outline(ax, y: int, x: int, colour: str, inset: float = 0.08, lw: float = 1.6, **kw):
    ax.add_patch(
        Rectangle(
            (x - 0.5 + inset, y - 0.5 + inset),
            1 - 2 * inset,
            1 - 2 * inset,
            fill=False,
            ec=colour,
            lw=lw,
            **kw,
        )
    )


def _grid_values(ax, values: np.ndarray) -> None:
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center", fontsize=10)


def roi_pool_legend_handles() -> list:
    """Legend entries of :func:`draw_roi_pool_map` and :func:`draw_pooled`."""
    return [
        Line2D([], [], color="tab:blue", ls="--", lw=1.2, label="RoI x spatial_scale"),
        Line2D([], [], color="tab:blue", lw=2.2, label="RoI snapped to cells"),
        Patch(fill=False, ec=BIN_COLOURS[0], lw=1.2, label="bin (green/purple alternate)"),
        Patch(fill=False, ec=BIN_COLOURS[0], lw=1.2, ls=":", label="empty bin (off the map)"),
        Patch(fill=False, ec=ARGMAX_COLOUR, lw=1.6, label="argmax cell of a bin"),
        Patch(fc="tab:orange", alpha=0.45, label="cell in 2+ bins"),
        Patch(**OUTSIDE_HATCH, label="outside the map"),
    ]


def draw_roi_pool_map(view: RoIPoolView, ax) -> None:
    """The map, the RoI (dashed: image pixels x spatial_scale; solid: snapped to cells), every bin
    where it falls (clipped bins reach into the hatched ground outside the map; empty ones are
    dotted), cells in two or more bins shaded orange and each bin's winning cell outlined red."""
    H, W = view.features.shape
    x1, y1, x2, y2 = view.roi_cells
    s = view.spatial_scale
    bx1, by1, bx2, by2 = (c * s for c in view.box)  # continuous feature coordinates
    left = min(-0.5, view.wstart_raw[0] - 0.5, x1 - 0.5, bx1 - 0.3)
    right = max(W - 0.5, view.wend_raw[-1] - 0.5, x2 + 0.5, bx2 + 0.3)
    top = min(-0.5, view.hstart_raw[0] - 0.5, y1 - 0.5, by1 - 0.3)
    bottom = max(H - 0.5, view.hend_raw[-1] - 0.5, y2 + 0.5, by2 + 0.3)
    _draw_map(ax, view.features, (left, right, bottom, top))
    overlap = np.ma.masked_less(view.bins_per_cell, 2)
    ax.imshow(overlap, cmap="Oranges", vmin=0, vmax=3, alpha=0.45, zorder=0.25)
    ax.add_patch(
        Rectangle((bx1, by1), bx2 - bx1, by2 - by1, fill=False, ls="--", ec="tab:blue", lw=1.2)
    )
    ax.add_patch(
        Rectangle(
            (x1 - 0.5, y1 - 0.5),
            max(x2 - x1 + 1, 1),
            max(y2 - y1 + 1, 1),
            fill=False,
            ec="tab:blue",
            lw=2.2,
        )
    )
    h, w = view.output_size
    for i in range(h):
        for j in range(w):
            ys, ye = view.hstart_raw[i], view.hend_raw[i]
            xs, xe = view.wstart_raw[j], view.wend_raw[j]
            inset = 0.1 if (i + j) % 2 == 0 else 0.2  # neighbours drawn apart: overlaps show
            ax.add_patch(
                Rectangle(
                    (xs - 0.5 + inset, ys - 0.5 + inset),
                    xe - xs - 2 * inset,
                    ye - ys - 2 * inset,
                    fill=False,
                    ec=_bin_colour(i, j),
                    lw=1.2,
                    ls=":" if view.empty[i, j] else "-",
                )
            )
    for y, x in {tuple(int(v) for v in c) for c in view.argmax.reshape(-1, 2) if c[0] >= 0}:
        _cell_outline(ax, y, x, ARGMAX_COLOUR, inset=0.02, lw=1.6, zorder=3)
    ax.set_title(
        f"RoI {tuple(round(c) for c in view.box)} px x {_scale_name(s)} -> cells x {x1}..{x2}, y {y1}..{y2}",
        fontsize=9,
    )


def draw_pooled(view: RoIPoolView, ax) -> None:
    """The pooled h x w output: each cell outlined in its bin's colour, empty bins hatched (0)."""
    h, w = view.output_size
    ax.imshow(view.pooled, cmap="Greys", vmin=0, vmax=_vmax(view.features))
    for i in range(h):
        for j in range(w):
            colour = _bin_colour(i, j)
            if view.empty[i, j]:
                ax.add_patch(
                    Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", ec=colour, lw=0)
                )
            _cell_outline(ax, i, j, colour, inset=0.06, lw=2, ls=":" if view.empty[i, j] else "-")
    _grid_values(ax, view.pooled)
    ax.set_title(f"pooled {h}x{w} ({int(view.empty.sum())} empty bins)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_roi_pool_view(view: RoIPoolView, fig: Figure | None = None) -> Figure:
    """Left: :func:`draw_roi_pool_map`. Right: :func:`draw_pooled`. A legend below both."""
    fig = fig or plt.figure(figsize=(10, 4.6))
    fig.clear()
    ax_map, ax_out = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    draw_roi_pool_map(view, ax_map)
    draw_pooled(view, ax_out)
    fig.legend(
        handles=roi_pool_legend_handles(), loc="lower center", ncol=4, fontsize=7, frameon=False
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
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
    pooled.backward(torch.ones_like(pooled))  # each cell collects one per output it won
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


TARGET_COLOUR = "tab:orange"
SHARED_COLOUR = "tab:red"


def roi_backward_legend_handles() -> list:
    """Legend entries of :func:`draw_roi_backward_map`."""
    return [
        Line2D([], [], color="tab:blue", lw=1.5, label="RoI"),
        Line2D([], [], color=TARGET_COLOUR, lw=1.5, label="picked RoI"),
        Patch(fc="tab:blue", alpha=0.45, label="cell receiving gradient"),
        Patch(fill=False, ec=SHARED_COLOUR, lw=1.2, label="from 2+ outputs (count)"),
        Patch(fill=False, ec=TARGET_COLOUR, lw=2.6, label="picked output's gradient"),
        Patch(**OUTSIDE_HATCH, label="outside the map"),
    ]


def draw_roi_backward_map(view: RoIBackwardView, ax) -> None:
    """The map, each RoI, how many outputs route their gradient to each cell (blue; cells
    collecting from several outputs outlined red with the count), the picked output's target
    cell outlined orange."""
    H, W = view.features.shape
    k, i, j = view.picked
    s = view.spatial_scale
    corners = np.array(view.boxes, dtype=float).reshape(-1, 4) * s
    left = min(-0.5, float(corners[:, 0].min()) - 0.6)
    right = max(W - 0.5, float(corners[:, 2].max()) + 0.6)
    top = min(-0.5, float(corners[:, 1].min()) - 0.6)
    bottom = max(H - 0.5, float(corners[:, 3].max()) + 0.6)
    _draw_map(ax, view.features, (left, right, bottom, top))
    ax.imshow(
        np.ma.masked_equal(view.hits, 0),
        cmap="Blues",
        vmin=0,
        vmax=max(int(view.hits.max()), 1) + 1,
        alpha=0.6,
        zorder=0.25,
    )
    for n, (bx1, by1, bx2, by2) in enumerate(corners.tolist()):
        colour = TARGET_COLOUR if n == k else "tab:blue"
        ax.add_patch(
            Rectangle((bx1, by1), bx2 - bx1, by2 - by1, fill=False, ec=colour, lw=1.5, zorder=2)
        )
    for y, x in view.shared_cells:
        _cell_outline(ax, y, x, SHARED_COLOUR, inset=0.12, lw=1.2)
        if W <= TEXT_CELLS:
            ax.text(x + 0.38, y - 0.3, str(view.hits[y, x]), color=SHARED_COLOUR, fontsize=5.5)
    if view.target is not None:
        _cell_outline(
            ax, view.target[0], view.target[1], TARGET_COLOUR, inset=-0.06, lw=2.6, zorder=3
        )
    target = (
        "no cell (empty bin)"
        if view.target is None
        else f"cell (y={view.target[0]}, x={view.target[1]})"
    )
    ax.set_title(f"gradient of output (RoI {k}, bin {i},{j}) -> {target}", fontsize=9)


def draw_backward_output(view: RoIBackwardView, ax) -> None:
    """The picked RoI's pooled output with the picked cell outlined orange."""
    k, i, j = view.picked
    ax.imshow(view.pooled[k], cmap="Greys", vmin=0, vmax=_vmax(view.features))
    _grid_values(ax, view.pooled[k])
    _cell_outline(ax, i, j, TARGET_COLOUR, inset=0.04, lw=2.6)
    ax.set_title(f"RoI {k} pooled; {len(view.shared_cells)} cells shared", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_roi_backward_view(view: RoIBackwardView, fig: Figure | None = None) -> Figure:
    """Left: :func:`draw_roi_backward_map`. Right: :func:`draw_backward_output`. A legend below."""
    fig = fig or plt.figure(figsize=(10, 4.6))
    fig.clear()
    ax_map, ax_out = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    draw_roi_backward_map(view, ax_map)
    draw_backward_output(view, ax_out)
    fig.legend(
        handles=roi_backward_legend_handles(),
        loc="lower center",
        ncol=3,
        fontsize=7,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


# ----------------------------------------------------------------------------- ipywidgets

CONTROL_GRID = "repeat(auto-fill, minmax(300px, 1fr))"  # as many ~300 px columns as fit, wrapping
LABEL_WIDTH = "92px"  # room for the longest label, "spatial_scale"


def _controls(children):
    """Controls in a grid that wraps: four columns at 1920 px, two beside the JupyterLab sidebar."""
    import ipywidgets as widgets

    for c in children:
        c.layout = widgets.Layout(width="auto")
        c.style = {"description_width": LABEL_WIDTH}
    return widgets.GridBox(
        children,
        layout=widgets.Layout(
            grid_template_columns=CONTROL_GRID, grid_gap="2px 16px", width="100%"
        ),
    )


def _int_slider(description: str, value: int, lo: int, hi: int, step: int = 1):
    import ipywidgets as widgets

    return widgets.IntSlider(
        value=value,
        min=lo,
        max=hi,
        step=step,
        description=description,
        continuous_update=False,  # redraw on release (arrow keys: once per press)
    )


def _figure_row(images):
    """Figures side by side when they fit, else one under the other (never shrunk to fit)."""
    import ipywidgets as widgets

    for im in images:
        im.layout = widgets.Layout(max_width="100%", height="auto")
    return widgets.Box(
        images,
        layout=widgets.Layout(display="flex", flex_flow="row wrap", align_items="flex-start"),
    )


def _legend_below(ax, handles) -> None:
    """The legend right under the (aspect-locked, top-anchored) map, whatever its shape."""
    ax.set_anchor("N")
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.01),
        ncol=2,
        fontsize=8,
        frameon=False,
    )


def _matrix_text(values: np.ndarray) -> str:
    return "\n".join(" ".join(f"{v:.0f}" for v in row) for row in values)


def _scale_name(scale: float) -> str:
    """1/8 for 0.125: spatial_scale as the stride it stands for."""
    return str(Fraction(scale).limit_denominator(1024))


def roi_pool_readout(view: RoIPoolView) -> str:
    """One line saying which call gives the drawn output, then the output (the widget's text)."""
    H, W = view.features.shape
    h, w = view.output_size
    box = ", ".join(f"{c:g}" for c in view.box)
    return (
        f"features = demo_feature_map({H}, {W}); "
        f"roi_pool(features[None, None], torch.tensor([[0, {box}]]), ({h}, {w}), "
        f"{_scale_name(view.spatial_scale)})[0, 0] ({int(view.empty.sum())} empty bins):\n"
        + _matrix_text(view.pooled)
    )


def roi_pool_widget(image_size: tuple[int, int] = IMAGE_SIZE, seed: int = 0):
    """Sliders for the RoI (image pixels, one feature cell per step), h x w and spatial_scale.

    Draws :func:`draw_roi_pool_map` and :func:`draw_pooled` as two pictures that sit side by side
    when there is room, and prints the pooled values with the call that computes them.
    """
    import ipywidgets as widgets

    from .widget_display import (
        RUN_NOTE,
        WidgetWithPicture,
        figure_png,
        new_figure,
        picture,
        readout_html,
    )

    height, width = image_size
    top_x, top_y = (16 * math.ceil((n + 32) / 16) for n in (width, height))  # multiples of 16 px
    start = SCALES["1/8"]
    step = round(1 / start)
    coords = {
        "x1": _int_slider("x1 (px)", 24, -32, top_x, step),
        "y1": _int_slider("y1 (px)", 16, -32, top_y, step),
        "x2": _int_slider("x2 (px)", 96, -32, top_x, step),
        "y2": _int_slider("y2 (px)", 72, -32, top_y, step),
    }
    grid = {"h": _int_slider("h (bins)", 3, 1, 9), "w": _int_slider("w (bins)", 5, 1, 9)}
    scale = widgets.Dropdown(options=list(SCALES), value="1/8", description="spatial_scale")
    map_fig, out_fig = new_figure(5.8, 5.6), new_figure(3.0, 3.3)
    map_image, out_image = widgets.Image(format="png"), widgets.Image(format="png")
    readout = widgets.HTML()
    busy = []  # non-empty while several controls change at once (one redraw at the end)

    def render():
        s = SCALES[scale.value]
        features = demo_feature_map(*feature_size(image_size, s), seed=seed)
        box = tuple(coords[k].value for k in ("x1", "y1", "x2", "y2"))
        view = roi_pool_view(features, box, (grid["h"].value, grid["w"].value), s)
        map_fig.clear()
        ax = map_fig.add_axes((0.02, 0.2, 0.96, 0.74))
        draw_roi_pool_map(view, ax)
        _legend_below(ax, roi_pool_legend_handles())
        out_fig.clear()
        draw_pooled(view, out_fig.add_axes((0.04, 0.04, 0.92, 0.84)))
        map_image.value, out_image.value = figure_png(map_fig), figure_png(out_fig)
        readout.value = readout_html(roi_pool_readout(view))
        return view

    def on_change(_=None):
        if not busy:
            render()

    def on_scale(change):
        step = round(1 / SCALES[change.new])
        busy.append(True)
        for s in coords.values():  # one arrow-key step = one feature cell
            s.step = step
            s.value = step * round(s.value / step)
        busy.pop()
        render()

    for s in [*coords.values(), *grid.values()]:
        s.observe(on_change, names="value")
    scale.observe(on_scale, names="value")
    render()
    values = ", ".join(f"{k} = {s.value}" for k, s in coords.items())
    first = picture(
        [map_image.value, out_image.value],
        [
            RUN_NOTE,
            f"{values} px; h = {grid['h'].value}, w = {grid['w'].value} bins; "
            f"spatial_scale = {scale.value}",
        ],
    )
    return WidgetWithPicture(
        [
            _controls([*coords.values(), *grid.values(), scale]),
            _figure_row([map_image, out_image]),
            readout,
        ],
        first,
    )


def roi_backward_readout(view: RoIBackwardView) -> str:
    """What the backward widget prints: the picked output, its value and where its gradient goes."""
    k, i, j = view.picked
    value = view.pooled[k, i, j]
    box = ", ".join(f"{c:g}" for c in view.boxes[k])
    goes = (
        "nowhere (empty bin)"
        if view.target is None
        else f"cell (y={view.target[0]}, x={view.target[1]})"
    )
    return (
        f"output (RoI {k}, bin {i},{j}) of RoI {k} = ({box}) px, "
        f"output_size ({view.output_size[0]}, {view.output_size[1]}): value {value:.0f}; "
        f"its gradient goes to {goes}; {len(view.shared_cells)} cells collect from 2+ outputs"
    )


def roi_backward_widget(
    boxes, image_size: tuple[int, int] = IMAGE_SIZE, spatial_scale: float = 1 / 8, seed: int = 0
):
    """Pick an output (RoI, bin row, bin column) and see where its gradient goes.

    The bin sliders always end at the current grid's last row and column (h - 1, w - 1).
    """
    from .widget_display import (
        RUN_NOTE,
        WidgetWithPicture,
        figure_png,
        new_figure,
        picture,
        readout_html,
    )

    features = demo_feature_map(*feature_size(image_size, spatial_scale), seed=seed)
    size = _int_slider("h = w", 3, 1, 7)
    roi = _int_slider("RoI", 0, 0, len(boxes) - 1)
    row = _int_slider("bin row", 0, 0, size.value - 1)
    col = _int_slider("bin col", 0, 0, size.value - 1)
    import ipywidgets as widgets

    map_fig, out_fig = new_figure(5.8, 5.4), new_figure(3.0, 3.3)
    map_image, out_image = widgets.Image(format="png"), widgets.Image(format="png")
    readout = widgets.HTML()
    busy = []

    def render():
        picked = (roi.value, row.value, col.value)
        view = roi_backward_view(features, boxes, (size.value, size.value), spatial_scale, picked)
        map_fig.clear()
        ax = map_fig.add_axes((0.02, 0.17, 0.96, 0.77))
        draw_roi_backward_map(view, ax)
        _legend_below(ax, roi_backward_legend_handles())
        out_fig.clear()
        draw_backward_output(view, out_fig.add_axes((0.04, 0.04, 0.92, 0.84)))
        map_image.value, out_image.value = figure_png(map_fig), figure_png(out_fig)
        readout.value = readout_html(roi_backward_readout(view))
        return view

    def on_change(_=None):
        if not busy:
            render()

    def on_size(change):
        busy.append(True)
        row.max = col.max = change.new - 1  # traitlets clamps a value beyond the new max
        busy.pop()
        render()

    for s in (roi, row, col):
        s.observe(on_change, names="value")
    size.observe(on_size, names="value")
    render()
    first = picture(
        [map_image.value, out_image.value],
        [
            RUN_NOTE,
            f"h = w = {size.value}; RoI {roi.value}, bin row {row.value}, bin col {col.value}",
        ],
    )
    return WidgetWithPicture(
        [_controls([size, roi, row, col]), _figure_row([map_image, out_image]), readout], first
    )
