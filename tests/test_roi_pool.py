"""RoI pooling and SPP (fastrcnn_lite.roi_pool) against torchvision.ops.roi_pool, bit for bit.

References: torchvision's C++/CUDA kernel (outputs, argmax and input gradients), the teaching
loop version, hand-worked cases, and gradcheck. Runs on every device present; the CUDA cases
are skipped where there is no GPU.
"""

import importlib
import math

import pytest
import torch
import torchvision

from fastrcnn_lite.bench import main
from fastrcnn_lite.boxes import boxes_to_rois
from fastrcnn_lite.experiments.bench_roi_pool import bench_roi_pool
from fastrcnn_lite.experiments.workloads import proposal_like_boxes
from fastrcnn_lite.roi_pool import (
    RoIPool,
    SpatialPyramidPool,
    roi_bin_edges,
    roi_pool,
    roi_pool_loop,
    roi_pool_workspace,
    spatial_pyramid_pool,
)

# The package re-exports the function roi_pool, which shadows the submodule's attribute name.
rp = importlib.import_module("fastrcnn_lite.roi_pool")
kernel = importlib.import_module("fastrcnn_lite.roi_pool_plan")

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]
DTYPES = [torch.float32, torch.float64]


def tv_pool(x, rois, output_size, scale):
    return torchvision.ops.roi_pool(x, rois, output_size, scale)


def same_bits(a, b):
    """Bitwise equality (tells -0.0 from +0.0, and NaN from NaN): the strictest comparison."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    view = {torch.float32: torch.int32, torch.float64: torch.int64}[a.dtype]
    return torch.equal(a.contiguous().view(view), b.contiguous().view(view))


def random_rois(g, K, N, H, W, scale, dtype, spread=1.4):
    """RoIs in image pixels, some partly or wholly outside the map, some degenerate (x2 < x1)."""
    size = torch.tensor([W, H, W, H], dtype=dtype) / scale
    corners = torch.rand(K, 4, generator=g, dtype=dtype) * size * spread - 0.2 * size
    corners[: K // 2, 2:] = (
        corners[: K // 2, :2] + (corners[: K // 2, 2:] - corners[: K // 2, :2]).abs() * 0.5
    )
    corners[K // 2 :: 3, 2] = corners[K // 2 :: 3, 0] - 3 / scale  # degenerate: x2 < x1
    index = torch.randint(0, N, (K, 1), generator=g).to(dtype)
    return torch.cat([index, corners], dim=1)


def compare(x, rois, output_size, scale, integer_grads=False, seed=0):
    """Forward + backward of ours and torchvision's; return both outputs and input gradients."""
    g = torch.Generator().manual_seed(seed)
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    ya = roi_pool(xa, rois, output_size, scale)
    yb = tv_pool(xb, rois, output_size, scale)
    if integer_grads:  # sums of small integers are exact in any order (CUDA adds atomically)
        grad = torch.randint(-4, 5, yb.shape, generator=g).to(yb)
    else:
        grad = torch.randn(yb.shape, generator=g, dtype=yb.dtype).to(yb.device)
    ya.backward(grad)
    yb.backward(grad)
    return ya, yb, xa.grad, xb.grad


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_random_cases_bitwise(device, dtype):
    g = torch.Generator().manual_seed(1)
    sizes = [(7, 7), (3, 5), (2, 2), (1, 1), (5, 3), (6, 4)]
    scales = [1.0, 0.5, 1 / 16, 1 / 32, 1 / 3]
    for case in range(40):
        N, C = 1 + case % 3, 1 + case % 4
        H, W = 3 + (case * 7) % 17, 2 + (case * 5) % 19
        scale, size = scales[case % 5], sizes[case % 6]
        integer = case % 3 == 0  # integer-valued features: many ties
        if integer:
            x = torch.randint(-3, 4, (N, C, H, W), generator=g).to(dtype)
        else:
            x = torch.randn(N, C, H, W, generator=g, dtype=dtype)
        rois = random_rois(g, 1 + case % 23, N, H, W, scale, dtype)
        ya, yb, ga, gb = compare(
            x.to(device), rois.to(device), size, scale, integer_grads=device != "cpu", seed=case
        )
        assert same_bits(ya, yb), f"output differs in case {case}"
        assert same_bits(ga, gb), f"input gradient differs in case {case}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "name, boxes, output_size, scale",
    [
        ("inside", [[0, 4, 3, 40, 30]], (7, 7), 1.0),
        ("partly outside", [[0, -20, -9, 30, 25], [1, 30, 10, 90, 70]], (7, 7), 1.0),
        ("wholly outside", [[0, 200, 200, 260, 240], [1, -90, -80, -30, -20]], (3, 3), 1.0),
        (
            "zero width and height",
            [[0, 12, 9, 12, 9], [0, 5, 5, 5, 20], [1, 3, 8, 30, 8]],
            (2, 2),
            1.0,
        ),
        ("smaller than the grid (empty bins)", [[0, 10, 10, 11, 12]], (7, 7), 1.0),
        ("non-square grid 3x5", [[0, 2, 1, 33, 21], [1, 0, 0, 47, 39]], (3, 5), 1.0),
        ("spatial_scale 1/2", [[0, 3, 5, 70, 61], [1, 11, 1, 95, 33]], (7, 7), 0.5),
        ("spatial_scale 1/16", [[0, 40, 24, 600, 520], [1, 0, 0, 799, 599]], (7, 7), 1 / 16),
        ("spatial_scale 1/32", [[0, 48, 16, 760, 600], [1, 100, 90, 180, 140]], (6, 6), 1 / 32),
        ("halves round away from zero", [[0, 40, 8, 88, 56], [1, -40, -8, 24, 72]], (2, 2), 1 / 16),
        ("degenerate x2 < x1, y2 < y1", [[0, 30, 20, 10, 5], [1, 25, 9, 24, 30]], (3, 3), 1.0),
        (
            "whole map, many overlapping RoIs",
            [[0, 0, 0, 49, 39]] * 3 + [[1, 0, 0, 49, 39]],
            (7, 7),
            1.0,
        ),
    ],
)
def test_edge_cases_bitwise(device, dtype, name, boxes, output_size, scale):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 40, 50, generator=g, dtype=dtype)
    rois = torch.tensor(boxes, dtype=dtype)
    ya, yb, ga, gb = compare(
        x.to(device), rois.to(device), output_size, scale, integer_grads=device != "cpu"
    )
    assert same_bits(ya, yb), name
    assert same_bits(ga, gb), name


