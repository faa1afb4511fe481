"""Test-time speed of R-CNN, SPPnet and Fast R-CNN with the same backbone and the same proposals.

    python -m fastrcnn_lite.bench detectors                      # VGG16, scale 600, 2000 proposals
    python -m fastrcnn_lite.bench detectors --backbone alexnet   # the paper's model S (CaffeNet)
    python -m fastrcnn_lite.bench detectors --backbone small --proposals 50 --images 1 --repeats 1

Data-flow stage: **region features -> heads** of the three systems, side by side (Fast R-CNN
section 4.3 and Table 4: "test time per image, excluding proposals"; R-CNN 47 s, SPPnet 2.3 s,
Fast R-CNN 0.32 s, 0.22 s with truncated SVD, VGG16 on a GPU: 146x and 213x R-CNN's speed).
What is timed, per image, from an image already at the test scale and its P proposals (the
proposals themselves are not timed, as in the paper) up to class scores and box deltas: the
``score_proposals`` of the real detectors (``fastrcnn_lite.detector``'s contract: ``RCNN``,
``SPPNet``, ``FastRCNN`` and its truncated SVD), built with random weights:

    R-CNN       warp each proposal (with context) to input_size^2 -> whole CNN (conv + fc6, fc7)
                per proposal -> SVM scores + class-specific ridge box regression
    SPPnet      conv layers once -> spatial pyramid pooling (levels 6,3,2,1) per proposal
                -> fc6, fc7 -> SVM scores + ridge box regression
    Fast R-CNN  conv layers once -> RoI pooling (7x7 for VGG16) per proposal -> fc6, fc7
                -> cls_score + softmax, bbox_pred
    + SVD       the same, fc6 and fc7 replaced by their truncated SVD (ranks 1024 and 256)

Box decoding and per-class NMS (``detect_image``) cost the same for the three and are not timed.
The weights are random (no ImageNet weights offline; speed does not depend on them), or the
course's trained models (``models``, notebook 07, also at :func:`paper_geometry`); the images are
embedded-dataset images stretched to a VOC photo's shape at the test scale (600 x 800: the
detectors' own resize is a no-op); the proposals are random boxes spread like selective search's
(``fastrcnn_lite.experiments.workloads.proposal_like_boxes``). R-CNN is timed on ``--rcnn-sample`` of the
proposals and its time scaled linearly to P (its cost is P independent forward passes); the
output says so. Each figure is ``fastrcnn_lite.timing``'s: the median over the (image, repeat)
pairs, the systems interleaved image by image, synchronised on CUDA. The multiply-accumulate
count (MACs) of each system is counted with forward hooks on the first image (that pass is the
warm-up), so the measured speedups can be checked against the arithmetic. The last line is
``speedup over R-CNN: fast_rcnn <x>x, fast_rcnn_svd <y>x, sppnet <z>x``.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones import Backbone, new_backbone
from ..config import Config
from ..detector import Detector, with_svd
from ..embedded import render_image
from ..fast_rcnn import build_fast_rcnn
from ..rcnn import RCNN
from ..region_heads import SVMDetector
from ..ridge import BoxRegressors
from ..roi_pool import SpatialPyramidPool
from ..sppnet import SPPNet, spp_fc
from ..svm import LinearSVMs
from ..timing import time_per_image
from ..train import DEFAULT_TRAINABLE_FROM
from .workloads import proposal_like_boxes

__all__ = [
    "BACKBONES",
    "build_detectors",
    "count_macs",
    "mac_budget",
    "format_mac_budget",
    "bench_detectors",
    "speedup_line",
]

BACKBONES = ("vgg16", "alexnet", "small")
NUM_CLASSES = 20  # PASCAL VOC
SYSTEM_KEYS = ("rcnn", "sppnet", "fast_rcnn", "fast_rcnn_svd")
SYSTEM_NAMES = {
    "rcnn": "R-CNN",
    "sppnet": "SPPnet",
    "fast_rcnn": "Fast R-CNN",
    "fast_rcnn_svd": "Fast R-CNN + SVD",
}


def _profile(backbone: str) -> Config:
    """The config whose settings (warp context, SPP levels, SVD ranks) go with a backbone."""
    if backbone == "small":
        return Config.embedded()
    return Config(backbone=backbone, trainable_from=DEFAULT_TRAINABLE_FROM[backbone])


def _random_heads(
    svm_dim: int, ridge_dim: int, num_classes: int, generator: torch.Generator
) -> tuple[LinearSVMs, BoxRegressors]:
    """SVMs on ``svm_dim`` features and ridge regressors on ``ridge_dim`` features, random weights."""
    svms = LinearSVMs(torch.randn(num_classes, svm_dim, generator=generator) * 0.01, torch.zeros(num_classes), 1.0,
                      torch.ones(num_classes, dtype=torch.bool))  # fmt: skip
    regressors = BoxRegressors(torch.randn(num_classes, ridge_dim, 4, generator=generator) * 0.001,
                               torch.zeros(num_classes, 4), 1.0, torch.ones(num_classes, dtype=torch.long))  # fmt: skip
    return svms, regressors


def _head_macs(detector: Detector) -> int:
    """Multiply-accumulates per proposal of the SVMs and ridge regressors (matrix products, not
    ``nn.Linear``, so :func:`count_macs` does not see them); 0 for Fast R-CNN."""
    if not isinstance(detector, SVMDetector):
        return 0
    svms, regressors = detector.svms, detector.box_regressors
    return svms.weight.numel() + regressors.weight.numel()  # K F_svm + K F_ridge 4


def build_detectors(
    backbone: str = "vgg16",
    num_classes: int = NUM_CLASSES,
    svd_ranks: tuple[int, int] | None = None,
    rcnn_batch: int = 32,
    device: str | torch.device = "cpu",
    seed: int = 0,
    scale: int = 600,
    max_size: int = 1000,
) -> dict[str, Detector]:
    """The four detectors with random weights, one backbone each: ``RCNN``, ``SPPNet``,
    ``FastRCNN`` and its truncated SVD, on ``device``, in eval mode.

    No notebook: :func:`bench_detectors` (notebook 07 runs it) and the tests build them.

    Their ``score_proposals(image, proposals)`` take ``image`` (Tensor[3, height, width] in
    [0, 1]) and ``proposals`` (Tensor[P, 4] in its pixels) and return ``(scores Tensor[P, K]
    (R-CNN, SPPnet: SVM margins) or class_logits Tensor[P, K + 1] (Fast R-CNN), box_deltas
    Tensor[P, 4K])``. The four get separate copies of the same random network (seeded with
    ``seed``); Fast R-CNN + SVD is the truncated SVD of Fast R-CNN's fc6 and fc7.

    Args:
        backbone: "vgg16" (L), "alexnet" (S) or "small" (the course's).
        num_classes: K (20 for VOC).
        svd_ranks: (fc6, fc7) ranks of the truncated SVD; default 1024 / 256 (the paper's, for
            4096-wide fc layers) or the embedded profile's 64 / 32 for the small backbone.
        rcnn_batch: warped crops per R-CNN forward pass.
        scale, max_size: the test scale (shorter side) and the longer-side cap of SPPnet and
            Fast R-CNN; an image already at that scale is not resized.

    Returns:
        {"rcnn", "sppnet", "fast_rcnn", "fast_rcnn_svd": the detector}.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}; got {backbone!r}.")
    cfg = _profile(backbone).replace(test_scales=(scale,), max_size=max_size)
    if svd_ranks is not None:
        cfg = cfg.replace(svd_rank_fc6=svd_ranks[0], svd_rank_fc7=svd_ranks[1])
    gen = torch.Generator().manual_seed(seed)
    classes = tuple(f"class {k}" for k in range(1, num_classes + 1))

    def network() -> Backbone:  # the same random weights for every system
        torch.manual_seed(seed)
        return new_backbone(backbone, cfg.pool_size)

    # R-CNN: the whole network on every warped proposal, SVMs on fc7, ridge on pool5.
    rcnn_backbone = network()
    pool5_dim = rcnn_backbone.out_channels * rcnn_backbone.pool_size[0] * rcnn_backbone.pool_size[1]
    rcnn_heads = _random_heads(rcnn_backbone.fc_dim, pool5_dim, num_classes, gen)
    rcnn = RCNN(rcnn_backbone, *rcnn_heads, classes, cfg.warp_context, batch_size=rcnn_batch)
    # SPPnet: conv once, a spatial pyramid per proposal, fc6 (for the pyramid), fc7, SVMs, ridge.
    spp_backbone = network()
    pyramid_dim = spp_backbone.out_channels * SpatialPyramidPool(cfg.spp_levels).num_bins
    spp_heads = _random_heads(spp_backbone.fc_dim, pyramid_dim, num_classes, gen)
    sppnet = SPPNet(spp_backbone, spp_fc(spp_backbone, cfg.spp_levels), *spp_heads, classes,
                    cfg.spp_levels, (scale,), max_size, cfg.pyramid_target_area)  # fmt: skip
    # Fast R-CNN: conv once, RoI pooling, fc6, fc7, the two sibling layers; and its SVD twin.
    fast = build_fast_rcnn(cfg, num_classes, network()).eval()
    detectors = {
        "rcnn": rcnn,
        "sppnet": sppnet,
        "fast_rcnn": fast,
        "fast_rcnn_svd": with_svd(fast, cfg),
    }
    return {key: detector.to(device).eval() for key, detector in detectors.items()}


