"""RoI max pooling and spatial pyramid pooling, from scratch in PyTorch tensor operations.

Data-flow stage: backbone feature map -> **region features** (-> heads).
Paper: Fast R-CNN section 2.1 (the RoI pooling layer) and section 2.3, eq. 4 (its backward);
SPPnet (He et al., ECCV 2014) section 2.3, spatial pyramid pooling, of which RoI pooling is the
one-level special case. Taught in ``notebooks/04_roi_pooling.ipynb``.

What it computes (torchvision.ops.roi_pool's semantics, bit for bit)
--------------------------------------------------------------------
For an RoI ``(n, x1, y1, x2, y2)`` in image pixels and a feature map with ``spatial_scale``
(1/16 for VGG16 conv5):

1. Snap the corners to feature cells: ``round(x1 * spatial_scale)`` etc., where ``round`` is C's
   ``std::round`` (halves away from zero: 2.5 -> 3, -2.5 -> -3), *not* ``torch.round``
   (halves to even). The product is taken in the input's dtype (float32 for float32 features).
2. The snapped RoI covers ``roi_w = max(x2 - x1 + 1, 1)`` cells (corners inclusive); a degenerate
   box (x2 < x1) is forced to one cell wide, as torchvision does.
3. Bin ``(i, j)`` of the ``h x w`` grid covers rows ``[floor(i * bin_h), ceil((i + 1) * bin_h))``
   with ``bin_h = roi_h / h`` computed in the input's dtype, offset by the RoI's first row and
   clipped to ``[0, H]`` (columns alike). Neighbouring bins can overlap by one cell; a bin can be
   empty (RoI smaller than the grid, or outside the map).
4. Each non-empty bin outputs the max of its cells per channel; an empty bin outputs 0. Values
   that are NaN or ``<= -FLT_MAX`` never win (the reference kernel starts from ``-FLT_MAX`` and
   compares with ``>``); a bin holding only those outputs ``-FLT_MAX`` and passes no gradient.
5. Ties: the *first* maximum in row-major order wins (strict ``>`` in a row-major scan).
6. Backward (eq. 4): each output sends its gradient to the cell that was its argmax; a cell that
   is the argmax of several bins (of one RoI or of several) receives the sum, added in the order
   (RoI, channel, bin row, bin column), so float sums match torchvision's CPU kernel exactly.

The vectorised kernel (order keys, a range-max table, the autograd Function) lives in
:mod:`fastrcnn_lite.roi_pool_kernel`, its plan (the table size a measured cost model picks, the
lookups of every bin, the blocks) in :mod:`fastrcnn_lite.roi_pool_plan`, the argument checks in
:mod:`fastrcnn_lite.roi_pool_args`; :func:`roi_pool_loop` below is the same computation written
as a loop over RoIs and bins, for reading and for checking.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .roi_pool_args import (
    _LOW_PRECISION,
    _as_rois,
    _check_input,
    _check_levels,
    _check_scale,
    _check_table_levels,
    _float32,
    _output_size_pair,
)
from .roi_pool_kernel import FLT_MAX, _workspace_sizes, bin_max_pool

__all__ = [
    "roi_pool",
    "RoIPool",
    "spatial_pyramid_pool",
    "SpatialPyramidPool",
    "roi_pool_loop",
    "roi_cells",
    "roi_bin_edges",
    "roi_pool_workspace",
]


# ----------------------------------------------------------------------------- geometry


def _round_half_away_from_zero(v: Tensor) -> Tensor:
    """C's ``std::round``: 2.5 -> 3, -2.5 -> -3 (``torch.round`` would give 2 and -2)."""
    whole = torch.trunc(v)
    frac = v - whole  # exact in floating point
    return torch.where(frac.abs() >= 0.5, whole + torch.sign(v), whole)