def test_hand_worked_case():
    """A 1x1x4x6 map, one RoI, 2x2 bins: the grid and the routing worked out by hand."""
    x = torch.tensor(
        [
            [
                [
                    [0.0, 1, 2, 3, 4, 5],
                    [6, 7, 8, 9, 10, 11],
                    [12, 13, 14, 15, 16, 17],
                    [18, 19, 20, 21, 22, 23],
                ]
            ]
        ],
        requires_grad=True,
    )
    # RoI (x1, y1, x2, y2) = (0.5, 0.6, 4.4, 2.5) * 1 -> round half away: (1, 1, 4, 3):
    # 4 columns (1..4) x 3 rows (1..3); bin_w = 2, bin_h = 1.5: rows [1, 3) and [2, 4).
    rois = torch.tensor([[0, 0.5, 0.6, 4.4, 2.5]])
    out = roi_pool(x, rois, (2, 2))
    assert out.tolist() == [[[[14.0, 16.0], [20.0, 22.0]]]]
    out.backward(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = torch.zeros(4, 6)
    expected[2, 2], expected[2, 4], expected[3, 2], expected[3, 4] = 1, 2, 3, 4
    assert torch.equal(x.grad[0, 0], expected)


def test_rounding_is_half_away_from_zero():
    """40 / 16 = 2.5 snaps to cell 3 (std::round), where torch.round would give 2."""
    rois = torch.tensor([[0.0, 40, -40, 88, 8]])
    _, hs, _, ws, _ = roi_bin_edges(rois, (1, 1), 1 / 16, 10, 10)
    assert ws.item() == 3  # round(2.5) = 3, not 2
    assert torch.round(torch.tensor(2.5)).item() == 2.0
    assert hs.item() == 0  # round(-2.5) = -3, clipped to the map


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_go_to_torchvisions_cell(dtype):
    """Constant regions and integer features: the first max in row-major order wins."""
    g = torch.Generator().manual_seed(3)
    x = torch.zeros(2, 4, 20, 24, dtype=dtype)
    x[:, 1] = 1.0  # one constant channel
    x[:, 2] = torch.randint(0, 2, (2, 20, 24), generator=g).to(dtype)  # 0/1 everywhere
    x[:, 3, 5:15, 5:15] = 7.0  # a constant plateau
    rois = random_rois(g, 30, 2, 20, 24, 1.0, dtype)
    ya, yb, ga, gb = compare(x, rois, (4, 3), 1.0)
    assert same_bits(ya, yb) and same_bits(ga, gb)
    # and the loop version's argmax cells are torchvision's
    _, argmax = torch.ops.torchvision.roi_pool(x, rois[:8], 1.0, 4, 3)
    _, ours = roi_pool_loop(x, rois[:8], (4, 3), 1.0, return_argmax=True)
    assert torch.equal(ours, argmax.long())


@pytest.mark.parametrize("dtype", DTYPES)
def test_signed_zero_nan_and_infinities(dtype):
    """-0.0 vs +0.0 ties, NaN and -inf (never win), -FLT_MAX (never wins), +inf: bit for bit."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 3, 12, 14, generator=g, dtype=dtype)
    x[0, 0] = torch.where(torch.rand(12, 14, generator=g) < 0.5, -0.0, 0.0).to(dtype)
    x[0, 1, :6] = float("nan")
    x[0, 1, 6:, :7] = -float("inf")
    x[0, 1, 6:, 7:] = -rp.FLT_MAX
    x[0, 2, 3, 3] = float("inf")
    x[0, 2, 4, 4] = float("nan")
    rois = random_rois(g, 25, 1, 12, 14, 1.0, dtype)
    ya, yb, ga, gb = compare(x, rois, (3, 3), 1.0)
    assert same_bits(ya, yb) and same_bits(ga, gb)
    assert (ya[:, 1] == -rp.FLT_MAX).any()  # bins with nothing that can win output -FLT_MAX


@pytest.mark.parametrize("levels", [None, (1, 1), (2, 3), (8, 8)])
def test_inference_path_same_bits_as_training_path(levels, monkeypatch):
    """Without a gradient to compute, the kernel keeps float values in its table instead of
    (value, position) keys (no argmax): the same bits as the keys' path and as torchvision, on
    float32 maps with ties, empty bins and several channel blocks; maps holding -0.0, NaN or
    -inf take the keys' path, with the same bits too."""
    monkeypatch.setattr(kernel, "_BLOCK_BYTES", 8192)  # several channel blocks and RoI chunks
    g = torch.Generator().manual_seed(11)
    for case in range(12):
        N, C, H, W = 1 + case % 2, 3 + case % 5, 5 + case, 4 + 2 * case
        if case % 3 == 0:  # integer values: ties everywhere
            x = torch.randint(-3, 4, (N, C, H, W), generator=g).float()
        else:
            x = torch.randn(N, C, H, W, generator=g)
        if case % 4 == 3:  # values the float table cannot order like torchvision
            x[0, 0, 0, :2] = torch.tensor([-0.0, float("nan")])
            x[-1, -1, -1, -1] = -float("inf")
        rois = random_rois(g, 3 + 5 * case, N, H, W, 0.5, torch.float32)
        with torch.no_grad():
            fast = roi_pool(x, rois, (3, 2), 0.5, levels=levels)
            pyramid = spatial_pyramid_pool(x, rois, (3, 2, 1), 0.5)
        keyed = roi_pool(x.clone().requires_grad_(), rois, (3, 2), 0.5, levels=levels)
        assert same_bits(fast, keyed.detach()), f"case {case}"
        assert same_bits(fast, tv_pool(x, rois, (3, 2), 0.5)), f"case {case}"
        keyed_pyramid = spatial_pyramid_pool(x.clone().requires_grad_(), rois, (3, 2, 1), 0.5)
        assert same_bits(pyramid, keyed_pyramid.detach()), f"case {case}"


def test_many_channel_blocks_and_roi_chunks(monkeypatch):
    """Tiny blocks force the channel-block and RoI-chunk loops to run many times."""
    monkeypatch.setattr(kernel, "_BLOCK_BYTES", 4096)
    g = torch.Generator().manual_seed(5)
    x = torch.randint(-2, 3, (2, 13, 9, 11), generator=g).float()
    rois = random_rois(g, 37, 2, 9, 11, 0.5, torch.float32)
    assert kernel._block_sizes(13, 2 * 9 * 11, 6, 4 * 9)[0] < 13  # several channel blocks
    ya, yb, ga, gb = compare(x, rois, (3, 3), 0.5)
    assert same_bits(ya, yb) and same_bits(ga, gb)


@pytest.mark.parametrize("threads", [1, 2])
def test_same_bits_with_any_thread_count(threads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(6)
        x = torch.randn(2, 64, 19, 25, generator=g)
        rois = boxes_to_rois([proposal_like_boxes(40, (300, 400), seed=i) for i in range(2)])
        ya, yb, ga, gb = compare(x, rois, (7, 7), 1 / 16)
        assert same_bits(ya, yb) and same_bits(ga, gb)
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("device", DEVICES)
def test_no_rois(device):
    x = torch.randn(2, 3, 5, 6, device=device, requires_grad=True)
    for boxes in (torch.zeros(0, 5, device=device), [torch.zeros(0, 4, device=device)], []):
        out = roi_pool(x, boxes, (2, 3))
        assert out.shape == (0, 3, 2, 3) and out.device == x.device
        out.sum().backward()
        assert torch.equal(x.grad, torch.zeros_like(x))
        x.grad = None
    assert spatial_pyramid_pool(x, torch.zeros(0, 5, device=device)).shape == (0, 3 * 50)


def test_list_of_boxes_equals_rois_tensor():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 4, 16, 20, generator=g)
    per_image = [torch.rand(n, 4, generator=g) * 60 for n in (5, 0, 3)]
    per_image = [torch.cat([b[:, :2], b[:, :2] + b[:, 2:] / 2], dim=1) for b in per_image]
    rois = boxes_to_rois(per_image)
    assert same_bits(roi_pool(x, per_image, 4, 0.25), roi_pool(x, rois, 4, 0.25))
    assert same_bits(roi_pool(x, per_image, 4, 0.25), tv_pool(x, per_image, 4, 0.25))


def test_empty_feature_map():
    x = torch.randn(1, 2, 0, 5, requires_grad=True)
    rois = torch.tensor([[0.0, 0, 0, 3, 3]])
    out = roi_pool(x, rois, 2)
    assert torch.equal(out, torch.zeros(1, 2, 2, 2))
    out.sum().backward()
    assert x.grad.shape == x.shape


def test_channels_last_and_non_contiguous_input():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 6, 15, 17, generator=g)
    rois = random_rois(g, 20, 2, 15, 17, 1.0, torch.float32)
    expected = tv_pool(x, rois, 3, 1.0)
    assert same_bits(
        roi_pool(x.contiguous(memory_format=torch.channels_last), rois, 3, 1.0), expected
    )
    wide = torch.randn(2, 6, 15, 34, generator=g)
    assert same_bits(
        roi_pool(wide[..., ::2], rois, 3, 1.0), tv_pool(wide[..., ::2].contiguous(), rois, 3, 1.0)
    )


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 2, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [[0, 0.5, 1, 5, 4], [1, 2, 0, 6, 5], [0, -1, -1, 2, 8], [1, 3, 3, 3, 3]],
        dtype=torch.float64,
    )
    assert torch.autograd.gradcheck(lambda t: roi_pool(t, rois, (2, 3)), (x,))
    assert torch.autograd.gradcheck(lambda t: spatial_pyramid_pool(t, rois, (3, 2, 1)), (x,))


