"""The command line of training: ``python -m fastrcnn_lite.train`` (plan, train, resume, evaluate).

Data-flow stage: all of it, end to end, for long runs outside notebooks (``make voc``); taught in
``notebooks/08_full_voc_run.ipynb``::

    python -m fastrcnn_lite.train --profile full --data-root data/voc --year 2007 --split trainval \\
        --backbone vgg16 --weights vgg16.pth --iters 40000 --out runs/vgg16 [--resume] [--eval]

It first prints the plan and a timed estimate of each stage (:mod:`fastrcnn_lite.plan`; on CUDA
after the memory pre-flight of :mod:`fastrcnn_lite.preflight`); ``--plan`` stops there. Then it
writes ``<out>/checkpoint.pt`` (every ``--checkpoint-every`` iterations and at the end),
``<out>/metrics.jsonl`` (one JSON line per iteration), ``<out>/training.png`` (the curves) and,
with ``--eval``, ``<out>/eval.json`` and the VOC results files ``<out>/results/``.

A folder that already holds a run is refused unless ``--resume`` (continue it) or
``--overwrite`` (start over) says what to do. User errors end with one line and exit status 2
(:mod:`fastrcnn_lite.cli`); an out-of-memory error becomes such a line too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .checkpoint import write_json
from .cli import UserError
from .config import Config, resolve_path
from .data import load_datasets
from .evaluate import evaluate_detections
from .fast_rcnn import build_fast_rcnn, detect, resolve_device
from .plan import RunRequest, plan_run
from .pretrain import pretrained_backbone
from .proposal_cache import load_proposals
from .train import DEFAULT_TRAINABLE_FROM, amp_dtype, target_stats, train_fast_rcnn
from .train_state import check_run_folder, checkpoint_iteration
from .voc import voc_dir
from .voc_results import write_voc_results

__all__ = ["parse_args", "config_from_args", "request_from_args", "main"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The training command's arguments (``python -m fastrcnn_lite.train --help``).

    Notebook 08 reads its command line with it.
    """
    p = argparse.ArgumentParser(
        prog="python -m fastrcnn_lite.train",
        description="Train Fast R-CNN (resumable), optionally evaluate on the test split. "
        "Prints the plan and a timed estimate first.",
    )
    add = p.add_argument
    add("--profile", choices=("embedded", "full"), default="full",
        help="Config.embedded() or Config() (default full)")  # fmt: skip
    add("--data-root", help="folder holding VOCdevkit/ (default: the profile's data_root)")
    add("--year", help="VOC year (default: the profile's, 2007)")
    add("--split", help="training split (default trainval)")
    add("--test-split", help="split for --eval (default test)")
    add("--backbone", choices=("small", "alexnet", "vgg16"), help="default: the profile's")
    add("--weights", help="ImageNet weights for alexnet/vgg16: a local state-dict file or a "
        "torchvision name (IMAGENET1K_V1, downloads)")  # fmt: skip
    add("--init", choices=("pretrained", "scratch"), default="pretrained",
        help="start the backbone from pre-trained weights (default) or random ones")  # fmt: skip
    add("--trainable-from",
        help="first trained layer (default: conv3_1 for vgg16, conv2 for alexnet, conv3 for small)")  # fmt: skip
    add("--multiscale", action="store_true",
        help="train and test with the image pyramid (cfg.multiscale_scales, section 5.2)")  # fmt: skip
    add("--scale", type=int, nargs="+", help="shorter side(s) of training and test images "
        "(cfg.scales, cfg.test_scales; default: the profile's, 600)")  # fmt: skip
    add("--max-size", type=int, help="cap on the longer side (cfg.max_size; default 1000)")
    add("--rois-per-image", type=int, help="RoIs sampled per image (cfg.batch_size_per_image, 64)")
    add("--images-per-batch", type=int, help="images per SGD mini-batch (cfg.images_per_batch, 2)")
    add("--iters", type=int, help="SGD iterations (default: the profile's max_iters)")
    add(
        "--lr-steps",
        type=int,
        nargs="*",
        help="iterations where lr drops 10x (default: the profile's)",
    )
    add("--amp", action="store_true",
        help="mixed precision: float16 autocast and loss scaling (CUDA only; default off)")  # fmt: skip
    add("--out", required=True, help="output folder for checkpoint.pt, metrics.jsonl, eval.json")
    add("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    add("--overwrite", action="store_true",
        help="--out holds a run: delete it and start over (without it such a folder is refused)")  # fmt: skip
    add("--plan", action="store_true", help="print the plan and the timed estimate, then stop")
    add("--eval", action="store_true", help="evaluate on the test split after training (VOC07 mAP)")
    add(
        "--cache-dir",
        help="where proposals and pre-trained backbones are cached (default: the profile's)",
    )
    add(
        "--checkpoint-every",
        type=int,
        default=500,
        help="iterations between checkpoints (default 500)",
    )
    add("--device", help="cpu, cuda, cuda:1 (default auto: cuda when available)")
    add("--no-progress", action="store_true", help="no progress bar (plain log lines instead)")
    return p.parse_args(argv)