@contextmanager
def count_macs():
    """Count the multiply-accumulates of every ``nn.Conv2d`` and ``nn.Linear`` run inside the block.

    Yields a dict whose ``"macs"`` entry grows as modules run (global forward hooks). Matrix
    products outside modules (the SVMs, the ridge regressors) are not counted.

    No notebook: :func:`mac_budget` and :func:`bench_detectors` count with it.
    """
    counter = {"macs": 0}

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            counter["macs"] += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            counter["macs"] += output.numel() * module.in_features

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()


def mac_budget(
    backbone: Backbone,
    image_size: tuple[int, int],
    proposals: int,
    svd_ranks: tuple[int, int],
    spp_levels: tuple[int, ...] = (6, 3, 2, 1),
) -> dict[str, int]:
    """Multiply-accumulates per image of each system's conv and fc layers, by arithmetic.

    Notebook 07 prints this budget next to the measured times.

    R-CNN = P (conv on an ``input_size`` crop + fc6 + fc7); Fast R-CNN = conv on the whole image
    + P (fc6 + fc7); with SVD each fc layer costs t (u + v) instead of u v; SPPnet = conv on the
    image + P (fc6 on the pyramid + fc7). The conv MACs are counted with :func:`count_macs` on
    PyTorch's ``meta`` device (shapes only: instant, even for VGG16 on 600 x 800). The heads
    (SVMs, ridge, cls_score, bbox_pred) and RoI pooling are left out: they are small.

    Args:
        backbone: its ``body`` and ``fc`` (fc6, fc7 as the first two ``nn.Linear``) are measured.
        image_size: (height, width) of the test image, at the test scale.
        proposals: P.
        svd_ranks: (t6, t7) of the truncated SVD.
        spp_levels: SPPnet's pyramid (fc6 reads ``C * sum(n * n)`` numbers).

    Returns:
        dict with ``conv_crop``, ``conv_image``, ``fc`` (fc6 + fc7 per region), ``fc_svd``,
        ``fc_spp``, and per image ``rcnn``, ``sppnet``, ``fast_rcnn``, ``fast_rcnn_svd``.
    """
    fc6, fc7 = [m for m in backbone.fc.modules() if isinstance(m, nn.Linear)][:2]

    def conv(height: int, width: int) -> int:
        body = copy.deepcopy(backbone.body).to("meta")
        with torch.device("meta"), count_macs() as counter:
            body(torch.zeros(1, 3, height, width))
        return counter["macs"]

    t6, t7 = svd_ranks
    budget = {
        "conv_crop": conv(backbone.input_size, backbone.input_size),
        "conv_image": conv(*image_size),
        "fc": fc6.in_features * fc6.out_features + fc7.in_features * fc7.out_features,
        "fc_svd": t6 * (fc6.in_features + fc6.out_features)
        + t7 * (fc7.in_features + fc7.out_features),
        "fc_spp": backbone.out_channels * sum(n * n for n in spp_levels) * fc6.out_features
        + fc7.in_features * fc7.out_features,
    }
    budget["rcnn"] = proposals * (budget["conv_crop"] + budget["fc"])
    budget["sppnet"] = budget["conv_image"] + proposals * budget["fc_spp"]
    budget["fast_rcnn"] = budget["conv_image"] + proposals * budget["fc"]
    budget["fast_rcnn_svd"] = budget["conv_image"] + proposals * budget["fc_svd"]
    return budget


