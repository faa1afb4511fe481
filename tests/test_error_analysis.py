"""Error analysis: false-positive kinds on hand-worked images (each kind exactly once), the
priority between kinds, the IoU boundaries, difficult objects, AP by size on hand-made boxes, an
independent slow loop on random data, and agreement with evaluate's true positives."""

import math

import matplotlib
import numpy as np
import pytest
import torch

from fastrcnn_lite.embedded import CLASSES as EMBEDDED_CLASSES
from fastrcnn_lite.error_analysis import (
    CATEGORIES,
    classify_detections,
    false_positive_breakdown,
    similar_classes,
    top_false_positive,
)
from fastrcnn_lite.evaluate import evaluate_detections
from fastrcnn_lite.experiments.error_report import (
    draw_errors,
    format_ap_by_size,
    format_breakdown,
    format_confusions,
    plot_ap_by_size,
    plot_error_breakdown,
)
from fastrcnn_lite.size_analysis import ap_by_size, size_edges
from fastrcnn_lite.voc import VOC_CLASSES

from .helpers import det, tgt

matplotlib.use("Agg")

AB = ("A", "B")


# One image where every kind occurs exactly once among the detections of class A:
#   A0 [0,0,10,10] is found (0.9) and found again (0.8, IoU 0.9): correct + duplicate;
#   A1 [100,0,110,10] gets a box 3 px wide (IoU 30/100 = 0.3): localisation;
#   B0 [50,50,70,70] gets an A box exactly on it: confusion (similar or other, per the map);
#   [150,150,160,160] overlaps nothing: background;
#   A2 [200,0,210,10] is difficult and its detection (0.95) is ignored.
# B's one detection is on B0 (correct).
HAND_TARGET = tgt(
    [[0, 0, 10, 10], [100, 0, 110, 10], [50, 50, 70, 70], [200, 0, 210, 10]],
    [1, 1, 2, 1],
    [False, False, False, True],
)
HAND_DET = det(
    [[0, 0, 10, 10], [0, 0, 10, 9], [100, 0, 103, 10], [50, 50, 70, 70], [150, 150, 160, 160],
     [200, 0, 210, 10], [50, 50, 70, 70]],
    [0.9, 0.8, 0.7, 0.6, 0.5, 0.95, 0.4],
    [1, 1, 1, 1, 1, 1, 2],
)  # fmt: skip


def test_each_kind_once_on_a_hand_worked_image():
    got = classify_detections([HAND_DET], [HAND_TARGET], AB, similar={"A": {"B"}})
    assert got == [
        ["correct", "duplicate", "localisation", "similar", "background", "ignored", "correct"]
    ]
    b = false_positive_breakdown([HAND_DET], [HAND_TARGET], AB, similar={"A": {"B"}}, top=None)
    assert b["counts"] == {k: 1 for k in CATEGORIES} | {"other": 0}
    assert b["num_false_positives"] == 4 and b["num_true_positives"] == 2
    assert b["num_ignored"] == 1 and b["num_detections"] == 6
    assert b["fractions"]["duplicate"] == pytest.approx(0.25)
    assert b["confused_with"] == {"A": {"B": 1}, "B": {}}
    a = [r for r in b["records"] if r["class"] == "A"]
    assert [r["index"] for r in a] == [0, 1, 2, 3, 4]  # ranked by score, difficult one left out
    assert a[2]["iou"] == pytest.approx(0.3)
    # Without the map the same confusion is "other".
    b = false_positive_breakdown([HAND_DET], [HAND_TARGET], AB, similar={}, top=None)
    assert b["counts"]["other"] == 1 and b["counts"]["similar"] == 0


