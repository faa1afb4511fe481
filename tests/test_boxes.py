"""Boxes written from scratch, checked against torchvision.ops and hand-worked cases."""

import pytest
import torch
import torchvision

from fastrcnn_lite import boxes as B


def random_boxes(n: int, size: float = 100.0, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * size / 2 + 1
    return torch.cat([xy, xy + wh], dim=1).to(dtype)  # (n, 4)


def test_box_area_hand_worked():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 5.0], [2.0, 3.0, 2.0, 9.0]])
    assert B.box_area(boxes).tolist() == [50.0, 0.0]


def test_box_iou_hand_worked():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    # overlap 5x10 = 50, union 100 + 100 - 50 = 150 -> 1/3; disjoint -> 0; identical -> 1
    assert torch.allclose(B.box_iou(a, b), torch.tensor([[1 / 3, 0.0, 1.0]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_iou_and_area_match_torchvision(dtype):
    a, b = random_boxes(37, seed=1, dtype=dtype), random_boxes(23, seed=2, dtype=dtype)
    torch.testing.assert_close(B.box_area(a), torchvision.ops.box_area(a))
    torch.testing.assert_close(B.box_iou(a, b), torchvision.ops.box_iou(a, b))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_box_iou_and_area_low_precision_match_torchvision(dtype):
    """Pixel-sized boxes overflow float16 products (300 * 300 > 65,504): torchvision computes
    areas and IoU in float32 and returns float32; so do we (before: NaN / inf)."""
    big = torch.tensor([[0.0, 0.0, 300.0, 300.0], [100.0, 100.0, 400.0, 400.0]], dtype=dtype)
    a = torch.cat([big, random_boxes(20, size=500, seed=3, dtype=dtype)])
    b = torch.cat([big, random_boxes(15, size=500, seed=4, dtype=dtype)])
    ref_iou, ref_area = torchvision.ops.box_iou(a, b), torchvision.ops.box_area(a)
    ours_iou, ours_area = B.box_iou(a, b), B.box_area(a)
    assert ours_iou.dtype == ref_iou.dtype and ours_area.dtype == ref_area.dtype
    assert torch.isfinite(ours_iou).all()
    assert torch.equal(ours_area, ref_area)
    assert torch.equal(ours_iou, ref_iou)
    # hand-worked: overlap 200 x 200 = 40,000, union 90,000 * 2 - 40,000 = 140,000 -> 2/7
    assert ours_iou[0, 1].item() == pytest.approx(2 / 7, rel=1e-6)


@pytest.mark.parametrize(
    "boxes, threshold, kept",
    [
        # IoU 30 / 100: float32 rounds 3/10 up to 0.30000001 > 0.3 (float64): suppressed
        ([[0.0, 0, 10, 10], [0, 0, 3, 10]], 0.3, [0]),
        # IoU 50 / 100 = 0.5 exactly: not above the threshold, kept
        ([[0.0, 0, 10, 10], [0, 0, 10, 20]], 0.5, [0, 1]),
        # IoU 70 / 100: float32(0.7) = 0.69999999 < 0.7 (float64): kept
        ([[0.0, 0, 10, 10], [0, 0, 7, 10]], 0.7, [0, 1]),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nms_iou_equal_to_threshold_matches_torchvision(boxes, threshold, kept, dtype):
    boxes = torch.tensor(boxes, dtype=dtype)
    scores = torch.tensor([0.9, 0.8], dtype=dtype)
    ref = torchvision.ops.nms(boxes, scores, threshold)
    if dtype == torch.float32:
        assert ref.tolist() == kept  # the hand-worked rule above is torchvision's
    assert torch.equal(B.nms(boxes, scores, threshold), ref)
    labels = torch.tensor([1, 1])
    ref = torchvision.ops.batched_nms(boxes, scores, labels, threshold)
    assert torch.equal(B.batched_nms(boxes, scores, labels, threshold), ref)


def test_nms_float16_boxes_use_the_float32_iou():
    """torchvision has no float16 NMS on the CPU; ours runs it on the float32 IoU."""
    boxes = torch.tensor([[0.0, 0, 300, 300], [0, 0, 300, 90], [400, 400, 700, 700]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    # IoU of the first two: 27,000 / 90,000 = 0.3 (float32 0.30000001): suppressed at 0.3
    ref = torchvision.ops.nms(boxes, scores, 0.3)
    assert ref.tolist() == [0, 2]
    assert torch.equal(B.nms(boxes.half(), scores.half(), 0.3), ref)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_torchvision(seed, threshold):
    boxes = random_boxes(200, size=60, seed=seed)
    scores = torch.rand(200, generator=torch.Generator().manual_seed(seed + 100))
    ours = B.nms(boxes, scores, threshold)
    ref = torchvision.ops.nms(boxes, scores, threshold)
    assert torch.equal(ours, ref)


def test_nms_hand_worked_and_empty():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]])
    scores = torch.tensor([0.5, 0.9, 0.1])
    # box 1 wins, box 0 overlaps it with IoU 9/11 > 0.3 and goes, box 2 is disjoint and stays
    assert B.nms(boxes, scores, 0.3).tolist() == [1, 2]
    assert B.nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0


def test_batched_nms_matches_torchvision():
    boxes = random_boxes(150, size=50, seed=7)
    scores = torch.rand(150, generator=torch.Generator().manual_seed(3))
    labels = torch.randint(1, 4, (150,), generator=torch.Generator().manual_seed(4))
    assert torch.equal(
        B.batched_nms(boxes, scores, labels, 0.3),
        torchvision.ops.batched_nms(boxes, scores, labels, 0.3),
    )


def test_clip_boxes_matches_torchvision():
    boxes = random_boxes(50, size=120, seed=5) - 10
    torch.testing.assert_close(
        B.clip_boxes_to_image(boxes, (80, 100)),
        torchvision.ops.clip_boxes_to_image(boxes, (80, 100)),
    )


def test_remove_small_boxes_matches_torchvision():
    boxes = random_boxes(60, size=20, seed=6)
    assert torch.equal(
        B.remove_small_boxes(boxes, 5.0), torchvision.ops.remove_small_boxes(boxes, 5.0)
    )


def test_encode_hand_worked():
    proposal = torch.tensor([[0.0, 0.0, 10.0, 20.0]])  # centre (5, 10), size 10 x 20
    target = torch.tensor([[5.0, 0.0, 25.0, 20.0]])  # centre (15, 10), size 20 x 20
    deltas = B.encode_boxes(proposal, target)
    torch.testing.assert_close(
        deltas, torch.tensor([[1.0, 0.0, float(torch.log(torch.tensor(2.0))), 0.0]])
    )


def test_encode_decode_are_inverse():
    proposals = random_boxes(100, seed=8, dtype=torch.float64)
    targets = random_boxes(100, seed=9, dtype=torch.float64)
    deltas = B.encode_boxes(proposals, targets)
    torch.testing.assert_close(B.decode_boxes(proposals, deltas), targets)
    # several classes at once: (P, 4 * M)
    many = B.decode_boxes(proposals, deltas.repeat(1, 3))
    torch.testing.assert_close(many[:, 8:12], targets)


def test_voc_conversion_round_trip_and_area():
    voc = torch.tensor([[1.0, 1.0, 10.0, 5.0]])  # 1-based inclusive: 10 x 5 pixels
    xyxy = B.voc_to_xyxy(voc)
    assert xyxy.tolist() == [[0.0, 0.0, 10.0, 5.0]]
    assert B.box_area(xyxy).item() == (10 - 1 + 1) * (5 - 1 + 1)  # VOC's +1 area
    assert torch.equal(B.xyxy_to_voc(xyxy), voc)


def test_boxes_to_rois():
    rois = B.boxes_to_rois([torch.ones(2, 4), torch.zeros(0, 4), 2 * torch.ones(1, 4)])
    assert rois.shape == (3, 5)
    assert rois[:, 0].tolist() == [0.0, 0.0, 2.0]
    assert rois[2, 1:].tolist() == [2.0] * 4


def test_errors_name_what_was_expected():
    with pytest.raises(ValueError, match=r"Tensor\[G, 4\].*got shape \(4,\).*boxes\[None\]"):
        B.box_area(torch.zeros(4))
    with pytest.raises(ValueError, match="RoI tensor"):
        B.box_iou(torch.zeros(3, 5), torch.zeros(2, 4))
    with pytest.raises(TypeError, match="floating-point.*torch.int64"):
        B.box_area(torch.zeros(3, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        B.box_area([[0, 0, 1, 1]])
    with pytest.raises(ValueError, match=r"scores must be Tensor\[3\]"):
        B.nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(TypeError, match="list of per-image"):
        B.boxes_to_rois(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"deltas must be Tensor\[2, 4 \* M\]"):
        B.decode_boxes(torch.zeros(2, 4), torch.zeros(2, 3))
