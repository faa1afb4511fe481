"""How the RoI pooling kernel plans its work: table size, lookups per bin, chunks, memory.

Data-flow stage: backbone feature map -> **region features** (-> heads). The kernel in
:mod:`fastrcnn_lite.roi_pool_kernel` builds a range-max table of ``levels_y x levels_x`` levels
and answers every bin with a few table lookups; this module decides how many levels, which table
rows each bin reads, which box of the map the table covers, and how channels and RoIs are cut
into blocks that stay cache-sized. Bin extents arrive as ``hstart, hend, wstart, wend``
(Tensor[R, B] int64, R RoIs, B bins each). Notebook 04 times the strategies it chooses between.

Choosing the strategy from the workload (measured)
--------------------------------------------------
The table costs a pass over the map per level, whatever the number of RoIs; the direct max
costs ``a * b`` lookups per bin. :func:`_choose_levels` evaluates every ``levels`` from
``(1, 1)`` to the full table with the model ``cost = lookups + _BUILD_COST * cells built``
(lookups summed over the bins; cells built = ``(levels_y * levels_x - 1)`` times the cells of
the window) and takes the cheapest. ``_BUILD_COST`` and the crossover were measured with
``python -m fastrcnn_lite.experiments.bench_roi_pool roi_pool_levels`` (forward CPU time with each table forced,
512 x 38 x 50 map, 7 x 7 bins, proposal-like boxes; 2 threads; a 2-core machine shared with
other jobs)::

    forward CPU ms, median of 5 (2026-12-02; machine load 4-7)
      4 RoIs, window 20x22: direct (1, 1)    2.6, fastest (2, 1)    2.5, model's (1, 2)    2.6
      8 RoIs, window 37x40: direct (1, 1)    8.0, fastest (3, 1)    7.6, model's (1, 2)   12.6
     16 RoIs, window 35x46: direct (1, 1)   18.2, fastest (2, 2)   14.6, model's (1, 2)   18.3
     40 RoIs, window 38x50: direct (1, 1)   34.2, fastest (2, 3)   18.8, model's (2, 2)   20.3
     80 RoIs, window 38x48: direct (1, 1)   51.3, fastest (3, 2)   30.8, model's (3, 2)   30.8
    128 RoIs (2 images)   : direct (1, 1)   85.0, fastest (2, 2)   54.3, model's (2, 2)   54.3
    170 RoIs, window 38x50: direct (1, 1)   90.4, fastest (3, 4)   40.8, model's (2, 3)   60.2
    400 RoIs, window 38x50: direct (1, 1)  190.3, fastest (2, 4)  109.8, model's (3, 3)  114.2
   2000 RoIs, window 38x50: direct (1, 1) 1050.1, fastest (3, 4)  472.1, model's (3, 3)  478.4
    least-squares fits of _BUILD_COST over all rows (lookups per cell built): 0.36 and 0.53 in
    two runs (CPU time); 0.89 and 0.39 from wall-clock runs at loads 1.5 and 7. Used: 0.45.

So the crossover: the direct max is the cheapest only for a handful of RoIs (4 here, where
every choice costs about the same, the window of the bins being small); from about 8 RoIs on
a table wins, by 1.8x at 40 RoIs and 2.2x at 2000. Between neighbouring table sizes the
measured differences are within the run-to-run noise of a shared machine (the 170-RoI row
ranks (2, 3), (3, 3), (3, 4) differently in every run), so the model's choice is as good as
this machine can tell. It ignores the fixed cost of each lookup pass (Python and OpenMP per
operation), which is why it prefers thin tables a little too often below 20 RoIs.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__: list[str] = []  # private helpers of roi_pool_kernel and roi_pool

_BUILD_COST = 0.45  # building one table level, per cell, in lookups (measured: see above)
_BLOCK_BYTES = 8 << 20  # table block and gather buffers: 8 MiB each (cache-sized, no page faults)


def _floor_log2(extent: Tensor) -> Tensor:
    """floor(log2(extent)) for integer extents >= 1 (0 for extent 0); exact for extents < 2**24."""
    return torch.frexp(extent.clamp(min=1).double())[1].long() - 1


def _blocks_per_bin(extent: Tensor, levels: int) -> tuple[Tensor, Tensor]:
    """How a table with ``levels`` levels along one axis covers a bin ``extent`` cells long.

    The block is ``2**k`` cells, ``k = min(floor(log2(extent)), levels - 1)``; ``ceil(extent / 2**k)``
    such blocks cover the bin (the last one overlapping its neighbour): 1 when the extent is a
    power of two, 2 when the table has a level up to it, more when it is capped.

    Returns:
        k (Tensor, like extent), count (Tensor, like extent; 0 for an empty extent).
    """
    k = _floor_log2(extent).clamp(max=levels - 1)
    return k, (extent + (1 << k) - 1) >> k


def _lookup_counts(tall: Tensor, wide: Tensor, levels_y: int, levels_x: int) -> Tensor:
    """Table lookups per bin (at least 1: an empty bin reads the empty-bin row)."""
    ny = _blocks_per_bin(tall, levels_y)[1]
    nx = _blocks_per_bin(wide, levels_x)[1]
    return (ny * nx).clamp(min=1)


def _choose_levels(tall: Tensor, wide: Tensor, rows: int) -> tuple[int, int]:
    """The table levels (levels_y, levels_x) that minimise the modelled forward time.

    Model, in units of one lookup (gathering one table row of all channels, then a maximum):
    ``lookups + _BUILD_COST * cells built``, where lookups are summed over the bins and building
    a level is a pass over the ``rows`` cells of the window. ``(1, 1)`` is the direct max (every
    cell of every bin is looked up, no table); the largest levels are the full range-max table
    (at most four lookups per bin). All candidates are evaluated at once (a matrix product).

    Args:
        tall, wide (Tensor[R, ...] int64): bin heights and widths in cells (0: empty).
        rows (int): cells of the window the table covers.
    """
    if tall.numel() == 0:
        return 1, 1
    high, broad = int(tall.max()), int(wide.max())
    max_y, max_x = high.bit_length() or 1, broad.bit_length() or 1
    # Bins of the same height and width cost the same: sum over a joint histogram of the extents
    # (a few hundred entries) instead of over every bin.
    pairs = tall.flatten() * (broad + 1) + wide.flatten()
    hist = torch.bincount(pairs, minlength=(high + 1) * (broad + 1)).view(high + 1, broad + 1)
    heights = torch.arange(high + 1, device=tall.device)
    widths = torch.arange(broad + 1, device=tall.device)
    ny = torch.stack(
        [_blocks_per_bin(heights, ly)[1] for ly in range(1, max_y + 1)]
    )  # (Y, heights)
    nx = torch.stack([_blocks_per_bin(widths, lx)[1] for lx in range(1, max_x + 1)])  # (X, widths)
    lookups = (ny.double() @ hist.double() @ nx.double().T).cpu()  # (Y, X) sums (exact: < 2**53)
    ly = torch.arange(1, max_y + 1, dtype=torch.float64)[:, None]  # (Y, 1)
    lx = torch.arange(1, max_x + 1, dtype=torch.float64)[None, :]  # (1, X)
    cost = lookups + _BUILD_COST * (ly * lx - 1) * rows  # (Y, X)
    best = int(cost.flatten().argmin())
    return best // max_x + 1, best % max_x + 1


def _model_terms(tall, wide, rows: int, levels) -> tuple[int, int]:
    """(lookups, cells built) of one candidate ``levels``: the inputs of the cost model."""
    levels_y, levels_x = levels
    lookups = int(_lookup_counts(tall, wide, levels_y, levels_x).sum())
    return lookups, (levels_y * levels_x - 1) * rows


def _lookup_rows(batch_index, hstart, hend, wstart, wend, shape, levels, empty_row):
    """Table rows each bin reads, in the order of a row-major scan of its blocks.

    Args:
        batch_index (Tensor[R]); hstart, hend, wstart, wend (Tensor[R, B]): bin extents.
        shape: (N, H, W); levels: (levels_y, levels_x) of the table; empty_row: the table row
            that holds the empty-bin key.

    Returns:
        rows (Tensor[Lmax, R*B] int64): lookup t of bin q is ``rows[t, q]`` for ``t < count[q]``
        (beyond, the entry is unused); count (Tensor[R*B] int64): lookups per bin, >= 1.
    """
    N, H, W = shape
    levels_y, levels_x = levels
    tall = (hend - hstart).clamp(min=0).flatten()  # (R*B,)
    wide = (wend - wstart).clamp(min=0).flatten()
    ky, ny = _blocks_per_bin(tall, levels_y)
    kx, nx = _blocks_per_bin(wide, levels_x)
    count = (ny * nx).clamp(min=1)  # (R*B,)
    lmax = int(count.max())
    t = torch.arange(lmax, device=tall.device)[:, None]  # (Lmax, 1)
    nx1 = nx.clamp(min=1)
    # block (r, q) of the ny x nx cover: its top row and left column, the last one flush with the bin
    top = hstart.flatten() + torch.minimum((t // nx1) << ky, tall - (1 << ky))  # (Lmax, R*B)
    left = wstart.flatten() + torch.minimum((t % nx1) << kx, wide - (1 << kx))
    image = batch_index[:, None].expand(hstart.shape).flatten()  # (R*B,)
    plane = ((ky * levels_x + kx) * N + image) * H  # (R*B,)
    rows = (plane + top) * W + left  # (Lmax, R*B)
    return rows.masked_fill_(((tall == 0) | (wide == 0))[None], empty_row), count


def _covered_box(hstart, hend, wstart, wend) -> tuple[int, int, int, int]:
    """Rows y0:y1 and columns x0:x1 of the smallest box that holds every non-empty bin.

    Args:
        hstart, hend, wstart, wend (Tensor[R, B] or Tensor[R, h, w]): bin extents, clipped
            to the map.

    Returns:
        (y0, y1, x0, x1); (0, 0, 0, 0) when every bin is empty.
    """
    nonempty = (hend > hstart) & (wend > wstart)  # (R, B)
    if not bool(nonempty.any()):
        return 0, 0, 0, 0
    big = torch.iinfo(hstart.dtype).max
    starts = torch.stack([hstart, wstart]).masked_fill(~nonempty, big).flatten(1).amin(dim=1)
    ends = torch.stack([hend, wend]).masked_fill(~nonempty, -1).flatten(1).amax(dim=1)
    (y0, x0), (y1, x1) = starts.tolist(), ends.tolist()
    return y0, y1, x0, x1


def _block_sizes(C: int, rows: int, num_levels: int, B: int) -> tuple[int, int]:
    """Channels per table block and RoIs per chunk, so that each stays near _BLOCK_BYTES."""
    channels = max(1, min(C, _BLOCK_BYTES // (8 * (num_levels * rows + 1))))
    rois = max(1, _BLOCK_BYTES // (8 * max(B, 1) * channels))
    return channels, rois


def _chunk_plan(count: Tensor, R: int, B: int, block_k: int):
    """Sort each chunk's bins by lookup count, most first, so that lookup t reads a prefix.

    Returns:
        order (Tensor[R*B]): the bins, chunk by chunk, each chunk sorted by count (descending);
        back (Tensor[R*B]): position of bin q within its chunk's sorted order (to undo the sort);
        reading (list of lists): ``reading[j][t]`` = bins of chunk j that make lookup t.
    """
    lmax = int(count.max())
    chunk = torch.arange(R * B, device=count.device) // (block_k * B)  # (R*B,)
    order = torch.argsort(chunk * (lmax + 1) + (lmax - count))  # chunk first, then count desc
    back = torch.empty_like(order)
    back[order] = torch.arange(R * B, device=count.device)
    back -= chunk * (block_k * B)  # position within the chunk
    num_chunks = int(chunk[-1]) + 1
    histogram = torch.bincount(chunk * (lmax + 1) + count, minlength=num_chunks * (lmax + 1))
    at_least = (
        histogram.view(num_chunks, lmax + 1).flip(1).cumsum(1).flip(1)
    )  # bins with count >= t
    return order, back, at_least[:, 1:].tolist()
