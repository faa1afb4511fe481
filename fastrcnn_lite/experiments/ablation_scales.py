"""Single scale vs an image pyramid of five scales (paper section 5.2, Table 7), and SPPnet's five test scales.

Data-flow stage: **image** (its scale) -> **backbone feature map** -> **region features**: with
several scales each image is resized to every scale (shorter side s, longer side capped), and
each RoI (Tensor[P, 4], original pixels) is pooled from the one scale where its area is closest
to ``cfg.pyramid_target_area`` (:func:`~fastrcnn_lite.transforms.pyramid_levels`; the paper's
224 x 224, 48 x 48 in the embedded profile), then scored by the one head.

* :func:`multiscale_ablation`: a Fast R-CNN trained with the five scales (one drawn per training
  image) and tested with the pyramid, against the single-scale reference; both on the short
  schedule of ``ablation_training.py`` (paired, equal budget). mAP and test time per image.
* :func:`sppnet_scales_ablation`: the trained SPPnet of the comparison (Table 4's footnote: the
  paper tested SPPnet with five scales) tested at its one scale and with the five-scale pyramid,
  no retraining (``SPPNet`` takes its test scales as attributes). mAP and test time per image.

The five scales are the paper's {480, 576, 688, 864, 1200} (longer side capped at 2000) scaled
by ``cfg.scales[0] / 600`` (:func:`paper_scales`): (154, 184, 220, 276, 384), cap 640, for the
embedded profile's 192. Times are :mod:`fastrcnn_lite.timing`'s test time per image, the two
variants interleaved image by image on the first ``timing_images`` test images.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..checkpoint import module_digest, proposals_digest, tensors_digest
from ..config import Config
from ..data import dataset_digest
from ..progress import tqdm
from ..regions import check_proposals, dataset_key, load_image, load_target
from ..sppnet import SPPNet
from ..timing import timed_call, warn_if_busy
from ..transforms import pyramid_levels, scale_factor
from .ablation_common import cached_result, to_cpu, voc07_map
from .ablation_stats import map_interval, time_ratio_interval
from .ablation_training import (
    SHORT_ITERS,
    short_schedule,
    train_variant,
    training_key,
    variant_detections,
)

__all__ = ["paper_scales", "paired_detections", "multiscale_ablation", "sppnet_scales_ablation"]


def paper_scales(cfg: Config) -> tuple[tuple[int, ...], int]:
    """The paper's five scales and their longer-side cap (``Config()``'s ``multiscale_scales``
    and ``multiscale_max_size`` for shorter side 600), scaled to ``cfg.scales[0]`` and rounded.

    No notebook: the default pyramid of :func:`multiscale_ablation` and :func:`sppnet_scales_ablation`.
    ``Config.embedded()`` (192): ((154, 184, 220, 276, 384), 640); ``Config()``: the paper's own.
    """
    paper = Config()
    ratio = cfg.scales[0] / paper.scales[0]
    return tuple(round(s * ratio) for s in paper.multiscale_scales), round(
        paper.multiscale_max_size * ratio
    )


def paired_detections(detectors: dict[str, Callable[[Tensor, Tensor], dict]], test_ds, test_props: Sequence[Tensor],
                      device, timing_images: int = 20, progress: bool = True,
                      desc: str = "detect") -> tuple[dict[str, list[dict]], dict[str, list[float]]]:  # fmt: skip
    """Every detector on every test image (``detect(image Tensor[3, H, W], proposals Tensor[P, 4])``,
    both on ``device``), the detections copied to the CPU; on the first ``timing_images`` images
    each call is timed (:func:`~fastrcnn_lite.timing.timed_call`, the detectors interleaved image
    by image, one untimed warm-up call each on the first image).

    No notebook: the scale ablations' mAPs and times come from one pass.

    Returns:
        (name -> one dict per image with ``boxes`` Tensor[D, 4], ``scores`` Tensor[D], ``labels``
        Tensor[D]; name -> seconds per timed image).
    """
    check_proposals(test_ds, test_props)
    detections = {name: [] for name in detectors}
    seconds = {name: [] for name in detectors}
    with torch.inference_mode():
        for i in tqdm(range(len(test_ds)), desc=desc, disable=not progress):
            image, props = load_image(test_ds, i).to(device), test_props[i].float().to(device)
            if i == 0:
                for detect in detectors.values():
                    detect(image, props)
            for name, detect in detectors.items():
                if i < timing_images:
                    det, secs = timed_call(detect, image, props, device=device)
                    seconds[name].append(secs)
                else:
                    det = detect(image, props)
                detections[name].append(to_cpu(det))
    if timing_images:
        warn_if_busy("test time per image")
    return detections, seconds


def _rois_per_scale(test_ds, test_props, scales, max_size, target_area) -> list[int]:
    """How many test RoIs the pyramid pools from each scale (:func:`pyramid_levels`)."""
    counts = torch.zeros(len(scales), dtype=torch.int64)
    for i in range(len(test_ds)):
        if len(test_props[i]) == 0:
            continue
        size = tuple(load_image(test_ds, i).shape[-2:])
        factors = torch.tensor(
            [scale_factor(size, s, max_size) for s in scales], dtype=torch.float64
        )
        counts += torch.bincount(
            pyramid_levels(test_props[i].float(), factors, target_area), minlength=len(scales)
        )
    return counts.tolist()


def _scale_result(detections, seconds, one: str, five: str, test_ds, rounds: int) -> dict:
    targets = [load_target(test_ds, i) for i in range(len(test_ds))]
    times = {k: torch.tensor(v, dtype=torch.float64) for k, v in seconds.items()}
    return {
        "map_single": voc07_map(detections[one], targets, test_ds.classes),
        "map_five": voc07_map(detections[five], targets, test_ds.classes),
        "seconds_single": statistics.median(seconds[one]), "seconds_five": statistics.median(seconds[five]),
        "map_difference": map_interval(detections[five], detections[one], targets, test_ds.classes, rounds),
        "time_change": time_ratio_interval(times[five], times[one], rounds),
        "timing_images": len(seconds[one]), "num_test_images": len(test_ds),
    }  # fmt: skip


def multiscale_ablation(cfg: Config, train_ds, train_props: Sequence[Tensor], test_ds, test_props: Sequence[Tensor],
                        iters: int = SHORT_ITERS, scales: Sequence[int] | None = None, max_size: int | None = None,
                        timing_images: int = 20, rounds: int = 200, pretrained: bool = True,
                        progress: bool = True) -> dict:  # fmt: skip
    """One scale vs five scales, trained and tested (section 5.2, Table 7), on the short schedule.

    Notebook 07 runs it (section 9).

    The reference: :func:`~fastrcnn_lite.experiments.ablation_training.short_schedule` with
    ``cfg``'s one scale, tested at ``cfg.test_scales``. The variant: the same schedule with
    ``cfg.scales = cfg.test_scales = scales`` (one drawn per training image) and
    ``cfg.multiscale_max_size = max_size`` (default :func:`paper_scales`), tested with the
    pyramid: each RoI pooled at the scale closest to ``cfg.pyramid_target_area``. The variant
    is also tested at the one scale alone (``map_multiscale_model_one_scale``): how much of the
    change is training, how much the pyramid.

    Args: as :func:`~fastrcnn_lite.experiments.ablation_training.finetune_depth_ablation`, and
        scales, max_size: the pyramid; timing_images: the first this many test images are timed.

    Returns:
        dict with ``map_single``, ``map_five``, ``map_multiscale_model_one_scale``,
        ``seconds_single``, ``seconds_five`` (median test seconds per image), ``map_difference``
        (five - single), ``time_change`` (ratio - 1): intervals; ``scales``, ``max_size``,
        ``target_area``, ``rois_per_scale`` (test RoIs pooled at each scale), ``train_seconds``
        (``single``, ``five``), ``iters``, ``lr_steps``, ``timing_images``,
        ``num_test_images``, ``from_cache``.
    """
    default_scales, default_max = paper_scales(cfg)
    scales = tuple(int(s) for s in (scales or default_scales))
    max_size = int(max_size or default_max)
    if len(cfg.scales) != 1 or len(cfg.test_scales) != 1:
        raise ValueError(f"the reference trains and tests at one scale; cfg.scales is {cfg.scales} and "
                         f"cfg.test_scales {cfg.test_scales}.")  # fmt: skip
    if len(scales) < 2:
        raise ValueError(f"scales must hold several scales (an image pyramid); got {scales}.")
    short = short_schedule(cfg, iters)
    pyramid = short.replace(
        scales=scales, test_scales=scales, multiscale_scales=scales, multiscale_max_size=max_size
    )
    key = training_key(short, train_ds, train_props, test_ds, test_props, pretrained) | {
        "scales": scales, "max_size": max_size, "timing_images": timing_images, "rounds": rounds}  # fmt: skip

    def compute() -> dict:
        reference, ref_info = train_variant(short, train_ds, train_props, pretrained, progress)
        multi, multi_info = train_variant(pyramid, train_ds, train_props, pretrained, progress)
        target = short.pyramid_target_area
        detectors = {"one scale": lambda im, p: reference.detect_image(im, p),
                     "five scales": lambda im, p: multi.detect_image(im, p, scales, max_size, target)}  # fmt: skip
        device = next(reference.parameters()).device
        detections, seconds = paired_detections(detectors, test_ds, test_props, device, timing_images, progress,
                                                "one vs five scales")  # fmt: skip
        one_scale = variant_detections(multi, test_ds, test_props, short.test_scales, short.max_size, target,
                                       progress, "multi-scale model, one scale")["box_regression"]  # fmt: skip
        targets = [load_target(test_ds, i) for i in range(len(test_ds))]
        return _scale_result(detections, seconds, "one scale", "five scales", test_ds, rounds) | {
            "map_multiscale_model_one_scale": voc07_map(one_scale, targets, test_ds.classes),
            "scales": list(scales), "max_size": max_size, "target_area": target,
            "rois_per_scale": _rois_per_scale(test_ds, test_props, scales, max_size, target),
            "train_seconds": {"single": ref_info["train_seconds"], "five": multi_info["train_seconds"]},
            "iters": short.max_iters, "lr_steps": list(short.lr_steps),
        }  # fmt: skip

    return cached_result(short, "ablation_multiscale", key, compute)


def sppnet_scales_ablation(sppnet: SPPNet, cfg: Config, test_ds, test_props: Sequence[Tensor],
                           scales: Sequence[int] | None = None, max_size: int | None = None,
                           timing_images: int = 20, rounds: int = 200, progress: bool = True) -> dict:  # fmt: skip
    """The trained SPPnet tested at its one scale vs with the five-scale pyramid (Table 4's
    footnote: the paper's SPPnet was tested with five scales), no retraining.

    Notebook 07 runs it on the comparison's SPPnet (section 9).

    Args:
        sppnet: a trained :class:`~fastrcnn_lite.sppnet.SPPNet` with one test scale (left
            unchanged: the pyramid runs on a shallow copy whose ``scales`` and ``max_size`` are
            set); each RoI is pooled at the scale closest to its ``target_area``.
        cfg: the profile (its ``cache_dir``, and its fields in the cache key).
        test_ds, test_props: the test split and its proposals.
        scales, max_size: the pyramid (default :func:`paper_scales`); timing_images, rounds: as
            :func:`multiscale_ablation`.

    Returns:
        dict with ``map_single``, ``map_five``, ``seconds_single``, ``seconds_five``,
        ``map_difference``, ``time_change`` (as :func:`multiscale_ablation`), ``single_scale``,
        ``scales``, ``max_size``, ``target_area``, ``timing_images``, ``num_test_images``,
        ``from_cache``.
    """
    if not isinstance(sppnet, SPPNet):
        raise TypeError(
            f"sppnet must be a trained fastrcnn_lite SPPNet; got {type(sppnet).__name__}."
        )
    if len(sppnet.scales) != 1:
        raise ValueError(
            f"sppnet must test at one scale (the reference); its scales are {sppnet.scales}."
        )
    default_scales, default_max = paper_scales(cfg)
    scales = tuple(int(s) for s in (scales or default_scales))
    max_size = int(max_size or default_max)
    heads = [
        sppnet.svms.weight,
        sppnet.svms.bias,
        sppnet.box_regressors.weight,
        sppnet.box_regressors.bias,
    ]
    key = {"model": module_digest(*sppnet.modules()), "heads": tensors_digest([t.float() for t in heads]),
           "single": (list(sppnet.scales), sppnet.max_size), "target_area": sppnet.target_area,
           "test": dataset_key(test_ds), "test_data": dataset_digest(test_ds),
           "test_proposals": proposals_digest(test_props), "scales": scales, "max_size": max_size,
           "timing_images": timing_images, "rounds": rounds}  # fmt: skip

    def compute() -> dict:
        pyramid = copy.copy(sppnet)
        pyramid.scales, pyramid.max_size = scales, max_size
        sppnet.eval()
        detectors = {"one scale": sppnet.detect_image, "five scales": pyramid.detect_image}
        detections, seconds = paired_detections(detectors, test_ds, test_props, sppnet.device, timing_images,
                                                progress, "SPPnet one vs five scales")  # fmt: skip
        return _scale_result(detections, seconds, "one scale", "five scales", test_ds, rounds) | {
            "single_scale": sppnet.scales[0], "scales": list(scales), "max_size": max_size,
            "target_area": sppnet.target_area}  # fmt: skip

    return cached_result(cfg, "ablation_sppnet_scales", key, compute)
