"""RoI pooling's static pictures and texts: the sub-window grid, argmax cells, gradient routing.

Data-flow stage: backbone feature map -> region features (Fast R-CNN section 2.1 and eq. 4),
drawn for ``notebooks/04_roi_pooling.ipynb``. Each function takes a view of
:mod:`fastrcnn_lite.teaching.roi_views` (one channel, Tensor[H, W]; h x w bins; R RoIs) and draws
it on a matplotlib Axes or Figure, or says it in words (:func:`roi_pool_readout`,
:func:`roi_backward_readout`). The notebook shows the ``draw_*_view`` figures; the widgets of
:mod:`fastrcnn_lite.teaching.roi_widgets` redraw the panels at every slider move. Tested in
``tests/test_roi_widgets.py``.
"""

from __future__ import annotations

from fractions import Fraction

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from torch import Tensor

from .roi_views import RoIBackwardView, RoIPoolView

__all__ = [
    "BIN_COLOURS",
    "ARGMAX_COLOUR",
    "TARGET_COLOUR",
    "SHARED_COLOUR",
    "roi_pool_legend_handles",
    "draw_roi_pool_map",
    "draw_pooled",
    "draw_roi_pool_view",
    "roi_pool_readout",
    "roi_backward_legend_handles",
    "draw_roi_backward_map",
    "draw_backward_output",
    "draw_roi_backward_view",
    "roi_backward_readout",
]

TEXT_CELLS = 24  # print values in cells when the map is at most this wide

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
    """Legend entries of :func:`draw_roi_pool_map` and :func:`draw_pooled` (Notebook 04's figure
    and its forward widget)."""
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
    dotted), cells in two or more bins shaded orange and each bin's winning cell outlined red.

    Notebook 04 (the left panel of :func:`draw_roi_pool_view` and of the forward widget).
    """
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
    """The pooled h x w output: each cell outlined in its bin's colour, empty bins hatched (0).

    Notebook 04 (the right panel of :func:`draw_roi_pool_view` and of the forward widget).
    """
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
    """Left: :func:`draw_roi_pool_map`. Right: :func:`draw_pooled`. A legend below both.

    Notebook 04 draws the RoI of its first figure with it.
    """
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


TARGET_COLOUR = "tab:orange"
SHARED_COLOUR = "tab:red"


def roi_backward_legend_handles() -> list:
    """Legend entries of :func:`draw_roi_backward_map` (Notebook 04's figure and its widget)."""
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
    cell outlined orange.

    Notebook 04 (the left panel of :func:`draw_roi_backward_view` and of the backward widget).
    """
    H, W = view.features.shape
    r, i, j = view.picked
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
        colour = TARGET_COLOUR if n == r else "tab:blue"
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
    ax.set_title(f"gradient of output (RoI {r}, bin {i},{j}) -> {target}", fontsize=9)


def draw_backward_output(view: RoIBackwardView, ax) -> None:
    """The picked RoI's pooled output with the picked cell outlined orange.

    Notebook 04 (the right panel of :func:`draw_roi_backward_view` and of the backward widget).
    """
    r, i, j = view.picked
    ax.imshow(view.pooled[r], cmap="Greys", vmin=0, vmax=_vmax(view.features))
    _grid_values(ax, view.pooled[r])
    _cell_outline(ax, i, j, TARGET_COLOUR, inset=0.04, lw=2.6)
    ax.set_title(f"RoI {r} pooled; {len(view.shared_cells)} cells shared", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_roi_backward_view(view: RoIBackwardView, fig: Figure | None = None) -> Figure:
    """Left: :func:`draw_roi_backward_map`. Right: :func:`draw_backward_output`. A legend below.

    Notebook 04 follows the gradient of one output with it.
    """
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


# ----------------------------------------------------------------------------- texts


def _matrix_text(values: np.ndarray) -> str:
    return "\n".join(" ".join(f"{v:.0f}" for v in row) for row in values)


def _scale_name(scale: float) -> str:
    """1/8 for 0.125: spatial_scale as the stride it stands for."""
    return str(Fraction(scale).limit_denominator(1024))


def roi_pool_readout(view: RoIPoolView) -> str:
    """One line saying which call gives the drawn output, then the output (the widget's text).

    Notebook 04 (printed under the forward widget).
    """
    H, W = view.features.shape
    h, w = view.output_size
    box = ", ".join(f"{c:g}" for c in view.box)
    return (
        f"features = demo_feature_map({H}, {W}); "
        f"roi_pool(features[None, None], torch.tensor([[0, {box}]]), ({h}, {w}), "
        f"{_scale_name(view.spatial_scale)})[0, 0] ({int(view.empty.sum())} empty bins):\n"
        + _matrix_text(view.pooled)
    )


def roi_backward_readout(view: RoIBackwardView) -> str:
    """What the backward widget prints: the picked output, its value and where its gradient goes.

    Notebook 04 (printed under the backward widget).
    """
    r, i, j = view.picked
    value = view.pooled[r, i, j]
    box = ", ".join(f"{c:g}" for c in view.boxes[r])
    goes = (
        "nowhere (empty bin)"
        if view.target is None
        else f"cell (y={view.target[0]}, x={view.target[1]})"
    )
    return (
        f"output (RoI {r}, bin {i},{j}) of RoI {r} = ({box}) px, "
        f"output_size ({view.output_size[0]}, {view.output_size[1]}): value {value:.0f}; "
        f"its gradient goes to {goes}; {len(view.shared_cells)} cells collect from 2+ outputs"
    )
