"""PASCAL VOC detection evaluation: matching, precision/recall, AP and mAP.

Data-flow stage: **evaluation** (the last stage). Every system in the course (R-CNN, SPPnet,
Fast R-CNN) is scored here, the way the paper's tables are (Fast R-CNN section 4, VOC 2007 test
with the VOC07 11-point AP; VOC 2010/2012 with the area under the precision envelope).

Written by hand for teaching, following the official VOC devkit (``VOCevaldet.m``, ``VOCap.m``)
step by step; ``tests/test_evaluate.py`` checks it against a numpy port of the devkit loop and
against cases worked out by hand.

How one class is scored (the devkit's rules)
--------------------------------------------
1. Gather every detection of the class from every image and sort them by score, highest first
   (a stable sort: ties keep image order, then the order inside the image).
2. Walk down that list. Each detection is compared with the gt boxes *of its class in its
   image* and assigned to the one it overlaps most (highest IoU, first one on a tie).

   - IoU < ``iou_thresh`` (0.5): false positive (FP).
   - that gt is ``difficult``: ignored, neither TP nor FP.
   - that gt is still unmatched: true positive (TP), and the gt is now matched.
   - that gt was already matched by a higher-scoring detection: FP (a duplicate). As in the
     devkit, the detection does *not* fall back to another unmatched gt it also overlaps.
3. After the d-th detection: ``recall = TP / npos`` and ``precision = TP / (TP + FP)``, with
   ``npos`` the number of gt boxes of the class that are not difficult.
4. AP summarises the precision/recall curve (:func:`voc_ap`); mAP is the mean AP over classes.

Boxes use the package's continuous convention (see ``fastrcnn_lite.boxes``): the devkit's
``(x2 - x1 + 1) * (y2 - y1 + 1)`` areas on 1-based inclusive corners are exactly
``(x2 - x1) * (y2 - y1)`` here, so :func:`~fastrcnn_lite.boxes.box_iou` gives the devkit's IoU.

A class without any non-difficult gt box (``npos = 0``) has no recall (0 / 0 = NaN): the
devkit then gives an 11-point AP of 0 (no recall reaches any threshold) and an area AP of NaN
(0 if the class also has no detections), and averages whatever comes out. On the real VOC test
sets every class has gt boxes, so it never matters there; it does on small subsets. Here such a
class gets AP ``nan`` ("undefined") with both metrics and is left out of the mAP, which is the
mean over the classes that do have gt boxes (``result["npos"]`` shows which). In the JSON
written by the command line it is ``null``.
A class that has gt boxes but no detections has AP 0.

Passes on: ``{class: AP}`` and the mAP (floats). Beside it: ``voc_results.py`` (the VOC results
files, ``comp4_det_<image_set>_<class>.txt``), ``evaluate_cli.py`` (the command, which scores
those files against a VOCdevkit; ``python -m fastrcnn_lite.evaluate`` runs it)::

    python -m fastrcnn_lite.evaluate --voc-root data/voc --year 2007 --image-set test \\
        --results runs/results --metric 07 --json runs/map.json
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .boxes import box_iou, check_boxes
from .voc import difficult_flags

__all__ = [
    "METRICS",
    "voc_ap",
    "match_detections",
    "precision_recall",
    "evaluate_detections",
    "format_table",
]

# "07": VOC2007's 11-point interpolated AP (the paper's VOC07 numbers);
# "area": VOC2010+ area under the monotone precision envelope (the paper's VOC10/12 numbers).
METRICS = ("07", "area")


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(
            f"metric must be one of {METRICS} ('07' = VOC2007 11-point AP, 'area' = VOC2010+ "
            f"area under the precision envelope); got {metric!r}."
        )


def voc_ap(recall, precision, metric: str = "07") -> float:
    """Average precision from a precision/recall curve, as the VOC devkit computes it.

    Notebook 02 builds both metrics by hand and checks them against this.

    Args:
        recall (Tensor[D] or sequence): recall after each of the D ranked detections
            (non-decreasing, in [0, 1]).
        precision (Tensor[D] or sequence): precision after each detection.
        metric: ``"07"``: 11-point interpolated AP, the mean over t = 0, 0.1, ..., 1 of the
            highest precision at recall >= t (0 when recall never reaches t).
            ``"area"``: make precision monotone (each point takes the highest precision at
            any higher recall), then sum the area under that step curve.

    Returns:
        float: AP in [0, 1]; 0 for an empty curve.
    """
    _check_metric(metric)
    recall = torch.as_tensor(recall, dtype=torch.float64).flatten()  # (D,)
    precision = torch.as_tensor(precision, dtype=torch.float64).flatten()  # (D,)
    if recall.shape != precision.shape:
        raise ValueError(
            f"recall and precision must have the same length; got {recall.numel()} and {precision.numel()}."
        )
    if metric == "07":
        ap = 0.0
        # t = i / 10 exactly: np.arange(0, 1.1, 0.1) would give t = 0.30000000000000004 and
        # miss a recall of exactly 3/10.
        for i in range(11):
            above = precision[recall >= i / 10]
            ap += (above.max().item() if above.numel() else 0.0) / 11
        return ap
    # Area: sentinels at both ends, then the monotone envelope from the right.
    mrec = torch.cat([recall.new_zeros(1), recall, recall.new_ones(1)])  # (D+2,)
    mpre = torch.cat([precision.new_zeros(1), precision, precision.new_zeros(1)])  # (D+2,)
    mpre = mpre.flip(0).cummax(0).values.flip(0)  # mpre[i] = max(mpre[i:])
    step = torch.nonzero(mrec[1:] != mrec[:-1]).flatten() + 1  # points where recall changes
    return (mrec[step] - mrec[step - 1]).mul(mpre[step]).sum().item()


def _check_inputs(
    detections: Sequence[dict], targets: Sequence[dict], num_classes: int | None
) -> None:
    if isinstance(detections, dict) or isinstance(targets, dict):
        raise TypeError(
            "detections and targets must be lists with one dict per image; got a single dict. "
            "Wrap one image's result as [result]."
        )
    if len(detections) != len(targets):
        raise ValueError(
            f"detections and targets must have one entry per image, in the same order; got "
            f"{len(detections)} detections and {len(targets)} targets."
        )
    for i, (det, tgt) in enumerate(zip(detections, targets, strict=True)):
        for key in ("boxes", "scores", "labels"):
            if key not in det:
                raise ValueError(
                    f"detections[{i}] has no {key!r}; expected keys boxes, scores, labels."
                )
        for key in ("boxes", "labels"):
            if key not in tgt:
                raise ValueError(
                    f"targets[{i}] has no {key!r}; expected keys boxes, labels, difficult."
                )
        check_boxes(det["boxes"], f"detections[{i}]['boxes']")
        check_boxes(tgt["boxes"], f"targets[{i}]['boxes']")
        num_dets = det["boxes"].shape[0]
        if det["scores"].shape != (num_dets,) or det["labels"].shape != (num_dets,):
            raise ValueError(
                f"detections[{i}]: scores and labels must be Tensor[{num_dets}] (one per box); got "
                f"{tuple(det['scores'].shape)} and {tuple(det['labels'].shape)}."
            )
        for key in ("scores", "boxes"):  # as read_voc_results refuses them in a results file
            bad = ~torch.isfinite(det[key].double())
            if bad.any():
                row = int(bad.nonzero()[0, 0])
                raise ValueError(
                    f"detections[{i}]['{key}'] must be finite; row {row} is "
                    f"{det[key][row].tolist()}. A NaN score cannot be ranked: check the model's "
                    "outputs (a diverged training gives NaN)."
                )
        if tgt["labels"].shape != (tgt["boxes"].shape[0],):
            raise ValueError(
                f"targets[{i}]['labels'] must be Tensor[{tgt['boxes'].shape[0]}] (one per box); "
                f"got {tuple(tgt['labels'].shape)}."
            )
        for name, labels in ((f"detections[{i}]", det["labels"]), (f"targets[{i}]", tgt["labels"])):
            if (
                num_classes is not None
                and labels.numel()
                and (labels.min() < 1 or labels.max() > num_classes)
            ):
                raise ValueError(
                    f"{name}['labels'] must be in 1..{num_classes} (background 0 is never a "
                    f"detection); got values {sorted(set(labels.tolist()))}. Check the classes passed in."
                )


def _best_gt_per_detection(detections: Sequence[dict], targets: Sequence[dict]) -> dict:
    """Step 2's overlap part, for every detection of every class in one pass over the images.

    Returns:
        dict of Tensor[D] over all D detections (images in order, each image's detections in
        order): ``scores`` (float64), ``labels``, ``image_index``, ``best_iou`` (float64: IoU with
        the most-overlapping gt of the same class in the same image, -inf if there is none),
        ``best_gt`` (that gt's index in the image), ``best_difficult`` (bool); plus ``gt_labels``
        and ``gt_difficult`` (Tensor[G] over all gt boxes) to count ``npos``.
    """
    keys = ("scores", "labels", "image_index", "best_iou", "best_gt", "best_difficult")
    parts = {key: [] for key in (*keys, "gt_labels", "gt_difficult")}
    for i, (det, tgt) in enumerate(zip(detections, targets, strict=True)):
        gt_labels = tgt["labels"].long()  # (G,)
        difficult = difficult_flags(tgt)  # (G,)
        parts["gt_labels"].append(gt_labels)
        parts["gt_difficult"].append(difficult)
        labels = det["labels"].long()  # (D_i,)
        num_dets, num_gts = labels.shape[0], gt_labels.shape[0]
        if num_dets == 0:
            continue
        if num_gts == 0:
            best_iou = torch.full((num_dets,), -math.inf, dtype=torch.float64)
            best_gt = torch.zeros(num_dets, dtype=torch.long)
        else:
            iou = box_iou(det["boxes"].double(), tgt["boxes"].double())  # (D_i, G)
            iou = iou.nan_to_num(nan=0.0)  # 0 / 0 from two empty boxes: no overlap
            iou = iou.masked_fill(labels[:, None] != gt_labels[None, :], -math.inf)  # other classes
            best_iou, best_gt = iou.max(dim=1)  # (D_i,): first best gt on a tie, like the devkit
        parts["scores"].append(det["scores"].double())
        parts["labels"].append(labels)
        parts["image_index"].append(torch.full((num_dets,), i, dtype=torch.long))
        parts["best_iou"].append(best_iou)
        parts["best_gt"].append(best_gt)
        parts["best_difficult"].append(
            difficult[best_gt] if num_gts else torch.zeros(num_dets, dtype=torch.bool)
        )
    empty = {
        "scores": torch.float64,
        "best_iou": torch.float64,
        "best_difficult": torch.bool,
        "gt_difficult": torch.bool,
    }
    return {
        key: torch.cat(chunks) if chunks else torch.zeros(0, dtype=empty.get(key, torch.long))
        for key, chunks in parts.items()
    }


def _match_class(table: dict, label: int, iou_thresh: float):
    """Steps 1-2 of the module docstring for one class, from :func:`_best_gt_per_detection`.

    Returns:
        scores (Tensor[D] float64, sorted high to low), tp (Tensor[D] bool), fp (Tensor[D] bool),
        npos (int). A detection on a difficult gt has tp = fp = False.
    """
    npos = int(((table["gt_labels"] == label) & ~table["gt_difficult"]).sum())
    mine = torch.nonzero(table["labels"] == label).flatten()  # (D,) in image order
    order = mine[torch.sort(table["scores"][mine], descending=True, stable=True).indices]  # (D,)
    scores = table["scores"][order]
    image_index = table["image_index"][order].tolist()
    best_iou = table["best_iou"][order].tolist()
    best_gt = table["best_gt"][order].tolist()
    best_difficult = table["best_difficult"][order].tolist()

    # The one sequential part: whether a gt is taken depends on the detections ranked above.
    tp = [False] * len(order)
    fp = [False] * len(order)
    matched = set()  # (image index, gt index) pairs already claimed by a TP
    for d in range(len(order)):
        if best_iou[d] < iou_thresh:
            fp[d] = True  # no gt of the class overlaps enough
        elif best_difficult[d]:
            pass  # on a difficult gt: neither TP nor FP
        elif (image_index[d], best_gt[d]) in matched:
            fp[d] = True  # duplicate of a detection already counted
        else:
            tp[d] = True
            matched.add((image_index[d], best_gt[d]))
    return scores, torch.tensor(tp, dtype=torch.bool), torch.tensor(fp, dtype=torch.bool), npos


def _curve(table: dict, label: int, iou_thresh: float) -> dict:
    scores, tp, fp, npos = _match_class(table, label, iou_thresh)
    counted = tp | fp  # drop detections on difficult gts: they change neither TP nor FP
    tp_cum = torch.cumsum(tp.double(), 0)[counted]  # (D,)
    fp_cum = torch.cumsum(fp.double(), 0)[counted]  # (D,)
    recall = tp_cum / npos if npos > 0 else torch.full_like(tp_cum, math.nan)
    precision = tp_cum / (tp_cum + fp_cum)  # every counted detection adds 1 to tp or fp: no 0/0
    return {
        "recall": recall,
        "precision": precision,
        "scores": scores[counted],
        "tp": tp[counted],
        "npos": npos,
        "num_detections": len(scores),
    }


def match_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_difficult: torch.Tensor | None = None,
    iou_thresh: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-2 of the module docstring for one class in one image: which detections are TP, FP.

    Notebook 02 teaches it (the learner writes it); :func:`evaluate_detections` runs the same
    rules over every image at once.

    Args:
        boxes (Tensor[D, 4]): the image's detections of one class, (x1, y1, x2, y2), any order.
        scores (Tensor[D]): their scores.
        gt_boxes (Tensor[G, 4]): the image's gt boxes of the same class.
        gt_difficult (Tensor[G] bool, optional): difficult flags (all False when None).
        iou_thresh: a TP needs IoU >= this with its gt (0.5 in VOC).

    Returns:
        tp, fp (Tensor[D] bool each), in the order of the input: a detection on a difficult gt
        has both False; every other detection has exactly one True.
    """
    if not 0 < iou_thresh <= 1:
        raise ValueError(f"iou_thresh must be in (0, 1] (VOC uses 0.5); got {iou_thresh}.")
    check_boxes(boxes, "boxes")
    check_boxes(gt_boxes, "gt_boxes")
    num_dets, num_gts = boxes.shape[0], gt_boxes.shape[0]
    detections = [{"boxes": boxes, "scores": scores, "labels": torch.ones(num_dets).long()}]
    targets = [{"boxes": gt_boxes, "labels": torch.ones(num_gts).long()}]
    if gt_difficult is not None:
        if not isinstance(gt_difficult, torch.Tensor) or gt_difficult.shape != (num_gts,):
            got = getattr(gt_difficult, "shape", type(gt_difficult).__name__)
            raise ValueError(f"gt_difficult must be Tensor[{num_gts}] bool; got {got}.")
        targets[0]["difficult"] = gt_difficult
    _check_inputs(detections, targets, None)
    table = _best_gt_per_detection(detections, targets)
    _, tp_ranked, fp_ranked, _ = _match_class(table, 1, iou_thresh)
    order = torch.sort(table["scores"], descending=True, stable=True).indices  # as _match_class
    tp = torch.zeros(num_dets, dtype=torch.bool)
    fp = torch.zeros(num_dets, dtype=torch.bool)
    tp[order], fp[order] = tp_ranked, fp_ranked  # back to the input order
    return tp, fp


def precision_recall(
    detections: Sequence[dict],
    targets: Sequence[dict],
    label: int,
    iou_thresh: float = 0.5,
) -> dict:
    """The precision/recall curve of one class, e.g. to plot it (Notebook 02 plots one).

    Args:
        detections (list of N dicts): per image ``boxes`` (Tensor[D_i, 4] continuous x1, y1, x2,
            y2), ``scores`` (Tensor[D_i]), ``labels`` (Tensor[D_i] int64 in 1..K).
        targets (list of N dicts): per image ``boxes`` (Tensor[G_i, 4]), ``labels`` (Tensor[G_i]),
            ``difficult`` (Tensor[G_i] bool; all False when absent), same image order.
        label: the class to score (1..K).
        iou_thresh: a detection needs IoU >= this with a gt box to be a TP (0.5 in VOC).

    Returns:
        dict with ``recall``, ``precision``, ``scores`` (Tensor[D] float64, one entry per
        detection of the class that is not on a difficult gt, in decreasing score order),
        ``tp`` (Tensor[D] bool), ``npos`` (int, non-difficult gt boxes) and ``num_detections``
        (int, all detections of the class). ``recall`` is ``nan`` when ``npos`` is 0.
    """
    if not 0 < iou_thresh <= 1:
        raise ValueError(f"iou_thresh must be in (0, 1] (VOC uses 0.5); got {iou_thresh}.")
    _check_inputs(detections, targets, None)
    return _curve(_best_gt_per_detection(detections, targets), label, iou_thresh)


def evaluate_detections(
    detections: Sequence[dict],
    targets: Sequence[dict],
    classes: Sequence[str],
    iou_thresh: float = 0.5,
    metric: str = "07",
) -> dict:
    """VOC AP for every class and their mean (mAP).

    Notebook 02 introduces it; every later notebook scores its detectors with it.

    Args:
        detections (list of N dicts): per image ``boxes`` (Tensor[D_i, 4], continuous x1, y1, x2,
            y2 in that image's pixels), ``scores`` (Tensor[D_i]), ``labels`` (Tensor[D_i] int64
            in 1..K); what the detectors and
            :func:`~fastrcnn_lite.voc_results.read_voc_results` return.
        targets (list of N dicts): per image ``boxes`` (Tensor[G_i, 4]), ``labels``
            (Tensor[G_i] int64 in 1..K), ``difficult`` (Tensor[G_i] bool, all False when absent),
            in the same image order; what ``VOCDataset.load_target`` returns.
        classes: the K class names; label k is ``classes[k - 1]``.
        iou_thresh: minimum IoU of a true positive (0.5 in VOC).
        metric: ``"07"`` (VOC2007 11-point) or ``"area"`` (VOC2010+).

    Returns:
        dict with ``metric``, ``iou_thresh``, ``ap`` ({class: AP}, ``nan`` for a class without
        non-difficult gt boxes), ``map`` (mean AP over the classes that have gt boxes; ``nan``
        if none has), ``npos`` ({class: non-difficult gt boxes}), ``num_detections``
        ({class: detections of that class}) and ``num_tp`` ({class: true positives}).
    """
    _check_metric(metric)
    classes = tuple(classes)
    if not classes or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"classes must be a non-empty sequence of class names; got {classes!r}.")
    if not 0 < iou_thresh <= 1:
        raise ValueError(f"iou_thresh must be in (0, 1] (VOC uses 0.5); got {iou_thresh}.")
    _check_inputs(detections, targets, len(classes))
    table = _best_gt_per_detection(detections, targets)  # one pass over the images
    ap, npos, num_dets, num_tp = {}, {}, {}, {}
    for k, name in enumerate(classes, start=1):
        curve = _curve(table, k, iou_thresh)
        npos[name] = curve["npos"]
        num_dets[name] = curve["num_detections"]
        num_tp[name] = int(curve["tp"].sum())
        ap[name] = (
            voc_ap(curve["recall"], curve["precision"], metric) if curve["npos"] > 0 else math.nan
        )
    scored = [ap[name] for name in classes if npos[name] > 0]
    mean_ap = sum(scored) / len(scored) if scored else math.nan
    return {
        "metric": metric,
        "iou_thresh": iou_thresh,
        "ap": ap,
        "map": mean_ap,
        "npos": npos,
        "num_detections": num_dets,
        "num_tp": num_tp,
    }


def format_table(result: dict) -> str:
    """A per-class table (class, #gt, #det, AP) and the mAP, from :func:`evaluate_detections`.

    Notebook 02 prints its results with it (so do notebooks 03, 05, 06 and the ``evaluate``
    command).
    """
    width = max(len("class"), *(len(name) for name in result["ap"]))
    lines = [f"{'class':<{width}}  {'#gt':>6}  {'#det':>7}  {'AP':>6}"]
    for name, ap in result["ap"].items():
        shown = "   n/a" if math.isnan(ap) else f"{100 * ap:6.2f}"
        lines.append(
            f"{name:<{width}}  {result['npos'][name]:>6}  {result['num_detections'][name]:>7}  {shown}"
        )
    metric = "VOC07 11-point" if result["metric"] == "07" else "VOC2010+ area"
    shown = "n/a" if math.isnan(result["map"]) else f"{100 * result['map']:.2f}"
    lines.append(f"mAP ({metric}, IoU >= {result['iou_thresh']}): {shown}")
    return "\n".join(lines)


if __name__ == "__main__":
    from fastrcnn_lite.cli import run
    from fastrcnn_lite.evaluate_cli import main

    run(main)
