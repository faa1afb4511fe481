"""RoI pooling benchmarks: ours against torchvision's kernel, and the table-size crossover.

Run through the command ``python -m fastrcnn_lite.bench roi_pool`` / ``roi_pool_levels``
(``fastrcnn_lite/bench.py``; timings are reported, never asserted in tests).

Data-flow stage: region features (``roi_pool``, Fast R-CNN section 2.1; the paper's time
breakdown gives roi_pool5 17 ms of VGG16's 320 ms per image). ``roi_pool`` times
:func:`fastrcnn_lite.roi_pool.roi_pool` against ``torchvision.ops.roi_pool`` (and the slow
teaching loop on a few RoIs) on three Fast R-CNN workloads: training (N = 2 images, 128 RoIs),
testing (N = 1 image, 2000 RoIs) and the embedded profile's testing (N = 1 image, 170 RoIs: about
the proposals selective search finds on its images), all on VGG16 conv5 maps (C = 512, 38 x 50
for a 600 x 800 image, spatial_scale 1/16), 7 x 7 bins, so that only the RoI count differs. Its
last line is ``roi_pool fwd+bwd vs torchvision: train <x>x, test <y>x, embedded <z>x``.

``roi_pool_levels`` times the forward pass with every table size forced, from the direct max
``(1, 1)`` (no table) to the full range-max table, for several RoI counts, marks the fastest and
the one :func:`fastrcnn_lite.roi_pool.roi_pool` chooses, and fits the build cost of its cost
model (the figures are quoted in ``fastrcnn_lite/roi_pool_plan.py``).

Shared machines: run from the command line, ``roi_pool`` sets ``OMP_WAIT_POLICY=PASSIVE``
(unless you set OMP_WAIT_POLICY yourself) by re-executing itself. With the default active spin-wait,
an OpenMP thread that another process has pushed off its core stalls every multi-threaded
operator: on a 2-core machine with load 8 we measured a 10x slowdown of the (many-operator)
vectorised RoI pooling and 1.3x of torchvision's (single-threaded) kernel. Both contenders run
under the same policy; the header prints it and the load average.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial

import torch
import torchvision  # the reference kernel (C++/CUDA)
from torch import Tensor

from .. import roi_pool_plan as plan  # the cost model, which roi_pool_levels measures
from ..boxes import boxes_to_rois
from ..roi_pool import roi_bin_edges, roi_pool, roi_pool_loop, roi_pool_workspace
from .workloads import proposal_like_boxes

# The workloads: VGG16 conv5 of a 600 x 800 image (stride 16 -> 38 x 50).
WORKLOADS = {
    "train": {"num_images": 2, "num_rois": 128},  # Fast R-CNN mini-batch: 2 images x 64 RoIs
    "test": {"num_images": 1, "num_rois": 2000},  # ~2000 selective-search proposals per image
    "embedded": {"num_images": 1, "num_rois": 170},  # the embedded set's ~170 proposals per image
}
IMAGE_SIZE = (600, 800)  # (height, width) in pixels
FEATURE_SIZE = (38, 50)  # ceil(600 / 16), ceil(800 / 16)
CHANNELS = 512
OUTPUT_SIZE = (7, 7)
SPATIAL_SCALE = 1 / 16


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def _time_interleaved(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    device: torch.device,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds of each function, run in turn (A B C A B C ...) after one warm-up each.

    Interleaving spreads background load evenly over the contenders. ``clock`` is wall-clock
    time by default; ``time.process_time`` (CPU seconds of all threads) counts the work alone,
    not the waits for cores that other processes hold.
    """

    def run(fn):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = clock()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return clock() - start

    for fn in fns.values():
        run(fn)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(run(fn))
    return samples


def _fwd_bwd(pool, input: Tensor, rois: Tensor) -> Callable[[], None]:
    def step():
        out = pool(input, rois, OUTPUT_SIZE, SPATIAL_SCALE)
        out.backward(torch.ones_like(out))
        input.grad = None

    return step


