"""Which dataset a configuration means: the embedded default or any VOCdevkit tree.

Data-flow stage: **image**. One function turns a :class:`~fastrcnn_lite.config.Config` into the
train and test :class:`~fastrcnn_lite.voc.VOCDataset` objects, so every notebook and command
opens its data the same way. The embedded dataset is generated on first use when
``cfg.data_root`` is the embedded profile's own folder.

A dataset's classes come from the dataset (``classes.txt`` in its ``VOC<year>`` folder, which
the embedded generator writes; PASCAL VOC's 20 when there is none; see
:func:`~fastrcnn_lite.voc.read_classes`), never from its path: a copy of the embedded data
elsewhere (``--data-root /tmp/copy``) reads exactly as the original.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from .config import Config, resolve_path
from .embedded_files import ensure_embedded
from .voc import VOCDataset, read_classes

__all__ = ["load_datasets", "dataset_classes", "dataset_root", "dataset_digest"]


def dataset_root(cfg: Config) -> Path:
    """The folder holding ``VOCdevkit/`` for ``cfg``; the embedded dataset is generated there
    first when ``cfg.data_root`` is the embedded profile's folder and it is missing.

    No notebook: :func:`load_datasets`, :func:`dataset_classes` and the proposals command.
    """
    if _is_embedded(cfg):
        return ensure_embedded(cfg)
    return resolve_path(cfg.data_root)


def dataset_classes(cfg: Config) -> tuple[str, ...]:
    """The class names of the dataset ``cfg`` points to (label i + 1 = classes[i]).

    No notebook: ``plan.py`` (the run's plan) reads the number of classes with it.
    """
    return read_classes(dataset_root(cfg), cfg.year)


def _is_embedded(cfg: Config) -> bool:
    """Whether ``cfg.data_root`` is the folder the embedded dataset is generated into."""
    return resolve_path(cfg.data_root) == resolve_path(Config.embedded().data_root)


def load_datasets(cfg: Config) -> tuple[VOCDataset, VOCDataset]:
    """``(train, test)`` datasets for ``cfg``: ``cfg.train_set`` and ``cfg.test_set`` of VOC<cfg.year>.

    For the embedded profile the dataset is generated under ``cfg.data_root`` if it is missing.
    Both datasets carry the classes the dataset itself declares.

    Notebook 00 opens its data with this (as does every later notebook).
    """
    root = dataset_root(cfg)
    classes = read_classes(root, cfg.year)
    return VOCDataset(root, cfg.year, cfg.train_set, classes), VOCDataset(
        root, cfg.year, cfg.test_set, classes
    )


def dataset_digest(dataset) -> str:
    """A short hash of everything a model trained on ``dataset`` saw (part of cache keys).

    No notebook: ``pretrain.py`` keys the pre-trained backbone's cache with it.

    For a VOCDataset: its class names, image ids and the bytes of every image and annotation
    file of the split, so a dataset regenerated at the same root (another seed, another
    generator version) gets another digest, and a byte-identical one the same. Any other
    dataset (``len`` and ``dataset[i] -> (image, target)``, as the tests' in-memory ones) is
    hashed through its images and targets.

    Returns:
        16 hex characters.
    """
    h = hashlib.sha1()
    h.update(repr(tuple(getattr(dataset, "classes", ()))).encode())
    if all(hasattr(dataset, a) for a in ("ids", "image_path", "annotation_path")):
        for i, image_id in enumerate(dataset.ids):
            h.update(f"{image_id}\n".encode())
            for path in (dataset.annotation_path(i), dataset.image_path(i)):
                h.update(hashlib.sha1(Path(path).read_bytes()).digest())
        return h.hexdigest()[:16]
    for i in range(len(dataset)):
        image, target = dataset[i]
        values = [image] + [target[k] for k in ("boxes", "labels", "difficult") if k in target]
        for t in values:
            t = torch.as_tensor(t).detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:16]