def format_mac_budget(budget: dict[str, int], crop: int, image_size: tuple[int, int]) -> str:
    """A few lines that read a :func:`mac_budget`: per-region costs, per-image totals, ratios.

    Notebook 07 prints them."""
    b = budget
    return "\n".join([
        f"  conv layers: {b['conv_crop'] / 1e9:.3f} GMAC on a {crop}x{crop} crop, {b['conv_image'] / 1e9:.2f} GMAC "
        f"on the {image_size[0]}x{image_size[1]} image",
        f"  fc6 + fc7 per region: {b['fc'] / 1e6:.1f} MMAC ({b['fc_svd'] / 1e6:.1f} with SVD, "
        f"{b['fc_spp'] / 1e6:.1f} for SPPnet's wider fc6)",
        f"  per image: R-CNN {b['rcnn'] / 1e9:.1f} GMAC, SPPnet {b['sppnet'] / 1e9:.1f}, "
        f"Fast R-CNN {b['fast_rcnn'] / 1e9:.1f}, with SVD {b['fast_rcnn_svd'] / 1e9:.1f}",
        f"  MAC ratio over R-CNN: Fast R-CNN {b['rcnn'] / b['fast_rcnn']:.0f}x, with SVD "
        f"{b['rcnn'] / b['fast_rcnn_svd']:.0f}x, SPPnet {b['rcnn'] / b['sppnet']:.0f}x",
    ])  # fmt: skip


