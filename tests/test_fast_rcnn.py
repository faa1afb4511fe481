"""The Fast R-CNN network: shapes, training and detection outputs, bad inputs, a memorised image."""

from __future__ import annotations

import pytest
import torch

from fastrcnn_lite.backbones import small_backbone
from fastrcnn_lite.boxes import box_iou, decode_boxes
from fastrcnn_lite.config import Config
from fastrcnn_lite.detect import postprocess_detections
from fastrcnn_lite.fast_rcnn import FastRCNN, FastRCNNHead, build_fast_rcnn, detect, pyramid_levels
from fastrcnn_lite.roi_pool import RoIPool
from fastrcnn_lite.transforms import resize, scale_factor

COLORS = {1: (0.9, 0.1, 0.1), 2: (0.1, 0.2, 0.9)}


class ShapesDataset:
    """A tiny in-memory dataset with the VOCDataset interface: coloured boxes on a noisy grey image."""

    classes = ("red", "blue")

    def __init__(
        self,
        num_images: int = 4,
        size: tuple[int, int] = (48, 64),
        seed: int = 0,
        empty: tuple[int, ...] = (),
    ):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        h, w = size
        for i in range(num_images):
            image = 0.5 + 0.05 * torch.randn(3, h, w, generator=g)
            boxes, labels = [], []
            for label in (1, 2) if i not in empty else ():
                bw, bh = (18, 18) if label == 1 else (26, 12)
                x1 = int(torch.randint(0, w - bw, (1,), generator=g)) if label == 1 else w - bw - 2
                y1 = 3 if label == 1 else h - bh - 3
                image[:, y1 : y1 + bh, x1 : x1 + bw] = torch.tensor(COLORS[label])[:, None, None]
                boxes.append([x1, y1, x1 + bw, y1 + bh])
                labels.append(label)
            target = {
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor(labels, dtype=torch.int64),
                "difficult": torch.zeros(len(labels), dtype=torch.bool),
                "image_id": f"img{i}",
                "size": (h, w),
            }
            self.items.append((image.clamp(0, 1), target))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        image, target = self.items[i]
        return image.clone(), {
            k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in target.items()
        }

    def load_target(self, i):
        return self[i][1]