# ----------------------------------------------------------------------------- loop version, SPP, module


@pytest.mark.parametrize("dtype", DTYPES)
def test_loop_version_matches_fast_and_torchvision(dtype):
    g = torch.Generator().manual_seed(10)
    x = torch.randint(-3, 4, (2, 3, 11, 13), generator=g).to(dtype)  # ties
    rois = random_rois(g, 12, 2, 11, 13, 0.5, dtype)
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    loop, loop_argmax = roi_pool_loop(xa, rois, (3, 5), 0.5, return_argmax=True)
    fast = roi_pool(xb, rois, (3, 5), 0.5)
    assert same_bits(loop, fast)
    _, tv_argmax = torch.ops.torchvision.roi_pool(x, rois, 0.5, 3, 5)
    assert torch.equal(loop_argmax, tv_argmax.long())
    grad = torch.randint(-3, 4, fast.shape, generator=g).to(dtype)  # exact sums in any order
    loop.backward(grad)
    fast.backward(grad)
    assert same_bits(xa.grad, xb.grad)


def test_loop_version_no_rois():
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    out, argmax = roi_pool_loop(x, torch.zeros(0, 5), 2, return_argmax=True)
    assert out.shape == argmax.shape == (0, 2, 2, 2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_spatial_pyramid_pool_is_concatenated_roi_pools(device, dtype):
    g = torch.Generator().manual_seed(11)
    x = torch.randint(-2, 3, (2, 5, 20, 26), generator=g).to(dtype).to(device)
    rois = random_rois(g, 17, 2, 20, 26, 0.25, dtype).to(device)
    levels = (6, 3, 2, 1)
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    ours = spatial_pyramid_pool(xa, rois, levels, 0.25)
    ref = torch.cat([tv_pool(xb, rois, n, 0.25).flatten(1) for n in levels], dim=1)
    assert ours.shape == (17, 5 * 50)
    assert same_bits(ours, ref)
    grad = torch.randint(-3, 4, ref.shape, generator=g).to(ref)  # integer: exact in any order
    ours.backward(grad)
    ref.backward(grad)
    assert same_bits(xa.grad, xb.grad)


def test_modules():
    g = torch.Generator().manual_seed(12)
    x = torch.randn(2, 4, 10, 12, generator=g)
    rois = random_rois(g, 9, 2, 10, 12, 1 / 8, torch.float32)
    pool = RoIPool((3, 2), 1 / 8)
    assert pool.output_size == (3, 2) and pool.spatial_scale == 1 / 8
    assert "output_size=(3, 2), spatial_scale=0.125" in repr(pool)
    assert same_bits(pool(x, rois), tv_pool(x, rois, (3, 2), 1 / 8))
    assert RoIPool(7, 1 / 16).output_size == (7, 7)
    spp = SpatialPyramidPool((4, 2, 1), 1 / 8)
    assert spp.num_bins == 21 and "levels=(4, 2, 1)" in repr(spp)
    assert same_bits(spp(x, rois), spatial_pyramid_pool(x, rois, (4, 2, 1), 1 / 8))


def test_workspace_report():
    x = torch.randn(2, 512, 38, 50)
    rois = boxes_to_rois([proposal_like_boxes(64, seed=i) for i in range(2)])
    sizes = roi_pool_workspace(x, rois, 7, 1 / 16)
    assert sizes["argmax"] == sizes["torchvision_extra"] == 128 * 512 * 49 * 4
    assert sizes["table"] <= kernel._BLOCK_BYTES + 8 * 512 and 1 <= sizes["levels"] <= 16
    assert (
        sizes["argmax"] < sizes["extra"] < sizes["argmax"] + x.numel() * 4 + 4 * kernel._BLOCK_BYTES
    )


# ----------------------------------------------------------------------------- bad input


def test_bad_input_messages():
    x = torch.randn(2, 3, 8, 8)
    rois = torch.tensor([[0.0, 1, 1, 5, 5]])
    with pytest.raises(
        ValueError,
        match=r"Tensor\[R, 5\].*got shape \(1, 4\).*per-image boxes are expected as a list",
    ):
        roi_pool(x, rois[:, 1:], 2)
    with pytest.raises(ValueError, match=r"Tensor\[R, 5\].*got shape \(5,\)"):
        roi_pool(x, rois[0], 2)
    with pytest.raises(TypeError, match="boxes must be Tensor.*got ndarray"):
        roi_pool(x, rois.numpy(), 2)
    with pytest.raises(TypeError, match="floating point.*got dtype torch.int64"):
        roi_pool(x, rois.long(), 2)
    with pytest.raises(TypeError, match="same dtype.*boxes torch.float64 and input torch.float32"):
        roi_pool(x, rois.double(), 2)
    with pytest.raises(ValueError, match=r"batch index.*\[0, 2\).*row 0 has 2.0"):
        roi_pool(x, torch.tensor([[2.0, 1, 1, 5, 5]]), 2)
    with pytest.raises(ValueError, match=r"batch index.*integer.*row 1 has 0.5"):
        roi_pool(x, torch.tensor([[0.0, 1, 1, 5, 5], [0.5, 1, 1, 5, 5]]), 2)
    with pytest.raises(ValueError, match=r"batch index.*row 0 has -1.0"):
        roi_pool(x, torch.tensor([[-1.0, 1, 1, 5, 5]]), 2)
    with pytest.raises(ValueError, match="finite coordinates; row 1"):
        roi_pool(x, torch.tensor([[0.0, 1, 1, 5, 5], [1, 1, float("nan"), 5, 5]]), 2)
    with pytest.raises(ValueError, match="finite coordinates"):
        roi_pool(x, torch.tensor([[0.0, 1, 1, float("inf"), 5]]), 2)
    with pytest.raises(
        ValueError, match=r"4-D Tensor\[N, C, H, W\]; got shape \(3, 8, 8\).*input\[None\]"
    ):
        roi_pool(x[0], rois, 2)
    with pytest.raises(TypeError, match="input must be a Tensor"):
        roi_pool(x.numpy(), rois, 2)
    with pytest.raises(TypeError, match="float32, float64, float16 or bfloat16.*torch.int64"):
        roi_pool(x.long(), rois, 2)
    with pytest.raises(ValueError, match=r"output_size must not be negative.*\(-1, 2\)"):
        roi_pool(x, rois, (-1, 2))
    with pytest.raises(ValueError, match="output_size must not be negative"):
        roi_pool(x, rois, -1)
    with pytest.raises(TypeError, match=r"output_size must be an int or a pair.*2.5"):
        roi_pool(x, rois, 2.5)
    with pytest.raises(TypeError, match="output_size must be an int or a pair"):
        roi_pool(x, rois, (2, 2, 2))
    with pytest.raises(ValueError, match="spatial_scale must be a positive finite number.*-0.5"):
        roi_pool(x, rois, 2, -0.5)
    with pytest.raises(TypeError, match="spatial_scale must be a number"):
        roi_pool(x, rois, 2, "1/16")
    with pytest.raises(ValueError, match="3 per-image entries but input holds 2 images"):
        roi_pool(x, [rois[:, 1:]] * 3, 2)
    with pytest.raises(ValueError, match=r"boxes_per_image\[0\] must be Tensor\[G, 4\]"):
        roi_pool(x, [rois], 2)
    with pytest.raises(ValueError, match="levels must be positive ints"):
        spatial_pyramid_pool(x, rois, (4, 0))
    with pytest.raises(TypeError, match="levels must be a non-empty sequence"):
        spatial_pyramid_pool(x, rois, 4)
    with pytest.raises(ValueError, match="output_size must not be negative"):
        roi_pool_loop(x, rois, -2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_different_devices():
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match="boxes are on cuda.*input is on cpu"):
        roi_pool(x, torch.zeros(1, 5, device="cuda"), 2)
    with pytest.raises(ValueError, match=r"boxes\[0\] is on cuda.*input is on cpu"):
        roi_pool(x, [torch.zeros(1, 4, device="cuda")], 2)


def test_different_devices_message_without_cuda():
    """The device check compares devices, so a 'meta' tensor shows it without a GPU."""
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(
        ValueError, match="boxes are on meta but input is on cpu.*to\\(input.device\\)"
    ):
        roi_pool(x, torch.zeros(1, 5, device="meta"), 2)
    with pytest.raises(ValueError, match=r"boxes\[0\] is on meta but input is on cpu"):
        roi_pool(x, [torch.zeros(1, 4, device="meta")], 2)


def test_degenerate_boxes_match_torchvision():
    """x2 < x1 is accepted, as by torchvision: the RoI is forced to one cell wide at x1."""
    x = torch.arange(2 * 6 * 8, dtype=torch.float32).view(1, 2, 6, 8)
    rois = torch.tensor([[0.0, 5, 4, 1, 1]])  # x2 < x1 and y2 < y1
    out = roi_pool(x, rois, 2)
    assert same_bits(out, tv_pool(x, rois, 2, 1.0))
    # one cell (y=4, x=5) of 1 x 1; bin_size = 1/2, so every bin is [floor(i/2), ceil((i+1)/2)) = [0, 1)
    assert torch.equal(out[0, 0], torch.full((2, 2), 37.0))


# ----------------------------------------------------------------------------- benchmark


def test_proposal_like_boxes():
    boxes = proposal_like_boxes(500, (600, 800), seed=3)
    assert boxes.shape == (500, 4)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 800).all() and (boxes[:, 3] <= 600).all()
    sides = (boxes[:, 2:] - boxes[:, :2]).min(dim=1).values
    assert sides.min() >= 8 and (sides < 100).float().mean() > 0.3 and (sides > 300).any()
    assert torch.equal(boxes, proposal_like_boxes(500, (600, 800), seed=3))


