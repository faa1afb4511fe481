"""Region proposals: selective search (OpenCV), a resumable disk cache, and proposal recall.

Data-flow stage: **proposals** (image -> *proposals* -> backbone feature map -> ...). R-CNN,
SPPnet and Fast R-CNN all score category-independent region proposals computed once per image
by selective search in "fast" mode, about 2000 per image (R-CNN section 2.1; Fast R-CNN
sections 4 and 5.5, "Do more proposals help?"). The proposals are not learned: they are computed
before training and cached on disk, exactly as the original systems did.

What is computed
----------------
:func:`selective_search` runs OpenCV's implementation
(``cv2.ximgproc.segmentation.createSelectiveSearchSegmentation``, from the
``opencv-contrib-python-headless`` wheel) in its ``fast`` or ``quality`` mode. OpenCV returns
rectangles ``(x, y, w, h)`` on the pixel grid: the rectangle covers pixel columns
``x .. x + w - 1``, which in the package's continuous convention (``boxes.py``) is the box
``(x, y, x + w, y + h)``. Identical boxes are dropped (the first, best-ranked copy is kept), then
boxes narrower or shorter than ``min_size`` pixels, then all but the first ``max_proposals``:
the order is OpenCV's ranking (randomised by level, as in the selective-search paper).

OpenCV ranks regions with the C library's ``rand()``; the result of one image would then depend
on what ran before it in the same process. We reseed ``rand()`` before every image (through
``ctypes``), so an image's proposals are the same whichever worker computed it, in whatever
order. Where the C library cannot be found (some Windows builds) the ranking is not reseeded.

An image with no proposal (every box smaller than ``min_size``, e.g. a 1x1 image) gives an
empty ``Tensor[0, 4]``; a constant image gives one box, the whole image. Downstream code must
accept ``P = 0`` (:func:`proposal_recall` does; training adds the gt boxes to the proposals).

The cache
---------
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
``proposals.pt`` (``ids``, ``counts`` Tensor[N], ``boxes`` Tensor[sum P, 4], int16 when every
coordinate is a small integer, else float32) and ``parts/`` is removed. ``key.json`` records the
key in readable form.

The cache stores every box OpenCV returns (deduplicated); ``cfg.proposal_min_size`` and
``cfg.proposals_per_image`` are applied when loading, so changing them needs no recomputation,
and ``load_proposals(ds, cfg)[i]`` equals ``selective_search(image_i, mode, min_size,
max_proposals)`` exactly.

Recall
------
:func:`proposal_recall` measures the fraction of ground-truth boxes (difficult ones excluded, as in
VOC evaluation) that have at least one proposal with IoU >= t among the top N of their image, for
several thresholds t and several N; :func:`plot_recall` draws it.

Command line::

    python -m fastrcnn_lite.proposals --profile embedded            # both splits, fast mode
    python -m fastrcnn_lite.proposals --profile full --mode quality --split test
    python -m fastrcnn_lite.proposals --data-root ../shared/data/voc07-micro --split test
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import math
import multiprocessing
import os
import shutil
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .boxes import box_iou
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

__all__ = [
    "MODES",
    "selective_search",
    "load_proposals",
    "proposal_cache_dir",
    "RecallTable",
    "proposal_recall",
    "plot_recall",
    "main",
]

MODES = ("fast", "quality")
CACHE_FORMAT = 1  # bump when the stored layout or the meaning of the boxes changes
RANK_SEED = 1  # seed of the C library's rand() before each image (1 = glibc's default)
DEFAULT_TOP_N = (1, 10, 50, 100, 200, 500, 1000, 2000)


# ----------------------------------------------------------------------------------------------
# Selective search on one image
# ----------------------------------------------------------------------------------------------


def _find_libc():
    try:
        name = ctypes.util.find_library("c")
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


_LIBC = _find_libc()


def _rank_seed() -> str:
    """What the key records about the ranking's random seed."""
    return str(RANK_SEED) if _LIBC is not None else "unseeded"