def speedup_line(seconds: dict[str, float]) -> str:
    """``speedup over R-CNN: fast_rcnn <x>x, fast_rcnn_svd <y>x, sppnet <z>x`` from seconds per image.

    No notebook: the last line of ``python -m fastrcnn_lite.bench detectors``."""
    missing = [k for k in SYSTEM_KEYS if k not in seconds]
    if missing:
        raise ValueError(
            f"seconds must have an entry for each of {SYSTEM_KEYS}; missing {missing}."
        )
    ratio = {k: seconds["rcnn"] / seconds[k] for k in SYSTEM_KEYS}
    return (
        f"speedup over R-CNN: fast_rcnn {ratio['fast_rcnn']:.1f}x, fast_rcnn_svd {ratio['fast_rcnn_svd']:.1f}x, "
        f"sppnet {ratio['sppnet']:.1f}x"
    )


VOC_ASPECT = 4 / 3  # width / height of a typical VOC photo (500 x 375): 600 x 800 at scale 600


def _at_test_scale(detector: Detector, scale: int, max_size: int) -> Detector:
    """A shallow copy of a trained detector (the same modules and heads) that tests at one
    ``scale`` with ``max_size``: R-CNN warps proposals and has no test scale."""
    copied = copy.copy(detector)
    for name in ("test_scales", "scales"):  # FastRCNN, SPPNet
        if hasattr(copied, name):
            setattr(copied, name, (scale,))
    if hasattr(copied, "max_size"):
        copied.max_size = max_size
    return copied


def _test_images(count: int, scale: int, max_size: int, device: torch.device) -> list[Tensor]:
    """``count`` embedded-dataset images (drawn in memory, not read from disk), stretched to the
    shape of a typical VOC photo at the test scale: ``scale`` x ``min(4/3 scale, max_size)``."""
    size = (scale, min(round(scale * VOC_ASPECT), max_size))  # (height, width): 600 x 800
    images = []
    for i in range(count):
        array, _ = render_image(0, "test", i)  # (height, width, 3) uint8
        image = torch.from_numpy(array).permute(2, 0, 1).float()[None] / 255  # (1, 3, ...)
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        images.append(image[0].to(device))  # (3, *size)
    return images