def _cuda_peak_extra(pool, input: Tensor, rois: Tensor) -> int:
    """Peak CUDA memory of one forward + backward beyond the input and the output."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = pool(input, rois, OUTPUT_SIZE, SPATIAL_SCALE)
    out.backward(torch.ones_like(out))
    input.grad = None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base - 2 * out.numel() * out.element_size()


def bench_roi_pool(
    repeats: int = 7,
    loop_rois: int = 4,
    channels: int = CHANNELS,
    device: str = "cpu",
    threads: int | None = None,
    print_fn=print,
) -> dict[str, dict[str, float]]:
    """Time roi_pool (ours), torchvision.ops.roi_pool and roi_pool_loop on the three workloads.

    Notebook 04 runs its quick version (the command ``python -m fastrcnn_lite.bench roi_pool``).

    Args:
        repeats: timed runs per contender (median reported), interleaved.
        loop_rois: RoIs the teaching loop runs on; its time is scaled to the full RoI count.
        channels: C (512 for VGG16 conv5; fewer for a quick run).
        device: "cpu" or "cuda".
        threads: torch CPU threads for the run (restored afterwards); None keeps the current number.

    Returns:
        {workload: {"ours_fwd", "tv_fwd", "loop_fwd", "ours_fb", "tv_fb", "loop_fb",
        "ratio_fwd", "ratio_fb", "ours_extra_bytes", "tv_extra_bytes", "exact"}}, times in ms.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _bench_roi_pool(repeats, loop_rois, channels, torch.device(device), print_fn)
    finally:
        torch.set_num_threads(previous)


