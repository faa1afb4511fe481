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
  (``fastrcnn_lite.sppnet_analysis.backward_cost`` measures it; Fast R-CNN section 2.3). Because
  the conv layers are frozen, the pyramid features of the training windows are fixed and are
  computed once (``fastrcnn_lite.sppnet_finetune``).
* The new fc6: the pre-trained fc6 takes one ``pool_size`` grid (the classification network's
  last pooling), not a pyramid. SPPnet pre-trained *with* the pyramid on ImageNet; here fc6 is
  rebuilt for ``C * sum(n*n)`` inputs, its weights for the level equal to ``pool_size`` copied
  from the pre-trained fc6 and zero for the other levels, so the network starts as the
  pre-trained one and fine-tuning learns to use the other levels (Gaussian init when no level
  matches, e.g. VGG16's 7x7 against levels (6, 3, 2, 1)): ``sppnet_finetune.spp_fc``.
* Disk: the conv map of every training image is cached (float16, one file per image) and the
  pyramids are pooled from it (``fastrcnn_lite.sppnet_cache``). SPPnet's caches were ~10x
  smaller than R-CNN's for this reason.
* SVMs and box regressors exactly as R-CNN's, from the same stage modules
  (``fastrcnn_lite.regions`` for the windows and the cache, ``fastrcnn_lite.region_heads`` for
  the heads' training and the detector, ``fastrcnn_lite.svm`` and ``fastrcnn_lite.ridge`` for the algorithms): SVMs on fc7,
  ridge on the pyramid features.

This module holds the detector (:class:`SPPNet`) and the training pipeline that chains the
stages (:func:`train_sppnet`, :func:`load_or_train_sppnet`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .backbones import Backbone, backbone_size, freeze_below, new_backbone
from .config import Config
from .pretrain import pretrained_backbone
from .region_heads import SVMDetector, train_heads
from .region_heads_cache import load_or_train
from .regions import check_proposals, resolve_max_proposals
from .ridge import BoxRegressors
from .roi_pool import SpatialPyramidPool
from .sppnet_cache import cached_pyramids, conv_map, extract_conv_features
from .sppnet_finetune import finetune_spp_fc, spp_fc
from .svm import LinearSVMs
from .transforms import pyramid_levels, scale_factor

__all__ = [
    "SPPNet",
    "train_sppnet",
    "load_or_train_sppnet",
    # Importable from here too (notebook 05, the comparison and the benchmark import spp_fc so):
    "spp_fc",  # sppnet_finetune.py
    "finetune_spp_fc",  # sppnet_finetune.py
    "extract_conv_features",  # sppnet_cache.py
]


# ----------------------------------------------------------------------------------------------
# The detector
# ----------------------------------------------------------------------------------------------
class SPPNet(SVMDetector):
    """The SPPnet detector: conv once per image -> spatial pyramid per proposal -> fc6, fc7 -> SVMs + ridge.

    Notebook 05 trains and tests it (through :func:`load_or_train_sppnet`); notebook 07 compares it.

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
                conv, factor = conv_map(self.backbone, image, scale, self.max_size)  # (C, H', W')
                pyramids = self.spp(conv[None], [boxes[rows] * factor])  # (P_s, C * sum n*n)
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

    No notebook: :func:`load_or_train_sppnet` calls it when the model cache has no SPPnet for
    the config (notebook 05 shows its stage times).

    Args:
        backbone: the pre-trained network (default :func:`~fastrcnn_lite.pretrain.pretrained_backbone`,
            not counted in the train time); it is copied and its conv layers frozen.
        finetune_iters: SGD iterations of the fc fine-tuning (default 600 for the small backbone).
        max_proposals_per_image: "auto" (default) or None: every proposal of every training image
            for the SVMs / regressors, as R-CNN (both train on the same regions); an int: a random
            subset of that many per image (:func:`~fastrcnn_lite.regions.resolve_max_proposals`).

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
    max_proposals = resolve_max_proposals(max_proposals_per_image)
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
            pyramids = cached_pyramids(spp, record)  # (G + P, C * sum n*n)
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

    Notebook 05 trains (or loads) its SPPnet with it.

    ``info`` as :func:`~fastrcnn_lite.rcnn.load_or_train_rcnn`'s: the detector contract's keys
    (``fastrcnn_lite.detector``) and ``loaded``. On the CPU, in eval mode.
    """
    # The model cache is keyed by the resolved value ("auto" = None = all proposals).
    max_proposals = resolve_max_proposals(max_proposals_per_image)
    return load_or_train(SPPNet, train_sppnet, cfg, train_ds, proposals, progress, backbone,
                         finetune_iters=finetune_iters, max_proposals_per_image=max_proposals)  # fmt: skip
