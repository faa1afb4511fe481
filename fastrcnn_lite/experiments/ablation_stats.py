"""The ablations' statistics: paired bootstrap intervals over the test images, and the verdict.

Data-flow stage: **evaluation**, after it. Every ablation compares a variant with a reference on
the same N test images; this module turns their per-image results into a difference with a
bootstrap interval (dict ``difference``, ``low``, ``high``, ``level``, ``rounds``,
``fraction_above_zero``) and the interval into a verdict against the paper's sign:

* mAP: :func:`map_interval` (the paired bootstrap of
  :func:`fastrcnn_lite.experiments.compare_stats.map_difference`) on two lists of detections
  (per image: ``boxes`` Tensor[D, 4], ``scores`` Tensor[D], ``labels`` Tensor[D]);
* test time: :func:`time_ratio_interval` on per-image seconds (Tensor[N] each);
* average recall: :func:`ar_interval` on per-image hits (Tensor[N, T], T IoU thresholds);
* :func:`verdict`: the rule of ``ablations.py``'s docstring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace

import torch
from torch import Tensor

from ..detector import SYSTEMS
from .compare_stats import map_difference

__all__ = ["VERDICTS", "verdict", "map_interval", "time_ratio_interval", "ar_interval"]

VERDICTS = ("reproduced in kind", "not reproduced", "within noise")


def verdict(low: float, high: float, paper_sign: float) -> str:
    """The verdict rule of ``ablations.py``'s docstring: "within noise" when [low, high] contains
    0, else "reproduced in kind" when the interval lies on the side of 0 of ``paper_sign`` (the
    sign of the paper's difference), else "not reproduced".

    Notebook 07 reads its verdicts (the last column of the ablations' table)."""
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
    """VOC07 mAP of ``detections`` minus that of ``reference`` (the same N test images) with the
    paired bootstrap interval of :func:`fastrcnn_lite.experiments.compare_stats.map_difference`:
    ``difference``, ``low``, ``high``, ``level``, ``rounds``, ``fraction_above_zero``.

    No notebook: the three ablations call it (notebook 07 shows its intervals).

    An adapter: ``map_difference`` reads a
    :func:`~fastrcnn_lite.experiments.compare.compare_detectors` result (four systems); here two
    lists of detections (per image: ``boxes`` Tensor[D, 4], ``scores`` Tensor[D], ``labels``
    Tensor[D]) fill one.
    """
    result = {
        "systems": dict.fromkeys(SYSTEMS, {}),
        "detections": {"variant": list(detections), "reference": list(reference)},
        "targets": list(targets),
        "test_ds": SimpleNamespace(classes=tuple(classes)),
    }
    return map_difference(result, "variant", "reference", rounds, level, seed)


def _draws(n: int, rounds: int, seed: int) -> Tensor:
    """Tensor[rounds, n] int64: bootstrap draws of n images (N in the docstrings) with replacement."""
    return torch.randint(n, (rounds, n), generator=torch.Generator().manual_seed(seed))


def _interval(values: Tensor, value: float, level: float, rounds: int) -> dict:
    tail = (1 - level) / 2
    values = values[~values.isnan()].double()
    return {"difference": float(value), "low": float(torch.quantile(values, tail)),
            "high": float(torch.quantile(values, 1 - tail)), "level": level, "rounds": rounds,
            "fraction_above_zero": float((values > 0).double().mean())}  # fmt: skip


def time_ratio_interval(seconds: Tensor, reference: Tensor, rounds: int = 200, level: float = 0.95,
                        seed: int = 0) -> dict:  # fmt: skip
    """median(seconds) / median(reference) - 1 over paired per-image times (Tensor[N] each), with a
    bootstrap interval over the images.

    No notebook: ``svd_rank_ablation``'s time changes (notebook 07 shows them)."""
    index = _draws(len(seconds), rounds, seed)  # (rounds, N)
    ratio = (
        seconds[index].median(dim=1).values / reference[index].median(dim=1).values - 1
    )  # (rounds,)
    return _interval(ratio, float(seconds.median() / reference.median() - 1), level, rounds)


def ar_interval(hits: Tensor, reference: Tensor, num_gt: Tensor, rounds: int = 200, level: float = 0.95,
                seed: int = 0) -> dict:  # fmt: skip
    """AR(hits) - AR(reference), with a bootstrap interval over the images.

    ``hits`` and ``reference`` (Tensor[N, T]): per image, the gt boxes found at each of the T IoU
    thresholds; ``num_gt`` (Tensor[N]): the gt boxes of each image.

    No notebook: ``proposal_ablation``'s recall differences (notebook 07 shows them)."""
    index = _draws(len(num_gt), rounds, seed)  # (rounds, N)
    gt = num_gt[index].sum(dim=1).double()  # (rounds,)
    diff = (hits[index].sum(dim=1) - reference[index].sum(dim=1)).mean(dim=1) / gt  # (rounds,)
    value = float((hits.sum(0) - reference.sum(0)).mean() / num_gt.sum())
    return _interval(diff, value, level, rounds)
