"""The benchmark command, one subcommand each (timings are reported, never asserted in tests).

    python -m fastrcnn_lite.bench roi_pool              # our RoI pooling vs torchvision's kernel
    python -m fastrcnn_lite.bench roi_pool --quick      # small and fast (the notebook's version)
    python -m fastrcnn_lite.bench roi_pool_levels       # forward time of each table size: the crossover
    python -m fastrcnn_lite.bench detectors [ARGS...]   # R-CNN vs SPPnet vs Fast R-CNN test time

What each measures is in ``fastrcnn_lite/experiments/bench_roi_pool.py`` and
``fastrcnn_lite/experiments/bench_detectors.py``.

Shared machines: ``roi_pool`` and ``roi_pool_levels`` set ``OMP_WAIT_POLICY=PASSIVE`` (unless you
set OMP_WAIT_POLICY yourself) by re-executing the command before OpenMP starts: with the default
active spin-wait, an OpenMP thread that another process has pushed off its core stalls every
multi-threaded operator.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from .experiments import bench_detectors, bench_roi_pool


def _detectors_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m fastrcnn_lite.bench detectors",
        description=bench_detectors.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--proposals",
        type=int,
        default=2000,
        help="proposals per image (default 2000, as in the paper)",
    )
    p.add_argument(
        "--backbone",
        choices=bench_detectors.BACKBONES,
        default="vgg16",
        help="vgg16 (L, default), alexnet (S), small (the course's)",
    )
    p.add_argument(
        "--scale", type=int, default=600, help="shorter side of the test image (default 600)"
    )
    p.add_argument(
        "--max-size", type=int, default=1000, help="cap on the longer side (default 1000)"
    )
    p.add_argument("--images", type=int, default=2, help="test images (default 2)")
    p.add_argument(
        "--rcnn-sample",
        type=int,
        default=64,
        help="proposals R-CNN is timed on, scaled linearly (default 64)",
    )
    p.add_argument(
        "--rcnn-batch",
        type=int,
        default=32,
        help="warped crops per R-CNN forward pass (default 32)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed runs per system; the median is reported (default 3)",
    )
    p.add_argument(
        "--svd-ranks",
        type=int,
        nargs=2,
        metavar=("FC6", "FC7"),
        help="truncated SVD ranks (default 1024 256; 64 32 for small)",
    )
    p.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (default 2: this machine's cores)"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    return p.parse_args(argv)


def _detectors_main(argv: list[str]) -> int:
    """``python -m fastrcnn_lite.bench detectors [options]``."""
    args = _detectors_args(argv)
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1; got {args.threads}.")
    torch.set_num_threads(args.threads)
    try:
        bench_detectors.bench_detectors(
            backbone=args.backbone, proposals=args.proposals, scale=args.scale, max_size=args.max_size,
            images=args.images, rcnn_sample=args.rcnn_sample, repeats=args.repeats, rcnn_batch=args.rcnn_batch,
            device=args.device, svd_ranks=tuple(args.svd_ranks) if args.svd_ranks else None,
        )  # fmt: skip
    except ValueError as e:
        print(f"python -m fastrcnn_lite.bench detectors: error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m fastrcnn_lite.bench roi_pool | roi_pool_levels | detectors [options]``.

    No notebook: the benchmark command (notebooks 04 and 07 call the benchmarks' functions,
    ``bench_roi_pool`` and ``bench_detectors``, directly). Returns the exit status.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["detectors"]:
        # argparse.REMAINDER drops options that come first (`detectors --proposals 2000` fails),
        # so everything after "detectors" goes to _detectors_main untouched.
        return _detectors_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m fastrcnn_lite.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("roi_pool", help="RoI pooling: ours vs torchvision vs the teaching loop")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per contender (median)")
    p.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (this machine has 2 cores)"
    )
    p.add_argument("--loop-rois", type=int, default=4, help="RoIs the slow loop version runs on")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run")
    p.add_argument(
        "--quick", action="store_true", help="C=64 and 3 runs: the notebook's small version"
    )
    lv = sub.add_parser(
        "roi_pool_levels", help="forward time of each table size: the direct/table crossover"
    )
    lv.add_argument(
        "--rois",
        type=int,
        nargs="+",
        default=[4, 8, 16, 40, 80, 128, 170, 400, 2000],
        help="RoI counts to time (128 runs on two images, the training batch)",
    )
    lv.add_argument("--repeats", type=int, default=5, help="timed runs per table size (median)")
    lv.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    sub.add_parser(
        "detectors", help="detector test times (fastrcnn_lite.experiments.bench_detectors)"
    )
    args = parser.parse_args(argv)

    if args.command == "roi_pool_levels":
        bench_roi_pool.bench_roi_pool_levels(
            rois=args.rois, repeats=args.repeats, threads=args.threads
        )
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here.")
    torch.set_num_threads(args.threads)
    if args.quick:
        bench_roi_pool.bench_roi_pool(repeats=3, loop_rois=2, channels=64, device=args.device)
    else:
        bench_roi_pool.bench_roi_pool(
            repeats=args.repeats, loop_rois=args.loop_rois, device=args.device
        )
    return 0


if __name__ == "__main__":
    if (
        sys.argv[1:2] in (["roi_pool"], ["roi_pool_levels"]) and "OMP_WAIT_POLICY" not in os.environ
    ):  # set before OpenMP starts
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", GOMP_SPINCOUNT="10000")
        os.execve(sys.executable, [sys.executable, "-m", "fastrcnn_lite.bench", *sys.argv[1:]], env)
    from fastrcnn_lite.cli import run

    run(main)
