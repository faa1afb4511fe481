"""SPPnet: one conv pass per image, a spatial pyramid of each proposal's window, SVMs and ridge.

Data-flow stage: **backbone feature map** (once per image) -> **region features** (spatial
pyramid pooling, SPPnet's "spp5" layer) -> **heads** (fc6/fc7 -> SVMs + ridge regressors) ->
**detections**. He et al., ECCV 2014, sections 2.3 and 4; Fast R-CNN section 1.1 names its
drawbacks: a multi-stage pipeline like R-CNN's, features written to disk, and fine-tuning that
cannot update the conv layers below the pyramid.

* Conv features: the image is resized so its shorter side is ``cfg.scales[0]`` (capped at
  ``cfg.max_size``) and the body runs **once**. Every proposal's window on that map is
  max-pooled into ``n x n`` bins for each level n of ``cfg.spp_levels`` ((6, 3, 2, 1) in the
  paper, (5, 3, 2, 1) for the small backbone) and the levels are concatenated: ``C * sum(n*n)``
  numbers per proposal whatever its size (:class:`fastrcnn_lite.roi_pool.SpatialPyramidPool`).
  At test time with several ``cfg.test_scales``, each proposal is pooled at the scale where its
  area is closest to ``cfg.pyramid_target_area`` (224 x 224 for the paper's networks).
* Fine-tuning touches **fc layers only** (``freeze_below(backbone, "fc6")``): training windows
  are sampled like R-CNN's (25% foreground), so a mini-batch's 128 windows come from ~128
  different images, and a backward pass through the pyramid into the conv layers would need the
  conv activations of all of them, over receptive fields that cover most of each image
  (:func:`backward_cost` measures it; Fast R-CNN section 2.3). Because the conv layers are
  frozen, the pyramid features of the training windows are fixed and are computed once.
* The new fc6: the pre-trained fc6 takes one ``pool_size`` grid (the classification network's
  last pooling), not a pyramid. SPPnet pre-trained *with* the pyramid on ImageNet; here fc6 is
  rebuilt for ``C * sum(n*n)`` inputs, its weights for the level equal to ``pool_size`` copied
  from the pre-trained fc6 and zero for the other levels, so the network starts as the
  pre-trained one and fine-tuning learns to use the other levels (Gaussian init when no level
  matches, e.g. VGG16's 7x7 against levels (6, 3, 2, 1)).
* Disk: the conv map of every training image is cached (float16, one file per image) and the
  pyramids are pooled from it. SPPnet's caches were ~10x smaller than R-CNN's for this reason.
* SVMs and box regressors exactly as R-CNN's, from the same stage modules
  (``fastrcnn_lite.regions`` for the windows and the cache, ``fastrcnn_lite.region_heads`` for
  the heads' training and the detector, ``fastrcnn_lite.svm`` for the algorithms): SVMs on fc7,
  ridge on the pyramid features.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import Backbone, backbone_size, build_sgd, freeze_below, new_backbone
from .boxes import box_area, check_boxes, clip_boxes_to_image
from .checkpoint import module_digest, proposals_digest
from .config import Config
from .pretrain import pretrained_backbone
from .progress import tqdm
from .region_heads import SVMDetector, load_or_train, train_heads
from .regions import (
    FeatureCache,
    check_proposals,
    dataset_key,
    draw_windows,
    feature_cache_folder,
    load_image,
    load_target,
    resolve_max_proposals,
    training_boxes,
    training_windows,
)
from .roi_pool import SpatialPyramidPool
from .sampling import match_proposals
from .svm import BoxRegressors, LinearSVMs
from .transforms import pyramid_levels, resize, scale_factor
from .voc import gt_for_training

__all__ = [
    "SPPNet",
    "spp_fc",
    "extract_conv_features",
    "finetune_spp_fc",
    "train_sppnet",
    "load_or_train_sppnet",
    "receptive_field",
    "receptive_field_boxes",
    "backward_cost",
]


# ----------------------------------------------------------------------------------------------
# The new fc6 for the pyramid
# ----------------------------------------------------------------------------------------------
def spp_fc(backbone: Backbone, levels: Sequence[int], init_std: float = 0.01) -> nn.Sequential:
    """A copy of ``backbone.fc`` whose fc6 takes the pyramid: Linear(C * sum(n*n), fc_dim).

    The columns of the level ``n == pool_size`` get the pre-trained fc6 weights (the pyramid's
    levels are concatenated level by level, channel-major within a level, the same layout as the
    flattened ``C x n x n`` pool5 the pre-trained fc6 reads); the other levels start at zero. With
    no matching level, fc6 is initialised from N(0, init_std^2). fc7 keeps its pre-trained weights.
    """
    fc = copy.deepcopy(backbone.fc)
    index = next(i for i, m in enumerate(fc) if isinstance(m, nn.Linear))
    old = fc[index]
    channels = backbone.out_channels
    fc6 = nn.Linear(
        channels * sum(n * n for n in levels), old.out_features
    )  # (fc_dim, C * sum n*n)
    with torch.no_grad():
        h, w = backbone.pool_size
        if h == w and h in levels:
            offset = channels * sum(n * n for n in levels[: list(levels).index(h)])
            fc6.weight.zero_()
            fc6.weight[:, offset : offset + channels * h * w] = old.weight
            fc6.bias.copy_(old.bias)
        else:
            nn.init.normal_(fc6.weight, std=init_std)
            nn.init.zeros_(fc6.bias)
    fc[index] = fc6
    return fc


# ----------------------------------------------------------------------------------------------
# Conv features: once per image, cached to disk
# ----------------------------------------------------------------------------------------------
def _conv_map(backbone: Backbone, image: Tensor, scale: int, max_size: int) -> tuple[Tensor, float]:
    """Resize (shorter side ``scale``) and run the body once: (Tensor[C, h, w], resize factor)."""
    factor = scale_factor(tuple(image.shape[1:]), scale, max_size)
    resized, _ = resize(image, image.new_zeros(0, 4), factor)
    resized = resized[None].contiguous(memory_format=torch.channels_last)  # (1, 3, H', W')
    return backbone.body(resized)[0].contiguous(), factor  # (C, h, w)


def extract_conv_features(
    backbone: Backbone,
    dataset,
    proposals: Sequence[Tensor],
    cfg: Config,
    max_proposals_per_image: int | None = None,
    progress: bool = True,
) -> FeatureCache:
    """SPPnet's disk cache: the conv map of every training image (float16) with its boxes.

    Each ``<cache_dir>/sppnet_features/<key>/<i>.pt`` holds ``conv`` (Tensor[C, h, w] float16),
    ``factor`` (image resize factor), ``boxes`` (Tensor[G + P, 4], gt first, original image
    pixels) and ``num_gt``. Reused when the key (network, proposals, data, settings) matches.
    """
    check_proposals(dataset, proposals)
    scale = cfg.scales[0]
    folder = feature_cache_folder(cfg, "sppnet", [
        module_digest(backbone.body), proposals_digest(proposals), dataset_key(dataset),
        scale, cfg.max_size, cfg.use_difficult, max_proposals_per_image, cfg.seed,
    ])  # fmt: skip
    if FeatureCache.is_complete(folder):
        return FeatureCache(folder)
    gen = torch.Generator().manual_seed(cfg.seed)

    def record(i: int) -> dict:
        boxes, num_gt = training_boxes(
            dataset, proposals, i, cfg.use_difficult, max_proposals_per_image, gen
        )
        conv, factor = _conv_map(backbone, load_image(dataset, i), scale, cfg.max_size)
        return {"conv": conv.half(), "factor": factor, "boxes": boxes, "num_gt": num_gt}

    backbone.body.eval()
    with torch.inference_mode():
        return FeatureCache.write(
            folder, record, len(dataset), "SPPnet conv maps -> disk", progress
        )


def _pyramid(spp: SpatialPyramidPool, record: dict, rows: Tensor | None = None) -> Tensor:
    """Pyramid features of the cached boxes (all, or ``rows``) of one image: Tensor[R, C * sum n*n]."""
    boxes = record["boxes"] if rows is None else record["boxes"][rows]
    if len(boxes) == 0:
        return torch.zeros(0, record["conv"].shape[0] * spp.num_bins)
    return spp(record["conv"][None].float(), [boxes * record["factor"]])  # (R, C * sum n*n)


# ----------------------------------------------------------------------------------------------
# Fine-tuning the fc layers on fixed pyramid features
# ----------------------------------------------------------------------------------------------
class _SPPClassifier(nn.Module):
    def __init__(self, fc: nn.Module, fc_dim: int, num_classes: int, init_std: float):
        super().__init__()
        self.fc = fc
        self.cls_score = nn.Linear(fc_dim, num_classes + 1)
        nn.init.normal_(self.cls_score.weight, std=init_std)
        nn.init.zeros_(self.cls_score.bias)

    def forward(self, pyramids: Tensor) -> Tensor:  # (B, C * sum n*n) -> (B, K + 1)
        return self.cls_score(self.fc(pyramids))


def finetune_spp_fc(
    fc: nn.Module,
    backbone: Backbone,
    cache: FeatureCache,
    spp: SpatialPyramidPool,
    dataset,
    cfg: Config,
    iters: int | None = None,
    batch_size: int = 128,
    positive_fraction: float = 0.25,
    bg_per_image: int = 32,
    lr: float | None = None,
    progress: bool = True,
) -> dict:
    """Fine-tune fc6, fc7 (and a temporary cls_score) on pyramid features of training windows.

    Windows: gt boxes and proposals with IoU >= ``cfg.fg_iou_thresh`` are foreground (labelled
    with the gt class); background are proposals with IoU in [``cfg.bg_iou_thresh_lo``, 0.5)
    (SPPnet's [0.1, 0.5)), all of them if none fall there. The conv layers are frozen, so each
    window's pyramid is fixed: it is pooled once from the cached conv maps (all foreground
    windows, at most ``bg_per_image`` random background windows per image), then the fc layers
    train on mini-batches of ``batch_size`` with 25% foreground, SGD momentum 0.9, lr x0.1 for
    the last quarter.

    Returns:
        info with ``losses``, ``seconds``, ``num_fg_windows``, ``num_bg_windows``. ``fc`` is
        trained in place.
    """
    start = time.perf_counter()
    iters = iters if iters is not None else (600 if backbone.name == "small" else cfg.max_iters)
    lr = lr if lr is not None else cfg.lr
    gen = torch.Generator().manual_seed(cfg.seed)
    feats, labels = [], []
    with torch.inference_mode():
        for i in tqdm(range(len(cache)), desc="SPPnet windows", disable=not progress):
            record = cache.load(i)
            gt, gt_labels = gt_for_training(load_target(dataset, i), cfg.use_difficult)
            max_iou, best = match_proposals(record["boxes"], gt)  # (G + P,), (G + P,)
            fg = torch.where(max_iou >= cfg.fg_iou_thresh)[0]
            bg = torch.where((max_iou < cfg.fg_iou_thresh) & (max_iou >= cfg.bg_iou_thresh_lo))[0]
            if len(bg) == 0:
                bg = torch.where(max_iou < cfg.fg_iou_thresh)[0]
            bg = bg[torch.randperm(len(bg), generator=gen)[:bg_per_image]]
            rows = torch.cat([fg, bg])
            feats.append(_pyramid(spp, record, rows).half())
            labels.append(torch.cat([gt_labels[best[fg]], torch.zeros(len(bg), dtype=torch.long)]))
    feats, labels = torch.cat(feats), torch.cat(labels)  # (M, D), (M,)
    fg, bg = torch.where(labels > 0)[0], torch.where(labels == 0)[0]
    if len(fg) == 0:
        raise ValueError(
            f"SPPnet fine-tuning found no foreground window (IoU >= {cfg.fg_iou_thresh} with a gt box) in "
            f"{len(cache)} training images; does the training split have any (non-difficult) objects?"
        )
    torch.manual_seed(cfg.seed)
    model = _SPPClassifier(fc, backbone.fc_dim, len(dataset.classes), cfg.cls_init_std)
    # As R-CNN's fine-tuning (rcnn.finetune_rcnn): the paper's decay groups, every group at the
    # base lr (bias_lr_factor=1): the cached SPPnet models come from it, and the cache key (the
    # config) would not notice a change to 2x.
    opt = build_sgd(model, lr, cfg.momentum, cfg.weight_decay, bias_lr_factor=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.75 * iters)], 0.1)
    losses = []
    model.train()
    for _ in tqdm(range(iters), desc="SPPnet fine-tuning (fc only)", disable=not progress):
        pick = draw_windows(fg, bg, batch_size, positive_fraction, gen)  # (B,)
        loss = F.cross_entropy(model(feats[pick].float()), labels[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return {
        "losses": losses,
        "seconds": time.perf_counter() - start,
        "num_fg_windows": len(fg),
        "num_bg_windows": len(bg),
    }


# ----------------------------------------------------------------------------------------------
# The detector
# ----------------------------------------------------------------------------------------------
class SPPNet(SVMDetector):
    """The SPPnet detector: conv once per image -> spatial pyramid per proposal -> fc6, fc7 -> SVMs + ridge.

    Args:
        backbone: the pre-trained network (only ``body`` is used: conv layers, frozen).
        fc (nn.Module): the fine-tuned fc6 (for the pyramid) and fc7: Tensor[P, C * sum n*n] -> Tensor[P, fc_dim].
        svms, box_regressors, classes, score_thresh, nms_thresh, detections_per_img, info: see
            :class:`~fastrcnn_lite.region_heads.SVMDetector` (the regressors read the pyramid features).
        levels: pyramid levels (``cfg.spp_levels``).
        scales, max_size: test scales (shorter side) and the longer-side cap; several scales =
            an image pyramid, each proposal pooled at the scale closest to ``target_area``.
    """

    name = "SPPnet"

    def __init__(self, backbone: Backbone, fc: nn.Module, svms: LinearSVMs, box_regressors: BoxRegressors,
                 classes: Sequence[str], levels: Sequence[int] = (6, 3, 2, 1), scales: Sequence[int] = (600,),
                 max_size: int = 1000, target_area: int = 224 * 224, **kwargs):  # fmt: skip
        super().__init__(svms, box_regressors, classes, **kwargs)
        self.backbone, self.fc = backbone, fc
        self.levels, self.scales = tuple(levels), tuple(scales)
        self.max_size, self.target_area = max_size, target_area
        self.spp = SpatialPyramidPool(self.levels, 1.0 / backbone.stride)

    def modules(self) -> tuple[nn.Module, ...]:
        return self.backbone.body, self.fc

    def region_features(self, image: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """One conv pass per scale, then the pyramid of every box: (pyramids Tensor[P, C * sum n*n], fc7 Tensor[P, fc_dim])."""
        with torch.inference_mode():
            factors = torch.tensor(
                [scale_factor(tuple(image.shape[1:]), s, self.max_size) for s in self.scales],
                dtype=torch.float64,
            )  # (S,)
            which = pyramid_levels(boxes, factors, self.target_area)  # (P,) the scale of each box
            parts = []  # (rows of the boxes pooled at a scale, their pyramids)
            for s, scale in enumerate(self.scales):
                rows = torch.where(which == s)[0].to(boxes.device)
                if len(rows) == 0:
                    continue
                conv, factor = _conv_map(self.backbone, image, scale, self.max_size)  # (C, h, w)
                pyramids = self.spp(conv[None], [boxes[rows] * factor])  # (R, C * sum n*n)
                parts.append((rows, pyramids))
            if len(parts) == 1:  # one scale pools every box: already in box order
                pyramids = parts[0][1]  # (P, C * sum n*n)
            else:
                width = self.backbone.out_channels * self.spp.num_bins
                pyramids = image.new_zeros(len(boxes), width)  # (P, C * sum n*n)
                for rows, part in parts:
                    pyramids[rows] = part
            return pyramids, self.fc(pyramids)  # (P, fc_dim)

    def state_dict(self) -> dict:
        return self._state(body=self.backbone.body.state_dict(), fc=self.fc.state_dict(),
                           backbone_size=backbone_size(self.backbone), levels=list(self.levels))  # fmt: skip

    @classmethod
    def from_state_dict(cls, cfg: Config, state: dict) -> SPPNet:
        backbone = new_backbone(cfg.backbone, cfg.pool_size, **state.get("backbone_size", {}))
        backbone.body.load_state_dict(state["body"])
        backbone.body.eval()
        freeze_below(backbone, "fc6")  # SPPnet's conv layers are never trained
        fc = spp_fc(backbone, state["levels"])
        fc.load_state_dict(state["fc"])
        fc.eval()
        return cls(backbone, fc, levels=state["levels"], scales=cfg.test_scales, max_size=cfg.max_size,
                   target_area=cfg.pyramid_target_area, **cls._heads_from_state(cfg, state))  # fmt: skip


def train_sppnet(
    cfg: Config,
    train_ds,
    proposals: Sequence[Tensor],
    progress: bool = True,
    backbone: Backbone | None = None,
    finetune_iters: int | None = None,
    max_proposals_per_image: int | None | str = "auto",
) -> SPPNet:
    """Train SPPnet: conv maps to disk, fine-tune fc6/fc7 on pyramids, SVMs with hard negatives, ridge.

    Args:
        backbone: the pre-trained network (default :func:`~fastrcnn_lite.pretrain.pretrained_backbone`,
            not counted in the train time); it is copied and its conv layers frozen.
        finetune_iters: SGD iterations of the fc fine-tuning (default 600 for the small backbone).
        max_proposals_per_image: a random subset of this many proposals per training image for
            the SVMs / regressors (None: all; "auto": as R-CNN, see
            :func:`~fastrcnn_lite.regions.resolve_max_proposals`, so both train on the same regions).

    Returns:
        SPPNet with ``info``: ``features_seconds``, ``finetune_seconds``, ``svm_seconds``,
        ``ridge_seconds``, ``train_seconds`` (their sum), ``cache_bytes``, ``cache_dir``,
        ``cache_reused`` (1: an existing conv-map cache was found), ``finetune_losses``.
    """
    check_proposals(train_ds, proposals)
    if backbone is None:
        backbone = pretrained_backbone(cfg, train_ds, progress=progress)
    backbone = copy.deepcopy(backbone)
    freeze_below(backbone, "fc6")  # conv layers frozen: no backward through the pyramid
    backbone.body.eval()
    start = time.perf_counter()
    max_proposals = resolve_max_proposals(max_proposals_per_image, backbone.name)
    cache = extract_conv_features(backbone, train_ds, proposals, cfg, max_proposals, progress)
    features_seconds = time.perf_counter() - start
    spp = SpatialPyramidPool(cfg.spp_levels, 1.0 / backbone.stride)
    fc = spp_fc(backbone, cfg.spp_levels, cfg.cls_init_std)
    ft = finetune_spp_fc(
        fc, backbone, cache, spp, train_ds, cfg, iters=finetune_iters, progress=progress
    )
    fc.eval()

    def load(i: int):  # SPPnet's pool features: the pyramid of every cached box of image i
        record = cache.load(i)
        with torch.inference_mode():
            pyramids = _pyramid(spp, record)  # (G + P, C * sum n*n)
        return record["boxes"], record["num_gt"], pyramids

    svms, regressors, heads = train_heads(load, fc, train_ds, cfg, progress)
    info = {
        "features_seconds": features_seconds, "finetune_seconds": ft["seconds"], **heads,
        "cache_bytes": cache.bytes, "cache_dir": str(cache.folder), "cache_reused": int(cache.reused),
        "cache_regions": cache.num_regions, "finetune_losses": ft["losses"],
        "num_fg_windows": ft["num_fg_windows"], "num_bg_windows": ft["num_bg_windows"],
    }  # fmt: skip
    info["train_seconds"] = (
        features_seconds + ft["seconds"] + heads["svm_seconds"] + heads["ridge_seconds"]
    )
    return SPPNet(backbone, fc, svms, regressors, train_ds.classes, cfg.spp_levels, cfg.test_scales, cfg.max_size,
                  cfg.pyramid_target_area, nms_thresh=cfg.nms_thresh, detections_per_img=cfg.detections_per_img,
                  info=info)  # fmt: skip


def load_or_train_sppnet(
    cfg: Config,
    train_ds,
    proposals: Sequence[Tensor],
    progress: bool = True,
    backbone: Backbone | None = None,
    finetune_iters: int | None = None,
    max_proposals_per_image: int | None | str = "auto",
) -> SPPNet:
    """The SPPnet for ``cfg`` from the model cache, or :func:`train_sppnet` then cache it (atomic save).

    ``info`` as :func:`~fastrcnn_lite.rcnn.load_or_train_rcnn`'s: the detector contract's keys
    (``fastrcnn_lite.detector``) and ``loaded``. On the CPU, in eval mode.
    """
    return load_or_train(SPPNet, train_sppnet, cfg, train_ds, proposals, progress, backbone,
                         finetune_iters=finetune_iters, max_proposals_per_image=max_proposals_per_image)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Why SPPnet cannot fine-tune the conv layers: the cost of a backward pass through the pyramid
# ----------------------------------------------------------------------------------------------
def receptive_field(backbone: Backbone) -> dict:
    """Receptive field of one cell of ``backbone.body``'s output.

    Returns:
        dict with ``size`` (pixels on a side), ``stride`` (pixels between neighbouring cells) and
        ``centre`` (continuous x of the centre of cell 0's field; cell j is at centre + j * stride).
    """
    size, jump, centre = 1, 1, 0.5
    for layer in backbone.body.modules():
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            pair = lambda v: v if isinstance(v, int) else v[0]  # noqa: E731
            k, s, p = pair(layer.kernel_size), pair(layer.stride), pair(layer.padding)
            d = pair(layer.dilation)
            size += (k - 1) * d * jump
            centre += ((k - 1) * d / 2 - p) * jump
            jump *= s
        elif isinstance(layer, (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            raise ValueError(f"receptive_field does not handle {type(layer).__name__} layers.")
    return {"size": size, "stride": jump, "centre": centre}


def receptive_field_boxes(boxes: Tensor, backbone: Backbone, image_size: tuple[int, int]) -> Tensor:
    """The image pixels whose values reach a box's pooled features: the union of the receptive
    fields of the feature cells under the box, clipped to the image.

    Args:
        boxes (Tensor[P, 4]): boxes in the pixels of the image the body runs on.

    Returns:
        Tensor[P, 4]: for each box, the image region a backward pass must reach.
    """
    check_boxes(boxes)
    rf = receptive_field(backbone)
    first = torch.floor(boxes[:, :2] / rf["stride"])  # (P, 2) first cell under the box
    last = torch.ceil(boxes[:, 2:] / rf["stride"]) - 1  # (P, 2) last cell
    half = rf["size"] / 2
    lo = rf["centre"] + first * rf["stride"] - half
    hi = rf["centre"] + last * rf["stride"] + half
    return clip_boxes_to_image(torch.cat([lo, hi], dim=1), image_size)  # (P, 4)


def backward_cost(
    backbone: Backbone,
    dataset,
    proposals: Sequence[Tensor],
    cfg: Config,
    images_per_batch: int | None = None,
    rois_per_batch: int = 128,
    positive_fraction: float = 0.25,
    seed: int = 0,
) -> dict:
    """What a backward pass into the conv layers would touch for one mini-batch of RoIs.

    ``images_per_batch=None`` samples the batch like R-CNN and SPPnet: ``rois_per_batch`` windows
    (25% foreground) uniformly from all windows of all images, so they come from ~that many
    different images. ``images_per_batch=N`` samples like Fast R-CNN: N images, R / N windows each.
    Images are at the training scale (``cfg.scales[0]``).

    Returns:
        dict with ``num_images`` (distinct images in the batch), ``rf_pixels`` (pixels inside the
        union of the RoIs' receptive fields, summed over those images), ``image_pixels`` (their
        total area: the conv activations a backward pass needs at least the forward of),
        ``rf_fraction`` = mean over RoIs of (receptive-field area / image area).
    """
    gen = torch.Generator().manual_seed(seed)
    image_index, boxes, labels = training_windows(
        dataset, proposals, cfg.fg_iou_thresh, cfg.use_difficult
    )
    if images_per_batch is None:
        fg, bg = torch.where(labels > 0)[0], torch.where(labels == 0)[0]
        pick = draw_windows(fg, bg, rois_per_batch, positive_fraction, gen)  # (R,)
    else:
        images = torch.randperm(len(dataset), generator=gen)[:images_per_batch]
        per = rois_per_batch // images_per_batch
        pick = torch.cat([torch.where(image_index == i)[0][torch.randperm(int((image_index == i).sum()), generator=gen)[:per]]
                          for i in images.tolist()])  # fmt: skip
    rf_pixels, image_pixels, fractions = 0, 0, []
    used = image_index[pick].unique().tolist()
    for i in used:
        height, width = load_target(dataset, i)["size"]
        factor = scale_factor((height, width), cfg.scales[0], cfg.max_size)
        size = (round(height * factor), round(width * factor))
        rows = pick[image_index[pick] == i]
        fields = receptive_field_boxes(boxes[rows] * factor, backbone, size)  # (R, 4)
        mask = torch.zeros(size, dtype=torch.bool)
        for x1, y1, x2, y2 in fields.round().long().tolist():
            mask[y1:y2, x1:x2] = True
        rf_pixels += int(mask.sum())
        image_pixels += size[0] * size[1]
        fractions += (box_area(fields) / (size[0] * size[1])).tolist()
    return {"num_images": len(used), "rf_pixels": rf_pixels, "image_pixels": image_pixels,
            "rf_fraction": sum(fractions) / max(len(fractions), 1)}  # fmt: skip
