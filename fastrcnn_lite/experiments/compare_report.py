"""The comparison's report: the table beside the paper's Table 4, its charts, the files written.

Data-flow stage: **evaluation**, after it: presenting what
:func:`fastrcnn_lite.experiments.compare.compare_detectors` measured (its ``systems``: per system
``map``, ``train_seconds``, ``test_seconds_per_image``, ``cache_bytes``, ``parameters``; its
``detections`` and ``targets`` for the pictures). Passes on formatted strings (a table row per
system, Markdown), matplotlib figures and two files in :func:`reports_folder`:
``comparison.json`` and ``comparison.png``, which the summary page of ``make course``
(``tools/run_course.py``) shows.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..config import resolve_path
from ..detector import SYSTEMS
from ..teaching.paper import TABLE4_VGG16
from ..teaching.viz import draw_boxes
from .compare_stats import check_result

__all__ = [
    "PAPER_DISK",
    "DISPLAY_THRESH",
    "format_seconds",
    "format_bytes",
    "comparison_table",
    "format_markdown",
    "plot_comparison",
    "plot_side_by_side",
    "reports_folder",
    "save_report",
]

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
    """A duration for a table: ``'0.0123 s'``, ``'4.56 s'``, ``'95 s'``, ``'12.3 min'``, ``'2.1 h'``.

    Notebook 07 prints its times with it."""
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
    unit every notebook prints sizes in).

    Notebook 07 prints the feature caches' sizes with it."""
    if num == 0:
        return "0"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if num >= size:
            return f"{num / size:.1f} {unit}"
    return f"{num} B"


# ----------------------------------------------------------------------------------------------
# Table, figures, report
# ----------------------------------------------------------------------------------------------
def comparison_table(result: dict) -> list[dict[str, str]]:
    """One row per system: our measurements with the paper's Table 4 (VGG16, VOC07) beside them.

    Notebook 07 shows this table.

    The speedup is recomputed from the test times (R-CNN's / the system's). Values are
    formatted strings, ready for Markdown/HTML and ``reports/comparison.json``; the paper's
    train times are hours on one GPU, ours are seconds on this machine.

    Returns:
        list of dicts with the columns ``system``, ``mAP``, ``paper mAP``, ``train time``,
        ``paper train``, ``test / image``, ``paper test / image``, ``speedup``,
        ``paper speedup``, ``feature cache``, ``paper cache``, ``parameters``.
    """
    systems = check_result(result)
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
    """The rows of :func:`comparison_table` (or of ``ablations.ablation_table``) as a Markdown
    table. Notebook 07 prints both tables with it."""
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

    Notebook 07 draws it; :func:`save_report` saves it as ``comparison.png``.

    Train time is shown relative to Fast R-CNN's (ours in seconds on a CPU, the paper's in hours
    on a GPU: only the ratios compare).

    Returns:
        the matplotlib Figure.
    """
    systems = check_result(result)
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

    Notebook 07 draws it.

    Ground truth is drawn dashed in white under the detections; a detection is drawn when its
    score exceeds ``thresholds[system]`` (default :data:`DISPLAY_THRESH`: SVM margin > 0,
    softmax probability > 0.5).

    Returns:
        the matplotlib Figure.
    """
    check_result(result)
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

    No notebook: :func:`save_report` and ``ablations.save_report`` (both called by notebook 07).
    """
    return Path(os.environ.get("FASTRCNN_REPORTS") or resolve_path("reports"))


def save_report(result: dict, folder: str | Path | None = None, fig=None) -> tuple[Path, Path]:
    """Write ``comparison.json`` ({"rows": comparison_table(result), "note": ...}) and ``comparison.png``.

    Notebook 07 calls it, for the summary page of ``make course``.

    Args:
        folder: where to write. Default: ``$FASTRCNN_REPORTS`` when set, else
            ``resolve_path("reports")``, which ``tools/run_course.py`` reads for the summary page.
            ``make course`` sets ``FASTRCNN_REPORTS=reports``; ``make test`` points it at a scratch
            folder, so a test run never overwrites the report of the last course run.
        fig: the figure to save (default: a new :func:`plot_comparison`).

    Returns:
        (json path, png path).
    """
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