def test_bench_small_run():
    lines = []
    threads = torch.get_num_threads()
    results = bench_roi_pool(repeats=1, loop_rois=1, channels=4, threads=1, print_fn=lines.append)
    assert torch.get_num_threads() == threads  # restored
    assert results["train"]["exact"] and results["test"]["exact"]
    assert all(math.isfinite(r["ratio_fb"]) for r in results.values())
    assert lines[-1].startswith("\nroi_pool fwd+bwd vs torchvision: train ")
    assert lines[-1].rstrip().endswith("x") and ", test " in lines[-1]


def test_bench_command_line_errors(capsys):
    with pytest.raises(SystemExit):
        main([])
    assert "roi_pool" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            main(["roi_pool", "--device", "cuda"])
        assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_input_matches_torchvision(dtype):
    # torchvision's CPU kernel takes float16 maps (not bfloat16: there the reference is its
    # float32 result cast down); ours pools both in float32 and returns their dtype: a max picks
    # one value, and the casts are exact, so the bits agree.
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(2, 4, 12, 15, generator=g) * 100).to(dtype).requires_grad_()
    rois = random_rois(g, 40, 2, 12, 15, 1 / 8, torch.float32).to(dtype)
    ours = roi_pool(x, rois, (3, 2), 1 / 8)
    if dtype == torch.float16:
        theirs = torchvision.ops.roi_pool(x, rois, (3, 2), 1 / 8)
    else:
        theirs = torchvision.ops.roi_pool(x.float(), rois.float(), (3, 2), 1 / 8).to(dtype)
    assert ours.dtype == dtype and torch.equal(ours, theirs)
    assert torch.equal(roi_pool_loop(x.detach(), rois, (3, 2), 1 / 8), theirs)
    grad = torch.randint(-3, 4, ours.shape, generator=g).to(dtype)  # exact sums in any order
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    (theirs_grad,) = torch.autograd.grad(theirs, x, grad)
    assert ours_grad.dtype == dtype and torch.equal(ours_grad, theirs_grad)


