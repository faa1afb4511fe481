"""The vectorised RoI max-pooling kernel: order keys, a range-max table, the autograd Function.

Data-flow stage: backbone feature map -> **region features** (-> heads). The public functions
and the exact arithmetic this kernel reproduces (rounding, bins, ties, empty bins, backward)
are in :mod:`fastrcnn_lite.roi_pool`; it hands this module every bin's extent in feature
cells (``hstart, hend, wstart, wend``, Tensor[R, B]), and :class:`_BinMaxPool` returns the max
of every bin for every channel, Tensor[R, C, B], with eq. 4's argmax routing as backward.
Taught in ``notebooks/04_roi_pooling.ipynb`` (the strategies and their timings).

How it is vectorised (no loop over RoIs or bins)
------------------------------------------------
Every (value, position) pair is packed into one int64 *key*: the high 32 bits are an integer
with the same order as the float value (float32: its IEEE bits, with a negative value's
magnitude bits flipped so that larger magnitudes come lower, and -0.0 set equal to +0.0;
float64: its rank among the distinct values), the low 32 bits are ``0xFFFFFFFF - position``.
The max of keys is then the max value and, among equal values, the smallest position: exactly
the row-major first maximum.

A 2-D sparse table with ``levels_y x levels_x`` levels holds, for each level ``(ky, kx)``, the
max key of every ``2**ky x 2**kx`` block of cells. Along each axis a bin ``a`` cells long is
covered by ``ceil(a / 2**k)`` blocks of ``2**k`` cells, ``k = min(floor(log2 a), levels - 1)``,
the last one flush with the bin's end (max is idempotent: overlaps do no harm): one block when
``a`` is a power of two, two when the table reaches ``a``, more when it is capped. So
``levels = (1, 1)`` is the *direct max* (no table; every cell of a bin is one lookup), and the
full table answers any bin with at most four lookups, as in the textbook range-max query.
Each bin's lookups are rows of a ``(table rows, channels)`` matrix: ``index_select`` gathers
them for all channels at once, and a running ``maximum`` reduces them. Within a chunk of RoIs
the bins are sorted by their number of lookups (most first), so lookup ``t`` reads a prefix of
the bins; the sort is undone once per chunk. Keys and table are made only for the *window*,
the box of rows and columns that holds every non-empty bin (the whole map for many RoIs, a
small part of it for a few); positions stay those of the whole map.

The winning key's low word is the argmax position. Its high word, mapped back (the map is its
own inverse; for a map without negative values it *is* the bits), gives the pooled value:
no gather from the input. Where the order integer forgets the bits (a map holding -0.0, NaN,
-inf or -FLT_MAX, or float64), the values are gathered from a copy of the input at the argmax.
The backward (:class:`_BinMaxPool`) is one ``index_add_`` of the output gradients at the int32
argmax: on the CPU a single sequential loop in (RoI, channel, bin) order, torchvision's order of
additions, so the float sums are the same bits.

The table levels, the lookup rows of every bin, the chunks and the channel blocks are
planned in :mod:`fastrcnn_lite.roi_pool_plan` (with the measured cost model that picks the
table size from the workload).

The table is built and queried one block of channels at a time (Python loops over channel
blocks, chunks of RoIs and the lookups of a chunk, each fully vectorised), so that it stays a
few MiB: small enough for the cache, and for the allocator to reuse without page faults.
:func:`roi_pool_workspace` reports the memory; the peak beyond the output is the int32 argmax
(as torchvision's), the int32 order integers of the map, and about ``3 * _BLOCK_BYTES`` (plus
a copy of the input where the values are gathered).

The same code runs on CUDA. There, as in torchvision's CUDA kernel, ``index_add_`` adds with
atomics, so a cell that collects several gradients may differ in the last bit from run to run
(integer-valued gradients, as in the tests, are exact in any order). No CUDA timing has been
taken yet.
"""

from __future__ import annotations

