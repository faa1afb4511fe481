"""The detector contract (fastrcnn_lite.detector): every system builds, trains or loads from the
model cache with the same info keys, moves to a device and detects one image in one format."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from fastrcnn_lite.detector import INFO_KEYS, SYSTEMS, Detector, load_or_train
from fastrcnn_lite.ridge import BoxRegressors
from fastrcnn_lite.svm import LinearSVMs

from .test_fast_rcnn import ShapesDataset, jittered_proposals
from .test_fast_rcnn import tiny_cfg as fast_tiny_cfg
from .test_rcnn import tiny_backbone

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_cfg(tmp_path):
    # A few iterations of each system's training on a few images (R-CNN's SVM and ridge
    # regularisers as tests/test_rcnn.py has them: fitted to a few images).
    return fast_tiny_cfg(cache_dir=str(tmp_path / "cache"), max_iters=3, svm_hard_negative_rounds=1,
                         svm_C=1.0, ridge_lambda=1.0, device="cpu")  # fmt: skip


# What each system's own load_or_train_* takes beyond the common arguments.
OPTIONS = {
    "R-CNN": {"backbone": None, "finetune_iters": 5},
    "SPPnet": {"backbone": None, "finetune_iters": 5},
    "Fast R-CNN": {"pretrained": False},
    "Fast R-CNN + SVD": {"pretrained": False},
}


def build(system, cfg, ds, props):
    options = dict(OPTIONS[system])
    if "backbone" in options:
        options["backbone"] = tiny_backbone()
    return load_or_train(system, cfg, ds, props, progress=False, device="cpu", **options)


def parameters_by_hand(detector) -> int:
    """Numbers in the test-time detector, counted from its parts."""
    if isinstance(detector, torch.nn.Module):
        return sum(p.numel() for p in detector.parameters())
    nets = (
        detector.backbone.body,
        detector.fc if hasattr(detector, "fc") else detector.backbone.fc,
    )
    heads = (detector.svms.weight, detector.svms.bias, detector.box_regressors.weight,
             detector.box_regressors.bias)  # fmt: skip
    return sum(p.numel() for n in nets for p in n.parameters()) + sum(t.numel() for t in heads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each system trained (first call) and loaded from the model cache (second call)."""
    tmp = tmp_path_factory.mktemp("contract")
    cfg = tiny_cfg(tmp)
    ds = ShapesDataset(3)
    props = jittered_proposals(ds, per_box=6, background=12)
    with warnings.catch_warnings():  # a tiny SVM set may warn of a class without positives
        warnings.simplefilter("ignore")
        first = {name: build(name, cfg, ds, props) for name in SYSTEMS}
        second = {name: build(name, cfg, ds, props) for name in SYSTEMS}
    return cfg, ds, props, first, second


@pytest.mark.parametrize("system", SYSTEMS)
def test_each_system_has_the_contract_and_its_info_keys(trained, system):
    _, ds, props, first, second = trained
    for detector in (first[system], second[system]):
        assert isinstance(detector, Detector) and detector.name == system
        assert set(INFO_KEYS) <= set(detector.info)
        info = detector.info
        assert isinstance(info["from_cache"], bool) and isinstance(info["cache_bytes"], int)
        assert info["train_stages"] and all(s >= 0 for s in info["train_stages"].values())
        assert info["train_seconds"] == pytest.approx(sum(info["train_stages"].values()))
        assert info["parameters"] == parameters_by_hand(detector)
    # The second call read the model cache; the train time is the one measured when trained
    # (the SVD variant's own stage, the compression, is measured each time it is made).
    assert second[system].info["from_cache"] is True
    stages = [k for k in first[system].info["train_stages"] if k != "svd_seconds"]
    for stage in stages:
        assert (
            second[system].info["train_stages"][stage] == first[system].info["train_stages"][stage]
        )
    if system != "Fast R-CNN + SVD":  # the SVD variant compresses the Fast R-CNN the cache holds
        assert first[system].info["from_cache"] is False
    # Disk: R-CNN and SPPnet cache their training features, Fast R-CNN caches none.
    assert (first[system].info["cache_bytes"] > 0) == (system in ("R-CNN", "SPPnet"))


