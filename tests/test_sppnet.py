"""SPPnet end to end on a few rendered images (fastrcnn_lite.sppnet), its bad inputs, and the
receptive-field arithmetic behind "no backward through the pyramid" (fastrcnn_lite.sppnet_analysis)."""

import math
import re
import warnings

import pytest
import torch
from torch import nn

from fastrcnn_lite import embedded
from fastrcnn_lite.backbones import small_backbone
from fastrcnn_lite.evaluate import evaluate_detections
from fastrcnn_lite.roi_pool import roi_pool
from fastrcnn_lite.sppnet import SPPNet, load_or_train_sppnet, spp_fc, train_sppnet
from fastrcnn_lite.sppnet_analysis import backward_cost, receptive_field, receptive_field_boxes
from tests.test_rcnn import RenderedDataset, targets_of, tiny_backbone, tiny_cfg, toy_proposals

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sppnet")
    ds = RenderedDataset([0, 1, 2])
    props = toy_proposals(ds)
    cfg = tiny_cfg(tmp)
    model = train_sppnet(
        cfg, ds, props, progress=False, backbone=tiny_backbone(), finetune_iters=150
    )
    return cfg, ds, props, model


@pytest.mark.slow
def test_memorises_its_training_images(trained):
    cfg, ds, props, model = trained
    detections, seconds = model.detect(ds, props, progress=False)
    result = evaluate_detections(detections, targets_of(ds), ds.classes)
    assert result["map"] > 0.8, result["ap"]
    assert seconds > 0 and model.cache_bytes > 0
    for key in ("features_seconds", "finetune_seconds", "svm_seconds", "ridge_seconds"):
        assert model.info[key] > 0


@pytest.mark.slow
def test_conv_layers_stay_frozen(trained):
    cfg, ds, props, model = trained
    # The body is the pre-trained one, untouched by fine-tuning (only fc6/fc7 learn).
    torch.testing.assert_close(model.backbone.body.state_dict(), tiny_backbone().body.state_dict())
    assert not any(p.requires_grad for p in model.backbone.body.parameters())


def test_spp_fc_starts_as_the_pretrained_fc6_on_its_level():
    backbone = tiny_backbone()
    fc = spp_fc(backbone, (5, 3, 2, 1))
    assert fc[0].in_features == 32 * (25 + 9 + 4 + 1)
    features = torch.rand(1, 32, 12, 14)
    boxes = [torch.tensor([[3.0, 5.0, 70.0, 90.0], [20.0, 8.0, 50.0, 30.0]])]
    from fastrcnn_lite.roi_pool import spatial_pyramid_pool

    pyramid = spatial_pyramid_pool(features, boxes, (5, 3, 2, 1), 1 / 8)
    pool5 = roi_pool(features, boxes, (5, 5), 1 / 8).flatten(1)
    torch.testing.assert_close(fc(pyramid), backbone.fc(pool5))
    # Without a level of the pre-trained pool size, fc6 is a fresh Gaussian layer.
    fresh = spp_fc(backbone, (4, 2, 1))
    assert fresh[0].in_features == 32 * 21 and fresh[0].weight.std() > 0


def test_receptive_field_matches_gradients():
    backbone = small_backbone(width=4)
    rf = receptive_field(backbone)
    assert rf["stride"] == 8
    # Brute force: the input pixels that get a gradient from one output cell. Max-pools route the
    # gradient to one argmax only, so average pools of the same geometry stand in for them;
    # positive weights on a constant positive image keep every ReLU open.
    body = nn.Sequential(*[nn.AvgPool2d(m.kernel_size, m.stride, m.padding) if isinstance(m, nn.MaxPool2d) else m
                           for m in backbone.body]).eval()  # fmt: skip
    for module in body.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.uniform_(module.weight, 0.1, 1.0)
    image = torch.ones(1, 3, 96, 96, requires_grad=True)
    out = body(image)  # (1, C, 12, 12)
    out[0, :, 5, 6].sum().backward()
    cols = torch.where(image.grad[0].abs().sum(dim=(0, 1)) > 0)[0]
    rows = torch.where(image.grad[0].abs().sum(dim=(0, 2)) > 0)[0]
    assert cols.max() - cols.min() + 1 == rf["size"] and rows.max() - rows.min() + 1 == rf["size"]
    assert (cols.min() + cols.max() + 1) / 2 == pytest.approx(rf["centre"] + 6 * rf["stride"])
    assert (rows.min() + rows.max() + 1) / 2 == pytest.approx(rf["centre"] + 5 * rf["stride"])
    # receptive_field_boxes: a box over cells 2..3 reaches the union of their fields, clipped.
    box = receptive_field_boxes(torch.tensor([[16.0, 16.0, 32.0, 32.0]]), backbone, (96, 96))
    lo = rf["centre"] + 2 * 8 - rf["size"] / 2
    hi = rf["centre"] + 3 * 8 + rf["size"] / 2
    torch.testing.assert_close(box, torch.tensor([[max(lo, 0.0), max(lo, 0.0), hi, hi]]))


