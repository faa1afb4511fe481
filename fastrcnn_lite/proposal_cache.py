"""The proposal cache: the selective-search proposals of a whole split, computed once.

Data-flow stage: **proposals** (the disk cache around ``proposals.py``). It passes on one
``Tensor[P_i, 4]`` float32 of boxes per image of the split, exactly what
:func:`~fastrcnn_lite.proposals.selective_search` gives for that image.

:func:`load_proposals` computes the proposals of a whole dataset split once, spread over
``cfg.num_workers`` processes, and stores them under
``<cache_dir>/proposals/<dataset>-<year>-<split>-<mode>-<hash>/``. The hash covers everything
the stored boxes depend on: the cache format version, the resolved dataset root, year, split,
mode, ``scale``, OpenCV's version, the ``rand()`` seed, and a fingerprint of the image list
(each image id with its JPEG's byte size and modification time, the same test ``make`` uses;
cheap even for the 10k images of VOC07). Change any of them and a different folder is used: a
stale cache is recomputed, never mixed with new results.

While computing, each image's boxes go to ``parts/<id>.npy`` (written to a temporary file and
renamed, so a file that exists is complete); an interrupted run (Ctrl-C, a killed kernel) resumes
with the images that are missing. When all are done they are consolidated into
``proposals.pt`` (``ids``, ``counts`` (one per image), ``boxes`` Tensor[sum P, 4], int16 when every
coordinate is a small integer, else float32) and ``parts/`` is removed. ``key.json`` records the
key in readable form.

The cache stores every box OpenCV returns (deduplicated); ``cfg.proposal_min_size`` and
``cfg.proposals_per_image`` are applied when loading, so changing them needs no recomputation,
and ``load_proposals(ds, cfg)[i]`` equals ``selective_search(image_i, mode, min_size,
max_proposals)`` exactly.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .checkpoint import (
    atomic_save,
    atomic_write,
    key_digest,
    load_checkpoint,
    short_digest,
    write_json,
)
from .cli import UserError
from .config import Config, resolve_path
from .progress import tqdm
from .proposals import _check_limits, _check_mode, _check_scale, _finish, _rank_seed, _search_bgr

__all__ = ["CACHE_FORMAT", "load_proposals", "proposal_cache_dir"]

CACHE_FORMAT = 1  # bump when the stored layout or the meaning of the boxes changes


def _compute_file(task: tuple[int, str, str, float]) -> tuple[int, np.ndarray]:
    """Worker: ``(index, jpeg_path, mode, scale)`` -> ``(index, boxes ndarray[P, 4])``.

    Decodes the JPEG as ``VOCDataset.load_image`` does (PIL, RGB) so the boxes match those of
    ``selective_search(dataset[i][0])``.
    """
    index, path, mode, scale = task
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))  # (H, W, 3)
    except FileNotFoundError:
        raise
    except OSError as e:  # "image file is truncated", "cannot identify image file", ...
        raise UserError(
            f"Cannot decode image {path} ({e}); selective search needs every image of the split. "
            "Replace the file with a complete copy (download or generate the dataset again)."
        ) from None
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # (H, W, 3) BGR
    return index, _search_bgr(bgr, mode, scale)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core; OpenCV must not add threads of its own
    # Ctrl-C / Kernel > Interrupt reaches the parent, which stops the pool; workers ignore it
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _fingerprint(dataset) -> str:
    """sha1 of every image id with its JPEG's size and modification time (dataset order)."""
    lines = []
    for i, image_id in enumerate(dataset.ids):
        path = Path(dataset.image_path(i))
        try:
            st = path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"Image file not found: {path} (image {i}, id {image_id!r} of {dataset!r})."
            ) from None
        lines.append(f"{image_id}\t{st.st_size}\t{st.st_mtime_ns}\n")
    return short_digest(lines, length=None)


def _check_dataset(dataset) -> None:
    if not (hasattr(dataset, "ids") and hasattr(dataset, "image_path")):
        raise TypeError(
            f"dataset must be a VOCDataset (with .ids and .image_path(i)); got {type(dataset).__name__}. "
            "Open one with fastrcnn_lite.data.load_datasets(cfg) or VOCDataset(root, year, split)."
        )


def _cache_key(dataset, mode: str, scale: float) -> dict:
    # VOCDataset.root: the folder that holds VOCdevkit/
    root = Path(getattr(dataset, "root", ".")).resolve()
    return {
        "format": CACHE_FORMAT,
        "root": str(root),
        "year": str(getattr(dataset, "year", "")),
        "image_set": str(getattr(dataset, "image_set", "")),
        "mode": mode,
        "scale": scale,
        "opencv": cv2.__version__,
        "rank_seed": _rank_seed(),
        "num_images": len(dataset.ids),
        "images": _fingerprint(dataset),
    }


