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
3. **SVMs and box regressors** (``fastrcnn_lite.svm``): linear SVMs on fc7 with hard-negative
   mining; class-specific ridge regression from pool5 to box deltas (proposals with IoU > 0.6).

Test: every proposal is warped and run through the network (the cost: P full forward passes
per image), scored by the SVMs, moved by the regressor of each class, then per-class NMS at 0.3.

The pieces shared with SPPnet (the region labels for the SVMs, the regression set, the detection
loop) live here and ``fastrcnn_lite.sppnet`` imports them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import Backbone
from .boxes import box_iou, check_boxes, decode_boxes, encode_boxes
from .checkpoint import atomic_save, cache_path, load_checkpoint
from .config import Config, resolve_path
from .detect import postprocess_detections
from .pretrain import RegionClassifier, new_backbone, pretrained_backbone, small_backbone_size
from .progress import tqdm
from .svm import BoxRegressors, LinearSVMs, train_box_regressors, train_svms
from .warp import warp_regions

__all__ = [
    "RCNN",
    "SVMDetector",
    "load_or_train",
    "finetune_rcnn",
    "extract_rcnn_features",
    "FeatureCache",
    "SVMRegions",
    "regression_targets",
    "regression_set",
    "gt_for_training",
    "train_rcnn",
    "load_or_train_rcnn",
    "proposals_digest",
    "run_detection",
    "resolve_max_proposals",
]

SVM_SCORE_THRESH = -1.0  # SVM margins: keep detections scoring above the negative margin


# ----------------------------------------------------------------------------------------------
# Small helpers shared with SPPnet
# ----------------------------------------------------------------------------------------------
def _load_image(dataset, index: int) -> Tensor:
    return dataset.load_image(index) if hasattr(dataset, "load_image") else dataset[index][0]


def _load_target(dataset, index: int) -> dict:
    return dataset.load_target(index) if hasattr(dataset, "load_target") else dataset[index][1]


def gt_for_training(target: dict, use_difficult: bool = False) -> tuple[Tensor, Tensor]:
    """The gt boxes (Tensor[G, 4]) and labels (Tensor[G]) a detector trains on (no difficult ones by default)."""
    keep = torch.ones(len(target["boxes"]), dtype=torch.bool)
    if not use_difficult and "difficult" in target:
        keep = ~target["difficult"].bool()
    return target["boxes"][keep].float(), target["labels"][keep]


def _check_proposals(dataset, proposals) -> None:
    if not isinstance(proposals, Sequence) or isinstance(proposals, Tensor):
        raise TypeError(
            f"proposals must be a list of per-image Tensor[P_i, 4] (from load_proposals); got {type(proposals).__name__}."
        )
    if len(proposals) != len(dataset):
        raise ValueError(
            f"proposals has {len(proposals)} entries but the dataset has {len(dataset)} images; "
            "load the proposals of this very split (load_proposals(dataset, cfg))."
        )
    for i, p in enumerate(proposals):
        check_boxes(p, f"proposals[{i}]")


