"""Error analysis, reported: the tables, the charts and the pictures of notebook 07.

Data-flow stage: none of its own; it shows what the **diagnosis** stage
(:mod:`fastrcnn_lite.error_analysis`) found. It takes that module's results (plain dicts of
counts, shares and per-detection records) and turns them into text tables
(:func:`format_breakdown`, :func:`format_confusions`, :func:`format_ap_by_size`), matplotlib
charts (:func:`plot_error_breakdown`, :func:`plot_ap_by_size`) and one test image with its
detections coloured by kind of mistake (:func:`draw_errors`, on Tensor[3, H, W] images and
Tensor[D, 4] detections). Shown in ``notebooks/07_comparison.ipynb``, "Where the errors are".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Patch

from ..error_analysis import CATEGORIES
from ..teaching.viz import draw_boxes

__all__ = [
    "COLOURS",
    "format_breakdown",
    "format_confusions",
    "format_ap_by_size",
    "plot_error_breakdown",
    "plot_ap_by_size",
    "draw_errors",
]

# Colours of the categories in the charts and pictures ("correct" for true positives).
COLOURS = {
    "correct": "#4c9a2a",
    "duplicate": "#f2b134",
    "localisation": "#e8702a",
    "similar": "#8e44ad",
    "other": "#3b7dd8",
    "background": "#7f7f7f",
}


def format_breakdown(breakdowns: Mapping[str, dict]) -> str:
    """A table, one row per system: analysed detections, correct, and each kind of FP (count, %).

    Notebook 07 prints it for the four systems.

    Args:
        breakdowns: {system name: ``error_analysis.false_positive_breakdown`` result}.
    """
    width = max(len("system"), *(len(name) for name in breakdowns))
    header = f"{'system':<{width}}  {'top':>5}  {'correct':>7}  {'FP':>5}" + "".join(
        f"  {c:>17}" for c in CATEGORIES
    )
    lines = [header]
    for name, b in breakdowns.items():
        cells = "".join(
            f"  {b['counts'][c]:>6} ({100 * b['fractions'][c]:5.1f}%)"
            if b["num_false_positives"]
            else f"  {b['counts'][c]:>6} (   n/a)"
            for c in CATEGORIES
        )
        lines.append(
            f"{name:<{width}}  {b['num_detections']:>5}  {b['num_true_positives']:>7}  "
            f"{b['num_false_positives']:>5}{cells}"
        )
    return "\n".join(lines)


def format_confusions(breakdown: dict) -> str:
    """The confusion false positives as a table: rows the class detected, columns the class of
    the object it lay on ("similar" and "other" together), similar pairs marked with ``*``.

    Notebook 07 prints it for Fast R-CNN.

    Args:
        breakdown: a ``error_analysis.false_positive_breakdown`` result.
    """
    classes = list(breakdown["per_class"])
    corner = "said \\ on"
    width = max(len(corner), *(len(c) for c in classes))
    lines = [f"{corner:<{width}}" + "".join(f"  {c:>8}" for c in classes)]
    for said in classes:
        row = breakdown["confused_with"][said]
        cells = []
        for on in classes:
            mark = "*" if on in breakdown["similar"][said] else " "
            cells.append("  " + (f"{row.get(on, 0)}{mark}" if on != said else "- ").rjust(8))
        lines.append(f"{said:<{width}}" + "".join(cells))
    return "\n".join(lines)


def format_ap_by_size(results: Mapping[str, dict]) -> str:
    """A table of mAP per size bin, one row per system (with the bins' ranges and object counts).

    Notebook 07 prints it for the four systems.

    Args:
        results: {system name: ``size_analysis.ap_by_size`` result}, all with the same
            bins.
    """
    first = next(iter(results.values()))
    width = max(len("system"), *(len(name) for name in results))
    lines = []
    for b in first["bins"]:
        low, high = first["ranges"][b]
        upper = "inf" if math.isinf(high) else f"{high:.1f}"
        lines.append(
            f"{b}: sqrt(w*h) in [{low:.1f}, {upper}) px, {sum(first['npos'][b].values())} objects"
        )
    lines.append(f"{'system':<{width}}" + "".join(f"  {b:>8}" for b in first["bins"]))
    for name, r in results.items():
        lines.append(
            f"{name:<{width}}"
            + "".join(
                f"  {'n/a' if math.isnan(r['map'][b]) else format(r['map'][b], '.3f'):>8}"
                for b in first["bins"]
            )
        )
    return "\n".join(lines)


def plot_error_breakdown(breakdowns: Mapping[str, dict], ax=None, include_correct: bool = False):
    """Stacked bars, one per system: the share of each kind of false positive.

    Notebook 07 draws it next to :func:`plot_ap_by_size`.

    Args:
        breakdowns: {system name: ``error_analysis.false_positive_breakdown`` result}.
        ax: a matplotlib Axes (default: a new figure).
        include_correct: stack the true positives too (shares of all analysed detections)
            instead of shares of the false positives.

    Returns:
        the Axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * len(breakdowns) + 2.5, 3.6))
    kinds = (("correct",) if include_correct else ()) + CATEGORIES
    names = list(breakdowns)
    bottom = [0.0] * len(names)
    for kind in kinds:
        shares = []
        for name in names:
            b = breakdowns[name]
            total = b["num_detections"] if include_correct else b["num_false_positives"]
            count = b["num_true_positives"] if kind == "correct" else b["counts"][kind]
            shares.append(count / total if total else 0.0)
        ax.bar(range(len(names)), shares, 0.6, bottom=bottom, color=COLOURS[kind], label=kind)
        bottom = [a + s for a, s in zip(bottom, shares, strict=True)]
    labels = [
        f"{name}\n{breakdowns[name]['num_false_positives']} FP of {breakdowns[name]['num_detections']}"
        for name in names
    ]
    ax.set_xticks(range(len(names)), labels, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of analysed detections" if include_correct else "share of false positives")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return ax


def plot_ap_by_size(results: Mapping[str, dict], ax=None):
    """Grouped bars: mAP per size bin (x), one bar per system.

    Notebook 07 draws it next to :func:`plot_error_breakdown`.

    Args:
        results: {system name: ``size_analysis.ap_by_size`` result}, all with the same
            bins.
        ax: a matplotlib Axes (default: a new figure).

    Returns:
        the Axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    first = next(iter(results.values()))
    bins, names = first["bins"], list(results)
    width = 0.8 / len(names)
    for s, name in enumerate(names):
        x = [b + (s - (len(names) - 1) / 2) * width for b in range(len(bins))]
        ax.bar(x, [results[name]["map"][b] for b in bins], width, label=name)
    ticks = []
    for b in bins:
        low, high = first["ranges"][b]
        upper = "" if math.isinf(high) else f"{high:.0f}"
        ticks.append(f"{b}\n{low:.0f}-{upper} px" if upper else f"{b}\n>= {low:.0f} px")
    ax.set_xticks(range(len(bins)), ticks, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mAP on objects of that size")
    ax.legend(fontsize=8)
    return ax


def draw_errors(ax, image, target: dict, detections: dict, breakdown: dict, image_index: int,
                classes: Sequence[str], title: str | None = None):  # fmt: skip
    """Draw one image with its objects and its analysed detections coloured by category.

    Notebook 07 draws a confusion and a localisation error with it.

    Objects are dashed white (difficult ones too); each analysed detection of this image (the
    ``records`` of ``error_analysis.false_positive_breakdown``) is drawn in its category's
    colour with its class and score; a legend names the colours that occur.

    Args:
        ax: a matplotlib Axes.
        image (Tensor[3, H, W]): the image (``dataset.load_image(image_index)``).
        target: its annotation (``boxes`` Tensor[G, 4], ``labels``).
        detections: its detections (``boxes`` Tensor[D, 4], ``scores``, ``labels``).
        breakdown: the ``error_analysis.false_positive_breakdown`` result these came
            from.
        image_index: the image's index in the lists the breakdown was computed on.
        classes: the K class names.
        title: the Axes title.

    Returns:
        the Axes.
    """
    draw_boxes(ax, image, target["boxes"], color="white", linewidth=1.0, show_text=False,
               difficult=torch.ones(len(target["boxes"]), dtype=torch.bool), title=title)  # fmt: skip
    mine = [r for r in breakdown["records"] if r["image"] == image_index]
    shown = []
    for kind in ("correct", *CATEGORIES):
        rows = [r["index"] for r in mine if r["category"] == kind]
        if not rows:
            continue
        shown.append(kind)
        rows = torch.tensor(rows)
        draw_boxes(ax, None, detections["boxes"][rows], detections["labels"][rows],
                   detections["scores"][rows], classes, color=COLOURS[kind], fontsize=6)  # fmt: skip
    if shown:
        ax.legend(
            handles=[Patch(color=COLOURS[k], label=k) for k in shown],
            fontsize=6,
            loc="lower right",
        )
    return ax