def _to_bgr_uint8(image) -> np.ndarray:
    """An RGB image (Tensor[3, H, W] float in [0, 1] or uint8, or ndarray[H, W, 3] uint8) as
    the contiguous BGR uint8 ndarray[H, W, 3] OpenCV expects."""
    if isinstance(image, Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(
                f"image must be Tensor[3, H, W] (RGB, what VOCDataset returns); got shape {tuple(image.shape)}."
                + (
                    " For a batch, call selective_search once per image."
                    if image.dim() == 4
                    else ""
                )
            )
        if image.is_floating_point():
            image = (image.detach().float() * 255).round().clamp(0, 255).to(torch.uint8)
        elif image.dtype != torch.uint8:
            raise TypeError(f"image must be float in [0, 1] or uint8; got dtype {image.dtype}.")
        array = image.permute(1, 2, 0).cpu().numpy()  # (H, W, 3) RGB
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"image must be an ndarray[H, W, 3] RGB uint8; got shape {image.shape}."
                + (
                    " For a grey image use np.stack([image] * 3, axis=-1)."
                    if image.ndim == 2
                    else ""
                )
            )
        if image.dtype != np.uint8:
            raise TypeError(
                f"an ndarray image must be uint8 (0..255); got dtype {image.dtype}. Use (image * 255).round().astype(np.uint8)."
            )
        array = image
    else:
        raise TypeError(
            f"image must be a Tensor[3, H, W] or an ndarray[H, W, 3]; got {type(image).__name__}."
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"image is empty: {array.shape[1]}x{array.shape[0]} pixels.")
    return np.ascontiguousarray(array[:, :, ::-1])  # (H, W, 3) BGR


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(
            f"mode must be one of {MODES} (selective search fast or quality); got {mode!r}."
        )
    return mode


def _check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ValueError(
            f"scale must be a positive number (1.0 = the image as it is); got {scale!r}."
        )
    return float(scale)


