"""The retraining ablations (fastrcnn_lite.experiments.ablation_training, ablation_scales and
ablation_training_report) on tiny settings: what each variant's training may change (frozen conv
layers, the stage-wise box stage), the pyramid against a hand-worked case and a slow per-RoI
loop, the cache keys, and the rows' verdicts."""

from __future__ import annotations

import math

import pytest
import torch

from fastrcnn_lite.backbones import small_backbone
from fastrcnn_lite.boxes import box_area
from fastrcnn_lite.config import Config
from fastrcnn_lite.evaluate import evaluate_detections
from fastrcnn_lite.experiments import ablation_scales as scales_mod
from fastrcnn_lite.experiments import ablation_training as training
from fastrcnn_lite.experiments.ablation_stats import VERDICTS, verdict
from fastrcnn_lite.experiments.ablation_training_report import training_ablation_rows
from fastrcnn_lite.fast_rcnn import build_fast_rcnn, detect
from fastrcnn_lite.ridge import BoxRegressors
from fastrcnn_lite.sppnet import SPPNet, spp_fc
from fastrcnn_lite.svm import LinearSVMs
from fastrcnn_lite.transforms import pyramid_levels, resize, scale_factor

from .test_fast_rcnn import ShapesDataset, jittered_proposals, tiny_cfg

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ITERS = 3  # tiny short schedule


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    cfg = tiny_cfg(cache_dir=str(tmp_path_factory.mktemp("training_ablations")), device="cpu")
    train_ds, test_ds = ShapesDataset(3, seed=1), ShapesDataset(3, seed=2)
    train_props = jittered_proposals(train_ds, per_box=4, background=8, seed=1)
    test_props = jittered_proposals(test_ds, per_box=4, background=8, seed=2)
    return cfg, train_ds, train_props, test_ds, test_props


def map_of(detections, ds) -> float:
    targets = [ds.load_target(i) for i in range(len(ds))]
    return float(evaluate_detections(detections, targets, ds.classes, metric="07")["map"])


def test_short_schedule_scales_the_steps():
    short = training.short_schedule(Config.embedded(), 400)
    assert short.max_iters == 400 and short.lr_steps == (293,)  # 1100 * 400 / 1500 = 293.3
    assert training.short_schedule(Config(), 4000).lr_steps == (3000,)  # 30k of 40k
    with pytest.raises(ValueError, match="iters must be >= 1"):
        training.short_schedule(Config.embedded(), 0)


def test_fc6_variant_leaves_the_conv_layers_the_reference_trains(setting):
    cfg, train_ds, train_props, _, _ = setting
    short = training.short_schedule(cfg, ITERS)
    start = build_fast_rcnn(short, len(train_ds.classes))  # what training starts from (seeded)
    frozen, _ = training.train_variant(
        short.replace(trainable_from="fc6"), train_ds, train_props, False, False
    )
    reference, _ = training.train_variant(short, train_ds, train_props, False, False)  # from conv3
    before = start.body.state_dict()
    assert all(torch.equal(t, before[k]) for k, t in frozen.body.state_dict().items())
    changed = {k for k, t in reference.body.state_dict().items() if not torch.equal(t, before[k])}
    # The small body: [Normalize, conv1 (1), bn, relu, pool, conv2 (5), ..., conv3 (9), ..., conv4 (13), ...].
    assert "9.weight" in changed and "13.weight" in changed  # conv3 and conv4 learned
    assert not any(k.split(".")[0] in {"1", "2", "5", "6"} for k in changed)  # conv1, conv2 frozen
    for model in (frozen, reference):  # fc6 learns in both
        assert not torch.equal(model.head.fc[0].weight, start.head.fc[0].weight)


def test_box_stage_changes_only_bbox_pred(setting):
    cfg, train_ds, train_props, _, _ = setting
    short = training.short_schedule(cfg, ITERS)
    cls_only, _ = training.train_variant(
        short.replace(box_loss_weight=0.0), train_ds, train_props, False, False
    )
    before = {k: t.clone() for k, t in cls_only.state_dict().items()}
    staged, info = training.train_box_stage(
        cls_only, short, train_ds, train_props, 4, progress=False
    )
    assert info["iterations"] == 4 and staged.box_loss_weight == 1.0
    after = staged.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"head.bbox_pred.weight", "head.bbox_pred.bias"}
    assert all(
        torch.equal(t, before[k]) for k, t in cls_only.state_dict().items()
    )  # original untouched
    with pytest.raises(ValueError, match="box_loss_weight must be > 0"):
        training.train_box_stage(
            cls_only, short.replace(box_loss_weight=0.0), train_ds, train_props, 1, False
        )


