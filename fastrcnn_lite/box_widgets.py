"""The IoU widget of notebook 00: move two boxes and watch their intersection over union.

Data-flow stage: none (teaching aid for ``boxes.py``). The drawing is a plain function,
:func:`draw_iou`, tested directly; :func:`iou_widget` only wires ipywidgets sliders to it
(nbval cannot move a slider).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from .boxes import box_area, box_iou

__all__ = ["iou_parts", "draw_iou", "iou_widget"]


def iou_parts(box_a: tuple[float, ...], box_b: tuple[float, ...]) -> dict[str, float]:
    """Intersection, union and IoU of two (x1, y1, x2, y2) boxes, computed with ``boxes.py``."""
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
    """Draw both boxes and their intersection on ``ax``; returns :func:`iou_parts`."""
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
    ax.legend(loc="upper right")
    ax.set_title(
        f"intersection {parts['intersection']:.0f}  union {parts['union']:.0f}  IoU {parts['iou']:.3f}"
    )
    return parts


def iou_widget(extent: int = 100):
    """Sliders for box B's position and size over a fixed box A; redraws :func:`draw_iou`."""
    import ipywidgets as widgets

    box_a = (20.0, 20.0, 60.0, 60.0)
    out = widgets.Output()
    sliders = {
        "x": widgets.IntSlider(40, 0, extent, description="B x1"),
        "y": widgets.IntSlider(30, 0, extent, description="B y1"),
        "w": widgets.IntSlider(40, 1, extent, description="B width"),
        "h": widgets.IntSlider(40, 1, extent, description="B height"),
    }

    def redraw(_=None):
        x, y, w, h = (sliders[k].value for k in "xywh")
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(4.5, 4.5))
            draw_iou(ax, box_a, (x, y, x + w, y + h), extent)
            plt.show()

    for s in sliders.values():
        s.observe(redraw, names="value")
    redraw()
    return widgets.HBox([widgets.VBox(list(sliders.values())), out])
