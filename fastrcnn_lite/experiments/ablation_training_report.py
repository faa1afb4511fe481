"""The retraining ablations' rows, in the format of the ablations' table (one summary table).

Data-flow stage: **evaluation**, after it: the results of
:func:`~fastrcnn_lite.experiments.ablation_training.finetune_depth_ablation`,
:func:`~fastrcnn_lite.experiments.ablation_training.multitask_ablation`,
:func:`~fastrcnn_lite.experiments.ablation_scales.multiscale_ablation` and
:func:`~fastrcnn_lite.experiments.ablation_scales.sppnet_scales_ablation` (plain dicts) become
rows like :func:`~fastrcnn_lite.experiments.ablation_report.ablation_table`'s (the experiment,
ours, the paper's from ``fastrcnn_lite.teaching.paper``, our difference with its interval, the
paper's difference, the verdict), to append to that table and save with ``save_report``.

Where ``fastrcnn_lite.teaching.paper`` records no number (Table 6 without test-time box
regression; SPPnet at one scale), the paper column says "not recorded" and the verdict is taken against
the sign the row names (the paper's sign for the same comparison with box regression; five scales
better than one, as in Table 7).
"""

from __future__ import annotations

from ..teaching.paper import FINETUNE_DEPTH_MAP, TABLE4_VGG16, TABLE6_MULTITASK, TABLE7_SCALES
from .ablation_report import _row, _signed

__all__ = ["training_ablation_rows"]


def _pair(a: float, b: float) -> str:
    return f"{a:.3f} vs {b:.3f}"


def training_ablation_rows(depth: dict | None = None, multitask: dict | None = None, scales: dict | None = None,
                           sppnet: dict | None = None) -> list[dict[str, str]]:  # fmt: skip
    """One row per comparison of the retraining ablations (any of them may be None), in the
    format of :func:`~fastrcnn_lite.experiments.ablation_report.ablation_table`: up to 2 rows
    for ``depth`` (fc6 only, and the deeper setting, vs the reference), 3 for ``multitask``
    (stage-wise vs multi-task with box regression; classification-only vs multi-task without;
    the reference with vs without test-time box regression), 2 for ``scales`` (mAP, test time)
    and 1 for ``sppnet`` (mAP). mAP as a fraction (the paper's / 100), times as a relative change.

    Notebook 07 appends them to the ablations' table (section 9).
    """
    rows = []
    if depth is not None:
        by_layer = {c["trainable_from"]: c for c in depth["curve"]}
        ref, fc6, deeper = by_layer[depth["reference"]], by_layer["fc6"], by_layer[depth["deeper"]]
        p = FINETUNE_DEPTH_MAP
        short = f"{depth['iters']} it."
        rows.append(_row(f"fc6 and up vs {depth['reference']} and up ({short}): mAP (Table 5)",
                         _pair(fc6["map"], ref["map"]), f"{p['fc6'] / 100:.3f} vs {p['conv3_1'] / 100:.3f}",
                         depth["map_fc6"], (p["fc6"] - p["conv3_1"]) / 100))  # fmt: skip
        rows.append(_row(f"{depth['deeper']} and up vs {depth['reference']} and up ({short}): mAP (Table 5)",
                         _pair(deeper["map"], ref["map"]),
                         f"{p['conv2_1'] / 100:.3f} vs {p['conv3_1'] / 100:.3f} (conv2_1 vs conv3_1)",
                         depth["map_deeper"], (p["conv2_1"] - p["conv3_1"]) / 100))  # fmt: skip
    if multitask is not None:
        m, p = multitask, TABLE6_MULTITASK
        per_net = ", ".join(
            f"{_signed((v['stage_wise'] - v['multi_task']) / 100)} ({n})" for n, v in p.items()
        )
        sign = (p["S"]["stage_wise"] - p["S"]["multi_task"]) / 100
        rows.append(_row(f"stage-wise vs multi-task, box reg. ({m['iters']} + {m['box_stage_iters']} it.): "
                         "mAP (Table 6)", _pair(m["map_stage_wise"], m["map_multi_task"]),
                         f"{p['S']['stage_wise'] / 100:.3f} vs {p['S']['multi_task'] / 100:.3f} (S)",
                         m["map_stage_wise_vs_multi_task"], sign, paper_text=per_net))  # fmt: skip
        rows.append(_row("classification only vs multi-task, no box reg.: mAP (Table 6)",
                         _pair(m["map_classification_only"], m["map_multi_task_no_box"]), "not recorded",
                         m["map_classification_vs_multi_task"], sign,
                         paper_text="- (sign taken: multi-task better, as with box reg.)"))  # fmt: skip
        rows.append(_row("multi-task model with vs without test-time box reg.: mAP",
                         _pair(m["map_multi_task"], m["map_multi_task_no_box"]), "not recorded",
                         m["map_box_regression"], 1.0, paper_text="- (sign taken: box reg. helps)"))  # fmt: skip
    if scales is not None:
        s, p = scales, TABLE7_SCALES
        n = len(s["scales"])
        rows.append(_row(f"{n} scales vs 1, trained and tested ({s['iters']} it.): mAP (Table 7)",
                         _pair(s["map_five"], s["map_single"]), f"{p['S']['five'] / 100:.3f} vs {p['S']['single'] / 100:.3f} (S)",
                         s["map_difference"], (p["S"]["five"] - p["S"]["single"]) / 100,
                         paper_text=", ".join(f"{_signed((v['five'] - v['single']) / 100)} ({k})"
                                              for k, v in p.items())))  # fmt: skip
        rows.append(_row(f"{n} scales vs 1: test time per image (Table 7)",
                         f"{s['seconds_five'] * 1e3:.1f} vs {s['seconds_single'] * 1e3:.1f} ms",
                         f"{p['S']['five_seconds'] * 1e3:g} vs {p['S']['single_seconds'] * 1e3:g} ms (S)",
                         s["time_change"], p["S"]["five_seconds"] / p["S"]["single_seconds"] - 1, percent=True))  # fmt: skip
    if sppnet is not None:
        s = sppnet
        rows.append(_row(f"SPPnet, {len(s['scales'])} test scales vs 1 (no retraining): mAP",
                         _pair(s["map_five"], s["map_single"]),
                         f"{TABLE4_VGG16['SPPnet']['map'] / 100:.3f} (5 scales) vs not recorded",
                         s["map_difference"], 1.0, paper_text="- (sign taken: more scales help, Table 7)"))  # fmt: skip
    return rows
