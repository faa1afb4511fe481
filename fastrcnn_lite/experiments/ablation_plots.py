"""The ablations' figure: the SVD curve (paper Fig. 2) and the proposals curve (Fig. 3).

Data-flow stage: **evaluation**, after it: draws the ``curve`` entries of
:func:`~fastrcnn_lite.experiments.ablation_svd.svd_rank_ablation` and
:func:`~fastrcnn_lite.experiments.ablation_proposals.proposal_ablation` (plain dicts) into a
matplotlib Figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

__all__ = ["plot_ablations"]


def plot_ablations(svd: dict, proposals: dict, figsize: tuple[float, float] = (11, 3.4)):
    """Two panels: mAP and test time vs fc6's SVD rank; mAP and average recall vs proposals per image
    (selective search top k, all; dense boxes alone and added, as single points). Returns the figure.

    Notebook 07 draws it (section 9)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=figsize)
    curve = [c for c in svd["curve"] if c["fc6_rank"] is not None]
    full = next(c for c in svd["curve"] if c["fc6_rank"] is None)
    ranks = [c["fc6_rank"] for c in curve]
    ax1.plot(ranks, [c["map"] for c in curve], "o-", color="C0", label="mAP, SVD")
    ax1.axhline(full["map"], color="C0", ls=":", label="mAP, no SVD")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel(f"fc6 rank (fc7 rank {svd['fc7_rank']})")
    ax1.set_ylabel("mAP (VOC07)")
    twin = ax1.twinx()
    twin.plot(
        ranks, [c["seconds_per_image"] * 1e3 for c in curve], "s--", color="C3", label="time, SVD"
    )
    twin.axhline(full["seconds_per_image"] * 1e3, color="C3", ls=":", label="time, no SVD")
    twin.set_ylabel("test time per image (ms)", color="C3")
    twin.set_ylim(bottom=0)
    lines = ax1.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax1.legend(lines, [h.get_label() for h in lines], fontsize=7, loc="lower right")
    ax1.set_title("truncated SVD of fc6 (paper Fig. 2)", fontsize=10)

    selective = [c for c in proposals["curve"] if c["name"] not in ("dense", "all + dense")]
    x = [c["proposals_per_image"] for c in selective]
    ax2.plot(x, [c["map"] for c in selective], "o-", color="C0", label="mAP, selective search")
    ax2.plot(
        x, [c["average_recall"] for c in selective], "o--", color="C2", label="AR, selective search"
    )
    for name, marker in (("dense", "D"), ("all + dense", "^")):
        c = next(c for c in proposals["curve"] if c["name"] == name)
        ax2.plot([c["proposals_per_image"]], [c["map"]], marker, color="C0", label=f"mAP, {name}")
        ax2.plot([c["proposals_per_image"]], [c["average_recall"]], marker, color="C2", mfc="none",
                 label=f"AR, {name}")  # fmt: skip
    ax2.set_xscale("log")
    ax2.set_xlabel("proposals per image (mean)")
    ax2.set_ylabel("mAP / average recall")
    ax2.set_ylim(0, 1)
    ax2.legend(fontsize=7, loc="lower right", ncol=2)
    ax2.set_title("proposals per image (paper Fig. 3), tested on the trained model", fontsize=10)
    fig.tight_layout()
    return fig