def proposal_cache_dir(
    dataset, cfg: Config, mode: str | None = None, *, scale: float = 1.0
) -> Path:
    """The folder that holds (or will hold) the proposals of ``dataset`` for this mode and scale.

    Notebook 01 opens it to show the cache's files.

    ``<cache_dir>/proposals/<root name>-<year>-<split>-<mode>[-x<scale>]-<hash of the key>``.
    """
    _check_dataset(dataset)
    mode = _check_mode(cfg.proposal_mode if mode is None else mode)
    return _cache_dir(dataset, cfg, mode, _check_scale(scale))[0]


def _cache_dir(dataset, cfg: Config, mode: str, scale: float) -> tuple[Path, dict]:
    key = _cache_key(dataset, mode, scale)
    digest = key_digest(key, 12)
    name = f"{Path(key['root']).name}-{key['year']}-{key['image_set']}-{mode}"
    if scale != 1.0:
        name += f"-x{scale:g}"
    return resolve_path(cfg.cache_dir) / "proposals" / f"{name}-{digest}", key


def _write_npy(array: np.ndarray, path: Path) -> None:
    """np.save to a temporary file beside ``path``, then rename (a file that exists is complete)."""
    atomic_write(path, lambda f: np.save(f, array))


def _warn_recompute(path: Path, why: str) -> None:
    warnings.warn(
        f"proposal cache file {path} is unreadable ({why}); deleting it and computing its "
        "proposals again.",
        RuntimeWarning,
        stacklevel=4,
    )


def _read_part(path: Path) -> np.ndarray | None:
    try:
        array = np.load(path)
    except (OSError, ValueError, EOFError) as e:
        _warn_recompute(path, f"{type(e).__name__}: {str(e)[:100] or 'empty file'}")
        return None  # unreadable: compute again
    if array.ndim == 2 and array.shape[1] == 4:
        return array
    _warn_recompute(path, f"an array of shape {array.shape}, not (P, 4)")
    return None


def _compact(boxes: np.ndarray) -> Tensor:
    """int16 when every coordinate is an integer that fits (saves half the disk), else float32."""
    if len(boxes) == 0 or (np.all(boxes == np.round(boxes)) and np.abs(boxes).max() < 2**15):
        return torch.from_numpy(np.asarray(boxes).astype(np.int16)).reshape(-1, 4)
    return torch.from_numpy(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)


def _load_consolidated(path: Path, ids: list[str]) -> list[np.ndarray] | None:
    """The boxes stored in ``proposals.pt``, or None (with a warning) when it cannot be used."""
    try:
        stored = load_checkpoint(path)
    except ValueError as e:  # empty, truncated, damaged (checksum)
        cause = e.__cause__
        why = "checksum mismatch" if "damaged" in str(e) else "truncated or not a proposal cache"
        if path.stat().st_size == 0:
            why = "empty file"
        elif cause is not None:
            why += f"; {type(cause).__name__}"
        _warn_recompute(path, why)
        return None
    if stored.get("format") != CACHE_FORMAT or list(stored.get("ids", [])) != list(ids):
        _warn_recompute(path, "written for another cache format or another image list")
        return None
    try:
        counts = stored["counts"].tolist()
        boxes = torch.split(stored["boxes"], counts)
    except (KeyError, AttributeError, RuntimeError, TypeError) as e:
        _warn_recompute(path, f"{type(e).__name__}: {e}")
        return None
    if len(boxes) != len(ids) or any(b.dim() != 2 or b.shape[1] != 4 for b in boxes):
        _warn_recompute(path, "boxes that do not match its image list")
        return None
    return [b.numpy() for b in boxes]


