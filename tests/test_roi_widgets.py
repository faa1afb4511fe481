"""The RoI pooling widget's state and drawing functions (fastrcnn_lite.roi_widgets), tested directly.

nbval cannot move a slider, so the functions behind the sliders are checked here against
torchvision.ops.roi_pool, hand-worked grids and the package's own backward.
"""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fastrcnn_lite import roi_widgets as rw  # noqa: E402
from fastrcnn_lite.roi_widgets import (  # noqa: E402
    demo_feature_map,
    draw_roi_backward_view,
    draw_roi_pool_view,
    roi_backward_view,
    roi_pool_view,
)


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


def test_draw_forward_view():
    view = roi_pool_view(demo_feature_map(16, 20), (-20, 60, 70, 150), (3, 5), 1 / 8)
    fig = draw_roi_pool_view(view)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax_map, ax_out = fig.axes
    assert "cells x -3..9, y 8..19" in ax_map.get_title()
    assert f"{int(view.empty.sum())} empty bins" in ax_out.get_title() and view.empty.sum() > 0
    dots = [line for line in ax_map.lines if line.get_marker() == "o"]
    assert len(dots) == (~view.empty).sum()  # one argmax dot per non-empty bin
    assert draw_roi_pool_view(view, fig) is fig  # redraws into the same figure


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
    assert any(line.get_marker() == "*" for line in ax_map.lines)
    assert f"{len(view.shared_cells)} cells shared" in ax_out.get_title()


def test_widgets_build_and_update(monkeypatch):
    pytest.importorskip("ipywidgets")
    calls = []
    monkeypatch.setattr(
        rw, "draw_roi_pool_view", lambda view, fig=None: calls.append(view) or Figure()
    )
    monkeypatch.setattr(
        rw, "draw_roi_backward_view", lambda view, fig=None: calls.append(view) or Figure()
    )
    ui = rw.roi_pool_widget()
    sliders = ui.children[0].children + ui.children[1].children
    assert [s.description for s in sliders] == [
        "x1 (px)",
        "y1 (px)",
        "x2 (px)",
        "y2 (px)",
        "h (bins)",
        "w (bins)",
        "spatial_scale",
    ]
    sliders[4].value = 4  # h: the callback recomputes the view
    assert calls[-1].output_size == (4, 5) and calls[-1].pooled.shape == (4, 5)
    sliders[6].value = "1/4"
    assert calls[-1].spatial_scale == 1 / 4 and calls[-1].features.shape == (32, 40)
    ui = rw.roi_backward_widget(BOXES)
    size, roi, row, col = ui.children[0].children
    roi.value, row.value = 2, 6  # a bin row beyond h - 1 is clamped
    assert calls[-1].picked == (2, 2, 0)
