"""Error analysis: what kind of mistake each false positive is.

Data-flow stage: **evaluation**, after VOC AP (``evaluate.py``): detections -> a diagnosis.
AP says *how good* a detector is; this module says *where it fails*, following the detection
diagnosis of Hoiem, Chodpathumwan and Dai ("Diagnosing error in object detectors", ECCV 2012),
the analysis the R-CNN paper (Girshick et al., CVPR 2014, Figs. 5-6) runs on its detectors.
Taught in notebook 07 (comparison), section "Where the errors are".

False positives by kind (:func:`false_positive_breakdown`)
-----------------------------------------------------------
For each class, its detections are ranked by score over the whole test set exactly as
:func:`~fastrcnn_lite.evaluate.evaluate_detections` ranks them, and each one is matched with
:func:`~fastrcnn_lite.evaluate.match_detections` (the same VOC rule, so a true positive here is a
true positive of the AP). Detections that land on a ``difficult`` object are ignored, as in VOC,
and left out of the ranking. Of what remains, the **top N** are analysed (``top``): by default
N = the number of (non-difficult) objects of the class, the detections a perfect detector would
need (Hoiem's "top-ranked" false positives: the ones that cost AP); ``top=None`` takes all.

Each false positive gets the first category that fits, in this order (IoU thresholds 0.5 and 0.1
as in Hoiem's analysis):

==============  ========================================================================
duplicate       IoU >= 0.5 with an object of its class that a higher-scoring detection
                already matched (VOC counts it as a false positive).
localisation    0.1 <= IoU < 0.5 with an object of its class (difficult ones included): the
                right object, a poorly placed box. (Hoiem folds duplicates into localisation;
                here they are their own category.)
similar         IoU >= 0.1 with an object of a class declared *similar* (``similar``).
other           IoU >= 0.1 with an object of any other class.
background      IoU < 0.1 with every object.
==============  ========================================================================

Similar classes. VOC: Hoiem's groups, as used in the R-CNN paper's figures: vehicles
(aeroplane, bicycle, boat, bus, car, motorbike, train), animals including person (bird, cat, cow,
dog, horse, person, sheep), furniture (chair, diningtable, sofa), and aeroplane ~ bird.
The embedded dataset (``embedded.CLASSES``: the shape alone is the class; colour and texture
are drawn independently of it) pairs the shapes by the kind of outline the drawing code gives
them, so that two similar shapes differ only in a detail a coarse conv map can blur:

* circle ~ ring, round outlines: a ring *is* a circle with a hole (the same 64-gon outline);
  a textured circle, or a ring whose hole shows a similar colour, differ only inside.
* square ~ triangle, convex straight-edged polygons with sharp corners (stretched and rotated
  alike, so a rectangle and a triangle can share a box and two of their edges).
* star ~ cross, arms radiating from a centre with notches between them: a cross is a
  four-armed star with blunt arms.

This is a choice, not a measurement: where the confusions actually land (``confused_with``,
``experiments.error_report.format_confusions``) is reported next to it, so a reader can judge
the pairing.

AP by object size is in :mod:`fastrcnn_lite.size_analysis`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from .boxes import box_iou
from .embedded import CLASSES as EMBEDDED_CLASSES
from .evaluate import _check_inputs, match_detections
from .voc import VOC_CLASSES, difficult_flags

__all__ = [
    "CATEGORIES",
    "EMBEDDED_SIMILAR",
    "VOC_SIMILAR_GROUPS",
    "similar_classes",
    "classify_detections",
    "false_positive_breakdown",
    "top_false_positive",
]

# False-positive kinds, in the order they are tested and drawn (see the module docstring).
CATEGORIES = ("duplicate", "localisation", "similar", "other", "background")

LOW_IOU = 0.1  # below this with every object: background (Hoiem et al.)

# Embedded shapes with the same kind of outline (module docstring: why these pairs).
EMBEDDED_SIMILAR = (("circle", "ring"), ("square", "triangle"), ("star", "cross"))

# Hoiem et al.'s similar-object groups on VOC, as in the R-CNN paper's Fig. 5.
VOC_SIMILAR_GROUPS = (
    ("aeroplane", "bicycle", "boat", "bus", "car", "motorbike", "train"),  # vehicles
    ("bird", "cat", "cow", "dog", "horse", "person", "sheep"),  # animals (and person)
    ("chair", "diningtable", "sofa"),  # furniture
    ("aeroplane", "bird"),  # both fly
)


def similar_classes(
    classes: Sequence[str], groups: Sequence[Sequence[str]] | None = None
) -> dict[str, frozenset[str]]:
    """The similar-class map: for each class, the other classes declared similar to it.

    Notebook 07 prints the pairs it gives (``false_positive_breakdown(...)["similar"]``).

    Args:
        classes: the K class names (label k is ``classes[k - 1]``).
        groups: groups of mutually similar class names. Default: :data:`EMBEDDED_SIMILAR` when
            ``classes`` are the embedded dataset's, :data:`VOC_SIMILAR_GROUPS` when they are
            VOC's 20, otherwise none (every confusion then counts as "other").

    Returns:
        {class: frozenset of similar class names} for every class (empty sets included).
    """
    classes = tuple(classes)
    if groups is None:
        if set(classes) == set(EMBEDDED_CLASSES):
            groups = EMBEDDED_SIMILAR
        elif set(classes) == set(VOC_CLASSES):
            groups = VOC_SIMILAR_GROUPS
        else:
            groups = ()
    similar = {name: set() for name in classes}
    for group in groups:
        unknown = [name for name in group if name not in similar]
        if unknown:
            raise ValueError(
                f"similar-class group {tuple(group)} names {unknown}, which are not among the "
                f"classes {classes}. Check the spelling (VOC writes 'diningtable', 'tvmonitor')."
            )
        for name in group:
            similar[name].update(other for other in group if other != name)
    return {name: frozenset(names) for name, names in similar.items()}


def _check_similar(similar: Mapping, classes: tuple[str, ...]) -> dict[str, frozenset[str]]:
    if not isinstance(similar, Mapping):
        raise TypeError(
            f"similar must be a dict {{class: set of similar classes}} (see similar_classes); got "
            f"{type(similar).__name__}."
        )
    out = {name: frozenset() for name in classes}
    for name, others in similar.items():
        bad = [n for n in (name, *others) if n not in out]
        if bad:
            raise ValueError(
                f"similar names {bad}, which are not among the classes {classes}; "
                "build the map with similar_classes(classes, groups)."
            )
        out[name] = frozenset(others) - {name}
    return out


def classify_detections(
    detections: Sequence[dict],
    targets: Sequence[dict],
    classes: Sequence[str],
    similar: Mapping | None = None,
    iou_thresh: float = 0.5,
) -> list[list[str]]:
    """The category of every detection: ``"correct"``, ``"ignored"`` or one of :data:`CATEGORIES`.

    Notebook 07 suggests it in an exercise (the kind of each detection of one image).

    The per-image step of :func:`false_positive_breakdown` (no ranking, no top-N cut): whether a
    detection is a true positive depends only on the higher-scoring detections of its class in
    its own image, so :func:`~fastrcnn_lite.evaluate.match_detections` per image and class gives
    the same decisions as the AP.

    Args:
        detections (list of N dicts): per image ``boxes`` (Tensor[D_i, 4] continuous x1, y1,
            x2, y2), ``scores`` (Tensor[D_i]), ``labels`` (Tensor[D_i] int64 in 1..K).
        targets (list of N dicts): per image ``boxes`` (Tensor[G_i, 4]), ``labels``
            (Tensor[G_i] in 1..K), ``difficult`` (Tensor[G_i] bool; all False when absent).
        classes: the K class names.
        similar: {class: similar class names}; default :func:`similar_classes` (classes).
        iou_thresh: a true positive needs IoU >= this (0.5 in VOC).

    Returns:
        list of N lists, one category string per detection, in the input order.
    """
    return [
        [info["category"] for info in image]
        for image in _classify(detections, targets, classes, similar, iou_thresh)
    ]


def _classify(detections, targets, classes, similar, iou_thresh) -> list[list[dict]]:
    """Per image, per detection: {category, iou (best with its class), confused_with}."""
    classes = tuple(classes)
    if not 0 < iou_thresh <= 1:
        raise ValueError(f"iou_thresh must be in (0, 1] (VOC uses 0.5); got {iou_thresh}.")
    _check_inputs(detections, targets, len(classes))
    similar = similar_classes(classes) if similar is None else _check_similar(similar, classes)
    index = {name: k for k, name in enumerate(classes, start=1)}
    similar_labels = {index[c]: {index[s] for s in others} for c, others in similar.items()}
    out = []
    for det, tgt in zip(detections, targets, strict=True):
        labels = det["labels"].long()  # (D,)
        gt_labels = tgt["labels"].long()  # (G,)
        difficult = difficult_flags(tgt)  # (G,)
        iou = box_iou(det["boxes"].double(), tgt["boxes"].double()).nan_to_num(nan=0.0)  # (D, G)
        infos = [None] * labels.shape[0]
        for k in labels.unique().tolist():
            rows = torch.nonzero(labels == k).flatten()  # (D_k,) this class's detections
            mine = gt_labels == k  # (G,)
            tp, fp = match_detections(
                det["boxes"][rows], det["scores"][rows], tgt["boxes"][mine], difficult[mine],
                iou_thresh,
            )  # fmt: skip
            sim = torch.tensor(
                [g in similar_labels[k] for g in gt_labels.tolist()], dtype=torch.bool
            )
            sim = sim.reshape(gt_labels.shape)  # (G,)
            other = ~mine & ~sim  # (G,)
            for j, d in enumerate(rows.tolist()):
                row = iou[d]  # (G,)
                same = row[mine].max().item() if mine.any() else 0.0
                info = {"iou": same, "confused_with": None}
                if tp[j]:
                    info["category"] = "correct"
                elif not fp[j]:
                    info["category"] = "ignored"  # on a difficult object, as in VOC
                elif same >= iou_thresh:
                    info["category"] = "duplicate"
                elif same >= LOW_IOU:
                    info["category"] = "localisation"
                else:
                    info["category"] = "background"
                    for kind, mask in (("similar", sim), ("other", other)):
                        if mask.any() and row[mask].max().item() >= LOW_IOU:
                            g = int(torch.nonzero(mask).flatten()[row[mask].argmax()])
                            info["category"] = kind
                            info["confused_with"] = classes[int(gt_labels[g]) - 1]
                            break
                infos[d] = info
        out.append(infos)
    return out


def _resolve_top(top, npos: int, name: str):
    if top is None:
        return None
    if top == "npos":
        return npos
    if isinstance(top, int) and not isinstance(top, bool) and top >= 0:
        return top
    raise ValueError(
        f"top must be 'npos' (as many detections per class as it has objects), a number >= 0, "
        f"or None (all detections); got {top!r} (class {name!r})."
    )


def false_positive_breakdown(
    detections: Sequence[dict],
    targets: Sequence[dict],
    classes: Sequence[str],
    similar: Mapping | None = None,
    top: int | str | None = "npos",
    iou_thresh: float = 0.5,
) -> dict:
    """Split the top-ranked false positives of every class into :data:`CATEGORIES`.

    Notebook 07 runs it on each system's test detections ("Where the errors are").

    Args:
        detections (list of N dicts): per image ``boxes`` (Tensor[D_i, 4] continuous x1, y1,
            x2, y2), ``scores`` (Tensor[D_i]), ``labels`` (Tensor[D_i] int64 in 1..K): what the
            detectors and ``compare_detectors(cfg)["detections"][name]`` give.
        targets (list of N dicts): per image ``boxes`` (Tensor[G_i, 4]), ``labels``
            (Tensor[G_i] in 1..K), ``difficult`` (Tensor[G_i] bool), same image order.
        classes: the K class names (label k is ``classes[k - 1]``).
        similar: {class: similar class names}; default :func:`similar_classes` (classes).
        top: per class, how many top-ranked detections to analyse (detections on difficult
            objects are left out first): ``"npos"`` (default) the class's number of
            non-difficult objects, an int, or None for all.
        iou_thresh: a true positive needs IoU >= this (0.5 in VOC).

    Returns:
        dict with

        * ``counts`` ({category: false positives of that kind}, all classes together) and
          ``fractions`` ({category: share of the false positives}, ``nan`` without any);
        * ``num_detections`` (analysed), ``num_true_positives``, ``num_false_positives``,
          ``num_ignored`` (detections on difficult objects, all of them, not only the top);
        * ``per_class``: {class: {``counts``, ``num_detections``, ``num_true_positives``,
          ``num_false_positives``, ``npos``}};
        * ``confused_with``: {detected class: {object's class: count}} of the "similar" and
          "other" false positives;
        * ``records``: one dict per analysed detection, classes in order and each ranked by
          score: ``image``, ``index`` (in that image's detections), ``label``, ``class``,
          ``score``, ``category`` ("correct" or a false-positive kind), ``iou`` (best IoU with
          an object of its class, 0 if none), ``confused_with`` (class name or None);
        * ``similar`` ({class: sorted similar classes}), ``top``, ``iou_thresh``.
    """
    classes = tuple(classes)
    if not classes or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"classes must be a non-empty sequence of class names; got {classes!r}.")
    _resolve_top(top, 0, classes[0])  # reject a bad value before any work
    infos = _classify(detections, targets, classes, similar, iou_thresh)
    similar = similar_classes(classes) if similar is None else _check_similar(similar, classes)
    per_class, records = {}, []
    num_ignored = 0
    for k, name in enumerate(classes, start=1):
        npos = sum(
            int(((t["labels"] == k) & ~difficult_flags(t)).sum()) for t in targets
        )  # non-difficult objects of the class
        ranked = []  # image order, then order in the image: the tie order of evaluate's sort
        for i, det in enumerate(detections):
            for d in torch.nonzero(det["labels"] == k).flatten().tolist():
                info = infos[i][d]
                if info["category"] == "ignored":
                    num_ignored += 1
                    continue
                ranked.append(
                    {"image": i, "index": d, "label": k, "class": name,
                     "score": float(det["scores"][d]), **info}
                )  # fmt: skip
        ranked.sort(key=lambda r: -r["score"])  # stable: ties keep the order above
        n = _resolve_top(top, npos, name)
        ranked = ranked if n is None else ranked[:n]
        counts = {c: sum(r["category"] == c for r in ranked) for c in CATEGORIES}
        num_tp = sum(r["category"] == "correct" for r in ranked)
        per_class[name] = {
            "counts": counts,
            "num_detections": len(ranked),
            "num_true_positives": num_tp,
            "num_false_positives": len(ranked) - num_tp,
            "npos": npos,
        }
        records.extend(ranked)
    counts = {c: sum(p["counts"][c] for p in per_class.values()) for c in CATEGORIES}
    num_fp = sum(counts.values())
    confused = {name: {} for name in classes}
    for r in records:
        if r["confused_with"] is not None:
            row = confused[r["class"]]
            row[r["confused_with"]] = row.get(r["confused_with"], 0) + 1
    return {
        "counts": counts,
        "fractions": {c: counts[c] / num_fp if num_fp else math.nan for c in CATEGORIES},
        "num_detections": len(records),
        "num_true_positives": len(records) - num_fp,
        "num_false_positives": num_fp,
        "num_ignored": num_ignored,
        "per_class": per_class,
        "confused_with": confused,
        "records": records,
        "similar": {name: sorted(others) for name, others in similar.items()},
        "top": top,
        "iou_thresh": iou_thresh,
    }


def top_false_positive(
    breakdown: dict, kinds: Sequence[str], exclude_images: Sequence[int] = ()
) -> dict:
    """The highest-scoring analysed false positive of the given kinds: an example picked on purpose.

    Notebook 07 picks the confusion and the localisation error it draws with it.

    Args:
        breakdown: a :func:`false_positive_breakdown` result.
        kinds: categories to pick from, e.g. ``("similar", "other")`` for a confusion.
        exclude_images: image indices not to pick from (to show two different images).

    Returns:
        its record (``image``, ``index``, ``class``, ``score``, ``category``, ``iou``,
        ``confused_with``).
    """
    unknown = [k for k in kinds if k not in CATEGORIES]
    if isinstance(kinds, str) or unknown:
        raise ValueError(f"kinds must be a sequence of {CATEGORIES}; got {kinds!r}.")
    found = [
        r
        for r in breakdown["records"]
        if r["category"] in kinds and r["image"] not in set(exclude_images)
    ]
    if not found:
        raise ValueError(
            f"no analysed false positive of kind {tuple(kinds)} (outside images "
            f"{list(exclude_images)}); counts: {breakdown['counts']}. Try top=None."
        )
    return max(found, key=lambda r: r["score"])  # the first on a tie: ranking order
