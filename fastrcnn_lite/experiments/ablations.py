"""The paper's ablations that need no retraining, on a trained Fast R-CNN, next to the paper's numbers.

Data-flow stage: **experiments on trained detectors** (image -> proposals -> conv map -> RoI pool
-> heads -> detections -> VOC07 mAP, with one stage changed at test time). Each experiment takes
the trained :class:`~fastrcnn_lite.fast_rcnn.FastRCNN` and the test split, changes one thing and
measures what the paper measured:

* :func:`svd_rank_ablation`, paper section 3.1 and Fig. 2: fc6 compressed by truncated SVD at
  several ranks (fc7 at ``cfg.svd_rank_fc7``), against the uncompressed model: mAP, test time
  per image and the fc6 + fc7 time per image.
* :func:`proposal_ablation`, section 5.5 and Fig. 3: the top-k selective-search proposals of each
  image for several k, sliding-window **dense boxes** (:func:`dense_boxes`) alone and added to
  selective search: mAP and average recall (AR, the mean recall over IoU 0.5..0.95). The paper
  re-trains the network for each setting; here the model trained on selective search is only
  *tested* on the others.
* :func:`svm_ablation`, section 5.4 and Table 8: one-vs-rest linear SVMs trained with hard-negative
  mining (``fastrcnn_lite.svm.train_svms`` on ``fastrcnn_lite.region_heads.SVMRegions``, R-CNN's
  training set: gt boxes positive, IoU < ``cfg.svm_neg_iou`` negative) on the model's own fc7 of
  every training proposal, against its softmax; both use the model's ``bbox_pred`` boxes.

Conventions:

* **One conv pass per image.** A test image goes through the conv layers once per experiment;
  every variant of that experiment reuses its RoI-pooled features (an SVD copy changes only fc6
  and fc7; a proposal subset is a subset of the pooled boxes), which gives the same detections as
  running each variant alone. Single test scale only (``model.test_scales`` of length 1).
* **Intervals.** Every comparison is paired over the test images and comes with a 95% bootstrap
  interval (200 draws): mAP differences from :func:`fastrcnn_lite.experiments.compare.map_difference`;
  AR differences and time ratios from the same draws of images, made here.
* **Time** is :mod:`fastrcnn_lite.timing`'s test time per image (the median over images,
  variants interleaved image by image, decoding and proposals outside the clock) on the first
  ``timing_images`` test images. The fc6 + fc7 time is the same clock around ``head.fc`` on each
  image's pooled features. A time is reported relative to the uncompressed model's:
  ``ratio - 1`` (the paper: 223 / 320 - 1 = -30%).
* **Cache.** Each experiment's result is a plain dict (JSON) stored under ``cfg.cache_dir`` by
  :func:`~fastrcnn_lite.checkpoint.cache_path`, keyed by every config field, the model's weights,
  the test split and its proposals (and the training split for the SVMs) and the experiment's
  settings: a changed setting recomputes, an unchanged one loads (times included: those measured
  when it was computed; ``from_cache`` says which).

**Verdict rule** (:func:`verdict`), for a difference d = ours (variant) - ours (reference) with
bootstrap interval [low, high] and the sign s of the paper's difference:

* "within noise": the interval contains 0 (this test set cannot tell the two apart);
* "reproduced in kind": the interval excludes 0 and d has the sign s of the paper's;
* "not reproduced": the interval excludes 0 and d has the opposite sign.

"In kind" because the backbone, the data and the scale differ: the direction is compared, not
the size. Where the paper's own difference is a fraction of a point (SVD's -0.3, SVMs' -0.1 to
-0.8), "within noise" is what its claim ("little or no loss") predicts.

:func:`ablation_table` lists every comparison: ours, the paper's, our difference and interval,
the paper's difference and the verdict; :func:`plot_ablations` draws the SVD and proposal curves.
Taught in ``notebooks/07_comparison.ipynb`` (section 9). Ablations that need retraining (Tables
5, 6 and 7, which layers to fine-tune, multi-task training, multi-scale training) are not here.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import Tensor

from ..boxes import decode_boxes
from ..checkpoint import cache_path, module_digest, proposals_digest, write_json
from ..config import Config
from ..detect import postprocess_detections
from ..detector import SYSTEMS
from ..evaluate import evaluate_detections
from ..fast_rcnn import FastRCNN
from ..progress import tqdm
from ..proposals import proposal_recall
from ..region_heads import SVM_SCORE_THRESH, SVMRegions
from ..regions import check_proposals, dataset_key, load_image, load_target
from ..svd import truncated_svd
from ..svm import train_svms
from ..teaching.paper import FIG2_SVD, FIG3_PROPOSALS, TABLE8_SOFTMAX_SVM
from ..timing import time_per_image
from ..transforms import resize, scale_factor
from ..voc import gt_for_training
from .compare import map_difference, reports_folder

__all__ = [
    "VERDICTS",
    "IOU_THRESHOLDS",
    "dense_boxes",
    "verdict",
    "map_interval",
    "svd_rank_ablation",
    "proposal_ablation",
    "svm_ablation",
    "ablation_table",
    "save_report",
    "plot_ablations",
]

VERDICTS = ("reproduced in kind", "not reproduced", "within noise")
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # AR: 0.5, 0.55, ..., 0.95
CACHE_VERSION = 1  # bump when the computation of a cached result changes


# ----------------------------------------------------------------------------------------------
# Dense boxes, the verdict, intervals
# ----------------------------------------------------------------------------------------------
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

    Args:
        height, width: the image's size in pixels (the pixels the boxes are in).
        sizes: square-root areas s of the windows, in pixels.
        aspect_ratios: r = height / width of the windows.
        stride_fraction: the step, as a fraction of the window's side (0.5: half-overlapping).

    Returns:
        Tensor[D, 4] float32, (x1, y1, x2, y2) continuous pixels, by size, then ratio, then rows
        (y) and columns (x).
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


def verdict(low: float, high: float, paper_sign: float) -> str:
    """The module docstring's rule: "within noise" when [low, high] contains 0, else "reproduced
    in kind" when the interval lies on the side of 0 of ``paper_sign`` (the sign of the paper's
    difference), else "not reproduced"."""
    if paper_sign == 0 or math.isnan(low) or math.isnan(high):
        raise ValueError(
            f"need a paper sign (+1 or -1) and a finite interval; got sign {paper_sign}, [{low}, {high}]."
        )
    if low <= 0 <= high:
        return "within noise"
    return "reproduced in kind" if (low > 0) == (paper_sign > 0) else "not reproduced"


def map_interval(
    detections: Sequence[dict],
    reference: Sequence[dict],
    targets: Sequence[dict],
    classes: Sequence[str],
    rounds: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """VOC07 mAP of ``detections`` minus that of ``reference`` (the same test images) with the
    paired bootstrap interval of :func:`fastrcnn_lite.experiments.compare.map_difference`: ``difference``,
    ``low``, ``high``, ``level``, ``rounds``, ``fraction_above_zero``.

    An adapter: ``map_difference`` reads a :func:`~fastrcnn_lite.experiments.compare.compare_detectors`
    result (four systems); here two lists of detections fill one.
    """
    result = {
        "systems": dict.fromkeys(SYSTEMS, {}),
        "detections": {"variant": list(detections), "reference": list(reference)},
        "targets": list(targets),
        "test_ds": SimpleNamespace(classes=tuple(classes)),
    }
    return map_difference(result, "variant", "reference", rounds, level, seed)


def _draws(n: int, rounds: int, seed: int) -> Tensor:
    """Tensor[rounds, n] int64: bootstrap draws of n images with replacement."""
    return torch.randint(n, (rounds, n), generator=torch.Generator().manual_seed(seed))


def _interval(values: Tensor, value: float, level: float, rounds: int) -> dict:
    tail = (1 - level) / 2
    values = values[~values.isnan()].double()
    return {"difference": float(value), "low": float(torch.quantile(values, tail)),
            "high": float(torch.quantile(values, 1 - tail)), "level": level, "rounds": rounds,
            "fraction_above_zero": float((values > 0).double().mean())}  # fmt: skip


def _time_ratio_interval(seconds: Tensor, reference: Tensor, rounds: int = 200, level: float = 0.95,
                         seed: int = 0) -> dict:  # fmt: skip
    """median(seconds) / median(reference) - 1 over paired per-image times (Tensor[n] each), with a
    bootstrap interval over the images."""
    index = _draws(len(seconds), rounds, seed)  # (rounds, n)
    ratio = (
        seconds[index].median(dim=1).values / reference[index].median(dim=1).values - 1
    )  # (rounds,)
    return _interval(ratio, float(seconds.median() / reference.median() - 1), level, rounds)


def _recall_hits(boxes: Tensor, target: dict) -> tuple[Tensor, int]:
    """(Tensor[T] float64: gt boxes of the image found at each IoU of :data:`IOU_THRESHOLDS`, gt boxes
    counted), from :func:`~fastrcnn_lite.proposals.proposal_recall` on this one image."""
    table = proposal_recall([boxes], [target], IOU_THRESHOLDS, top_n=(max(len(boxes), 1),))
    return table.recall[0].double() * table.num_gt, table.num_gt


def _ar_interval(hits: Tensor, reference: Tensor, num_gt: Tensor, rounds: int = 200, level: float = 0.95,
                 seed: int = 0) -> dict:  # fmt: skip
    """AR(hits) - AR(reference), hits Tensor[n, T] per image, num_gt Tensor[n]; bootstrap over images."""
    index = _draws(len(num_gt), rounds, seed)  # (rounds, n)
    gt = num_gt[index].sum(dim=1).double()  # (rounds,)
    diff = (hits[index].sum(dim=1) - reference[index].sum(dim=1)).mean(dim=1) / gt  # (rounds,)
    value = float((hits.sum(0) - reference.sum(0)).mean() / num_gt.sum())
    return _interval(diff, value, level, rounds)


# ----------------------------------------------------------------------------------------------
# Shared pieces: pooled features of one image, detections from head outputs, the cache
# ----------------------------------------------------------------------------------------------
def _check(model: FastRCNN, dataset, proposals) -> None:
    if not isinstance(model, FastRCNN):
        raise TypeError(
            f"model must be a trained fastrcnn_lite FastRCNN; got {type(model).__name__}."
        )
    if len(model.test_scales) != 1:
        raise ValueError(
            f"the ablations run at one test scale; the model has test_scales {model.test_scales}. "
            "Set model.test_scales = (s,) (and model.max_size) first."
        )
    check_proposals(dataset, proposals)


def _pooled(model: FastRCNN, image: Tensor, boxes: Tensor, scale: int, max_size: int) -> Tensor:
    """RoI-pooled features (Tensor[P, C, h, w]) of ``boxes`` (original pixels) after one conv pass
    at ``scale``: what :meth:`FastRCNN.score_proposals` computes before the head."""
    factor = scale_factor(tuple(image.shape[-2:]), scale, max_size)
    scaled_image, scaled_boxes = resize(image, boxes, factor)
    features = model.body(scaled_image[None])  # (1, C, H', W')
    return model.pool(features, [scaled_boxes])  # (P, C, h, w)


def _svm_detections(
    model: FastRCNN, scores: Tensor, box_deltas: Tensor, boxes: Tensor, size
) -> dict:
    """Detections from SVM margins (Tensor[P, K]) and the model's own box deltas (Tensor[P, 4K])."""
    num, k = scores.shape
    deltas = box_deltas.reshape(num, k, 4) * model.box_stds + model.box_means  # (P, K, 4)
    class_boxes = decode_boxes(boxes, deltas.reshape(num, 4 * k)).reshape(num, k, 4)  # (P, K, 4)
    return postprocess_detections(class_boxes, scores, size, SVM_SCORE_THRESH, model.nms_thresh,
                                  model.detections_per_img)  # fmt: skip