def jittered_proposals(
    dataset, per_box: int = 12, background: int = 20, seed: int = 0
) -> list[torch.Tensor]:
    """Stand-in proposals: jittered copies of the gt boxes plus random boxes."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(len(dataset)):
        image, target = dataset[i]
        h, w = image.shape[-2:]
        gt = target["boxes"]
        wh = (gt[:, 2:] - gt[:, :2]).repeat(per_box, 1)
        jitter = gt.repeat(per_box, 1) + 0.25 * wh.repeat(1, 2) * torch.randn(
            len(wh), 4, generator=g
        )
        xy = torch.rand(background, 2, generator=g) * torch.tensor([w - 8.0, h - 8.0])
        size = 6 + torch.rand(background, 2, generator=g) * 20
        rand = torch.cat([xy, xy + size], dim=1)
        props = torch.cat([jitter, rand])
        props[:, 0::2] = props[:, 0::2].clamp(0, w)
        props[:, 1::2] = props[:, 1::2].clamp(0, h)
        keep = ((props[:, 2:] - props[:, :2]) > 2).all(dim=1)
        out.append(props[keep])
    return out


def tiny_cfg(**changes) -> Config:
    base = dict(scales=(48,), test_scales=(48,), max_size=64, multiscale_scales=(40, 48, 64),
                multiscale_max_size=96, pyramid_target_area=16 * 16, batch_size_per_image=32, cache_dir="unused")  # fmt: skip
    base.update(changes)
    return Config.embedded(**base)


def tiny_model(cfg: Config | None = None, num_classes: int = 2, seed: int = 0) -> FastRCNN:
    cfg = cfg or tiny_cfg()
    torch.manual_seed(seed)
    return build_fast_rcnn(cfg, num_classes, small_backbone(width=8, fc_dim=32, pool_size=(3, 3)))


# --- the parts --------------------------------------------------------------------------------
def test_head_shapes_and_initialisation():
    torch.manual_seed(0)
    fc = torch.nn.Sequential(torch.nn.Linear(64 * 7 * 7, 512), torch.nn.ReLU())
    head = FastRCNNHead(fc, 512, num_classes=20)
    logits, deltas = head(torch.randn(300, 64, 7, 7))
    assert logits.shape == (300, 21) and deltas.shape == (300, 80)  # K + 1 classes, 4K deltas
    assert abs(head.cls_score.weight.std().item() - 0.01) < 0.001
    assert abs(head.bbox_pred.weight.std().item() - 0.001) < 0.0001
    assert head.cls_score.bias.abs().sum() == 0 and head.bbox_pred.bias.abs().sum() == 0
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        FastRCNNHead(fc, 512, num_classes=0)


def test_build_wires_backbone_pool_and_freezing():
    cfg = tiny_cfg()
    model = tiny_model(cfg)
    assert isinstance(model.roi_pool, RoIPool)
    assert model.roi_pool.output_size == (3, 3) and model.roi_pool.spatial_scale == 1 / 8
    assert model.num_classes == 2 and model.box_means.shape == (2, 4)
    frozen = build_fast_rcnn(
        cfg.replace(trainable_from="conv3"), 2, small_backbone(width=8, fc_dim=32, pool_size=(3, 3))
    )
    trainable = {n for n, p in frozen.named_parameters() if p.requires_grad}
    conv1_conv2 = ("body.1.", "body.2.", "body.5.", "body.6.")
    assert not any(n.startswith(conv1_conv2) for n in trainable)
    assert "body.9.weight" in trainable and "head.cls_score.weight" in trainable
    with pytest.raises(ValueError, match="cfg.backbone is 'vgg16'"):
        build_fast_rcnn(cfg.replace(backbone="vgg16"), 2, small_backbone())


def test_training_forward_returns_finite_losses_with_gradients():
    ds = ShapesDataset(2)
    props = jittered_proposals(ds)
    model = tiny_model(tiny_cfg(trainable_from="conv1")).train()
    images = [ds[i][0] for i in range(2)]
    targets = [ds[i][1] for i in range(2)]
    losses = model(images, props, targets)
    assert set(losses) == {"loss_cls", "loss_box", "loss"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    # Fresh cls_score (std 0.01): the log loss starts near log(K + 1) = log 3.
    assert abs(losses["loss_cls"].item() - torch.log(torch.tensor(3.0)).item()) < 0.1
    losses["loss"].backward()
    assert model.head.bbox_pred.weight.grad.abs().sum() > 0
    assert model.body[1].weight.grad.abs().sum() > 0  # gradients reach conv1 through RoI pooling


def test_eval_forward_output_format_and_coordinates():
    ds = ShapesDataset(2)
    props = jittered_proposals(ds)
    model = tiny_model().eval()
    model.score_thresh = 0.0  # keep everything so the format is exercised
    with torch.no_grad():
        out = model([ds[0][0], ds[1][0][:, :40, :50]], props[:1] + [props[1].clamp(max=40)])
    assert len(out) == 2
    for det, (h, w) in zip(out, [(48, 64), (40, 50)], strict=True):
        assert set(det) == {"boxes", "labels", "scores"}
        assert det["boxes"].shape[1] == 4 and det["boxes"].dtype == torch.float32
        assert det["labels"].dtype == torch.int64 and set(det["labels"].tolist()) <= {1, 2}
        assert len(det["boxes"]) == len(det["labels"]) == len(det["scores"]) <= 100
        assert (det["boxes"][:, 2] <= w).all() and (
            det["boxes"][:, 3] <= h
        ).all()  # clipped to its own image
        assert (det["scores"][:-1] >= det["scores"][1:]).all()


def test_postprocess_unnormalises_decodes_and_matches_reference():
    torch.manual_seed(0)
    model = tiny_model().eval()
    model.box_means.copy_(torch.tensor([[0.1, -0.1, 0.2, 0.0], [0.0, 0.05, -0.1, 0.3]]))
    model.box_stds.copy_(torch.tensor([[0.1, 0.1, 0.2, 0.2], [0.2, 0.1, 0.1, 0.3]]))
    model.score_thresh = 0.0
    proposals = torch.tensor(
        [[4.0, 4.0, 20.0, 24.0], [30.0, 10.0, 50.0, 30.0], [5.0, 5.0, 40.0, 40.0]]
    )
    logits = torch.randn(3, 3)
    deltas = torch.randn(3, 8)
    det = model.postprocess(logits, deltas, proposals, (48, 64))
    # Reference: un-normalise per class by hand, decode one class at a time.
    scores = torch.softmax(logits, dim=1)[:, 1:]
    per_class = []
    for k in range(2):
        unnormalised = deltas[:, 4 * k : 4 * k + 4] * model.box_stds[k] + model.box_means[k]
        per_class.append(decode_boxes(proposals, unnormalised))
    boxes = torch.stack(per_class, dim=1)  # (P, K, 4)
    ref = postprocess_detections(boxes, scores, (48, 64), 0.0, 0.3, 100)
    for key in ("boxes", "scores", "labels"):
        torch.testing.assert_close(det[key], ref[key])


def test_detect_image_single_scale_equals_forward_on_the_resized_image():
    ds = ShapesDataset(1, size=(40, 56))
    props = jittered_proposals(ds)[0]
    model = tiny_model().eval()
    model.score_thresh = 0.0
    image = ds[0][0]
    det = model.detect_image(image, props, scales=(48,), max_size=80)
    factor = scale_factor((40, 56), 48, 80)
    resized, scaled_props = resize(image, props, factor)
    with torch.no_grad():
        ref = model([resized], [scaled_props])[0]
    ratio = torch.tensor([resized.shape[2] / 56, resized.shape[1] / 40] * 2)
    torch.testing.assert_close(det["scores"], ref["scores"])
    torch.testing.assert_close(det["boxes"] * ratio, ref["boxes"], atol=1e-4, rtol=1e-5)


def test_pyramid_levels_pick_the_scale_closest_to_the_target_area():
    # Boxes of area 10x10, 40x40, 100x100 at scale factors 0.5, 1, 2 (areas x 0.25, 1, 4).
    proposals = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 40.0, 40.0], [0.0, 0.0, 100.0, 100.0]]
    )
    factors = torch.tensor([0.5, 1.0, 2.0])
    levels = pyramid_levels(proposals, factors, target_area=48 * 48)
    # 10x10 -> areas 25, 100, 400: closest to 2304 is 400 (factor 2). 40x40 -> 400, 1600, 6400:
    # |1600 - 2304| = 704 < |6400 - 2304|: factor 1. 100x100 -> 2500 at 0.5: factor 0.5.
    assert levels.tolist() == [2, 1, 0]
    # Reference loop: argmin over scales of |area * f^2 - target|.
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + 1 + torch.rand(50, 2, generator=g) * 150], dim=1)
    levels = pyramid_levels(boxes, factors, 48 * 48)
    for box, level in zip(boxes, levels, strict=True):
        area = float((box[2] - box[0]) * (box[3] - box[1]))
        assert level == min(range(3), key=lambda j: abs(area * float(factors[j]) ** 2 - 48 * 48))


def test_detect_image_pyramid_pools_each_roi_at_its_level():
    ds = ShapesDataset(1)
    props = jittered_proposals(ds)[0]
    model = tiny_model().eval()
    model.score_thresh = 0.0
    image = ds[0][0]
    scales, target = (40, 48, 64), 16 * 16
    det = model.detect_image(image, props, scales=scales, max_size=96, target_area=target)
    # Reference: head outputs computed one RoI at a time at its level.
    factors = torch.tensor([scale_factor((48, 64), s, 96) for s in scales])
    levels = pyramid_levels(props, factors, target)
    logits, deltas = [], []
    with torch.no_grad():
        for box, level in zip(props, levels, strict=True):
            resized, scaled = resize(image, box[None], float(factors[level]))
            out = model.class_outputs(model.body(resized[None]), [scaled])
            logits.append(out[0])
            deltas.append(out[1])
    ref = model.postprocess(torch.cat(logits), torch.cat(deltas), props, (48, 64))
    torch.testing.assert_close(det["scores"], ref["scores"])
    torch.testing.assert_close(det["boxes"], ref["boxes"])
    assert len(set(levels.tolist())) > 1  # the case really mixes levels


# --- bad input ---------------------------------------------------------------------------------
def test_labels_outside_one_to_k_are_rejected():
    ds = ShapesDataset(1)
    model = tiny_model().train()
    image, target = ds[0]
    props = jittered_proposals(ds)
    for bad in (0, 3, -1):
        t = dict(target, labels=torch.tensor([1, bad]))
        with pytest.raises(ValueError, match=r"labels'\] must be in 1\.\.2"):
            model([image], props, [t])


def test_proposals_of_the_wrong_shape_or_type_are_rejected():
    ds = ShapesDataset(1)
    model = tiny_model().eval()
    image = ds[0][0]
    rois = torch.zeros(5, 5)
    with pytest.raises(ValueError, match=r"proposals\[0\] must be Tensor\[G, 4\].*RoI tensor"):
        model([image], [rois])
    with pytest.raises(TypeError, match="list of N = 1 per-image"):
        model([image], torch.zeros(5, 4))
    with pytest.raises(ValueError, match="1 images but 2 proposal"):
        model([image], [torch.zeros(5, 4), torch.zeros(5, 4)])
    with pytest.raises(ValueError, match=r"images must be Tensor\[N, 3, H, W\].*image\[None\]"):
        model(image, [torch.zeros(5, 4)])
    with pytest.raises(ValueError, match=r"proposals must be Tensor\[G, 4\]"):
        model.detect_image(image, torch.zeros(4))
    with pytest.raises(ValueError, match="needs targets"):
        model.train()([image], [torch.zeros(5, 4)])


def test_zero_proposals():
    ds = ShapesDataset(2, empty=(1,))
    model = tiny_model().eval()
    image = ds[0][0]
    empty = torch.zeros(0, 4)
    det = model.detect_image(image, empty, scales=(48,), max_size=64)
    assert (
        det["boxes"].shape == (0, 4) and det["labels"].shape == (0,) and det["scores"].shape == (0,)
    )
    with torch.no_grad():
        out = model([image, image], [empty, jittered_proposals(ds)[0]])
    assert out[0]["boxes"].shape == (0, 4) and len(out[1]["boxes"]) > 0
    # Training: the gt boxes are added, so an image with zero proposals still trains; an image
    # with neither objects nor proposals contributes nothing.
    model.train()
    losses = model([image, ds[1][0]], [empty, empty], [ds[0][1], ds[1][1]])
    assert torch.isfinite(losses["loss"]) and losses["loss"] > 0
    losses = model([ds[1][0]], [empty], [ds[1][1]])
    assert losses["loss"].item() == 0.0


def test_image_without_objects_trains_on_background_only():
    ds = ShapesDataset(1, empty=(0,))
    model = tiny_model().train()
    image, target = ds[0]
    props = jittered_proposals(ShapesDataset(1))  # boxes somewhere in the image
    losses = model([image], props, [target])
    assert losses["loss_box"].item() == 0.0 and losses["loss_cls"].item() > 0


def test_detect_over_a_dataset_and_oom_message(monkeypatch):
    ds = ShapesDataset(3)
    props = jittered_proposals(ds)
    cfg = tiny_cfg(score_thresh=0.0)
    model = tiny_model(cfg)
    detections, seconds = detect(model, ds, props, cfg, progress=False)
    assert len(detections) == 3 and seconds > 0
    assert all(set(d) == {"boxes", "labels", "scores"} for d in detections)
    ms, _ = detect(model, ds, props, cfg.replace(test_scales=cfg.multiscale_scales), progress=False)
    assert len(ms) == 3
    with pytest.raises(ValueError, match="3 images, 2 proposal"):
        detect(model, ds, props[:2], cfg, progress=False)

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model, "detect_image", out_of_memory)
    with pytest.raises(
        torch.cuda.OutOfMemoryError, match=r"cfg.test_scales.*cfg.proposals_per_image"
    ):
        detect(model, ds, props, cfg, progress=False)


def test_detect_times_detect_image_alone(monkeypatch):
    """Fast R-CNN's test time per image is fastrcnn_lite.timing's: decoding an image is outside
    the clock, the figure is the median over the images."""
    from fastrcnn_lite import timing

    clock = {"now": 0.0}
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock["now"])

    class SlowToDecode(ShapesDataset):
        def __getitem__(self, i):
            clock["now"] += 100.0
            return super().__getitem__(i)

    ds = SlowToDecode(3)
    cfg = tiny_cfg(score_thresh=0.0)
    model = tiny_model(cfg).eval()  # built with cfg's test scales, as detect uses them
    expected = [model.detect_image(ds.items[i][0], p) for i, p in enumerate(jittered_proposals(ds))]
    costs, real = iter([1.0, 7.0, 2.0]), model.detect_image

    def timed_detect_image(*args):
        clock["now"] += next(costs)
        return real(*args)

    monkeypatch.setattr(model, "detect_image", timed_detect_image)
    detections, seconds = detect(model, ds, jittered_proposals(ds), cfg, progress=False)
    assert seconds == 2.0  # median of 1, 7, 2; decoding's 100 s not counted
    for got, want in zip(detections, expected, strict=True):
        assert all(torch.equal(got[k], want[k]) for k in ("boxes", "labels", "scores"))


# --- learning ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_memorises_one_image():
    """Overfit one image: afterwards each object is found, with its class, at IoU >= 0.5."""
    from fastrcnn_lite.train import train_fast_rcnn

    ds = ShapesDataset(1, size=(48, 64), seed=1)
    props = jittered_proposals(ds, seed=1)
    cfg = tiny_cfg(max_iters=100, lr=0.02, lr_steps=(80,), seed=0)
    model = tiny_model(cfg)
    result = train_fast_rcnn(model, ds, props, cfg, progress=False)
    losses = [r["loss"] for r in result["history"]]
    assert sum(losses[-10:]) / 10 < 0.25 * sum(losses[:5]) / 5
    det = detect(model, ds, props, cfg, progress=False)[0][0]
    gt = ds[0][1]
    for box, label in zip(gt["boxes"], gt["labels"], strict=True):
        of_class = det["labels"] == label
        assert of_class.any(), f"no detection of class {int(label)}"
        best = det["scores"][of_class].argmax()
        assert det["scores"][of_class][best] > 0.9
        assert box_iou(det["boxes"][of_class][best][None], box[None]).item() >= 0.5


def test_frozen_batchnorm_keeps_its_statistics_in_training():
    cfg = tiny_cfg(trainable_from="conv3")
    model = build_fast_rcnn(cfg, 2, small_backbone(width=8, fc_dim=32, pool_size=(3, 3))).train()
    frozen_bn, trained_bn = model.body[2], model.body[10]  # conv1's and conv3's BatchNorm
    assert not frozen_bn.training and trained_bn.training
    before = frozen_bn.running_mean.clone()
    ds = ShapesDataset(1)
    model([ds[0][0]], jittered_proposals(ds), [ds[0][1]])
    assert torch.equal(frozen_bn.running_mean, before)
    assert not torch.equal(trained_bn.running_mean, torch.zeros_like(trained_bn.running_mean))
    assert not model.eval().body[10].training
