"""Pictures of the data stages: proposal recall curves and samples of the embedded dataset.

Data-flow stage: none (teaching aid for the **image** and **proposals** stages). It draws what
those stages pass on: a :class:`~fastrcnn_lite.proposals.RecallTable` (notebook 01) and the
first images of the embedded dataset with their ground-truth boxes (the README's picture).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from ..embedded import CLASSES
from ..embedded_files import read_manifest
from ..proposals import RecallTable
from ..voc import VOCDataset
from .viz import show_samples

__all__ = ["plot_recall", "save_samples_figure"]


def plot_recall(
    table: RecallTable,
    axes=None,
    label: str | None = None,
    ious=(0.5, 0.7),
    top_n=None,
    **style,
):
    """Two panels: recall vs IoU threshold (one line per top n) and recall vs n (one line per IoU).

    Notebook 01 draws its recall tables with this.

    Args:
        table: from :func:`~fastrcnn_lite.proposals.proposal_recall`.
        axes: two matplotlib Axes; None = a new (10, 4) figure.
        label: prefix for the legend entries (to overlay, say, fast and quality on the same axes).
        ious: the thresholds drawn in the right panel (those present in the table).
        top_n: the numbers of proposals drawn in the left panel (None = every row of the table).
        **style: passed to ``Axes.plot`` (e.g. ``linestyle="--"`` for a second table).

    Returns:
        The two Axes.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4))
    prefix = f"{label}: " if label else ""
    left, right = axes
    thresholds = table.iou_thresholds.tolist()
    for m, n in enumerate(table.top_n):
        if top_n is None or n in top_n:
            left.plot(
                thresholds, table.recall[m].tolist(), marker=".", label=f"{prefix}top {n}", **style
            )
    left.set(
        xlabel="IoU threshold", ylabel="recall", ylim=(0, 1.02), title="recall vs IoU threshold"
    )
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    for iou in ious:
        close = ((table.iou_thresholds - iou).abs() < 1e-9).nonzero()
        if len(close):
            right.plot(
                table.top_n,
                table.recall[:, int(close[0, 0])].tolist(),
                marker="o",
                label=f"{prefix}IoU {iou:g}",
                **style,
            )
    right.set(
        xscale="log",
        xlabel="number of proposals N (top N per image)",
        ylabel="recall",
        ylim=(0, 1.02),
        title="recall vs number of proposals",
    )
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=7)
    return axes


def save_samples_figure(
    root: str | Path, path: str | Path, count: int = 8, year: str = "2007"
) -> Path:
    """Save the first ``count`` trainval images with their boxes as a PNG (``assets/embedded_samples.png``).

    No notebook: ``python -m fastrcnn_lite.embedded --figure PNG`` (the README's picture).
    """
    dataset = VOCDataset(root, year, "trainval", classes=CLASSES)
    seed = (read_manifest(root, year) or {}).get("seed", "?")
    ncols = min(4, count)
    fig = show_samples(
        dataset,
        range(min(count, len(dataset))),
        ncols=ncols,
        fontsize=8,
        figsize=(3 * ncols, 3.3 * -(-count // ncols)),
    )
    fig.suptitle(
        f"The embedded dataset (seed {seed}, first {count} trainval images): ground-truth boxes, "
        "difficult ones dashed",
        fontsize=11,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