def _cpu(detections: dict) -> dict:
    return {key: value.cpu() for key, value in detections.items()}


def _map(detections, targets, classes) -> float:
    return float(evaluate_detections(detections, targets, classes, metric="07")["map"])


def _cached(cfg: Config, name: str, key: dict, compute: Callable[[], dict]) -> dict:
    """``compute()`` stored as JSON at ``cache_path(cfg, name, **key)`` (.json), or loaded from it."""
    path = cache_path(cfg, name, version=CACHE_VERSION, **key).with_suffix(".json")
    if path.is_file():
        return json.loads(path.read_text()) | {"from_cache": True}
    write_json(path, compute())
    return json.loads(path.read_text()) | {"from_cache": False}


def _test_key(model: FastRCNN, test_ds, test_props) -> dict:
    return {"model": module_digest(model), "test": dataset_key(test_ds),
            "test_proposals": proposals_digest(test_props),
            "test_scale": (tuple(model.test_scales), model.max_size)}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# The three experiments
# ----------------------------------------------------------------------------------------------
def svd_rank_ablation(
    model: FastRCNN,
    cfg: Config,
    test_ds,
    test_proposals: Sequence[Tensor],
    ranks: Sequence[int] = (8, 16, 32, 64, 128),
    timing_images: int = 20,
    rounds: int = 200,
    progress: bool = True,
) -> dict:
    """Truncated-SVD rank of fc6 vs mAP and time (paper section 3.1, Fig. 2), fc7 at ``cfg.svd_rank_fc7``.

    Args:
        model: the trained Fast R-CNN (left unchanged), in eval mode on its device.
        cfg: the profile it was trained with (``svd_rank_fc6``: the rank of the table's row,
            added to ``ranks`` if missing; ``svd_rank_fc7``; ``cache_dir``).
        test_ds, test_proposals: the test split and its proposals (list of Tensor[P_i, 4]).
        ranks: fc6 ranks to try, each below fc6's full rank.
        timing_images: the first this many test images (with proposals) are timed.
        rounds: bootstrap draws.

    Returns:
        dict with ``curve``: one dict per variant, the uncompressed model first (``fc6_rank``
        None), then each rank: ``fc6_rank``, ``fc7_rank``, ``map``, ``seconds_per_image``,
        ``fc_seconds_per_image``, ``fc_macs_per_roi``; ``rank`` (the row's fc6 rank);
        ``map_difference``, ``time_change``, ``fc_time_change`` (intervals of that rank against
        the uncompressed model, see the module docstring); ``timing_images``,
        ``num_test_images``, ``from_cache``.
    """
    _check(model, test_ds, test_proposals)
    ranks = sorted({int(r) for r in ranks} | {cfg.svd_rank_fc6})
    key = _test_key(model, test_ds, test_proposals) | {"ranks": ranks, "timing_images": timing_images,
                                                      "rounds": rounds}  # fmt: skip
    return _cached(cfg, "ablation_svd", key, lambda: _svd(model, cfg, test_ds, test_proposals, ranks,
                                                          timing_images, rounds, progress))  # fmt: skip


