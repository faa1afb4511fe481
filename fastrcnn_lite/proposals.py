"""Region proposals: selective search (OpenCV) on one image, and proposal recall.

Data-flow stage: **proposals** (image -> *proposals* -> backbone feature map -> ...). R-CNN,
SPPnet and Fast R-CNN all score category-independent region proposals computed once per image
by selective search in "fast" mode, about 2000 per image (R-CNN section 2.1; Fast R-CNN
sections 4 and 5.5, "Do more proposals help?"). The proposals are not learned: they are computed
before training and cached on disk, exactly as the original systems did. This module passes on
one ``Tensor[P, 4]`` of boxes per image.

This module is the algorithm a learner reads (notebook 01). Around it:
``proposal_cache.py`` computes a whole split once, in parallel and resumable
(:func:`~fastrcnn_lite.proposal_cache.load_proposals`, what the systems call),
``proposals_cli.py`` is the command below, ``teaching/data_plots.py`` draws a
:class:`RecallTable` (``plot_recall``).

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

Recall
------
:func:`proposal_recall` measures the fraction of ground-truth boxes (difficult ones excluded, as in
VOC evaluation) that have at least one proposal with IoU >= t among the first n of their image, for
several thresholds t and several n; ``fastrcnn_lite.teaching.data_plots.plot_recall`` draws it.

Command line (``proposals_cli.py``; computes the cache, then prints the recall)::

    python -m fastrcnn_lite.proposals --profile embedded            # both splits, fast mode
    python -m fastrcnn_lite.proposals --profile full --mode quality --split test
    python -m fastrcnn_lite.proposals --data-root ../shared/data/voc07-micro --split test
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from .boxes import box_iou

__all__ = [
    "MODES",
    "DEFAULT_TOP_N",
    "selective_search",
    "RecallTable",
    "proposal_recall",
]

MODES = ("fast", "quality")
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

    Notebook 01 teaches this (and runs it on photos and on the embedded data).

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
# Recall
# ----------------------------------------------------------------------------------------------


@dataclass
class RecallTable:
    """Proposal recall for several numbers of proposals (rows) and IoU thresholds (columns).

    Notebook 01 prints and plots these tables (fast vs quality, embedded vs real photos).

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

    Notebook 01 teaches this (its graded exercise ``check_recall`` compares against it).

    Args:
        proposals_list (list[Tensor[P_i, 4]]): per image, best-ranked first; ``P_i`` may be 0.
        targets: per image, a target dict (``boxes`` Tensor[G, 4], optional ``difficult``
            Tensor[G] bool), as ``VOCDataset.load_target`` returns, or a Tensor[G, 4] of gt boxes.
        iou_thresholds: T thresholds; a gt box counts as found at t when IoU >= t.
        top_n: M numbers of proposals n (the first n of each image).
        use_difficult: count difficult gt boxes too (default False: VOC evaluation ignores them).

    Returns:
        RecallTable (``print`` it; ``.at(n, iou)``;
        ``fastrcnn_lite.teaching.data_plots.plot_recall`` draws it).
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


if __name__ == "__main__":
    from fastrcnn_lite.cli import run
    from fastrcnn_lite.proposals_cli import main

    run(main)
