"""Checkpoints that survive a kill: atomic writes, safe loads, clear errors.

Data-flow stage: none (bookkeeping for training). A checkpoint is written to a temporary file
in the same folder, flushed to disk, then renamed over the old one (``os.replace`` is atomic on
POSIX and Windows), so an interrupted write never destroys the last good checkpoint. Loading uses
``torch.load(..., weights_only=True)``: a checkpoint holds tensors, numbers, strings and
containers of them, never pickled code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

__all__ = ["atomic_save", "load_checkpoint", "cache_path"]


def atomic_save(obj: dict, path: str | Path) -> Path:
    """Write ``obj`` with ``torch.save`` to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`atomic_save` (``weights_only=True``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is truncated or not a checkpoint (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, wrong format, unsafe pickle
        raise ValueError(
            f"Cannot read checkpoint {path} ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            "The file is truncated or not a fastrcnn_lite checkpoint; delete it or resume from an earlier one."
        ) from e


def cache_path(cfg, system: str, only: tuple[str, ...] | None = None, **extra) -> Path:
    """Where a trained model (or another cached artefact) for ``cfg`` lives.

    The file name carries a hash of the config plus ``extra`` (e.g. the dataset's size or a
    notebook's iteration count), so a changed setting never silently loads a stale model:
    ``<cache_dir>/<system>-<hash>.pt``. ``only`` restricts the hash to the config fields the
    artefact depends on (the shared pre-training does not change with Fast R-CNN's schedule).
    """
    from .config import resolve_path

    fields = dataclasses.asdict(cfg)
    if only is not None:
        fields = {name: fields[name] for name in only}
    fields = fields | {k: repr(v) for k, v in sorted(extra.items())}
    fields.pop("device", None)  # the same model serves CPU and GPU
    digest = hashlib.sha1(json.dumps(fields, sort_keys=True, default=repr).encode()).hexdigest()[
        :10
    ]
    return resolve_path(cfg.cache_dir) / f"{system}-{digest}.pt"
