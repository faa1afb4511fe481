"""The ablations' table, next to the paper's numbers, and the file the course summary shows.

Data-flow stage: **evaluation**, after it: presenting the results of
:func:`~fastrcnn_lite.experiments.ablation_svd.svd_rank_ablation`,
:func:`~fastrcnn_lite.experiments.ablation_proposals.proposal_ablation` and
:func:`~fastrcnn_lite.experiments.ablation_svm.svm_ablation` (plain dicts). Passes on one row of
formatted strings per comparison (ours, the paper's from ``fastrcnn_lite.teaching.paper``, our
difference with its interval, the paper's difference, the verdict of
:func:`~fastrcnn_lite.experiments.ablation_stats.verdict`) and ``ablations.json`` in
:func:`~fastrcnn_lite.experiments.compare_report.reports_folder`.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..checkpoint import write_json
from ..teaching.paper import FIG2_SVD, FIG3_PROPOSALS, TABLE8_SOFTMAX_SVM
from .ablation_stats import verdict
from .compare_report import reports_folder

__all__ = ["ablation_table", "save_report"]


def _signed(value: float, percent: bool = False) -> str:
    return f"{value:+.0%}" if percent else f"{value:+.3f}"


def _row(experiment: str, ours: str, paper: str, interval: dict, paper_difference: float, percent: bool = False,
         paper_text: str | None = None) -> dict[str, str]:  # fmt: skip
    low, high = interval["low"], interval["high"]
    return {
        "experiment": experiment,
        "ours": ours,
        "paper": paper,
        "ours: difference [95% interval]": f"{_signed(interval['difference'], percent)} "
        f"[{_signed(low, percent)}, {_signed(high, percent)}]",
        "paper: difference": paper_text or _signed(paper_difference, percent),
        "verdict": verdict(low, high, math.copysign(1.0, paper_difference)),
    }


def ablation_table(
    svd: dict | None = None, proposals: dict | None = None, svm: dict | None = None
) -> list[dict[str, str]]:
    """One row per comparison of the three experiments (any of them may be None): the experiment,
    ours, the paper's (``fastrcnn_lite.teaching.paper``), our difference with its interval, the
    paper's difference and the verdict (:func:`~fastrcnn_lite.experiments.ablation_stats.verdict`).
    mAP as a fraction (the paper's / 100), times as a relative change. Format with
    ``fastrcnn_lite.experiments.compare_report.format_markdown``.

    Notebook 07 shows this table (section 9)."""
    rows = []
    if svd is not None:
        by_rank = {c["fc6_rank"]: c for c in svd["curve"]}
        full, row = by_rank[None], by_rank[svd["rank"]]
        ranks = f"fc6 {svd['rank']}, fc7 {svd['fc7_rank']}"
        p = FIG2_SVD
        rows.append(_row(f"SVD ({ranks}) vs none: mAP (Fig. 2)", f"{row['map']:.3f} vs {full['map']:.3f}",
                         f"{p['map_svd'] / 100:.3f} vs {p['map'] / 100:.3f}", svd["map_difference"],
                         (p["map_svd"] - p["map"]) / 100))  # fmt: skip
        rows.append(_row(f"SVD ({ranks}): test time per image", f"{row['seconds_per_image'] * 1e3:.1f} vs "
                         f"{full['seconds_per_image'] * 1e3:.1f} ms", f"{p['total_ms_svd']:g} vs {p['total_ms']:g} ms",
                         svd["time_change"], p["total_ms_svd"] / p["total_ms"] - 1, percent=True))  # fmt: skip
        fc_paper, fc_paper_svd = p["fc6_ms"] + p["fc7_ms"], p["fc6_ms_svd"] + p["fc7_ms_svd"]
        rows.append(_row(f"SVD ({ranks}): fc6 + fc7 time per image", f"{row['fc_seconds_per_image'] * 1e3:.2f} vs "
                         f"{full['fc_seconds_per_image'] * 1e3:.2f} ms", f"{fc_paper_svd:g} vs {fc_paper:g} ms",
                         svd["fc_time_change"], fc_paper_svd / fc_paper - 1, percent=True))  # fmt: skip
    if proposals is not None:
        by_name = {c["name"]: c for c in proposals["curve"]}
        every, k = by_name["all"], proposals["fewer"]
        fewer, dense, both = by_name[f"top {k}"], by_name["dense"], by_name["all + dense"]
        n_all, n_dense = every["proposals_per_image"], dense["proposals_per_image"]
        p = FIG3_PROPOSALS
        ss = p["selective_search_map"] / 100
        rows.append(_row(f"top {k} vs all ({n_all:.0f}) SS boxes: mAP (Fig. 3)", f"{fewer['map']:.3f} vs {every['map']:.3f}",
                         "rises up to ~2k boxes", proposals["map_fewer"], -1.0, paper_text="- (1k vs 2k)"))  # fmt: skip
        rows.append(_row(f"top {k} vs all SS boxes: average recall", f"{fewer['average_recall']:.3f} vs "
                         f"{every['average_recall']:.3f}", "rises with boxes", proposals["ar_fewer"], -1.0,
                         paper_text="-"))  # fmt: skip
        rows.append(_row(f"dense ({n_dense:.0f}) vs SS boxes: mAP (test only)", f"{dense['map']:.3f} vs {every['map']:.3f}",
                         f"{p['dense_alone_map'] / 100:.3f} vs {ss:.3f} (re-trained)", proposals["map_dense"],
                         p["dense_alone_map"] / 100 - ss))  # fmt: skip
        rows.append(_row("SS + dense vs SS boxes: mAP (test only)", f"{both['map']:.3f} vs {every['map']:.3f}",
                         f"{p['selective_search_plus_dense_map'] / 100:.3f} vs {ss:.3f} (re-trained)",
                         proposals["map_all_dense"], p["selective_search_plus_dense_map"] / 100 - ss))  # fmt: skip
    if svm is not None:
        p = TABLE8_SOFTMAX_SVM
        rows.append(_row("post-hoc SVMs vs softmax: mAP (Table 8)", f"{svm['map_svm']:.3f} vs {svm['map_softmax']:.3f}",
                         f"{p['S']['svm'] / 100:.3f} vs {p['S']['softmax'] / 100:.3f} (S)", svm["map_difference"],
                         (p["S"]["svm"] - p["S"]["softmax"]) / 100,
                         paper_text=", ".join(f"{_signed((v['svm'] - v['softmax']) / 100)} ({n})"
                                              for n, v in p.items())))  # fmt: skip
    return rows


def save_report(rows: list[dict[str, str]], folder: str | Path | None = None) -> Path:
    """Write the rows of :func:`ablation_table` as ``ablations.json`` ({"rows": [...]}).

    Notebook 07 calls it, for the summary page of ``make course``.

    folder: default :func:`fastrcnn_lite.experiments.compare_report.reports_folder` (``reports/``
    in ``make course``, whose summary page shows the table). Returns the path.
    """
    folder = reports_folder() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return write_json(folder / "ablations.json", {"rows": rows})
