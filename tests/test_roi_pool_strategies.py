"""RoI pooling's strategies (direct max, range-max tables of every size) and decoding paths.

Every strategy roi_pool can choose must give torchvision's bits and the teaching loop's values;
the lookup plan must cover each bin exactly; the cost model must pick its own minimum. Timings
are never asserted (they are the benchmark's business: ``python -m fastrcnn_lite.bench``).
"""

import importlib
import math

import pytest
import torch
import torchvision

from fastrcnn_lite.bench import main
from fastrcnn_lite.boxes import boxes_to_rois
from fastrcnn_lite.experiments.bench_roi_pool import bench_roi_pool_levels
from fastrcnn_lite.experiments.workloads import proposal_like_boxes
from fastrcnn_lite.roi_pool import roi_bin_edges, roi_pool, roi_pool_loop

# The package re-exports the function roi_pool, which shadows the submodule's attribute name.
rp = importlib.import_module("fastrcnn_lite.roi_pool")
kernel = importlib.import_module("fastrcnn_lite.roi_pool_plan")  # lookup plan, cost model

# (1, 1) is the direct max; the others are tables, up to larger than any bin needs.
LEVELS = [None, (1, 1), (1, 2), (2, 1), (2, 2), (1, 4), (3, 2), (3, 3), (4, 5), (9, 9)]


def same_bits(a, b):
    """Bitwise equality (tells -0.0 from +0.0, and NaN from NaN)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    view = {torch.float32: torch.int32, torch.float64: torch.int64}[a.dtype]
    return torch.equal(a.contiguous().view(view), b.contiguous().view(view))


def random_rois(g, K, N, H, W, scale, dtype):
    """RoIs in image pixels: some partly or wholly outside the map, some degenerate (x2 < x1)."""
    size = torch.tensor([W, H, W, H], dtype=dtype) / scale
    corners = torch.rand(K, 4, generator=g, dtype=dtype) * size * 1.4 - 0.2 * size
    corners[:, 2:] = corners[:, :2] + (corners[:, 2:] - corners[:, :2]).abs() * 0.7
    corners[::5, 2] = corners[::5, 0] - 2 / scale  # degenerate: x2 < x1
    index = torch.randint(0, N, (K, 1), generator=g).to(dtype)
    return torch.cat([index, corners], dim=1)


def pool_both(x, rois, size, scale, levels, seed=0):
    """Outputs and input gradients of roi_pool(levels=...) and of torchvision's kernel."""
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya = roi_pool(xa, rois, size, scale, levels=levels)
    yb = torchvision.ops.roi_pool(xb, rois, size, scale)
    grad = torch.randn(yb.shape, generator=torch.Generator().manual_seed(seed), dtype=yb.dtype)
    ya.backward(grad)
    yb.backward(grad)
    return ya, yb, xa.grad, xb.grad


