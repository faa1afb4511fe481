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

:func:`comparison_table` puts the paper's Table 4 (VGG16 on VOC07, ``fastrcnn_lite.teaching.paper``)
next to the measurements; :func:`plot_comparison` draws them; :func:`save_report` writes
``reports/comparison.json`` and ``reports/comparison.png`` for the summary page of ``make course``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..config import Config, resolve_path
from ..data import load_datasets
from ..detector import INFO_KEYS, SYSTEMS, load_or_train
from ..evaluate import evaluate_detections, precision_recall, voc_ap
from ..fast_rcnn import resolve_device
from ..progress import tqdm
from ..proposals import load_proposals
from ..teaching.paper import TABLE4_VGG16
from ..timing import time_per_image

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

# SYSTEMS (from fastrcnn_lite.detector): the rows, in the paper's order (the keys of paper.TABLE4_VGG16).

# Disk used by the training-feature caches for VGG16 on VOC07 trainval (Fast R-CNN section 1.1).
PAPER_DISK = {
    "R-CNN": "hundreds of GB",
    "SPPnet": "~20 GB",
    "Fast R-CNN": "0",
    "Fast R-CNN + SVD": "0",
}

# Score above which a detection is drawn in the pictures: SVM margins > 0 mean "this class";
# Fast R-CNN's softmax probabilities > 0.5 mean "more likely this class than anything else".
DISPLAY_THRESH = {"R-CNN": 0.0, "SPPnet": 0.0, "Fast R-CNN": 0.5, "Fast R-CNN + SVD": 0.5}


# ----------------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------------
def format_seconds(seconds: float) -> str:
    """A duration for a table: ``'0.0123 s'``, ``'4.56 s'``, ``'95 s'``, ``'12.3 min'``, ``'2.1 h'``."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 0.1:
        return f"{seconds:.4f} s"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_bytes(num: int) -> str:
    """A size for a table: ``'0'``, ``'512 B'``, ``'3.4 MiB'``, ``'1.2 GiB'`` (powers of 1024, the
    unit every notebook prints sizes in)."""
    if num == 0:
        return "0"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if num >= size:
            return f"{num / size:.1f} {unit}"
    return f"{num} B"


# ----------------------------------------------------------------------------------------------
# The measurements
# ----------------------------------------------------------------------------------------------
def add_speedups(systems: dict[str, dict]) -> dict[str, dict]:
    """Set ``speedup`` = R-CNN's test seconds per image / each system's, in place; returns ``systems``.

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


def _ranked_matches(
    detections: Sequence[dict], targets: Sequence[dict], num_classes: int
) -> list[dict]:
    """Per class, every detection that counts (not on a difficult object), best score first:
    ``image`` (Tensor[D] long), ``tp`` (Tensor[D] bool; False = a false positive), plus
    ``npos`` (Tensor[N] float64: the class's non-difficult gt boxes in each image).

    Whether a detection is a true positive depends only on the detections of its own image
    (VOC matching goes down the ranking, and a gt box can only be claimed in its own image), so
    these flags hold in any resampling of the images. They come from
    :func:`~fastrcnn_lite.evaluate.precision_recall` on the whole test set, with each score
    replaced by its rank so that every detection can be found again in the ranking.
    """
    scores = torch.cat([d["scores"].double().flatten() for d in detections])  # (D,)
    image = torch.cat(
        [torch.full((len(d["scores"]),), i, dtype=torch.long) for i, d in enumerate(detections)]
    )
    order = torch.sort(scores, descending=True, stable=True).indices  # (D,) best first
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    ranked = [
        dict(d, scores=-r.double())
        for d, r in zip(detections, rank.split([len(d["scores"]) for d in detections]), strict=True)
    ]
    matches = []
    for label in range(1, num_classes + 1):
        curve = precision_recall(ranked, targets, label)
        index = order[(-curve["scores"]).round().long()]  # back to the detections' positions
        npos = torch.tensor(
            [float(((t["labels"] == label) & ~_difficult(t)).sum()) for t in targets]
        )
        matches.append({"image": image[index], "tp": curve["tp"], "npos": npos})
    return matches  # fmt: skip


def _difficult(target: dict) -> Tensor:
    difficult = target.get("difficult")
    return (
        torch.zeros(len(target["labels"]), dtype=torch.bool)
        if difficult is None
        else difficult.bool()
    )