def test_old_info_keys_the_notebooks_read_are_still_there(trained):
    _, _, _, first, second = trained
    for system in ("R-CNN", "SPPnet"):  # notebooks 03 and 05: model.info["loaded"]
        assert first[system].info["loaded"] == 0 and second[system].info["loaded"] == 1
    for key in ("iterations", "history", "path"):  # notebook 06 reads load_or_train_fast_rcnn's
        assert key in first["Fast R-CNN"].info
    svd = first["Fast R-CNN + SVD"].info["train_stages"]
    assert set(svd) == {"sgd_seconds", "svd_seconds"}
    assert svd["sgd_seconds"] == first["Fast R-CNN"].info["train_seconds"]


@pytest.mark.parametrize("system", SYSTEMS)
def test_detect_image_has_one_output_format_and_the_cache_detects_alike(trained, system):
    _, ds, props, first, second = trained
    image = ds[1][0]
    detector = first[system]
    assert detector.to("cpu") is detector
    with torch.inference_mode():
        det = detector.detect_image(image, props[1])
        again = second[system].detect_image(image, props[1])
        scores, deltas = detector.score_proposals(image, props[1])
    assert set(det) == {"boxes", "scores", "labels"}
    num = len(det["scores"])
    assert det["boxes"].shape == (num, 4) and det["labels"].shape == (num,)
    assert det["labels"].dtype == torch.int64 and det["boxes"].dtype == torch.float32
    assert ((det["labels"] >= 1) & (det["labels"] <= len(ds.classes))).all()
    assert (det["scores"][:-1] >= det["scores"][1:]).all()  # best first
    h, w = image.shape[1:]
    assert (
        (det["boxes"] >= 0).all()
        and (det["boxes"][:, 2] <= w).all()
        and (det["boxes"][:, 3] <= h).all()
    )
    torch.testing.assert_close(again["scores"], det["scores"])
    torch.testing.assert_close(again["boxes"], det["boxes"])
    # The network part: one row of scores per proposal, 4 deltas per class.
    assert len(scores) == len(props[1]) and deltas.shape == (len(props[1]), 4 * len(ds.classes))
    # No proposal, no detection, in the same format.
    none = detector.detect_image(image, torch.zeros(0, 4))
    assert set(none) == set(det) and len(none["boxes"]) == 0 and none["boxes"].shape == (0, 4)


def test_to_moves_the_svm_heads_and_detect_follows_the_device(trained):
    """R-CNN and SPPnet move like Fast R-CNN (networks and SVM / ridge weights). On the CPU a
    "move" to the meta device shows it without a GPU; on CUDA the detections are compared."""
    _, ds, props, first, _ = trained
    spp = first["SPPnet"]
    meta = copy.deepcopy(spp).to("meta")
    assert meta.svms.weight.device.type == "meta" and meta.box_regressors.bias.device.type == "meta"
    assert all(p.device.type == "meta" for p in meta.fc.parameters())
    assert isinstance(meta.svms, LinearSVMs) and isinstance(meta.box_regressors, BoxRegressors)
    assert spp.svms.weight.device.type == "cpu"  # the copy moved, not the original
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the detections on the GPU are not compared here")
    image, proposals = ds[1][0], props[1]
    for system in SYSTEMS:
        detector = copy.deepcopy(first[system])
        on_cpu = detector.detect_image(image, proposals)
        on_gpu = detector.to("cuda").detect_image(image.cuda(), proposals.cuda())
        torch.testing.assert_close(on_gpu["scores"].cpu(), on_cpu["scores"], atol=1e-4, rtol=1e-4)


def test_unknown_system_and_bad_config(tmp_path):
    ds = ShapesDataset(1)
    props = jittered_proposals(ds)
    with pytest.raises(ValueError, match="system must be one of .*'YOLO'"):
        load_or_train("YOLO", tiny_cfg(tmp_path), ds, props)
    with pytest.raises(TypeError, match="cfg must be a fastrcnn_lite.config.Config"):
        load_or_train("R-CNN", {"backbone": "small"}, ds, props)
