"""The IoU widget of notebook 00 (fastrcnn_lite.teaching.box_widgets): its first view, its bounds, its legend.

nbval cannot move a slider, so the widget's callbacks are driven here directly; the real widget in
JupyterLab is driven by tests/test_browser.py.
"""

import matplotlib

matplotlib.use("Agg")

import base64  # noqa: E402
import io  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402

from fastrcnn_lite.teaching.box_widgets import BOX_A, START_B, draw_iou  # noqa: E402

widgets = pytest.importorskip("ipywidgets")

from fastrcnn_lite.teaching.box_widgets import iou_widget  # noqa: E402
from fastrcnn_lite.teaching.widget_display import RUN_NOTE  # noqa: E402


def test_first_view_is_the_hand_worked_case():
    """A = (20, 20, 50, 50); B = A moved right by a third of its width = (30, 20, 60, 50):
    intersection 20 x 30 = 600, union 900 + 900 - 600 = 1200, IoU exactly 0.5."""
    x, y, w, h = START_B
    assert (x - BOX_A[0]) * 3 == BOX_A[2] - BOX_A[0] and (w, h) == (30, 30) and y == BOX_A[1]
    ui = iou_widget()
    assert (
        "A = (20, 20, 50, 50)\nB = (30, 20, 60, 50): IoU 0.500" in ui.children[0].children[4].value
    )
    fig, ax = plt.subplots()
    draw_iou(ax, BOX_A, (30, 20, 60, 50))
    assert "intersection 600  union 1200  IoU 0.500" in ax.get_title()
    assert "= 600 / (900 + 900 - 600)" in ax.get_title()
    plt.close(fig)


@pytest.mark.parametrize("box_b", [(0, 0, 100, 100), (70, 0, 100, 30), (0, 70, 30, 100)])
def test_legend_never_covers_box_b(box_b):
    """The legend sits outside the canvas, so no box B on the canvas can be under it."""
    fig, ax = plt.subplots(figsize=(4.6, 3.7))
    draw_iou(ax, BOX_A, box_b)
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    b = ax.transData.transform([box_b[:2], box_b[2:]])  # display coordinates of B's corners
    assert legend.x0 >= max(b[:, 0]) or legend.x1 <= min(b[:, 0])
    plt.close(fig)


def test_box_b_stays_on_the_canvas():
    ui = iou_widget(extent=100)
    x, y, w, h = ui.children[0].children[:4]
    assert (x.max, w.max) == (100 - w.value, 100 - x.value)
    w.value = 60
    assert x.max == 40
    x.value = 90  # beyond the new bound: clamped, B's right edge stays at 100
    assert x.value + w.value == 100 and w.max == 60
    h.value = 80
    y.value = 50
    assert y.value + h.value <= 100 and h.max == 100 - y.value


def test_displays_a_picture_and_a_run_note():
    ui = iou_widget()
    bundle = ui._repr_mimebundle_()
    assert bundle["text/plain"] == RUN_NOTE
    assert "application/vnd.jupyter.widget-view+json" in bundle
    picture = PIL.Image.open(io.BytesIO(base64.b64decode(bundle["image/png"])))
    figure = PIL.Image.open(io.BytesIO(ui.children[1].value))
    assert picture.width >= figure.width and picture.height > figure.height
