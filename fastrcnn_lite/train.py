"""Training Fast R-CNN: SGD as in the paper, checkpoints that survive a kill, exact resume, a CLI.

Data-flow stage: **losses -> parameter updates** (the single training stage of Fast R-CNN,
paper section 2.3). One iteration:

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

Checkpoints hold the model, the optimiser (momentum buffers), the iteration (hence the lr
schedule), the :class:`~fastrcnn_lite.sampling.ImageSampler` state and the python / numpy /
torch RNG states, written with :func:`~fastrcnn_lite.checkpoint.atomic_save` and read with
``torch.load(..., weights_only=True)``. On the CPU an interrupted and resumed run ends with
weights bitwise identical to an uninterrupted one (``tests/test_train.py``).

Command line, for long runs outside notebooks::

    python -m fastrcnn_lite.train --profile full --data-root data/voc --year 2007 --split trainval \\
        --backbone vgg16 --weights vgg16.pth --iters 40000 --out runs/vgg16 [--resume] [--eval]

writes ``<out>/checkpoint.pt`` (every ``--checkpoint-every`` iterations and at the end),
``<out>/metrics.jsonl`` (one JSON line per iteration) and, with ``--eval``, ``<out>/eval.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .checkpoint import atomic_save, cache_path, load_checkpoint
from .config import Config
from .fast_rcnn import OOM_HINT, FastRCNN, build_fast_rcnn, detect, resolve_device
from .progress import tqdm
from .sampling import ImageSampler, regression_target_stats
from .transforms import hflip, resize, scale_factor

__all__ = [
    "TRAINING_FIELDS",
    "DEFAULT_TRAINABLE_FROM",
    "build_optimizer",
    "lr_at",
    "training_example",
    "train_fast_rcnn",
    "save_training_checkpoint",
    "load_training_checkpoint",
    "load_fast_rcnn",
    "load_or_train_fast_rcnn",
    "read_metrics",
    "LiveLossPlot",
    "main",
]

# The config fields that change what training computes: a checkpoint written with other values
# cannot be resumed under this config (max_iters may grow; test-time fields may change freely).
TRAINING_FIELDS = (
    "year", "train_set", "use_difficult", "scales", "max_size", "multiscale_max_size",
    "proposal_mode", "proposals_per_image", "proposal_min_size", "backbone", "trainable_from",
    "cls_init_std", "bbox_init_std", "images_per_batch", "batch_size_per_image", "positive_fraction",
    "fg_iou_thresh", "bg_iou_thresh_hi", "bg_iou_thresh_lo", "flip_prob", "box_loss_weight",
    "normalize_targets", "lr", "momentum", "weight_decay", "bias_lr_factor", "lr_steps", "lr_gamma", "seed",
)  # fmt: skip

# Where fine-tuning starts (section 4.5): VGG16 from conv3_1; S and M (AlexNet here) from conv2;
# the small network trains every layer.
DEFAULT_TRAINABLE_FROM = {"small": "conv3", "alexnet": "conv2", "vgg16": "conv3_1"}

CHECKPOINT_KIND = "fastrcnn_lite.train"


# --- SGD --------------------------------------------------------------------------------------
def build_optimizer(model: nn.Module, cfg: Config) -> torch.optim.SGD:
    """SGD with the paper's per-layer settings: weights (lr, decay), biases (2 x lr, no decay).

    Three parameter groups, each with ``lr_factor`` (multiplied by the scheduled lr):
    ``weights`` (lr x 1, weight decay), ``biases`` (lr x ``cfg.bias_lr_factor``, no decay) and
    ``norm`` (BatchNorm scales: lr x 1, no decay). Frozen parameters are left out.
    """
    groups = {"weights": [], "biases": [], "norm": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith("bias"):
            groups["biases"].append(p)
        elif p.dim() == 1:
            groups["norm"].append(p)
        else:
            groups["weights"].append(p)
    settings = {
        "weights": (1.0, cfg.weight_decay),
        "biases": (cfg.bias_lr_factor, 0.0),
        "norm": (1.0, 0.0),
    }
    param_groups = [
        {
            "params": params,
            "name": name,
            "lr_factor": settings[name][0],
            "lr": cfg.lr * settings[name][0],
            "weight_decay": settings[name][1],
        }  # fmt: skip
        for name, params in groups.items()
        if params
    ]
    return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum)


def lr_at(iteration: int, cfg: Config) -> float:
    """The step schedule: ``cfg.lr`` times ``cfg.lr_gamma`` for every step in ``cfg.lr_steps`` already passed."""
    return cfg.lr * cfg.lr_gamma ** sum(iteration >= step for step in cfg.lr_steps)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_factor"]


# --- data -------------------------------------------------------------------------------------
def training_example(
    dataset, proposals: list[Tensor], index: int, scale: int, flip: bool, cfg: Config
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """One image of a mini-batch, rescaled (shorter side ``scale``) and maybe flipped, with its boxes.

    Difficult objects are dropped unless ``cfg.use_difficult`` (the paper's code drops them);
    at most ``cfg.proposals_per_image`` proposals are kept.

    Returns:
        (image Tensor[3, H', W'], proposals Tensor[P, 4], target dict with ``boxes``
        Tensor[G, 4] and ``labels`` Tensor[G]), boxes in the pixels of the new image.
    """
    image, target = dataset[index]
    keep = (
        torch.ones_like(target["labels"], dtype=torch.bool)
        if cfg.use_difficult
        else ~target["difficult"]
    )
    gt_boxes, gt_labels = target["boxes"][keep], target["labels"][keep]
    props = proposals[index][: cfg.proposals_per_image].to(gt_boxes.dtype)
    boxes = torch.cat([gt_boxes, props])  # (G + P, 4): transformed together
    max_size = cfg.max_size if len(cfg.scales) == 1 else cfg.multiscale_max_size
    image, boxes = resize(image, boxes, scale_factor(tuple(image.shape[-2:]), scale, max_size))
    if flip:
        image, boxes = hflip(image, boxes)
    return image, boxes[len(gt_boxes) :], {"boxes": boxes[: len(gt_boxes)], "labels": gt_labels}


# --- checkpoints ------------------------------------------------------------------------------
def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },  # fmt: skip
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _model_identity(model: FastRCNN) -> dict:
    return {"num_classes": model.num_classes}


def save_training_checkpoint(
    path: str | Path,
    model: FastRCNN,
    optimizer: torch.optim.Optimizer,
    sampler: ImageSampler,
    iteration: int,
    cfg: Config,
    train_seconds: float,
    classes: tuple[str, ...] | None = None,
) -> Path:
    """Write everything a resume needs, atomically (a kill mid-write keeps the previous file)."""
    state = {
        "kind": CHECKPOINT_KIND,
        "iteration": iteration,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "sampler": sampler.state_dict(),
        "rng": _rng_state(),
        "config": dataclasses.asdict(cfg),
        "num_classes": model.num_classes,
        "classes": list(classes) if classes is not None else None,
        "train_seconds": train_seconds,
    }
    return atomic_save(state, path)


def check_config(
    saved: dict, cfg: Config, path: str | Path, fields: tuple[str, ...] = TRAINING_FIELDS
) -> None:
    """Raise a ValueError naming every training field in which ``saved`` (a checkpoint's config) and ``cfg`` differ."""
    current = dataclasses.asdict(cfg)
    diffs = []
    for name in fields:
        old, new = saved.get(name), current.get(name)
        if isinstance(old, list):
            old = tuple(old)
        if isinstance(new, list):
            new = tuple(new)
        if old != new:
            diffs.append(f"{name} = {old!r} in the checkpoint, {new!r} now")
    if diffs:
        raise ValueError(
            f"Checkpoint {path} was written with a different configuration: "
            + "; ".join(diffs)
            + ". Resume with the same settings, or train into a new output folder."
        )


def load_training_checkpoint(path: str | Path, cfg: Config, model: FastRCNN | None = None) -> dict:
    """Read a training checkpoint and check it belongs to ``cfg`` (and to ``model``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: truncated or foreign file; written under another configuration (the message
            names each differing field); a model with another number of classes.
    """
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise ValueError(
            f"{path} is not a Fast R-CNN training checkpoint (written by fastrcnn_lite.train); "
            "point --out to the folder of the run you want to resume."
        )
    check_config(state["config"], cfg, path)
    if model is not None and state["num_classes"] != model.num_classes:
        raise ValueError(
            f"Checkpoint {path} is for num_classes = {state['num_classes']} but the model has "
            f"num_classes = {model.num_classes}: a different dataset's classes?"
        )
    return state


# --- metrics ----------------------------------------------------------------------------------
def read_metrics(path: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` file (one dict per iteration)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _truncate_metrics(path: Path, iteration: int) -> None:
    """Keep only the records up to ``iteration``: a resumed run re-does the ones after its checkpoint."""
    if path.is_file():
        kept = [r for r in read_metrics(path) if r["iter"] <= iteration]
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(path)


class LiveLossPlot:
    """A callback for :func:`train_fast_rcnn` that redraws the loss curves in a notebook.

    Every ``every`` iterations it replaces one displayed figure (smoothed total, classification
    and box losses against the iteration). Outside IPython it does nothing.
    """

    def __init__(self, every: int = 50, smooth: int = 20, figsize: tuple[float, float] = (10, 3.5)):
        self.every, self.smooth, self.figsize = every, smooth, figsize
        self.handle = None

    def __call__(self, iteration: int, history: list[dict]) -> None:
        if iteration % self.every != 0:
            return
        try:
            from IPython.display import display
        except ImportError:  # pragma: no cover - IPython comes with the notebook extra
            return
        fig = plot_losses(history, self.smooth, self.figsize)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        import matplotlib.pyplot as plt

        plt.close(fig)


def plot_losses(history: list[dict], smooth: int = 20, figsize: tuple[float, float] = (10, 3.5)):
    """A figure of the training losses in ``history`` (moving averages over ``smooth`` iterations)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=figsize)
    its = np.array([r["iter"] for r in history])
    for ax, keys in zip(axes, (("loss",), ("loss_cls", "loss_box")), strict=True):
        for key in keys:
            values = np.array([r[key] for r in history])
            if len(values) >= smooth:
                values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
                x = its[smooth - 1 :]
            else:
                x = its
            ax.plot(x, values, label=key)
        ax.set_xlabel("iteration")
        ax.legend()
    axes[0].set_title("multi-task loss")
    axes[1].set_title("its two terms")
    fig.tight_layout()
    return fig


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
) -> dict:
    """Train ``model`` for ``cfg.max_iters`` SGD iterations (hierarchical sampling, multi-task loss).

    Args:
        model: a :class:`~fastrcnn_lite.fast_rcnn.FastRCNN` (its box_means / box_stds set).
        train_ds: the training :class:`~fastrcnn_lite.voc.VOCDataset`.
        proposals (list of Tensor[P_i, 4]): one per training image, original pixels.
        cfg: scales, sampling, SGD and schedule settings; ``cfg.seed`` seeds everything.
        out_dir: where ``checkpoint.pt`` and ``metrics.jsonl`` go (None: keep nothing on disk).
        resume: continue from ``<out_dir>/checkpoint.pt`` if it exists (model, optimiser,
            schedule, sampler and RNG states), otherwise start afresh.
        checkpoint_every: iterations between checkpoints (one is always written at the end).
        callback: called as ``callback(iteration, history)`` after every iteration (e.g.
            :class:`LiveLossPlot`); an exception raised there stops training like a kill would.

    Returns:
        dict with ``history`` (one dict per iteration of this call: ``iter``, ``loss``,
        ``loss_cls``, ``loss_box``, ``lr``), ``train_seconds`` (all calls together when resumed),
        ``iterations`` and ``resumed_from``.
    """
    if len(proposals) != len(train_ds):
        raise ValueError(
            f"Need one proposal tensor per training image: {len(train_ds)} images, {len(proposals)} tensors."
        )
    device = resolve_device(cfg)
    model.to(device)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    optimizer = build_optimizer(model, cfg)
    sampler = ImageSampler(
        len(train_ds), cfg.images_per_batch, tuple(cfg.scales), cfg.flip_prob, cfg.seed
    )
    start_iter, train_seconds = 0, 0.0
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / "checkpoint.pt" if out is not None else None
    metrics_path = out / "metrics.jsonl" if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if resume and ckpt_path.is_file():
            state = load_training_checkpoint(ckpt_path, cfg, model)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            sampler.load_state_dict(state["sampler"])
            _set_rng_state(state["rng"])
            start_iter, train_seconds = int(state["iteration"]), float(state["train_seconds"])
            _truncate_metrics(metrics_path, start_iter)
            print(f"resuming from {ckpt_path} at iteration {start_iter}")
        elif metrics_path.is_file():
            metrics_path.unlink()  # a fresh run: start a fresh log
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
            _set_lr(optimizer, lr)
            examples = [
                training_example(train_ds, proposals, i, s, f, cfg)
                for i, s, f in sampler.next_batch()
            ]
            images = [e[0].to(device) for e in examples]
            props = [e[1].to(device) for e in examples]
            targets = [{k: v.to(device) for k, v in e[2].items()} for e in examples]
            try:
                losses = model(images, props, targets)
                optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                optimizer.step()
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
                save_training_checkpoint(
                    ckpt_path, model, optimizer, sampler, it + 1, cfg, train_seconds, classes
                )
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


# --- models for the notebooks -----------------------------------------------------------------
def load_fast_rcnn(path: str | Path, cfg: Config, num_classes: int) -> tuple[FastRCNN, dict]:
    """A trained model saved by :func:`load_or_train_fast_rcnn` or :func:`train_fast_rcnn`.

    Raises a ValueError naming the mismatch when the file holds another number of classes or
    another backbone / pool size than ``cfg`` builds.
    """
    state = load_checkpoint(path)
    saved_cfg = state.get("config", {})
    check_config(saved_cfg, cfg, path, fields=("backbone",))
    if state.get("num_classes") != num_classes:
        raise ValueError(
            f"{path} holds a model for num_classes = {state.get('num_classes')}, not {num_classes}."
        )
    model = build_fast_rcnn(cfg, num_classes)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(
            f"{path} does not fit the model built from this config: {str(e).splitlines()[0]}"
        ) from e
    model.eval()
    return model, state


def load_or_train_fast_rcnn(
    cfg: Config,
    train_ds,
    proposals: list[Tensor],
    progress: bool = True,
    pretrained: bool = True,
    callback: Callable[[int, list[dict]], None] | None = None,
) -> tuple[FastRCNN, dict]:
    """The trained Fast R-CNN for ``cfg``, from the cache if present, else trained and cached.

    The model starts from :func:`~fastrcnn_lite.pretrain.pretrained_backbone` (``pretrained``)
    or from random weights; the file is ``cache_path(cfg, "fast_rcnn", ...)``, so another
    config or dataset never loads a stale model.

    Returns:
        (model in eval mode on ``cfg.device``, info): info has ``train_seconds``, ``iterations``,
        ``history`` (per-iteration losses), ``path``, ``from_cache`` and ``pretrained``.
    """
    num_classes = len(train_ds.classes)
    backbone = None
    if pretrained:
        from .pretrain import pretrained_backbone

        backbone = pretrained_backbone(cfg, train_ds, progress=progress)
    # The key covers the config, the data (through its proposals) and the starting weights, so
    # a regenerated dataset or a re-trained backbone never loads a stale model.
    start = (
        _digest(list(backbone.body.state_dict().values()) + list(backbone.fc.state_dict().values()))
        if backbone
        else "scratch"
    )
    path = cache_path(cfg, "fast_rcnn", data=f"{getattr(train_ds, 'root', '')}|{len(train_ds)}",
                      proposals=_digest(proposals), start=start, version=1)  # fmt: skip
    if path.is_file():
        model, state = load_fast_rcnn(path, cfg, num_classes)
        info = dict(state["info"], path=path, from_cache=True)
        if progress:
            print(f"Fast R-CNN loaded from {path.name} (trained in {info['train_seconds']:.0f} s)")
        return model.to(resolve_device(cfg)), info
    means, stds = target_stats(cfg, train_ds, proposals)
    torch.manual_seed(cfg.seed)
    model = build_fast_rcnn(cfg, num_classes, backbone, means, stds)
    result = train_fast_rcnn(model, train_ds, proposals, cfg, progress=progress, callback=callback)
    info = {
        "train_seconds": result["train_seconds"],
        "iterations": result["iterations"],
        "history": result["history"],
        "pretrained": pretrained,
    }
    atomic_save(
        {
            "kind": "fastrcnn_lite.model",
            "model": model.state_dict(),
            "config": dataclasses.asdict(cfg),
            "num_classes": num_classes,
            "info": info,
        },  # fmt: skip
        path,
    )
    return model.eval(), dict(info, path=path, from_cache=False)


def _digest(tensors: list[Tensor]) -> str:
    """A short hash of a list of tensors (cache keys)."""
    h = hashlib.sha1()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:12]


def target_stats(
    cfg: Config, train_ds, proposals: list[Tensor]
) -> tuple[Tensor, Tensor] | tuple[None, None]:
    """Per-class means / stds of the training set's regression targets (None, None if not ``cfg.normalize_targets``)."""
    if not cfg.normalize_targets:
        return None, None
    targets = []
    for i in range(len(train_ds)):
        t = train_ds.load_target(i)
        keep = (
            torch.ones_like(t["labels"], dtype=torch.bool) if cfg.use_difficult else ~t["difficult"]
        )
        targets.append({"boxes": t["boxes"][keep], "labels": t["labels"][keep]})
    props = [p[: cfg.proposals_per_image] for p in proposals]
    return regression_target_stats(props, targets, len(train_ds.classes), cfg.fg_iou_thresh)


# --- command line -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m fastrcnn_lite.train",
        description="Train Fast R-CNN (resumable), optionally evaluate on the test split.",
    )
    p.add_argument(
        "--profile",
        choices=("embedded", "full"),
        default="full",
        help="Config.embedded() or Config() (default full)",
    )
    p.add_argument(
        "--data-root", help="folder holding VOCdevkit/ (default: the profile's data_root)"
    )
    p.add_argument("--year", help="VOC year (default: the profile's, 2007)")
    p.add_argument("--split", help="training split (default trainval)")
    p.add_argument("--test-split", help="split for --eval (default test)")
    p.add_argument(
        "--backbone", choices=("small", "alexnet", "vgg16"), help="default: the profile's"
    )
    p.add_argument(
        "--weights",
        help="ImageNet weights for alexnet/vgg16: a local state-dict file or a torchvision name (IMAGENET1K_V1, downloads)",
    )
    p.add_argument("--init", choices=("pretrained", "scratch"), default="pretrained",
                   help="start the backbone from pre-trained weights (default) or random ones")  # fmt: skip
    p.add_argument(
        "--trainable-from",
        help="first trained layer (default: conv3_1 for vgg16, conv2 for alexnet, conv1 for small)",
    )
    p.add_argument(
        "--multiscale",
        action="store_true",
        help="train and test with the image pyramid (cfg.multiscale_scales, section 5.2)",
    )
    p.add_argument("--iters", type=int, help="SGD iterations (default: the profile's max_iters)")
    p.add_argument(
        "--lr-steps",
        type=int,
        nargs="*",
        help="iterations where lr drops 10x (default: the profile's)",
    )
    p.add_argument(
        "--out", required=True, help="output folder for checkpoint.pt, metrics.jsonl, eval.json"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from <out>/checkpoint.pt when it exists"
    )
    p.add_argument(
        "--eval", action="store_true", help="evaluate on the test split after training (VOC07 mAP)"
    )
    p.add_argument(
        "--cache-dir",
        help="where proposals and pre-trained backbones are cached (default: the profile's)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=500,
        help="iterations between checkpoints (default 500)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default auto)")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (plain log lines instead)"
    )
    return p.parse_args(argv)


def config_from_args(args) -> Config:
    """The Config a command line asks for."""
    cfg = Config.embedded() if args.profile == "embedded" else Config()
    changes = {}
    for field, value in (("data_root", args.data_root), ("year", args.year), ("train_set", args.split),
                         ("test_set", args.test_split), ("cache_dir", args.cache_dir), ("device", args.device)):  # fmt: skip
        if value is not None:
            changes[field] = value
    if args.backbone is not None and args.backbone != cfg.backbone:
        changes["backbone"] = args.backbone
        changes["trainable_from"] = DEFAULT_TRAINABLE_FROM[args.backbone]
    if args.trainable_from is not None:
        changes["trainable_from"] = args.trainable_from
    if args.multiscale:
        changes["scales"] = changes["test_scales"] = tuple(cfg.multiscale_scales)
    if args.iters is not None:
        changes["max_iters"] = args.iters
        if args.lr_steps is None:
            # Keep the profile's schedule shape: the step at the same fraction of training.
            changes["lr_steps"] = tuple(round(s * args.iters / cfg.max_iters) for s in cfg.lr_steps)
    if args.lr_steps is not None:
        changes["lr_steps"] = tuple(args.lr_steps)
    return cfg.replace(**changes)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args)
    from .data import load_datasets
    from .proposals import load_proposals

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    train_ds, test_ds = load_datasets(cfg)
    print(
        f"training on {train_ds}; {cfg.max_iters} iterations, backbone {cfg.backbone}, output {out}"
    )
    train_props = load_proposals(train_ds, cfg)
    num_classes = len(train_ds.classes)
    backbone = None
    if args.init == "pretrained":
        from .pretrain import pretrained_backbone

        backbone = pretrained_backbone(cfg, train_ds, progress=progress, weights=args.weights)
    elif args.weights:
        raise ValueError("--weights needs --init pretrained.")
    means, stds = target_stats(cfg, train_ds, train_props)
    torch.manual_seed(cfg.seed)
    model = build_fast_rcnn(cfg, num_classes, backbone, means, stds)

    def report(iteration: int, history: list[dict]) -> None:
        if not progress and (iteration % 20 == 0 or iteration == cfg.max_iters):
            r = history[-1]
            print(
                f"iter {iteration}/{cfg.max_iters} loss {r['loss']:.4f} (cls {r['loss_cls']:.4f}, box {r['loss_box']:.4f}) lr {r['lr']:g}",
                flush=True,
            )

    result = train_fast_rcnn(model, train_ds, train_props, cfg, out_dir=out, resume=args.resume,
                             progress=progress, checkpoint_every=args.checkpoint_every, callback=report)  # fmt: skip
    print(
        f"trained {cfg.max_iters} iterations in {result['train_seconds']:.1f} s; checkpoint {out / 'checkpoint.pt'}"
    )
    if args.eval:
        from .evaluate import evaluate_detections

        test_props = load_proposals(test_ds, cfg)
        detections, seconds = detect(model, test_ds, test_props, cfg, progress=progress)
        targets = [test_ds.load_target(i) for i in range(len(test_ds))]
        result = evaluate_detections(detections, targets, test_ds.classes, metric="07")
        summary = {"map": result["map"], "ap": result["ap"], "seconds_per_image": seconds,
                   "train_seconds": float(train_seconds_of(out)), "iterations": cfg.max_iters}  # fmt: skip
        (out / "eval.json").write_text(json.dumps(summary, indent=2, default=float))
        print(
            f"mAP (VOC07 11-point) on {test_ds.image_set}: {result['map']:.4f}; {seconds:.3f} s per image"
        )
    return 0


def train_seconds_of(out: Path) -> float:
    """Total training seconds recorded in ``<out>/checkpoint.pt`` (0 if none)."""
    path = out / "checkpoint.pt"
    return float(load_checkpoint(path)["train_seconds"]) if path.is_file() else 0.0


if __name__ == "__main__":
    sys.exit(main())
