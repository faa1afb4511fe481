"""The SVM-and-ridge heads of R-CNN and SPPnet: their training sets, their training, the detector.

Data-flow stage: **heads** (SVMs + ridge regressors) -> **detections** for the two multi-stage
systems. R-CNN (Girshick et al., CVPR 2014, section 2.3, appendices B-C) and SPPnet (He et al.,
ECCV 2014, section 4) differ only in how they compute a region's features (a warped crop through
the whole network, or a spatial pyramid on a conv map computed once per image); from the cached
features on, they are the same pipeline, and it lives here:

* **SVM training regions** (:class:`SVMRegions`): per image, fc7 of every cached region; the gt
  boxes are the positives of their class, a region is a negative of class k when its IoU with
  every gt box of class k is below 0.3. ``fastrcnn_lite.svm.train_svms`` mines hard negatives.
* **Regression set** (:func:`regression_targets`, :func:`regression_set`): proposals with IoU >
  0.6 with a gt box, their pool features and the deltas onto that box, for the ridge regressors
  (``fastrcnn_lite.ridge.train_box_regressors``).
* :func:`train_heads`: both, timed. :class:`SVMDetector`: region features -> SVM scores + ridge
  deltas -> per-class NMS, what ``RCNN`` and ``SPPNet`` share at test time;
  ``fastrcnn_lite.region_heads_cache.load_or_train``: the trained detector from the model cache,
  or trained then cached.

The algorithms themselves are in ``fastrcnn_lite.svm`` (SVMs, hard-negative mining) and
``fastrcnn_lite.ridge`` (the box regressors); the
regions and their feature cache in ``fastrcnn_lite.regions``. Taught in
``notebooks/03_rcnn.ipynb`` (and used again in ``notebooks/05_sppnet.ipynb``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .backbones import count_parameters
from .boxes import box_iou, check_boxes, decode_boxes, encode_boxes
from .config import Config
from .detect import postprocess_detections
from .progress import tqdm
from .regions import Memo, check_proposals, load_image, load_target
from .ridge import BoxRegressors, train_box_regressors
from .sampling import match_proposals
from .svm import LinearSVMs, train_svms
from .timing import timed_detections
from .voc import gt_for_training

__all__ = [
    "SVM_SCORE_THRESH",
    "TRAIN_STAGES",
    "SVMRegions",
    "regression_targets",
    "train_heads",
    "run_detection",
    "SVMDetector",
]

SVM_SCORE_THRESH = -1.0  # SVM margins: keep detections scoring above the negative margin
# The training stages of R-CNN and SPPnet, as ``info`` keys (seconds); ``info["train_stages"]``.
TRAIN_STAGES = ("finetune_seconds", "features_seconds", "svm_seconds", "ridge_seconds")


# ----------------------------------------------------------------------------------------------
# Training sets of the heads, and their training
# ----------------------------------------------------------------------------------------------
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


def regression_targets(
    proposals: Tensor, gt_boxes: Tensor, gt_labels: Tensor, min_iou: float = 0.6
) -> tuple[Tensor, Tensor, Tensor]:
    """The box-regression examples of one image (R-CNN appendix C).

    Notebook 03 grades the exercise that writes it.

    A proposal is an example when its IoU with its best-overlapping gt box is above ``min_iou``
    (strictly); its label is that box's class and its target the deltas that move it onto that
    box.

    Args:
        proposals (Tensor[P, 4]), gt_boxes (Tensor[G, 4]): (x1, y1, x2, y2) pixels.
        gt_labels (Tensor[G] int64): classes 1..K.
        min_iou: R-CNN's 0.6 (``cfg.bbox_reg_iou``).

    Returns:
        keep (Tensor[P] bool), labels (Tensor[M] int64), targets (Tensor[M, 4]) =
        ``encode_boxes(proposals[keep], best gt boxes)``, M = ``keep.sum()``, in proposal order.
    """
    max_iou, best = match_proposals(proposals, gt_boxes)  # (P,), (P,)
    keep = max_iou > min_iou  # (P,)
    best = best[keep]  # (M,)
    return keep, gt_labels[best], encode_boxes(proposals[keep], gt_boxes[best])


class SVMRegions(Sequence):
    """The per-image training regions :func:`fastrcnn_lite.svm.train_svms` reads, built lazily,
    and the ridge regressors' training set, gathered on the way.

    No notebook: :func:`train_heads` reads the cached features through it (notebook 03 explains
    its negatives).

    Image i's dict: ``features`` (fc7 of its G + P cached regions, Tensor[G + P, fc_dim]),
    ``positive_labels`` (Tensor[G + P] int64: the class of the G gt boxes, 0 for proposals),
    ``negative_mask`` (Tensor[G + P, K] bool: IoU < ``neg_iou`` with every gt box of class k).
    The first time an image's cached features are read, its box-regression examples
    (:func:`regression_targets`, IoU > ``bbox_reg_iou``) are kept too, so the SVMs' first pass
    over the cache also yields the regressors' training set (:meth:`regression_set`).

    Args:
        load (callable): image index -> (boxes Tensor[G + P, 4] with the gt first, num_gt,
            pool Tensor[G + P, F]): the cached region features (R-CNN's pool5, SPPnet's pyramids).
        fc (callable): pool features -> fc7 features (the SVMs' input).
        dataset: for the gt labels (``load_target``).
        neg_iou: a region is a negative of class k when its IoU with every gt box of class k is
            below this (R-CNN: 0.3).
        bbox_reg_iou: R-CNN's 0.6 (``cfg.bbox_reg_iou``).
        memo_bytes: fc7 of the images is kept in memory up to this size, recomputed beyond it.
    """

    def __init__(self, load: Callable, fc: Callable, dataset, num_classes: int, neg_iou: float,
                 use_difficult: bool = False, bbox_reg_iou: float = 0.6, memo_bytes: int = 1 << 30):  # fmt: skip
        self.load, self.fc, self.dataset = load, fc, dataset
        self.num_classes, self.neg_iou, self.use_difficult = num_classes, neg_iou, use_difficult
        self.bbox_reg_iou = bbox_reg_iou
        self.memo = Memo(memo_bytes)
        self.regression: dict[int, tuple[Tensor, Tensor, Tensor]] = {}  # image -> its examples
        self.pool_dim = 0  # F, for an empty regression set

    def __len__(self) -> int:
        return len(self.dataset)

    def _make(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        boxes, num_gt, pool = self.load(index)
        gt, gt_labels = gt_for_training(load_target(self.dataset, index), self.use_difficult)
        assert num_gt == len(gt), "cached gt boxes do not match the dataset"
        if index not in self.regression:  # the first read: keep the regression examples
            props, iou = boxes[num_gt:], self.bbox_reg_iou  # (P, 4)
            keep, labels, targets = regression_targets(props, gt, gt_labels, iou)  # (P,), (M,)...
            self.regression[index] = (pool[num_gt:][keep].float(), labels, targets)  # (M, F) first
            self.pool_dim = pool.shape[1]
        with torch.inference_mode():
            features = self.fc(pool.float())  # (G + P, fc_dim)
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

    def regression_set(self) -> tuple[Tensor, Tensor, Tensor]:
        """The ridge regressors' training set: every proposal with IoU > ``bbox_reg_iou`` with a
        gt box, in image order (images not read yet are read now).

        Returns:
            (features Tensor[M, F] float32, labels Tensor[M] of the matched gt box, targets
            Tensor[M, 4] = ``encode_boxes(proposal, gt box)``).
        """
        for i in range(len(self)):
            if i not in self.regression:
                self._make(i)
        examples = [self.regression[i] for i in range(len(self)) if len(self.regression[i][1])]
        if not examples:
            return (
                torch.zeros(0, self.pool_dim),
                torch.zeros(0, dtype=torch.long),
                torch.zeros(0, 4),
            )
        return tuple(torch.cat([example[j] for example in examples]) for j in range(3))


def train_heads(
    load: Callable, fc: Callable, dataset, cfg: Config, progress: bool = True
) -> tuple[LinearSVMs, BoxRegressors, dict]:
    """R-CNN's and SPPnet's last training stage: SVMs with hard-negative mining on fc7, ridge
    regressors on the pool features. The regressors' training set is gathered while the SVMs'
    first pass reads the cached features (:class:`SVMRegions`): the cache is not read again for it.

    Notebook 05 names it as the stage SPPnet shares with R-CNN (notebook 03 shows its times).

    Args:
        load: image index -> (boxes Tensor[G + P, 4] with the gt first, num_gt, pool features
            Tensor[G + P, F]): R-CNN's pool5 from disk, SPPnet's pyramids of the cached conv map.
        fc: pool features -> fc7 (Tensor[G + P, fc_dim]), the SVMs' input.

    Returns:
        (svms, regressors, info with ``svm_seconds`` (the passes over the cache included) and
        ``ridge_seconds``).
    """
    num_classes = len(dataset.classes)
    start = time.perf_counter()
    regions = SVMRegions(load, fc, dataset, num_classes, cfg.svm_neg_iou, cfg.use_difficult,
                         cfg.bbox_reg_iou)  # fmt: skip
    svms = train_svms(regions, num_classes, C=cfg.svm_C, hard_negative_rounds=cfg.svm_hard_negative_rounds,
                      seed=cfg.seed, class_names=dataset.classes, progress=progress)  # fmt: skip
    features, labels, targets = regions.regression_set()
    svm_seconds = time.perf_counter() - start
    regressors = train_box_regressors(features, labels, targets, num_classes, cfg.ridge_lambda)
    info = {"svm_seconds": svm_seconds, "ridge_seconds": time.perf_counter() - start - svm_seconds}
    return svms, regressors, info


# ----------------------------------------------------------------------------------------------
# Test: score every proposal, regress, per-class NMS
# ----------------------------------------------------------------------------------------------
def _empty_detections(device: torch.device | str = "cpu") -> dict:
    return {
        "boxes": torch.zeros(0, 4, device=device),
        "scores": torch.zeros(0, device=device),
        "labels": torch.zeros(0, dtype=torch.long, device=device),
    }


def run_detection(
    detect_image: Callable,
    dataset,
    proposals,
    progress: bool = True,
    desc: str = "detect",
    device: torch.device | str = "cpu",
) -> tuple[list[dict], float]:
    """Run ``detect_image(image, proposals)`` over a dataset; returns (detections, seconds per image).

    No notebook: :meth:`SVMDetector.detect` runs it (notebooks 03 and 05 print its time).

    What is timed is ``fastrcnn_lite.timing``'s test time per image: each image is decoded and
    copied with its proposals (precomputed, float32) to ``device`` (the detector's) before the
    clock starts; the clock covers ``detect_image`` alone (CUDA synchronised before and after),
    and the detections are copied back to the CPU after it stops. Each image is timed once; the
    seconds per image are the median over the images.

    Returns:
        (one dict per image with ``boxes`` Tensor[D, 4], ``scores`` Tensor[D], ``labels``
        Tensor[D], on the CPU; the median seconds per image defined above).
    """
    check_proposals(dataset, proposals)

    def samples():  # decoded and on the device: outside the clock
        for i in tqdm(range(len(dataset)), desc=desc, disable=not progress):
            yield load_image(dataset, i).to(device), proposals[i].float().to(device)

    def to_cpu(det: dict) -> dict:
        return {k: v.cpu() for k, v in det.items()}

    with torch.inference_mode():
        return timed_detections(detect_image, samples(), device=device, keep=to_cpu)


class SVMDetector:
    """What R-CNN and SPPnet share at test time: region features -> SVM scores + ridge deltas -> NMS.

    Notebook 03 tests R-CNN and notebook 05 SPPnet, its two subclasses, with its ``detect``.

    A subclass says how it gets each proposal's features (:meth:`region_features`: the features
    the ridge regressors read and fc7 for the SVMs) and which modules it runs (:meth:`modules`).

    Args:
        svms: one linear SVM per class on fc7 (:class:`~fastrcnn_lite.svm.LinearSVMs`).
        box_regressors: class-specific ridge regressors (:class:`~fastrcnn_lite.ridge.BoxRegressors`).
        classes: the K class names.
        score_thresh, nms_thresh, detections_per_img: post-processing (SVM margins, so the
            threshold is -1 by default; per-class NMS at 0.3 as in the paper).
        info: training record (stage seconds, feature-cache bytes);
            ``region_heads_cache.load_or_train`` adds the keys of the detector contract
            (``fastrcnn_lite.detector``).

    A detector of the contract in ``fastrcnn_lite.detector``: ``name``, ``info``,
    ``to(device)``, ``detect_image(image, proposals)``, ``score_proposals``.
    """

    name = "SVM detector"
    device = torch.device("cpu")  # where the networks and the heads are (see :meth:`to`)

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

    def to(self, device: torch.device | str) -> SVMDetector:
        """Move the networks and the SVM / ridge weights to ``device``, in place; returns ``self``.

        Then :meth:`detect_image` wants its image and proposals on ``device`` too.
        """
        device = torch.device(device)
        for module in self.modules():
            module.to(device)
        svms, regressors = self.svms, self.box_regressors
        self.svms = dataclasses.replace(svms, weight=svms.weight.to(device), bias=svms.bias.to(device),
                                        trained=svms.trained.to(device))  # fmt: skip
        self.box_regressors = dataclasses.replace(
            regressors, weight=regressors.weight.to(device), bias=regressors.bias.to(device)
        )
        self.device = device
        return self

    def eval(self) -> SVMDetector:
        """Put the networks in eval mode; returns ``self`` (as ``nn.Module.eval`` does)."""
        for module in self.modules():
            module.eval()
        return self

    def num_parameters(self) -> int:
        """Numbers in the test-time detector: its networks, the SVMs' and the regressors' weights."""
        svms, regressors = self.svms, self.box_regressors
        heads = (svms.weight, svms.bias, regressors.weight, regressors.bias)
        return sum(count_parameters(m) for m in self.modules()) + sum(t.numel() for t in heads)

    def contract_info(self, from_cache: bool) -> dict:
        """Fill ``info`` with the detector contract's keys (``fastrcnn_lite.detector.INFO_KEYS``):
        ``from_cache``, ``train_seconds``, ``train_stages`` ({stage: seconds} of
        :data:`TRAIN_STAGES`), ``cache_bytes``, ``parameters``; and ``loaded`` (0/1, the name
        notebooks 03 and 05 read). Returns ``info``."""
        info = self.info
        info["from_cache"], info["loaded"] = bool(from_cache), int(from_cache)
        info["train_seconds"], info["cache_bytes"] = self.train_seconds, self.cache_bytes
        info["train_stages"] = {k: float(info[k]) for k in TRAIN_STAGES if k in info}
        info["parameters"] = self.num_parameters()
        return info

    def region_features(self, image: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """(features for the regressors Tensor[P, F], fc7 Tensor[P, fc_dim]) of every box."""
        raise NotImplementedError

    def score_proposals(self, image: Tensor, proposals: Tensor) -> tuple[Tensor, Tensor]:
        """The network part of :meth:`detect_image`: region features, SVM scores, ridge deltas.

        Args:
            image (Tensor[3, H, W]) in [0, 1] and proposals (Tensor[P, 4], P >= 1, its pixels),
                on the detector's device.

        Returns:
            (scores Tensor[P, K] SVM margins, box_deltas Tensor[P, 4K] class k + 1 in columns 4k..4k+3).
        """
        features, fc7 = self.region_features(image, proposals)
        return self.svms(fc7), self.box_regressors(features)  # (P, K), (P, 4K)

    def detect_image(self, image: Tensor, proposals: Tensor) -> dict:
        """Detections on one image (Tensor[3, H, W]) from its proposals (Tensor[P, 4]); P = 0 -> none.

        Image and proposals on the detector's device (:meth:`to`). Returns a dict with ``boxes``
        (Tensor[D, 4]), ``scores`` (Tensor[D], SVM margins) and ``labels`` (Tensor[D] in 1..K).
        """
        check_boxes(proposals, "proposals")
        if len(proposals) == 0:
            return _empty_detections(image.device)
        scores, deltas = self.score_proposals(image, proposals)  # (P, K), (P, 4K)
        num, num_classes = scores.shape
        class_boxes = decode_boxes(proposals, deltas).reshape(num, num_classes, 4)  # (P, K, 4)
        return postprocess_detections(class_boxes, scores, tuple(image.shape[1:]), self.score_thresh,
                                      self.nms_thresh, self.detections_per_img)  # fmt: skip

    def detect(
        self, dataset, proposals: Sequence[Tensor], progress: bool = True
    ) -> tuple[list[dict], float]:
        """Detect on every image: (list of {boxes, scores, labels}, seconds per image).

        Notebook 03 tests R-CNN with it, notebook 05 SPPnet. The seconds per image are
        ``fastrcnn_lite.timing``'s test time per image (decoded image and proposals to
        detections, :func:`run_detection` says how): decoding and proposals are not counted.
        """
        self.eval()
        return run_detection(self.detect_image, dataset, proposals, progress, f"{self.name} detect",
                             self.device)  # fmt: skip

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