def _weighted_map(matches: list[dict], weights: Tensor) -> float:
    """VOC07 mAP when image i counts ``weights[i]`` times (a bootstrap draw), from :func:`_ranked_matches`.

    Image i drawn w times adds each of its detections w times, at the same score: for the
    11-point AP that is one point with w times the true (or false) positives (the points in
    between never hold the highest precision at a recall), so no list of images is built.
    """
    aps = []
    for m in matches:
        npos = float((weights * m["npos"]).sum())
        if npos == 0:
            continue  # no gt box of this class in the draw: the class does not count, as in evaluate
        w = weights[m["image"]]  # (D,)
        keep = w > 0
        tp = torch.cumsum(w * m["tp"], 0)[keep]  # (D',)
        fp = torch.cumsum(w * ~m["tp"], 0)[keep]  # (D',)
        aps.append(voc_ap(tp / npos, tp / (tp + fp), "07"))
    return sum(aps) / len(aps) if aps else math.nan


def map_difference(
    result: dict,
    system: str,
    other: str,
    rounds: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """mAP of ``system`` minus that of ``other``, with a bootstrap interval over the test images.

    How much of a measured mAP gap is the luck of the test set? Draw the test images with
    replacement ``rounds`` times; in each draw score both systems on the *same* images (a
    paired bootstrap: what both find easy or hard cancels out) and keep the difference. The
    interval holds the central ``level`` of those differences. An interval that contains 0
    means this test set cannot order the two systems. Each draw costs milliseconds: the
    true/false-positive flags are computed once (:func:`_ranked_matches`).

    Args:
        result: what :func:`compare_detectors` returns (``detections``, ``targets``, ``test_ds``).
        system, other: two names of :data:`SYSTEMS`.
        rounds: bootstrap draws.
        level: coverage of the interval (0.95: the 2.5th to the 97.5th percentile).
        seed: for the draws.

    Returns:
        dict with ``difference`` (on the test set itself: the difference of the two VOC07 mAPs),
        ``low``, ``high`` (the interval), ``level``, ``rounds`` and ``fraction_above_zero``
        (share of draws where ``system`` wins).
    """
    _check_result(result)
    for name in (system, other):
        if name not in result["detections"]:
            raise ValueError(
                f"no detections for {name!r}; expected one of {list(result['detections'])}."
            )
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1; got {rounds!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}.")
    targets, num_classes = result["targets"], len(result["test_ds"].classes)
    ours = _ranked_matches(result["detections"][system], targets, num_classes)
    theirs = _ranked_matches(result["detections"][other], targets, num_classes)
    n = len(targets)
    generator = torch.Generator().manual_seed(seed)
    draws = []
    for _ in range(rounds):
        weights = torch.bincount(
            torch.randint(n, (n,), generator=generator), minlength=n
        ).double()  # (N,)
        draws.append(_weighted_map(ours, weights) - _weighted_map(theirs, weights))
    draws = torch.tensor(draws, dtype=torch.float64)
    draws = draws[~draws.isnan()]  # a draw without gt boxes of any class has no mAP
    tail = (1 - level) / 2
    ones = torch.ones(n, dtype=torch.float64)
    return {
        "difference": _weighted_map(ours, ones) - _weighted_map(theirs, ones),
        "low": float(torch.quantile(draws, tail)),
        "high": float(torch.quantile(draws, 1 - tail)),
        "level": level,
        "rounds": rounds,
        "fraction_above_zero": float((draws > 0).double().mean()),
    }


# ----------------------------------------------------------------------------------------------
# Table, figures, report
# ----------------------------------------------------------------------------------------------
def _check_result(result: dict) -> dict:
    if not isinstance(result, dict) or "systems" not in result:
        raise ValueError(
            "result must be the dict compare_detectors returns (with a 'systems' entry); "
            f"got {type(result).__name__}{' with keys ' + str(list(result)) if isinstance(result, dict) else ''}."
        )
    systems = result["systems"]
    missing = [name for name in SYSTEMS if name not in systems]
    if missing:
        raise ValueError(
            f"result['systems'] lacks {missing}; expected one entry for each of {list(SYSTEMS)}."
        )
    return systems


def comparison_table(result: dict) -> list[dict[str, str]]:
    """One row per system: our measurements with the paper's Table 4 (VGG16, VOC07) beside them.

    The speedup is recomputed from the test times (R-CNN's / the system's). Values are
    formatted strings, ready for Markdown/HTML and ``reports/comparison.json``; the paper's
    train times are hours on one GPU, ours are seconds on this machine.

    Returns:
        list of dicts with the columns ``system``, ``mAP``, ``paper mAP``, ``train time``,
        ``paper train``, ``test / image``, ``paper test / image``, ``speedup``,
        ``paper speedup``, ``feature cache``, ``paper cache``, ``parameters``.
    """
    systems = _check_result(result)
    reference = systems["R-CNN"]["test_seconds_per_image"]
    rows = []
    for name in SYSTEMS:
        s, paper = systems[name], TABLE4_VGG16[name]
        rows.append({
            "system": name,
            "mAP": f"{s['map']:.3f}",
            "paper mAP": f"{paper['map'] / 100:.3f}",
            "train time": format_seconds(s["train_seconds"]),
            "paper train": f"{paper['train_hours']:g} h",
            "test / image": format_seconds(s["test_seconds_per_image"]),
            "paper test / image": f"{paper['test_seconds_per_image']:g} s",
            "speedup": f"{reference / s['test_seconds_per_image']:.1f}x",
            "paper speedup": f"{paper['speedup']:g}x",
            "feature cache": format_bytes(int(s["cache_bytes"])),
            "paper cache": PAPER_DISK[name],
            "parameters": f"{s['parameters'] / 1e6:.2f} M",
        })  # fmt: skip
    return rows


def format_markdown(rows: list[dict[str, str]]) -> str:
    """The rows of :func:`comparison_table` as a Markdown table (for printing in a notebook)."""
    cols = list(rows[0])
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in cols]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    return "\n".join(
        [line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        + [line([r[c] for c in cols]) for r in rows]
    )


def _note(result: dict) -> str:
    setting = result.get("setting", {})
    parts = []
    if setting:
        parts.append(
            f"Our run: {setting.get('dataset', '?')} data, {setting.get('backbone', '?')} backbone, "
            f"{setting.get('num_train_images', '?')} train / {setting.get('num_test_images', '?')} test images, "
            f"~{setting.get('proposals_per_image', float('nan')):.0f} proposals per image, "
            f"{setting.get('device', 'cpu')} ({setting.get('threads', '?')} threads)."
        )
    parts.append(
        "Train time: each system's own stages (shared pre-training excluded); test time excludes proposals. "
        "Paper: Table 4, VGG16 on VOC07 (GPU)."
    )
    return " ".join(parts)


def _ratio(value: float) -> str:
    """A ratio for a bar label: ``'0.03x'``, ``'1.1x'``, ``'146x'``."""
    return f"{value:.2g}x" if value < 1 else f"{value:.1f}x" if value < 10 else f"{value:.0f}x"


def plot_comparison(result: dict, figsize: tuple[float, float] = (13, 3.6)):
    """Bar charts, ours next to the paper's: mAP, test time per image, speedup, train time (log scales).

    Train time is shown relative to Fast R-CNN's (ours in seconds on a CPU, the paper's in hours
    on a GPU: only the ratios compare).

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    systems = _check_result(result)
    x = np.arange(len(SYSTEMS))
    width = 0.38
    labels = [name.replace(" + ", "\n+ ") for name in SYSTEMS]
    ours_color, paper_color = "tab:blue", "tab:gray"
    fast_train = systems["Fast R-CNN"]["train_seconds"]
    panels = [
        ("mAP (VOC07 metric)", [systems[n]["map"] for n in SYSTEMS], [TABLE4_VGG16[n]["map"] / 100 for n in SYSTEMS], False, "{:.2f}".format),
        ("test time per image (s, log)", [systems[n]["test_seconds_per_image"] for n in SYSTEMS],
         [TABLE4_VGG16[n]["test_seconds_per_image"] for n in SYSTEMS], True, "{:.3g}".format),
        ("test speedup over R-CNN (log)", [systems["R-CNN"]["test_seconds_per_image"] / systems[n]["test_seconds_per_image"] for n in SYSTEMS],
         [TABLE4_VGG16[n]["speedup"] for n in SYSTEMS], True, _ratio),
        ("train time / Fast R-CNN's (log)", [systems[n]["train_seconds"] / fast_train for n in SYSTEMS],
         [TABLE4_VGG16[n]["train_hours"] / TABLE4_VGG16["Fast R-CNN"]["train_hours"] for n in SYSTEMS], True, _ratio),
    ]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=figsize)
    for ax, (title, ours, paper, log, label) in zip(axes, panels, strict=True):
        bars = ax.bar(x - width / 2, ours, width, label="ours", color=ours_color)
        ax.bar(x + width / 2, paper, width, label="paper (VGG16, VOC07)", color=paper_color)
        for bar, value in zip(bars, ours, strict=True):
            if math.isfinite(value):
                ax.annotate(label(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7)  # fmt: skip
        if log:
            ax.set_yscale("log")
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_title(title, fontsize=9)
    axes[0].set_ylim(0, 1.2)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_side_by_side(
    result: dict,
    indices: Sequence[int] = (0, 1, 2),
    systems: Sequence[str] = ("R-CNN", "SPPnet", "Fast R-CNN"),
    thresholds: dict[str, float] | None = None,
    size: float = 3.0,
):
    """Detections of several systems on the same test images: one row per image, one column per system.

    Ground truth is drawn dashed in white under the detections; a detection is drawn when its
    score exceeds ``thresholds[system]`` (default :data:`DISPLAY_THRESH`: SVM margin > 0,
    softmax probability > 0.5).

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    from ..teaching.viz import draw_boxes

    _check_result(result)
    thresholds = {**DISPLAY_THRESH, **(thresholds or {})}
    dataset, classes = result["test_ds"], result["test_ds"].classes
    fig, axes = plt.subplots(
        len(indices),
        len(systems),
        figsize=(size * len(systems), size * len(indices)),
        squeeze=False,
    )
    for row, i in enumerate(indices):
        image, target = dataset.load_image(i), result["targets"][i]
        for col, name in enumerate(systems):
            det = result["detections"][name][i]
            keep = det["scores"] > thresholds[name]
            ax = axes[row, col]
            draw_boxes(ax, image, target["boxes"], color="white", linewidth=1.0, show_text=False,
                       difficult=torch.ones(len(target["boxes"]), dtype=torch.bool))  # fmt: skip
            draw_boxes(ax, None, det["boxes"][keep], det["labels"][keep], det["scores"][keep], classes,
                       fontsize=6, title=f"{name} (score > {thresholds[name]:g})" if row == 0 else None)  # fmt: skip
    fig.tight_layout()
    return fig


def reports_folder() -> Path:
    """Where reports go: ``$FASTRCNN_REPORTS`` when set, else ``resolve_path("reports")``.

    ``make course`` sets it to ``reports/`` (its summary page reads it); ``make test`` and
    ``tools/execute_notebooks.py`` point it at a scratch folder, so only a course run writes there.
    """
    return Path(os.environ.get("FASTRCNN_REPORTS") or resolve_path("reports"))


def save_report(result: dict, folder: str | Path | None = None, fig=None) -> tuple[Path, Path]:
    """Write ``comparison.json`` ({"rows": comparison_table(result), "note": ...}) and ``comparison.png``.

    Args:
        folder: where to write. Default: ``$FASTRCNN_REPORTS`` when set, else
            ``resolve_path("reports")``, which ``tools/run_course.py`` reads for the summary page.
            ``make course`` sets ``FASTRCNN_REPORTS=reports``; ``make test`` points it at a scratch
            folder, so a test run never overwrites the report of the last course run.
        fig: the figure to save (default: a new :func:`plot_comparison`).

    Returns:
        (json path, png path).
    """
    import matplotlib.pyplot as plt

    rows = comparison_table(result)
    folder = reports_folder() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, png_path = folder / "comparison.json", folder / "comparison.png"
    json_path.write_text(json.dumps({"rows": rows, "note": _note(result)}, indent=1) + "\n")
    own = fig is None
    fig = plot_comparison(result) if own else fig
    fig.savefig(png_path, dpi=110, bbox_inches="tight")
    if own:
        plt.close(fig)
    return json_path, png_path