def bench_detectors(
    backbone: str = "vgg16",
    proposals: int = 2000,
    scale: int = 600,
    max_size: int = 1000,
    images: int = 2,
    rcnn_sample: int = 64,
    repeats: int = 3,
    rcnn_batch: int = 32,
    device: str = "cpu",
    svd_ranks: tuple[int, int] | None = None,
    print_fn=print,
    models: dict[str, Detector] | None = None,
) -> dict:
    """Time the four test-time forwards; print a table; return the figures.

    Notebook 07 runs it (the command ``python -m fastrcnn_lite.bench detectors`` too).

    ``models``: the trained detectors to time, {"rcnn", "sppnet", "fast_rcnn", "fast_rcnn_svd":
    detector} (all with ``backbone``), instead of random weights; each is tested at ``scale``
    and ``max_size`` (a shallow copy: the model itself is not changed).

    Returns:
        dict with ``seconds`` ({system key: median seconds per image}), ``speedup`` (R-CNN's
        seconds / each), ``macs`` ({system key: multiply-accumulates per image}), ``rcnn_scale``
        (P / the R-CNN sample) and ``line`` (the final speedup line).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}; got {backbone!r}.")
    for name, value, low in (("proposals", proposals, 1), ("images", images, 1), ("repeats", repeats, 1),
                             ("rcnn_sample", rcnn_sample, 1), ("scale", scale, 16), ("rcnn_batch", rcnn_batch, 1)):  # fmt: skip
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")
    if max_size < scale:
        raise ValueError(f"max_size ({max_size}) must be >= scale ({scale}).")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' asked for, but no CUDA device is available here; use --device cpu."
        )
    cfg = _profile(backbone)
    ranks = svd_ranks or (cfg.svd_rank_fc6, cfg.svd_rank_fc7)
    if models is None:
        detectors = build_detectors(
            backbone, NUM_CLASSES, ranks, rcnn_batch, dev, scale=scale, max_size=max_size
        )
    else:
        missing = [key for key in SYSTEM_KEYS if key not in models]
        if missing:
            raise ValueError(
                f"models must have a detector for each of {SYSTEM_KEYS}; missing {missing}."
            )
        detectors = {key: _at_test_scale(models[key], scale, max_size) for key in SYSTEM_KEYS}
    weights = (
        "RANDOM weights (speed does not depend on them)" if models is None else "the TRAINED models"
    )
    classes = len(detectors["rcnn"].classes) if models is not None else NUM_CLASSES
    test_images = _test_images(images, scale, max_size, dev)
    boxes = [
        proposal_like_boxes(proposals, tuple(im.shape[1:]), seed=i).to(dev)
        for i, im in enumerate(test_images)
    ]
    sample = min(rcnn_sample, proposals)
    pick = torch.randperm(proposals, generator=torch.Generator().manual_seed(0))[:sample].to(dev)
    rcnn_scale = proposals / sample
    forwards = {key: detector.score_proposals for key, detector in detectors.items()}
    forwards["rcnn"] = lambda image, props: detectors["rcnn"].score_proposals(image, props[pick])

    height, width = test_images[0].shape[1:]
    print_fn(
        f"Detector test-time forward: {backbone} backbone with {weights}, "
        f"{classes} classes, {images} embedded image(s) stretched to a VOC photo's {height}x{width} (scale {scale}, max {max_size}), "
        f"{proposals} random proposals per image; {dev.type}"
        + (f" ({torch.get_num_threads()} threads)" if dev.type == "cpu" else "")
        + f", torch {torch.__version__}."
    )
    print_fn(
        "Timed: each detector's score_proposals, from the image at the test scale and its proposals to class "
        "scores and box deltas. Not timed: proposals, box decoding, per-class NMS (the same for all)."
    )
    if sample < proposals:
        print_fn(
            f"R-CNN is timed on {sample} of the {proposals} proposals per image and scaled linearly (x{rcnn_scale:g})."
        )

    macs = {}
    with torch.inference_mode():
        for key in SYSTEM_KEYS:  # one untimed pass each: warm-up and MAC count
            with count_macs() as counter:
                forwards[key](test_images[0], boxes[0])
            heads = _head_macs(detectors[key]) * (sample if key == "rcnn" else proposals)
            macs[key] = (counter["macs"] + heads) * (rcnn_scale if key == "rcnn" else 1)
        # interleaved image by image: background load spreads over the systems
        seconds = time_per_image(forwards, list(zip(test_images, boxes, strict=True)), repeats=repeats,
                                 warmup=0, device=dev)  # fmt: skip
    seconds["rcnn"] *= rcnn_scale
    speedup = {k: seconds["rcnn"] / seconds[k] for k in SYSTEM_KEYS}
    what = {
        "rcnn": f"warp + whole CNN per proposal{f' ({sample} timed, x{rcnn_scale:g})' if sample < proposals else ''} + SVMs + ridge",
        "sppnet": f"conv once + SPP {'/'.join(map(str, cfg.spp_levels))} + fc6/fc7 + SVMs + ridge",
        "fast_rcnn": "conv once + RoI pool + fc6/fc7 + cls_score/bbox_pred",
        "fast_rcnn_svd": f"the same, fc6/fc7 by truncated SVD (ranks {ranks[0]}/{ranks[1]})",
    }
    print_fn(
        f"\n{'system':18s}{'s / image':>11s}{'speedup':>9s}{'GMAC / image':>14s}{'MAC ratio':>11s}   timed"
    )
    for key in SYSTEM_KEYS:
        print_fn(
            f"{SYSTEM_NAMES[key]:18s}{seconds[key]:11.3f}{speedup[key]:8.1f}x{macs[key] / 1e9:14.1f}"
            f"{macs['rcnn'] / max(macs[key], 1):10.1f}x   {what[key]}"
        )
    print_fn(
        f"(median over {images} image(s) x {repeats} run(s), fastrcnn_lite.timing; MACs of conv and fc layers from forward "
        "hooks plus the SVM/ridge products; 'MAC ratio' = R-CNN's MACs / the system's, the speedup if every "
        "system ran at the same MACs per second)"
    )
    line = speedup_line(seconds)
    print_fn(line)
    return {
        "seconds": seconds,
        "speedup": speedup,
        "macs": macs,
        "rcnn_scale": rcnn_scale,
        "line": line,
    }