def config_from_args(args) -> Config:
    """The Config a command line asks for.

    Notebook 08 rebuilds the run's Config with it.
    """
    cfg = Config.embedded() if args.profile == "embedded" else Config()
    changes = {}
    for name, value in (("data_root", args.data_root), ("year", args.year), ("train_set", args.split),
                        ("test_set", args.test_split), ("cache_dir", args.cache_dir), ("device", args.device),
                        ("max_size", args.max_size), ("batch_size_per_image", args.rois_per_image),
                        ("images_per_batch", args.images_per_batch)):  # fmt: skip
        if value is not None:
            changes[name] = value
    if args.amp:
        changes["amp"] = True
    if args.backbone is not None and args.backbone != cfg.backbone:
        changes["backbone"] = args.backbone
        changes["trainable_from"] = DEFAULT_TRAINABLE_FROM[args.backbone]
    if args.trainable_from is not None:
        changes["trainable_from"] = args.trainable_from
    if args.multiscale:
        changes["scales"] = changes["test_scales"] = tuple(cfg.multiscale_scales)
    if args.scale is not None:
        changes["scales"] = changes["test_scales"] = tuple(args.scale)
    if args.iters is not None:
        changes["max_iters"] = args.iters
        if args.lr_steps is None:
            # Keep the profile's schedule shape: the step at the same fraction of training.
            changes["lr_steps"] = tuple(round(s * args.iters / cfg.max_iters) for s in cfg.lr_steps)
    if args.lr_steps is not None:
        changes["lr_steps"] = tuple(args.lr_steps)
    for name in ("iters", "checkpoint_every", "max_size", "rois_per_image", "images_per_batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1; got {value}.")
    return cfg.replace(**changes)


def request_from_args(args):
    """The :class:`~fastrcnn_lite.plan.RunRequest` of a command line.

    Notebook 08 (through :func:`main`).
    """
    return RunRequest(out=Path(args.out), init=args.init, weights=args.weights, resume=args.resume,
                      overwrite=args.overwrite, evaluate=args.eval,
                      checkpoint_every=args.checkpoint_every)  # fmt: skip


def evaluate_run(model, cfg: Config, test_ds, out: Path, iterations: int, train_seconds: float,
                 progress: bool = True) -> dict:  # fmt: skip
    """Detect the test split, write the VOC results files and ``eval.json``; returns the summary.

    Notebook 08 (``--eval``, through :func:`main`).
    """
    device = resolve_device(cfg)
    dtype = amp_dtype(cfg, device)
    test_props = load_proposals(test_ds, cfg, progress=progress)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        detections, seconds = detect(model, test_ds, test_props, cfg, progress=progress)
    write_voc_results(detections, test_ds.ids, test_ds.classes, out / "results", test_ds.image_set)
    targets = [test_ds.load_target(i) for i in range(len(test_ds))]
    result = evaluate_detections(detections, targets, test_ds.classes, metric="07")
    summary = {
        "metric": "07",
        "image_set": test_ds.image_set,
        "num_images": len(test_ds),
        "map": result["map"],  # NaN (no class with a test object) is written as null
        "ap": dict(result["ap"]),  # NaN for a class absent from the test images: null
        "seconds_per_image": seconds,
        "train_seconds": train_seconds,
        "iterations": iterations,
        "amp": cfg.amp,
    }
    write_json(out / "eval.json", summary)  # strict JSON, written atomically
    return json.loads((out / "eval.json").read_text())