def test_top_npos_takes_as_many_detections_as_objects():
    b = false_positive_breakdown([HAND_DET], [HAND_TARGET], AB, similar={"A": {"B"}})
    a = b["per_class"]["A"]
    assert a["npos"] == 2  # the difficult A2 does not count
    assert a["num_detections"] == 2  # the two best after the ignored one: correct, duplicate
    assert a["counts"] == {k: int(k == "duplicate") for k in CATEGORIES}
    assert b["per_class"]["B"]["num_detections"] == 1
    b3 = false_positive_breakdown([HAND_DET], [HAND_TARGET], AB, top=3)
    assert b3["per_class"]["A"]["counts"]["localisation"] == 1


def test_the_higher_score_takes_the_object_the_lower_is_the_duplicate():
    d = {**HAND_DET, "scores": torch.tensor([0.8, 0.9, 0.7, 0.6, 0.5, 0.95, 0.4])}
    assert classify_detections([d], [HAND_TARGET], AB)[0][:2] == ["duplicate", "correct"]


@pytest.mark.parametrize(
    "box, kind",
    [
        ([100, 0, 101, 10], "localisation"),  # IoU 10 / 100 = 0.1 exactly: localisation
        ([100, 0, 100.9, 10], "background"),  # IoU 0.09
        ([100, 0, 104.99, 10], "localisation"),  # just under 0.5
        ([100, 0, 105, 10], "correct"),  # IoU 0.5 exactly: a true positive, as in the devkit
    ],
)
def test_iou_boundaries(box, kind):
    target = tgt([[100, 0, 110, 10]], [1])
    assert classify_detections([det([box], [0.5], [1])], [target], AB) == [[kind]]


def test_localisation_comes_before_confusion_and_similar_before_other():
    # A box exactly on a B object that also covers a third of an A object: localisation.
    target = tgt([[0, 0, 10, 10], [5, 0, 15, 10]], [1, 2])
    assert classify_detections([det([[5, 0, 15, 10]], [0.5], [1])], [target], AB) == [
        ["localisation"]
    ]
    # Overlapping a similar class a little (IoU 0.2) and another class fully: similar.
    classes = ("A", "B", "C")
    target = tgt([[0, 0, 10, 10], [8, 0, 18, 10]], [2, 3])
    d = det([[8, 0, 18, 10]], [0.5], [1])
    assert classify_detections([d], [target], classes, similar={"A": {"B"}}) == [["similar"]]
    b = false_positive_breakdown([d], [target], classes, similar={"A": {"B"}}, top=None)
    assert b["records"][0]["confused_with"] == "B"
    assert classify_detections([d], [target], classes, similar={}) == [["other"]]
    b = false_positive_breakdown([d], [target], classes, similar={}, top=None)
    assert b["records"][0]["confused_with"] == "C"  # the most-overlapped other object


def test_near_a_difficult_object_of_its_class_is_localisation():
    target = tgt([[100, 0, 110, 10]], [1], [True])
    assert classify_detections([det([[100, 0, 103, 10]], [0.5], [1])], [target], AB) == [
        ["localisation"]
    ]
    assert classify_detections([det([[100, 0, 110, 10]], [0.5], [1])], [target], AB) == [
        ["ignored"]
    ]


def test_similar_maps():
    emb = similar_classes(EMBEDDED_CLASSES)
    assert emb["circle"] == {"ring"} and emb["cross"] == {"star"} and emb["square"] == {"triangle"}
    voc = similar_classes(VOC_CLASSES)
    assert "horse" in voc["dog"] and "person" in voc["dog"] and "car" not in voc["dog"]
    assert voc["aeroplane"] >= {"bird", "car"} and "dog" not in voc["chair"]
    assert similar_classes(AB) == {"A": frozenset(), "B": frozenset()}
    with pytest.raises(ValueError, match="not among the classes"):
        similar_classes(AB, [("A", "Z")])
    with pytest.raises(ValueError, match="not among the classes"):
        false_positive_breakdown([HAND_DET], [HAND_TARGET], AB, similar={"A": {"Z"}})


