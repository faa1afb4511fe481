"""The stand-in supervised pre-training (fastrcnn_lite.pretrain)."""

import pytest
import torch

from fastrcnn_lite.boxes import box_iou
from fastrcnn_lite.config import Config
from fastrcnn_lite.pretrain import (
    RegionClassifier,
    jitter_boxes,
    pretrained_backbone,
    random_background_boxes,
    region_crops,
)
from fastrcnn_lite.warp import warp_regions
from tests.test_rcnn import RenderedDataset

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_background_boxes_avoid_every_object_and_stay_inside():
    gen = torch.Generator().manual_seed(0)
    gt = torch.tensor([[10.0, 10.0, 60.0, 50.0], [80.0, 30.0, 150.0, 120.0]])
    boxes = random_background_boxes(gt, (128, 160), 50, gen)
    assert len(boxes) == 50
    assert (box_iou(boxes, gt) < 0.3).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 160).all() and (boxes[:, 3] <= 128).all()
    assert ((boxes[:, 2:] - boxes[:, :2]) > 0).all()
    # An image with no objects: any box is background.
    assert len(random_background_boxes(torch.zeros(0, 4), (64, 64), 10, gen)) == 10


def test_jittered_boxes_stay_close():
    gen = torch.Generator().manual_seed(1)
    gt = torch.tensor([[20.0, 20.0, 80.0, 60.0]]).repeat(200, 1)
    iou = box_iou(jitter_boxes(gt, gen, std=0.08), gt[:1])[:, 0]
    assert iou.median() > 0.7 and (iou < 1).all()


def test_region_crops_are_warped_gt_and_background():
    ds = RenderedDataset([0, 1])
    crops, labels = region_crops(
        ds, 40, 4, jitters_per_box=2, background_per_box=1.0, progress=False
    )
    num_gt = sum(len(t["boxes"]) for _, t in ds.items)
    assert crops.dtype == torch.uint8 and crops.shape[1:] == (3, 40, 40)
    assert (labels > 0).sum() == 2 * num_gt and (labels == 0).sum() == 2 * num_gt
    # The first crop is the exact first gt box of image 0, warped with context.
    image, target = ds[0]
    want = (
        (warp_regions(image, target["boxes"][:1], 40, 4).clamp(0, 1) * 255).round().to(torch.uint8)
    )
    assert torch.equal(crops[:1], want)
    assert labels[0] == target["labels"][0]


@pytest.mark.slow
def test_pretrained_backbone_trains_once_then_loads(tmp_path):
    ds = RenderedDataset([0, 1])
    cfg = Config.embedded(cache_dir=str(tmp_path))
    first = pretrained_backbone(cfg, ds, progress=False, iters=3)
    assert len(list(tmp_path.glob("pretrained-*.pt"))) == 1
    # The detectors' own settings do not change the shared starting network: no retraining.
    second = pretrained_backbone(
        cfg.replace(max_iters=7, lr=0.5, trainable_from="conv3"), ds, progress=False, iters=3
    )
    assert len(list(tmp_path.glob("pretrained-*.pt"))) == 1
    # What it depends on does: another warp context is another network.
    pretrained_backbone(cfg.replace(warp_context=2), ds, progress=False, iters=3)
    assert len(list(tmp_path.glob("pretrained-*.pt"))) == 2
    torch.testing.assert_close(first.body.state_dict(), second.body.state_dict())
    torch.testing.assert_close(first.fc.state_dict(), second.fc.state_dict())
    assert not first.body.training
    # It is a region classifier's body + fc: 40x40 crops -> 5x5 pool5 -> fc7.
    logits = RegionClassifier(second, len(ds.classes))(torch.rand(2, 3, 40, 40))
    assert logits.shape == (2, len(ds.classes) + 1)


def test_pretrain_errors(tmp_path):
    with pytest.raises(ValueError, match="needs train_ds"):
        pretrained_backbone(Config.embedded(cache_dir=str(tmp_path)), None)
    with pytest.raises(ValueError, match="cfg.backbone must be"):
        pretrained_backbone(Config.embedded(backbone="resnet"), None)
    with pytest.raises(FileNotFoundError, match="Weights file not found"):
        pretrained_backbone(Config(backbone="alexnet"), None, weights=str(tmp_path / "missing.pth"))


def test_pretrained_cache_key_follows_the_training_data(tmp_path):
    """A dataset regenerated at the same root (another seed) trains a new network; the same
    bytes again load the cached one (issue 9: the key used only the number of images)."""
    from fastrcnn_lite import embedded_files
    from fastrcnn_lite.voc import VOCDataset

    root = tmp_path / "emb"
    cfg = Config.embedded(cache_dir=str(tmp_path / "cache"), data_root=str(root))

    def train_on(seed):
        embedded_files.generate(root, seed=seed, num_trainval=2, num_test=2)
        pretrained_backbone(cfg, VOCDataset(root, "2007", "trainval"), progress=False, iters=1)
        return sorted(p.name for p in (tmp_path / "cache").glob("pretrained-*.pt"))

    first = train_on(0)
    assert len(first) == 1
    second = train_on(1)  # same root, same number of images, other images and boxes
    assert len(second) == 2
    assert train_on(0) == second  # byte-identical data: the first network is reused


def test_new_backbone_is_the_one_factory():
    from fastrcnn_lite.backbones import (
        backbone_size,
        count_parameters,
        freeze_below,
        new_backbone,
        small_backbone,
    )

    torch.manual_seed(3)
    ours = new_backbone("small", (4, 4), width=8, fc_dim=16)
    torch.manual_seed(3)
    ref = small_backbone(width=8, fc_dim=16, pool_size=(4, 4))
    for a, b in ((ours.body, ref.body), (ours.fc, ref.fc)):
        assert all(
            torch.equal(x, y)
            for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
        )
    assert backbone_size(ours) == {"width": 8, "fc_dim": 16}
    rebuilt = new_backbone("small", (4, 4), **backbone_size(ours))
    assert rebuilt.body.state_dict().keys() == ours.body.state_dict().keys()
    with pytest.raises(ValueError, match="must be one of .*'resnet'"):
        new_backbone("resnet")
    with pytest.raises(ValueError, match="no published weights"):
        new_backbone("small", weights="IMAGENET1K_V1")
    frozen = freeze_below(ours, "conv3")
    total = sum(p.numel() for m in (ours.body, ours.fc) for p in m.parameters())
    assert count_parameters(ours.body) + count_parameters(ours.fc) == total
    trainable = count_parameters(ours.body, trainable_only=True) + count_parameters(
        ours.fc, trainable_only=True
    )
    assert trainable == total - frozen
