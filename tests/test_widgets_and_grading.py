"""The IoU widget's drawing function and the exercise graders (which must reject wrong answers)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fastrcnn_lite import boxes  # noqa: E402
from fastrcnn_lite.teaching import grading  # noqa: E402
from fastrcnn_lite.teaching.box_widgets import draw_iou, iou_parts, iou_widget  # noqa: E402


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


def _nms_suppressing_at_threshold(boxes_, scores, iou_threshold):
    """Plausible wrong answer: suppresses at IoU >= threshold instead of > threshold."""
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = boxes.box_iou(boxes_[order].double(), boxes_[order].double())
    keep, suppressed = [], torch.zeros(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou[i] >= iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def test_box_graders_name_the_case_a_wrong_answer_fails():
    with pytest.raises(grading.GradingError, match=r"(?s)case 5, overlap exactly at the threshold"):
        grading.check_nms(_nms_suppressing_at_threshold)
    with pytest.raises(grading.GradingError, match=r"case 1, no boxes: your function raised"):
        grading.check_nms(lambda b, s, t: torch.stack([torch.argmax(s)]))

    def encode_with_corners(proposals, targets):  # moves corners, not centres
        pw = proposals[:, 2] - proposals[:, 0]
        ph = proposals[:, 3] - proposals[:, 1]
        out = boxes.encode_boxes(proposals, targets)
        out[:, 0] = (targets[:, 0] - proposals[:, 0]) / pw
        out[:, 1] = (targets[:, 1] - proposals[:, 1]) / ph
        return out

    with pytest.raises(grading.GradingError, match=r"(?s)case 3, target twice as tall.*hint"):
        grading.check_encode(encode_with_corners)
    assert "agree" in grading.check_decode(boxes.decode_boxes)

    def decode_without_exp(proposals, deltas):  # treats dw as a ratio, not a log-ratio
        return boxes.decode_boxes(proposals, torch.cat([deltas[:, :2], deltas[:, 2:].log1p()], 1))

    with pytest.raises(grading.GradingError, match=r"(?s)case 3, dw = log 2.*exp\(dw\)"):
        grading.check_decode(decode_without_exp)


def test_stub_says_not_answered():
    def stub(*args):
        raise NotImplementedError()

    for check in (grading.check_iou_single, grading.check_nms, grading.check_decode):
        with pytest.raises(grading.GradingError, match="not answered yet"):
            check(stub)
