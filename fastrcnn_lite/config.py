"""One flat configuration for every system in the course, with the paper's defaults.

Data-flow stage: none; a ``Config`` is passed explicitly to the functions and constructors
that need it (no global config object). Every default below is Fast R-CNN's (Girshick 2015,
sections 2-4) unless the comment says otherwise. ``Config.embedded()`` is the small profile
that trains from scratch on the embedded dataset in minutes on two CPU cores; ``Config()`` is
the paper's setting for real PASCAL VOC.

The notebooks pick a profile from the environment variable ``FASTRCNN_PROFILE``
(``embedded``, the default, or ``full``): see :func:`profile_from_env`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Config", "PROFILES", "profile_from_env", "project_dir", "resolve_path"]

PROFILES = ("embedded", "full")


@dataclass
class Config:
    """Every setting of a run, one flat dataclass: ``Config()`` is the paper's setting,
    ``Config.embedded()`` the small profile. Notebook 00 gets one from :func:`profile_from_env`,
    as every notebook does.
    """

    # --- data -------------------------------------------------------------------------------
    data_root: str = "data/voc"  # folder that holds VOCdevkit/ (real VOC lives in data/voc)
    year: str = "2007"  # VOCdevkit/VOC<year>
    train_set: str = "trainval"  # ImageSets/Main/<train_set>.txt
    test_set: str = "test"  # ImageSets/Main/<test_set>.txt
    use_difficult: bool = False  # train on objects marked difficult? (the paper does not)

    # --- image scales (section 5.2) ------------------------------------------------------------
    scales: tuple[int, ...] = (600,)  # shorter side of a training image, one drawn per image
    max_size: int = 1000  # cap on the longer side
    test_scales: tuple[int, ...] = (600,)  # > 1 value = image pyramid at test time
    multiscale_scales: tuple[int, ...] = (480, 576, 688, 864, 1200)  # the paper's five scales
    multiscale_max_size: int = 2000  # longer-side cap when the five scales are used
    pyramid_target_area: int = 224 * 224  # each RoI is pooled at the scale closest to this area

    # --- proposals (R-CNN section 2.1) ---------------------------------------------------------
    proposal_mode: str = "fast"  # selective search mode: "fast" or "quality"
    proposals_per_image: int = 2000  # keep at most this many proposals per image
    proposal_min_size: int = 2  # drop proposals narrower/shorter than this (pixels)

    # --- network -----------------------------------------------------------------------------
    backbone: str = "vgg16"  # "small" (from scratch), "alexnet" (CaffeNet ~ S), "vgg16" (L)
    pool_size: tuple[int, int] = (7, 7)  # RoI pooling output h x w (7x7 for VGG16, 6x6 AlexNet)
    spp_levels: tuple[int, ...] = (6, 3, 2, 1)  # SPPnet pyramid levels (n x n bins each)
    trainable_from: str = "conv3_1"  # first trained layer; the paper freezes conv1/conv2 of VGG16
    cls_init_std: float = 0.01  # Gaussian std for cls_score weights
    bbox_init_std: float = 0.001  # Gaussian std for bbox_pred weights

    # --- hierarchical sampling (section 2.3) -------------------------------------------------
    images_per_batch: int = 2  # N images per SGD mini-batch
    batch_size_per_image: int = 64  # R / N RoIs per image (R = 128)
    positive_fraction: float = 0.25  # fraction of foreground RoIs in a mini-batch
    fg_iou_thresh: float = 0.5  # foreground: IoU with a gt box >= this
    bg_iou_thresh_hi: float = 0.5  # background: IoU in [bg_iou_thresh_lo, bg_iou_thresh_hi)
    bg_iou_thresh_lo: float = 0.1  # the lower bound acts as hard-example mining
    flip_prob: float = 0.5  # horizontal flip probability during training

    # --- multi-task loss (section 2.3) -------------------------------------------------------
    box_loss_weight: float = 1.0  # lambda in L = L_cls + lambda [u >= 1] L_loc
    normalize_targets: bool = True  # regression targets scaled to zero mean, unit variance

    # --- SGD (section 2.3) -------------------------------------------------------------------
    lr: float = 0.001  # base learning rate
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 0.0005  # L2 weight decay (not applied to biases)
    bias_lr_factor: float = 2.0  # biases learn at 2x the base lr
    max_iters: int = 40_000  # total SGD iterations (30k + 10k on VOC07)
    lr_steps: tuple[int, ...] = (30_000,)  # iterations at which lr is multiplied by lr_gamma
    lr_gamma: float = 0.1  # lr decay factor at each step
    seed: int = 0  # seeds sampling, flips and initialisation

    # --- detection (section 3) ---------------------------------------------------------------
    score_thresh: float = 0.05  # drop detections scoring below this
    nms_thresh: float = 0.3  # per-class NMS IoU threshold
    detections_per_img: int = 100  # keep at most this many detections per image
    svd_rank_fc6: int = 1024  # truncated SVD rank for fc6 (section 3.1)
    svd_rank_fc7: int = 256  # truncated SVD rank for fc7

    # --- R-CNN and SPPnet stages (R-CNN section 2.3, appendix B-C) ------------------------------
    warp_context: int = 16  # pixels of context around a proposal before warping
    finetune_fg_iou: float = 0.5  # R-CNN fine-tuning: positives have IoU >= this, the rest bg
    svm_neg_iou: float = 0.3  # SVM negatives: proposals with IoU < this with every gt of the class
    svm_C: float = 0.001  # SVM regularisation (R-CNN's value)
    svm_hard_negative_rounds: int = 3  # passes of hard-negative mining
    bbox_reg_iou: float = 0.6  # ridge regressors train on proposals with IoU > this
    ridge_lambda: float = 1000.0  # ridge regression penalty (R-CNN's value)

    # --- bookkeeping -------------------------------------------------------------------------
    cache_dir: str = "data/cache"  # proposals, R-CNN feature caches and trained models
    device: str = "auto"  # "auto" picks cuda when available
    amp: bool = False  # mixed precision (float16 autocast + loss scaling) on CUDA; refused on CPU
    num_workers: int = 2  # processes for proposals / data loading

    @classmethod
    def embedded(cls, **overrides) -> Config:
        """The small profile: the embedded dataset, a small backbone trained from scratch.

        Differences from the paper's setting, and why: images are ~200 px, so the scales are
        the native size; a from-scratch network needs a larger lr and fewer iterations; far
        fewer proposals exist on simple images. Fast R-CNN fine-tunes from conv3, as the paper
        fine-tunes VGG16 from conv3_1 (section 4.5): measured on the embedded test split after
        1500 iterations, VOC07 mAP 0.614 training from conv1, 0.649 from conv2, 0.656 from
        conv3, and each frozen layer makes an iteration cheaper.
        """
        small = dict(
            data_root="data/embedded",
            year="2007",
            train_set="trainval",
            test_set="test",
            scales=(192,),
            max_size=256,
            test_scales=(192,),
            multiscale_scales=(160, 192, 224),
            multiscale_max_size=320,
            pyramid_target_area=48 * 48,
            proposals_per_image=500,
            backbone="small",
            pool_size=(5, 5),
            spp_levels=(5, 3, 2, 1),
            trainable_from="conv3",
            lr=0.01,
            max_iters=1500,
            lr_steps=(1100,),
            svd_rank_fc6=64,
            svd_rank_fc7=32,
            warp_context=4,
        )
        small.update(overrides)
        return cls(**small)

    def replace(self, **changes) -> Config:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


def profile_from_env(default: str = "embedded") -> tuple[str, Config]:
    """The profile the notebooks run: ``FASTRCNN_PROFILE`` = ``embedded`` (default) or ``full``.

    Notebook 00 starts with it, as every notebook does.

    Returns:
        (name, config): ``Config.embedded()`` or ``Config()``.
    """
    name = os.environ.get("FASTRCNN_PROFILE", default).strip().lower()
    if name not in PROFILES:
        raise ValueError(f"FASTRCNN_PROFILE must be one of {PROFILES}; got {name!r}.")
    return name, (Config.embedded() if name == "embedded" else Config())


def project_dir() -> Path:
    """The folder that relative paths in a Config (``data_root``, ``cache_dir``) are relative to.

    Notebook 00 finds the shared data with it; notebook 01 too.

    ``FASTRCNN_HOME`` if set; otherwise the nearest folder at or above the current directory
    that holds ``pyproject.toml`` and ``fastrcnn_lite/`` (the repository, also from
    ``notebooks/``); otherwise the current directory.
    """
    if os.environ.get("FASTRCNN_HOME"):
        return Path(os.environ["FASTRCNN_HOME"]).expanduser().resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "fastrcnn_lite").is_dir():
            return folder
    return here


def resolve_path(path: str | Path) -> Path:
    """``path`` itself if absolute, else ``project_dir() / path``.

    Notebook 01 finds the proposal cache with it; notebook 08 the data.
    """
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_dir() / path
