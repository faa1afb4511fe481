"""The RoI pooling views, drawings and widgets (teaching.roi_views, roi_figures, roi_widgets).

nbval cannot move a slider, so the functions behind the sliders are checked here against
torchvision.ops.roi_pool, hand-worked grids and the package's own backward.
"""

import matplotlib

matplotlib.use("Agg")

import base64  # noqa: E402
import html  # noqa: E402
import io  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from fastrcnn_lite.teaching import roi_figures as rf  # noqa: E402
from fastrcnn_lite.teaching.roi_figures import (  # noqa: E402
    draw_roi_backward_view,
    draw_roi_pool_view,
)
from fastrcnn_lite.teaching.roi_views import (  # noqa: E402
    IMAGE_SIZE,
    demo_feature_map,
    feature_size,
    roi_backward_view,
    roi_pool_view,
)


@pytest.fixture
def rw():
    """The widgets module; it needs ipywidgets (the notebooks extra)."""
    pytest.importorskip("ipywidgets")
    from fastrcnn_lite.teaching import roi_widgets

    return roi_widgets


def test_demo_feature_map():
    f = demo_feature_map(16, 20, seed=1)
    assert f.shape == (16, 20) and f.dtype == torch.float32
    assert torch.equal(f, f.round()) and f.min() >= 0 and f.max() == 9
    assert torch.equal(f, demo_feature_map(16, 20, seed=1))
    assert not torch.equal(f, demo_feature_map(16, 20, seed=2))


@pytest.mark.parametrize(
    "box, output_size, scale",
    [
        ((24, 20, 100, 76), (3, 5), 1 / 8),  # inside
        ((-20, 60, 70, 150), (3, 5), 1 / 8),  # partly outside: empty bins
        ((40, 40, 44, 44), (7, 7), 1 / 8),  # one cell, 7x7 grid: every bin is that cell
        ((10, 30, 2, 20), (2, 2), 1 / 4),  # degenerate x2 < x1
    ],
)
def test_forward_view_matches_torchvision(box, output_size, scale):
    f = demo_feature_map(16, 20)
    view = roi_pool_view(f, box, output_size, scale)
    ref = torchvision.ops.roi_pool(f[None, None], torch.tensor([[0.0, *box]]), output_size, scale)[
        0, 0
    ]
    assert np.array_equal(view.pooled, ref.numpy())
    h, w = output_size
    for i in range(h):
        for j in range(w):
            empty = view.hend[i] <= view.hstart[i] or view.wend[j] <= view.wstart[j]
            assert view.empty[i, j] == empty
            y, x = view.argmax[i, j]
            if empty:
                assert (y, x) == (-1, -1) and view.pooled[i, j] == 0
            else:  # the argmax is inside the bin and holds the pooled value
                assert view.hstart[i] <= y < view.hend[i] and view.wstart[j] <= x < view.wend[j]
                assert f[y, x] == view.pooled[i, j]
    # every covered cell is counted once per bin that covers it
    areas = sum(
        (view.hend[i] - view.hstart[i]) * (view.wend[j] - view.wstart[j])
        for i in range(h)
        for j in range(w)
        if not view.empty[i, j]
    )
    assert view.bins_per_cell.sum() == areas


def test_forward_view_hand_worked_grid():
    """Cells 0..2 (3 wide) in 2 bins: bin_w = 1.5, bins [0, 2) and [1, 3): cell 1 is in both."""
    f = torch.zeros(4, 6)
    f[0, 1] = 5.0
    view = roi_pool_view(f, (0, 0, 2, 0), (1, 2), 1.0)
    assert view.roi_cells == (0, 0, 2, 0)
    assert (view.wstart, view.wend) == ([0, 1], [2, 3])
    assert view.bins_per_cell[0].tolist() == [1, 2, 1, 0, 0, 0]
    assert view.pooled.tolist() == [[5.0, 5.0]]  # both bins' max is the shared cell
    assert view.argmax[0, 0].tolist() == view.argmax[0, 1].tolist() == [0, 1]