def test_backward_cost_many_images_versus_two(tmp_path):
    ds = RenderedDataset(range(8))
    props = toy_proposals(ds)
    cfg = tiny_cfg(tmp_path)
    backbone = small_backbone()
    rcnn_style = backward_cost(backbone, ds, props, cfg, images_per_batch=None, rois_per_batch=16)
    fast_style = backward_cost(backbone, ds, props, cfg, images_per_batch=2, rois_per_batch=16)
    assert fast_style["num_images"] == 2
    assert rcnn_style["num_images"] > fast_style["num_images"]
    assert rcnn_style["image_pixels"] > fast_style["image_pixels"]
    assert (
        0 < rcnn_style["rf_fraction"] <= 1 and rcnn_style["rf_pixels"] <= rcnn_style["image_pixels"]
    )


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:class .* has no positive")  # one image lacks some classes
def test_model_cache_round_trip(tmp_path):
    ds = RenderedDataset([3])
    props = toy_proposals(ds)
    cfg = tiny_cfg(tmp_path)
    first = load_or_train_sppnet(
        cfg, ds, props, progress=False, backbone=tiny_backbone(), finetune_iters=5
    )
    second = load_or_train_sppnet(
        cfg, ds, props, progress=False, backbone=tiny_backbone(), finetune_iters=5
    )
    assert first.info["loaded"] == 0 and second.info["loaded"] == 1 and isinstance(second, SPPNet)
    assert not any(p.requires_grad for p in second.backbone.body.parameters())
    a, _ = first.detect(ds, props, progress=False)
    b, _ = second.detect(ds, props, progress=False)
    torch.testing.assert_close(a[0]["scores"], b[0]["scores"])


@pytest.mark.slow
def test_bad_inputs(tmp_path):
    ds = RenderedDataset([0, 1, 2], drop=("star",), empty=(1,))
    props = toy_proposals(ds)
    props[2] = torch.zeros(0, 4)
    cfg = tiny_cfg(tmp_path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = train_sppnet(
            cfg, ds, props, progress=False, backbone=tiny_backbone(), finetune_iters=3
        )
    # Exactly the classes without a (non-difficult) gt box in the training split are reported.
    present = {ds.classes[k - 1] for _, t in ds.items for k in t["labels"].tolist()}
    warned = {
        re.search(r"class '(\w+)' has no positive", str(w.message)).group(1)
        for w in record
        if "has no positive" in str(w.message)
    }
    assert warned == set(ds.classes) - present and "star" in warned
    detections, _ = model.detect(ds, props, progress=False)
    assert detections[2]["boxes"].shape == (0, 4)
    star = embedded.CLASSES.index("star") + 1
    assert all((d["labels"] != star).all() for d in detections)
    assert math.isnan(evaluate_detections(detections, targets_of(ds), ds.classes)["ap"]["star"])


def test_errors(tmp_path):
    ds = RenderedDataset([0, 1])
    cfg = tiny_cfg(tmp_path)
    with pytest.raises(ValueError, match="proposals has 1 entries but the dataset has 2"):
        train_sppnet(cfg, ds, toy_proposals(ds)[:1], progress=False, backbone=tiny_backbone())
    nothing = RenderedDataset([0, 1], empty=(0, 1))
    with pytest.raises(ValueError, match="no foreground window"):
        train_sppnet(cfg, nothing, toy_proposals(nothing), progress=False, backbone=tiny_backbone())
