"""The trained Fast R-CNN on disk: load a saved model, or train once and cache it.

Data-flow stage: **losses -> parameter updates**, its product kept: the model that
:func:`~fastrcnn_lite.train.train_fast_rcnn` trains (``cls_score`` Tensor[R, K + 1] and
``bbox_pred`` Tensor[R, 4K] heads on a backbone) saved with its config and number of classes K.
:func:`load_or_train_fast_rcnn` keys the file by the config, the data (through its proposals) and
the starting weights (:func:`~fastrcnn_lite.checkpoint.cache_path`), so another config or dataset
never loads a stale model; :func:`load_fast_rcnn` reads such a file, or a training run's
``checkpoint.pt``, back into a model. Taught in ``notebooks/06_fast_rcnn.ipynb`` (train once,
then load) and ``notebooks/08_full_voc_run.ipynb`` (load the long run's model).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from .checkpoint import atomic_save, cache_path, load_checkpoint, tensors_digest
from .config import Config
from .fast_rcnn import FastRCNN, build_fast_rcnn, resolve_device
from .pretrain import pretrained_backbone
from .train import target_stats, train_fast_rcnn
from .train_state import check_config

__all__ = ["load_fast_rcnn", "load_or_train_fast_rcnn"]


def load_fast_rcnn(path: str | Path, cfg: Config, num_classes: int) -> tuple[FastRCNN, dict]:
    """A trained model saved by :func:`load_or_train_fast_rcnn` or :func:`train_fast_rcnn`.

    Notebook 08 loads the run's trained model with it.

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

    Notebook 06 gets its trained model with it.

    The model starts from :func:`~fastrcnn_lite.pretrain.pretrained_backbone` (``pretrained``)
    or from random weights; the file is ``cache_path(cfg, "fast_rcnn", ...)``, so another
    config or dataset never loads a stale model.

    Returns:
        (model in eval mode on ``cfg.device``, info): info has ``train_seconds``, ``iterations``,
        ``history`` (per-iteration losses), ``path``, ``from_cache`` and ``pretrained``.
    """
    num_classes = len(train_ds.classes)
    backbone = pretrained_backbone(cfg, train_ds, progress=progress) if pretrained else None
    # The key covers the config, the data (through its proposals) and the starting weights, so
    # a regenerated dataset or a re-trained backbone never loads a stale model.
    start = "scratch"
    if backbone is not None:
        weights = [*backbone.body.state_dict().values(), *backbone.fc.state_dict().values()]
        start = tensors_digest(weights)
    path = cache_path(cfg, "fast_rcnn", data=f"{getattr(train_ds, 'root', '')}|{len(train_ds)}",
                      proposals=tensors_digest(proposals), start=start, version=1)  # fmt: skip
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
