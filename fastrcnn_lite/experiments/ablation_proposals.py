"""Number and kind of proposals vs mAP and average recall (paper section 5.5, Fig. 3), test only.

Data-flow stage: **proposals** changed at test time on a trained Fast R-CNN: the top k
selective-search boxes of each image, sliding-window dense boxes (:func:`dense_boxes`), and
both together. One conv pass per test image: all the boxes (Tensor[P + P_dense, 4]) are
RoI-pooled from it and scored by the one head, and each variant keeps its own slice. Passes on
a curve (proposals per image, mAP, average recall over IoU 0.5..0.95 (:data:`IOU_THRESHOLDS`),
recall at 0.5) and the intervals of ``ablation_stats.py``. The paper re-trains the network for
each setting; here the model trained on selective search is only *tested* on the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..config import Config
from ..fast_rcnn import FastRCNN
from ..progress import tqdm
from ..proposals import proposal_recall
from ..regions import load_image, load_target
from .ablation_common import (
    cached_result,
    check_inputs,
    evaluation_key,
    pooled_features,
    to_cpu,
    voc07_map,
)
from .ablation_stats import ar_interval, map_interval

__all__ = ["IOU_THRESHOLDS", "dense_boxes", "proposal_ablation"]

IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # AR: 0.5, 0.55, ..., 0.95


def dense_boxes(
    height: int,
    width: int,
    sizes: Sequence[float] = (16, 32, 64, 128),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    stride_fraction: float = 0.5,
) -> Tensor:
    """Sliding windows over position, scale and aspect ratio: the paper's "dense boxes" (section 5.5).

    For each size s and aspect ratio r (height / width) a window of width ``s / sqrt(r)`` and
    height ``s * sqrt(r)`` (area s^2) slides over the image in steps of ``stride_fraction`` of
    its width and height; every position lies inside the image, and the grid is centred (equal
    margins left and right, top and bottom). A window larger than the image is skipped. Per size
    and ratio that is ``(floor((width - w) / step_x) + 1) * (floor((height - h) / step_y) + 1)``
    windows. The defaults give about 2000 boxes on a 190 x 190 embedded image, about 12 times its
    selective-search boxes (the paper: 45k dense against 2k selective-search boxes, 22 times).

    Notebook 07 tests the trained model on them (section 9); notebook 01's exercises ask for one.

    Args:
        height, width: the image's size in pixels (the pixels the boxes are in).
        sizes: square-root areas s of the windows, in pixels.
        aspect_ratios: r = height / width of the windows.
        stride_fraction: the step, as a fraction of the window's side (0.5: half-overlapping).

    Returns:
        Tensor[P, 4] float32 (P windows: proposals, of another kind), (x1, y1, x2, y2) continuous
        pixels, by size, then ratio, then rows (y) and columns (x).
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1 pixel; got {height} x {width}.")
    if not 0 < stride_fraction <= 1:
        raise ValueError(
            f"stride_fraction must be in (0, 1] (of the window's side); got {stride_fraction}."
        )
    if not sizes or min(sizes) <= 0 or not aspect_ratios or min(aspect_ratios) <= 0:
        raise ValueError(
            f"sizes and aspect_ratios must be non-empty and positive; got {tuple(sizes)} and {tuple(aspect_ratios)}."
        )
    out = []
    for s in sizes:
        for r in aspect_ratios:
            w, h = s / math.sqrt(r), s * math.sqrt(r)
            if w > width or h > height:
                continue
            step_x, step_y = stride_fraction * w, stride_fraction * h
            nx, ny = (
                math.floor((width - w) / step_x + 1e-9) + 1,
                math.floor((height - h) / step_y + 1e-9) + 1,
            )
            x1 = (width - w - (nx - 1) * step_x) / 2 + step_x * torch.arange(
                nx, dtype=torch.float64
            )  # (nx,)
            y1 = (height - h - (ny - 1) * step_y) / 2 + step_y * torch.arange(
                ny, dtype=torch.float64
            )  # (ny,)
            yy, xx = torch.meshgrid(y1, x1, indexing="ij")  # (ny, nx) each
            corners = torch.stack([xx, yy, xx + w, yy + h], dim=-1).reshape(-1, 4)  # (ny * nx, 4)
            out.append(corners)
    if not out:
        return torch.zeros(0, 4)
    return torch.cat(out).float()


def _recall_hits(boxes: Tensor, target: dict) -> tuple[Tensor, int]:
    """(Tensor[T] float64: gt boxes of the image found at each IoU of :data:`IOU_THRESHOLDS`, gt boxes
    counted), from :func:`~fastrcnn_lite.proposals.proposal_recall` on this one image."""
    table = proposal_recall([boxes], [target], IOU_THRESHOLDS, top_n=(max(len(boxes), 1),))
    return table.recall[0].double() * table.num_gt, table.num_gt


