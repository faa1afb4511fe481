"""R-CNN: one CNN pass per warped proposal, SVMs per class, ridge box regressors.

Data-flow stage: **region features** (warp + whole CNN per proposal) -> **heads** (SVMs + ridge)
-> **detections** (per-class NMS). Girshick et al., CVPR 2014, sections 2-3 and appendices A-C;
the baseline Fast R-CNN is measured against (Fast R-CNN section 1.1, Tables 3-4).

Training is three separate stages (plus the shared pre-training, ``fastrcnn_lite.pretrain``):

1. **Fine-tuning** (R-CNN section 2.3): the pre-trained network gets a fresh (K + 1)-way
   classification layer and is trained with log loss on *warped proposals*: a proposal with
   IoU >= 0.5 with a gt box is labelled with that box's class, every other one is background.
   Each mini-batch draws 32 foreground and 96 background windows uniformly from all windows of
   all images (128 windows, 25% foreground), so the 128 windows come from up to 128 images.
2. **Feature extraction to disk**: pool5 of every gt box and proposal of every training image
   is written to ``<cache_dir>/rcnn_features/<key>/`` (float16, one file per image), as the
   original did (hundreds of GB for VOC07 with VGG16: 25088 x 2 bytes x ~2000 boxes x 5011
   images). fc6/fc7 are recomputed from pool5 when needed, as R-CNN's own code did.
3. **SVMs and box regressors** (``fastrcnn_lite.region_heads.train_heads``, the algorithms in
   ``fastrcnn_lite.svm`` and ``fastrcnn_lite.ridge``): linear SVMs on fc7 with hard-negative mining; class-specific ridge
   regression from pool5 to box deltas (proposals with IoU > 0.6).

Test: every proposal is warped and run through the network (the cost: P full forward passes
per image), scored by the SVMs, moved by the regressor of each class, then per-class NMS at 0.3.

What R-CNN shares with SPPnet lives in two stage modules that both use: ``fastrcnn_lite.regions``
(the fine-tuning windows, the cached regions, the feature cache) and
``fastrcnn_lite.region_heads`` (the training sets of the SVMs and regressors, ``SVMDetector``;
the model cache in ``region_heads_cache``). This module holds what is R-CNN's own: the warp, fine-tuning, pool5 to disk.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import Backbone, backbone_size, build_sgd, new_backbone
from .checkpoint import module_digest, proposals_digest
from .config import Config
from .pretrain import RegionClassifier, pretrained_backbone
from .progress import tqdm
from .region_heads import SVMDetector, regression_targets, train_heads
from .region_heads_cache import load_or_train
from .regions import (
    FeatureCache,
    Memo,
    check_proposals,
    dataset_key,
    draw_windows,
    feature_cache_folder,
    load_image,
    resolve_max_proposals,
    training_boxes,
    training_windows,
)
from .ridge import BoxRegressors
from .svm import LinearSVMs
from .warp import warp_regions

__all__ = [
    "RCNN",
    "finetune_iterations",
    "finetune_step",
    "finetune_rcnn",
    "pool5_features",
    "extract_rcnn_features",
    "train_rcnn",
    "load_or_train_rcnn",
    "regression_targets",  # re-exported from region_heads: notebook 03's grader output names it here
]


# ----------------------------------------------------------------------------------------------
# Stage 1: fine-tuning on warped proposals
# ----------------------------------------------------------------------------------------------
class _ImageStore:
    """Decoded training images kept in memory (up to ``max_bytes``; the rest are decoded per use)."""

    def __init__(self, dataset, max_bytes: int = 2 << 30):
        self.dataset, self.memo = dataset, Memo(max_bytes)

    def __call__(self, index: int) -> Tensor:
        (image,) = self.memo.get(index, lambda: (load_image(self.dataset, index),))
        return image  # (3, H, W)


def _warp_batch(
    store: Callable[[int], Tensor], image_index: Tensor, boxes: Tensor, size: int, context: int
) -> Tensor:
    """Warp windows that come from many images: one warp_regions call per distinct image."""
    crops = torch.empty(len(boxes), 3, size, size)
    for i in image_index.unique().tolist():
        rows = torch.where(image_index == i)[0]
        crops[rows] = warp_regions(store(i), boxes[rows], size, context)
    return crops  # (B, 3, s, s)


def finetune_iterations(cfg: Config, backbone_name: str) -> int:
    """SGD iterations of R-CNN's whole-network fine-tuning by default: 100 for the small backbone (the embedded
    profile's time budget), ``cfg.max_iters`` otherwise.

    No notebook: the fine-tuning uses it, and notebook 07's protocol table reports it.
    """
    return 100 if backbone_name == "small" else cfg.max_iters


def finetune_step(
    model: RegionClassifier,
    optimizer: torch.optim.Optimizer,
    images: Callable[[int], Tensor],
    image_index: Tensor,
    boxes: Tensor,
    labels: Tensor,
    context: int,
) -> Tensor:
    """One SGD iteration of R-CNN's fine-tuning: warp B windows, the whole network, log loss, update.

    No notebook: :func:`finetune_rcnn` runs it every iteration (its schedule steps after it);
    ``fastrcnn_lite.experiments.train_speed`` times it (notebook 07).

    Args:
        model: the :class:`~fastrcnn_lite.pretrain.RegionClassifier` being fine-tuned (train mode).
        images: ``images(i)`` -> decoded image i (Tensor[3, H, W]), e.g. kept in memory.
        image_index (Tensor[B] int64), boxes (Tensor[B, 4]), labels (Tensor[B] int64): the
            mini-batch's windows (:func:`~fastrcnn_lite.regions.draw_windows`), their images and
            classes (0 = background).
        context: warp context (``cfg.warp_context``).

    Returns:
        the loss (0-dim Tensor) of this mini-batch, before the update.
    """
    crops = _warp_batch(images, image_index, boxes, model.input_size, context)  # (B, 3, s, s)
    loss = F.cross_entropy(model(crops), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def finetune_rcnn(
    backbone: Backbone,
    train_ds,
    proposals: Sequence[Tensor],
    cfg: Config,
    iters: int | None = None,
    batch_size: int = 128,
    positive_fraction: float = 0.25,
    lr: float | None = None,
    progress: bool = True,
) -> tuple[RegionClassifier, dict]:
    """R-CNN stage 1: fine-tune the whole network on warped windows with log loss over K + 1 classes.

    No notebook: :func:`train_rcnn` runs it as R-CNN's first stage (notebook 03 explains the
    stage and shows its time).

    Windows are the gt boxes and the proposals; IoU >= ``cfg.finetune_fg_iou`` with a gt box ->
    that box's class, otherwise background. Each iteration samples ``positive_fraction`` x
    ``batch_size`` foreground windows (32 of 128) and the rest background, uniformly over all
    windows of all images. SGD, momentum 0.9, weight decay 5e-4, lr x0.1 for the last quarter.

    Args:
        backbone: the pre-trained network; it is copied, not modified.
        iters: SGD iterations (default 100 for the small backbone, ``cfg.max_iters`` otherwise).
        lr: base learning rate (default ``cfg.lr``).

    Returns:
        (model, info): the fine-tuned :class:`~fastrcnn_lite.pretrain.RegionClassifier` (eval mode;
        its ``body`` / ``fc`` are a fine-tuned copy of the backbone's) and info with ``losses``,
        ``seconds``, ``num_fg_windows``, ``num_bg_windows``.
    """
    check_proposals(train_ds, proposals)
    start = time.perf_counter()
    iters = iters if iters is not None else finetune_iterations(cfg, backbone.name)
    lr = lr if lr is not None else cfg.lr
    num_classes = len(train_ds.classes)
    image_index, boxes, labels = training_windows(
        train_ds, proposals, cfg.finetune_fg_iou, cfg.use_difficult
    )
    fg, bg = torch.where(labels > 0)[0], torch.where(labels == 0)[0]
    if len(fg) == 0:
        raise ValueError(
            f"R-CNN fine-tuning found no foreground window (IoU >= {cfg.finetune_fg_iou} with a gt box) in "
            f"{len(train_ds)} training images; does the training split have any (non-difficult) objects?"
        )
    backbone = copy.deepcopy(backbone)
    torch.manual_seed(cfg.seed)
    model = RegionClassifier(backbone, num_classes, cfg.cls_init_std)
    # The paper's groups (weights decayed; biases and BatchNorm scales not), but every group at
    # the base lr (bias_lr_factor=1, not cfg.bias_lr_factor's 2): R-CNN's fine-tuning has always
    # run so here, the cached models and notebooks 03 / 07 come from it, and its cache key (the
    # config) would not notice a change. Biases at 2x lr would need a cache version bump.
    opt = build_sgd(model, lr, cfg.momentum, cfg.weight_decay, bias_lr_factor=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.75 * iters)], 0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    store = _ImageStore(train_ds)
    losses = []
    model.train()
    for _ in tqdm(range(iters), desc="R-CNN fine-tuning", disable=not progress):
        pick = draw_windows(fg, bg, batch_size, positive_fraction, gen)  # (B,)
        loss = finetune_step(
            model, opt, store, image_index[pick], boxes[pick], labels[pick], cfg.warp_context
        )
        sched.step()
        losses.append(loss.item())
    model.eval()
    info = {
        "losses": losses,
        "seconds": time.perf_counter() - start,
        "num_fg_windows": len(fg),
        "num_bg_windows": len(bg),
    }
    return model, info


# ----------------------------------------------------------------------------------------------
# Stage 2: region features on disk
# ----------------------------------------------------------------------------------------------
def extract_rcnn_features(
    model: RegionClassifier,
    dataset,
    proposals: Sequence[Tensor],
    cfg: Config,
    max_proposals_per_image: int | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> FeatureCache:
    """R-CNN stage 2: pool5 of every gt box and proposal of every image, written to disk (float16).

    No notebook: :func:`train_rcnn` runs it as R-CNN's second stage (notebook 03 shows the
    cache's size).

    The folder is ``<cache_dir>/rcnn_features/<key>``, the key a hash of the network weights, the
    proposals, the dataset and the settings: an existing complete folder with the same key is
    reused, so a changed network never reads stale features.

    Args:
        model: the fine-tuned network (:func:`finetune_rcnn`).
        max_proposals_per_image: keep a random subset of this many proposals per image (None: all).
    """
    check_proposals(dataset, proposals)
    size = model.pool_size
    folder = feature_cache_folder(cfg, "rcnn", [
        module_digest(model.body, model.fc), proposals_digest(proposals), dataset_key(dataset),
        cfg.warp_context, cfg.use_difficult, max_proposals_per_image, cfg.seed, list(size),
    ])  # fmt: skip
    if FeatureCache.is_complete(folder):
        return FeatureCache(folder)
    gen = torch.Generator().manual_seed(cfg.seed)

    def record(i: int) -> dict:
        boxes, num_gt = training_boxes(
            dataset, proposals, i, cfg.use_difficult, max_proposals_per_image, gen
        )
        image = load_image(dataset, i)
        pool5 = pool5_features(model, image, boxes, cfg.warp_context, batch_size)  # (G + P, C*h*w)
        return {"boxes": boxes, "num_gt": num_gt, "pool5": pool5.half()}

    model.eval()
    with torch.inference_mode():
        return FeatureCache.write(folder, record, len(dataset), "R-CNN features -> disk", progress)


def pool5_features(
    model: RegionClassifier, image: Tensor, boxes: Tensor, context: int, batch_size: int
) -> Tensor:
    """pool5 features of the warped boxes (Tensor[P, 4]) of one image, in chunks: Tensor[P, C*h*w].

    No notebook: R-CNN's feature stage (:func:`extract_rcnn_features`) and its detector run it;
    ``fastrcnn_lite.experiments.train_speed`` times it (notebook 07).
    """
    size = model.input_size
    if len(boxes) == 0:
        return model.pool5(image.new_zeros(1, 3, size, size))[:0]  # (0, C*h*w)
    # channels-last crops, as the one-pass systems' images: oneDNN's fast layout for conv layers
    # (64 small-backbone crops of 40 x 40 on 2 cores: 30 ms in NCHW, 20 ms channels-last)
    layout = torch.channels_last
    return torch.cat(
        [
            model.pool5(warp_regions(image, chunk, size, context).contiguous(memory_format=layout))
            for chunk in boxes.split(batch_size)
        ]
    )


# ----------------------------------------------------------------------------------------------
# The detector
# ----------------------------------------------------------------------------------------------
class RCNN(SVMDetector):
    """The R-CNN detector: warp each proposal -> whole CNN -> SVM scores + class-specific box regression.

    Notebook 03 trains and tests it (through :func:`load_or_train_rcnn`); notebook 07 compares
    it.

    Args:
        backbone: the fine-tuned network (its ``body`` and ``fc``).
        svms, box_regressors, classes, score_thresh, nms_thresh, detections_per_img, info: see
            :class:`SVMDetector` (the regressors read pool5).
        context: warp context (``cfg.warp_context``).
        batch_size: warped regions per forward pass.
    """

    name = "R-CNN"

    def __init__(self, backbone: Backbone, svms: LinearSVMs, box_regressors: BoxRegressors, classes: Sequence[str],
                 context: int = 16, batch_size: int = 256, **kwargs):  # fmt: skip
        super().__init__(svms, box_regressors, classes, **kwargs)
        self.backbone, self.context, self.batch_size = backbone, context, batch_size
        self._net = RegionClassifier(backbone, len(self.classes)).eval()  # its cls_score is unused

    def modules(self) -> tuple[nn.Module, ...]:
        return self.backbone.body, self.backbone.fc

    def region_features(self, image: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """Warp and run every box through the network: (pool5 Tensor[P, C*h*w], fc7 Tensor[P, fc_dim])."""
        with torch.inference_mode():
            pool5 = pool5_features(
                self._net, image, boxes, self.context, self.batch_size
            )  # (P, C*h*w)
            return pool5, self.backbone.fc(pool5)  # (P, fc_dim)

    def state_dict(self) -> dict:
        return self._state(body=self.backbone.body.state_dict(), fc=self.backbone.fc.state_dict(),
                           backbone_size=backbone_size(self.backbone), context=self.context)  # fmt: skip

    @classmethod
    def from_state_dict(cls, cfg: Config, state: dict) -> RCNN:
        backbone = new_backbone(cfg.backbone, cfg.pool_size, **state.get("backbone_size", {}))
        backbone.body.load_state_dict(state["body"])
        backbone.fc.load_state_dict(state["fc"])
        backbone.body.eval(), backbone.fc.eval()
        return cls(backbone, context=state["context"], **cls._heads_from_state(cfg, state))


# ----------------------------------------------------------------------------------------------
# The whole training pipeline
# ----------------------------------------------------------------------------------------------
def train_rcnn(
    cfg: Config,
    train_ds,
    proposals: Sequence[Tensor],
    progress: bool = True,
    backbone: Backbone | None = None,
    finetune_iters: int | None = None,
    max_proposals_per_image: int | None | str = "auto",
) -> RCNN:
    """Train R-CNN: fine-tune, cache features to disk, SVMs with hard-negative mining, ridge regressors.

    No notebook: :func:`load_or_train_rcnn` calls it when the model cache has no R-CNN for the
    config (notebook 03 shows its stage times).

    Args:
        cfg: the configuration (warp context, IoU thresholds, SVM C, ridge lambda, NMS...).
        train_ds: the training split; proposals: its proposals (list of Tensor[P_i, 4]).
        backbone: the pre-trained network (default :func:`~fastrcnn_lite.pretrain.pretrained_backbone`;
            its time is not counted in R-CNN's train time: all three systems share it).
        finetune_iters: see :func:`finetune_rcnn`.
        max_proposals_per_image: "auto" (default) or None: every proposal of every training image
            is cached for the SVMs / regressors, as in the paper; an int: a random subset of that
            many per image (:func:`~fastrcnn_lite.regions.resolve_max_proposals`).

    Returns:
        RCNN with ``info``: ``finetune_seconds``, ``features_seconds``, ``svm_seconds``,
        ``ridge_seconds``, ``train_seconds`` (their sum), ``cache_bytes``, ``cache_dir``,
        ``cache_reused`` (1 when an existing feature cache was found: then ``features_seconds``
        did not compute anything), ``cache_regions`` (regions in the cache), ``finetune_losses``.
    """
    check_proposals(train_ds, proposals)
    if backbone is None:
        backbone = pretrained_backbone(cfg, train_ds, progress=progress)
    model, ft = finetune_rcnn(
        backbone, train_ds, proposals, cfg, iters=finetune_iters, progress=progress
    )
    start = time.perf_counter()
    max_proposals = resolve_max_proposals(max_proposals_per_image)
    cache = extract_rcnn_features(model, train_ds, proposals, cfg, max_proposals, progress=progress)
    features_seconds = time.perf_counter() - start

    def load(i: int):
        rec = cache.load(i)
        return rec["boxes"], rec["num_gt"], rec["pool5"]

    fc = model.fc.eval()
    svms, regressors, heads = train_heads(load, fc, train_ds, cfg, progress)
    info = {
        "finetune_seconds": ft["seconds"], "features_seconds": features_seconds, **heads,
        "cache_bytes": cache.bytes, "cache_dir": str(cache.folder), "cache_reused": int(cache.reused),
        "cache_regions": cache.num_regions, "finetune_losses": ft["losses"],
        "num_fg_windows": ft["num_fg_windows"], "num_bg_windows": ft["num_bg_windows"],
    }  # fmt: skip
    info["train_seconds"] = (
        info["finetune_seconds"] + features_seconds + heads["svm_seconds"] + heads["ridge_seconds"]
    )
    finetuned = copy.copy(backbone)
    finetuned.body, finetuned.fc = model.body, model.fc
    return RCNN(finetuned, svms, regressors, train_ds.classes, cfg.warp_context, nms_thresh=cfg.nms_thresh,
                detections_per_img=cfg.detections_per_img, info=info)  # fmt: skip


def load_or_train_rcnn(
    cfg: Config,
    train_ds,
    proposals: Sequence[Tensor],
    progress: bool = True,
    backbone: Backbone | None = None,
    finetune_iters: int | None = None,
    max_proposals_per_image: int | None | str = "auto",
) -> RCNN:
    """The R-CNN for ``cfg`` from the model cache, or :func:`train_rcnn` then cache it (atomic save).

    Notebook 03 trains (or loads) its R-CNN with it.

    The backbone is ``backbone`` (its weights are part of the cache key) or, by default,
    :func:`~fastrcnn_lite.pretrain.pretrained_backbone`. ``info["from_cache"]`` (and the older
    ``info["loaded"]``, 0/1) says which happened; the train times are those measured when it was
    trained; ``info`` has the detector contract's keys (``fastrcnn_lite.detector``, which builds
    every system by name). On the CPU, in eval mode.
    """
    # The model cache is keyed by the resolved value ("auto" = None = all proposals).
    max_proposals = resolve_max_proposals(max_proposals_per_image)
    return load_or_train(RCNN, train_rcnn, cfg, train_ds, proposals, progress, backbone,
                         finetune_iters=finetune_iters, max_proposals_per_image=max_proposals)  # fmt: skip