def main(argv: list[str] | None = None) -> int:
    """Plan, train (or resume), evaluate. User errors raise :class:`~fastrcnn_lite.cli.UserError`.

    Notebook 08 runs the training command with it.
    """
    args = parse_args(argv)
    cfg = config_from_args(args)
    request = request_from_args(args)
    out, progress = request.out, not args.no_progress
    device = resolve_device(cfg)
    amp_dtype(cfg, device)  # --amp on a CPU: refused before anything else
    done = checkpoint_iteration(out / "checkpoint.pt") if args.resume else None
    if not args.plan:
        check_run_folder(out, args.resume, args.overwrite)
        if done is not None and done > cfg.max_iters:
            raise UserError(
                f"The run in {out} has already done {done} iterations, more than the "
                f"{cfg.max_iters} asked for (--iters): iterations cannot be undone. Pass --iters "
                f"{done} or more to continue it, or --overwrite to start over."
            )

    split_file = voc_dir(resolve_path(cfg.data_root), cfg.year) / "ImageSets" / "Main"
    if args.plan and not (split_file / f"{cfg.train_set}.txt").is_file():
        train_ds = test_ds = None  # the plan says where to download it; nothing is generated
    else:
        train_ds, test_ds = load_datasets(cfg)
    plan = plan_run(cfg, request, train_ds, test_ds)
    print(plan.format(), flush=True)
    if plan.memory_error is not None:
        raise plan.memory_error
    if args.plan:
        return 0

    train_props = load_proposals(train_ds, cfg, progress=progress)
    num_classes = len(train_ds.classes)
    backbone, means, stds = None, None, None
    if done is None:  # a resumed model gets every weight and statistic from its checkpoint
        if args.init == "pretrained":
            backbone = pretrained_backbone(cfg, train_ds, progress=progress, weights=args.weights)
        elif args.weights:
            raise UserError("--weights needs --init pretrained.")
        means, stds = target_stats(cfg, train_ds, train_props)
    torch.manual_seed(cfg.seed)
    model = build_fast_rcnn(cfg, num_classes, backbone, means, stds)

    def report(iteration: int, history: list[dict]) -> None:
        if not progress and (iteration % 20 == 0 or iteration == cfg.max_iters):
            r = history[-1]
            print(f"iter {iteration}/{cfg.max_iters} loss {r['loss']:.4f} (cls {r['loss_cls']:.4f}, "
                  f"box {r['loss_box']:.4f}) lr {r['lr']:g}", flush=True)  # fmt: skip

    try:
        result = train_fast_rcnn(model, train_ds, train_props, cfg, out_dir=out, resume=args.resume,
                                 progress=progress, checkpoint_every=args.checkpoint_every,
                                 callback=report, overwrite=args.overwrite)  # fmt: skip
        if result["resumed_from"] == cfg.max_iters:
            print(f"already trained: {out / 'checkpoint.pt'} holds all {cfg.max_iters} iterations; "
                  "nothing to train")  # fmt: skip
        else:
            print(f"trained {cfg.max_iters} iterations in {result['train_seconds']:.1f} s; "
                  f"checkpoint {out / 'checkpoint.pt'}")  # fmt: skip
        if args.eval:
            summary = evaluate_run(model, cfg, test_ds, out, cfg.max_iters,
                                   result["train_seconds"], progress)  # fmt: skip
            shown = "undefined" if summary["map"] is None else f"{summary['map']:.4f}"
            print(f"mAP (VOC07 11-point) on {test_ds.image_set}: {shown}; "
                  f"{summary['seconds_per_image']:.3f} s per image; {out / 'eval.json'}, "
                  f"results files in {out / 'results'}")  # fmt: skip
    except torch.cuda.OutOfMemoryError as e:
        raise UserError(" ".join(str(e).split())) from e
    return 0


if __name__ == "__main__":
    from .cli import run

    run(main)