import sys
from functools import partial

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .roi_pool_plan import (
    _block_sizes,
    _choose_levels,
    _chunk_plan,
    _covered_box,
    _lookup_counts,
    _lookup_rows,
)

FLT_MAX = 3.4028234663852886e38  # C's FLT_MAX: the reference kernel's starting value is -FLT_MAX
_SIGN_MASK = 0x7FFFFFFF
_ORD_NEG_FLT_MAX = -0x7F800000  # order integer of -FLT_MAX (float32 bits 0xFF7FFFFF)
_ORD_POS_INF = 0x7F800000  # order integer of +inf; larger ones are NaNs
_NEG_ZERO = -(1 << 31)  # int32 bits of -0.0
_LOW_BITS = 0xFFFFFFFF
_CANNOT_WIN = -(1 << 31)  # order integer of NaN and values <= -FLT_MAX: below everything


# ----------------------------------------------------------------------------- keys and table


def _fill_keys(keys: Tensor, ordered: Tensor, low_row_pos: Tensor, channel_pos: Tensor) -> None:
    """Write the level-0 keys of one channel block.

    Args:
        keys (Tensor[N*H*W, Cb] int64): destination, one row per feature cell.
        ordered (Tensor[N, Cb, H*W] int32): order integers of the values.
        low_row_pos (Tensor[N*H*W] int64): ``0xFFFFFFFF - (n*C*H*W + y*W + x)`` per cell.
        channel_pos (Tensor[Cb] int64): ``c * H*W`` per channel.
    """
    # key = order * 2**32 + (0xFFFFFFFF - position): the max key holds the max value and,
    # among equal values, the smallest position (the row-major first maximum).
    N, width, plane = ordered.shape
    keys = keys.view(N, plane, width)
    keys.copy_(ordered.transpose(1, 2))  # (N, H*W, Cb) int32 -> int64
    keys <<= 32  # (three vectorised passes beat one add with alpha=2**32)
    keys += low_row_pos.view(N, plane, 1)
    keys -= channel_pos


def _key(ordered: int, position: int) -> int:
    """The int64 key of (order integer, position)."""
    return ordered * (1 << 32) + (_LOW_BITS - position)


def _build_levels(table: Tensor, shape: tuple[int, int, int], levels_y: int, levels_x: int) -> None:
    """Fill levels (ky, kx) != (0, 0) of a sparse table of max keys in place.

    Args:
        table (Tensor[L * N*H*W + 1, Cb] int64): row ``((l * N + n) * H + y) * W + x`` holds the
            max key of the ``2**ky x 2**kx`` block with top-left cell (y, x), ``l = ky * levels_x
            + kx``; level 0 must be filled. Rows whose block sticks out of the map are never read.
        shape: (N, H, W).
    """
    N, H, W = shape
    rows, width = N * H * W, table.shape[1]
    row_y = table[: levels_y * levels_x * rows].view(levels_y, levels_x * N, H, W, width)
    for kx in range(1, levels_x):  # 1 x 2**kx blocks from two 1 x 2**(kx-1) blocks
        s = 1 << (kx - 1)
        if W > s:
            prev = row_y[0, (kx - 1) * N : kx * N]  # (N, H, W, Cb)
            cur = row_y[0, kx * N : (kx + 1) * N]
            torch.maximum(prev[:, :, : W - s], prev[:, :, s:], out=cur[:, :, : W - s])
    for ky in range(
        1, levels_y
    ):  # 2**ky x 2**kx blocks from two 2**(ky-1) x 2**kx blocks, all kx at once
        s = 1 << (ky - 1)
        if H > s:
            prev, cur = row_y[ky - 1], row_y[ky]  # (levels_x * N, H, W, Cb)
            torch.maximum(prev[:, : H - s], prev[:, s:], out=cur[:, : H - s])


# ----------------------------------------------------------------------------- autograd


