"""VOC results files: write detections as ``comp4_det_<image_set>_<class>.txt``, read them back.

Data-flow stage: **evaluation**, its file format. A detector's per-image detections (``boxes``
Tensor[D, 4] continuous x1, y1, x2, y2, ``scores`` Tensor[D], ``labels`` Tensor[D] in 1..K) go
to one text file per class, one line ``image_id score xmin ymin xmax ymax`` per detection with
VOC's 1-based inclusive corners (the official devkit reads the same files); reading them back
gives the same per-image dicts, which :func:`~fastrcnn_lite.evaluate.evaluate_detections` scores.
The ``evaluate`` command (:mod:`fastrcnn_lite.evaluate_cli`) reads them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from .boxes import check_boxes, voc_to_xyxy, xyxy_to_voc
from .cli import UserError

__all__ = ["results_path", "write_voc_results", "read_voc_results"]


def results_path(out_dir: str | Path, image_set: str, class_name: str) -> Path:
    """``<out_dir>/comp4_det_<image_set>_<class_name>.txt`` (comp4: any training data allowed).

    Notebook 08 finds its results there (through :func:`write_voc_results` and the ``evaluate``
    command).
    """
    return Path(out_dir) / f"comp4_det_{image_set}_{class_name}.txt"


def write_voc_results(
    detections: Sequence[dict],
    image_ids: Sequence[str],
    classes: Sequence[str],
    out_dir: str | Path,
    image_set: str,
) -> list[Path]:
    """Write detections as VOC results files, one per class (empty if it has no detections).

    Each line is ``image_id score xmin ymin xmax ymax`` with VOC's 1-based corners (converted
    with :func:`~fastrcnn_lite.boxes.xyxy_to_voc`), scores with 6 decimals, corners with 2.
    Notebook 08 writes its test detections with it; so does ``python -m fastrcnn_lite.train
    --eval``.

    Args:
        detections (list of N dicts): ``boxes`` (Tensor[D_i, 4] continuous), ``scores``,
            ``labels`` (1..K), one dict per image.
        image_ids: the N image ids (``VOCDataset.ids``), same order.
        classes: the K class names (label k -> ``classes[k - 1]``).
        out_dir: folder to write to (created if needed).
        image_set: the split name in the file names (``test``).

    Returns:
        list of the K paths written, in class order.
    """
    classes = tuple(classes)
    if len(detections) != len(image_ids):
        raise ValueError(
            f"need one image id per detections entry; got {len(detections)} detections and "
            f"{len(image_ids)} image ids."
        )
    for i, det in enumerate(detections):
        check_boxes(det["boxes"], f"detections[{i}]['boxes']")
        if not torch.isfinite(det["scores"].double()).all():
            raise ValueError(
                f"detections[{i}]['scores'] must be finite; got {det['scores'].tolist()}. A NaN "
                "score cannot be ranked (and read_voc_results would refuse the file)."
            )
        labels = det["labels"]
        if labels.numel() and (labels.min() < 1 or labels.max() > len(classes)):
            raise ValueError(
                f"detections[{i}]['labels'] must be in 1..{len(classes)}; got {sorted(set(labels.tolist()))}."
            )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = {name: [] for name in classes}
    for image_id, det in zip(image_ids, detections, strict=True):
        voc_boxes = xyxy_to_voc(det["boxes"].double()).tolist()  # (D_i, 4) 1-based corners
        for box, score, label in zip(
            voc_boxes, det["scores"].tolist(), det["labels"].tolist(), strict=True
        ):
            x1, y1, x2, y2 = box
            lines[classes[label - 1]].append(
                f"{image_id} {score:.6f} {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f}\n"
            )
    paths = []
    for name in classes:
        path = results_path(out_dir, image_set, name)
        path.write_text("".join(lines[name]))
        paths.append(path)
    return paths


def read_voc_results(
    results_dir: str | Path,
    image_set: str,
    classes: Sequence[str],
    image_ids: Sequence[str],
) -> list[dict]:
    """Read VOC results files back into per-image detections (continuous boxes).

    Only ``comp4_det_<image_set>_<class>.txt`` for the given classes are read; a class whose
    file is missing has no detections (so AP 0), but a folder without a file for *any* of the
    classes is an error (wrong folder, or results for another split): it would score mAP 0.
    Blank lines are skipped. Notebook 08 uses it through the ``evaluate`` command
    (:mod:`fastrcnn_lite.evaluate_cli`).

    Args:
        results_dir: folder holding the files.
        image_set: the split name in the file names.
        classes: the K class names; the file of ``classes[k - 1]`` gives label k.
        image_ids: the N image ids of the split, in dataset order.

    Returns:
        list of N dicts ``boxes`` (Tensor[D_i, 4] float32), ``scores`` (Tensor[D_i] float32),
        ``labels`` (Tensor[D_i] int64), in ``image_ids`` order.

    Raises:
        UserError (a ValueError): a line that is not ``image_id score xmin ymin xmax ymax`` (6
            fields, finite numbers), or an image id that is not in ``image_ids`` (the message
            gives file:line); no results file for any class; an image id listed twice.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"No results folder {results_dir}.")
    present = [name for name in classes if results_path(results_dir, image_set, name).is_file()]
    if not present:
        others = sorted(
            {
                p.name.removeprefix("comp4_det_").split("_", 1)[0]
                for p in results_dir.glob("comp4_det_*_*.txt")
            }
        )
        found = f" It holds results for split(s) {others}." if others else ""
        raise UserError(
            f"No results file comp4_det_{image_set}_<class>.txt in {results_dir} for any of the "
            f"{len(classes)} classes ({', '.join(list(classes)[:3])}, ...).{found} Is --image-set "
            "right, and did the detector write its results there?"
        )
    if len(set(image_ids)) != len(image_ids):
        repeated = sorted({i for i in image_ids if list(image_ids).count(i) > 1})[:5]
        raise UserError(
            f"image_ids lists {repeated} more than once; each image of the split must appear once."
        )
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    boxes = [[] for _ in image_ids]
    scores = [[] for _ in image_ids]
    labels = [[] for _ in image_ids]
    for k, name in enumerate(classes, start=1):
        path = results_path(results_dir, image_set, name)
        if not path.is_file():
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{lineno}"
            if len(fields) != 6:
                raise UserError(
                    f"{where}: expected 'image_id score xmin ymin xmax ymax' (6 fields); got "
                    f"{len(fields)} fields: {line.strip()!r}."
                )
            try:
                numbers = [float(x) for x in fields[1:]]
            except ValueError:
                raise UserError(
                    f"{where}: score and corners must be numbers; got {line.strip()!r}."
                ) from None
            if not all(math.isfinite(x) for x in numbers):
                raise UserError(f"{where}: score and corners must be finite; got {line.strip()!r}.")
            i = index.get(fields[0])
            if i is None:
                raise UserError(
                    f"{where}: image id {fields[0]!r} is not in the {image_set!r} split "
                    f"({len(index)} images). Are these results for another split or year?"
                )
            scores[i].append(numbers[0])
            boxes[i].append(numbers[1:])
            labels[i].append(k)
    detections = []
    for i in range(len(image_ids)):
        voc_boxes = torch.tensor(boxes[i], dtype=torch.float64).reshape(-1, 4)  # (D_i, 4) 1-based
        detections.append(
            {
                "boxes": voc_to_xyxy(voc_boxes).float(),  # (D_i, 4) continuous
                "scores": torch.tensor(scores[i], dtype=torch.float32),  # (D_i,)
                "labels": torch.tensor(labels[i], dtype=torch.int64),  # (D_i,)
            }
        )
    return detections
