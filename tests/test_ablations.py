"""The ablations without retraining (fastrcnn_lite.experiments.ablations): dense boxes by hand and against a
slow loop, the verdict rule on hand-made intervals, each experiment against the package's own
independent paths (fast_rcnn.detect, truncated_svd, proposal_recall, evaluate), and the cache."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from fastrcnn_lite.boxes import box_iou
from fastrcnn_lite.evaluate import evaluate_detections
from fastrcnn_lite.experiments import ablations
from fastrcnn_lite.experiments.ablations import VERDICTS, dense_boxes, verdict
from fastrcnn_lite.fast_rcnn import detect
from fastrcnn_lite.proposals import proposal_recall
from fastrcnn_lite.svd import truncated_svd

from .test_fast_rcnn import ShapesDataset, jittered_proposals, tiny_cfg, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --- dense boxes --------------------------------------------------------------------------------
def test_dense_boxes_by_hand():
    # 8 x 8 image, 4 x 4 windows, step 2: x1 and y1 in {0, 2, 4}, rows first.
    boxes = dense_boxes(8, 8, sizes=(4,), aspect_ratios=(1.0,), stride_fraction=0.5)
    expected = [[x, y, x + 4, y + 4] for y in (0, 2, 4) for x in (0, 2, 4)]
    assert boxes.tolist() == expected
    # 9 pixels wide: 3 positions (0, 2, 4) leave 1 px, split 0.5 / 0.5 (the grid is centred).
    boxes = dense_boxes(4, 9, sizes=(4,), aspect_ratios=(1.0,), stride_fraction=0.5)
    assert boxes.tolist() == [[0.5, 0.0, 4.5, 4.0], [2.5, 0.0, 6.5, 4.0], [4.5, 0.0, 8.5, 4.0]]
    # Aspect ratio 4 (height / width): a 2 x 8 window of area 16 fits an 8 x 8 image 4 x 1 times;
    # a size larger than the image gives nothing.
    boxes = dense_boxes(8, 8, sizes=(4, 20), aspect_ratios=(4.0,), stride_fraction=0.5)
    assert boxes.tolist() == [[0, 0, 2, 8], [1, 0, 3, 8], [2, 0, 4, 8], [3, 0, 5, 8], [4, 0, 6, 8],
                              [5, 0, 7, 8], [6, 0, 8, 8]]  # fmt: skip


def slow_dense_boxes(height, width, sizes, ratios, stride):
    """A loop: walk each window from the left / top edge in steps, then centre the walk."""
    out = []
    for s in sizes:
        for r in ratios:
            w, h = s / math.sqrt(r), s * math.sqrt(r)
            if w > width or h > height:
                continue
            xs, x = [], 0.0
            while x + w <= width + 1e-6:
                xs.append(x)
                x += stride * w
            ys, y = [], 0.0
            while y + h <= height + 1e-6:
                ys.append(y)
                y += stride * h
            dx, dy = (width - (xs[-1] + w)) / 2, (height - (ys[-1] + h)) / 2
            out += [[x + dx, y + dy, x + dx + w, y + dy + h] for y in ys for x in xs]
    return torch.tensor(out).reshape(-1, 4)


@pytest.mark.parametrize("height,width,sizes,ratios,stride", [
    (190, 190, (16, 32, 64, 128), (0.5, 1.0, 2.0), 0.5),
    (217, 167, (12, 30), (1.0, 3.0), 0.25),
    (50, 300, (40, 80), (0.25, 1.0), 1.0),
])  # fmt: skip
def test_dense_boxes_match_a_slow_loop_and_stay_inside(height, width, sizes, ratios, stride):
    boxes = dense_boxes(height, width, sizes, ratios, stride)
    reference = slow_dense_boxes(height, width, sizes, ratios, stride)
    assert boxes.shape == reference.shape
    torch.testing.assert_close(boxes, reference, atol=1e-3, rtol=0)
    assert (boxes[:, :2] >= -1e-4).all() and (boxes[:, 2] <= width + 1e-4).all()
    assert (boxes[:, 3] <= height + 1e-4).all()


def test_dense_boxes_cover_every_box_of_their_own_shapes():
    # A box of one of the grid's shapes anywhere in the image is at most half a step (1/4 of its
    # side, stride 0.5) from a grid position in x and in y: IoU >= 0.75^2 / (2 - 0.75^2).
    bound = 0.75**2 / (2 - 0.75**2)
    height, width, sizes, ratios = 150, 200, (16, 32, 64), (0.5, 1.0, 2.0)
    grid = dense_boxes(height, width, sizes, ratios, 0.5)
    g = torch.Generator().manual_seed(0)
    for s in sizes:
        for r in ratios:
            w, h = s / math.sqrt(r), s * math.sqrt(r)
            xy = torch.rand(50, 2, generator=g) * torch.tensor([width - w, height - h])
            boxes = torch.cat([xy, xy + torch.tensor([w, h])], dim=1)  # (50, 4)
            best = box_iou(boxes, grid).max(dim=1).values
            assert (best >= bound - 1e-4).all(), (s, r, best.min())


def test_dense_boxes_errors():
    with pytest.raises(ValueError, match="stride_fraction must be in"):
        dense_boxes(10, 10, stride_fraction=0)
    with pytest.raises(ValueError, match="height and width must be"):
        dense_boxes(0, 10)
    with pytest.raises(ValueError, match="non-empty and positive"):
        dense_boxes(10, 10, sizes=())


# --- verdict and intervals ------------------------------------------------------------------------
@pytest.mark.parametrize("low,high,sign,expected", [
    (-0.05, -0.01, -1, "reproduced in kind"),
    (0.01, 0.2, +1, "reproduced in kind"),
    (0.01, 0.2, -1, "not reproduced"),
    (-0.3, -0.1, +1, "not reproduced"),
    (-0.02, 0.03, -1, "within noise"),
    (0.0, 0.1, +1, "within noise"),  # an end at 0 does not exclude 0
    (-0.1, 0.0, -1, "within noise"),
])  # fmt: skip
def test_verdict_rule_on_hand_made_intervals(low, high, sign, expected):
    assert verdict(low, high, sign) == expected
    assert expected in VERDICTS


def test_verdict_needs_a_sign():
    with pytest.raises(ValueError, match="need a paper sign"):
        verdict(-1, 1, 0)


def test_map_interval_agrees_with_evaluate():
    ds = ShapesDataset(6)
    targets = [ds.load_target(i) for i in range(len(ds))]
    perfect = [
        {"boxes": t["boxes"], "scores": torch.ones(len(t["boxes"])), "labels": t["labels"]}
        for t in targets
    ]
    half = [d if i % 2 else {k: v[:0] for k, v in d.items()} for i, d in enumerate(perfect)]
    out = ablations.map_interval(half, perfect, targets, ds.classes, rounds=50)
    by_hand = (evaluate_detections(half, targets, ds.classes, metric="07")["map"]
               - evaluate_detections(perfect, targets, ds.classes, metric="07")["map"])  # fmt: skip
    assert out["difference"] == pytest.approx(by_hand)
    assert out["low"] <= out["difference"] <= out["high"] < 0
    same = ablations.map_interval(perfect, perfect, targets, ds.classes, rounds=20)
    assert same["low"] == same["high"] == same["difference"] == 0


# --- the experiments on a tiny (untrained) model ---------------------------------------------------
@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    cfg = tiny_cfg(cache_dir=str(tmp_path_factory.mktemp("ablations")), svd_rank_fc6=8, svd_rank_fc7=8,
                   device="cpu", svm_hard_negative_rounds=1, svm_C=1.0)  # fmt: skip
    model = tiny_model(cfg).eval()
    train_ds, test_ds = ShapesDataset(4, seed=1), ShapesDataset(5, seed=2)
    train_props = jittered_proposals(train_ds, per_box=6, background=12, seed=1)
    test_props = jittered_proposals(test_ds, per_box=6, background=12, seed=2)
    targets = [test_ds.load_target(i) for i in range(len(test_ds))]
    return cfg, model, train_ds, train_props, test_ds, test_props, targets


def detect_map(model, cfg, test_ds, test_props, targets):
    detections, _ = detect(model, test_ds, test_props, cfg, progress=False)
    return evaluate_detections(detections, targets, test_ds.classes, metric="07")["map"]


def test_svd_rank_ablation_against_detect_and_by_hand(setting):
    cfg, model, _, _, test_ds, test_props, targets = setting
    out = ablations.svd_rank_ablation(model, cfg, test_ds, test_props, ranks=(4,), timing_images=2, rounds=20,
                                      progress=False)  # fmt: skip
    assert out["from_cache"] is False and out["rank"] == 8 and out["timing_images"] == 2
    curve = {c["fc6_rank"]: c for c in out["curve"]}
    (u6, v6), (u7, v7) = (m.weight.shape for m in model.head.fc if isinstance(m, torch.nn.Linear))
    assert list(curve) == [None, 4, 8]  # the uncompressed model, then the ranks (cfg's added)
    assert curve[None]["map"] == pytest.approx(
        detect_map(model, cfg, test_ds, test_props, targets), abs=1e-6
    )
    for rank in (4, 8):
        compressed = truncated_svd(model, rank, cfg.svd_rank_fc7)
        assert curve[rank]["map"] == pytest.approx(
            detect_map(compressed, cfg, test_ds, test_props, targets), abs=1e-6
        )
        # fc6 (v6 -> u6) and fc7 (v7 -> u7), each as two layers: t (u + v) multiply-adds per RoI.
        assert curve[rank]["fc_macs_per_roi"] == rank * (u6 + v6) + 8 * (u7 + v7)
    assert curve[None]["fc_macs_per_roi"] == u6 * v6 + u7 * v7
    assert out["map_difference"]["difference"] == pytest.approx(
        curve[8]["map"] - curve[None]["map"], abs=1e-9
    )
    for key in ("time_change", "fc_time_change"):
        assert out[key]["low"] <= out[key]["high"] and out[key]["difference"] > -1
    assert all(c["seconds_per_image"] > 0 and c["fc_seconds_per_image"] > 0 for c in out["curve"])
    again = ablations.svd_rank_ablation(model, cfg, test_ds, test_props, ranks=(4,), timing_images=2, rounds=20,
                                        progress=False)  # fmt: skip
    assert again["from_cache"] is True and again["curve"] == out["curve"]
    other = ablations.svd_rank_ablation(model, cfg, test_ds, test_props, ranks=(2,), timing_images=2, rounds=20,
                                        progress=False)  # fmt: skip
    assert other["from_cache"] is False  # a changed setting is a new key


def test_proposal_ablation_against_recall_and_detect(setting):
    cfg, model, _, _, test_ds, test_props, targets = setting
    dense = {"sizes": (12, 24), "stride_fraction": 0.5}
    out = ablations.proposal_ablation(model, cfg, test_ds, test_props, top_k=(5,), fewer=10, dense=dense,
                                      rounds=20, progress=False)  # fmt: skip
    curve = {c["name"]: c for c in out["curve"]}
    assert list(curve) == ["top 5", "top 10", "all", "dense", "all + dense"]
    grids = [dense_boxes(*test_ds[i][0].shape[-2:], **dense) for i in range(len(test_ds))]
    variants = {"top 5": [p[:5] for p in test_props], "top 10": [p[:10] for p in test_props], "all": test_props,
                "dense": grids, "all + dense": [torch.cat([p, g]) for p, g in zip(test_props, grids, strict=True)]}  # fmt: skip
    for name, props in variants.items():
        table = proposal_recall(list(props), targets, ablations.IOU_THRESHOLDS, top_n=(10_000,))
        assert curve[name]["average_recall"] == pytest.approx(
            float(table.average_recall()[0]), abs=1e-5
        ), name
        assert curve[name]["recall_at_0.5"] == pytest.approx(float(table.recall[0, 0]), abs=1e-5), (
            name
        )
        assert curve[name]["proposals_per_image"] == pytest.approx(
            sum(map(len, props)) / len(props)
        )
        # one shared conv pass per image gives what the detector gives on these boxes alone
        assert curve[name]["map"] == pytest.approx(
            detect_map(model, cfg, test_ds, list(props), targets), abs=1e-6
        )
    assert out["ar_fewer"]["difference"] == pytest.approx(
        curve["top 10"]["average_recall"] - curve["all"]["average_recall"], abs=1e-6)  # fmt: skip
    assert out["map_dense"]["difference"] == pytest.approx(
        curve["dense"]["map"] - curve["all"]["map"], abs=1e-9
    )


def test_svm_ablation_softmax_side_is_the_detector(setting):
    cfg, model, train_ds, train_props, test_ds, test_props, targets = setting
    with warnings.catch_warnings():  # a tiny set may leave a class without hard negatives
        warnings.simplefilter("ignore")
        out = ablations.svm_ablation(model, cfg, train_ds, train_props, test_ds, test_props, rounds=20,
                                     progress=False)  # fmt: skip
    assert out["map_softmax"] == pytest.approx(
        detect_map(model, cfg, test_ds, test_props, targets), abs=1e-6
    )
    assert 0 <= out["map_svm"] <= 1
    assert out["map_difference"]["difference"] == pytest.approx(
        out["map_svm"] - out["map_softmax"], abs=1e-9
    )
    assert out["svm_train_images"] == len(train_ds)


def test_ablation_table_rows_and_verdicts(setting):
    cfg, model, train_ds, train_props, test_ds, test_props, _ = setting
    svd = ablations.svd_rank_ablation(model, cfg, test_ds, test_props, ranks=(4,), timing_images=2, rounds=20,
                                      progress=False)  # fmt: skip
    proposals = ablations.proposal_ablation(model, cfg, test_ds, test_props, top_k=(5,), fewer=10,
                                            dense={"sizes": (12, 24)}, rounds=20, progress=False)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        svm = ablations.svm_ablation(model, cfg, train_ds, train_props, test_ds, test_props, rounds=20,
                                     progress=False)  # fmt: skip
    rows = ablations.ablation_table(svd, proposals, svm)
    assert len(rows) == 8 and all(r["verdict"] in VERDICTS for r in rows)
    assert len(ablations.ablation_table(svm=svm)) == 1
    # the verdict is the rule's on the interval the row prints
    d = svm["map_difference"]
    assert rows[-1]["verdict"] == verdict(d["low"], d["high"], -1)


def test_multi_scale_model_is_refused(setting):
    cfg, model, _, _, test_ds, test_props, _ = setting
    pyramid = tiny_model(cfg)
    pyramid.test_scales = (40, 48)
    with pytest.raises(ValueError, match="one test scale"):
        ablations.svd_rank_ablation(pyramid, cfg, test_ds, test_props, progress=False)


def test_save_report_writes_strict_json_where_the_reports_go(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRCNN_REPORTS", str(tmp_path / "reports"))
    rows = [{"experiment": "a", "ours": "0.5", "verdict": "within noise", "x": float("nan")}]
    path = ablations.save_report(rows)
    assert path == tmp_path / "reports" / "ablations.json"
    assert json.loads(path.read_text()) == {"rows": [dict(rows[0], x=None)]}
