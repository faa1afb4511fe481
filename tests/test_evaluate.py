"""VOC evaluation: hand-worked AP values, the devkit's matching rules, results files, the CLI,
and a numpy port of the official devkit loop (1-based boxes, +1 areas) as an independent reference."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from fastrcnn_lite.boxes import voc_to_xyxy
from fastrcnn_lite.evaluate import (
    evaluate_detections,
    format_table,
    precision_recall,
    voc_ap,
)
from fastrcnn_lite.evaluate_cli import main
from fastrcnn_lite.voc import VOCDataset
from fastrcnn_lite.voc_results import read_voc_results, results_path, write_voc_results

from .helpers import REPO, det, tgt, write_voc_tree

CLASSES = ("cat", "dog")


A = [0.0, 0.0, 10.0, 10.0]
B = [20.0, 20.0, 40.0, 30.0]
FAR = [100.0, 100.0, 110.0, 110.0]  # overlaps nothing


# --- voc_ap on curves worked out by hand -------------------------------------------------------


def test_voc_ap_hand_worked_curve_07_vs_area():
    # npos = 5, ranked detections TP, FP, TP, TP, FP:
    #   recall    1/5, 1/5, 2/5, 3/5, 3/5
    #   precision 1/1, 1/2, 2/3, 3/4, 3/5
    recall = [0.2, 0.2, 0.4, 0.6, 0.6]
    precision = [1, 1 / 2, 2 / 3, 3 / 4, 3 / 5]
    # 07: t = 0, .1, .2 -> max precision at recall >= t is 1 (3 points);
    #     t = .3, .4, .5, .6 -> 3/4 (4 points); t = .7 .. 1 -> recall never reaches t: 0 (4 points)
    #     AP = (3 * 1 + 4 * 3/4) / 11 = 6/11
    assert voc_ap(recall, precision, "07") == pytest.approx(6 / 11, abs=1e-12)
    # area: envelope 1 on (0, .2], 3/4 on (.2, .6]: AP = .2 * 1 + .4 * 3/4 = 1/2
    assert voc_ap(recall, precision, "area") == pytest.approx(1 / 2, abs=1e-12)
    assert voc_ap(torch.tensor(recall), torch.tensor(precision), "area") == pytest.approx(1 / 2)


def test_voc_ap_edge_cases():
    assert voc_ap([], [], "07") == 0.0 and voc_ap([], [], "area") == 0.0
    assert voc_ap([1.0], [1.0], "07") == pytest.approx(1.0)
    assert voc_ap([1.0], [1.0], "area") == pytest.approx(1.0)
    # Recall exactly 3/10 reaches t = 0.3: thresholds are i / 10, not np.arange's 0.30000000000000004.
    # 07: t = 0, .1, .2, .3 -> precision 1 -> 4/11.  area: 0.3 * 1.
    assert voc_ap([3 / 10], [1.0], "07") == pytest.approx(4 / 11, abs=1e-12)
    assert voc_ap([3 / 10], [1.0], "area") == pytest.approx(0.3, abs=1e-12)


def test_voc_ap_errors():
    with pytest.raises(ValueError, match="metric must be one of"):
        voc_ap([1.0], [1.0], "11point")
    with pytest.raises(ValueError, match="same length"):
        voc_ap([0.5, 1.0], [1.0], "07")


# --- evaluate_detections on hand-worked cases --------------------------------------------------


def test_perfect_detections_give_ap_one():
    targets = [tgt([A, B], [1, 2]), tgt([B], [1])]
    detections = [det([A, B], [0.9, 0.8], [1, 2]), det([B], [0.7], [1])]
    for metric in ("07", "area"):
        result = evaluate_detections(detections, targets, CLASSES, metric=metric)
        assert result["ap"] == {"cat": pytest.approx(1.0), "dog": pytest.approx(1.0)}
        assert result["map"] == pytest.approx(1.0)
        assert result["metric"] == metric
    assert result["npos"] == {"cat": 2, "dog": 1}
    assert result["num_detections"] == {"cat": 2, "dog": 1}
    assert result["num_tp"] == {"cat": 2, "dog": 1}


def test_false_positive_ranked_above_true_positive():
    # 1 gt; ranked: FP (0.9, far away), TP (0.8): recall 0, 1; precision 0, 1/2.
    # 07: every t has max precision at recall >= t = 1/2 -> AP = 11 * (1/2) / 11 = 1/2.
    # area: envelope 1/2 on (0, 1] -> 1/2.
    targets = [tgt([A], [1])]
    detections = [det([FAR, A], [0.9, 0.8], [1, 1])]
    for metric in ("07", "area"):
        assert evaluate_detections(detections, targets, ("cat",), metric=metric)["ap"][
            "cat"
        ] == pytest.approx(0.5)
    curve = precision_recall(detections, targets, label=1)
    assert curve["recall"].tolist() == [0.0, 1.0]
    assert curve["precision"].tolist() == [0.0, 0.5]
    assert curve["tp"].tolist() == [False, True]
    assert curve["scores"].tolist() == pytest.approx([0.9, 0.8])
    # Ranked the other way round the FP comes after full recall: AP 1.
    swapped = [det([FAR, A], [0.8, 0.9], [1, 1])]
    assert evaluate_detections(swapped, targets, ("cat",))["ap"]["cat"] == pytest.approx(1.0)


def test_duplicate_detection_is_false_positive_and_07_differs_from_area():
    # 2 gts A, B; ranked: A (TP), A again (duplicate: FP), B (TP)
    #   recall 1/2, 1/2, 1;  precision 1, 1/2, 2/3
    # 07: t = 0 .. .5 -> 1 (6 points), t = .6 .. 1 -> 2/3 (5 points): (6 + 10/3) / 11 = 28/33
    # area: 1/2 * 1 + 1/2 * 2/3 = 5/6
    targets = [tgt([A, B], [1, 1])]
    detections = [det([A, A, B], [0.9, 0.8, 0.7], [1, 1, 1])]
    result07 = evaluate_detections(detections, targets, ("cat",), metric="07")
    result_area = evaluate_detections(detections, targets, ("cat",), metric="area")
    assert result07["ap"]["cat"] == pytest.approx(28 / 33, abs=1e-12)
    assert result_area["ap"]["cat"] == pytest.approx(5 / 6, abs=1e-12)
    assert result07["num_tp"]["cat"] == 2 and result07["num_detections"]["cat"] == 3


def test_duplicate_does_not_fall_back_to_another_overlapping_gt():
    # The devkit assigns a detection to its highest-IoU gt only. Two gts overlapping each other:
    # A2 = [2, 0, 12, 10] has IoU 80/120 = 2/3 with A. The second detection on A is a duplicate
    # (FP) even though A2, still unmatched, overlaps it by 2/3 >= 0.5.
    a2 = [2.0, 0.0, 12.0, 10.0]
    targets = [tgt([A, a2], [1, 1])]
    detections = [det([A, A], [0.9, 0.8], [1, 1])]
    curve = precision_recall(detections, targets, label=1)
    assert curve["tp"].tolist() == [True, False]
    # recall 1/2, 1/2; precision 1, 1/2 -> 07: t = 0 .. .5 -> 1 (6 points): 6/11; area: 1/2
    assert evaluate_detections(detections, targets, ("cat",))["ap"]["cat"] == pytest.approx(6 / 11)
    assert evaluate_detections(detections, targets, ("cat",), metric="area")["ap"][
        "cat"
    ] == pytest.approx(0.5)


def test_detection_on_difficult_gt_is_ignored():
    # gts: A (normal), B (difficult). npos = 1. Ranked: on B (0.9, ignored), on A (0.8, TP).
    # If the first were a FP the AP would be 1/2; ignored, the curve is recall 1, precision 1: AP 1.
    targets = [tgt([A, B], [1, 1], [False, True])]
    detections = [det([B, A], [0.9, 0.8], [1, 1])]
    for metric in ("07", "area"):
        result = evaluate_detections(detections, targets, ("cat",), metric=metric)
        assert result["ap"]["cat"] == pytest.approx(1.0)
    assert result["npos"]["cat"] == 1 and result["num_tp"]["cat"] == 1
    curve = precision_recall(detections, targets, label=1)
    assert curve["recall"].tolist() == [1.0] and curve["precision"].tolist() == [1.0]
    # Missing the difficult object costs nothing: detecting only A still gives AP 1.
    assert evaluate_detections([det([A], [0.5], [1])], targets, ("cat",))["ap"][
        "cat"
    ] == pytest.approx(1.0)


def test_class_with_no_detections_has_ap_zero_and_counts_in_map():
    targets = [tgt([A, B], [1, 2])]
    detections = [det([A], [0.9], [1])]  # no dog detections
    result = evaluate_detections(detections, targets, CLASSES)
    assert result["ap"]["dog"] == 0.0 and result["num_detections"]["dog"] == 0
    assert result["map"] == pytest.approx((1.0 + 0.0) / 2)
    assert evaluate_detections(detections, targets, CLASSES, metric="area")["ap"]["dog"] == 0.0


def test_class_without_gt_is_nan_and_left_out_of_map():
    # dog: no gt at all in image 0; in image 1 only a difficult one -> npos = 0 -> AP undefined.
    targets = [tgt([A], [1]), tgt([B], [2], [True])]
    detections = [det([A, FAR], [0.9, 0.8], [1, 2]), det([], [], [])]
    for metric in ("07", "area"):
        result = evaluate_detections(detections, targets, CLASSES, metric=metric)
        assert math.isnan(result["ap"]["dog"]) and result["npos"]["dog"] == 0
        assert result["map"] == pytest.approx(1.0)  # mean over classes with gt: cat only
    table = format_table(result)
    assert "n/a" in table and "mAP (VOC2010+ area, IoU >= 0.5): 100.00" in table
    nothing = evaluate_detections([det([], [], [])], [tgt([], [])], CLASSES)
    assert math.isnan(nothing["map"])


def test_iou_threshold_is_inclusive():
    # IoU exactly 1/2: [0, 0, 10, 10] vs [0, 0, 10, 20] -> 100 / 200. The devkit uses >=.
    targets = [tgt([[0.0, 0.0, 10.0, 20.0]], [1])]
    detections = [det([A], [0.9], [1])]
    assert evaluate_detections(detections, targets, ("cat",))["ap"]["cat"] == pytest.approx(1.0)
    assert evaluate_detections(detections, targets, ("cat",), iou_thresh=0.51)["ap"]["cat"] == 0.0


def test_empty_boxes_do_not_match():
    # A zero-area detection on a zero-area gt: IoU 0 / 0 counts as no overlap (FP), as in the devkit
    # where such a pair never beats ovmax.
    point = [5.0, 5.0, 5.0, 5.0]
    result = evaluate_detections([det([point], [0.9], [1])], [tgt([point, A], [1, 1])], ("cat",))
    assert result["ap"]["cat"] == 0.0 and result["num_tp"]["cat"] == 0


def test_equal_scores_keep_image_order():
    # Two detections with score 0.5: the FP in image 0, the TP in image 1. A stable sort keeps
    # image order: FP first -> recall 0, 1; precision 0, 1/2 -> AP 1/2 (the devkit's result too).
    targets = [tgt([], []), tgt([A], [1])]
    detections = [det([A], [0.5], [1]), det([A], [0.5], [1])]
    assert evaluate_detections(detections, targets, ("cat",))["ap"]["cat"] == pytest.approx(0.5)


def test_evaluate_errors():
    targets = [tgt([A], [1])]
    good = [det([A], [0.9], [1])]
    with pytest.raises(ValueError, match="one entry per image"):
        evaluate_detections(good, targets + targets, CLASSES)
    with pytest.raises(TypeError, match="one dict per image"):
        evaluate_detections(good[0], targets, CLASSES)
    with pytest.raises(ValueError, match=r"labels'\] must be in 1\.\.2"):
        evaluate_detections([det([A], [0.9], [0])], targets, CLASSES)
    with pytest.raises(ValueError, match=r"targets\[0\]\['labels'\] must be in 1\.\.1"):
        evaluate_detections(good, [tgt([A], [2])], ("cat",))
    with pytest.raises(ValueError, match="metric must be one of"):
        evaluate_detections(good, targets, CLASSES, metric="voc12")
    with pytest.raises(ValueError, match="iou_thresh must be in"):
        evaluate_detections(good, targets, CLASSES, iou_thresh=0.0)
    with pytest.raises(ValueError, match="one per box"):
        evaluate_detections([det([A], [0.9, 0.8], [1])], targets, CLASSES)
    with pytest.raises(ValueError, match="has no 'scores'"):
        evaluate_detections(
            [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}], targets, CLASSES
        )


# --- an independent reference: the VOC devkit loop (VOCevaldet.m / VOCap.m) ported to numpy ----


def devkit_ap(gt_per_image, dets, metric):
    """Port of VOCevaldet.m for one class, on 1-based inclusive integer corners.

    gt_per_image: list of (bbs ndarray[G, 4], difficult ndarray[G] bool), VOC corners.
    dets: list of (image index, score, bb ndarray[4]) in results-file order.
    """
    npos = sum(int((~diff).sum()) for _, diff in gt_per_image)
    taken = [np.zeros(len(diff), dtype=bool) for _, diff in gt_per_image]
    confidence = np.array([d[1] for d in dets], dtype=np.float64)
    si = np.argsort(-confidence, kind="stable")  # MATLAB's sort is stable
    nd = len(dets)
    tp, fp = np.zeros(nd), np.zeros(nd)
    for d in range(nd):
        i, _, bb = dets[si[d]]
        bbgts, diff = gt_per_image[i]
        ovmax, jmax = -np.inf, -1
        for j in range(len(bbgts)):
            bbgt = bbgts[j]
            bi = [
                max(bb[0], bbgt[0]),
                max(bb[1], bbgt[1]),
                min(bb[2], bbgt[2]),
                min(bb[3], bbgt[3]),
            ]
            iw = bi[2] - bi[0] + 1
            ih = bi[3] - bi[1] + 1
            if iw > 0 and ih > 0:
                ua = (
                    (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1)
                    + (bbgt[2] - bbgt[0] + 1) * (bbgt[3] - bbgt[1] + 1)
                    - iw * ih
                )
                ov = iw * ih / ua
                if ov > ovmax:
                    ovmax, jmax = ov, j
        if ovmax >= 0.5:
            if not diff[jmax]:
                if not taken[i][jmax]:
                    tp[d] = 1
                    taken[i][jmax] = True
                else:
                    fp[d] = 1
        else:
            fp[d] = 1
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    if metric == "07":
        ap = 0.0
        for t in [i / 10 for i in range(11)]:  # MATLAB's 0:0.1:1
            p = prec[rec >= t].max() if (rec >= t).any() else 0.0
            ap += p / 11
        return ap
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    i = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


def random_problem(seed, num_images=25, num_classes=3):
    """Integer VOC boxes: gts, jittered copies (some duplicated), random boxes; tied scores."""
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for _ in range(num_images):
        g = int(rng.integers(0, 5))
        xy = rng.integers(1, 60, (g, 2))
        wh = rng.integers(5, 40, (g, 2))
        gt_boxes = np.concatenate([xy, xy + wh - 1], axis=1)  # (G, 4) 1-based inclusive
        gt_labels = rng.integers(1, num_classes + 1, g)
        gt_diff = rng.random(g) < 0.2
        gts.append((gt_boxes, gt_labels, gt_diff))
        rows = []
        for b, label in zip(gt_boxes, gt_labels, strict=True):
            for _ in range(int(rng.integers(0, 3))):  # 0, 1 or 2 (a duplicate) detections per gt
                jitter = rng.integers(-4, 5, 4)
                box = b + jitter
                box[2:] = np.maximum(box[2:], box[:2])
                wrong_class = rng.random() < 0.1
                rows.append(
                    (box, int(rng.integers(1, num_classes + 1)) if wrong_class else int(label))
                )
        for _ in range(int(rng.integers(0, 4))):  # background detections
            xy = rng.integers(1, 80, 2)
            rows.append(
                (
                    np.concatenate([xy, xy + rng.integers(3, 30, 2)]),
                    int(rng.integers(1, num_classes + 1)),
                )
            )
        scores = rng.integers(0, 20, len(rows)) / 20  # coarse: many ties
        dets.append(
            (
                np.array([r[0] for r in rows]).reshape(-1, 4),
                scores,
                np.array([r[1] for r in rows], dtype=np.int64),
            )
        )
    return gts, dets


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("metric", ["07", "area"])
def test_matches_numpy_port_of_the_devkit(seed, metric):
    num_classes = 3
    classes = tuple(f"c{k}" for k in range(1, num_classes + 1))
    gts, dets = random_problem(seed, num_classes=num_classes)
    targets = [
        {
            "boxes": voc_to_xyxy(torch.tensor(b, dtype=torch.float32).reshape(-1, 4)),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "difficult": torch.tensor(diff, dtype=torch.bool),
        }
        for b, labels, diff in gts
    ]
    detections = [
        {
            "boxes": voc_to_xyxy(torch.tensor(b, dtype=torch.float32).reshape(-1, 4)),
            "scores": torch.tensor(s, dtype=torch.float32),
            "labels": torch.tensor(labels, dtype=torch.int64),
        }
        for b, s, labels in dets
    ]
    result = evaluate_detections(detections, targets, classes, metric=metric)
    for k, name in enumerate(classes, start=1):
        gt_k = [(b[labels == k].astype(np.float64), diff[labels == k]) for b, labels, diff in gts]
        dets_k = [
            (i, float(np.float32(s[n])), b[n].astype(np.float64))
            for i, (b, s, labels) in enumerate(dets)
            for n in range(len(labels))
            if labels[n] == k
        ]
        expected = devkit_ap(gt_k, dets_k, metric)
        assert result["ap"][name] == pytest.approx(expected, abs=1e-9), (name, seed)
    # the problems are not trivial: some duplicates / misses keep AP below 1
    assert 0.0 < result["map"] < 1.0


# --- results files ----------------------------------------------------------------------------


def test_write_voc_results_format(tmp_path):
    detections = [det([[0.0, 0.0, 10.0, 10.0]], [0.5], [2]), det([], [], [])]
    paths = write_voc_results(detections, ["000001", "000002"], CLASSES, tmp_path, "test")
    assert [p.name for p in paths] == ["comp4_det_test_cat.txt", "comp4_det_test_dog.txt"]
    assert paths[0].read_text() == ""  # every class gets a file, empty without detections
    # continuous [0, 0, 10, 10] = VOC 1-based inclusive corners 1..10
    assert paths[1].read_text() == "000001 0.500000 1.00 1.00 10.00 10.00\n"


def test_results_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(0)
    ids = ["000005", "000007", "000009", "000012"]
    detections = []
    for n in (5, 0, 3, 7):
        xy = torch.rand(n, 2, generator=gen) * 100
        wh = torch.rand(n, 2, generator=gen) * 50 + 1
        detections.append(
            {
                "boxes": torch.cat([xy, xy + wh], dim=1),
                "scores": torch.rand(n, generator=gen),
                "labels": torch.randint(1, 3, (n,), generator=gen),
            }
        )
    write_voc_results(detections, ids, CLASSES, tmp_path, "val")
    back = read_voc_results(tmp_path, "val", CLASSES, ids)
    assert len(back) == len(ids)
    for original, read in zip(detections, back, strict=True):
        order = torch.sort(original["labels"], stable=True).indices  # files are read class by class
        assert torch.equal(read["labels"], original["labels"][order])
        # corners are written with 2 decimals, scores with 6
        assert torch.allclose(read["boxes"], original["boxes"][order], atol=0.005 + 1e-5, rtol=0)
        assert torch.allclose(read["scores"], original["scores"][order], atol=5e-7 + 1e-7, rtol=0)
        assert read["boxes"].dtype == torch.float32 and read["labels"].dtype == torch.int64
    targets = [tgt(d["boxes"][:2].tolist(), d["labels"][:2].tolist()) for d in detections]
    assert evaluate_detections(back, targets, CLASSES) == evaluate_detections(
        detections, targets, CLASSES
    )


def test_read_results_missing_class_file_means_no_detections(tmp_path):
    results_path(tmp_path, "test", "cat").write_text("000001 0.9 1 1 10 10\n\n")
    back = read_voc_results(tmp_path, "test", CLASSES, ["000001", "000002"])
    assert back[0]["labels"].tolist() == [1] and back[1]["boxes"].shape == (0, 4)
    assert back[0]["boxes"].tolist() == [[0.0, 0.0, 10.0, 10.0]]
    # a file for a class not in the list is not read
    results_path(tmp_path, "test", "unicorn").write_text("garbage\n")
    read_voc_results(tmp_path, "test", CLASSES, ["000001"])


@pytest.mark.parametrize(
    "bad_line, message",
    [
        (
            "000001 0.9 1 1 10",
            r"comp4_det_test_dog\.txt:2: expected 'image_id score xmin ymin xmax ymax' \(6 fields\); got 5",
        ),
        ("000001 high 1 1 10 10", r"comp4_det_test_dog\.txt:2: score and corners must be numbers"),
        ("000001 nan 1 1 10 10", r"comp4_det_test_dog\.txt:2: score and corners must be finite"),
        (
            "999999 0.9 1 1 10 10",
            r"comp4_det_test_dog\.txt:2: image id '999999' is not in the 'test' split",
        ),
    ],
)
def test_read_results_errors_name_file_and_line(tmp_path, bad_line, message):
    results_path(tmp_path, "test", "dog").write_text(f"000001 0.8 1 1 10 10\n{bad_line}\n")
    with pytest.raises(ValueError, match=message):
        read_voc_results(tmp_path, "test", CLASSES, ["000001"])
    with pytest.raises(FileNotFoundError, match="No results folder"):
        read_voc_results(tmp_path / "nope", "test", CLASSES, ["000001"])


def test_write_results_errors(tmp_path):
    with pytest.raises(ValueError, match="one image id per detections entry"):
        write_voc_results([det([A], [0.9], [1])], [], CLASSES, tmp_path, "test")
    with pytest.raises(ValueError, match=r"must be in 1\.\.2"):
        write_voc_results([det([A], [0.9], [3])], ["000001"], CLASSES, tmp_path, "test")


# --- the command line, end to end on a tiny VOCdevkit --------------------------------------------


def tiny_devkit(root):
    """Three test images; annotations only matter: the JPEG files are emptied afterwards."""
    images = {
        "000001": ((60, 80), [("cat", 1, 1, 10, 10, 0), ("dog", 21, 21, 40, 30, 0)]),
        "000002": ((60, 80), [("cat", 21, 21, 40, 30, 0), ("cat", 1, 1, 10, 10, 1)]),
        "000003": ((60, 80), []),
    }
    write_voc_tree(root, images, image_set="test")
    for jpg in (root / "VOCdevkit" / "VOC2007" / "JPEGImages").glob("*.jpg"):
        jpg.write_bytes(b"")  # proves that no image is decoded
    return root


def tiny_detections():
    # cat: 000001 TP (0.9); 000003 FP (0.8); 000002 TP (0.7); 000002 on the difficult cat (0.95, ignored)
    #   ranked (difficult one dropped): TP, FP, TP -> recall 1/2, 1/2, 1; precision 1, 1/2, 2/3
    #   07 = 28/33 (see the duplicate test), area = 5/6
    # dog: none -> AP 0
    return [
        det([A], [0.9], [1]),
        det([B, A], [0.7, 0.95], [1, 1]),
        det([A], [0.8], [1]),
    ]


def test_cli_end_to_end(tmp_path, capsys):
    # cat and dog are VOC classes: the default --classes voc reads the tree; the other 18 classes
    # have no gt (AP n/a, null in the JSON, out of the mAP).
    root = tiny_devkit(tmp_path / "voc")
    ds = VOCDataset(root, "2007", "test", classes=CLASSES)
    write_voc_results(tiny_detections(), ds.ids, CLASSES, tmp_path / "results", "test")
    results_path(tmp_path / "results", "test", "dog").unlink()
    out_json = tmp_path / "out" / "map.json"
    argv = ["--voc-root", str(root), "--image-set", "test", "--results", str(tmp_path / "results")]
    argv += ["--json", str(out_json), "--no-progress"]

    assert main([*argv, "--metric", "07"]) == 0
    printed = capsys.readouterr().out
    assert "no results file (AP 0) for: aeroplane" in printed
    saved = json.loads(out_json.read_text())
    assert set(saved) == {"metric", "ap", "map"} and saved["metric"] == "07"
    assert saved["ap"]["cat"] == pytest.approx(28 / 33)
    assert saved["ap"]["dog"] == 0.0  # one gt, no results file
    assert saved["ap"]["horse"] is None  # no gt: nan -> null
    assert saved["map"] == pytest.approx((28 / 33 + 0.0) / 2)
    cat_row = next(line for line in printed.splitlines() if line.startswith("cat "))
    # #gt excludes the difficult cat, #det counts all 4 cat detections, AP 28/33 in percent
    assert cat_row.split() == ["cat", "2", "4", "84.85"]
    assert "mAP (VOC07 11-point, IoU >= 0.5): 42.42" in printed

    main([*argv, "--metric", "area"])
    assert json.loads(out_json.read_text())["ap"]["cat"] == pytest.approx(5 / 6)

    # the embedded class list does not know these names: the reader says so
    with pytest.raises(ValueError, match="unknown class 'cat'"):
        main([*argv, "--classes", "embedded"])


def test_cli_as_module_with_embedded_classes(tmp_path):
    embedded = pytest.importorskip("fastrcnn_lite.embedded")
    first, second = embedded.CLASSES[:2]
    images = {
        "a": ((40, 40), [(first, 1, 1, 10, 10, 0)]),
        "b": ((40, 40), [(second, 5, 5, 20, 20, 0)]),
    }
    root = write_voc_tree(tmp_path / "emb", images, image_set="test")
    classes = tuple(embedded.CLASSES)
    detections = [det([A], [0.9], [1]), det([FAR], [0.9], [2])]  # first class perfect, second FP
    write_voc_results(detections, ["a", "b"], classes, tmp_path / "res", "test")
    out_json = tmp_path / "map.json"
    cmd = [
        sys.executable,
        "-m",
        "fastrcnn_lite.evaluate",
        "--voc-root",
        str(root),
        "--results",
        str(tmp_path / "res"),
    ]
    cmd += ["--classes", "embedded", "--json", str(out_json), "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "mAP (VOC07 11-point, IoU >= 0.5): 50.00" in proc.stdout
    saved = json.loads(out_json.read_text())
    assert saved["ap"][first] == pytest.approx(1.0) and saved["ap"][second] == 0.0
    assert saved["map"] == pytest.approx(0.5)


# --- issue 9: what used to score mAP 0 silently, NaN, valid JSON ---------------------------------


def test_no_results_file_for_any_class_is_an_error(tmp_path):
    with pytest.raises(
        ValueError, match=r"No results file comp4_det_test_<class>\.txt in .* for any"
    ):
        read_voc_results(tmp_path, "test", CLASSES, ["000001"])
    results_path(tmp_path, "val", "cat").write_text("000001 0.9 1 1 10 10\n")  # another split
    with pytest.raises(ValueError, match=r"holds results for split\(s\) \['val'\]"):
        read_voc_results(tmp_path, "test", CLASSES, ["000001"])


def test_repeated_image_ids_are_refused(tmp_path):
    results_path(tmp_path, "test", "cat").write_text("000001 0.9 1 1 10 10\n")
    with pytest.raises(ValueError, match=r"\['000001'\] more than once"):
        read_voc_results(tmp_path, "test", CLASSES, ["000001", "000002", "000001"])


@pytest.mark.parametrize("key, bad", [("scores", [math.nan]), ("boxes", [[0.0, 0, math.inf, 10]])])
def test_nan_scores_and_boxes_are_refused_by_the_api(key, bad):
    detection = det([A], [0.9], [1])
    detection[key] = torch.tensor(bad)
    target = {"boxes": torch.tensor([A]), "labels": torch.tensor([1])}
    with pytest.raises(ValueError, match=rf"detections\[0\]\['{key}'\] must be finite; row 0"):
        evaluate_detections([detection], [target], CLASSES)
    if key == "scores":
        with pytest.raises(ValueError, match=r"\['scores'\] must be finite"):
            write_voc_results([detection], ["000001"], CLASSES, "unused", "test")


def test_cli_errors_are_one_line_with_status_2(tmp_path, capsys):
    from fastrcnn_lite.cli import call

    root = tiny_devkit(tmp_path / "voc")
    (tmp_path / "empty").mkdir()
    argv = ["--voc-root", str(root), "--results", str(tmp_path / "empty"), "--no-progress"]
    assert call(main, argv, prog="evaluate") == 2  # was: mAP 0.00, exit 0
    err = capsys.readouterr().err
    assert err.startswith("evaluate: error: No results file comp4_det_test_<class>.txt in ")
    assert err.count("\n") == 1
    split = root / "VOCdevkit/VOC2007/ImageSets/Main/test.txt"
    split.write_text("000001\n000002\n000001\n")
    assert call(main, argv, prog="evaluate") == 2
    assert "test.txt lists an image id more than once" in capsys.readouterr().err
    argv[1] = str(tmp_path / "nowhere")
    assert call(main, argv, prog="evaluate") == 2
    assert "No VOCdevkit tree at" in capsys.readouterr().err


def test_cli_json_is_strict_json_and_classes_come_from_the_dataset(tmp_path):
    images = {"a": ((40, 40), [("circle", 1, 1, 10, 10, 0)]), "b": ((40, 40), [])}
    root = write_voc_tree(tmp_path / "shapes", images, image_set="test")
    (root / "VOCdevkit/VOC2007/classes.txt").write_text("circle\nstar\n")  # star: no gt -> NaN
    write_voc_results([det([A], [0.9], [1]), det([], [], [])], ["a", "b"], ("circle", "star"),
                      tmp_path / "res", "test")  # fmt: skip
    out = tmp_path / "map.json"
    argv = ["--voc-root", str(root), "--results", str(tmp_path / "res"), "--json", str(out)]
    assert main([*argv, "--no-progress"]) == 0  # no --classes: the dataset's own

    def strict(constant):
        raise AssertionError(f"bare {constant} in the JSON")

    saved = json.loads(out.read_text(), parse_constant=strict)
    assert saved["metric"] == "07" and saved["ap"]["star"] is None  # NaN -> null
    assert saved["ap"]["circle"] == pytest.approx(1.0) and saved["map"] == pytest.approx(1.0)