@pytest.mark.parametrize("levels", LEVELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_strategy_matches_torchvision_bitwise(levels, dtype):
    g = torch.Generator().manual_seed(11)
    for case in range(12):
        N, C = 1 + case % 2, 1 + case % 5
        H, W = 4 + (case * 5) % 23, 3 + (case * 7) % 29
        scale, size = [1.0, 0.5, 1 / 4][case % 3], [(7, 7), (3, 5), (2, 2), (6, 4)][case % 4]
        if case % 3 == 0:  # integer-valued: many ties, which the first cell must win
            x = torch.randint(-3, 4, (N, C, H, W), generator=g).to(dtype)
        else:
            x = torch.randn(N, C, H, W, generator=g, dtype=dtype)
        rois = random_rois(g, 1 + case * 3, N, H, W, scale, dtype)
        ya, yb, ga, gb = pool_both(x, rois, size, scale, levels, seed=case)
        assert same_bits(ya, yb), f"levels {levels}: output differs in case {case}"
        assert same_bits(ga, gb), f"levels {levels}: input gradient differs in case {case}"


@pytest.mark.parametrize("levels", [(1, 1), (2, 3), (4, 4)])
def test_every_strategy_matches_the_loop(levels):
    g = torch.Generator().manual_seed(12)
    x = torch.randn(2, 3, 13, 17, generator=g, dtype=torch.float64).requires_grad_()
    rois = random_rois(g, 9, 2, 13, 17, 0.5, torch.float64)
    fast = roi_pool(x, rois, (5, 4), 0.5, levels=levels)
    (grad_fast,) = torch.autograd.grad(fast.sum(), x)
    loop = roi_pool_loop(x, rois, (5, 4), 0.5)
    (grad_loop,) = torch.autograd.grad(loop.sum(), x)
    assert same_bits(fast, loop) and same_bits(grad_fast, grad_loop)


@pytest.mark.parametrize("levels", [None, (1, 1), (3, 3)])
@pytest.mark.parametrize(
    "name",
    ["mixed signs", "non-negative (ReLU)", "-0.0 present", "NaN and -inf present", "all -0.0"],
)
def test_decoding_and_gathering_paths(levels, name):
    """Values come from the winning keys (fast path) or from a gather (-0.0, NaN, -inf)."""
    g = torch.Generator().manual_seed(13)
    x = torch.randn(1, 4, 12, 15, generator=g)
    if name == "non-negative (ReLU)":
        x = x.relu()
    elif name == "-0.0 present":
        x = x.relu()
        x[0, :, 2:9, 3:11] = -0.0  # ties of -0.0 and +0.0: the first one's bits must come out
    elif name == "NaN and -inf present":
        x[0, 0, 1:4, 2:6] = float("nan")
        x[0, 1, 5:, 7:] = -float("inf")
    elif name == "all -0.0":
        x = torch.full_like(x, -0.0)
    rois = random_rois(g, 30, 1, 12, 15, 1.0, torch.float32)
    ya, yb, ga, gb = pool_both(x, rois, (3, 3), 1.0, levels)
    assert same_bits(ya, yb) and same_bits(ga, gb)


def test_lookups_cover_each_bin_exactly():
    """Decode every lookup row back to its block of cells: their union must be the bin."""
    g = torch.Generator().manual_seed(14)
    N, H, W = 2, 19, 23
    rois = random_rois(g, 25, N, H, W, 1.0, torch.float32)
    batch_index, hs, he, ws, we = roi_bin_edges(rois, (4, 3), 1.0, H, W)
    K = rois.shape[0]
    hs, he = (t[:, :, None].expand(K, 4, 3).reshape(K, 12) for t in (hs, he))
    ws, we = (t[:, None, :].expand(K, 4, 3).reshape(K, 12) for t in (ws, we))
    for levels_y, levels_x in [(1, 1), (2, 3), (3, 2), (5, 5)]:
        rows, count = kernel._lookup_rows(
            batch_index, hs, he, ws, we, (N, H, W), (levels_y, levels_x), empty_row=-1
        )
        plane = N * H * W
        for q in range(K * 12):
            k, b = divmod(q, 12)
            want = {
                (int(batch_index[k]), y, x)
                for y in range(hs[k, b], he[k, b])
                for x in range(ws[k, b], we[k, b])
            }
            got = set()
            for t in range(int(count[q])):
                row = int(rows[t, q])
                if row == -1:  # the empty-bin row
                    continue
                level, rest = divmod(row, plane)
                ky, kx = divmod(level, levels_x)
                n, rest = divmod(rest, H * W)
                y, x = divmod(rest, W)
                assert y + (1 << ky) <= H and x + (1 << kx) <= W  # the block lies on the map
                got |= {(n, y + dy, x + dx) for dy in range(1 << ky) for dx in range(1 << kx)}
            assert got == want, f"levels ({levels_y}, {levels_x}), RoI {k}, bin {b}"


def test_cost_model_picks_its_minimum():
    """_choose_levels (all candidates at once) equals a loop over every candidate's cost."""
    for num_rois, N in [(3, 1), (40, 1), (128, 2), (600, 1)]:
        rois = boxes_to_rois([proposal_like_boxes(num_rois // N, seed=i) for i in range(N)])
        _, hs, he, ws, we = roi_bin_edges(rois, (7, 7), 1 / 16, 38, 50)
        tall = (he - hs).clamp(min=0)[:, :, None].expand(-1, 7, 7)
        wide = (we - ws).clamp(min=0)[:, None, :].expand(-1, 7, 7)
        rows = N * 38 * 50
        costs = {}
        for ly in range(1, int(tall.max()).bit_length() + 1):
            for lx in range(1, int(wide.max()).bit_length() + 1):
                lookups, built = kernel._model_terms(tall, wide, rows, (ly, lx))
                costs[(ly, lx)] = lookups + kernel._BUILD_COST * built
        assert kernel._choose_levels(tall, wide, rows) == min(costs, key=costs.get)


def test_direct_max_for_a_few_rois_table_for_many():
    rois_few = boxes_to_rois([proposal_like_boxes(2, seed=3)])
    _, hs, he, ws, we = roi_bin_edges(rois_few, (7, 7), 1 / 16, 38, 50)
    small = torch.ones(2, 49, dtype=torch.long)  # 1 x 1 bins: nothing to gain from a table
    assert kernel._choose_levels(small, small, 1900) == (1, 1)
    rois_many = boxes_to_rois([proposal_like_boxes(2000, seed=0)])
    _, hs, he, ws, we = roi_bin_edges(rois_many, (7, 7), 1 / 16, 38, 50)
    tall = (he - hs)[:, :, None].expand(-1, 7, 7)
    wide = (we - ws)[:, None, :].expand(-1, 7, 7)
    levels_y, levels_x = kernel._choose_levels(tall, wide, 1900)
    assert levels_y * levels_x > 1


def test_levels_argument_errors():
    x = torch.randn(1, 2, 5, 5)
    rois = torch.tensor([[0.0, 0, 0, 4, 4]])
    for bad in [(0, 1), 2, (1, 2, 3), (1.0, 2), (True, 1)]:
        with pytest.raises(ValueError, match=r"levels must be None or a pair of positive ints"):
            roi_pool(x, rois, 2, levels=bad)


def test_bench_three_workloads_and_levels_run(capsys):
    from fastrcnn_lite.experiments.bench_roi_pool import bench_roi_pool

    lines = []
    results = bench_roi_pool(repeats=1, loop_rois=1, channels=2, threads=1, print_fn=lines.append)
    assert set(results) == {"train", "test", "embedded"}
    assert all(r["exact"] for r in results.values())
    assert lines[-1].startswith("\nroi_pool fwd+bwd vs torchvision: train ")
    assert ", test " in lines[-1] and ", embedded " in lines[-1] and lines[-1].endswith("x")

    lines = []
    levels = bench_roi_pool_levels(
        rois=(4, 128), repeats=1, channels=2, threads=1, print_fn=lines.append
    )
    for K in (4, 128):
        assert levels[K]["chosen"] in levels[K]["times"]
        assert levels[K]["fastest"] in levels[K]["times"] and (1, 1) in levels[K]["times"]
    assert math.isfinite(levels["build_cost"])
    assert lines[-1].startswith("\nfit: ")
    assert main(["roi_pool_levels", "--rois", "3", "--repeats", "1", "--threads", "1"]) == 0
    assert "direct (1, 1)" in capsys.readouterr().out


@pytest.mark.parametrize("levels", [None, (1, 1), (2, 2), (4, 4)])
def test_window_of_a_few_rois(levels):
    """Keys and table cover only the box of the bins; positions are still the whole map's."""
    g = torch.Generator().manual_seed(15)
    x = torch.randn(2, 3, 30, 40, generator=g)
    x[:, :, :, :20] = float("nan")  # outside every bin: must not matter
    x[1, 2, 24:26, 30:33] = -0.0
    rois = torch.tensor([[1.0, 22, 20, 35, 29], [1.0, 30, 23, 39, 28], [0.0, 25, 25, 25, 25]])
    ya, yb, ga, gb = pool_both(x, rois, (3, 2), 1.0, levels)
    assert same_bits(ya, yb) and same_bits(ga, gb)
    x[1, 0, 21:24, 23:27] = float("nan")  # inside the window: these cells cannot win
    x[1, 1, 25, 31] = -float("inf")
    ya, yb, ga, gb = pool_both(x, rois, (3, 2), 1.0, levels)
    assert same_bits(ya, yb) and same_bits(ga, gb)
    assert kernel._covered_box(*_expanded_bins(rois, (3, 2), 30, 40)) == (20, 30, 22, 40)


def _expanded_bins(rois, size, H, W):
    _, hs, he, ws, we = roi_bin_edges(rois, size, 1.0, H, W)
    K, (h, w) = rois.shape[0], size
    return (
        hs[:, :, None].expand(K, h, w),
        he[:, :, None].expand(K, h, w),
        ws[:, None, :].expand(K, h, w),
        we[:, None, :].expand(K, h, w),
    )


def test_workspace_shrinks_with_the_window():
    x = torch.randn(1, 64, 38, 50)
    few = boxes_to_rois([torch.tensor([[0.0, 0, 120, 100]])])  # one small box: 8 x 7 cells
    many = boxes_to_rois([proposal_like_boxes(300, seed=1)])
    assert (
        rp.roi_pool_workspace(x, few, 7, 1 / 16)["table"]
        < (rp.roi_pool_workspace(x, many, 7, 1 / 16)["table"])
    )
