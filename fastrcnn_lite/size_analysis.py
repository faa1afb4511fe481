"""AP by object size: how well objects of each size are found.

Data-flow stage: **evaluation**, after VOC AP (``evaluate.py``), beside the false-positive
breakdown of :mod:`fastrcnn_lite.error_analysis` (the diagnosis of Hoiem, Chodpathumwan and Dai,
ECCV 2012, that the R-CNN paper runs in its Figs. 5-6). Taught in notebook 07 (comparison),
section "Where the errors are".

Objects are put into bins by their size ``sqrt(w * h)`` in pixels (default: terciles of the
non-difficult test objects, pooled over classes, so each bin holds about a third of them).
The AP of bin b is the VOC AP with every object *outside* b treated like a difficult one: a
detection matched to it counts neither way, and it does not count in recall. Detections that
match nothing (background, confusion, poor localisation) stay false positives in every bin. So
each bin's AP answers "how well are objects of this size found", with the detections on objects
of other sizes left out (Hoiem's analysis does the same; it also normalises precision to a fixed
number of objects, which we do not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .evaluate import _check_inputs, evaluate_detections
from .voc import difficult_flags

__all__ = ["size_edges", "ap_by_size"]


def _object_sizes(target: dict) -> torch.Tensor:
    boxes = target["boxes"].double()  # (G, 4)
    return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=0).sqrt()  # (G,)


def size_edges(targets: Sequence[dict], bins: int = 3) -> list[float]:
    """Size thresholds that split the non-difficult objects into ``bins`` equal shares.

    Notebook 07 uses them through :func:`ap_by_size`'s default bins.

    Args:
        targets (list of N dicts): per image ``boxes`` (Tensor[G_i, 4]), ``labels``,
            ``difficult``.
        bins: how many bins (3: terciles).

    Returns:
        list of ``bins - 1`` increasing sizes ``sqrt(w * h)`` in pixels: the quantiles
        1 / bins, 2 / bins, ... of the pooled object sizes (linear interpolation, as
        ``numpy.quantile``).
    """
    if not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an int >= 2 (3 for small / medium / large); got {bins!r}.")
    sizes = [_object_sizes(t)[~difficult_flags(t)] for t in targets]
    sizes = torch.cat(sizes) if sizes else torch.zeros(0, dtype=torch.float64)  # (G_all,)
    if sizes.numel() == 0:
        raise ValueError("size_edges needs at least one non-difficult object in targets; got none.")
    q = torch.arange(1, bins, dtype=torch.float64) / bins  # (bins - 1,)
    return torch.quantile(sizes, q).tolist()


def ap_by_size(
    detections: Sequence[dict],
    targets: Sequence[dict],
    classes: Sequence[str],
    edges: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
    iou_thresh: float = 0.5,
    metric: str = "07",
) -> dict:
    """VOC AP of every class on objects of each size bin (module docstring: the rule).

    Notebook 07 compares the systems' mAP on small, medium and large objects with it.

    Args:
        detections, targets, classes: as :func:`~fastrcnn_lite.evaluate.evaluate_detections`.
        edges: increasing sizes ``sqrt(w * h)`` (pixels) between the bins: an object of size s
            is in bin b when ``edges[b - 1] <= s < edges[b]``. Default: :func:`size_edges`
            (targets), the terciles of the non-difficult objects.
        names: one name per bin; default ``("small", "medium", "large")`` for three bins,
            else ``"bin 1"``, ``"bin 2"``, ...
        iou_thresh, metric: as :func:`~fastrcnn_lite.evaluate.evaluate_detections`.

    Returns:
        dict with ``edges`` (list of floats), ``bins`` (the names), ``ranges`` ({bin: (low,
        high)} in pixels, ``0`` and ``inf`` at the ends), ``map`` ({bin: mAP over the classes
        with objects in that bin}), ``ap`` ({bin: {class: AP, nan without objects}}), ``npos``
        ({bin: {class: objects}}) and ``metric``.
    """
    classes = tuple(classes)
    _check_inputs(detections, targets, len(classes))
    edges = size_edges(targets) if edges is None else [float(e) for e in edges]
    if any(not math.isfinite(e) or e < 0 for e in edges) or any(
        b <= a for a, b in zip(edges[:-1], edges[1:], strict=True)
    ):
        raise ValueError(
            f"edges must be increasing sizes sqrt(w * h) >= 0 in pixels, e.g. (32, 64); got {edges}."
        )
    count = len(edges) + 1
    if names is None:
        names = (
            ("small", "medium", "large")
            if count == 3
            else tuple(f"bin {b + 1}" for b in range(count))
        )
    names = tuple(names)
    if len(names) != count:
        raise ValueError(
            f"names must give one name per bin ({count} for {len(edges)} edges); got {names}."
        )
    bounds = [0.0, *edges, math.inf]
    result = {
        "edges": edges,
        "bins": names,
        "ranges": {},
        "map": {},
        "ap": {},
        "npos": {},
        "metric": metric,
    }
    for b, name in enumerate(names):
        low, high = bounds[b], bounds[b + 1]
        in_bin = []  # targets where the objects of other bins are difficult (count neither way)
        for t in targets:
            sizes = _object_sizes(t)  # (G,)
            outside = (sizes < low) | (sizes >= high)  # (G,)
            in_bin.append({**t, "difficult": difficult_flags(t) | outside})
        scored = evaluate_detections(detections, in_bin, classes, iou_thresh, metric)
        result["ranges"][name] = (low, high)
        result["map"][name] = scored["map"]
        result["ap"][name] = scored["ap"]
        result["npos"][name] = scored["npos"]
    return result
