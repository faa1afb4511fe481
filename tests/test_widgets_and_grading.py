"""The IoU widget's drawing function and the exercise graders (which must reject wrong answers)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fastrcnn_lite import boxes, grading  # noqa: E402
from fastrcnn_lite.box_widgets import draw_iou, iou_parts, iou_widget  # noqa: E402


def test_iou_parts_hand_worked():
    parts = iou_parts((0, 0, 10, 10), (5, 0, 15, 10))
    assert parts == pytest.approx({"intersection": 50.0, "union": 150.0, "iou": 1 / 3})
    assert iou_parts((0, 0, 10, 10), (20, 20, 30, 30))["intersection"] == pytest.approx(0.0)


def test_draw_iou_shows_intersection_only_when_overlapping():
    fig, ax = plt.subplots()
    draw_iou(ax, (20, 20, 60, 60), (40, 40, 80, 80))
    assert len(ax.patches) == 3 and "IoU 0.143" in ax.get_title()  # 400 / (1600 + 1600 - 400)
    draw_iou(ax, (0, 0, 10, 10), (50, 50, 60, 60))
    assert len(ax.patches) == 2 and "IoU 0.000" in ax.get_title()
    plt.close(fig)


def test_iou_widget_builds_and_reacts():
    ui = iou_widget()
    sliders = ui.children[0].children
    sliders[0].value = 20  # moving a slider redraws without error
    assert sliders[0].description == "B x1"
    plt.close("all")


def _iou(a, b):
    return float(
        boxes.box_iou(
            torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
        )
    )


def test_graders_accept_correct_and_reject_wrong_answers():
    assert "agree" in grading.check_iou_single(_iou)
    with pytest.raises(AssertionError, match="where .* was expected"):
        grading.check_iou_single(lambda a, b: _iou(a, b) * 0.9)
    assert "agree" in grading.check_nms(boxes.nms)
    with pytest.raises(AssertionError, match=r"(?s)case 3, two identical boxes.*hint"):
        grading.check_nms(lambda b, s, t: torch.argsort(s, descending=True))
    assert "agree" in grading.check_encode(boxes.encode_boxes)
    with pytest.raises(AssertionError):
        grading.check_encode(lambda p, t: boxes.encode_boxes(p, t) * 2)
