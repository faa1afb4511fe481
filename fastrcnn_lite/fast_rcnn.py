"""Fast R-CNN: one conv pass per image, RoI pooling, fc6/fc7 and two sibling output layers.

Data-flow stage: **backbone feature map -> region features (RoI pool) -> heads -> losses /
detections**. Implements paper sections 2 and 3 (Fig. 1)::

    images Tensor[N, 3, H, W] --body--> features Tensor[N, C, H/s, W/s]
    proposals (per image) --boxes_to_rois--> rois Tensor[K, 5]
    (features, rois) --RoIPool(h x w, 1/s)--> pooled Tensor[K, C, h, w]
    pooled --fc6, fc7--> Tensor[K, fc_dim] --cls_score--> class_logits Tensor[K, num_classes + 1]
                                           --bbox_pred--> box_deltas  Tensor[K, 4 * num_classes]

Training (``model.train()``): ``forward(images, proposals, targets)`` samples RoIs (section
2.3, :mod:`fastrcnn_lite.sampling`) and returns the multi-task loss
(:mod:`fastrcnn_lite.losses`). Evaluation (``model.eval()``): the same call without targets
returns detections: softmax scores, per-class box decoding, clipping, per-class NMS at 0.3, a
score threshold and a per-image cap (section 3).

The network is composed from the parts passed in (``FastRCNN(body, roi_pool, head)``);
:func:`build_fast_rcnn` wires them from a :class:`~fastrcnn_lite.config.Config` and a
:class:`~fastrcnn_lite.backbones.Backbone`, applying the paper's three transformations of a
pre-trained network (section 2.2): pool5 -> RoI pooling, fc8 -> the two sibling layers,
inputs -> (images, RoIs).

Scale invariance (section 5.2) at test time: :meth:`FastRCNN.detect_image` with several scales
builds an image pyramid and pools each RoI at the scale where its area is closest to
``target_area`` (224 x 224 pixels in the paper). :func:`detect` runs it over a dataset and times it.

A :class:`FastRCNN` is a detector of the contract in ``fastrcnn_lite.detector`` (``name``,
``info``, ``.to(device)``, ``detect_image(image, proposals)`` at its own test scales,
``score_proposals``), like R-CNN's and SPPnet's, so the comparison loops over all of them alike.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import Backbone, freeze_below, new_backbone
from .boxes import boxes_to_rois, check_boxes, decode_boxes
from .config import Config
from .detect import postprocess_detections
from .losses import fast_rcnn_loss
from .progress import tqdm
from .roi_pool import RoIPool
from .sampling import sample_rois
from .transforms import batch_images, pyramid_levels, resize, scale_factor

__all__ = [
    "FastRCNNHead",
    "FastRCNN",
    "build_fast_rcnn",
    "pyramid_levels",
    "detect",
    "max_size_for",
    "resolve_device",
    "OOM_HINT",
]

OOM_HINT = (
    "CUDA ran out of memory {where}. Lower the settings that size the work: the image scales "
    "(cfg.scales / cfg.test_scales and cfg.max_size; cfg.multiscale_max_size for a pyramid), "
    "cfg.batch_size_per_image (RoIs per image), cfg.proposals_per_image, or cfg.images_per_batch; "
    "or free memory held by other processes on the GPU."
)


def resolve_device(cfg: Config) -> torch.device:
    """``cfg.device``, with ``"auto"`` meaning cuda when available, else cpu."""
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def max_size_for(cfg: Config, scales: tuple[int, ...]) -> int:
    """The longer-side cap for these scales: ``cfg.max_size`` for one, ``cfg.multiscale_max_size`` for a pyramid."""
    return cfg.max_size if len(scales) == 1 else cfg.multiscale_max_size


class FastRCNNHead(nn.Module):
    """fc6, fc7 and the two sibling layers: ``cls_score`` (num_classes + 1) and ``bbox_pred`` (4 num_classes).

    Args:
        fc (nn.Module): fc6 and fc7 with their ReLUs (``Backbone.fc``): Tensor[K, C*h*w] -> Tensor[K, fc_dim].
        fc_dim: fc7's output width (4096 for VGG16).
        num_classes: K foreground classes (background is class 0 of ``cls_score``).
        cls_init_std, bbox_init_std: the new layers start from N(0, 0.01) and N(0, 0.001)
            weights and zero biases (section 2.2).
    """

    def __init__(
        self,
        fc: nn.Module,
        fc_dim: int,
        num_classes: int,
        cls_init_std: float = 0.01,
        bbox_init_std: float = 0.001,
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(
                f"num_classes must be >= 1 (foreground classes, background excluded); got {num_classes}."
            )
        self.num_classes = num_classes
        self.fc = fc
        self.cls_score = nn.Linear(fc_dim, num_classes + 1)
        self.bbox_pred = nn.Linear(fc_dim, 4 * num_classes)
        nn.init.normal_(self.cls_score.weight, std=cls_init_std)
        nn.init.normal_(self.bbox_pred.weight, std=bbox_init_std)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        """pooled (Tensor[K, C, h, w]) -> (class_logits Tensor[K, num_classes + 1], box_deltas Tensor[K, 4 num_classes])."""
        x = self.fc(pooled.flatten(1))  # (K, C*h*w) -> (K, fc_dim)
        return self.cls_score(x), self.bbox_pred(x)


class FastRCNN(nn.Module):
    """The Fast R-CNN detector, composed from a backbone body, an RoI pooling layer and a head.

    Args:
        body (nn.Module): images Tensor[N, 3, H, W] in [0, 1] -> features Tensor[N, C, H', W'].
        roi_pool (nn.Module): ``(features, rois Tensor[K, 5]) -> Tensor[K, C, h, w]``; its
            ``spatial_scale`` must be 1 / the body's stride (1/16 for VGG16 conv5_3).
        head (FastRCNNHead): fc6, fc7, cls_score, bbox_pred.
        box_means, box_stds (Tensor[num_classes, 4]): statistics of the training set's regression
            targets (:func:`~fastrcnn_lite.sampling.regression_target_stats`); training
            normalises the targets with them, detection un-normalises the predicted deltas.
            Stored as buffers, so they travel with the state dict. Default 0 and 1 (no normalisation).
        batch_size_per_image, positive_fraction, fg_iou_thresh, bg_iou_thresh_hi,
        bg_iou_thresh_lo: RoI sampling (section 2.3; see :func:`~fastrcnn_lite.sampling.sample_rois`).
        box_loss_weight: lambda of the multi-task loss (1).
        score_thresh, nms_thresh, detections_per_img: detection post-processing (section 3).
        test_scales, max_size, target_area: what :meth:`detect_image` uses when it is not told
            (:func:`build_fast_rcnn` sets them from ``cfg.test_scales``, the longer-side cap for
            them and ``cfg.pyramid_target_area``).

    Attributes:
        name: "Fast R-CNN" (the detector contract's name; "Fast R-CNN + SVD" for a compressed copy).
        info: training record (``fastrcnn_lite.detector.load_or_train`` fills the contract's keys).

    ``forward(images, proposals, targets=None)``:
        images: list of N Tensor[3, H_i, W_i] in [0, 1] (padded into one batch here), or one
            Tensor[N, 3, H, W].
        proposals: list of N Tensor[P_i, 4], (x1, y1, x2, y2) in the pixels of ``images``.
        targets: training only; list of N dicts with ``boxes`` (Tensor[G_i, 4], same pixels)
            and ``labels`` (Tensor[G_i] int64 in 1..num_classes).

    Returns:
        training: dict with ``loss_cls``, ``loss_box`` and ``loss`` (their weighted sum).
        evaluation: list of N dicts with ``boxes`` (Tensor[D, 4]), ``labels`` (Tensor[D] int64)
        and ``scores`` (Tensor[D]), in the pixels of ``images``.
    """

    name = "Fast R-CNN"

    def __init__(
        self,
        body: nn.Module,
        roi_pool: nn.Module,
        head: FastRCNNHead,
        box_means: Tensor | None = None,
        box_stds: Tensor | None = None,
        batch_size_per_image: int = 64,
        positive_fraction: float = 0.25,
        fg_iou_thresh: float = 0.5,
        bg_iou_thresh_hi: float = 0.5,
        bg_iou_thresh_lo: float = 0.1,
        box_loss_weight: float = 1.0,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.3,
        detections_per_img: int = 100,
        test_scales: tuple[int, ...] = (600,),
        max_size: int = 1000,
        target_area: float = 224 * 224,
    ):
        super().__init__()
        self.body = body
        self.roi_pool = roi_pool
        self.head = head
        k = head.num_classes
        means = (
            torch.zeros(k, 4)
            if box_means is None
            else torch.as_tensor(box_means, dtype=torch.float32)
        )
        stds = (
            torch.ones(k, 4) if box_stds is None else torch.as_tensor(box_stds, dtype=torch.float32)
        )
        if means.shape != (k, 4) or stds.shape != (k, 4):
            raise ValueError(
                f"box_means and box_stds must be Tensor[{k}, 4] (one row per foreground class); got "
                f"{tuple(means.shape)} and {tuple(stds.shape)}."
            )
        self.register_buffer("box_means", means.clone())
        self.register_buffer("box_stds", stds.clone())
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.fg_iou_thresh = fg_iou_thresh
        self.bg_iou_thresh_hi = bg_iou_thresh_hi
        self.bg_iou_thresh_lo = bg_iou_thresh_lo
        self.box_loss_weight = box_loss_weight
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.test_scales, self.max_size = tuple(test_scales), max_size
        self.target_area = target_area
        self.info: dict = {}

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def train(self, mode: bool = True) -> FastRCNN:
        """Training mode, except that frozen BatchNorm layers stay in eval mode.

        A layer below ``trainable_from`` is a fixed function (the paper freezes conv1 and conv2 of
        VGG16): a BatchNorm layer whose parameters are frozen keeps its pre-trained statistics.
        """
        super().train(mode)
        if mode:
            for m in self.body.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(
                    p.requires_grad for p in m.parameters()
                ):
                    m.eval()
        return self

    # --- input checks -------------------------------------------------------------------------
    def _check_inputs(self, images, proposals, targets) -> tuple[Tensor, list[tuple[int, int]]]:
        if isinstance(images, Tensor):
            if images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(
                    f"images must be Tensor[N, 3, H, W] or a list of Tensor[3, H, W]; got shape {tuple(images.shape)}."
                    + (" For one image use [image] or image[None]." if images.dim() == 3 else "")
                )
            batch, sizes = images, [tuple(images.shape[-2:])] * len(images)
        else:
            images = list(images)
            for i, im in enumerate(images):
                if not isinstance(im, Tensor) or im.dim() != 3 or im.shape[0] != 3:
                    got = tuple(im.shape) if isinstance(im, Tensor) else type(im).__name__
                    raise ValueError(f"images[{i}] must be Tensor[3, H, W] in [0, 1]; got {got}.")
            batch, sizes = batch_images(images), [tuple(im.shape[-2:]) for im in images]
        if isinstance(proposals, Tensor) or not isinstance(proposals, (list, tuple)):
            got = (
                f"a Tensor of shape {tuple(proposals.shape)}"
                if isinstance(proposals, Tensor)
                else type(proposals).__name__
            )
            raise TypeError(
                f"proposals must be a list of N = {len(sizes)} per-image Tensor[P_i, 4]; got {got}. "
                "For one image pass [proposals]; do not pass an RoI Tensor[K, 5] (the model makes it)."
            )
        if len(proposals) != len(sizes):
            raise ValueError(
                f"Got {len(sizes)} images but {len(proposals)} proposal tensors; pass one Tensor[P_i, 4] per image."
            )
        for i, p in enumerate(proposals):
            check_boxes(p, f"proposals[{i}]")
        if self.training:
            if targets is None:
                raise ValueError(
                    "In training mode FastRCNN needs targets (a list of dicts with 'boxes' and 'labels' per "
                    "image). For detections call model.eval() first."
                )
            if len(targets) != len(sizes):
                raise ValueError(
                    f"Got {len(sizes)} images but {len(targets)} targets; pass one dict per image."
                )
            for i, t in enumerate(targets):
                if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
                    raise ValueError(
                        f"targets[{i}] must be a dict with 'boxes' (Tensor[G, 4]) and 'labels' (Tensor[G])."
                    )
                check_boxes(t["boxes"], f"targets[{i}]['boxes']")
                labels = t["labels"]
                if labels.shape != (len(t["boxes"]),):
                    raise ValueError(
                        f"targets[{i}]['labels'] must be Tensor[{len(t['boxes'])}]; got shape {tuple(labels.shape)}."
                    )
                bad = labels[(labels < 1) | (labels > self.num_classes)]
                if len(bad):
                    raise ValueError(
                        f"targets[{i}]['labels'] must be in 1..{self.num_classes} (num_classes = {self.num_classes}; 0 is "
                        f"background and is assigned by the sampler); got {bad.tolist()}. Does the model's "
                        "num_classes match the dataset's classes?"
                    )
        return batch, sizes

    # --- shared parts -------------------------------------------------------------------------
    def class_outputs(
        self, features: Tensor, boxes_per_image: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        """RoI-pool each image's boxes from ``features`` (Tensor[N, C, H', W']) and run the head.

        Returns:
            (class_logits Tensor[K, num_classes + 1], box_deltas Tensor[K, 4 num_classes]).
        """
        pooled = self.pool(features, boxes_per_image)  # (K, C, h, w)
        return self.head(pooled)

    def pool(self, features: Tensor, boxes_per_image: list[Tensor]) -> Tensor:
        """RoI-pool each image's boxes from ``features``: Tensor[K, C, h, w].

        Under autocast (mixed precision, ``cfg.amp``) the body returns float16 features while the
        weights stay float32: pooling then runs in float32, as torchvision's ``roi_pool`` does
        under autocast. A max is exact in any dtype, and the RoI corners keep float32 precision
        (float16's spacing is 0.5 px between 512 and 1024 px, bfloat16's 4 px).
        """
        weight_dtype = self.head.cls_score.weight.dtype
        if features.dtype != weight_dtype and features.dtype in (torch.float16, torch.bfloat16):
            features = features.to(weight_dtype)
        rois = boxes_to_rois(boxes_per_image).to(features)  # (K, 5)
        return self.roi_pool(features, rois)  # (K, C, h, w)

    def postprocess(
        self,
        class_logits: Tensor,
        box_deltas: Tensor,
        proposals: Tensor,
        image_size: tuple[int, int],
    ) -> dict[str, Tensor]:
        """Softmax, un-normalise and decode per-class boxes, clip, threshold, per-class NMS, cap.

        Args:
            class_logits (Tensor[P, num_classes + 1]), box_deltas (Tensor[P, 4 num_classes]): head outputs
                for one image's ``proposals`` (Tensor[P, 4]).
            image_size: (height, width) of the image ``proposals`` are in, to clip to.
        """
        num_props, k = len(proposals), self.num_classes
        scores = F.softmax(class_logits, dim=1)  # (P, K + 1)
        deltas = box_deltas.reshape(num_props, k, 4) * self.box_stds + self.box_means  # (P, K, 4)
        boxes = decode_boxes(proposals, deltas.reshape(num_props, 4 * k))  # (P, 4K)
        return postprocess_detections(
            boxes.reshape(num_props, k, 4), scores[:, 1:], image_size,
            self.score_thresh, self.nms_thresh, self.detections_per_img,
        )  # fmt: skip

    def _empty_detections(self, device: torch.device) -> dict[str, Tensor]:
        return {
            "boxes": torch.zeros(0, 4, device=device),
            "labels": torch.zeros(0, dtype=torch.int64, device=device),
            "scores": torch.zeros(0, device=device),
        }

    # --- forward ------------------------------------------------------------------------------
    def forward(self, images, proposals: list[Tensor], targets: list[dict] | None = None):
        batch, sizes = self._check_inputs(images, proposals, targets)
        features = self.body(batch)  # (N, C, H', W')
        if self.training:
            return self._losses(features, proposals, targets)
        detections = []
        total = sum(len(p) for p in proposals)
        if total == 0:
            return [self._empty_detections(batch.device) for _ in proposals]
        # (K, num_classes + 1), (K, 4 num_classes), K = all images' proposals
        class_logits, box_deltas = self.class_outputs(features, list(proposals))
        counts = [len(p) for p in proposals]
        per_image = zip(
            proposals, class_logits.split(counts), box_deltas.split(counts), sizes, strict=True
        )
        for props, logits, deltas, size in per_image:
            if len(props) == 0:
                detections.append(self._empty_detections(batch.device))
            else:
                detections.append(self.postprocess(logits, deltas, props, size))
        return detections

    def _losses(
        self, features: Tensor, proposals: list[Tensor], targets: list[dict]
    ) -> dict[str, Tensor]:
        thresholds = (self.fg_iou_thresh, self.bg_iou_thresh_hi, self.bg_iou_thresh_lo)
        samples = [
            sample_rois(
                p,
                t["boxes"],
                t["labels"],
                self.batch_size_per_image,
                self.positive_fraction,
                *thresholds,
            )
            for p, t in zip(proposals, targets, strict=True)
        ]
        labels = torch.cat([s["labels"] for s in samples])  # (K,)
        if len(labels) == 0:
            zero = features.sum() * 0.0  # keeps the graph connected; no RoI, no gradient
            return {"loss_cls": zero, "loss_box": zero, "loss": zero}
        regression_targets = torch.cat([s["regression_targets"] for s in samples])  # (K, 4)
        fg = labels > 0
        means = self.box_means[(labels - 1).clamp(min=0)]  # (K, 4)
        stds = self.box_stds[(labels - 1).clamp(min=0)]  # (K, 4)
        regression_targets = torch.where(fg[:, None], (regression_targets - means) / stds, 0.0)
        class_logits, box_deltas = self.class_outputs(features, [s["boxes"] for s in samples])
        return fast_rcnn_loss(
            class_logits, box_deltas, labels, regression_targets, self.box_loss_weight
        )

    @torch.no_grad()
    def score_proposals(
        self,
        image: Tensor,
        proposals: Tensor,
        scales: tuple[int, ...] | None = None,
        max_size: int | None = None,
        target_area: float | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The network part of :meth:`detect_image`: resize, conv, RoI pool, head; no post-processing.

        The image is resized so its shorter side is each ``scale`` (longer side capped at
        ``max_size``). With several scales, every proposal is pooled from the one scale where
        its area is closest to ``target_area`` (224 x 224 in the paper), then all go through the
        head together. ``None`` means the model's own ``test_scales``, ``max_size``, ``target_area``.

        Args:
            image (Tensor[3, H, W]): in [0, 1], original pixels, on the model's device.
            proposals (Tensor[P, 4]): (x1, y1, x2, y2) in the original image's pixels, P >= 1.

        Returns:
            (class_logits Tensor[P, num_classes + 1], box_deltas Tensor[P, 4 num_classes]).
        """
        scales = self.test_scales if scales is None else tuple(scales)
        max_size = self.max_size if max_size is None else max_size
        target_area = self.target_area if target_area is None else target_area
        size = tuple(image.shape[-2:])
        factors = torch.tensor(
            [scale_factor(size, s, max_size) for s in scales], dtype=torch.float64
        )
        levels = pyramid_levels(proposals, factors, target_area)  # (P,)
        order, pooled = [], []
        for level, factor in enumerate(factors.tolist()):
            index = torch.where(levels == level)[0]
            if len(index) == 0:
                continue  # no RoI pools from this scale: skip its conv pass
            scaled_image, scaled_props = resize(
                image, proposals[index.to(proposals.device)], factor
            )
            features = self.body(scaled_image[None])  # (1, C, H', W')
            pooled.append(self.pool(features, [scaled_props]))  # (P_l, C, h, w)
            order.append(index)
        # Back into proposal order: (P, C, h, w).
        pooled_all = torch.empty(
            (len(proposals), *pooled[0].shape[1:]), device=pooled[0].device, dtype=pooled[0].dtype
        )
        pooled_all[torch.cat(order).to(pooled_all.device)] = torch.cat(pooled)
        return self.head(pooled_all)

    @torch.no_grad()
    def detect_image(
        self,
        image: Tensor,
        proposals: Tensor,
        scales: tuple[int, ...] | None = None,
        max_size: int | None = None,
        target_area: float | None = None,
    ) -> dict[str, Tensor]:
        """Detect objects in one image at one scale or with an image pyramid (section 5.2).

        :meth:`score_proposals`, then :meth:`postprocess`. Taught in ``notebooks/06_fast_rcnn.ipynb``.

        Args:
            image (Tensor[3, H, W]): in [0, 1], original pixels, on the model's device.
            proposals (Tensor[P, 4]): (x1, y1, x2, y2) in the original image's pixels.
            scales, max_size, target_area: see :meth:`score_proposals` (None: the model's own).

        Returns:
            dict with ``boxes`` (Tensor[D, 4], original pixels), ``labels``, ``scores``.
        """
        if self.training:
            raise RuntimeError("detect_image runs the detector: call model.eval() first.")
        if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
            got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"image must be one Tensor[3, H, W] in [0, 1]; got {got}.")
        check_boxes(proposals, "proposals")
        if len(proposals) == 0:
            return self._empty_detections(image.device)
        class_logits, box_deltas = self.score_proposals(
            image, proposals, scales, max_size, target_area
        )
        return self.postprocess(class_logits, box_deltas, proposals, tuple(image.shape[-2:]))


def build_fast_rcnn(
    cfg: Config,
    num_classes: int,
    backbone: Backbone | None = None,
    box_means: Tensor | None = None,
    box_stds: Tensor | None = None,
) -> FastRCNN:
    """Turn a (pre-trained) backbone into Fast R-CNN with ``cfg``'s settings (section 2.2).

    Args:
        cfg: sampling, loss, detection settings and ``trainable_from`` (layers below it are
            frozen: the paper trains VGG16 from conv3_1 up).
        num_classes: K foreground classes.
        backbone: the network to start from, e.g. ``pretrain.pretrained_backbone(cfg, train_ds)``;
            None builds ``cfg.backbone`` with random weights (the small one trains from scratch).
        box_means, box_stds: regression-target statistics (Tensor[K, 4]); see
            :func:`~fastrcnn_lite.sampling.regression_target_stats`.
    """
    if backbone is None:
        with torch.random.fork_rng():  # seeded initialisation, the caller's RNG left alone
            torch.manual_seed(cfg.seed)
            backbone = new_backbone(cfg.backbone, cfg.pool_size)
    if cfg.backbone != backbone.name:
        raise ValueError(
            f"cfg.backbone is {cfg.backbone!r} but the backbone passed in is {backbone.name!r}; "
            "make them agree (cfg.replace(backbone=...))."
        )
    freeze_below(backbone, cfg.trainable_from)
    # The pool size is fixed by fc6's input (C*h*w), so it comes from the backbone.
    roi_pool = RoIPool(tuple(backbone.pool_size), spatial_scale=1.0 / backbone.stride)
    head = FastRCNNHead(
        backbone.fc, backbone.fc_dim, num_classes, cfg.cls_init_std, cfg.bbox_init_std
    )
    return FastRCNN(
        backbone.body, roi_pool, head, box_means=box_means, box_stds=box_stds,
        batch_size_per_image=cfg.batch_size_per_image, positive_fraction=cfg.positive_fraction,
        fg_iou_thresh=cfg.fg_iou_thresh, bg_iou_thresh_hi=cfg.bg_iou_thresh_hi,
        bg_iou_thresh_lo=cfg.bg_iou_thresh_lo, box_loss_weight=cfg.box_loss_weight,
        score_thresh=cfg.score_thresh, nms_thresh=cfg.nms_thresh, detections_per_img=cfg.detections_per_img,
        test_scales=tuple(cfg.test_scales), max_size=max_size_for(cfg, tuple(cfg.test_scales)),
        target_area=cfg.pyramid_target_area,
    )  # fmt: skip


def detect(
    model: FastRCNN,
    dataset,
    proposals: list[Tensor],
    cfg: Config,
    progress: bool = True,
) -> tuple[list[dict[str, Tensor]], float]:
    """Run the detector over a dataset: the test procedure of section 3.

    Each image is scaled to ``cfg.test_scales`` (one scale, or a pyramid when there are
    several; cap ``cfg.max_size`` / ``cfg.multiscale_max_size``), its proposals go through
    the network and :meth:`FastRCNN.postprocess`.

    Args:
        model: a :class:`FastRCNN` (put in eval mode here).
        dataset: a :class:`~fastrcnn_lite.voc.VOCDataset` (``dataset[i] -> (image, target)``).
        proposals (list of Tensor[P_i, 4]): one per image, original pixels.

    Returns:
        (detections, seconds_per_image): one dict (``boxes``, ``labels``, ``scores``, on the CPU,
        original pixels) per image, and the mean wall-clock time per image of the network and
        post-processing (image decoding and proposals excluded, as in the paper's timings).
    """
    if len(proposals) != len(dataset):
        raise ValueError(
            f"Need one proposal tensor per image: {len(dataset)} images, {len(proposals)} proposal tensors."
        )
    device = next(model.parameters()).device
    model.eval()
    scales = tuple(cfg.test_scales)
    max_size = max_size_for(cfg, scales)
    detections, seconds = [], 0.0
    for i in tqdm(range(len(dataset)), desc="detect", disable=not progress):
        image = dataset[i][0].to(device)
        props = proposals[i].to(device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        try:
            det = model.detect_image(image, props, scales, max_size, cfg.pyramid_target_area)
        except torch.cuda.OutOfMemoryError as e:
            raise torch.cuda.OutOfMemoryError(OOM_HINT.format(where=f"detecting image {i}")) from e
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - start
        detections.append({k: v.cpu() for k, v in det.items()})
    return detections, seconds / max(len(dataset), 1)
