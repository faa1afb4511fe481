"""Truncated SVD of fc6 at several ranks vs mAP and test time (paper section 3.1, Fig. 2).

Data-flow stage: **heads** of a trained Fast R-CNN, changed at test time: fc6 (and fc7, at
``cfg.svd_rank_fc7``) replaced by their truncated SVD (``fastrcnn_lite.svd``). One conv pass per
test image; every variant's head reads the same RoI-pooled features (Tensor[P, C, h, w]) and ends
in the same post-processing (detections per image: ``boxes`` Tensor[D, 4], ``scores``
Tensor[D], ``labels`` Tensor[D]). Passes on a curve (mAP, seconds per image, fc6 + fc7 seconds
per image, multiply-accumulates per RoI, per rank) and the intervals of ``ablation_stats.py``.
The conventions (timing, cache) are in ``ablations.py``'s docstring.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch
from torch import Tensor

from ..config import Config
from ..fast_rcnn import FastRCNN
from ..progress import tqdm
from ..regions import load_image, load_target
from ..svd import truncated_svd
from ..timing import time_per_image
from .ablation_common import (
    cached_result,
    check_inputs,
    evaluation_key,
    pooled_features,
    to_cpu,
    voc07_map,
)
from .ablation_stats import map_interval, time_ratio_interval

__all__ = ["svd_rank_ablation"]


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

    Notebook 07 runs it (section 9).

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
    check_inputs(model, test_ds, test_proposals)
    ranks = sorted({int(r) for r in ranks} | {cfg.svd_rank_fc6})
    settings = {"ranks": ranks, "timing_images": timing_images, "rounds": rounds}
    key = evaluation_key(model, test_ds, test_proposals) | settings

    def compute() -> dict:
        return _svd(model, cfg, test_ds, test_proposals, ranks, timing_images, rounds, progress)

    return cached_result(cfg, "ablation_svd", key, compute)


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
            pooled = pooled_features(
                model, image, props, model.test_scales[0], model.max_size
            )  # (P, C, h, w)
            for r, variant in variants.items():
                logits, deltas = variant.head(pooled)  # (P, K + 1), (P, 4K)
                detections[r].append(
                    to_cpu(model.postprocess(logits, deltas, props, tuple(image.shape[-2:])))
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
              "map": voc07_map(detections[r], targets, classes),
              "seconds_per_image": statistics.median(seconds[r]),
              "fc_seconds_per_image": statistics.median(fc_seconds[r]),
              "fc_macs_per_roi": _fc_macs(variants[r].head.fc)} for r in variants]  # fmt: skip
    row = cfg.svd_rank_fc6
    times = {r: torch.tensor(seconds[r], dtype=torch.float64) for r in variants}
    fc_times = {r: torch.tensor(fc_seconds[r], dtype=torch.float64) for r in variants}
    return {
        "curve": curve, "rank": row, "fc7_rank": cfg.svd_rank_fc7,
        "map_difference": map_interval(detections[row], detections[None], targets, classes, rounds),
        "time_change": time_ratio_interval(times[row], times[None], rounds),
        "fc_time_change": time_ratio_interval(fc_times[row], fc_times[None], rounds),
        "timing_images": len(samples), "num_test_images": len(test_ds),
    }  # fmt: skip