def test_variant_detections_with_and_without_box_regression(setting):
    cfg, train_ds, train_props, test_ds, test_props = setting
    model, _ = training.train_variant(
        training.short_schedule(cfg, ITERS), train_ds, train_props, False, False
    )
    model.score_thresh = 0.0
    out = training.variant_detections(model, test_ds, test_props, progress=False)
    reference, _ = detect(model, test_ds, test_props, cfg, progress=False)
    for mine, ref in zip(out["box_regression"], reference, strict=True):
        torch.testing.assert_close(mine["boxes"], ref["boxes"])
        torch.testing.assert_close(mine["scores"], ref["scores"])
    for dets, props in zip(out["proposals"], test_props, strict=True):
        assert len(dets["boxes"]) > 0  # every box is one of the image's proposals (clipped)
        distance = (dets["boxes"][:, None, :] - props[None, :, :]).abs().amax(dim=2).amin(dim=1)
        assert (distance < 1e-4).all()


def test_pyramid_pools_each_roi_at_the_hand_computed_scale(setting):
    cfg, train_ds, train_props, test_ds, test_props = setting
    # Hand-worked: a 48 x 64 image at scales (24, 48, 96) has factors 0.5, 1, 2; target area 16 x 16.
    # A 16 x 16 box has areas 64, 256, 1024 there -> 48; 32 x 32: 256 at 24; 8 x 8: 256 at 96.
    boxes = torch.tensor([[4.0, 4, 20, 20], [10, 8, 42, 40], [30, 20, 38, 28]])
    factors = torch.tensor(
        [scale_factor((48, 64), s, 200) for s in (24, 48, 96)], dtype=torch.float64
    )
    assert factors.tolist() == [0.5, 1.0, 2.0]
    assert pyramid_levels(boxes, factors, 16 * 16).tolist() == [1, 0, 2]
    # End to end: the ablation's five-scale mAP equals that of a slow loop that pools each RoI
    # alone at the scale it picks by hand (min over scales of |area * factor^2 - target|).
    scales, max_size = (24, 48, 96), 200
    out = scales_mod.multiscale_ablation(cfg, train_ds, train_props, test_ds, test_props, iters=ITERS, scales=scales,
                                         max_size=max_size, timing_images=2, rounds=20, pretrained=False,
                                         progress=False)  # fmt: skip
    short = training.short_schedule(cfg, ITERS)
    pyramid_cfg = short.replace(scales=scales, test_scales=scales, multiscale_scales=scales,
                                multiscale_max_size=max_size)  # fmt: skip
    model, info = training.train_variant(pyramid_cfg, train_ds, train_props, False, False)
    assert info["from_cache"] is True  # the very model the ablation trained
    slow, counts = [], [0, 0, 0]
    with torch.no_grad():
        for i in range(len(test_ds)):
            image, props = test_ds[i][0], test_props[i]
            logits, deltas = [], []
            for box in props:
                area = float(box_area(box[None])[0])
                costs = [
                    abs(area * scale_factor((48, 64), s, max_size) ** 2 - 16 * 16) for s in scales
                ]
                level = costs.index(min(costs))
                counts[level] += 1
                resized, scaled = resize(
                    image, box[None], scale_factor((48, 64), scales[level], max_size)
                )
                cls, reg = model.class_outputs(model.body(resized[None]), [scaled])
                logits.append(cls)
                deltas.append(reg)
            slow.append(model.postprocess(torch.cat(logits), torch.cat(deltas), props, (48, 64)))
    assert out["map_five"] == pytest.approx(map_of(slow, test_ds), abs=1e-6)
    assert out["rois_per_scale"] == counts and min(counts) > 0  # the case mixes the scales
    assert out["scales"] == list(scales) and out["target_area"] == 16 * 16
    assert out["map_difference"]["difference"] == pytest.approx(
        out["map_five"] - out["map_single"], abs=1e-9
    )
    assert out["seconds_five"] > 0 and out["timing_images"] == 2


