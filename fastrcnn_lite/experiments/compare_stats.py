"""How sure is a measured mAP gap? A paired bootstrap over the test images.

Data-flow stage: **evaluation**, after it: the comparison's statistics. Takes the detections of
:func:`fastrcnn_lite.experiments.compare.compare_detectors` (per system, one dict of ``boxes``
Tensor[D, 4], ``scores`` Tensor[D], ``labels`` Tensor[D] per test image) and the test targets,
and passes on the difference of two systems' VOC07 mAPs with its bootstrap interval
(:func:`map_difference`). The ablations (``ablation_stats.map_interval``) use the same test.

The true/false-positive flag of every detection is computed once on the whole test set
(:func:`fastrcnn_lite.evaluate.precision_recall`); a bootstrap draw only re-weights the images,
so each of the ``rounds`` draws costs milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..detector import SYSTEMS
from ..evaluate import precision_recall, voc_ap
from ..voc import difficult_flags

__all__ = ["check_result", "map_difference"]


def check_result(result: dict) -> dict:
    """The ``systems`` entry of a :func:`~fastrcnn_lite.experiments.compare.compare_detectors`
    result, after checking it has one entry for each of :data:`~fastrcnn_lite.detector.SYSTEMS`.

    No notebook: the comparison's statistics and report check their argument with it.

    Raises:
        ValueError: ``result`` is not such a dict, or lacks a system.
    """
    if not isinstance(result, dict) or "systems" not in result:
        raise ValueError(
            "result must be the dict compare_detectors returns (with a 'systems' entry); "
            f"got {type(result).__name__}{' with keys ' + str(list(result)) if isinstance(result, dict) else ''}."
        )
    systems = result["systems"]
    missing = [name for name in SYSTEMS if name not in systems]
    if missing:
        raise ValueError(
            f"result['systems'] lacks {missing}; expected one entry for each of {list(SYSTEMS)}."
        )
    return systems


def _ranked_matches(
    detections: Sequence[dict], targets: Sequence[dict], num_classes: int
) -> list[dict]:
    """Per class, every detection that counts (not on a difficult object), best score first:
    ``image`` (Tensor[D] long), ``tp`` (Tensor[D] bool; False = a false positive), plus
    ``npos`` (Tensor[N] float64: the class's non-difficult gt boxes in each image).

    Here D counts the detections of the whole test set and N its images. Whether a detection is
    a true positive depends only on the detections of its own image (VOC matching goes down the
    ranking, and a gt box can only be claimed in its own image), so these flags hold in any
    resampling of the images. They come from :func:`~fastrcnn_lite.evaluate.precision_recall`
    on the whole test set, with each score replaced by its rank so that every detection can be
    found again in the ranking.
    """
    scores = torch.cat([d["scores"].double().flatten() for d in detections])  # (D,)
    image = torch.cat(
        [torch.full((len(d["scores"]),), i, dtype=torch.long) for i, d in enumerate(detections)]
    )
    order = torch.sort(scores, descending=True, stable=True).indices  # (D,) best first
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    ranked = [
        dict(d, scores=-r.double())
        for d, r in zip(detections, rank.split([len(d["scores"]) for d in detections]), strict=True)
    ]
    matches = []
    for label in range(1, num_classes + 1):
        curve = precision_recall(ranked, targets, label)
        index = order[(-curve["scores"]).round().long()]  # back to the detections' positions
        npos = torch.tensor(
            [float(((t["labels"] == label) & ~difficult_flags(t)).sum()) for t in targets]
        )
        matches.append({"image": image[index], "tp": curve["tp"], "npos": npos})
    return matches  # fmt: skip


def _weighted_map(matches: list[dict], weights: Tensor) -> float:
    """VOC07 mAP when image i counts ``weights[i]`` times (a bootstrap draw), from :func:`_ranked_matches`.

    Image i drawn w times adds each of its detections w times, at the same score: for the
    11-point AP that is one point with w times the true (or false) positives (the points in
    between never hold the highest precision at a recall), so no list of images is built.
    """
    aps = []
    for m in matches:
        npos = float((weights * m["npos"]).sum())
        if npos == 0:
            continue  # no gt box of this class in the draw: the class does not count, as in evaluate
        w = weights[m["image"]]  # (D,)
        keep = w > 0
        tp = torch.cumsum(w * m["tp"], 0)[keep]  # (D',)
        fp = torch.cumsum(w * ~m["tp"], 0)[keep]  # (D',)
        aps.append(voc_ap(tp / npos, tp / (tp + fp), "07"))
    return sum(aps) / len(aps) if aps else math.nan


def map_difference(
    result: dict,
    system: str,
    other: str,
    rounds: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """mAP of ``system`` minus that of ``other``, with a bootstrap interval over the test images.

    Notebook 07 uses this (how sure is each gap between two systems).

    How much of a measured mAP gap is the luck of the test set? Draw the test images with
    replacement ``rounds`` times; in each draw score both systems on the *same* images (a
    paired bootstrap: what both find easy or hard cancels out) and keep the difference. The
    interval holds the central ``level`` of those differences. An interval that contains 0
    means this test set cannot order the two systems. Each draw costs milliseconds: the
    true/false-positive flags are computed once (:func:`_ranked_matches`).

    Args:
        result: what :func:`~fastrcnn_lite.experiments.compare.compare_detectors` returns
            (``detections``, ``targets``, ``test_ds``).
        system, other: two names of :data:`~fastrcnn_lite.detector.SYSTEMS`.
        rounds: bootstrap draws.
        level: coverage of the interval (0.95: the 2.5th to the 97.5th percentile).
        seed: for the draws.

    Returns:
        dict with ``difference`` (on the test set itself: the difference of the two VOC07 mAPs),
        ``low``, ``high`` (the interval), ``level``, ``rounds`` and ``fraction_above_zero``
        (share of draws where ``system`` wins).
    """
    check_result(result)
    for name in (system, other):
        if name not in result["detections"]:
            raise ValueError(
                f"no detections for {name!r}; expected one of {list(result['detections'])}."
            )
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1; got {rounds!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}.")
    targets, num_classes = result["targets"], len(result["test_ds"].classes)
    ours = _ranked_matches(result["detections"][system], targets, num_classes)
    theirs = _ranked_matches(result["detections"][other], targets, num_classes)
    n = len(targets)
    generator = torch.Generator().manual_seed(seed)
    draws = []
    for _ in range(rounds):
        weights = torch.bincount(
            torch.randint(n, (n,), generator=generator), minlength=n
        ).double()  # (N,)
        draws.append(_weighted_map(ours, weights) - _weighted_map(theirs, weights))
    draws = torch.tensor(draws, dtype=torch.float64)
    draws = draws[~draws.isnan()]  # a draw without gt boxes of any class has no mAP
    tail = (1 - level) / 2
    ones = torch.ones(n, dtype=torch.float64)
    return {
        "difference": _weighted_map(ours, ones) - _weighted_map(theirs, ones),
        "low": float(torch.quantile(draws, tail)),
        "high": float(torch.quantile(draws, 1 - tail)),
        "level": level,
        "rounds": rounds,
        "fraction_above_zero": float((draws > 0).double().mean()),
    }
