"""R-CNN end to end on a few rendered images (fastrcnn_lite.rcnn), and its bad inputs."""

import math
import re
import warnings

import pytest
import torch

from fastrcnn_lite import embedded
from fastrcnn_lite.backbones import small_backbone
from fastrcnn_lite.boxes import box_iou, decode_boxes
from fastrcnn_lite.config import Config
from fastrcnn_lite.evaluate import evaluate_detections
from fastrcnn_lite.pretrain import jitter_boxes, random_background_boxes
from fastrcnn_lite.rcnn import RCNN, load_or_train_rcnn, train_rcnn

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class RenderedDataset:
    """A few embedded-dataset images drawn in memory (no files), with VOC-style targets.

    ``drop`` removes the objects of some classes (a class with no positives); ``empty`` lists
    images whose objects are all removed (an image with no objects).
    """

    classes = embedded.CLASSES

    def __init__(self, indices, split="trainval", drop=(), empty=()):
        self.items = []
        for n, index in enumerate(indices):
            array, objects = embedded.render_image(0, split, index)
            objects = [
                o
                for o in objects
                if o["name"] not in drop and n not in empty and not o["difficult"]
            ]
            boxes = torch.tensor([o["box"] for o in objects], dtype=torch.float32).reshape(-1, 4)
            boxes[:, :2] -= 1  # VOC 1-based inclusive -> continuous
            target = {
                "boxes": boxes,
                "labels": torch.tensor(
                    [embedded.CLASSES.index(o["name"]) + 1 for o in objects], dtype=torch.long
                ),
                "difficult": torch.zeros(len(objects), dtype=torch.bool),
                "image_id": f"{split}_{index}",
                "size": array.shape[:2],
            }
            self.items.append((torch.from_numpy(array).permute(2, 0, 1).float() / 255, target))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def toy_proposals(dataset, seed=0, per_gt=6, background=30):
    """Jittered copies of every gt box (IoU mostly > 0.5) plus random background boxes."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for image, target in dataset.items:
        gt = target["boxes"]
        jittered = (
            torch.cat([jitter_boxes(gt, gen, std=0.12) for _ in range(per_gt)])
            if len(gt)
            else torch.zeros(0, 4)
        )
        size = tuple(image.shape[1:])
        jittered[:, 0::2] = jittered[:, 0::2].clamp(0, size[1])
        jittered[:, 1::2] = jittered[:, 1::2].clamp(0, size[0])
        out.append(torch.cat([jittered, random_background_boxes(gt, size, background, gen)]))
    return out


def tiny_cfg(tmp_path):
    # A few images: the SVMs and the ridge regressors need weaker regularisers than R-CNN's
    # C = 0.001 and lambda = 1000 to fit them.
    return Config.embedded(
        cache_dir=str(tmp_path / "cache"), svm_hard_negative_rounds=2, svm_C=1.0, ridge_lambda=1.0
    )


def tiny_backbone():
    torch.manual_seed(0)
    return small_backbone(width=8, fc_dim=64)


def targets_of(dataset):
    return [t for _, t in dataset.items]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rcnn")
    ds = RenderedDataset([0, 1, 2])
    props = toy_proposals(ds)
    cfg = tiny_cfg(tmp)
    model = train_rcnn(cfg, ds, props, progress=False, backbone=tiny_backbone(), finetune_iters=40)
    return cfg, ds, props, model


@pytest.mark.slow
def test_memorises_its_training_images(trained):
    cfg, ds, props, model = trained
    detections, seconds = model.detect(ds, props, progress=False)
    result = evaluate_detections(detections, targets_of(ds), ds.classes)
    assert result["map"] > 0.8, result["ap"]
    assert seconds > 0
    # The stages were timed and the features went to disk.
    for key in ("finetune_seconds", "features_seconds", "svm_seconds", "ridge_seconds"):
        assert model.info[key] > 0
    assert model.cache_bytes > 0
    assert model.train_seconds == pytest.approx(
        sum(
            model.info[k]
            for k in ("finetune_seconds", "features_seconds", "svm_seconds", "ridge_seconds")
        )
    )


@pytest.mark.slow
def test_box_regression_moves_proposals_towards_the_objects(trained):
    # On its training proposals (IoU > 0.6), each class's regressor must bring them closer to their gt.
    cfg, ds, props, model = trained
    before, after = [], []
    for (image, target), proposals in zip(ds.items, props, strict=True):
        iou, best = box_iou(proposals, target["boxes"]).max(dim=1)
        near, gt, labels = (
            proposals[iou > 0.6],
            target["boxes"][best[iou > 0.6]],
            target["labels"][best[iou > 0.6]],
        )
        pool5, _ = model.region_features(image, near)
        deltas = model.box_regressors(pool5).reshape(len(near), -1, 4)[
            torch.arange(len(near)), labels - 1
        ]
        before.append(box_iou(near, gt).diagonal())
        after.append(box_iou(decode_boxes(near, deltas), gt).diagonal())
    assert torch.cat(after).mean() > torch.cat(before).mean() + 0.02


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:class .* has no positive")  # one image lacks some classes
def test_model_cache_round_trip(tmp_path):
    ds = RenderedDataset([3])
    props = toy_proposals(ds)
    cfg = tiny_cfg(tmp_path)
    first = load_or_train_rcnn(
        cfg, ds, props, progress=False, backbone=tiny_backbone(), finetune_iters=5
    )
    second = load_or_train_rcnn(
        cfg, ds, props, progress=False, backbone=tiny_backbone(), finetune_iters=5
    )
    assert first.info["loaded"] == 0 and second.info["loaded"] == 1
    assert second.train_seconds == pytest.approx(first.train_seconds)
    a, _ = first.detect(ds, props, progress=False)
    b, _ = second.detect(ds, props, progress=False)
    torch.testing.assert_close(a[0]["scores"], b[0]["scores"])
    assert isinstance(second, RCNN)


@pytest.mark.slow
def test_bad_inputs(tmp_path):
    # Image 1 has no objects, image 2 has no proposals, and class "star" has no positive.
    ds = RenderedDataset([0, 1, 2], drop=("star",), empty=(1,))
    assert len(ds[1][1]["boxes"]) == 0 and len(ds[0][1]["boxes"]) > 0
    props = toy_proposals(ds)
    props[2] = torch.zeros(0, 4)
    cfg = tiny_cfg(tmp_path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = train_rcnn(
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
    assert detections[2]["boxes"].shape == (0, 4) and detections[2]["labels"].dtype == torch.long
    star = embedded.CLASSES.index("star") + 1
    assert all((d["labels"] != star).all() for d in detections)
    assert not model.svms.trained[star - 1]
    result = evaluate_detections(detections, targets_of(ds), ds.classes)
    assert math.isnan(result["ap"]["star"])


def test_errors(tmp_path):
    ds = RenderedDataset([0, 1])
    cfg = tiny_cfg(tmp_path)
    with pytest.raises(ValueError, match="proposals has 1 entries but the dataset has 2"):
        train_rcnn(cfg, ds, toy_proposals(ds)[:1], progress=False, backbone=tiny_backbone())
    with pytest.raises(TypeError, match="list of per-image"):
        train_rcnn(cfg, ds, torch.zeros(2, 4), progress=False, backbone=tiny_backbone())
    nothing = RenderedDataset([0, 1], empty=(0, 1))
    with pytest.raises(ValueError, match="no foreground window"):
        train_rcnn(cfg, nothing, toy_proposals(nothing), progress=False, backbone=tiny_backbone())


def test_run_detection_times_detect_image_alone(monkeypatch):
    """R-CNN's and SPPnet's test time per image is fastrcnn_lite.timing's: decoding an image
    (``load_image``) is outside the clock, the figure is the median over the images."""
    from fastrcnn_lite import timing
    from fastrcnn_lite.region_heads import run_detection

    clock = {"now": 0.0}
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock["now"])

    class Images:
        def __len__(self):
            return 3

        def load_image(self, i):
            clock["now"] += 100.0
            return torch.full((3, 8, 8), float(i))

    costs = iter([4.0, 1.0, 3.0])

    def detect_image(image, proposals):
        clock["now"] += next(costs)
        return {"boxes": proposals, "scores": image[0, 0, :1], "labels": torch.ones(1).long()}

    props = [torch.tensor([[0.0, 0.0, 4.0, 4.0]]) * (i + 1) for i in range(3)]
    detections, seconds = run_detection(detect_image, Images(), props, progress=False)
    assert seconds == 3.0  # median of 4, 1, 3; decoding's 100 s not counted
    assert [float(d["scores"]) for d in detections] == [0.0, 1.0, 2.0]
    assert all(torch.equal(d["boxes"], p) for d, p in zip(detections, props, strict=True))