def roi_cells(rois: Tensor, spatial_scale: float) -> Tensor:
    """Snap RoIs to feature cells: ``std::round(coordinate * spatial_scale)`` in the RoIs' dtype.

    Notebook 04 draws the snapped cells (the RoI widget).

    Args:
        rois (Tensor[R, 5]): (batch_index, x1, y1, x2, y2) in image pixels.
        spatial_scale (float): image pixels -> feature cells (1/16 for VGG16 conv5).

    Returns:
        Tensor[R, 4] int64: (x1, y1, x2, y2) feature cells, corners inclusive (not clipped).
    """
    scale = torch.tensor(
        spatial_scale, dtype=rois.dtype, device=rois.device
    )  # float32 for float32 rois
    return _round_half_away_from_zero(rois[:, 1:] * scale).long()  # (R, 4)


def roi_bin_edges(
    rois: Tensor, output_size, spatial_scale: float, height: int, width: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Feature-cell extent of every bin of every RoI, with the reference kernel's float arithmetic.

    Notebook 04 draws these bins (the RoI widget) and grades the learner's version against them.

    Args:
        rois (Tensor[R, 5]): (batch_index, x1, y1, x2, y2) in image pixels.
        output_size ((h, w)): bins per RoI.
        spatial_scale (float): image pixels -> feature cells (1/16 for VGG16 conv5).
        height, width (int): the feature map's H x W (bins are clipped to it).

    Returns:
        batch_index (Tensor[R] int64), hstart, hend (Tensor[R, h] int64), wstart, wend
        (Tensor[R, w] int64): bin (i, j) of RoI k covers rows ``hstart[k, i] <= y < hend[k, i]`` and
        columns ``wstart[k, j] <= x < wend[k, j]``; it is empty when either range is.
    """
    h, w = _output_size_pair(output_size)
    dtype = rois.dtype
    x1, y1, x2, y2 = roi_cells(rois, spatial_scale).unbind(1)  # (R,) each, feature cells, inclusive
    roi_h = (y2 - y1 + 1).clamp(min=1)  # (R,) degenerate boxes become 1 cell
    roi_w = (x2 - x1 + 1).clamp(min=1)
    bin_h = roi_h.to(dtype) / h  # (R,) in the input dtype, as the kernel does
    bin_w = roi_w.to(dtype) / w
    i = torch.arange(h, dtype=dtype, device=rois.device)
    j = torch.arange(w, dtype=dtype, device=rois.device)
    hstart = torch.floor(i * bin_h[:, None]).long() + y1[:, None]  # (R, h)
    hend = torch.ceil((i + 1) * bin_h[:, None]).long() + y1[:, None]
    wstart = torch.floor(j * bin_w[:, None]).long() + x1[:, None]  # (R, w)
    wend = torch.ceil((j + 1) * bin_w[:, None]).long() + x1[:, None]
    return (
        rois[:, 0].long(),
        hstart.clamp(0, height),
        hend.clamp(0, height),
        wstart.clamp(0, width),
        wend.clamp(0, width),
    )


# ----------------------------------------------------------------------------- public API


@torch.compiler.disable  # runs eagerly inside a compiled model (its tensor-valued Python control flow)
def roi_pool(
    input: Tensor, boxes, output_size, spatial_scale: float = 1.0, *, levels=None
) -> Tensor:
    """RoI max pooling (Fast R-CNN section 2.1), bitwise equal to ``torchvision.ops.roi_pool``.

    Notebook 04 builds and checks it; notebook 06's Fast R-CNN pools with it.

    Args:
        input (Tensor[N, C, H, W]): feature maps, float32 or float64 (float16 and bfloat16 are
            pooled in float32 and returned in their own dtype, the same bits).
        boxes (Tensor[R, 5] or list of N Tensor[P_i, 4]): (batch_index, x1, y1, x2, y2) RoIs, or
            per-image (x1, y1, x2, y2) boxes, in image pixels; same dtype and device as ``input``.
            A degenerate box (x2 < x1 or y2 < y1) is pooled as a 1-cell-wide/high RoI starting
            at x1 (y1), as torchvision does.
        output_size (int or (h, w)): the pooled size, e.g. 7 for VGG16 (0 gives an empty
            result, as torchvision).
        spatial_scale (float): image pixels -> feature cells (1/16 for VGG16 conv5).
        levels ((levels_y, levels_x) or None): the range-max table to use, ``(1, 1)`` for the
            direct max; None (the default) lets the cost model choose from the workload. The
            result is the same bits either way; only the time differs (benchmarks, tests).

    Returns:
        Tensor[R, C, h, w]: the pooled features; empty bins hold 0.
    """
    _check_input(input)
    if input.dtype in _LOW_PRECISION:
        pooled = roi_pool(input.float(), _float32(boxes), output_size, spatial_scale, levels=levels)
        return pooled.to(input.dtype)
    h, w = _output_size_pair(output_size)
    levels = _check_table_levels(levels)
    spatial_scale = _check_scale(spatial_scale)
    rois = _as_rois(input, boxes)  # (R, 5)
    N, C, H, W = input.shape
    if h == 0 or w == 0:  # as torchvision: an empty result, still part of the autograd graph
        return input.new_zeros((rois.shape[0], C, h, w)) + input.flatten()[:0].sum()
    batch_index, hstart, hend, wstart, wend = roi_bin_edges(rois, (h, w), spatial_scale, H, W)
    R = rois.shape[0]
    hstart = hstart[:, :, None].expand(R, h, w).reshape(R, h * w)  # (R, h*w), bins row-major
    hend = hend[:, :, None].expand(R, h, w).reshape(R, h * w)
    wstart = wstart[:, None, :].expand(R, h, w).reshape(R, h * w)
    wend = wend[:, None, :].expand(R, h, w).reshape(R, h * w)
    pooled = bin_max_pool(input, batch_index, hstart, hend, wstart, wend, levels)  # (R, C, h*w)
    return pooled.view(R, C, h, w)


class RoIPool(nn.Module):
    """RoI max pooling as a module (the "roi_pool5" layer); see :func:`roi_pool`.

    Notebook 06: Fast R-CNN's pool5 replacement.

    Args:
        output_size (int or (h, w)): pooled size, 7 for VGG16.
        spatial_scale (float): image pixels -> feature cells, 1/16 for VGG16 conv5.
    """

    def __init__(self, output_size, spatial_scale: float):
        super().__init__()
        self.output_size = _output_size_pair(output_size)
        self.spatial_scale = _check_scale(spatial_scale)

    def forward(self, input: Tensor, boxes) -> Tensor:
        """input (Tensor[N, C, H, W]), boxes (Tensor[R, 5] or list of Tensor[P_i, 4]) -> Tensor[R, C, h, w]."""
        return roi_pool(input, boxes, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


def spatial_pyramid_pool(
    input: Tensor, boxes, levels=(6, 3, 2, 1), spatial_scale: float = 1.0
) -> Tensor:
    """Spatial pyramid pooling of each RoI's window (SPPnet section 2.3).

    Notebook 05 builds SPPnet on it (notebook 04 shows it as RoI pooling at several sizes).

    Each level ``n`` is an ``n x n`` RoI max-pool of the same window (with :func:`roi_pool`'s
    conventions), flattened channel-major; the levels are concatenated in the given order. All
    levels are pooled in one pass over one table, and share the same backward.

    Args:
        input (Tensor[N, C, H, W]): feature maps.
        boxes (Tensor[R, 5] or list of N Tensor[P_i, 4]): RoIs in image pixels.
        levels (sequence of int): grid sizes, SPPnet's (6, 3, 2, 1) by default.
        spatial_scale (float): image pixels -> feature cells.

    Returns:
        Tensor[R, C * sum(n * n)]: equal to
        ``torch.cat([roi_pool(input, boxes, n, spatial_scale).flatten(1) for n in levels], 1)``.
    """
    _check_input(input)
    levels = _check_levels(levels)
    spatial_scale = _check_scale(spatial_scale)
    rois = _as_rois(input, boxes)  # (R, 5)
    N, C, H, W = input.shape
    R = rois.shape[0]
    parts = {"hs": [], "he": [], "ws": [], "we": []}
    for n in levels:
        batch_index, hs, he, ws, we = roi_bin_edges(rois, (n, n), spatial_scale, H, W)
        parts["hs"].append(hs[:, :, None].expand(R, n, n).reshape(R, n * n))
        parts["he"].append(he[:, :, None].expand(R, n, n).reshape(R, n * n))
        parts["ws"].append(ws[:, None, :].expand(R, n, n).reshape(R, n * n))
        parts["we"].append(we[:, None, :].expand(R, n, n).reshape(R, n * n))
    bins = [torch.cat(parts[key], dim=1) for key in ("hs", "he", "ws", "we")]  # (R, sum n*n) each
    pooled = bin_max_pool(input, batch_index, *bins, None)  # (R, C, sum n*n)
    pieces = pooled.split([n * n for n in levels], dim=2)  # (R, C, n*n) per level
    return torch.cat([p.reshape(R, C * p.shape[2]) for p in pieces], dim=1)  # (R, C * sum n*n)


class SpatialPyramidPool(nn.Module):
    """Spatial pyramid pooling as a module (SPPnet's "spp5" layer); see :func:`spatial_pyramid_pool`.

    Notebook 05: SPPnet's spp5 layer.
    """

    def __init__(self, levels=(6, 3, 2, 1), spatial_scale: float = 1.0):
        super().__init__()
        self.levels = _check_levels(levels)
        self.spatial_scale = _check_scale(spatial_scale)

    @property
    def num_bins(self) -> int:
        """Bins per channel, ``sum(n * n)`` (50 for (6, 3, 2, 1)): output width is C * num_bins."""
        return sum(n * n for n in self.levels)

    def forward(self, input: Tensor, boxes) -> Tensor:
        """input (Tensor[N, C, H, W]), boxes -> Tensor[R, C * num_bins]."""
        return spatial_pyramid_pool(input, boxes, self.levels, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, spatial_scale={self.spatial_scale}"


# ----------------------------------------------------------------------------- teaching version


def _round_half_away(v) -> int:
    """std::round of a float scalar, returned as a Python int (2.5 -> 3, -2.5 -> -3)."""
    v = float(v)  # exact for float16/32/64 scalars
    whole = math.trunc(v)
    return whole + (1 if v > 0 else -1) * (abs(v - whole) >= 0.5)


def roi_pool_loop(
    input: Tensor, boxes, output_size, spatial_scale: float = 1.0, return_argmax: bool = False
):
    """RoI max pooling written as the paper describes it: a loop over RoIs and bins (slow).

    Notebook 04 reads it first, then checks the vectorised :func:`roi_pool` against it.

    Same arguments and result as :func:`roi_pool`, for teaching and for checking the fast
    version. The scalar arithmetic runs in NumPy scalars of the input's dtype (float32 for
    float32 features), exactly as the reference C++ kernel does; the gradient flows through
    ordinary indexing, so autograd does eq. 4's routing.

    Returns:
        Tensor[R, C, h, w]; with ``return_argmax=True`` also Tensor[R, C, h, w] int64: the
        argmax cell of each output as ``y * W + x`` in its image's plane (torchvision's
        convention), -1 where nothing was pooled.
    """
    _check_input(input)
    if input.dtype in _LOW_PRECISION:  # as roi_pool: pooled in float32, returned in its dtype
        pooled = roi_pool_loop(
            input.float(), _float32(boxes), output_size, spatial_scale, return_argmax
        )
        if return_argmax:
            return pooled[0].to(input.dtype), pooled[1]
        return pooled.to(input.dtype)
    h, w = _output_size_pair(output_size)
    spatial_scale = _check_scale(spatial_scale)
    rois = _as_rois(input, boxes)
    N, C, H, W = input.shape
    if h == 0 or w == 0:  # as torchvision: an empty result, still part of the autograd graph
        out = input.new_zeros((rois.shape[0], C, h, w)) + input.reshape(-1)[:0].sum()
        argmax = torch.zeros((rois.shape[0], C, h, w), dtype=torch.long)
        return (out, argmax) if return_argmax else out
    real = {torch.float32: np.float32, torch.float64: np.float64}[input.dtype]
    scale = real(spatial_scale)  # the kernel's T spatial_scale
    corners = rois.cpu().numpy().astype(real)  # (R, 5)

    outputs, argmaxes = [], []
    for k in range(len(corners)):
        n = int(corners[k, 0])
        # 1. snap the corners to feature cells: std::round(x * spatial_scale), in dtype T
        x1, y1, x2, y2 = (_round_half_away(corners[k, c] * scale) for c in range(1, 5))
        # 2. the snapped RoI covers roi_h x roi_w cells, corners included (at least 1 x 1)
        roi_h, roi_w = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        bin_h, bin_w = real(roi_h) / real(h), real(roi_w) / real(w)  # float division in T
        for i in range(h):
            # 3. bin rows [floor(i * bin_h), ceil((i + 1) * bin_h)), shifted by y1, clipped to the map
            hs = min(max(int(np.floor(real(i) * bin_h)) + y1, 0), H)
            he = min(max(int(np.ceil(real(i + 1) * bin_h)) + y1, 0), H)
            for j in range(w):
                ws = min(max(int(np.floor(real(j) * bin_w)) + x1, 0), W)
                we = min(max(int(np.ceil(real(j + 1) * bin_w)) + x1, 0), W)
                if he <= hs or we <= ws:  # 4a. an empty bin outputs 0 and has no argmax
                    outputs.append(input.new_zeros(C))
                    argmaxes.append(torch.full((C,), -1, dtype=torch.long))
                    continue
                # 4b. max over the window, per channel; the first max in row-major order wins.
                window = input[n, :, hs:he, ws:we].reshape(C, -1)  # (C, a*b), row-major
                # NaN and values <= -FLT_MAX never win (the kernel starts at -FLT_MAX and uses >)
                can_win = window > -FLT_MAX
                best, where = window.detach().masked_fill(~can_win, -math.inf).max(dim=1)  # (C,)
                valid = best > -FLT_MAX
                value = window.gather(1, where[:, None])[:, 0]  # (C,), differentiable
                outputs.append(torch.where(valid, value, torch.full_like(value, -FLT_MAX)))
                cell = (hs + where // (we - ws)) * W + ws + where % (we - ws)  # (C,) y * W + x
                argmaxes.append(torch.where(valid, cell, -1).cpu())
    R = len(corners)
    if R == 0 or h * w == 0:  # still connected to input, so that backward() gives a zero gradient
        out = input.new_zeros(R, C, h, w) + input.reshape(-1)[:0].sum()
        return (out, torch.zeros(R, C, h, w, dtype=torch.long)) if return_argmax else out
    out = torch.stack(outputs).view(R, h, w, C).permute(0, 3, 1, 2).contiguous()  # (R, C, h, w)
    if return_argmax:
        return out, torch.stack(argmaxes).view(R, h, w, C).permute(0, 3, 1, 2).contiguous()
    return out


# ----------------------------------------------------------------------------- memory report


def roi_pool_workspace(
    input: Tensor, boxes, output_size, spatial_scale: float = 1.0
) -> dict[str, int]:
    """Bytes of the tensors :func:`roi_pool` allocates for one forward + backward (benchmark report).

    Notebook 04's benchmark (``bench_roi_pool``) prints it next to torchvision's memory.

    Returns:
        dict with ``values`` (the int32 order integers of a channel block, and where values
        are gathered rather than decoded the input copy plus two slots), ``table`` (one channel block of the
        sparse table), ``gather`` (running max keys, one lookup's keys, the decoded positions; one
        chunk), ``bins`` (per-bin geometry, lookup rows and their order), ``argmax`` (int32, kept
        for the backward), ``backward`` (the gradient buffer), ``extra`` (the peak beyond the
        output: forward or backward, whichever is larger), ``output`` and, for reference,
        ``torchvision_extra`` (its int32 argmax) and ``levels`` / ``block_channels`` (the table).
    """
    _check_input(input)
    h, w = _output_size_pair(output_size)
    rois = _as_rois(input, boxes)
    N, C, H, W = input.shape
    R = rois.shape[0]
    _, hs, he, ws, we = roi_bin_edges(rois, (h, w), _check_scale(spatial_scale), H, W)
    hs, he = hs[:, :, None].expand(R, h, w), he[:, :, None].expand(R, h, w)  # (R, h, w)
    ws, we = ws[:, None, :].expand(R, h, w), we[:, None, :].expand(R, h, w)
    return _workspace_sizes(input, hs, he, ws, we)