class _BinMaxPool(torch.autograd.Function):
    """Max over rectangular bins of the feature map, with eq. 4's argmax routing as backward.

    forward(input (Tensor[N, C, H, W]), batch_index (Tensor[R]), hstart, hend, wstart, wend
    (Tensor[R, B]), levels ((levels_y, levels_x) or None: chosen by the cost model))
    -> Tensor[R, C, B].
    """

    @staticmethod
    def forward(ctx, input, batch_index, hstart, hend, wstart, wend, levels=None):
        pooled, argmax = _bin_max(input.detach(), batch_index, hstart, hend, wstart, wend, levels)
        ctx.save_for_backward(argmax)
        ctx.input_shape = tuple(input.shape)
        return pooled  # (R, C, B)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_pooled):
        (argmax,) = ctx.saved_tensors  # (R, C, B) int32
        N, C, H, W = ctx.input_shape
        M = N * C * H * W
        grad = grad_pooled.new_zeros(M + 2)  # slots M, M + 1 collect the gradient of "no argmax"
        # Add every output gradient at its argmax, in (RoI, channel, bin) order: per cell the
        # additions come in torchvision's CPU order, so the float sums are the same bits.
        # index_add_ of a 1-D tensor on the CPU is one sequential loop (int32 indices, no copy).
        grad.index_add_(0, argmax.view(-1), grad_pooled.reshape(-1))
        return grad[:M].view(N, C, H, W), None, None, None, None, None, None


def _order_block(bits: Tensor) -> Tensor:
    """Order integers of float32 values given as their int32 bits (a new tensor).

    A negative value's magnitude bits are flipped (``bits ^ 0x7FFFFFFF``): larger magnitudes
    become smaller integers, and every negative stays below every non-negative. The mapping is
    its own inverse (:func:`_order_to_bits`), except that -0.0 (which would become -1) is set
    to 0, equal to +0.0, by the caller. Branch-free bit ops (``torch.where`` on large int
    tensors is much slower).
    """
    sign = bits >> 31  # -1 for negative values, 0 otherwise
    sign &= _SIGN_MASK
    return sign.bitwise_xor_(bits)


def _order_to_bits(ordered: Tensor, out: Tensor, non_negative: bool = False) -> None:
    """Inverse of :func:`_order_block` (for inputs without -0.0): float32 bits into ``out``.

    ``non_negative``: every order integer is >= 0, so it already is the bits (a copy).
    """
    if non_negative:
        out.copy_(ordered)
        return
    sign = ordered >> 31
    sign &= _SIGN_MASK
    torch.bitwise_xor(ordered, sign, out=out)


def _rank_order(values: Tensor) -> Tensor:
    """Order integers for dtypes other than float32: the rank among the distinct values (a sort)."""
    valid = values > -FLT_MAX  # NaN compares False
    cleaned = torch.where(valid, values, torch.zeros((), dtype=values.dtype, device=values.device))
    ordered = torch.unique(cleaned, sorted=True, return_inverse=True)[1].to(
        torch.int32
    )  # -0.0 == +0.0
    return ordered.masked_fill_(~valid, _CANNOT_WIN)


def bin_max_pool(input: Tensor, batch_index, hstart, hend, wstart, wend, levels=None) -> Tensor:
    """Max of every bin for every channel, Tensor[R, C, B]: :class:`_BinMaxPool` when a gradient
    will flow back to ``input``, else :func:`_bin_max` without the argmax (values only).

    No notebook: ``roi_pool`` and ``spatial_pyramid_pool`` call it.
    """
    if torch.is_grad_enabled() and input.requires_grad:
        return _BinMaxPool.apply(input, batch_index, hstart, hend, wstart, wend, levels)
    return _bin_max(input, batch_index, hstart, hend, wstart, wend, levels, with_argmax=False)[0]