def test_zero_output_size_is_empty_as_torchvision():
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    rois = torch.tensor([[0.0, 0, 0, 5, 5], [0, 2, 2, 7, 7]])
    for size in ((0, 2), (2, 0), 0):
        ours = roi_pool(x, rois, size, 1.0)
        theirs = torchvision.ops.roi_pool(x, rois, size, 1.0)
        assert ours.shape == theirs.shape and ours.numel() == 0
        (grad,) = torch.autograd.grad(ours.sum(), x)
        assert torch.equal(grad, torch.zeros_like(x))
    assert roi_pool_loop(x.detach(), rois, (0, 3)).shape == (2, 3, 0, 3)


@pytest.mark.parametrize("backend", ["eager", "aot_eager", "inductor"])
def test_torch_compile_of_a_model_that_pools(backend):
    # A model with an RoIPool layer compiles (the layer runs eagerly: torch.compiler.disable).
    # The pooled output is checked against torchvision on the features the compiled model
    # computed, and its gradient reaches the features through our backward. With the eager and
    # aot_eager backends the whole model also equals the eager one bit for bit; inductor's own
    # kernels are not ours to check (on a CPU whose kernels take another instruction-set path,
    # ATEN_CPU_CAPABILITY=avx2 on an AVX-512 machine, torch 2.14's inductor miscompiles even
    # conv + relu).
    torch._dynamo.reset()
    pool = RoIPool((2, 3), 1 / 4)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def model(images, rois):
        features = torch.relu(conv(images))  # (2, 4, 16, 20)
        return features, pool(features, rois)  # (K, 4, 2, 3)

    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 16, 20, generator=g)
    rois = random_rois(g, 12, 2, 16, 20, 1 / 4, torch.float32)
    compiled = torch.compile(model, backend=backend)
    for _ in range(2):  # the second call runs the cached graph
        features, out = compiled(images, rois)
        reference = features.detach().requires_grad_()
        expected = torchvision.ops.roi_pool(reference, rois, (2, 3), 1 / 4)
        assert torch.equal(out, expected)
        grad_out = torch.randint(-3, 4, out.shape, generator=g).to(out)  # exact sums
        (grad,) = torch.autograd.grad(out, features, grad_out)
        (expected_grad,) = torch.autograd.grad(expected, reference, grad_out)
        assert torch.equal(grad, expected_grad)
        if backend != "inductor":
            eager_features, eager_out = model(images, rois)
            assert torch.equal(features, eager_features) and torch.equal(out, eager_out)
