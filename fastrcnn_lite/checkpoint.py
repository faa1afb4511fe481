"""Checkpoints that survive a kill: atomic writes, checksums, safe loads, clear errors.

Data-flow stage: none (bookkeeping for training). A checkpoint is written to a temporary file
in the same folder (``.<name>.<pid>.<random>.tmp``), flushed to disk, then renamed over the old
one (``os.replace`` is atomic on POSIX and Windows), so an interrupted write never destroys the
last good checkpoint. A write that fails removes its temporary file; one killed outright (power
cut, ``kill -9``) leaves it behind, and the next write to the same target removes it (temporary
files whose writing process is gone).

Every checkpoint carries a SHA-256 of its content (each tensor's dtype, shape and bytes, and
every other value) under the key ``_checksum_sha256``. ``torch.load`` does not notice a damaged
byte inside a tensor (a bad disk sector, a copy cut short at the wrong place gives a model with
a wrong weight), so :func:`load_checkpoint` recomputes the digest and refuses a file whose
content changed, naming the file. A file written before checksums existed loads unchecked.

Loading uses ``torch.load(..., weights_only=True)``: a checkpoint holds tensors, numbers,
strings and containers of them, never pickled code.

Cache keys are made here too, one way: :func:`short_digest` (SHA-1 of strings, bytes and
tensors fed in order) under the tensor digests the keys use (:func:`proposals_digest`,
:func:`module_digest`, :func:`tensors_digest`), and :func:`key_digest` (SHA-1 of a JSON
dump) under the file and folder names (:func:`cache_path`; the feature and proposal caches).
Each digest keeps the exact bytes it has always hashed: the names of caches already on disk
depend on them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO

import torch
from torch import Tensor, nn

from .cli import UserError
from .config import resolve_path

__all__ = [
    "atomic_save",
    "atomic_write",
    "write_json",
    "load_checkpoint",
    "content_digest",
    "short_digest",
    "key_digest",
    "proposals_digest",
    "module_digest",
    "tensors_digest",
    "cache_path",
]

CHECKSUM_KEY = "_checksum_sha256"  # where atomic_save stores the content digest


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: leave its file alone
    return True


def _remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete ``.<name>.<pid>.*.tmp`` beside ``path`` left by a writer that no longer runs."""
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, rename it to ``path``.

    No notebook: every file the package writes (caches, ``training.png``, data).

    Either ``path`` holds everything ``write`` wrote or it is unchanged: a failure (an
    exception, Ctrl-C) deletes the temporary file, and temporary files of earlier writes that
    were killed are deleted first.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_safe(value):
    """NaN and infinities -> None (JSON's null), recursively; tensors and numpy scalars -> numbers."""
    if (
        hasattr(value, "item")
        and getattr(value, "ndim", 0) == 0
        and not isinstance(value, (str, bytes))
    ):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: str | Path, obj) -> Path:
    """Write ``obj`` as valid JSON (NaN/inf become ``null``), atomically; returns the path.

    No notebook: the commands' JSON files (``eval.json``, reports, cache keys).

    ``json.dumps`` writes a bare ``NaN`` by default, which strict readers (JavaScript, jq)
    reject; here it is ``null`` and ``allow_nan=False`` guarantees that nothing else slips by.
    """
    text = json.dumps(_json_safe(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


def content_digest(obj) -> str:
    """SHA-256 (hex) of a checkpoint's content: tensors by dtype, shape and bytes, the rest by repr.

    No notebook: :func:`atomic_save` and :func:`load_checkpoint`'s check.

    The same before ``torch.save`` and after ``torch.load`` (on any device; tuples and lists
    count alike), so it detects a changed byte anywhere in the stored values.
    """
    digest = hashlib.sha256()

    def visit(value) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous().reshape(-1)  # (numel,)
            digest.update(f"T{t.dtype}{tuple(value.shape)}:".encode())
            digest.update(t.view(torch.uint8).numpy() if t.numel() else b"")
        elif isinstance(value, dict):
            digest.update(f"D{len(value)}:".encode())
            for key in sorted(value, key=repr):
                digest.update(f"{key!r}=".encode())
                visit(value[key])
        elif isinstance(value, (list, tuple)):
            digest.update(f"L{len(value)}:".encode())
            for item in value:
                visit(item)
        else:
            digest.update(f"V{type(value).__name__}:{value!r};".encode())

    visit(obj)
    return digest.hexdigest()


def atomic_save(obj: dict, path: str | Path) -> Path:
    """Write ``obj`` with ``torch.save`` to ``path`` atomically, with a checksum; returns the path.

    No notebook: every cached model and training checkpoint.

    ``obj`` must be a dict (a state dict or a training checkpoint); its content digest
    (:func:`content_digest`) is stored beside the entries under ``_checksum_sha256``, and
    :func:`load_checkpoint` checks and removes it.
    """
    if not isinstance(obj, dict):
        raise TypeError(f"atomic_save stores a dict (a state dict); got {type(obj).__name__}.")
    if CHECKSUM_KEY in obj:
        raise ValueError(f"obj already has the key {CHECKSUM_KEY!r}, reserved for the checksum.")
    stored = {**obj, CHECKSUM_KEY: content_digest(obj)}
    return atomic_write(path, lambda f: torch.save(stored, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`atomic_save` (``weights_only=True``) and check it.

    Notebook 01 reads the proposal cache with it; notebook 08 a run's checkpoint.

    Returns:
        the dict that was saved (the checksum entry removed).

    Raises:
        FileNotFoundError: no file at ``path``.
        UserError (a ValueError): the file is empty, truncated, not a checkpoint, or its content
            does not match its checksum (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    fix = "delete it (it is rebuilt or retrained) or resume from an earlier copy."
    size = path.stat().st_size
    if size == 0:
        raise UserError(
            f"Cannot read checkpoint {path}: the file is empty (0 bytes), as a write cut short "
            f"leaves it; it is truncated or not a fastrcnn_lite checkpoint: {fix}"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, wrong format, unsafe pickle
        detail = next((line for line in str(e).splitlines() if line.strip()), "no detail")
        raise UserError(
            f"Cannot read checkpoint {path} ({size:,} bytes; {type(e).__name__}: {detail[:200]}). "
            f"The file is truncated or not a fastrcnn_lite checkpoint: {fix}"
        ) from e
    if not isinstance(state, dict):
        raise UserError(
            f"Cannot read checkpoint {path}: it holds a {type(state).__name__}, not the dict "
            f"atomic_save writes; it is not a fastrcnn_lite checkpoint: {fix}"
        )
    expected = state.pop(CHECKSUM_KEY, None)
    if expected is not None and content_digest(state) != expected:
        raise UserError(
            f"Checkpoint {path} is damaged: its content does not match the checksum stored in it "
            f"(a changed byte on disk or in a copy). Refusing to use it: {fix}"
        )
    return state


def cache_path(cfg, system: str, only: tuple[str, ...] | None = None, **extra) -> Path:
    """Where a trained model (or another cached artefact) for ``cfg`` lives.

    No notebook: the caches of pre-training, R-CNN's heads and Fast R-CNN.

    The file name carries a hash of the config plus ``extra`` (e.g. the dataset's size or a
    notebook's iteration count), so a changed setting never silently loads a stale model:
    ``<cache_dir>/<system>-<hash>.pt``. ``only`` restricts the hash to the config fields the
    artefact depends on (the shared pre-training does not change with Fast R-CNN's schedule).
    """
    fields = dataclasses.asdict(cfg)
    if only is not None:
        fields = {name: fields[name] for name in only}
    fields = fields | {k: repr(v) for k, v in sorted(extra.items())}
    fields.pop("device", None)  # the same model serves CPU and GPU
    return resolve_path(cfg.cache_dir) / f"{system}-{key_digest(fields, 10)}.pt"


def short_digest(parts: Iterable[str | bytes | Tensor], length: int | None = 12) -> str:
    """The first ``length`` hex digits (None: all 40) of the SHA-1 of ``parts``, fed in order.

    No notebook: the proposal cache's folder names.

    A str is hashed as its UTF-8 bytes, bytes as they are, a Tensor as its raw bytes in its own
    dtype (on the CPU, contiguous; bfloat16, which numpy lacks, as float32). Nothing separates
    the parts: callers put a shape or a name before each tensor.
    """
    h = hashlib.sha1()
    for part in parts:
        if isinstance(part, Tensor):
            t = part.detach().cpu().contiguous()
            part = (t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        elif isinstance(part, str):
            part = part.encode()
        h.update(part)
    return h.hexdigest()[:length]


def key_digest(key, length: int = 12) -> str:
    """The first ``length`` hex digits of the SHA-1 of ``json.dumps(key, sort_keys=True)`` (values
    JSON cannot write go in as their ``repr``): the hash in a cache file or folder name.

    No notebook: cache keys (proposals, region features).
    """
    return short_digest([json.dumps(key, sort_keys=True, default=repr)], length)


def proposals_digest(proposals: Sequence[Tensor]) -> str:
    """12 hex digits identifying a list of proposal tensors (R-CNN / SPPnet cache keys): each
    one's shape, then its values as float32.

    No notebook: R-CNN's and SPPnet's cache keys.
    """
    return short_digest(part for p in proposals for part in (str(tuple(p.shape)), p.float()))


def module_digest(*modules: nn.Module) -> str:
    """12 hex digits identifying the weights of ``modules`` (R-CNN / SPPnet cache keys): every
    state-dict entry's name, then its values as float32.

    No notebook: R-CNN's and SPPnet's cache keys.
    """
    return short_digest(
        part for m in modules for name, t in m.state_dict().items() for part in (name, t.float())
    )


def tensors_digest(tensors: Sequence[Tensor]) -> str:
    """12 hex digits identifying a list of tensors (Fast R-CNN's cache key: its starting weights
    and its proposals): each one's dtype and shape, then its bytes in that dtype.

    No notebook: Fast R-CNN's cache key (:func:`~fastrcnn_lite.train_cache.load_or_train_fast_rcnn`).
    """
    return short_digest(part for t in tensors for part in (f"{t.dtype}{tuple(t.shape)}", t))
