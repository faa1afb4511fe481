"""R-CNN vs SPPnet vs Fast R-CNN in one run: mAP, train time, test time, speedup, disk.

Data-flow stage: **evaluation** of the three complete systems (image -> proposals -> region
features -> heads -> detections -> VOC mAP). Reproduces, at the course's scale, the paper's
Table 4 (Fast R-CNN section 4.3, "Training and testing time"): the three detectors start from
the *same* pre-trained network, train on the *same* images with the *same* proposals, and are
timed and evaluated on the same test images::

    load_datasets(cfg) + load_proposals(...)            one dataset, one set of proposals
    for name in SYSTEMS:                                R-CNN, SPPnet, Fast R-CNN, + SVD
        detector.load_or_train(name, cfg, ...)          each system's own training stages, from
                                                        one pre-trained network (not timed: shared)
    time_per_image(detectors, test images)              interleaved, image by image
    evaluate_detections(..., metric="07")               VOC07 11-point mAP

The four are detectors of one contract (``fastrcnn_lite.detector``): the same ``info`` keys, the
same ``detect_image(image, proposals)``, all on the same device (``cfg.device``).

Conventions of the measurements, as in the paper:

* **Train time** is each system's own stages, measured when it was trained (a model loaded
  from the cache keeps the time measured then): R-CNN = fine-tuning + features to disk + SVMs
  + ridge; SPPnet = conv maps to disk + fc fine-tuning + SVMs + ridge; Fast R-CNN = its single
  SGD stage. The shared pre-training is not counted (the paper's ImageNet training is not either).
* **Test time per image** is ``fastrcnn_lite.timing``'s: it excludes the proposals
  (precomputed), image decoding and the copy to the device; it includes everything from the
  decoded image to the final detections (resize, network, heads, box decoding, per-class NMS),
  synchronised on CUDA; the median over the test images, after one warm-up call each. The four
  detectors run in turn on each image, so background load on a shared machine spreads evenly
  over them.
* **Disk** is the size of the training-feature cache each system writes (R-CNN: pool5 of every
  box; SPPnet: the conv map of every image; Fast R-CNN: none).

This module is the comparison loop (:func:`compare_detectors`, taught in notebook 07). Its
statistics are in ``compare_stats.py`` (:func:`map_difference`: an mAP gap with its paired
bootstrap interval) and its report in ``compare_report.py`` (:func:`comparison_table` puts the
paper's Table 4, VGG16 on VOC07 from ``fastrcnn_lite.teaching.paper``, next to the
measurements; :func:`plot_comparison` draws them; :func:`save_report` writes
``reports/comparison.json`` and ``reports/comparison.png`` for the summary page of ``make
course``). Their public names are imported here too, so that notebook 07's
``compare.<name>`` reads as one experiment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from ..config import Config, resolve_path
from ..data import load_datasets
from ..detector import INFO_KEYS, SYSTEMS, load_or_train
from ..evaluate import evaluate_detections
from ..fast_rcnn_run import resolve_device
from ..progress import tqdm
from ..proposal_cache import load_proposals
from ..timing import time_per_image
from .compare_report import (
    DISPLAY_THRESH,
    PAPER_DISK,
    comparison_table,
    format_bytes,
    format_markdown,
    format_seconds,
    plot_comparison,
    plot_side_by_side,
    reports_folder,
    save_report,
)
from .compare_stats import map_difference

__all__ = [
    "SYSTEMS",
    "PAPER_DISK",
    "DISPLAY_THRESH",
    "compare_detectors",
    "add_speedups",
    "map_difference",
    "comparison_table",
    "plot_comparison",
    "plot_side_by_side",
    "save_report",
    "format_markdown",
    "format_seconds",
    "format_bytes",
    "reports_folder",
]


# ----------------------------------------------------------------------------------------------
# The measurements
# ----------------------------------------------------------------------------------------------
def add_speedups(systems: dict[str, dict]) -> dict[str, dict]:
    """Set ``speedup`` = R-CNN's test seconds per image / each system's, in place; returns ``systems``.

    No notebook: :func:`compare_detectors` calls it (notebook 07 shows the speedups).

    Raises:
        ValueError: no ``"R-CNN"`` entry, or a test time that is not a positive number.
    """
    if "R-CNN" not in systems:
        raise ValueError(
            f"speedups are relative to R-CNN, but systems has only {list(systems)}; include 'R-CNN'."
        )
    for name, s in systems.items():
        seconds = s.get("test_seconds_per_image")
        if not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValueError(
                f"systems[{name!r}]['test_seconds_per_image'] must be a positive number of seconds; got {seconds!r}."
            )
    reference = systems["R-CNN"]["test_seconds_per_image"]
    for s in systems.values():
        s["speedup"] = reference / s["test_seconds_per_image"]
    return systems


def _time_all(
    detectors: dict[str, Callable[[Tensor, Tensor], dict]],
    dataset,
    proposals: Sequence[Tensor],
    progress: bool,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, list[dict]], dict[str, float]]:
    """Run every detector on every image, in turn per image, timed by
    :func:`fastrcnn_lite.timing.time_per_image` (one untimed warm-up call each on the first image).

    Args:
        detectors: ``name -> detect_image(image, proposals)``, computing on ``device``.
        dataset: ``load_image(i)`` is decoded and moved to ``device`` outside the clock.

    Returns:
        ({name: detections per image (CPU tensors)}, {name: median seconds per image}).
    """
    outputs: dict[str, list[dict]] = {name: [] for name in detectors}

    def recorded(name: str, detect_image: Callable) -> Callable:
        def run(image: Tensor, props: Tensor) -> dict:
            det = detect_image(image, props)
            outputs[name].append(det)  # copied to the CPU after the clock
            return det

        return run

    def samples() -> Iterator[tuple[Tensor, Tensor]]:
        desc = f"detect ({len(detectors)} systems)"
        for i in tqdm(range(len(dataset)), desc=desc, disable=not progress):
            yield dataset.load_image(i).to(device), proposals[i].float().to(device)

    with torch.inference_mode():
        seconds = time_per_image({name: recorded(name, d) for name, d in detectors.items()},
                                 samples(), repeats=1, warmup=1, device=device)  # fmt: skip
    detections = {  # the first output of each is the warm-up's
        name: [{k: v.detach().cpu() for k, v in det.items()} for det in dets[1:]]
        for name, dets in outputs.items()
    }
    return detections, seconds


class _Subset:
    """The first ``n`` images of a VOCDataset (same interface, for a quick look)."""

    def __init__(self, dataset, n: int):
        self.dataset, self.n = dataset, min(n, len(dataset))
        self.classes, self.ids = dataset.classes, dataset.ids[: self.n]
        self.root, self.image_set = dataset.root, dataset.image_set

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.dataset[i]

    def load_image(self, i: int) -> Tensor:
        return self.dataset.load_image(i)

    def load_target(self, i: int) -> dict:
        return self.dataset.load_target(i)


def compare_detectors(cfg: Config, progress: bool = True, test_images: int | None = None) -> dict:
    """Train (or load) R-CNN, SPPnet and Fast R-CNN on the same data, then time and evaluate them.

    Notebook 07 runs it.

    A plain loop over :data:`SYSTEMS`: each detector comes from
    :func:`fastrcnn_lite.detector.load_or_train` (every system starts from
    :func:`~fastrcnn_lite.pretrain.pretrained_backbone` and uses the proposals of
    :func:`~fastrcnn_lite.proposals.load_proposals`; trained models come from the model cache
    when an earlier notebook trained them with the same config, otherwise they are trained here
    and cached), on ``cfg.device``; all four are timed on that device and evaluated alike.

    Args:
        cfg: the profile (``Config.embedded()`` or ``Config()``); ``cfg.svd_rank_fc6`` /
            ``cfg.svd_rank_fc7`` for the SVD variant, ``cfg.test_scales`` for test.
        progress: progress bars and one line per model loaded or trained.
        test_images: evaluate on the first this many test images only (None: all).

    Returns:
        dict with
        ``systems``: {name: {``map``, ``ap`` ({class: AP}), ``train_seconds``,
        ``test_seconds_per_image``, ``speedup``, ``cache_bytes``, ``parameters``,
        ``from_cache``, ``train_stages`` ({stage: seconds})}} for the names in :data:`SYSTEMS`;
        ``setting``: {``dataset``, ``backbone``, ``num_train_images``, ``num_test_images``,
        ``proposals_per_image`` (mean over test images), ``threads``, ``device``,
        ``test_scales``};
        ``detections``: {name: list of {boxes, scores, labels} per test image};
        ``targets``: the test annotations; ``test_ds``; ``test_proposals``;
        ``models``: {name: the detector (``fastrcnn_lite.detector.Detector``)}.
    """
    if not isinstance(cfg, Config):
        raise TypeError(
            f"cfg must be a fastrcnn_lite.config.Config; got {type(cfg).__name__}. Try Config.embedded()."
        )
    embedded = resolve_path(cfg.data_root) == resolve_path(Config.embedded().data_root)
    train_ds, test_ds = load_datasets(cfg)
    train_props = load_proposals(train_ds, cfg, progress=progress)
    test_props = load_proposals(test_ds, cfg, progress=progress)
    if test_images is not None:
        test_ds, test_props = _Subset(test_ds, test_images), test_props[:test_images]

    device = resolve_device(cfg)
    detectors = {}
    for name in SYSTEMS:
        detectors[name] = load_or_train(name, cfg, train_ds, train_props, progress, device)
        info = detectors[name].info
        if progress:
            how = "loaded from the cache" if info["from_cache"] else "trained"
            print(f"{name} {how} (train time {format_seconds(info['train_seconds'])})", flush=True)

    detections, seconds = _time_all({name: d.detect_image for name, d in detectors.items()},
                                    test_ds, test_props, progress, device)  # fmt: skip
    targets = [test_ds.load_target(i) for i in range(len(test_ds))]
    systems = {}
    for name, detector in detectors.items():
        evaluation = evaluate_detections(detections[name], targets, test_ds.classes, metric="07")
        systems[name] = {key: detector.info[key] for key in INFO_KEYS} | {
            "map": float(evaluation["map"]),
            "ap": {k: float(v) for k, v in evaluation["ap"].items()},
            "test_seconds_per_image": seconds[name],
        }
    add_speedups(systems)
    scales = tuple(cfg.test_scales)
    setting = {
        "dataset": "embedded" if embedded else f"VOC{cfg.year} {cfg.test_set}",
        "backbone": cfg.backbone,
        "num_train_images": len(train_ds),
        "num_test_images": len(test_ds),
        "proposals_per_image": sum(len(p) for p in test_props) / max(len(test_props), 1),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "test_scales": list(scales),
    }
    return {
        "systems": systems,
        "setting": setting,
        "detections": detections,
        "targets": targets,
        "test_ds": test_ds,
        "test_proposals": test_props,
        "models": detectors,
    }