def test_bad_arguments():
    with pytest.raises(ValueError, match="top must be 'npos'"):
        false_positive_breakdown([HAND_DET], [HAND_TARGET], AB, top="all")
    with pytest.raises(ValueError, match=r"labels.*must be in 1\.\.1"):
        false_positive_breakdown([HAND_DET], [HAND_TARGET], ("A",))
    with pytest.raises(ValueError, match="edges must be increasing"):
        ap_by_size([HAND_DET], [HAND_TARGET], AB, edges=(30, 15))
    with pytest.raises(ValueError, match="one name per bin"):
        ap_by_size([HAND_DET], [HAND_TARGET], AB, edges=(15,), names=("a", "b", "c"))


# --- an independent slow loop -----------------------------------------------------------------


def slow_iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def slow_breakdown(detections, targets, classes, similar, top):
    """The definitions, word for word, on Python lists: rank each class over all images, match
    greedily (best-IoU object of the class, VOC rules), then the first kind that fits."""
    records = []
    for k, name in enumerate(classes, start=1):
        dets = []
        for i, d in enumerate(detections):
            for j in range(len(d["labels"])):
                if int(d["labels"][j]) == k:
                    dets.append((float(d["scores"][j]), i, j))
        dets.sort(key=lambda x: -x[0])  # stable: image order, then order in the image
        matched, ranked = set(), []
        npos = sum(
            1
            for t in targets
            for g in range(len(t["labels"]))
            if int(t["labels"][g]) == k and not bool(t["difficult"][g])
        )
        for _score, i, j in dets:
            box = detections[i]["boxes"][j].tolist()
            t = targets[i]
            gts = [g for g in range(len(t["labels"])) if int(t["labels"][g]) == k]
            best, best_g = -1.0, None
            for g in gts:
                o = slow_iou(box, t["boxes"][g].tolist())
                if o > best:
                    best, best_g = o, g
            if best >= 0.5 and bool(t["difficult"][best_g]):
                continue  # ignored
            if best >= 0.5 and (i, best_g) not in matched:
                matched.add((i, best_g))
                kind = "correct"
            elif best >= 0.5:
                kind = "duplicate"
            elif best >= 0.1:
                kind = "localisation"
            else:
                kind = "background"
                for want in ("similar", "other"):
                    overlaps = [
                        slow_iou(box, t["boxes"][g].tolist())
                        for g in range(len(t["labels"]))
                        if int(t["labels"][g]) != k
                        and (
                            (classes[int(t["labels"][g]) - 1] in similar.get(name, ()))
                            == (want == "similar")
                        )
                    ]
                    if overlaps and max(overlaps) >= 0.1:
                        kind = want
                        break
            ranked.append((i, j, kind))
        limit = npos if top == "npos" else len(ranked)
        records.extend(ranked[:limit])
    return records