def proposal_ablation(
    model: FastRCNN,
    cfg: Config,
    test_ds,
    test_proposals: Sequence[Tensor],
    top_k: Sequence[int] = (10, 20, 40, 80),
    fewer: int = 80,
    dense: dict | None = None,
    rounds: int = 200,
    progress: bool = True,
) -> dict:
    """Number and kind of proposals vs mAP and average recall (paper section 5.5, Fig. 3), test only.

    Notebook 07 runs it (section 9).

    Variants per image: the top k selective-search proposals for each k in ``top_k`` (an image
    with fewer keeps all of its own), all of them, :func:`dense_boxes` alone, and all
    selective-search boxes plus the dense ones. One conv pass per image; every variant's boxes
    are RoI-pooled from it and scored by the one head.

    Args:
        model, cfg, test_ds, test_proposals: as
            :func:`~fastrcnn_lite.experiments.ablation_svd.svd_rank_ablation`.
        top_k: the k of the curve.
        fewer: the k of the table's "fewer proposals" row (added to ``top_k`` if missing).
        dense: keyword arguments of :func:`dense_boxes` (None: its defaults).
        rounds: bootstrap draws.

    Returns:
        dict with ``curve``: one dict per variant (``name``: "top k" / "all" / "dense" /
        "all + dense"; ``k`` (None unless top k); ``proposals_per_image`` (mean); ``map``;
        ``average_recall``; ``recall_at_0.5``); ``fewer``; ``map_fewer``, ``ar_fewer`` (top
        ``fewer`` - all), ``map_dense``, ``ar_dense`` (dense - all), ``map_all_dense``,
        ``ar_all_dense`` (all + dense - all): intervals; ``dense`` (its settings),
        ``num_test_images``, ``from_cache``.
    """
    check_inputs(model, test_ds, test_proposals)
    top_k = sorted({int(k) for k in top_k} | {int(fewer)})
    dense = dict(dense or {})
    settings = {"top_k": top_k, "fewer": fewer, "dense": sorted(dense.items()), "rounds": rounds}
    key = evaluation_key(model, test_ds, test_proposals) | settings

    def compute() -> dict:
        return _proposals(model, test_ds, test_proposals, top_k, fewer, dense, rounds, progress)

    return cached_result(cfg, "ablation_proposals", key, compute)


def _proposals(model, test_ds, test_props, top_k, fewer, dense, rounds, progress) -> dict:
    model.eval()
    device = next(model.parameters()).device
    names = [f"top {k}" for k in top_k] + ["all", "dense", "all + dense"]
    targets = [load_target(test_ds, i) for i in range(len(test_ds))]
    detections = {n: [] for n in names}
    hits = {n: [] for n in names}
    counts = {n: [] for n in names}
    num_gt = []
    with torch.inference_mode():
        for i in tqdm(range(len(test_ds)), desc="proposals", disable=not progress):
            image, props = load_image(test_ds, i).to(device), test_props[i].float().to(device)
            size = tuple(image.shape[-2:])
            grid = dense_boxes(*size, **dense).to(device)  # (P_dense, 4)
            boxes = torch.cat([props, grid])  # (P + P_dense, 4)
            logits, deltas = model.head(
                pooled_features(model, image, boxes, model.test_scales[0], model.max_size)
            )
            p = len(props)
            parts = {f"top {k}": slice(0, min(k, p)) for k in top_k}
            parts |= {
                "all": slice(0, p),
                "dense": slice(p, len(boxes)),
                "all + dense": slice(0, len(boxes)),
            }
            for n, part in parts.items():
                chosen = boxes[part]
                det = (model.postprocess(logits[part], deltas[part], chosen, size) if len(chosen)
                       else model._empty_detections(device))  # fmt: skip
                detections[n].append(to_cpu(det))
                found, gt = _recall_hits(chosen.cpu(), targets[i])
                hits[n].append(found)
                counts[n].append(len(chosen))
            num_gt.append(gt)
    classes = test_ds.classes
    hits = {n: torch.stack(h) for n, h in hits.items()}  # (N, T) each
    gt = torch.tensor(num_gt, dtype=torch.float64)  # (N,)
    curve = [{"name": n, "k": int(n[4:]) if n.startswith("top ") else None,
              "proposals_per_image": sum(counts[n]) / max(len(counts[n]), 1),
              "map": voc07_map(detections[n], targets, classes),
              "average_recall": float(hits[n].sum(0).mean() / gt.sum()),
              "recall_at_0.5": float(hits[n].sum(0)[0] / gt.sum())} for n in names]  # fmt: skip
    out = {"curve": curve, "fewer": fewer, "dense": dense, "num_test_images": len(test_ds)}
    for label, name in (
        ("fewer", f"top {fewer}"),
        ("dense", "dense"),
        ("all_dense", "all + dense"),
    ):
        out[f"map_{label}"] = map_interval(
            detections[name], detections["all"], targets, classes, rounds
        )
        out[f"ar_{label}"] = ar_interval(hits[name], hits["all"], gt, rounds)
    return out