def proposals_digest(proposals: Sequence[Tensor]) -> str:
    """A short hash of a list of proposal tensors (part of cache keys)."""
    h = hashlib.sha1()
    for p in proposals:
        h.update(str(tuple(p.shape)).encode())
        h.update(p.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _module_digest(*modules: nn.Module) -> str:
    h = hashlib.sha1()
    for m in modules:
        for name, t in m.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _dataset_key(dataset) -> str:
    root = str(getattr(dataset, "root", type(dataset).__name__))
    return f"{root}|{getattr(dataset, 'image_set', '')}|{len(dataset)}"


def _labels_for_boxes(boxes: Tensor, gt_boxes: Tensor, gt_labels: Tensor) -> tuple[Tensor, Tensor]:
    """Max IoU with any gt box (Tensor[P]) and the index of that gt box (Tensor[P]); 0 / -1 without gt."""
    if len(gt_boxes) == 0 or len(boxes) == 0:
        return torch.zeros(len(boxes)), torch.full((len(boxes),), -1, dtype=torch.long)
    max_iou, best = box_iou(boxes, gt_boxes).max(dim=1)  # (P,), (P,)
    return max_iou, best


def _class_iou(boxes: Tensor, gt_boxes: Tensor, gt_labels: Tensor, num_classes: int) -> Tensor:
    """Tensor[P, K]: each box's max IoU with the gt boxes of each class (0 where a class has none)."""
    out = torch.zeros(len(boxes), num_classes)
    if len(gt_boxes) and len(boxes):
        iou = box_iou(boxes, gt_boxes)  # (P, G)
        for k in range(num_classes):
            mask = gt_labels == k + 1
            if mask.any():
                out[:, k] = iou[:, mask].max(dim=1).values
    return out


class _Memo:
    """Keep computed per-image values while their total size stays under ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.used, self.items = max_bytes, 0, {}

    def get(self, key, make: Callable):
        if key in self.items:
            return self.items[key]
        value = make()
        size = sum(t.numel() * t.element_size() for t in value if isinstance(t, Tensor))
        if self.used + size <= self.max_bytes:
            self.items[key], self.used = value, self.used + size
        return value


# ----------------------------------------------------------------------------------------------
# Stage 1: fine-tuning on warped proposals
# ----------------------------------------------------------------------------------------------
def _windows(
    dataset, proposals, fg_iou: float, use_difficult: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Every training window: gt boxes + proposals, labelled by IoU (R-CNN fine-tuning labels)."""
    image_index, boxes, labels = [], [], []
    for i in range(len(dataset)):
        gt, gt_labels = gt_for_training(_load_target(dataset, i), use_difficult)
        b = torch.cat([gt, proposals[i].float()])  # (G + P, 4)
        max_iou, best = _labels_for_boxes(b, gt, gt_labels)
        lab = torch.zeros(len(b), dtype=torch.long)
        if len(gt):
            lab = torch.where(max_iou >= fg_iou, gt_labels[best.clamp(min=0)], lab)
        image_index.append(torch.full((len(b),), i, dtype=torch.long))
        boxes.append(b)
        labels.append(lab.long())
    return torch.cat(image_index), torch.cat(boxes), torch.cat(labels)


class _ImageStore:
    """Decoded training images kept in memory (up to ``max_bytes``; the rest are decoded per use)."""

    def __init__(self, dataset, max_bytes: int = 2 << 30):
        self.dataset, self.memo = dataset, _Memo(max_bytes)

    def __call__(self, index: int) -> Tensor:
        (image,) = self.memo.get(index, lambda: (_load_image(self.dataset, index),))
        return image  # (3, H, W)


def _warp_batch(
    store: _ImageStore, image_index: Tensor, boxes: Tensor, size: int, context: int
) -> Tensor:
    """Warp windows that come from many images: one warp_regions call per distinct image."""
    crops = torch.empty(len(boxes), 3, size, size)
    for i in image_index.unique().tolist():
        rows = torch.where(image_index == i)[0]
        crops[rows] = warp_regions(store(i), boxes[rows], size, context)
    return crops  # (B, 3, s, s)


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
    _check_proposals(train_ds, proposals)
    start = time.perf_counter()
    iters = iters if iters is not None else (100 if backbone.name == "small" else cfg.max_iters)
    lr = lr if lr is not None else cfg.lr
    num_classes = len(train_ds.classes)
    image_index, boxes, labels = _windows(
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
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, momentum=cfg.momentum,
    )  # fmt: skip
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.75 * iters)], 0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    store = _ImageStore(train_ds)
    num_fg = min(round(positive_fraction * batch_size), batch_size)
    losses = []
    model.train()
    for _ in tqdm(range(iters), desc="R-CNN fine-tuning", disable=not progress):
        pick = torch.cat([
            fg[torch.randint(len(fg), (num_fg,), generator=gen)],
            bg[torch.randint(len(bg), (batch_size - num_fg,), generator=gen)] if len(bg) else fg[:0],
        ])  # fmt: skip
        crops = _warp_batch(
            store, image_index[pick], boxes[pick], backbone.input_size, cfg.warp_context
        )  # (B, 3, s, s)
        loss = F.cross_entropy(model(crops), labels[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
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
class FeatureCache:
    """A folder of per-image region features: ``<folder>/<image index>.pt`` + ``index.json``.

    Each file holds ``boxes`` (Tensor[G + P, 4], the gt boxes first), ``num_gt`` and the
    features (``pool5`` Tensor[G + P, D] float16 for R-CNN; SPPnet stores its conv map instead).
    """

    def __init__(self, folder: str | Path, reused: bool = True):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "index.json").read_text())
        self.num_images, self.bytes, self.num_regions = (
            meta["num_images"],
            meta["bytes"],
            meta.get("num_regions", 0),
        )
        self.reused = reused  # True: an existing cache was found (no features computed this time)

    def __len__(self) -> int:
        return self.num_images

    def load(self, index: int) -> dict:
        return torch.load(self.folder / f"{index:06d}.pt", weights_only=True)

    @staticmethod
    def is_complete(folder: Path) -> bool:
        return (folder / "index.json").is_file()

    @staticmethod
    def write(
        folder: Path, records: Callable[[int], dict], num_images: int, desc: str, progress: bool
    ) -> FeatureCache:
        """Write ``records(i)`` for every image, then ``index.json`` last (an interrupted run is redone)."""
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        total, regions = 0, 0
        for i in tqdm(range(num_images), desc=desc, disable=not progress):
            path = folder / f"{i:06d}.pt"
            record = records(i)
            torch.save(record, path)
            total += path.stat().st_size
            regions += len(record["boxes"])
        meta = {"num_images": num_images, "bytes": total, "num_regions": regions}
        (folder / "index.json").write_text(json.dumps(meta))
        return FeatureCache(folder, reused=False)