def _pool_context():
    """How worker processes start: never a plain fork of the caller.

    A forked child inherits OpenCV's thread pool in whatever state the parent's threads were in
    (a Jupyter kernel that already ran selective search) and can hang in its first OpenCV call.
    "forkserver" (Linux, macOS) forks the workers from a fresh server process that has imported
    this module once per session; "spawn" (Windows) starts fresh interpreters, each importing
    the package (a few seconds).
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["fastrcnn_lite.proposal_cache"])
        return context
    return multiprocessing.get_context("spawn")


def _compute_missing(tasks, parts: Path, num_workers: int, bar) -> None:
    """Run ``_compute_file`` on each task, writing ``parts/<id>.npy`` as each one completes."""
    names = {index: name for index, name, _, _, _ in tasks}
    work = [(index, path, mode, scale) for index, _, path, mode, scale in tasks]
    if num_workers <= 1 or len(work) <= 1:
        for task in work:
            index, boxes = _compute_file(task)
            _write_npy(boxes, parts / f"{names[index]}.npy")
            bar.update(1)
        return
    with _pool_context().Pool(min(num_workers, len(work)), initializer=_init_worker) as pool:
        for index, boxes in pool.imap_unordered(_compute_file, work, chunksize=1):
            _write_npy(boxes, parts / f"{names[index]}.npy")
            bar.update(1)


def _load_or_compute(
    dataset, cfg: Config, mode: str, scale: float, num_workers: int, progress: bool
) -> list[np.ndarray]:
    folder, key = _cache_dir(dataset, cfg, mode, scale)
    final = folder / "proposals.pt"
    ids = list(dataset.ids)
    if final.is_file():
        stored = _load_consolidated(final, ids)
        if stored is not None:
            if progress:
                print(f"proposals: reusing {folder} ({len(ids)} images)")
            return stored
        final.unlink(missing_ok=True)  # unreadable or not ours: compute again
    parts = folder / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    write_json(folder / "key.json", key)
    results: list[np.ndarray | None] = [None] * len(ids)
    tasks = []
    for i, image_id in enumerate(ids):
        part = parts / f"{image_id}.npy"
        results[i] = _read_part(part) if part.is_file() else None
        if results[i] is None:
            tasks.append((i, image_id, str(dataset.image_path(i)), mode, scale))
    workers = max(0, min(int(num_workers), os.cpu_count() or 1))
    if progress:
        done = len(ids) - len(tasks)
        resumed = f", resuming after {done} done" if done else ""
        print(
            f"proposals: selective search ({mode}) on {len(tasks)} images with {max(workers, 1)} process(es){resumed} -> {folder}"
        )
    with tqdm(
        total=len(ids),
        initial=len(ids) - len(tasks),
        desc=f"selective search ({mode})",
        disable=not progress,
    ) as bar:
        _compute_missing(tasks, parts, workers, bar)
    for i, _, _, _, _ in tasks:
        results[i] = _read_part(parts / f"{ids[i]}.npy")
        if results[i] is None:
            raise RuntimeError(
                f"proposals for {ids[i]} were computed but cannot be read back from {parts}."
            )
    counts = torch.tensor([len(r) for r in results], dtype=torch.int64)  # one per image
    boxes = _compact(
        np.concatenate([r.reshape(-1, 4) for r in results]) if results else np.zeros((0, 4))
    )
    atomic_save(
        {"format": CACHE_FORMAT, "ids": ids, "counts": counts, "boxes": boxes, "key": key}, final
    )
    shutil.rmtree(parts, ignore_errors=True)
    return results


def load_proposals(
    dataset,
    cfg: Config,
    mode: str | None = None,
    progress: bool = True,
    *,
    scale: float = 1.0,
    num_workers: int | None = None,
) -> list[Tensor]:
    """Selective-search proposals of every image of ``dataset``, computed once and cached.

    Notebook 01 builds the cache with this; notebooks 03, 05, 06, 07 and 08 load their
    proposals through it.

    Args:
        dataset: a :class:`~fastrcnn_lite.voc.VOCDataset` (any VOCdevkit tree: embedded, real VOC,
            voc07-micro).
        cfg: uses ``cache_dir``, ``proposal_mode`` (when ``mode`` is None), ``proposal_min_size``,
            ``proposals_per_image`` and ``num_workers``.
        mode: ``"fast"`` or ``"quality"``; None = ``cfg.proposal_mode``.
        progress: print where the cache is and show a progress bar while computing.
        scale: as in :func:`selective_search` (part of the cache key).
        num_workers: processes to spread the images over; None = ``cfg.num_workers``
            (0 or 1 = in this process). Workers are not forked from the caller (see
            ``_pool_context``): a script that calls this with workers needs the usual
            ``if __name__ == "__main__":`` guard.

    Returns:
        list[Tensor[P_i, 4]] float32, one per image in dataset order: continuous (x1, y1, x2, y2)
        pixels, best-ranked first, boxes smaller than ``cfg.proposal_min_size`` dropped, at most
        ``cfg.proposals_per_image``; ``P_i`` may be 0.
    """
    _check_dataset(dataset)
    if not isinstance(cfg, Config):
        raise TypeError(
            f"cfg must be a fastrcnn_lite.config.Config; got {type(cfg).__name__}. Try Config.embedded()."
        )
    mode = _check_mode(cfg.proposal_mode if mode is None else mode)
    scale = _check_scale(scale)
    _check_limits(cfg.proposal_min_size, cfg.proposals_per_image)
    workers = cfg.num_workers if num_workers is None else num_workers
    stored = _load_or_compute(dataset, cfg, mode, scale, workers, progress)
    return [_finish(b, cfg.proposal_min_size, cfg.proposals_per_image) for b in stored]
