"""Fast R-CNN: one conv pass per image, RoI pooling, fc6/fc7 and two sibling output layers.

Data-flow stage: **backbone feature map -> region features (RoI pool) -> heads -> losses /
detections**. Implements paper sections 2 and 3 (Fig. 1)::

    images Tensor[N, 3, H, W] --body--> features Tensor[N, C, H/s, W/s]
    proposals (per image) --boxes_to_rois--> rois Tensor[R, 5]    (R: the RoIs of all N images)
    (features, rois) --RoIPool(h x w, 1/s)--> pooled Tensor[R, C, h, w]
    pooled --fc6, fc7--> Tensor[R, fc_dim] --cls_score--> class_logits Tensor[R, K + 1]
                                           --bbox_pred--> box_deltas  Tensor[R, 4K]

Training (``model.train()``): ``forward(images, proposals, targets)`` samples RoIs (section
2.3, :mod:`fastrcnn_lite.sampling`) and returns the multi-task loss
(:mod:`fastrcnn_lite.losses`). Evaluation (``model.eval()``): the same call without targets
returns detections: softmax scores, per-class box decoding, clipping, per-class NMS at 0.3, a
score threshold and a per-image cap (section 3).

The network is composed from the parts passed in (``FastRCNN(body, roi_pool, head)``; the head
is ``fastrcnn_lite.fast_rcnn_head``, the checks of the inputs ``fastrcnn_lite.fast_rcnn_inputs``);
:func:`build_fast_rcnn` wires them from a :class:`~fastrcnn_lite.config.Config` and a
:class:`~fastrcnn_lite.backbones.Backbone`, applying the paper's three transformations of a
pre-trained network (section 2.2): pool5 -> RoI pooling, fc8 -> the two sibling layers,
inputs -> (images, RoIs).

Scale invariance (section 5.2) at test time: :meth:`FastRCNN.detect_image` with several scales
builds an image pyramid and pools each RoI at the scale where its area is closest to
``target_area`` (224 x 224 pixels in the paper). ``fastrcnn_lite.fast_rcnn_run.detect`` runs it
over a dataset and times it (it, ``resolve_device``, ``max_size_for`` and ``OOM_HINT`` live there
and are importable from here too).

A :class:`FastRCNN` is a detector of the contract in ``fastrcnn_lite.detector`` (``name``,
``info``, ``.to(device)``, ``detect_image(image, proposals)`` at its own test scales,
``score_proposals``), like R-CNN's and SPPnet's, so the comparison loops over all of them alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import Backbone, freeze_below, new_backbone
from .boxes import boxes_to_rois, check_boxes, decode_boxes
from .config import Config
from .detect import postprocess_detections
from .fast_rcnn_head import FastRCNNHead
from .fast_rcnn_inputs import check_inputs
from .fast_rcnn_run import OOM_HINT, detect, max_size_for, resolve_device
from .losses import fast_rcnn_loss
from .roi_pool import RoIPool
from .sampling import sample_rois
from .transforms import pyramid_levels, resize, scale_factor

__all__ = [
    "FastRCNN",
    "build_fast_rcnn",
    # Importable from here too (notebooks 06 and 08, training and the tests import them so):
    "FastRCNNHead",  # fast_rcnn_head.py
    "pyramid_levels",  # transforms.py
    "detect",  # fast_rcnn_run.py, with max_size_for, resolve_device and OOM_HINT
    "max_size_for",
    "resolve_device",
    "OOM_HINT",
]


class FastRCNN(nn.Module):
    """The Fast R-CNN detector, composed from a backbone body, an RoI pooling layer and a head.

    Notebook 06 builds, trains and tests it (notebooks 07 and 08 compare and train it on VOC).

    Args:
        body (nn.Module): images Tensor[N, 3, H, W] in [0, 1] -> features Tensor[N, C, H', W'].
        roi_pool (nn.Module): ``(features, rois Tensor[R, 5]) -> Tensor[R, C, h, w]``; its
            ``spatial_scale`` must be 1 / the body's stride (1/16 for VGG16 conv5_3).
        head (FastRCNNHead): fc6, fc7, cls_score, bbox_pred.
        box_means, box_stds (Tensor[K, 4]): statistics of the training set's regression
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
            and ``labels`` (Tensor[G_i] int64 in 1..K, K = ``num_classes``).

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
        self.body, self.roi_pool, self.head = body, roi_pool, head
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
        # RoI sampling and the loss (section 2.3)
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.fg_iou_thresh, self.bg_iou_thresh_hi = fg_iou_thresh, bg_iou_thresh_hi
        self.bg_iou_thresh_lo, self.box_loss_weight = bg_iou_thresh_lo, box_loss_weight
        # detection (section 3) and its default test scales (section 5.2)
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
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

    # --- shared parts -------------------------------------------------------------------------
    def class_outputs(
        self, features: Tensor, boxes_per_image: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        """RoI-pool each image's boxes from ``features`` (Tensor[N, C, H', W']) and run the head.

        Returns:
            (class_logits Tensor[R, K + 1], box_deltas Tensor[R, 4K]), R = all images' boxes.
        """
        pooled = self.pool(features, boxes_per_image)  # (R, C, h, w)
        return self.head(pooled)

    def pool(self, features: Tensor, boxes_per_image: list[Tensor]) -> Tensor:
        """RoI-pool each image's boxes from ``features``: Tensor[R, C, h, w].

        Under autocast (mixed precision, ``cfg.amp``) the body returns float16 features while the
        weights stay float32: pooling then runs in float32, as torchvision's ``roi_pool`` does
        under autocast. A max is exact in any dtype, and the RoI corners keep float32 precision
        (float16's spacing is 0.5 px between 512 and 1024 px, bfloat16's 4 px).
        """
        weight_dtype = self.head.cls_score.weight.dtype
        if features.dtype != weight_dtype and features.dtype in (torch.float16, torch.bfloat16):
            features = features.to(weight_dtype)
        rois = boxes_to_rois(boxes_per_image).to(features)  # (R, 5)
        return self.roi_pool(features, rois)  # (R, C, h, w)

    def postprocess(
        self,
        class_logits: Tensor,
        box_deltas: Tensor,
        proposals: Tensor,
        image_size: tuple[int, int],
    ) -> dict[str, Tensor]:
        """Softmax, un-normalise and decode per-class boxes, clip, threshold, per-class NMS, cap.

        Args:
            class_logits (Tensor[P, K + 1]), box_deltas (Tensor[P, 4K]): head outputs
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
        batch, sizes = check_inputs(images, proposals, targets, self.num_classes, self.training)
        features = self.body(batch)  # (N, C, H', W')
        if self.training:
            return self._losses(features, proposals, targets)
        detections = []
        total = sum(len(p) for p in proposals)
        if total == 0:
            return [self._empty_detections(batch.device) for _ in proposals]
        # (R, K + 1), (R, 4K), R = all images' proposals
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
        labels = torch.cat([s["labels"] for s in samples])  # (R,)
        if len(labels) == 0:
            zero = features.sum() * 0.0  # keeps the graph connected; no RoI, no gradient
            return {"loss_cls": zero, "loss_box": zero, "loss": zero}
        regression_targets = torch.cat([s["regression_targets"] for s in samples])  # (R, 4)
        fg = labels > 0
        means = self.box_means[(labels - 1).clamp(min=0)]  # (R, 4)
        stds = self.box_stds[(labels - 1).clamp(min=0)]  # (R, 4)
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
            (class_logits Tensor[P, K + 1], box_deltas Tensor[P, 4K]).
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
            # channels-last, as SPPnet's conv_map and R-CNN's crops: oneDNN's fast layout for
            # conv layers (VGG16 on 600 x 800, 2 cores: 1.27 s in NCHW, 0.85 s channels-last)
            scaled = scaled_image[None].contiguous(memory_format=torch.channels_last)
            features = self.body(scaled)  # (1, C, H', W')
            pooled.append(self.pool(features, [scaled_props]))  # (P_l, C, h, w)
            order.append(index)
        if len(pooled) == 1:  # one scale pooled every proposal, in order (torch.where sorts)
            return self.head(pooled[0])
        # Back into proposal order: (P, C, h, w).
        stacked = torch.cat(pooled)
        index = torch.cat(order).to(stacked.device)
        return self.head(torch.empty_like(stacked).index_copy_(0, index, stacked))

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

    Notebook 06 builds its Fast R-CNN with it.

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