def _bin_max(input: Tensor, batch_index, hstart, hend, wstart, wend, levels=None, with_argmax=True):
    """Max and row-major first argmax of every bin, for every channel.

    Args:
        input (Tensor[N, C, H, W]); batch_index (Tensor[R]); hstart, hend, wstart, wend
        (Tensor[R, B]): bin extents; levels ((levels_y, levels_x) or None): table levels,
        None to let :func:`_choose_levels` pick them ((1, 1) is the direct max).
        with_argmax: False when no backward will need the argmax (inference). Then, where the
            keys' values would be decoded anyway (float32 without -0.0, NaN, -inf or -FLT_MAX),
            the table holds the float values themselves: the same max, half the bytes of the
            int64 keys and no key arithmetic. The argmax returned is then None.

    Returns:
        pooled (Tensor[R, C, B]): the max (0 for an empty bin, -FLT_MAX when no value could win).
        argmax (Tensor[R, C, B] int32): ``((n * C + c) * H + y) * W + x`` of the winning cell, M
        for an empty bin, M + 1 when no value could win; M = N*C*H*W.
    """
    N, C, H, W = input.shape
    R, B = hstart.shape
    plane = H * W
    M = N * C * plane
    if M + 2 >= (1 << 31):
        raise ValueError(f"roi_pool supports feature maps of fewer than 2**31 elements; got {M}.")
    device = input.device
    if R * C * B == 0:  # nothing to pool (R = 0)
        return input.new_zeros(R, C, B), torch.empty(R, C, B, dtype=torch.int32, device=device)
    # Only cells that some bin covers can win: the keys and the table are made for the box of
    # rows y0:y1 and columns x0:x1 that holds every non-empty bin (all of the map for many RoIs,
    # a small part for a few); positions stay those of the whole map.
    y0, y1, x0, x1 = _covered_box(hstart, hend, wstart, wend)
    window = input[:, :, y0:y1, x0:x1]  # (N, C, Hc, Wc), a view
    Hc, Wc = y1 - y0, x1 - x0
    rows = N * Hc * Wc
    # Fast path: the pooled values are decoded from the winning keys' high words. Not where the
    # order integer forgets the bits: -0.0 (== +0.0), and the cells that cannot win; there the
    # values are gathered from a copy of the input at the argmax.
    decode, non_negative, has_negative_zero, order = False, False, False, None
    if rows * C == 0:  # every bin is empty
        all_valid, order = True, torch.empty(N, C, 0, dtype=torch.int32, device=device)
    else:
        lowest = float(window.min())  # NaN propagates: then lowest > -FLT_MAX is False
        all_valid = lowest > -FLT_MAX  # NaN, -inf and -FLT_MAX can never win
        if input.dtype == torch.float32:
            bits = window.view(torch.int32)  # (N, C, Hc, Wc)
            has_negative_zero = bool(bits.min() == _NEG_ZERO)  # -0.0 is the smallest int32
            decode = all_valid and not has_negative_zero
            non_negative = lowest >= 0  # ReLU features: the order integers are the bits
        else:  # ranks among the distinct values, for the whole window at once (a sort)
            order = _rank_order(window.reshape(-1)).view(N, C, Hc * Wc)
    arange = partial(torch.arange, device=device, dtype=torch.int64)
    cell = (arange(N) * C * plane)[:, None, None] + (arange(y0, y1) * W)[:, None] + arange(x0, x1)
    low_row_pos = _LOW_BITS - cell.view(rows)  # (rows,) for cell (n, y, x) of the window
    channel_pos = arange(C) * plane  # (C,)

    tall = (hend - hstart).clamp(min=0)  # (R, B)
    wide = (wend - wstart).clamp(min=0)
    levels_y, levels_x = _choose_levels(tall, wide, rows) if levels is None else levels
    levels_y, levels_x = min(levels_y, Hc.bit_length() or 1), min(levels_x, Wc.bit_length() or 1)
    num_levels = levels_y * levels_x
    empty_row = num_levels * rows
    lookups, count = _lookup_rows(
        batch_index,
        hstart - y0,
        hend - y0,
        wstart - x0,
        wend - x0,
        (N, Hc, Wc),
        (levels_y, levels_x),
        empty_row,
    )  # (Lmax, R*B), (R*B,)
    values_only = decode and not with_argmax  # a float table: max of values, no positions
    block_c, block_k = _block_sizes(C, rows, num_levels, B)
    order_bins, back, reading = _chunk_plan(count, R, B, block_k)
    lookups = lookups[:, order_bins]  # (Lmax, R*B): chunk by chunk, bins with most lookups first
    chunk = min(R, block_k) * B * block_c
    table_type = input.dtype if values_only else torch.int64
    table_buf = torch.empty((empty_row + 1) * block_c, dtype=table_type, device=device)
    best_buf = torch.empty(chunk, dtype=table_type, device=device)
    read_buf = torch.empty(chunk, dtype=table_type, device=device)  # one lookup; then unsorted
    low_word = 0 if sys.byteorder == "little" else 1  # the int32 half of a key holding ~position
    argmax = None if values_only else torch.empty(R, C, B, dtype=torch.int32, device=device)
    pooled = input.new_empty(R, C, B)
    chunks = []  # (k0, k1, [table rows of lookup t for the prefix of bins that make it])
    for j, k0 in enumerate(range(0, R, block_k)):
        s0 = k0 * B
        reads = [lookups[0, s0 : min(k0 + block_k, R) * B]]
        reads += [lookups[t, s0 : s0 + m] for t, m in enumerate(reading[j][1:], start=1) if m]
        chunks.append((k0, min(k0 + block_k, R), reads))
    for c0 in range(0, C, block_c):  # channel blocks keep the table small (cache, no page faults)
        c1 = min(c0 + block_c, C)
        width = c1 - c0
        table = table_buf[: (empty_row + 1) * width].view(empty_row + 1, width)
        if values_only:  # level 0 is the values, (N, Hc*Wc, Cb); an empty bin reads 0
            cells = window[:, c0:c1].reshape(N, width, Hc * Wc).transpose(1, 2)
            table[:rows].view(N, Hc * Wc, width).copy_(cells)
            table[empty_row] = 0.0
        elif order is None:  # float32: order integers of this block of channels
            block = _order_block(bits[:, c0:c1].reshape(N, width, Hc * Wc))  # (N, Cb, Hc*Wc)
            if has_negative_zero:
                block.masked_fill_(block == -1, 0)  # -0.0 == +0.0
            if not all_valid:
                invalid = (block <= _ORD_NEG_FLT_MAX) | (block > _ORD_POS_INF)
                block.masked_fill_(invalid, _CANNOT_WIN)
        else:
            block = order[:, c0:c1]  # (N, Cb, Hc*Wc)
        if not values_only:
            _fill_keys(table[:rows], block, low_row_pos, channel_pos[c0:c1])
        if not all_valid:  # cells that can never win: below every key, slot M + 1 (-FLT_MAX)
            invalid = (block == _CANNOT_WIN).transpose(1, 2)  # (N, Hc*Wc, Cb)
            table[:rows].view(N, Hc * Wc, width).masked_fill_(invalid, _key(_CANNOT_WIN, M + 1))
        if not values_only:
            table[empty_row] = _key(0, M)  # an empty bin: value 0 (slot M)
        _build_levels(table, (N, Hc, Wc), levels_y, levels_x)
        for k0, k1, reads in chunks:  # chunks of RoIs bound the buffers
            s0, s1 = k0 * B, k1 * B
            best = best_buf[: (s1 - s0) * width].view(s1 - s0, width)
            torch.index_select(table, 0, reads[0], out=best)  # (b, Cb) first lookup
            for rows_t in reads[1:]:  # bins sorted: lookup t reads a prefix of them
                m = rows_t.shape[0]
                read = read_buf[: m * width].view(m, width)
                torch.index_select(table, 0, rows_t, out=read)
                torch.maximum(best[:m], read, out=best[:m])  # (m, Cb) running max key
            # Undo the sort; the max key's low word is ~position (0xFFFFFFFF - position), its
            # high word the order integer of the value.
            unsorted = read_buf[: (s1 - s0) * width].view(s1 - s0, width)
            torch.index_select(best, 0, back[s0:s1], out=unsorted)  # (b, Cb)
            if values_only:
                pooled[k0:k1, c0:c1].copy_(unsorted.view(k1 - k0, B, width).transpose(1, 2))
                continue
            words = unsorted.view(torch.int32).view(k1 - k0, B, width, 2)
            torch.bitwise_not(
                words[..., low_word], out=argmax[k0:k1, c0:c1].transpose(1, 2)
            )  # (k, Cb, B) positions
            if decode:
                _order_to_bits(
                    words[..., 1 - low_word],
                    pooled[k0:k1, c0:c1].view(torch.int32).transpose(1, 2),
                    non_negative,
                )  # (k, Cb, B) values
    if not decode:  # gather: the input, then 0 (slot M) and -FLT_MAX (slot M + 1)
        values = torch.cat([input.reshape(-1), input.new_tensor([0.0, -FLT_MAX])])  # (M + 2,)
        torch.index_select(values, 0, argmax.view(-1), out=pooled.view(-1))  # (R*C*B,)
    return pooled, argmax