def test_cache_keys_change_with_each_setting(setting):
    cfg, train_ds, train_props, test_ds, test_props = setting

    def depth(**changes):
        args = dict(cfg=cfg, train_ds=train_ds, train_props=train_props, test_ds=test_ds, test_props=test_props,
                    iters=ITERS, rounds=20, pretrained=False, progress=False) | changes  # fmt: skip
        return training.finetune_depth_ablation(**args)

    first = depth()
    assert first["from_cache"] is False and depth()["from_cache"] is True
    assert [c["trainable_from"] for c in first["curve"]] == ["fc6", "conv3", "conv1"]
    assert first["curve"][0]["trainable_conv_parameters"] == 0
    assert first["map_fc6"]["difference"] == pytest.approx(
        first["curve"][0]["map"] - first["curve"][1]["map"]
    )
    for changes in ({"iters": ITERS + 1}, {"rounds": 21}, {"deeper": "conv2"}, {"cfg": cfg.replace(lr=0.02)},
                    {"test_props": [p[:-1] for p in test_props]},
                    {"train_ds": ShapesDataset(3, seed=3)}):  # fmt: skip
        assert depth(**changes)["from_cache"] is False, changes
    with pytest.raises(ValueError, match="three different layers"):
        depth(deeper="conv3")
    # The training key sees the data's content, not only its name and size.
    key = training.training_key(cfg, train_ds, train_props, test_ds, test_props, False)
    other = training.training_key(
        cfg, train_ds, train_props, ShapesDataset(3, seed=4), test_props, False
    )
    assert key["test"] == other["test"] and key["test_data"] != other["test_data"]


def tiny_sppnet(cfg, num_classes: int = 2) -> SPPNet:
    torch.manual_seed(0)
    backbone = small_backbone(width=8, fc_dim=32, pool_size=(3, 3))
    levels = (3, 2, 1)
    fc = spp_fc(backbone, levels)
    width = backbone.out_channels * sum(n * n for n in levels)
    svms = LinearSVMs(torch.randn(num_classes, 32), torch.zeros(num_classes), 1.0,
                      torch.ones(num_classes, dtype=torch.bool))  # fmt: skip
    regressors = BoxRegressors(0.001 * torch.randn(num_classes, width, 4), torch.zeros(num_classes, 4), 1.0,
                               torch.ones(num_classes))  # fmt: skip
    return SPPNet(backbone, fc, svms, regressors, ("red", "blue"), levels, cfg.test_scales, cfg.max_size,
                  cfg.pyramid_target_area).eval()  # fmt: skip


def test_rows_have_verdicts_and_sppnet_scales_match_its_own_pyramid(setting):
    cfg, train_ds, train_props, test_ds, test_props = setting
    common = dict(iters=ITERS, rounds=20, pretrained=False, progress=False)
    data = (cfg, train_ds, train_props, test_ds, test_props)
    depth = training.finetune_depth_ablation(*data, **common)
    multitask = training.multitask_ablation(*data, box_stage_iters=2, **common)
    scales = scales_mod.multiscale_ablation(
        *data, scales=(24, 48, 96), max_size=200, timing_images=2, **common
    )
    sppnet = tiny_sppnet(cfg)
    spp = scales_mod.sppnet_scales_ablation(sppnet, cfg, test_ds, test_props, scales=(24, 48, 96), max_size=200,
                                            timing_images=2, rounds=20, progress=False)  # fmt: skip
    assert sppnet.scales == tuple(cfg.test_scales)  # left unchanged
    one, _ = sppnet.detect(test_ds, test_props, progress=False)
    pyramid = SPPNet(sppnet.backbone, sppnet.fc, sppnet.svms, sppnet.box_regressors, sppnet.classes, sppnet.levels,
                     (24, 48, 96), 200, cfg.pyramid_target_area).eval()  # fmt: skip
    five, _ = pyramid.detect(test_ds, test_props, progress=False)
    assert spp["map_single"] == pytest.approx(map_of(one, test_ds), abs=1e-6)
    assert spp["map_five"] == pytest.approx(map_of(five, test_ds), abs=1e-6)
    assert multitask["box_stage_iters"] == 2 and multitask["iters"] == ITERS
    assert multitask["map_box_regression"]["difference"] == pytest.approx(
        multitask["map_multi_task"] - multitask["map_multi_task_no_box"], abs=1e-9)  # fmt: skip
    rows = training_ablation_rows(depth, multitask, scales, spp)
    assert len(rows) == 8 and all(r["verdict"] in VERDICTS for r in rows)
    assert len(training_ablation_rows(sppnet=spp)) == 1 and training_ablation_rows() == []
    # each verdict is the rule's on the interval the row prints, with the paper's sign
    signs = [-1, +1, -1, -1, +1, +1, +1, +1]  # fc6 worse, deeper better, stage-wise worse, ...
    intervals = [depth["map_fc6"], depth["map_deeper"], multitask["map_stage_wise_vs_multi_task"],
                 multitask["map_classification_vs_multi_task"], multitask["map_box_regression"],
                 scales["map_difference"], scales["time_change"], spp["map_difference"]]  # fmt: skip
    for row, d, sign in zip(rows, intervals, signs, strict=True):
        assert row["verdict"] == verdict(d["low"], d["high"], sign), row["experiment"]
    assert math.isfinite(scales["seconds_single"]) and scales["train_seconds"]["five"] > 0
