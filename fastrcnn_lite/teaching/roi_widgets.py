"""The interactive RoI pooling widgets: sliders over the sub-window grid and the gradient routing.

Data-flow stage: backbone feature map -> region features (Fast R-CNN section 2.1 and eq. 4),
for ``notebooks/04_roi_pooling.ipynb``. :func:`roi_pool_widget` and :func:`roi_backward_widget`
only wire ipywidgets controls to the views of :mod:`fastrcnn_lite.teaching.roi_views` (one
channel, Tensor[H, W]; h x w bins; R RoIs) and the drawings of
:mod:`fastrcnn_lite.teaching.roi_figures`; they need ipywidgets (the ``notebooks`` extra). Tested
in ``tests/test_roi_widgets.py`` and in a real browser by ``tests/test_browser.py``.
"""

from __future__ import annotations

import math

import ipywidgets as widgets

from .roi_figures import (
    draw_backward_output,
    draw_pooled,
    draw_roi_backward_map,
    draw_roi_pool_map,
    roi_backward_legend_handles,
    roi_backward_readout,
    roi_pool_legend_handles,
    roi_pool_readout,
)
from .roi_views import IMAGE_SIZE, demo_feature_map, feature_size, roi_backward_view, roi_pool_view
from .widget_display import (
    RUN_NOTE,
    WidgetWithPicture,
    figure_png,
    new_figure,
    picture,
    readout_html,
)

__all__ = ["SCALES", "LABEL_WIDTH", "roi_pool_widget", "roi_backward_widget"]

SCALES = {"1/4": 1 / 4, "1/8": 1 / 8, "1/16": 1 / 16, "1/2": 1 / 2}  # spatial_scale choices
CONTROL_GRID = "repeat(auto-fill, minmax(300px, 1fr))"  # as many ~300 px columns as fit, wrapping
LABEL_WIDTH = "92px"  # room for the longest label, "spatial_scale"


def _controls(children):
    """Controls in a grid that wraps: four columns at 1920 px, two beside the JupyterLab sidebar."""
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


def roi_pool_widget(image_size: tuple[int, int] = IMAGE_SIZE, seed: int = 0):
    """Sliders for the RoI (image pixels, one feature cell per step), h x w and spatial_scale.

    Draws :func:`~fastrcnn_lite.teaching.roi_figures.draw_roi_pool_map` and
    :func:`~fastrcnn_lite.teaching.roi_figures.draw_pooled` as two pictures that sit side by side
    when there is room, and prints the pooled values with the call that computes them. Notebook 04
    shows it after its first figure.
    """
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


def roi_backward_widget(
    boxes, image_size: tuple[int, int] = IMAGE_SIZE, spatial_scale: float = 1 / 8, seed: int = 0
):
    """Pick an output (RoI, bin row, bin column) and see where its gradient goes.

    ``boxes``: R RoIs (x1, y1, x2, y2) in image pixels. The bin sliders always end at the current
    grid's last row and column (h - 1, w - 1). Notebook 04 shows it after its backward figure.
    """
    features = demo_feature_map(*feature_size(image_size, spatial_scale), seed=seed)
    size = _int_slider("h = w", 3, 1, 7)
    roi = _int_slider("RoI", 0, 0, len(boxes) - 1)
    row = _int_slider("bin row", 0, 0, size.value - 1)
    col = _int_slider("bin col", 0, 0, size.value - 1)
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
