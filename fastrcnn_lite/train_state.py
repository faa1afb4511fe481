"""What a training run keeps on disk: its folder, checkpoints, metrics log and curves.

Data-flow stage: none (bookkeeping for **losses -> parameter updates**, :mod:`fastrcnn_lite.train`).
Taught in ``notebooks/08_full_voc_run.ipynb`` (a run killed and resumed).

A run folder (``--out``) holds::

    checkpoint.pt    everything a resume needs (written atomically every --checkpoint-every iterations)
    metrics.jsonl    one JSON line per iteration: iter, loss, loss_cls, loss_box, lr
    training.png     the loss and learning-rate curves, refreshed at each checkpoint
    eval.json        with --eval: mAP, per-class AP (null for a class absent from the test images)
    results/         with --eval: VOC results files, one per class

Checkpoints hold the model, the optimiser (momentum buffers), the mixed-precision loss scaler,
the iteration (hence the lr schedule), the :class:`~fastrcnn_lite.sampling.ImageSampler` state and
the python / numpy / torch RNG states, written with :func:`~fastrcnn_lite.checkpoint.atomic_save`
and read with ``torch.load(..., weights_only=True)``.

A folder that already holds a run is never overwritten silently: :func:`check_run_folder`
refuses unless the caller resumes it or asks to start over (:func:`clear_run`).
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_save, load_checkpoint
from .cli import UserError
from .config import Config

__all__ = [
    "TRAINING_FIELDS",
    "CHECKPOINT_KIND",
    "RUN_FILES",
    "save_training_checkpoint",
    "load_training_checkpoint",
    "check_config",
    "checkpoint_iteration",
    "existing_run",
    "check_run_folder",
    "clear_run",
    "read_metrics",
    "truncate_metrics",
    "rng_state",
    "set_rng_state",
]

# The config fields that change what training computes: a checkpoint written with other values
# cannot be resumed under this config (max_iters may grow; test-time fields may change freely).
TRAINING_FIELDS = (
    "year", "train_set", "use_difficult", "scales", "max_size", "multiscale_max_size",
    "proposal_mode", "proposals_per_image", "proposal_min_size", "backbone", "trainable_from",
    "cls_init_std", "bbox_init_std", "images_per_batch", "batch_size_per_image", "positive_fraction",
    "fg_iou_thresh", "bg_iou_thresh_hi", "bg_iou_thresh_lo", "flip_prob", "box_loss_weight",
    "normalize_targets", "lr", "momentum", "weight_decay", "bias_lr_factor", "lr_steps", "lr_gamma", "seed",
    "amp",
)  # fmt: skip

CHECKPOINT_KIND = "fastrcnn_lite.train"

# What a run writes into its folder (and what --overwrite deletes; nothing else is touched).
RUN_FILES = ("checkpoint.pt", "metrics.jsonl", "training.png", "eval.json", "results")


# --- RNG states -------------------------------------------------------------------------------
def rng_state() -> dict:
    """The python, numpy, torch (and CUDA) RNG states, as tensors and numbers (``weights_only`` loadable).

    No notebook: :func:`save_training_checkpoint`.
    """
    np_state = np.random.get_state()
    return {
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


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned.

    No notebook: a resumed :func:`~fastrcnn_lite.train.train_fast_rcnn`.
    """
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )  # fmt: skip
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- checkpoints ------------------------------------------------------------------------------
def save_training_checkpoint(
    path: str | Path,
    model,
    optimizer: torch.optim.Optimizer,
    sampler,
    iteration: int,
    cfg: Config,
    train_seconds: float,
    classes: tuple[str, ...] | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> Path:
    """Write everything a resume needs, atomically (a kill mid-write keeps the previous file).

    Notebook 06 (its stopped and resumed run, inside ``train_fast_rcnn``).
    """
    state = {
        "kind": CHECKPOINT_KIND,
        "iteration": iteration,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "sampler": sampler.state_dict(),
        "rng": rng_state(),
        "config": dataclasses.asdict(cfg),
        "num_classes": model.num_classes,
        "classes": list(classes) if classes is not None else None,
        "train_seconds": train_seconds,
    }
    return atomic_save(state, path)


def check_config(
    saved: dict, cfg: Config, path: str | Path, fields: tuple[str, ...] = TRAINING_FIELDS
) -> None:
    """Raise a ValueError naming every training field in which ``saved`` (a checkpoint's config) and ``cfg`` differ.

    No notebook: :func:`load_training_checkpoint`.

    A field the checkpoint does not have (written before the field existed) counts as its
    default value, so older checkpoints still resume.
    """
    current = dataclasses.asdict(cfg)
    defaults = {f.name: f.default for f in dataclasses.fields(Config)}
    diffs = []
    for name in fields:
        old, new = saved.get(name, defaults.get(name)), current.get(name)
        if isinstance(old, list):
            old = tuple(old)
        if isinstance(new, list):
            new = tuple(new)
        if old != new:
            diffs.append(f"{name} = {old!r} in the checkpoint, {new!r} now")
    if diffs:
        raise UserError(
            f"Checkpoint {path} was written with a different configuration: "
            + "; ".join(diffs)
            + ". Resume with the same settings, or train into a new output folder."
        )


def load_training_checkpoint(path: str | Path, cfg: Config, model=None) -> dict:
    """Read a training checkpoint and check it belongs to ``cfg`` (and to ``model``).

    Notebook 06 reads a stopped run's checkpoint with it.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: truncated or foreign file; written under another configuration (the message
            names each differing field); a model with another number of classes.
    """
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise UserError(
            f"{path} is not a Fast R-CNN training checkpoint (written by fastrcnn_lite.train); "
            "point --out to the folder of the run you want to resume."
        )
    check_config(state["config"], cfg, path)
    if model is not None and state["num_classes"] != model.num_classes:
        raise UserError(
            f"Checkpoint {path} is for num_classes = {state['num_classes']} but the model has "
            f"num_classes = {model.num_classes}: a different dataset's classes?"
        )
    return state


def checkpoint_iteration(path: str | Path) -> int | None:
    """The iteration a training checkpoint was written at, read without loading its tensors.

    Notebook 08 (the training command's ``--resume`` and its plan).

    Returns None when there is no file at ``path``; a damaged file raises the ValueError of
    :func:`~fastrcnn_lite.checkpoint.load_checkpoint`.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(state["iteration"])
    except Exception:  # damaged or foreign: let the full reader say what is wrong
        state = load_checkpoint(path)
        if not isinstance(state, dict) or "iteration" not in state:
            raise UserError(
                f"{path} is not a Fast R-CNN training checkpoint (written by fastrcnn_lite.train)."
            ) from None
        return int(state["iteration"])


# --- the run folder ---------------------------------------------------------------------------
def existing_run(out: str | Path) -> list[str]:
    """The files in ``out`` that show a run was started there (``checkpoint.pt``, ``metrics.jsonl``).

    Notebook 08 (the training command's plan and its folder check).
    """
    out = Path(out)
    return [name for name in ("checkpoint.pt", "metrics.jsonl") if (out / name).is_file()]


def check_run_folder(out: str | Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start a fresh run in a folder that holds one, unless asked to start over.

    Notebook 08 (the training command refuses a used folder with it).

    Raises:
        UserError: ``resume`` and ``overwrite`` both set; or ``out`` holds a run and neither is
            set (the message names the folder and both choices).
    """
    if resume and overwrite:
        raise UserError(
            "--resume and --overwrite contradict each other: --resume continues the run in the "
            "output folder, --overwrite deletes it and starts over. Pass one of them."
        )
    found = existing_run(out)
    if found and not resume and not overwrite:
        iteration = _describe_iteration(Path(out))
        raise UserError(
            f"{out} already holds a run ({', '.join(found)}{iteration}). Continue it with "
            f"--resume (resume=True), or start over with --overwrite (overwrite=True), which "
            "replaces it; or choose another output folder."
        )


def _describe_iteration(out: Path) -> str:
    try:
        iteration = checkpoint_iteration(out / "checkpoint.pt")
    except ValueError:
        return "; its checkpoint is unreadable"
    return f"; checkpoint at iteration {iteration}" if iteration is not None else ""


def clear_run(out: str | Path) -> list[Path]:
    """Delete what a run wrote into ``out`` (:data:`RUN_FILES`); other files stay. Returns what was removed.

    Notebook 08 (the training command's ``--overwrite``).
    """
    out = Path(out)
    removed = []
    for name in RUN_FILES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(path)
        elif path.exists():
            path.unlink()
            removed.append(path)
    return removed


# --- metrics ----------------------------------------------------------------------------------
def read_metrics(path: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` file (one dict per iteration).

    Notebook 06 reads ``metrics.jsonl`` with it; notebook 08 too.

    A last line cut short (the process was killed while writing it) is left out; any other
    line that is not JSON raises a UserError naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    records = []
    for k, (n, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if k == len(lines) - 1:
                break  # a write interrupted by a kill: the checkpoint predates it anyway
            raise UserError(
                f"{path} line {n} is not a JSON record ({e.msg}): {line[:80]!r}. The metrics log "
                "is damaged; delete the line or start over with --overwrite."
            ) from None
    return records


def truncate_metrics(path: str | Path, iteration: int) -> list[dict]:
    """Keep only the records up to ``iteration`` (a resumed run re-does the ones after its checkpoint).

    No notebook: a resumed :func:`~fastrcnn_lite.train.train_fast_rcnn`.

    Returns the records kept.
    """
    path = Path(path)
    if not path.is_file():
        return []
    kept = [r for r in read_metrics(path) if r["iter"] <= iteration]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)
    return kept