def random_case(seed, num_images=8, num_classes=3):
    g = torch.Generator().manual_seed(seed)
    detections, targets = [], []
    for _ in range(num_images):
        n = int(torch.randint(0, 5, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 60
        wh = 5 + torch.rand(n, 2, generator=g) * 25
        gt_boxes = torch.cat([xy, xy + wh], 1)  # (G, 4)
        gt_labels = torch.randint(1, num_classes + 1, (n,), generator=g)
        difficult = torch.rand(n, generator=g) < 0.2
        # detections: jittered copies of the objects (some relabelled) and random boxes
        copies = gt_boxes.repeat(3, 1) + (torch.rand(3 * n, 4, generator=g) - 0.5) * 12
        copies = torch.cat([copies[:, :2], torch.maximum(copies[:, 2:], copies[:, :2] + 1)], 1)
        labels = gt_labels.repeat(3)
        relabel = torch.rand(3 * n, generator=g) < 0.3
        labels = torch.where(
            relabel, torch.randint(1, num_classes + 1, (3 * n,), generator=g), labels
        )
        m = int(torch.randint(0, 4, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * 80
        extra = torch.cat([xy, xy + 3 + torch.rand(m, 2, generator=g) * 20], 1)
        boxes = torch.cat([copies, extra])  # (D, 4)
        labels = torch.cat([labels, torch.randint(1, num_classes + 1, (m,), generator=g)])
        scores = torch.rand(len(boxes), generator=g)
        detections.append({"boxes": boxes, "scores": scores, "labels": labels})
        targets.append({"boxes": gt_boxes, "labels": gt_labels, "difficult": difficult})
    return detections, targets


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("top", [None, "npos"])
def test_matches_the_slow_loop_on_random_data(seed, top):
    classes = ("A", "B", "C")
    similar = {"A": {"B"}, "B": {"A"}}
    detections, targets = random_case(seed)
    got = false_positive_breakdown(detections, targets, classes, similar=similar, top=top)
    want = slow_breakdown(detections, targets, classes, similar, top)
    assert [(r["image"], r["index"], r["category"]) for r in got["records"]] == want
    kinds = [k for *_, k in want]
    assert got["counts"] == {c: kinds.count(c) for c in CATEGORIES}
    if seed == 0 and top is None:  # the random data exercise every kind
        assert all(got["counts"][c] > 0 for c in CATEGORIES), got["counts"]


@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_evaluate(seed):
    classes = ("A", "B", "C")
    detections, targets = random_case(seed, num_images=10)
    b = false_positive_breakdown(detections, targets, classes, top=None)
    e = evaluate_detections(detections, targets, classes)
    for name in classes:
        assert b["per_class"][name]["num_true_positives"] == e["num_tp"][name]
        assert b["per_class"][name]["npos"] == e["npos"][name]
    assert b["num_detections"] + b["num_ignored"] == sum(e["num_detections"].values())


# --- AP by size -------------------------------------------------------------------------------


def size_case():
    # One class; objects of size 10 (small), 20 (medium), 40 (large), and a difficult small one.
    target = tgt(
        [[0, 0, 10, 10], [50, 0, 70, 20], [100, 0, 140, 40], [200, 0, 205, 5]],
        [1, 1, 1, 1],
        [False, False, False, True],
    )
    # Found: large (0.9), background (0.8), small (0.7), the difficult one (0.95). Medium missed.
    d = det(
        [[100, 0, 140, 40], [300, 300, 310, 310], [0, 0, 10, 10], [200, 0, 205, 5]],
        [0.9, 0.8, 0.7, 0.95],
        [1, 1, 1, 1],
    )
    return d, target


@pytest.mark.parametrize("metric", ["07", "area"])
def test_ap_by_size_hand_case(metric):
    d, target = size_case()
    r = ap_by_size([d], [target], ("A",), edges=(15, 30), metric=metric)
    assert r["bins"] == ("small", "medium", "large")
    assert r["npos"] == {"small": {"A": 1}, "medium": {"A": 1}, "large": {"A": 1}}
    # small: the large-object hit is left out, then background FP, then the small hit: P = 1/2
    # at recall 1 -> AP 0.5 (both metrics). medium: only a false positive -> 0. large: first
    # detection is its hit -> 1.
    assert r["ap"]["small"]["A"] == pytest.approx(0.5)
    assert r["ap"]["medium"]["A"] == 0.0
    assert r["ap"]["large"]["A"] == pytest.approx(1.0)
    assert r["map"] == {b: v["A"] for b, v in r["ap"].items()}  # one class: mAP = its AP
    assert r["ranges"]["medium"] == (15.0, 30.0) and math.isinf(r["ranges"]["large"][1])
    text = format_ap_by_size({"sys": r})
    assert "small: sqrt(w*h) in [0.0, 15.0) px, 1 objects" in text


def test_an_object_on_an_edge_belongs_to_the_upper_bin():
    d, target = size_case()
    r = ap_by_size([d], [target], ("A",), edges=(20, 30), names=("s", "m", "l"))
    assert r["npos"] == {"s": {"A": 1}, "m": {"A": 1}, "l": {"A": 1}}  # size 20 is in [20, 30)
    r = ap_by_size([d], [target], ("A",), edges=(10.5,))
    assert r["bins"] == ("bin 1", "bin 2") and r["npos"]["bin 2"] == {"A": 2}
    assert math.isnan(ap_by_size([d], [target], ("A",), edges=(50, 60))["map"]["medium"])


def test_size_edges_are_terciles_of_the_non_difficult_objects():
    g = torch.Generator().manual_seed(3)
    targets = []
    for _ in range(5):
        xy = torch.rand(6, 2, generator=g) * 50
        boxes = torch.cat([xy, xy + 2 + torch.rand(6, 2, generator=g) * 40], 1)
        targets.append({"boxes": boxes, "labels": torch.ones(6, dtype=torch.long),
                        "difficult": torch.rand(6, generator=g) < 0.3})  # fmt: skip
    sizes = [
        float(np.sqrt((b[2] - b[0]) * (b[3] - b[1])))
        for t in targets
        for b, hard in zip(t["boxes"].tolist(), t["difficult"].tolist(), strict=True)
        if not hard
    ]
    assert size_edges(targets) == pytest.approx(np.quantile(sizes, [1 / 3, 2 / 3]).tolist())
    with pytest.raises(ValueError, match="bins must be an int >= 2"):
        size_edges(targets, bins=1)


# --- tables and pictures -----------------------------------------------------------------------


def test_tables_and_plots():
    import matplotlib.pyplot as plt

    b = false_positive_breakdown([HAND_DET], [HAND_TARGET], AB, similar={"A": {"B"}}, top=None)
    text = format_breakdown({"one": b, "two": b})
    assert text.splitlines()[1].split()[:4] == ["one", "6", "2", "4"]
    ax = plot_error_breakdown({"one": b, "two": b})
    heights = {}
    for patch in ax.patches:
        x = round(patch.get_x() + patch.get_width() / 2)
        heights[x] = heights.get(x, 0.0) + patch.get_height()
    assert heights == {0: pytest.approx(1.0), 1: pytest.approx(1.0)}
    ax = plot_error_breakdown({"one": b}, include_correct=True)
    assert sum(p.get_height() for p in ax.patches) == pytest.approx(1.0)
    d, target = size_case()
    plot_ap_by_size({"x": ap_by_size([d], [target], ("A",), edges=(15, 30))})
    _, ax = plt.subplots()
    draw_errors(ax, torch.zeros(3, 220, 220), HAND_TARGET, HAND_DET, b, 0, AB)
    assert len(ax.get_legend().get_texts()) == 5  # correct + the four kinds that occur
    plt.close("all")


def test_examples_and_confusion_table():
    # Two images: the hand image, and a copy whose confusion scores higher (0.65).
    second = {**HAND_DET, "scores": HAND_DET["scores"].clone()}
    second["scores"][3] = 0.65
    b = false_positive_breakdown(
        [HAND_DET, second], [HAND_TARGET, HAND_TARGET], AB, similar={"A": {"B"}}, top=None
    )
    r = top_false_positive(b, ("similar", "other"))
    assert (r["image"], r["index"], r["confused_with"]) == (1, 3, "B")
    r = top_false_positive(b, ("similar",), exclude_images=[1])
    assert (r["image"], r["score"]) == (0, pytest.approx(0.6))
    assert top_false_positive(b, ("localisation",))["image"] == 0  # tie 0.7: first in rank
    with pytest.raises(ValueError, match="no analysed false positive"):
        top_false_positive(b, ("other",))
    with pytest.raises(ValueError, match="kinds must be a sequence"):
        top_false_positive(b, "similar")
    table = format_confusions(b).splitlines()
    assert table[1].split() == ["A", "-", "2*"] and table[2].split() == ["B", "0", "-"]
