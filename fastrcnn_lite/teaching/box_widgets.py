"""The IoU widget of notebook 00: move two boxes and watch their intersection over union.

Data-flow stage: none (teaching aid for ``boxes.py``). The drawing is a plain function,
:func:`draw_iou`, tested directly; :func:`iou_widget` only wires ipywidgets sliders to it
(tested in a real browser by ``tests/test_browser.py``; nbval cannot move a slider). It needs
ipywidgets (the ``notebooks`` extra).

The widget starts at a case you can check by hand: box A = (20, 20, 50, 50) (30 x 30) and box B,
the same box moved right by a third of its width, (30, 20, 60, 50): intersection 20 x 30 = 600,
union 900 + 900 - 600 = 1200, IoU 600 / 1200 = 0.5.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from ..boxes import box_area, box_iou
from .widget_display import (
    RUN_NOTE,
    WidgetWithPicture,
    figure_png,
    new_figure,
    picture,
    readout_html,
)

__all__ = ["BOX_A", "START_B", "iou_parts", "draw_iou", "iou_widget"]

BOX_A = (20.0, 20.0, 50.0, 50.0)  # the fixed box (x1, y1, x2, y2)
START_B = (30, 20, 30, 30)  # box B's first (x1, y1, width, height): A moved by a third of its width


def iou_parts(box_a: tuple[float, ...], box_b: tuple[float, ...]) -> dict[str, float]:
    """Intersection, union and IoU of two (x1, y1, x2, y2) boxes, computed with ``boxes.py``.

    Notebook 00 (the numbers :func:`iou_widget` prints).
    """
    a = torch.tensor([box_a], dtype=torch.float64)
    b = torch.tensor([box_b], dtype=torch.float64)
    iou = float(box_iou(a, b)[0, 0])
    union = float(box_area(a)[0] + box_area(b)[0]) / (
        1 + iou
    )  # inter = iou * union, union = A + B - inter
    return {"intersection": iou * union, "union": union, "iou": iou}


def draw_iou(
    ax: plt.Axes, box_a: tuple[float, ...], box_b: tuple[float, ...], extent: float = 100
) -> dict[str, float]:
    """Draw both boxes and their intersection on ``ax`` (legend outside the canvas, so it never
    covers a box); the title shows the arithmetic. Returns :func:`iou_parts`.

    Notebook 00 (each view of :func:`iou_widget`).
    """
    parts = iou_parts(box_a, box_b)
    ax.clear()
    for box, colour, name in ((box_a, "tab:blue", "A"), (box_b, "tab:orange", "B")):
        x1, y1, x2, y2 = box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=2, ec=colour, label=name))
    ix1, iy1 = max(box_a[0], box_b[0]), max(box_a[1], box_b[1])
    ix2, iy2 = min(box_a[2], box_b[2]), min(box_a[3], box_b[3])
    if ix2 > ix1 and iy2 > iy1:
        ax.add_patch(
            Rectangle((ix1, iy1), ix2 - ix1, iy2 - iy1, color="tab:green", alpha=0.4, label="A ∩ B")
        )
    ax.set_xlim(0, extent)
    ax.set_ylim(extent, 0)  # image coordinates: y grows downwards
    ax.set_aspect("equal")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, fontsize=9)
    area_a = (box_a[2] - box_a[0]) * (box_a[3] - box_a[1])
    area_b = (box_b[2] - box_b[0]) * (box_b[3] - box_b[1])
    inter = parts["intersection"]
    ax.set_title(
        f"intersection {inter:.0f}  union {parts['union']:.0f}  IoU {parts['iou']:.3f}\n"
        f"= {inter:.0f} / ({area_a:.0f} + {area_b:.0f} - {inter:.0f})",
        fontsize=10,
    )
    return parts


def iou_widget(extent: int = 100):
    """Sliders for box B's corner and size over the fixed box A; redraws :func:`draw_iou`.

    Notebook 00 shows it.

    B stays on the canvas: the corner sliders end at ``extent - size`` and the size sliders at
    ``extent - corner``, and each pair follows the other. Starts at IoU 0.5 (see the module
    docstring).
    """
    x, y, w, h = START_B
    sliders = {
        "x": widgets.IntSlider(x, 0, extent - w, description="B x1"),
        "y": widgets.IntSlider(y, 0, extent - h, description="B y1"),
        "w": widgets.IntSlider(w, 1, extent - x, description="B width"),
        "h": widgets.IntSlider(h, 1, extent - y, description="B height"),
    }
    for s in sliders.values():
        s.style = {"description_width": "64px"}
        s.layout = widgets.Layout(width="300px", max_width="100%")
    fig = new_figure(4.6, 3.7)
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
    readout = widgets.HTML()

    def box_b():
        x, y, w, h = (sliders[k].value for k in "xywh")
        return (x, y, x + w, y + h)

    def redraw(_=None):
        fig.clear()
        parts = draw_iou(fig.add_axes((0.1, 0.08, 0.62, 0.74)), BOX_A, box_b(), extent)
        image.value = figure_png(fig)
        readout.value = readout_html(
            f"A = {tuple(int(c) for c in BOX_A)}\nB = {box_b()}: IoU {parts['iou']:.3f}"
        )

    def bound(corner, size):  # B's far edge stays on the canvas
        def on_change(_):
            sliders[corner].max = extent - sliders[size].value
            sliders[size].max = extent - sliders[corner].value

        return on_change

    for corner, size in (("x", "w"), ("y", "h")):
        for k in (corner, size):
            sliders[k].observe(bound(corner, size), names="value")
    for s in sliders.values():
        s.observe(redraw, names="value")
    redraw()
    first = picture([image.value], [RUN_NOTE, f"A = {tuple(int(c) for c in BOX_A)}, B = {box_b()}"])
    controls = widgets.VBox([*sliders.values(), readout], layout=widgets.Layout(width="310px"))
    return WidgetWithPicture(  # controls beside the figure, or above it when narrow
        [controls, image],
        first,
        layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"),
    )