def resolve_max_proposals(
    max_proposals_per_image: int | None | str, backbone_name: str
) -> int | None:
    """``"auto"``: 64 training proposals per image for the small backbone (the embedded profile's
    time budget: R-CNN runs the whole network once per cached region), all of them otherwise."""
    if max_proposals_per_image == "auto":
        return 64 if backbone_name == "small" else None
    if max_proposals_per_image is not None and (
        not isinstance(max_proposals_per_image, int) or max_proposals_per_image < 0
    ):
        raise ValueError(
            f"max_proposals_per_image must be an int >= 0, None (all) or 'auto'; got {max_proposals_per_image!r}."
        )
    return max_proposals_per_image


def _training_boxes(
    dataset, proposals, index: int, use_difficult: bool, max_proposals: int | None, gen
) -> tuple[Tensor, int]:
    gt, _ = gt_for_training(_load_target(dataset, index), use_difficult)
    props = proposals[index].float()
    if max_proposals is not None and len(props) > max_proposals:
        props = props[torch.randperm(len(props), generator=gen)[:max_proposals]]
    return torch.cat([gt, props]), len(gt)  # (G + P, 4)


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

    The folder is ``<cache_dir>/rcnn_features/<key>``, the key a hash of the network weights, the
    proposals, the dataset and the settings: an existing complete folder with the same key is
    reused, so a changed network never reads stale features.

    Args:
        model: the fine-tuned network (:func:`finetune_rcnn`).
        max_proposals_per_image: keep a random subset of this many proposals per image (None: all).
    """
    _check_proposals(dataset, proposals)
    size = model.pool_size
    key = hashlib.sha1(
        json.dumps([_module_digest(model.body, model.fc), proposals_digest(proposals), _dataset_key(dataset),
                    cfg.warp_context, cfg.use_difficult, max_proposals_per_image, cfg.seed, list(size)]).encode()
    ).hexdigest()[:12]  # fmt: skip
    folder = resolve_path(cfg.cache_dir) / "rcnn_features" / key
    if FeatureCache.is_complete(folder):
        return FeatureCache(folder)
    gen = torch.Generator().manual_seed(cfg.seed)

    def record(i: int) -> dict:
        boxes, num_gt = _training_boxes(
            dataset, proposals, i, cfg.use_difficult, max_proposals_per_image, gen
        )
        image = _load_image(dataset, i)
        pool5 = _pool5(model, image, boxes, cfg.warp_context, batch_size)  # (G + P, D)
        return {"boxes": boxes, "num_gt": num_gt, "pool5": pool5.half()}

    model.eval()
    with torch.inference_mode():
        return FeatureCache.write(folder, record, len(dataset), "R-CNN features -> disk", progress)


def _pool5(
    model: RegionClassifier, image: Tensor, boxes: Tensor, context: int, batch_size: int
) -> Tensor:
    """pool5 features of the warped boxes of one image, in chunks: Tensor[P, C*h*w]."""
    size = model.input_size
    if len(boxes) == 0:
        return model.pool5(image.new_zeros(1, 3, size, size))[:0]  # (0, C*h*w)
    return torch.cat(
        [
            model.pool5(warp_regions(image, chunk, size, context))
            for chunk in boxes.split(batch_size)
        ]
    )


# ----------------------------------------------------------------------------------------------
# Stage 3: SVMs and box regressors from cached features (shared with SPPnet)
# ----------------------------------------------------------------------------------------------
class SVMRegions(Sequence):
    """The per-image training regions :func:`fastrcnn_lite.svm.train_svms` reads, built lazily.

    Args:
        load (callable): image index -> (boxes Tensor[G + P, 4] with the gt first, num_gt,
            pool Tensor[G + P, D]): the cached region features.
        fc (callable): pool features -> fc7 features (the SVMs' input).
        dataset: for the gt labels (``load_target``).
        neg_iou: a region is a negative of class k when its IoU with every gt box of class k is
            below this (R-CNN: 0.3).
    """

    def __init__(self, load: Callable, fc: Callable, dataset, num_classes: int, neg_iou: float,
                 use_difficult: bool = False, memo_bytes: int = 1 << 30):  # fmt: skip
        self.load, self.fc, self.dataset = load, fc, dataset
        self.num_classes, self.neg_iou, self.use_difficult = num_classes, neg_iou, use_difficult
        self.memo = _Memo(memo_bytes)

    def __len__(self) -> int:
        return len(self.dataset)

    def _make(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        boxes, num_gt, pool = self.load(index)
        gt, gt_labels = gt_for_training(_load_target(self.dataset, index), self.use_difficult)
        assert num_gt == len(gt), "cached gt boxes do not match the dataset"
        with torch.inference_mode():
            features = self.fc(pool.float())  # (G + P, F)
        positive = torch.zeros(len(boxes), dtype=torch.long)
        positive[:num_gt] = gt_labels
        negative = _class_iou(boxes, gt, gt_labels, self.num_classes) < self.neg_iou  # (G + P, K)
        return features.half(), positive, negative

    def __getitem__(self, index: int) -> dict:
        features, positive, negative = self.memo.get(index, lambda: self._make(index))
        return {
            "features": features.float(),
            "positive_labels": positive,
            "negative_mask": negative,
        }


def regression_targets(
    proposals: Tensor, gt_boxes: Tensor, gt_labels: Tensor, min_iou: float = 0.6
) -> tuple[Tensor, Tensor, Tensor]:
    """The box-regression examples of one image (R-CNN appendix C).

    A proposal is an example when its IoU with its best-overlapping gt box is above ``min_iou``
    (strictly); its label is that box's class and its target the deltas that move it onto that
    box. Taught in ``notebooks/03_rcnn.ipynb``.

    Args:
        proposals (Tensor[P, 4]), gt_boxes (Tensor[G, 4]): (x1, y1, x2, y2) pixels.
        gt_labels (Tensor[G] int64): classes 1..K.
        min_iou: R-CNN's 0.6 (``cfg.bbox_reg_iou``).

    Returns:
        keep (Tensor[P] bool), labels (Tensor[M] int64), targets (Tensor[M, 4]) =
        ``encode_boxes(proposals[keep], best gt boxes)``, M = ``keep.sum()``, in proposal order.
    """
    max_iou, best = _labels_for_boxes(proposals, gt_boxes, gt_labels)  # (P,), (P,)
    keep = max_iou > min_iou  # (P,)
    best = best[keep]  # (M,)
    return keep, gt_labels[best], encode_boxes(proposals[keep], gt_boxes[best])


def regression_set(load: Callable, dataset, num_images: int, min_iou: float, use_difficult: bool = False,
                   progress: bool = True) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """The ridge regressors' training set: proposals with IoU > ``min_iou`` with a gt box.

    Returns:
        (features Tensor[M, D] float32, labels Tensor[M] of the matched gt box, targets Tensor[M, 4]
        = ``encode_boxes(proposal, gt box)``).
    """
    features, labels, targets = [], [], []
    for i in tqdm(range(num_images), desc="regression set", disable=not progress):
        boxes, num_gt, pool = load(i)
        gt, gt_labels = gt_for_training(_load_target(dataset, i), use_difficult)
        props, pool = boxes[num_gt:], pool[num_gt:]
        keep, kept_labels, kept_targets = regression_targets(props, gt, gt_labels, min_iou)
        if keep.any():
            features.append(pool[keep].float())
            labels.append(kept_labels)
            targets.append(kept_targets)
    if not features:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long), torch.zeros(0, 4)
    return torch.cat(features), torch.cat(labels), torch.cat(targets)


def train_heads(
    load: Callable, fc: Callable, dataset, cfg: Config, progress: bool = True
) -> tuple[LinearSVMs, BoxRegressors, dict]:
    """R-CNN stage 3 (also SPPnet's): SVMs with hard-negative mining on fc7, ridge regressors on pool features."""
    num_classes = len(dataset.classes)
    start = time.perf_counter()
    regions = SVMRegions(load, fc, dataset, num_classes, cfg.svm_neg_iou, cfg.use_difficult)
    svms = train_svms(regions, num_classes, C=cfg.svm_C, hard_negative_rounds=cfg.svm_hard_negative_rounds,
                      seed=cfg.seed, class_names=dataset.classes, progress=progress)  # fmt: skip
    svm_seconds = time.perf_counter() - start
    features, labels, targets = regression_set(
        load, dataset, len(dataset), cfg.bbox_reg_iou, cfg.use_difficult, progress
    )
    if features.numel() == 0:
        dim = load(0)[2].shape[1]
        features = torch.zeros(0, dim)
    regressors = train_box_regressors(features, labels, targets, num_classes, cfg.ridge_lambda)
    info = {"svm_seconds": svm_seconds, "ridge_seconds": time.perf_counter() - start - svm_seconds}
    return svms, regressors, info


# ----------------------------------------------------------------------------------------------
# Test: score every proposal, regress, per-class NMS
# ----------------------------------------------------------------------------------------------
def _empty_detections() -> dict:
    return {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.long),
    }


def run_detection(
    detect_image: Callable, dataset, proposals, progress: bool = True, desc: str = "detect"
) -> tuple[list[dict], float]:
    """Run ``detect_image(image, proposals)`` over a dataset; returns (detections, seconds per image).

    The clock covers everything per image (image decoding included) except computing the
    proposals, which come precomputed: the paper's "test time excluding proposals".
    """
    _check_proposals(dataset, proposals)
    detections, seconds = [], 0.0
    with torch.inference_mode():
        for i in tqdm(range(len(dataset)), desc=desc, disable=not progress):
            start = time.perf_counter()
            image = _load_image(dataset, i)
            detections.append(detect_image(image, proposals[i].float()))
            seconds += time.perf_counter() - start
    return detections, seconds / max(len(dataset), 1)


class SVMDetector:
    """What R-CNN and SPPnet share at test time: region features -> SVM scores + ridge deltas -> NMS.

    A subclass says how it gets each proposal's features (:meth:`region_features`: the features
    the ridge regressors read and fc7 for the SVMs) and which modules it runs (:meth:`modules`).

    Args:
        svms: one linear SVM per class on fc7 (:class:`~fastrcnn_lite.svm.LinearSVMs`).
        box_regressors: class-specific ridge regressors (:class:`~fastrcnn_lite.svm.BoxRegressors`).
        classes: the K class names.
        score_thresh, nms_thresh, detections_per_img: post-processing (SVM margins, so the
            threshold is -1 by default; per-class NMS at 0.3 as in the paper).
        info: training record (stage seconds, feature-cache bytes).
    """

    name = "SVM detector"

    def __init__(self, svms: LinearSVMs, box_regressors: BoxRegressors, classes: Sequence[str],
                 score_thresh: float = SVM_SCORE_THRESH, nms_thresh: float = 0.3,
                 detections_per_img: int = 100, info: dict | None = None):  # fmt: skip
        self.svms, self.box_regressors = svms, box_regressors
        self.classes = tuple(classes)
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img = detections_per_img
        self.info = info or {}

    @property
    def train_seconds(self) -> float:
        """Wall-clock training time of the system's own stages (pre-training not counted)."""
        return float(self.info.get("train_seconds", math.nan))

    @property
    def cache_bytes(self) -> int:
        """Disk used by the training-feature cache."""
        return int(self.info.get("cache_bytes", 0))

    def modules(self) -> tuple[nn.Module, ...]:
        """The network parts run at test time (put in eval mode by :meth:`detect`)."""
        raise NotImplementedError

    def region_features(self, image: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """(features for the regressors Tensor[P, D], fc7 Tensor[P, fc_dim]) of every box."""
        raise NotImplementedError

    def detect_image(self, image: Tensor, proposals: Tensor) -> dict:
        """Detections on one image (Tensor[3, H, W]) from its proposals (Tensor[P, 4]); P = 0 -> none."""
        check_boxes(proposals, "proposals")
        if len(proposals) == 0:
            return _empty_detections()
        features, fc7 = self.region_features(image, proposals)
        scores = self.svms(fc7)  # (P, K)
        deltas = self.box_regressors(features)  # (P, 4K)
        num, num_classes = scores.shape
        class_boxes = decode_boxes(proposals, deltas).reshape(num, num_classes, 4)  # (P, K, 4)
        return postprocess_detections(class_boxes, scores, tuple(image.shape[1:]), self.score_thresh,
                                      self.nms_thresh, self.detections_per_img)  # fmt: skip

    def detect(
        self, dataset, proposals: Sequence[Tensor], progress: bool = True
    ) -> tuple[list[dict], float]:
        """Detect on every image: (list of {boxes, scores, labels}, seconds per image excluding proposals)."""
        for module in self.modules():
            module.eval()
        return run_detection(self.detect_image, dataset, proposals, progress, f"{self.name} detect")

    def _state(self, **parts) -> dict:
        return {
            "svms": self.svms.state_dict(), "box_regressors": self.box_regressors.state_dict(),
            "classes": list(self.classes),
            "info": {k: v for k, v in self.info.items() if isinstance(v, (int, float, str))},
            "finetune_losses": torch.tensor(self.info.get("finetune_losses", [])), **parts,
        }  # fmt: skip

    @staticmethod
    def _heads_from_state(cfg: Config, state: dict) -> dict:
        """The keyword arguments every subclass's constructor takes, from a saved state."""
        info = dict(state["info"]) | {"finetune_losses": state["finetune_losses"].tolist()}
        return {
            "svms": LinearSVMs.from_state_dict(state["svms"]),
            "box_regressors": BoxRegressors.from_state_dict(state["box_regressors"]),
            "classes": state["classes"], "nms_thresh": cfg.nms_thresh,
            "detections_per_img": cfg.detections_per_img, "info": info,
        }  # fmt: skip


class RCNN(SVMDetector):
    """The R-CNN detector: warp each proposal -> whole CNN -> SVM scores + class-specific box regression.

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
            pool5 = _pool5(self._net, image, boxes, self.context, self.batch_size)  # (P, C*h*w)
            return pool5, self.backbone.fc(pool5)  # (P, fc_dim)

    def state_dict(self) -> dict:
        return self._state(body=self.backbone.body.state_dict(), fc=self.backbone.fc.state_dict(),
                           backbone_size=small_backbone_size(self.backbone), context=self.context)  # fmt: skip

    @classmethod
    def from_state_dict(cls, cfg: Config, state: dict) -> RCNN:
        backbone = new_backbone(cfg, **state.get("backbone_size", {}))
        backbone.body.load_state_dict(state["body"])
        backbone.fc.load_state_dict(state["fc"])
        backbone.body.eval(), backbone.fc.eval()
        return cls(backbone, context=state["context"], **cls._heads_from_state(cfg, state))


def load_or_train(
    detector: type[SVMDetector],
    train: Callable[..., SVMDetector],
    cfg: Config,
    train_ds,
    proposals: Sequence[Tensor],
    progress: bool = True,
    backbone: Backbone | None = None,
    **kwargs,
):
    """The trained ``detector`` for this config, data, proposals and starting weights, from the
    model cache, or ``train(cfg, train_ds, proposals, progress, backbone=backbone, **kwargs)``
    then cached (atomic save).

    The cache key covers the config, the dataset, a digest of the proposals, the starting
    weights (``backbone``, or "pretrained" for :func:`~fastrcnn_lite.pretrain.pretrained_backbone`)
    and ``kwargs``, so a changed setting never loads a stale model. ``info["loaded"]`` says which
    happened; the train times are those measured when it was trained.
    """
    weights = _module_digest(backbone.body, backbone.fc) if backbone is not None else "pretrained"
    path = cache_path(cfg, detector.name.lower().replace("-", ""), data=_dataset_key(train_ds),
                      proposals=proposals_digest(proposals), version=3, backbone=weights, **kwargs)  # fmt: skip
    if path.is_file():
        model = detector.from_state_dict(cfg, load_checkpoint(path))
        model.info["loaded"] = 1
        return model
    model = train(cfg, train_ds, proposals, progress, backbone=backbone, **kwargs)
    atomic_save(model.state_dict(), path)
    model.info["loaded"] = 0
    return model


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

    Args:
        cfg: the configuration (warp context, IoU thresholds, SVM C, ridge lambda, NMS...).
        train_ds: the training split; proposals: its proposals (list of Tensor[P_i, 4]).
        backbone: the pre-trained network (default :func:`~fastrcnn_lite.pretrain.pretrained_backbone`;
            its time is not counted in R-CNN's train time: all three systems share it).
        finetune_iters: see :func:`finetune_rcnn`.
        max_proposals_per_image: a random subset of this many proposals per training image is
            cached for the SVMs / regressors (None: all; "auto": see :func:`resolve_max_proposals`).

    Returns:
        RCNN with ``info``: ``finetune_seconds``, ``features_seconds``, ``svm_seconds``,
        ``ridge_seconds``, ``train_seconds`` (their sum), ``cache_bytes``, ``cache_dir``,
        ``cache_reused`` (1 when an existing feature cache was found: then ``features_seconds``
        did not compute anything), ``cache_regions`` (regions in the cache), ``finetune_losses``.
    """
    _check_proposals(train_ds, proposals)
    if backbone is None:
        backbone = pretrained_backbone(cfg, train_ds, progress=progress)
    model, ft = finetune_rcnn(
        backbone, train_ds, proposals, cfg, iters=finetune_iters, progress=progress
    )
    start = time.perf_counter()
    max_proposals = resolve_max_proposals(max_proposals_per_image, backbone.name)
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

    The backbone is ``backbone`` (its weights are part of the cache key) or, by default,
    :func:`~fastrcnn_lite.pretrain.pretrained_backbone`. ``info["loaded"]`` says which happened;
    the train times are those measured when it was trained.
    """
    return load_or_train(RCNN, train_rcnn, cfg, train_ds, proposals, progress, backbone,
                         finetune_iters=finetune_iters, max_proposals_per_image=max_proposals_per_image)  # fmt: skip
