"""Training Fast R-CNN: SGD as in the paper, mixed precision on CUDA, checkpoints that survive a kill.

Data-flow stage: **losses -> parameter updates** (the single training stage of Fast R-CNN,
paper section 2.3), taught in ``notebooks/06_fast_rcnn.ipynb``; the long command-line run is
``notebooks/08_full_voc_run.ipynb``. One iteration (:func:`train_step`):

    ImageSampler -> N = 2 (image, scale, flip) -> resize/flip image, gt boxes and proposals
    -> FastRCNN(images, proposals, targets): sample R / N RoIs per image, multi-task loss
    -> backward -> SGD step

SGD as the paper's Caffe solver and prototxt set it up (``models/VGG16/*/solver.prototxt``,
``train.prototxt`` in rbgirshick/fast-rcnn): momentum 0.9, weight decay 0.0005, a step
schedule (lr 0.001 for 30k iterations, then 0.0001 for 10k on VOC07). Every layer's weights
have ``lr_mult: 1, decay_mult: 1`` and its biases ``lr_mult: 2, decay_mult: 0``: biases learn at
twice the learning rate and are **not** weight-decayed. Frozen layers (conv1, conv2 of VGG16)
have ``lr_mult: 0``, here ``requires_grad = False`` (:func:`~fastrcnn_lite.backbones.freeze_below`).
The small backbone's BatchNorm scales (Caffe's networks had none) are treated like biases for
decay (none) but keep the base lr.

**Mixed precision** (``cfg.amp``, ``--amp``; off by default): the forward pass runs under
``torch.autocast`` in float16 on CUDA (convolutions and fc layers on the tensor cores; softmax,
losses and RoI pooling stay in float32) and a ``GradScaler`` scales the loss so small float16
gradients do not underflow; the weights, the optimiser and the update stay float32. On a CPU it
is refused: measured on this course's 2-core machine (an AVX-512 / AMX CPU), AlexNet's
convolutions forward and backward at 600 x 800 took 0.46 s in float32, 1.1-1.4 s under bfloat16
autocast and 71 s under float16 autocast, so it would only slow a CPU run down.

On the CPU an interrupted and resumed run ends with weights bitwise identical to an
uninterrupted one (``tests/test_train.py``); what a run keeps on disk, and why a folder that
holds a run is never overwritten silently, is :mod:`fastrcnn_lite.train_state`; the trained
model cached for the notebooks, :mod:`fastrcnn_lite.train_cache`. The command line
(``python -m fastrcnn_lite.train``) is :mod:`fastrcnn_lite.train_cli`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .backbones import build_sgd
from .cli import UserError
from .config import Config
from .curves import LiveLossPlot, plot_losses, write_training_curves
from .fast_rcnn import OOM_HINT, FastRCNN, resolve_device
from .progress import tqdm
from .sampling import ImageSampler, regression_target_stats
from .train_state import (
    TRAINING_FIELDS,
    check_run_folder,
    clear_run,
    load_training_checkpoint,
    read_metrics,
    save_training_checkpoint,
    set_rng_state,
    truncate_metrics,
)
from .transforms import hflip, resize, scale_factor
from .voc import gt_for_training

__all__ = [
    "TRAINING_FIELDS",
    "DEFAULT_TRAINABLE_FROM",
    "build_optimizer",
    "lr_at",
    "set_lr",
    "amp_dtype",
    "grad_scaler",
    "training_example",
    "train_step",
    "train_fast_rcnn",
    "save_training_checkpoint",
    "load_training_checkpoint",
    "read_metrics",
    "plot_losses",
    "LiveLossPlot",
]

# Where fine-tuning starts (section 4.5): VGG16 from conv3_1; S and M (AlexNet here) from conv2;
# the small network trains every layer.
DEFAULT_TRAINABLE_FROM = {"small": "conv3", "alexnet": "conv2", "vgg16": "conv3_1"}


# --- SGD --------------------------------------------------------------------------------------
def build_optimizer(model: nn.Module, cfg: Config) -> torch.optim.SGD:
    """SGD with the paper's per-layer settings: weights (lr, decay), biases (2 x lr, no decay).

    Notebook 06 (inside :func:`train_fast_rcnn`).

    :func:`~fastrcnn_lite.backbones.build_sgd` with ``cfg.lr``, ``cfg.momentum``,
    ``cfg.weight_decay`` and ``cfg.bias_lr_factor``: three parameter groups, each with
    ``lr_factor`` (multiplied by the scheduled lr): ``weights`` (lr x 1, weight decay),
    ``biases`` (lr x ``cfg.bias_lr_factor``, no decay) and ``norm`` (BatchNorm scales: lr x 1,
    no decay). Frozen parameters are left out.
    """
    return build_sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.bias_lr_factor)


def lr_at(iteration: int, cfg: Config) -> float:
    """The step schedule: ``cfg.lr`` times ``cfg.lr_gamma`` for every step in ``cfg.lr_steps`` already passed.

    Notebook 06 (inside :func:`train_fast_rcnn`).
    """
    return cfg.lr * cfg.lr_gamma ** sum(iteration >= step for step in cfg.lr_steps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set each parameter group's lr to ``lr`` times its ``lr_factor`` (of :func:`build_optimizer`).

    No notebook: the training loop, :mod:`fastrcnn_lite.plan` and the profiling experiment call it.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_factor"]


# --- mixed precision --------------------------------------------------------------------------
def amp_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of training and detection: float16 when ``cfg.amp`` on CUDA, else None (float32).

    Notebook 08 (the training command's ``--amp``); also :func:`train_fast_rcnn`.

    float16 (not bfloat16) because every CUDA GPU with tensor cores runs it; the
    :func:`grad_scaler` keeps its small gradients from underflowing.

    Raises:
        UserError: ``cfg.amp`` on a device other than CUDA (see the module docstring for why).
    """
    if not cfg.amp:
        return None
    if device.type != "cuda":
        raise UserError(
            f"--amp (cfg.amp, mixed precision) runs on CUDA only; this run's device is {device}. "
            "On a CPU float16 and bfloat16 autocast are slower than float32 (see "
            "fastrcnn_lite.train). Drop --amp, or run on a GPU (--device cuda)."
        )
    return torch.float16


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A loss scaler, enabled for float16 autocast only (disabled it passes the loss and step through).

    Notebook 06 (inside :func:`train_fast_rcnn`; enabled with ``cfg.amp`` only).
    """
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


# --- data -------------------------------------------------------------------------------------
def training_example(
    dataset, proposals: list[Tensor], index: int, scale: int, flip: bool, cfg: Config
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """One image of a mini-batch, rescaled (shorter side ``scale``) and maybe flipped, with its boxes.

    Notebook 06 builds a mini-batch with it.

    Difficult objects are dropped unless ``cfg.use_difficult`` (the paper's code drops them);
    at most ``cfg.proposals_per_image`` proposals are kept.

    Returns:
        (image Tensor[3, H', W'], proposals Tensor[P, 4], target dict with ``boxes``
        Tensor[G, 4] and ``labels`` Tensor[G]), boxes in the pixels of the new image.
    """
    image, target = dataset[index]
    gt_boxes, gt_labels = gt_for_training(target, cfg.use_difficult)
    props = proposals[index][: cfg.proposals_per_image].to(gt_boxes.dtype)
    boxes = torch.cat([gt_boxes, props])  # (G + P, 4): transformed together
    max_size = cfg.max_size if len(cfg.scales) == 1 else cfg.multiscale_max_size
    image, boxes = resize(image, boxes, scale_factor(tuple(image.shape[-2:]), scale, max_size))
    if flip:
        image, boxes = hflip(image, boxes)
    return image, boxes[len(gt_boxes) :], {"boxes": boxes[: len(gt_boxes)], "labels": gt_labels}


def train_step(
    model: FastRCNN,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    examples: list[tuple[Tensor, Tensor, dict[str, Tensor]]],
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> dict[str, Tensor]:
    """One SGD iteration on a mini-batch of :func:`training_example` outputs.

    Notebook 06 (each iteration of :func:`train_fast_rcnn`).

    The forward pass runs under ``torch.autocast(dtype)`` when ``dtype`` is set (mixed
    precision); the backward pass and the update go through ``scaler``.

    Returns:
        the model's loss dict (``loss``, ``loss_cls``, ``loss_box``: 0-dim tensors).
    """
    images = [e[0].to(device) for e in examples]
    props = [e[1].to(device) for e in examples]
    targets = [{k: v.to(device) for k, v in e[2].items()} for e in examples]
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        losses = model(images, props, targets)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(losses["loss"]).backward()
    scaler.step(optimizer)
    scaler.update()
    return losses


# --- the loop ---------------------------------------------------------------------------------
def train_fast_rcnn(
    model: FastRCNN,
    train_ds,
    proposals: list[Tensor],
    cfg: Config,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    checkpoint_every: int = 500,
    callback: Callable[[int, list[dict]], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """Train ``model`` for ``cfg.max_iters`` SGD iterations (hierarchical sampling, multi-task loss).

    Notebook 06 trains with it; notebook 08 through the training command.

    Args:
        model: a :class:`~fastrcnn_lite.fast_rcnn.FastRCNN` (its box_means / box_stds set).
        train_ds: the training :class:`~fastrcnn_lite.voc.VOCDataset`.
        proposals (list of Tensor[P_i, 4]): one per training image, original pixels.
        cfg: scales, sampling, SGD and schedule settings; ``cfg.seed`` seeds everything;
            ``cfg.amp`` turns on mixed precision (CUDA only).
        out_dir: where ``checkpoint.pt``, ``metrics.jsonl`` and ``training.png`` go (None: keep
            nothing on disk).
        resume: continue from ``<out_dir>/checkpoint.pt`` if it exists (model, optimiser, loss
            scaler, schedule, sampler and RNG states), otherwise start afresh.
        overwrite: ``out_dir`` holds a run and ``resume`` is False: delete it and start over.
            Without it such a folder is refused (a finished run is never lost by mistake).
        checkpoint_every: iterations between checkpoints (one is always written at the end);
            the curves in ``training.png`` are redrawn with each checkpoint.
        callback: called as ``callback(iteration, history)`` after every iteration (e.g.
            :class:`~fastrcnn_lite.curves.LiveLossPlot`); an exception raised there stops
            training like a kill would.

    Returns:
        dict with ``history`` (one dict per iteration of this call: ``iter``, ``loss``,
        ``loss_cls``, ``loss_box``, ``lr``), ``train_seconds`` (all calls together when resumed),
        ``iterations`` and ``resumed_from``.

    Raises:
        UserError: ``out_dir`` holds a run and neither ``resume`` nor ``overwrite`` is set; the
            checkpoint is past ``cfg.max_iters``; a checkpoint of another configuration.
    """
    if len(proposals) != len(train_ds):
        raise ValueError(
            f"Need one proposal tensor per training image: {len(train_ds)} images, {len(proposals)} tensors."
        )
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1 iteration; got {checkpoint_every}.")
    device = resolve_device(cfg)
    dtype = amp_dtype(cfg, device)
    model.to(device)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    optimizer = build_optimizer(model, cfg)
    scaler = grad_scaler(device, dtype)
    sampler = ImageSampler(
        len(train_ds), cfg.images_per_batch, tuple(cfg.scales), cfg.flip_prob, cfg.seed
    )
    start_iter, train_seconds, past = 0, 0.0, []
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / "checkpoint.pt" if out is not None else None
    metrics_path = out / "metrics.jsonl" if out is not None else None
    curves_path = out / "training.png" if out is not None else None
    if out is not None:
        check_run_folder(out, resume, overwrite)
        if overwrite:
            clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
        if resume and ckpt_path.is_file():
            state = load_training_checkpoint(ckpt_path, cfg, model)
            start_iter = int(state["iteration"])
            if start_iter > cfg.max_iters:
                raise UserError(
                    f"The run in {out} has already done {start_iter} iterations, more than the "
                    f"{cfg.max_iters} asked for (--iters, cfg.max_iters): iterations cannot be undone. "
                    f"Pass --iters {start_iter} or more to continue it, or --overwrite to start over."
                )
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            sampler.load_state_dict(state["sampler"])
            set_rng_state(state["rng"])
            train_seconds = float(state["train_seconds"])
            past = truncate_metrics(metrics_path, start_iter)
            print(f"resuming from {ckpt_path} at iteration {start_iter}")
        else:
            truncate_metrics(metrics_path, 0)  # killed before its first checkpoint: start afresh
    classes = getattr(train_ds, "classes", None)

    history: list[dict] = []
    model.train()
    log = metrics_path.open("a") if metrics_path is not None else None
    bar = tqdm(total=cfg.max_iters, initial=start_iter, desc="Fast R-CNN", disable=not progress)
    smoothed = None
    try:
        for it in range(start_iter, cfg.max_iters):
            tick = time.perf_counter()
            lr = lr_at(it, cfg)
            set_lr(optimizer, lr)
            examples = [
                training_example(train_ds, proposals, i, s, f, cfg)
                for i, s, f in sampler.next_batch()
            ]
            try:
                losses = train_step(model, optimizer, scaler, examples, device, dtype)
            except torch.cuda.OutOfMemoryError as e:
                raise torch.cuda.OutOfMemoryError(
                    OOM_HINT.format(where=f"at training iteration {it + 1}")
                ) from e
            train_seconds += time.perf_counter() - tick
            record = {"iter": it + 1, "lr": lr, **{k: v.item() for k, v in losses.items()}}
            if not np.isfinite(record["loss"]):
                raise FloatingPointError(
                    f"The loss became {record['loss']} at iteration {it + 1} (lr {lr}). Lower cfg.lr, or check the "
                    "proposals and boxes for degenerate (zero-size) boxes."
                )
            history.append(record)
            if log is not None:
                log.write(json.dumps(record) + "\n")
            smoothed = (
                record["loss"] if smoothed is None else 0.95 * smoothed + 0.05 * record["loss"]
            )
            bar.update(1)
            if (it + 1) % 10 == 0 or it + 1 == cfg.max_iters:
                bar.set_postfix(loss=f"{smoothed:.3f}", lr=f"{lr:g}")
            if ckpt_path is not None and (
                (it + 1) % checkpoint_every == 0 or it + 1 == cfg.max_iters
            ):
                log.flush()
                save_training_checkpoint(ckpt_path, model, optimizer, sampler, it + 1, cfg,
                                         train_seconds, classes, scaler)  # fmt: skip
                write_training_curves(past + history, curves_path)
            if callback is not None:
                callback(it + 1, history)
    finally:
        bar.close()
        if log is not None:
            log.close()
    model.eval()
    return {
        "history": history,
        "train_seconds": train_seconds,
        "iterations": cfg.max_iters,
        "resumed_from": start_iter,
    }


def target_stats(
    cfg: Config, train_ds, proposals: list[Tensor]
) -> tuple[Tensor, Tensor] | tuple[None, None]:
    """Per-class means / stds of the training set's regression targets (None, None if not ``cfg.normalize_targets``).

    Notebook 06 computes the regression-target statistics with it.
    """
    if not cfg.normalize_targets:
        return None, None
    targets = []
    for i in range(len(train_ds)):
        boxes, labels = gt_for_training(train_ds.load_target(i), cfg.use_difficult)
        targets.append({"boxes": boxes, "labels": labels})
    props = [p[: cfg.proposals_per_image] for p in proposals]
    return regression_target_stats(props, targets, len(train_ds.classes), cfg.fg_iou_thresh)


if __name__ == "__main__":  # python -m fastrcnn_lite.train: the command of train_cli.py
    from .cli import run
    from .train_cli import main

    run(main)