def test_forward_view_rounds_halves_away_from_zero():
    # 4 / 8 = 0.5 -> 1 and 12 / 8 = 1.5 -> 2 (std::round); torch.round would give 0 and 2
    view = roi_pool_view(demo_feature_map(16, 20), (4, 4, 12, 12), (2, 2), 1 / 8)
    assert view.roi_cells == (1, 1, 2, 2)


def _rects(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_forward_view_raw_edges_by_hand():
    """(-20, 60, 70, 150) px at 1/8 -> cells x -3..9 (-2.5 rounds away from zero), y 8..19:
    13 x 12 cells in 3 x 5 bins, bin_h = 4, bin_w = 2.6."""
    view = roi_pool_view(demo_feature_map(16, 20), (-20, 60, 70, 150), (3, 5), 1 / 8)
    assert (view.hstart_raw, view.hend_raw) == ([8, 12, 16], [12, 16, 20])
    assert (view.wstart_raw, view.wend_raw) == ([-3, -1, 2, 4, 7], [0, 3, 5, 8, 10])
    assert (view.hstart, view.hend) == ([8, 12, 16], [12, 16, 16])  # row 2 falls below the map
    assert (view.wstart, view.wend) == ([0, 0, 2, 4, 7], [0, 3, 5, 8, 10])  # column 0 to its left
    assert view.empty.sum() == 7  # row 2 (5 bins) + column 0 of rows 0 and 1


def test_draw_forward_view():
    view = roi_pool_view(demo_feature_map(16, 20), (-20, 60, 70, 150), (3, 5), 1 / 8)
    fig = draw_roi_pool_view(view)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax_map, ax_out = fig.axes
    assert "px x 1/8 -> cells x -3..9, y 8..19" in ax_map.get_title()
    assert f"{int(view.empty.sum())} empty bins" in ax_out.get_title() and view.empty.sum() > 0
    assert not ax_map.lines  # no dots or stars on top of the digits
    # the map's view reaches the bins that fall off it: x from cell -3, y down to cell 19
    assert ax_map.get_xlim()[0] <= -3.5 and max(ax_map.get_ylim()) >= 19.5
    hatched = [p for p in _rects(ax_map) if p.get_hatch() == "///"]
    assert len(hatched) == 1  # the off-map ground
    # each winning cell outlined red, once
    winners = {tuple(c) for c in view.argmax.reshape(-1, 2).tolist() if c[0] >= 0}
    red = [p for p in _rects(ax_map) if to_rgba(p.get_edgecolor()) == to_rgba(rf.ARGMAX_COLOUR)]
    assert {
        (round(p.get_y() + p.get_height() / 2), round(p.get_x() + p.get_width() / 2)) for p in red
    } == winners
    assert len(red) == len(winners)
    # empty bins dotted, all of them off the map (x < -0.5 or y > 15.5)
    dotted = [p for p in _rects(ax_map) if p.get_linestyle() == ":"]
    assert len(dotted) == view.empty.sum()
    assert all(p.get_x() + p.get_width() <= -0.5 or p.get_y() >= 15.5 for p in dotted)
    # every output cell outlined in its bin's colour (green/purple checkerboard)
    h, w = view.output_size
    outlines = {
        (round(p.get_y() + p.get_height() / 2), round(p.get_x() + p.get_width() / 2)): p
        for p in _rects(ax_out)
        if not p.get_hatch()
    }
    assert len(outlines) == h * w
    for (i, j), p in outlines.items():
        assert to_rgba(p.get_edgecolor()) == to_rgba(rf.BIN_COLOURS[(i + j) % 2])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "argmax cell of a bin" in labels and "outside the map" in labels
    assert draw_roi_pool_view(view, fig) is fig  # redraws into the same figure


def test_roi_pool_readout_is_the_call_that_computes_it():
    view = roi_pool_view(demo_feature_map(16, 20), (24, 16, 96, 72), (3, 5), 1 / 8)
    head, *rows = rf.roi_pool_readout(view).splitlines()
    assert head.startswith(
        "features = demo_feature_map(16, 20); roi_pool(features[None, None], "
        "torch.tensor([[0, 24, 16, 96, 72]]), (3, 5), 1/8)[0, 0]"
    )
    f = demo_feature_map(16, 20)[None, None]
    ref = torchvision.ops.roi_pool(f, torch.tensor([[0.0, 24, 16, 96, 72]]), (3, 5), 1 / 8)
    assert [[float(v) for v in r.split()] for r in rows] == ref[0, 0].tolist()


BOXES = [(24, 20, 100, 76), (60, 30, 150, 110), (8, 8, 40, 40), (-30, -30, 10, 10)]


def test_backward_view_routes_to_the_argmax():
    f = demo_feature_map(16, 20)
    view = roi_backward_view(f, BOXES, (3, 3), 1 / 8, picked=(1, 2, 0))
    forward = roi_pool_view(f, BOXES[1], (3, 3), 1 / 8)
    assert view.target == tuple(forward.argmax[2, 0])
    assert np.array_equal(view.pooled[1], forward.pooled)
    # every output with an argmax sends exactly one unit of gradient (all-ones output gradient)
    nonempty = sum(int((~roi_pool_view(f, b, (3, 3), 1 / 8).empty).sum()) for b in BOXES)
    assert view.hits.sum() == nonempty
    assert view.shared_cells == [tuple(c) for c in np.argwhere(view.hits >= 2).tolist()]
    assert len(view.shared_cells) > 0


def test_backward_view_shared_cell_by_hand():
    """Two identical RoIs: every argmax cell collects gradient from both."""
    f = demo_feature_map(16, 20)
    view = roi_backward_view(f, [BOXES[0], BOXES[0]], (2, 2), 1 / 8)
    assert set(np.unique(view.hits)) <= {0, 2, 4, 6, 8}  # even: each hit comes twice
    assert view.hits.sum() == 8


def test_backward_view_empty_bin_has_no_target():
    f = demo_feature_map(16, 20)
    view = roi_backward_view(f, [(-30, -30, 10, 10)], (3, 3), 1 / 8, picked=(0, 0, 0))
    assert view.target is None  # the bin lies outside the map: nothing to route


def test_draw_backward_view():
    view = roi_backward_view(demo_feature_map(16, 20), BOXES, (3, 3), 1 / 8, picked=(0, 1, 2))
    fig = draw_roi_backward_view(view)
    ax_map, ax_out = fig.axes
    assert f"cell (y={view.target[0]}, x={view.target[1]})" in ax_map.get_title()
    assert not ax_map.lines  # the target is outlined, not starred over its digit
    orange = [p for p in _rects(ax_map) if to_rgba(p.get_edgecolor()) == to_rgba(rf.TARGET_COLOUR)]
    cells = [p for p in orange if abs(p.get_width() - 1.12) < 1e-9]  # the outlined cell
    assert len(cells) == 1
    p = cells[0]
    assert (p.get_y() + 0.56, p.get_x() + 0.56) == pytest.approx(view.target)
    assert f"{len(view.shared_cells)} cells shared" in ax_out.get_title()
    assert "picked output's gradient" in [t.get_text() for t in fig.legends[0].get_texts()]
    # the RoI that leaves the map (-30, -30, 10, 10) is drawn: the view extends above and left
    assert ax_map.get_xlim()[0] < -3.5 and min(ax_map.get_ylim()) < -3.5


def _readout_matrix(ui):
    text = html.unescape(re.sub("<[^>]+>", "", ui.children[2].value))
    return text.splitlines()


def test_roi_pool_widget_controls_and_output(rw):
    ui = rw.roi_pool_widget()
    controls = ui.children[0].children
    assert [c.description for c in controls] == [
        "x1 (px)",
        "y1 (px)",
        "x2 (px)",
        "y2 (px)",
        "h (bins)",
        "w (bins)",
        "spatial_scale",
    ]
    assert all(c.style.description_width == rw.LABEL_WIDTH for c in controls)  # full labels
    assert "minmax(" in ui.children[0].layout.grid_template_columns  # a grid that wraps
    x1, y1, x2, y2, h, w, scale = controls
    assert [c.step for c in (x1, y1, x2, y2)] == [8, 8, 8, 8]  # one feature cell at 1/8
    before = (x1.value, ui.children[1].children[0].value)
    x1.value += x1.step
    assert ui.children[1].children[0].value != before[1]  # the picture changed
    scale.value = "1/4"
    assert [c.step for c in (x1, y1, x2, y2)] == [4, 4, 4, 4]
    scale.value = "1/16"
    assert all(c.value % 16 == 0 for c in (x1, y1, x2, y2))  # snapped to whole cells
    h.value = 4
    # the printed output is roi_pool's, for the values the controls show
    box = [float(c.value) for c in (x1, y1, x2, y2)]
    f = demo_feature_map(*feature_size(IMAGE_SIZE, 1 / 16))[None, None]
    ref = torchvision.ops.roi_pool(f, torch.tensor([[0.0, *box]]), (4, w.value), 1 / 16)
    head, *rows = _readout_matrix(ui)
    assert f"[[0, {', '.join(f'{c:g}' for c in box)}]]), (4, {w.value}), 1/16)" in head
    assert [[float(v) for v in r.split()] for r in rows] == ref[0, 0].tolist()


def test_roi_pool_widget_step_is_fast(rw):
    """A slider step re-pools and redraws in well under half a second (median of 3 steps)."""
    ui = rw.roi_pool_widget()
    x2 = ui.children[0].children[2]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        x2.value -= x2.step
        times.append(time.perf_counter() - start)
    assert sorted(times)[1] < 0.5, times


def test_roi_backward_widget_bins_follow_the_grid(rw):
    boxes = [(24, 20, 100, 76), (60, 30, 150, 110), (8, 8, 40, 40)]
    ui = rw.roi_backward_widget(boxes)
    size, roi, row, col = ui.children[0].children
    assert (row.max, col.max) == (2, 2)  # h = w = 3
    size.value = 5
    assert (row.max, col.max) == (4, 4)
    roi.value, row.value, col.value = 1, 4, 3
    size.value = 2  # the picked bin is clamped into the smaller grid
    assert (row.max, col.max, row.value, col.value) == (1, 1, 1, 1)
    text = _readout_matrix(ui)[0]
    forward = roi_pool_view(demo_feature_map(16, 20), boxes[1], (2, 2), 1 / 8)
    y, x = forward.argmax[1, 1]
    assert "output (RoI 1, bin 1,1) of RoI 1 = (60, 30, 150, 110) px" in text
    assert f"value {forward.pooled[1, 1]:.0f}; its gradient goes to cell (y={y}, x={x})" in text


def test_widgets_display_a_picture_and_no_widget_repr(rw):
    from fastrcnn_lite.teaching.widget_display import RUN_NOTE

    for ui in (rw.roi_pool_widget(), rw.roi_backward_widget(BOXES)):
        bundle = ui._repr_mimebundle_()
        assert bundle["text/plain"] == RUN_NOTE
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == ui.model_id
        picture = PIL.Image.open(io.BytesIO(base64.b64decode(bundle["image/png"])))
        map_png, out_png = (PIL.Image.open(io.BytesIO(im.value)) for im in ui.children[1].children)
        assert picture.width >= map_png.width + out_png.width  # both figures, side by side
        assert picture.height > max(map_png.height, out_png.height)  # under the note lines
