"""The ``evaluate`` command: score VOC results files against a VOCdevkit's annotations.

Data-flow stage: **evaluation**, its command line. Reads the annotations of a split
(:class:`~fastrcnn_lite.voc.VOCDataset`, no image decoded) and the results files
``comp4_det_<image_set>_<class>.txt`` (:mod:`fastrcnn_lite.voc_results`), scores them with
:func:`~fastrcnn_lite.evaluate.evaluate_detections` and prints the per-class table and the mAP;
``--json`` also writes ``{metric, ap, map}``. ``python -m fastrcnn_lite.evaluate`` runs it::

    python -m fastrcnn_lite.evaluate --voc-root data/voc --year 2007 --image-set test \\
        --results runs/results --metric 07 --json runs/map.json
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .checkpoint import write_json
from .embedded import CLASSES as EMBEDDED_CLASSES
from .evaluate import METRICS, evaluate_detections, format_table
from .progress import tqdm
from .voc import VOC_CLASSES, VOCDataset, read_classes
from .voc_results import read_voc_results, results_path

__all__ = ["main"]


def _classes_from_flag(flag: str, voc_root: str, year: str) -> tuple[str, ...]:
    if flag == "dataset":
        return read_classes(voc_root, year)
    if flag == "voc":
        return VOC_CLASSES
    return tuple(EMBEDDED_CLASSES)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fastrcnn_lite.evaluate``: score VOC results files against a VOCdevkit.

    Notebook 08 runs it on the results files of its long run.

    Args:
        argv: the command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        int: 0 (the exit status); a user error raises :class:`~fastrcnn_lite.cli.UserError`.
    """
    parser = argparse.ArgumentParser(
        prog="python -m fastrcnn_lite.evaluate",
        description="Score comp4_det_<image_set>_<class>.txt results files with the VOC AP.",
    )
    parser.add_argument("--voc-root", required=True, help="folder that holds VOCdevkit/")
    parser.add_argument("--year", default="2007", help="VOCdevkit/VOC<year> (default 2007)")
    parser.add_argument(
        "--image-set", default="test", help="ImageSets/Main/<image-set>.txt (default test)"
    )
    parser.add_argument("--results", required=True, help="folder with the results files")
    parser.add_argument(
        "--metric", choices=METRICS, default="07", help="07 = 11-point (VOC2007), area = VOC2010+"
    )
    parser.add_argument(
        "--iou-thresh", type=float, default=0.5, help="minimum IoU of a true positive (0.5)"
    )
    parser.add_argument(
        "--classes",
        choices=("dataset", "voc", "embedded"),
        default="dataset",
        help="class list (default: the dataset's own, classes.txt in its VOC<year> folder, else VOC's 20)",
    )
    parser.add_argument("--json", help="also write {metric, ap, map} to this JSON file")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar while reading annotations"
    )
    args = parser.parse_args(argv)

    classes = _classes_from_flag(args.classes, args.voc_root, args.year)
    dataset = VOCDataset(args.voc_root, args.year, args.image_set, classes=classes)
    targets = [
        dataset.load_target(i)  # annotations only: no image is decoded
        for i in tqdm(range(len(dataset)), desc="annotations", disable=args.no_progress)
    ]
    missing = [
        name for name in classes if not results_path(args.results, args.image_set, name).is_file()
    ]
    detections = read_voc_results(args.results, args.image_set, classes, dataset.ids)
    result = evaluate_detections(detections, targets, classes, args.iou_thresh, args.metric)
    print(f"{dataset!r}; results from {args.results}")
    if missing:
        print(f"no results file (AP 0) for: {', '.join(missing)}")
    print(format_table(result))
    if args.json:  # NaN (a class without gt) is written as null: valid JSON
        write_json(args.json, {k: result[k] for k in ("metric", "ap", "map")})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    from fastrcnn_lite.cli import run

    run(main)