def _search_bgr(bgr: np.ndarray, mode: str, scale: float) -> np.ndarray:
    """Every box OpenCV proposes for a BGR uint8 image, best-ranked first, deduplicated.

    Returns:
        ndarray[P, 4]: continuous (x1, y1, x2, y2) in the pixels of the *unscaled* image,
        int32 when ``scale == 1``, else float32 (clipped to the image).
    """
    height, width = bgr.shape[:2]
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))  # (w, h) for OpenCV
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(bgr)
    if mode == "fast":
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
    if _LIBC is not None:
        _LIBC.srand(RANK_SEED)
    rects = np.asarray(search.process(), dtype=np.int64).reshape(-1, 4)  # (P, 4) x, y, w, h
    boxes = np.concatenate(
        [rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1
    )  # (P, 4) x1 y1 x2 y2
    if scale != 1.0:
        boxes = boxes.astype(np.float64) / scale
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        boxes = boxes.astype(np.float32)
    else:
        boxes = boxes.astype(np.int32)
    return _dedup(boxes)


def _dedup(boxes: np.ndarray) -> np.ndarray:
    """Drop repeated rows, keeping the first (best-ranked) copy and the order."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4)
    _, first = np.unique(boxes, axis=0, return_index=True)
    return boxes[np.sort(first)]


def _finish(boxes: np.ndarray, min_size: float, max_proposals: int | None) -> Tensor:
    """Stored boxes -> Tensor[P, 4] float32: drop small boxes, keep the first max_proposals."""
    out = torch.from_numpy(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))  # (P, 4)
    wh = out[:, 2:] - out[:, :2]  # (P, 2)
    out = out[(wh >= min_size).all(dim=1)]
    if max_proposals is not None:
        out = out[:max_proposals]
    return out.contiguous()


def _check_limits(min_size, max_proposals) -> None:
    if isinstance(min_size, bool) or not isinstance(min_size, (int, float)) or min_size < 0:
        raise ValueError(f"min_size must be a number >= 0 (pixels); got {min_size!r}.")
    if max_proposals is not None and (
        isinstance(max_proposals, bool) or not isinstance(max_proposals, int) or max_proposals < 0
    ):
        raise ValueError(f"max_proposals must be None (all) or an int >= 0; got {max_proposals!r}.")


def selective_search(
    image,
    mode: str = "fast",
    min_size: float = 2,
    max_proposals: int | None = None,
    *,
    scale: float = 1.0,
) -> Tensor:
    """Selective-search proposals for one image (OpenCV), best-ranked first.

    Args:
        image (Tensor[3, H, W] float in [0, 1] or uint8, or ndarray[H, W, 3] uint8): an RGB
            image (what ``VOCDataset`` returns, or ``np.asarray(PIL_image)``).
        mode: ``"fast"`` (R-CNN's choice: a few colour spaces, segmentation thresholds and
            similarity combinations) or ``"quality"`` (more of each; about 3x the boxes and
            3-4x the time).
        min_size: drop boxes narrower or shorter than this (pixels).
        max_proposals: keep at most this many (None = all).
        scale: run the search on the image resized by this factor and map the boxes back
            (clipped to the image); 1.0 = as is. Values above 1 give more, smaller regions.

    Returns:
        Tensor[P, 4] float32: continuous (x1, y1, x2, y2) pixels; ``P = 0`` (shape (0, 4)) when no
        box survives ``min_size`` (e.g. a 1x1 image).
    """
    _check_mode(mode)
    _check_limits(min_size, max_proposals)
    scale = _check_scale(scale)
    bgr = _to_bgr_uint8(image)
    return _finish(_search_bgr(bgr, mode, scale), min_size, max_proposals)


# ----------------------------------------------------------------------------------------------
# The disk cache
# ----------------------------------------------------------------------------------------------


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
        context.set_forkserver_preload(["fastrcnn_lite.proposals"])
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
    from .progress import tqdm

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
    counts = torch.tensor([len(r) for r in results], dtype=torch.int64)  # (N,)
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


# ----------------------------------------------------------------------------------------------
# Recall
# ----------------------------------------------------------------------------------------------


@dataclass
class RecallTable:
    """Proposal recall for several numbers of proposals (rows) and IoU thresholds (columns).

    Attributes:
        recall (Tensor[M, T]): recall[m, t] = fraction of gt boxes with IoU >= iou_thresholds[t]
            to at least one of the top ``top_n[m]`` proposals of their image.
        iou_thresholds (Tensor[T]): float64.
        top_n (tuple[int, ...]): M numbers of proposals (an image with fewer uses all of its own).
        num_gt (int): gt boxes counted (difficult ones excluded unless asked).
        num_images (int): images.
        mean_proposals (float): mean number of proposals per image available.
    """

    recall: Tensor
    iou_thresholds: Tensor
    top_n: tuple[int, ...]
    num_gt: int
    num_images: int
    mean_proposals: float

    def at(self, top_n: int, iou: float) -> float:
        """Recall with the top ``top_n`` proposals at IoU threshold ``iou`` (both must be in the table)."""
        if top_n not in self.top_n:
            raise ValueError(f"top_n={top_n} is not in this table; it has {self.top_n}.")
        close = (self.iou_thresholds - iou).abs() < 1e-9
        if not close.any():
            raise ValueError(
                f"iou={iou} is not in this table; it has {[round(t, 3) for t in self.iou_thresholds.tolist()]}."
            )
        return float(self.recall[self.top_n.index(top_n), int(close.nonzero()[0, 0])])

    def average_recall(self) -> Tensor:
        """Tensor[M]: recall averaged over the thresholds in [0.5, 1] (AR, Hosang et al. 2015)."""
        keep = self.iou_thresholds >= 0.5 - 1e-9
        return self.recall[:, keep].mean(dim=1)

    def __str__(self) -> str:
        head = (
            f"{'top N':>7} "
            + " ".join(f"{t:>5.2f}" for t in self.iou_thresholds.tolist())
            + "    AR"
        )
        lines = [
            f"proposal recall: {self.num_gt} gt boxes in {self.num_images} images, "
            f"{self.mean_proposals:.1f} proposals per image on average",
            f"{'':>7} IoU threshold",
            head,
        ]
        for m, n in enumerate(self.top_n):
            values = " ".join(f"{r:5.3f}" for r in self.recall[m].tolist())
            lines.append(f"{n:>7} {values} {float(self.average_recall()[m]):5.3f}")
        return "\n".join(lines)


def proposal_recall(
    proposals_list: list[Tensor],
    targets: list,
    iou_thresholds=(0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
    top_n=DEFAULT_TOP_N,
    use_difficult: bool = False,
) -> RecallTable:
    """Recall of proposals against ground truth, vs IoU threshold and vs number of proposals.

    Args:
        proposals_list (list[Tensor[P_i, 4]]): per image, best-ranked first; ``P_i`` may be 0.
        targets: per image, a target dict (``boxes`` Tensor[G, 4], optional ``difficult``
            Tensor[G] bool), as ``VOCDataset.load_target`` returns, or a Tensor[G, 4] of gt boxes.
        iou_thresholds: T thresholds; a gt box counts as found at t when IoU >= t.
        top_n: M numbers of proposals (the first N of each image).
        use_difficult: count difficult gt boxes too (default False: VOC evaluation ignores them).

    Returns:
        RecallTable (``print`` it; ``.at(n, iou)``; :func:`plot_recall`).
    """
    if not isinstance(proposals_list, (list, tuple)) or not isinstance(targets, (list, tuple)):
        raise TypeError(
            "proposal_recall expects a list of per-image proposals and a list of per-image targets; "
            f"got {type(proposals_list).__name__} and {type(targets).__name__}."
        )
    if len(proposals_list) != len(targets):
        raise ValueError(
            f"got proposals for {len(proposals_list)} images but targets for {len(targets)}; they must match image for image."
        )
    thresholds = torch.as_tensor(iou_thresholds, dtype=torch.float64).reshape(-1)  # (T,)
    top_n = tuple(int(n) for n in top_n)
    if len(top_n) == 0 or min(top_n) < 1:
        raise ValueError(f"top_n must be a non-empty list of ints >= 1; got {top_n}.")
    hits = torch.zeros(len(top_n), len(thresholds), dtype=torch.float64)  # (M, T)
    num_gt = 0
    counts = []
    for i, (proposals, target) in enumerate(zip(proposals_list, targets, strict=True)):
        if isinstance(target, dict):
            gt = target["boxes"]
            if not use_difficult and "difficult" in target:
                gt = gt[~target["difficult"]]
        else:
            gt = target
        if not (isinstance(proposals, Tensor) and proposals.dim() == 2 and proposals.shape[1] == 4):
            shape = (
                tuple(proposals.shape)
                if isinstance(proposals, Tensor)
                else type(proposals).__name__
            )
            raise ValueError(
                f"proposals_list[{i}] must be Tensor[P, 4] (x1, y1, x2, y2); got {shape}."
            )
        counts.append(len(proposals))
        num_gt += len(gt)
        if len(gt) == 0 or len(proposals) == 0:
            continue  # no gt: nothing to find; no proposals: every gt of this image is missed
        iou = box_iou(gt.double(), proposals.double())  # (G, P)
        best_so_far = iou.cummax(dim=1).values  # (G, P): best IoU among the first p + 1 proposals
        for m, n in enumerate(top_n):
            best = best_so_far[:, min(n, len(proposals)) - 1]  # (G,)
            hits[m] += (best[:, None] >= thresholds[None, :]).sum(dim=0)  # (T,)
    recall = hits / max(num_gt, 1)
    mean = float(np.mean(counts)) if counts else 0.0
    return RecallTable(recall.float(), thresholds, top_n, num_gt, len(targets), mean)


def plot_recall(
    table: RecallTable,
    axes=None,
    label: str | None = None,
    ious=(0.5, 0.7),
    top_n=None,
    **style,
):
    """Two panels: recall vs IoU threshold (one line per top N) and recall vs N (one line per IoU).

    Args:
        table: from :func:`proposal_recall`.
        axes: two matplotlib Axes; None = a new (10, 4) figure.
        label: prefix for the legend entries (to overlay, say, fast and quality on the same axes).
        ious: the thresholds drawn in the right panel (those present in the table).
        top_n: the numbers of proposals drawn in the left panel (None = every row of the table).
        **style: passed to ``Axes.plot`` (e.g. ``linestyle="--"`` for a second table).

    Returns:
        The two Axes.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4))
    prefix = f"{label}: " if label else ""
    left, right = axes
    thresholds = table.iou_thresholds.tolist()
    for m, n in enumerate(table.top_n):
        if top_n is None or n in top_n:
            left.plot(
                thresholds, table.recall[m].tolist(), marker=".", label=f"{prefix}top {n}", **style
            )
    left.set(
        xlabel="IoU threshold", ylabel="recall", ylim=(0, 1.02), title="recall vs IoU threshold"
    )
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    for iou in ious:
        close = ((table.iou_thresholds - iou).abs() < 1e-9).nonzero()
        if len(close):
            right.plot(
                table.top_n,
                table.recall[:, int(close[0, 0])].tolist(),
                marker="o",
                label=f"{prefix}IoU {iou:g}",
                **style,
            )
    right.set(
        xscale="log",
        xlabel="number of proposals N (top N per image)",
        ylabel="recall",
        ylim=(0, 1.02),
        title="recall vs number of proposals",
    )
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=7)
    return axes


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    # Run through the imported module, so that the worker pool pickles
    # fastrcnn_lite.proposals._compute_file, not __main__._compute_file (python -m ...).
    from . import data
    from . import proposals as module
    from .voc import VOCDataset

    parser = argparse.ArgumentParser(
        description="Compute and cache selective-search proposals, then print their recall."
    )
    parser.add_argument(
        "--profile",
        choices=("embedded", "full"),
        default="embedded",
        help="Config.embedded() or Config()",
    )
    parser.add_argument(
        "--mode", choices=MODES, default=None, help="selective search mode (default: the profile's)"
    )
    parser.add_argument(
        "--split",
        default="all",
        help="trainval, test, ... or 'all' (the profile's train and test sets)",
    )
    parser.add_argument(
        "--data-root", default=None, help="a folder holding VOCdevkit/ (default: the profile's)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default: cfg.num_workers)"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="resize factor before selective search"
    )
    args = parser.parse_args(argv)

    cfg = Config.embedded() if args.profile == "embedded" else Config()
    if args.data_root is not None:
        cfg = cfg.replace(data_root=args.data_root)
    root = data.dataset_root(cfg)  # the embedded data is generated there if it is missing
    classes = data.read_classes(root, cfg.year)  # the dataset's own (classes.txt, else VOC's)
    splits = (cfg.train_set, cfg.test_set) if args.split == "all" else (args.split,)
    for split in splits:
        dataset = VOCDataset(root, cfg.year, split, classes)
        start = time.perf_counter()
        proposals = module.load_proposals(
            dataset, cfg, args.mode, scale=args.scale, num_workers=args.workers
        )
        seconds = time.perf_counter() - start
        folder = proposal_cache_dir(dataset, cfg, args.mode, scale=args.scale)
        size = (folder / "proposals.pt").stat().st_size
        print(
            f"{split}: {len(dataset)} images in {seconds:.1f} s; cache {folder} ({size / 2**20:.1f} MiB)"
        )
        targets = [dataset.load_target(i) for i in range(len(dataset))]
        top_n = tuple(n for n in DEFAULT_TOP_N if n <= cfg.proposals_per_image)
        print(proposal_recall(proposals, targets, top_n=top_n))
    return 0


if __name__ == "__main__":
    from fastrcnn_lite.cli import run

    run(main)