def _bench_roi_pool(repeats, loop_rois, channels, dev, print_fn):
    results = {}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print_fn(
        f"roi_pool benchmark on {dev.type} ({torch.get_num_threads()} CPU threads, {os.cpu_count()} cores, "
        f"load average {load:.1f}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}), "
        f"torch {torch.__version__}, torchvision {torchvision.__version__}; "
        f"median wall-clock ms of {repeats} interleaved runs"
    )
    for name, spec in WORKLOADS.items():
        N, R = spec["num_images"], spec["num_rois"]
        g = torch.Generator().manual_seed(1)
        features = torch.randn(N, channels, *FEATURE_SIZE, generator=g).to(dev)  # (N, C, H, W)
        boxes_per_image = [proposal_like_boxes(R // N, seed=i).to(dev) for i in range(N)]
        rois = boxes_to_rois(boxes_per_image)  # (R, 5)
        x = features.clone().requires_grad_()

        # Bitwise check of outputs and input gradients on this workload.
        grad_out = torch.randn(R, channels, *OUTPUT_SIZE, generator=g).to(dev)
        x_tv = features.clone().requires_grad_()
        ours = roi_pool(x, rois, OUTPUT_SIZE, SPATIAL_SCALE)
        ref = torchvision.ops.roi_pool(x_tv, rois, OUTPUT_SIZE, SPATIAL_SCALE)
        ours.backward(grad_out)
        ref.backward(grad_out)
        exact = torch.equal(ours, ref) and torch.equal(x.grad, x_tv.grad)
        x.grad = None
        del ours, ref, x_tv, grad_out

        few = rois[:: max(1, R // loop_rois)][:loop_rois]  # the loop runs on a subsample
        scale = R / len(few)
        fwd = _time_interleaved(
            {
                "ours": partial(roi_pool, features, rois, OUTPUT_SIZE, SPATIAL_SCALE),
                "tv": partial(torchvision.ops.roi_pool, features, rois, OUTPUT_SIZE, SPATIAL_SCALE),
            },
            repeats,
            dev,
        )
        fb = _time_interleaved(
            {
                "ours": _fwd_bwd(roi_pool, x, rois),
                "tv": _fwd_bwd(torchvision.ops.roi_pool, x, rois),
            },
            repeats,
            dev,
        )
        loop_fwd = _time_interleaved(
            {"loop": partial(roi_pool_loop, features, few, OUTPUT_SIZE, SPATIAL_SCALE)}, 1, dev
        )
        loop_fb = _time_interleaved({"loop": _fwd_bwd(roi_pool_loop, x, few)}, 1, dev)

        memory = roi_pool_workspace(features, rois, OUTPUT_SIZE, SPATIAL_SCALE)
        ours_extra, tv_extra, memory_note = memory["extra"], memory["torchvision_extra"], "computed"
        if dev.type == "cuda":
            ours_extra = _cuda_peak_extra(roi_pool, x, rois)
            tv_extra = _cuda_peak_extra(torchvision.ops.roi_pool, x, rois)
            memory_note = "torch.cuda.max_memory_allocated"
        r = {
            "ours_fwd": _median_ms(fwd["ours"]),
            "tv_fwd": _median_ms(fwd["tv"]),
            "loop_fwd": _median_ms(loop_fwd["loop"]) * scale,
            "ours_fb": _median_ms(fb["ours"]),
            "tv_fb": _median_ms(fb["tv"]),
            "loop_fb": _median_ms(loop_fb["loop"]) * scale,
            "ours_extra_bytes": ours_extra,
            "tv_extra_bytes": tv_extra,
            "exact": exact,
        }
        r["ratio_fwd"] = r["ours_fwd"] / r["tv_fwd"]
        r["ratio_fb"] = r["ours_fb"] / r["tv_fb"]
        results[name] = r
        mib = 2.0**-20
        print_fn(
            f"\n{name}: N={N}, C={channels}, {FEATURE_SIZE[0]}x{FEATURE_SIZE[1]} map, {R} RoIs, "
            f"{OUTPUT_SIZE[0]}x{OUTPUT_SIZE[1]} bins, spatial_scale 1/16"
        )
        print_fn(f"  {'':34s}{'forward ms':>12s}{'fwd+bwd ms':>12s}")
        print_fn(
            f"  {'ours (fastrcnn_lite.roi_pool)':34s}{r['ours_fwd']:12.1f}{r['ours_fb']:12.1f}"
        )
        print_fn(f"  {'torchvision.ops.roi_pool':34s}{r['tv_fwd']:12.1f}{r['tv_fb']:12.1f}")
        label = f"loop ({len(few)} of {R} RoIs, x{scale:g})"
        print_fn(f"  {label:34s}{r['loop_fwd']:12.0f}{r['loop_fb']:12.0f}")
        print_fn(f"  {'ours / torchvision':34s}{r['ratio_fwd']:11.2f}x{r['ratio_fb']:11.2f}x")
        print_fn(
            f"  outputs and input gradients bitwise equal to torchvision: {'yes' if exact else 'NO'}\n"
            f"  peak extra memory ({memory_note}): ours {ours_extra * mib:.1f} MiB"
            + (
                f" (argmax {memory['argmax'] * mib:.1f}, order integers {memory['values'] * mib:.1f}, "
                f"table block {memory['table'] * mib:.1f} = {memory['levels']} levels x "
                f"{memory['block_channels']} channels, gather {memory['gather'] * mib:.1f})"
                if dev.type != "cuda"
                else ""
            )
            + f", torchvision {tv_extra * mib:.1f} MiB (its int32 argmax); output {memory['output'] * mib:.1f} MiB"
        )
    print_fn(
        "\nroi_pool fwd+bwd vs torchvision: "
        + ", ".join(f"{name} {r['ratio_fb']:.2f}x" for name, r in results.items())
    )
    return results


def bench_roi_pool_levels(
    rois: Sequence[int] = (4, 8, 16, 40, 80, 128, 170, 400, 2000),
    repeats: int = 5,
    channels: int = CHANNELS,
    threads: int | None = None,
    print_fn=print,
) -> dict[int, dict]:
    """Forward time of roi_pool with each table size forced: where the direct max stops paying.

    No notebook: the command ``python -m fastrcnn_lite.bench roi_pool_levels``.

    One image (two for 128 RoIs, the training batch), proposal-like boxes, the 38 x 50 map and
    7 x 7 bins of :func:`bench_roi_pool`. For each RoI count every ``levels`` from ``(1, 1)``
    (direct max, no table) to the largest useful table is timed in CPU time of the process
    (``time.process_time``: the work, without the waits for cores other processes hold, which
    on a shared machine swamp the differences; median of ``repeats`` interleaved runs). The
    model's inputs (lookups, table cells built) are printed beside, and a least-squares fit over
    all rows (a per-workload constant plus a cost per lookup and per built cell) gives the build
    cost in lookups, the model's ``_BUILD_COST``.

    Returns:
        {num_rois: {"times": {levels: ms}, "chosen": levels, "fastest": levels}} plus the key
        "build_cost" (float).
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        height, width = FEATURE_SIZE
        print_fn(
            f"roi_pool forward CPU ms by table levels ({torch.get_num_threads()} threads, "
            f"C={channels}, {height}x{width} map, 7x7 bins; median of {repeats} interleaved runs)"
        )
        results: dict = {}
        fit_rows, fit_times, workloads = [], [], []
        for R in rois:
            N = 2 if R == 128 else 1
            g = torch.Generator().manual_seed(1)
            x = torch.randn(N, channels, height, width, generator=g)  # (N, C, H, W)
            boxes = boxes_to_rois([proposal_like_boxes(R // N, seed=i) for i in range(N)])
            _, hs, he, ws, we = roi_bin_edges(boxes, OUTPUT_SIZE, SPATIAL_SCALE, height, width)
            h, w = OUTPUT_SIZE
            hs, he = hs[:, :, None].expand(R, h, w), he[:, :, None].expand(R, h, w)  # (R, h, w)
            ws, we = ws[:, None, :].expand(R, h, w), we[:, None, :].expand(R, h, w)
            tall, wide = (he - hs).clamp(min=0), (we - ws).clamp(min=0)
            y0, y1, x0, x1 = plan._covered_box(hs, he, ws, we)
            rows = N * (y1 - y0) * (x1 - x0)  # the window the table covers
            max_y, max_x = int(tall.max()).bit_length(), int(wide.max()).bit_length()
            candidates = [(ly, lx) for ly in range(1, max_y + 1) for lx in range(1, max_x + 1)]
            samples = _time_interleaved(
                {
                    c: partial(roi_pool, x, boxes, OUTPUT_SIZE, SPATIAL_SCALE, levels=c)
                    for c in candidates
                },
                repeats,
                torch.device("cpu"),
                clock=time.process_time,
            )
            times = {c: _median_ms(samples[c]) for c in candidates}
            chosen = plan._choose_levels(tall, wide, rows)
            fastest = min(times, key=times.get)
            print_fn(
                f"\n{R} RoIs, N={N}, window {y1 - y0}x{x1 - x0}:"
                "  levels   lookups  cells built  CPU ms"
            )
            for c in candidates:
                terms = plan._model_terms(tall, wide, rows, c)
                mark = (" fastest" if c == fastest else "") + (" chosen" if c == chosen else "")
                print_fn(f"  {str(c):>38s}{terms[0]:10d}{terms[1]:13d}{times[c]:8.1f}{mark}")
                fit_rows.append(terms)
                fit_times.append(times[c])
                workloads.append(R)
            ratio = times[chosen] / times[fastest]
            print_fn(
                f"  direct (1, 1) {times[(1, 1)]:.1f} ms, best table {fastest} "
                f"{times[fastest]:.1f} ms; chosen {chosen} is {ratio:.2f}x the fastest"
            )
            results[R] = {"times": times, "chosen": chosen, "fastest": fastest}
        # ms = a * lookups + b * cells built + (one constant per workload), least squares
        names = sorted(set(workloads))
        design = torch.tensor(
            [
                list(t) + [float(k == n) for n in names]
                for t, k in zip(fit_rows, workloads, strict=True)
            ],
            dtype=torch.float64,
        )
        target = torch.tensor(fit_times, dtype=torch.float64)[:, None]
        a, b = torch.linalg.lstsq(design, target).solution[:2, 0].tolist()
        results["build_cost"] = b / a
        print_fn(
            f"\nfit: {a * 1e3:.3f} us per lookup, {b * 1e3:.3f} us per table cell built: "
            f"build cost {b / a:.2f} lookups per cell (roi_pool uses {plan._BUILD_COST})"
        )
        return results
    finally:
        torch.set_num_threads(previous)