# ----------------------------------------------------------------------------- memory report


def _workspace_sizes(
    input: Tensor, hs: Tensor, he: Tensor, ws: Tensor, we: Tensor
) -> dict[str, int]:
    """Bytes :func:`_bin_max` and the backward allocate (see :func:`fastrcnn_lite.roi_pool.roi_pool_workspace`).

    Args:
        input (Tensor[N, C, H, W]); hs, he, ws, we (Tensor[R, h, w] int64): bin extents, clipped
            to the map.
    """
    N, C, H, W = input.shape
    R, h, w = hs.shape
    B = h * w
    tall, wide = (he - hs).clamp(min=0), (we - ws).clamp(min=0)
    y0, y1, x0, x1 = _covered_box(hs, he, ws, we)
    rows = N * (y1 - y0) * (x1 - x0)  # the window of the map that the bins cover
    levels_y, levels_x = _choose_levels(tall, wide, rows)
    lmax = int(_lookup_counts(tall, wide, levels_y, levels_x).max()) if R else 1
    block_c, block_k = _block_sizes(C, rows, levels_y * levels_x, B)
    item = input.element_size()
    chunk = min(R, block_k) * B * block_c
    # The values are decoded from the keys unless the map holds -0.0 or values that cannot win
    # (or is float64): then a copy of the input is gathered from.
    negative_zero = bool(((input == 0) & input.signbit()).any())
    gathers = input.dtype != torch.float32 or negative_zero or not bool((input > -FLT_MAX).all())
    sizes = {
        # the input copy where values are gathered; order integers (one channel block, or all
        # of the window for float64's ranks)
        "values": (N * C * H * W + 2) * item * gathers
        + rows * (block_c if input.dtype == torch.float32 else C) * 4,
        "table": (levels_y * levels_x * rows + 1) * block_c * 8,
        "gather": chunk * (8 + 8 + 4),  # running max keys, one lookup's keys, decoded positions
        "bins": R * B * (lmax + 8) * 8,  # lookup rows (before and after the sort), order, counts
        "argmax": R * C * B * 4,
        "backward": (N * C * H * W + 2) * item,  # the gradient buffer
    }
    forward = sum(sizes[key] for key in ("values", "table", "gather", "bins", "argmax"))
    sizes["extra"] = max(forward, sizes["argmax"] + sizes["backward"])  # peak beyond the output
    sizes["output"] = R * C * B * item
    sizes["torchvision_extra"] = R * C * B * 4
    sizes["levels"] = levels_y * levels_x
    sizes["block_channels"] = block_c
    return sizes