def _fc_macs(fc) -> int:
    return sum(
        m.in_features * m.out_features for m in fc.modules() if isinstance(m, torch.nn.Linear)
    )


def _svd(model, cfg, test_ds, test_props, ranks, timing_images, rounds, progress) -> dict:
    model.eval()
    device = next(model.parameters()).device
    variants = {None: model} | {r: truncated_svd(model, r, cfg.svd_rank_fc7) for r in ranks}
    targets = [load_target(test_ds, i) for i in range(len(test_ds))]
    detections = {r: [] for r in variants}
    samples = []  # (image, proposals, pooled) of the timed images
    with torch.inference_mode():
        for i in tqdm(range(len(test_ds)), desc="SVD ranks", disable=not progress):
            image, props = load_image(test_ds, i).to(device), test_props[i].float().to(device)
            if len(props) == 0:
                for r in variants:
                    detections[r].append(model._empty_detections(torch.device("cpu")))
                continue
            pooled = _pooled(
                model, image, props, model.test_scales[0], model.max_size
            )  # (P, C, h, w)
            for r, variant in variants.items():
                logits, deltas = variant.head(pooled)  # (P, K + 1), (P, 4K)
                detections[r].append(
                    _cpu(model.postprocess(logits, deltas, props, tuple(image.shape[-2:])))
                )
            if len(samples) < timing_images:
                samples.append((image, props, pooled.flatten(1)))
        # Per-image times, the variants interleaved on each image (timing.time_per_image).
        seconds = {r: [] for r in variants}
        fc_seconds = {r: [] for r in variants}
        for j, (image, props, flat) in enumerate(samples):
            warm = 1 if j == 0 else 0
            whole = time_per_image({r: v.detect_image for r, v in variants.items()}, [(image, props)],
                                   warmup=warm, device=device)  # fmt: skip
            fc = time_per_image({r: (lambda x, _p, v=v: v.head.fc(x)) for r, v in variants.items()},
                                [(flat, props)], warmup=warm, device=device)  # fmt: skip
            for r in variants:
                seconds[r].append(whole[r])
                fc_seconds[r].append(fc[r])
    classes = test_ds.classes
    curve = [{"fc6_rank": r, "fc7_rank": None if r is None else cfg.svd_rank_fc7,
              "map": _map(detections[r], targets, classes),
              "seconds_per_image": statistics.median(seconds[r]),
              "fc_seconds_per_image": statistics.median(fc_seconds[r]),
              "fc_macs_per_roi": _fc_macs(variants[r].head.fc)} for r in variants]  # fmt: skip
    row = cfg.svd_rank_fc6
    times = {r: torch.tensor(seconds[r], dtype=torch.float64) for r in variants}
    fc_times = {r: torch.tensor(fc_seconds[r], dtype=torch.float64) for r in variants}
    return {
        "curve": curve, "rank": row, "fc7_rank": cfg.svd_rank_fc7,
        "map_difference": map_interval(detections[row], detections[None], targets, classes, rounds),
        "time_change": _time_ratio_interval(times[row], times[None], rounds),
        "fc_time_change": _time_ratio_interval(fc_times[row], fc_times[None], rounds),
        "timing_images": len(samples), "num_test_images": len(test_ds),
    }  # fmt: skip


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

    Variants per image: the top k selective-search proposals for each k in ``top_k`` (an image
    with fewer keeps all of its own), all of them, :func:`dense_boxes` alone, and all
    selective-search boxes plus the dense ones. One conv pass per image; every variant's boxes
    are RoI-pooled from it and scored by the one head.

    Args:
        model, cfg, test_ds, test_proposals: as :func:`svd_rank_ablation`.
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
    _check(model, test_ds, test_proposals)
    top_k = sorted({int(k) for k in top_k} | {int(fewer)})
    dense = dict(dense or {})
    key = _test_key(model, test_ds, test_proposals) | {"top_k": top_k, "fewer": fewer, "dense": sorted(dense.items()),
                                                      "rounds": rounds}  # fmt: skip
    return _cached(cfg, "ablation_proposals", key, lambda: _proposals(model, test_ds, test_proposals, top_k,
                                                                      fewer, dense, rounds, progress))  # fmt: skip


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
            grid = dense_boxes(*size, **dense).to(device)  # (D, 4)
            boxes = torch.cat([props, grid])  # (P + D, 4)
            logits, deltas = model.head(
                _pooled(model, image, boxes, model.test_scales[0], model.max_size)
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
                detections[n].append(_cpu(det))
                found, gt = _recall_hits(chosen.cpu(), targets[i])
                hits[n].append(found)
                counts[n].append(len(chosen))
            num_gt.append(gt)
    classes = test_ds.classes
    hits = {n: torch.stack(h) for n, h in hits.items()}  # (N, T) each
    gt = torch.tensor(num_gt, dtype=torch.float64)  # (N,)
    curve = [{"name": n, "k": int(n[4:]) if n.startswith("top ") else None,
              "proposals_per_image": sum(counts[n]) / max(len(counts[n]), 1),
              "map": _map(detections[n], targets, classes),
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
        out[f"ar_{label}"] = _ar_interval(hits[name], hits["all"], gt, rounds)
    return out


def svm_ablation(
    model: FastRCNN,
    cfg: Config,
    train_ds,
    train_proposals: Sequence[Tensor],
    test_ds,
    test_proposals: Sequence[Tensor],
    rounds: int = 200,
    progress: bool = True,
) -> dict:
    """Softmax vs post-hoc SVMs on the model's own fc7 (paper section 5.4, Table 8).

    Training: for each training image, one conv pass at ``cfg.scales[0]`` (no flip), fc7 of its
    gt boxes (not difficult) and of all its proposals; ``SVMRegions`` labels them as R-CNN does
    (gt boxes positive; IoU < ``cfg.svm_neg_iou`` with every gt box of a class: a negative of
    that class) and ``train_svms`` mines hard negatives (``cfg.svm_C``,
    ``cfg.svm_hard_negative_rounds``, ``cfg.seed``). The regions' loader hands over fc7 itself
    (its feature function is the identity): the adapter from Fast R-CNN to the SVM stage.
    Test: the same fc7 scored by the softmax (``cls_score``) and by the SVMs (threshold
    ``SVM_SCORE_THRESH`` on the margins); both decode the model's own ``bbox_pred`` and end with
    the same per-class NMS.

    Returns:
        dict with ``map_softmax``, ``map_svm``, ``map_difference`` (SVM - softmax, interval),
        ``svm_train_images``, ``num_test_images``, ``from_cache``.
    """
    _check(model, test_ds, test_proposals)
    check_proposals(train_ds, train_proposals)
    if len(cfg.scales) != 1:
        raise ValueError(
            f"svm_ablation computes training features at one scale; cfg.scales is {cfg.scales}."
        )
    key = _test_key(model, test_ds, test_proposals) | {
        "train": dataset_key(train_ds),
        "train_proposals": proposals_digest(train_proposals),
        "rounds": rounds,
    }
    return _cached(cfg, "ablation_svm", key, lambda: _svm(model, cfg, train_ds, train_proposals, test_ds,
                                                          test_proposals, rounds, progress))  # fmt: skip


def _svm(model, cfg, train_ds, train_props, test_ds, test_props, rounds, progress) -> dict:
    model.eval()
    device = next(model.parameters()).device

    def load(index: int) -> tuple[Tensor, int, Tensor]:  # SVMRegions' loader: fc7 of gt + proposals
        gt, _ = gt_for_training(load_target(train_ds, index), cfg.use_difficult)
        boxes = torch.cat([gt, train_props[index].float()])  # (G + P, 4)
        with torch.inference_mode():
            image = load_image(train_ds, index).to(device)
            pooled = _pooled(model, image, boxes.to(device), cfg.scales[0], cfg.max_size)
            fc7 = model.head.fc(pooled.flatten(1)).cpu()  # (G + P, fc_dim)
        return boxes, len(gt), fc7

    classes = test_ds.classes
    regions = SVMRegions(load, lambda x: x, train_ds, len(classes), cfg.svm_neg_iou, cfg.use_difficult,
                         cfg.bbox_reg_iou)  # fmt: skip
    svms = train_svms(regions, len(classes), C=cfg.svm_C, hard_negative_rounds=cfg.svm_hard_negative_rounds,
                      seed=cfg.seed, class_names=classes, progress=progress)  # fmt: skip
    targets = [load_target(test_ds, i) for i in range(len(test_ds))]
    softmax, svm = [], []
    with torch.inference_mode():
        for i in tqdm(range(len(test_ds)), desc="softmax vs SVMs", disable=not progress):
            image, props = load_image(test_ds, i).to(device), test_props[i].float().to(device)
            if len(props) == 0:
                softmax.append(model._empty_detections(torch.device("cpu")))
                svm.append(model._empty_detections(torch.device("cpu")))
                continue
            size = tuple(image.shape[-2:])
            fc7 = model.head.fc(
                _pooled(model, image, props, model.test_scales[0], model.max_size).flatten(1)
            )
            logits, deltas = (
                model.head.cls_score(fc7),
                model.head.bbox_pred(fc7),
            )  # (P, K + 1), (P, 4K)
            softmax.append(_cpu(model.postprocess(logits, deltas, props, size)))
            scores = svms(fc7.cpu()).to(device)  # (P, K) margins
            svm.append(_cpu(_svm_detections(model, scores, deltas, props, size)))
    return {"map_softmax": _map(softmax, targets, classes), "map_svm": _map(svm, targets, classes),
            "map_difference": map_interval(svm, softmax, targets, classes, rounds),
            "svm_train_images": len(train_ds), "num_test_images": len(test_ds)}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# The table and the figure
# ----------------------------------------------------------------------------------------------
def _signed(value: float, percent: bool = False) -> str:
    return f"{value:+.0%}" if percent else f"{value:+.3f}"


def _row(experiment: str, ours: str, paper: str, interval: dict, paper_difference: float, percent: bool = False,
         paper_text: str | None = None) -> dict[str, str]:  # fmt: skip
    low, high = interval["low"], interval["high"]
    return {
        "experiment": experiment,
        "ours": ours,
        "paper": paper,
        "ours: difference [95% interval]": f"{_signed(interval['difference'], percent)} "
        f"[{_signed(low, percent)}, {_signed(high, percent)}]",
        "paper: difference": paper_text or _signed(paper_difference, percent),
        "verdict": verdict(low, high, math.copysign(1.0, paper_difference)),
    }


def save_report(rows: list[dict[str, str]], folder: str | Path | None = None) -> Path:
    """Write the rows of :func:`ablation_table` as ``ablations.json`` ({"rows": [...]}).

    folder: default :func:`fastrcnn_lite.experiments.compare.reports_folder` (``reports/`` in ``make
    course``, whose summary page shows the table). Returns the path.
    """
    folder = reports_folder() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return write_json(folder / "ablations.json", {"rows": rows})


def ablation_table(
    svd: dict | None = None, proposals: dict | None = None, svm: dict | None = None
) -> list[dict[str, str]]:
    """One row per comparison of the three experiments (any of them may be None): the experiment,
    ours, the paper's (``fastrcnn_lite.teaching.paper``), our difference with its interval, the paper's
    difference and the verdict (:func:`verdict`). mAP as a fraction (the paper's / 100), times as
    a relative change. Format with ``fastrcnn_lite.experiments.compare.format_markdown``."""
    rows = []
    if svd is not None:
        by_rank = {c["fc6_rank"]: c for c in svd["curve"]}
        full, row = by_rank[None], by_rank[svd["rank"]]
        ranks = f"fc6 {svd['rank']}, fc7 {svd['fc7_rank']}"
        p = FIG2_SVD
        rows.append(_row(f"SVD ({ranks}) vs none: mAP (Fig. 2)", f"{row['map']:.3f} vs {full['map']:.3f}",
                         f"{p['map_svd'] / 100:.3f} vs {p['map'] / 100:.3f}", svd["map_difference"],
                         (p["map_svd"] - p["map"]) / 100))  # fmt: skip
        rows.append(_row(f"SVD ({ranks}): test time per image", f"{row['seconds_per_image'] * 1e3:.1f} vs "
                         f"{full['seconds_per_image'] * 1e3:.1f} ms", f"{p['total_ms_svd']:g} vs {p['total_ms']:g} ms",
                         svd["time_change"], p["total_ms_svd"] / p["total_ms"] - 1, percent=True))  # fmt: skip
        fc_paper, fc_paper_svd = p["fc6_ms"] + p["fc7_ms"], p["fc6_ms_svd"] + p["fc7_ms_svd"]
        rows.append(_row(f"SVD ({ranks}): fc6 + fc7 time per image", f"{row['fc_seconds_per_image'] * 1e3:.2f} vs "
                         f"{full['fc_seconds_per_image'] * 1e3:.2f} ms", f"{fc_paper_svd:g} vs {fc_paper:g} ms",
                         svd["fc_time_change"], fc_paper_svd / fc_paper - 1, percent=True))  # fmt: skip
    if proposals is not None:
        by_name = {c["name"]: c for c in proposals["curve"]}
        every, k = by_name["all"], proposals["fewer"]
        fewer, dense, both = by_name[f"top {k}"], by_name["dense"], by_name["all + dense"]
        n_all, n_dense = every["proposals_per_image"], dense["proposals_per_image"]
        p = FIG3_PROPOSALS
        ss = p["selective_search_map"] / 100
        rows.append(_row(f"top {k} vs all ({n_all:.0f}) SS boxes: mAP (Fig. 3)", f"{fewer['map']:.3f} vs {every['map']:.3f}",
                         "rises up to ~2k boxes", proposals["map_fewer"], -1.0, paper_text="- (1k vs 2k)"))  # fmt: skip
        rows.append(_row(f"top {k} vs all SS boxes: average recall", f"{fewer['average_recall']:.3f} vs "
                         f"{every['average_recall']:.3f}", "rises with boxes", proposals["ar_fewer"], -1.0,
                         paper_text="-"))  # fmt: skip
        rows.append(_row(f"dense ({n_dense:.0f}) vs SS boxes: mAP (test only)", f"{dense['map']:.3f} vs {every['map']:.3f}",
                         f"{p['dense_alone_map'] / 100:.3f} vs {ss:.3f} (re-trained)", proposals["map_dense"],
                         p["dense_alone_map"] / 100 - ss))  # fmt: skip
        rows.append(_row("SS + dense vs SS boxes: mAP (test only)", f"{both['map']:.3f} vs {every['map']:.3f}",
                         f"{p['selective_search_plus_dense_map'] / 100:.3f} vs {ss:.3f} (re-trained)",
                         proposals["map_all_dense"], p["selective_search_plus_dense_map"] / 100 - ss))  # fmt: skip
    if svm is not None:
        p = TABLE8_SOFTMAX_SVM
        rows.append(_row("post-hoc SVMs vs softmax: mAP (Table 8)", f"{svm['map_svm']:.3f} vs {svm['map_softmax']:.3f}",
                         f"{p['S']['svm'] / 100:.3f} vs {p['S']['softmax'] / 100:.3f} (S)", svm["map_difference"],
                         (p["S"]["svm"] - p["S"]["softmax"]) / 100,
                         paper_text=", ".join(f"{_signed((v['svm'] - v['softmax']) / 100)} ({n})"
                                              for n, v in p.items())))  # fmt: skip
    return rows


def plot_ablations(svd: dict, proposals: dict, figsize: tuple[float, float] = (11, 3.4)):
    """Two panels: mAP and test time vs fc6's SVD rank; mAP and average recall vs proposals per image
    (selective search top k, all; dense boxes alone and added, as single points). Returns the figure."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=figsize)
    curve = [c for c in svd["curve"] if c["fc6_rank"] is not None]
    full = next(c for c in svd["curve"] if c["fc6_rank"] is None)
    ranks = [c["fc6_rank"] for c in curve]
    ax1.plot(ranks, [c["map"] for c in curve], "o-", color="C0", label="mAP, SVD")
    ax1.axhline(full["map"], color="C0", ls=":", label="mAP, no SVD")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel(f"fc6 rank (fc7 rank {svd['fc7_rank']})")
    ax1.set_ylabel("mAP (VOC07)")
    twin = ax1.twinx()
    twin.plot(
        ranks, [c["seconds_per_image"] * 1e3 for c in curve], "s--", color="C3", label="time, SVD"
    )
    twin.axhline(full["seconds_per_image"] * 1e3, color="C3", ls=":", label="time, no SVD")
    twin.set_ylabel("test time per image (ms)", color="C3")
    twin.set_ylim(bottom=0)
    lines = ax1.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax1.legend(lines, [h.get_label() for h in lines], fontsize=7, loc="lower right")
    ax1.set_title("truncated SVD of fc6 (paper Fig. 2)", fontsize=10)

    selective = [c for c in proposals["curve"] if c["name"] not in ("dense", "all + dense")]
    x = [c["proposals_per_image"] for c in selective]
    ax2.plot(x, [c["map"] for c in selective], "o-", color="C0", label="mAP, selective search")
    ax2.plot(
        x, [c["average_recall"] for c in selective], "o--", color="C2", label="AR, selective search"
    )
    for name, marker in (("dense", "D"), ("all + dense", "^")):
        c = next(c for c in proposals["curve"] if c["name"] == name)
        ax2.plot([c["proposals_per_image"]], [c["map"]], marker, color="C0", label=f"mAP, {name}")
        ax2.plot([c["proposals_per_image"]], [c["average_recall"]], marker, color="C2", mfc="none",
                 label=f"AR, {name}")  # fmt: skip
    ax2.set_xscale("log")
    ax2.set_xlabel("proposals per image (mean)")
    ax2.set_ylabel("mAP / average recall")
    ax2.set_ylim(0, 1)
    ax2.legend(fontsize=7, loc="lower right", ncol=2)
    ax2.set_title("proposals per image (paper Fig. 3), tested on the trained model", fontsize=10)
    fig.tight_layout()
    return fig
