"""The comparison's protocol in one table: what each system gets, what the papers did, whom it favours.

Notebook 07 prints it before the comparison, so that every number after it is read against the
setting that produced it (issue: the paper's findings shown fairly). Each row is read from the
code that runs (the config and the systems' own defaults), not typed in: change a default and
the table changes with it. The last column names the direction of each difference from the
papers' protocol: which system it makes look better (in mAP, training time, test time or disk)
than it would under the papers' protocol, or "none" where all three are treated alike.
"""

from __future__ import annotations

import inspect

from ..config import Config
from ..rcnn import finetune_iterations as rcnn_iterations
from ..regions import resolve_max_proposals
from ..sppnet_finetune import finetune_iterations as spp_iterations
from ..sppnet_finetune import finetune_spp_fc

__all__ = ["COLUMNS", "protocol_rows", "format_protocol"]

COLUMNS = ("setting", "R-CNN", "SPPnet", "Fast R-CNN", "the papers", "favours")


def _proposals_used() -> str:
    cap = resolve_max_proposals("auto")
    return (
        "all proposals (+ gt) of every training image"
        if cap is None
        else f"{cap} random per image (+ gt)"
    )


def _spp_background_per_image() -> int:
    """The background windows per image SPPnet's fine-tuning pools (``finetune_spp_fc``'s default)."""
    return inspect.signature(finetune_spp_fc).parameters["bg_per_image"].default


def protocol_rows(cfg: Config) -> list[dict[str, str]]:
    """The protocol of the comparison under ``cfg``, one dict per setting (keys: :data:`COLUMNS`).

    Notebook 07 prints it (:func:`format_protocol`).
    """
    small = cfg.backbone == "small"
    scale = f"{cfg.test_scales[0]} px (max {cfg.max_size})"
    regions = _proposals_used()
    # R-CNN's warp is the backbone's input size: stride 8 x the pool size for the small one
    # (backbones.small_backbone), 224 for VGG16, 227 for AlexNet.
    side = {"small": 8 * cfg.pool_size[0], "alexnet": 227}.get(cfg.backbone, 224)
    warp = f"{side} x {side}"
    rows = [
        {
            "setting": "proposals",
            "R-CNN": (
                f"all selective-search boxes of every image (at most {cfg.proposals_per_image}), "
                "training and test"
            ),
            "SPPnet": "all of them, the same boxes",
            "Fast R-CNN": "all of them, the same boxes",
            "the papers": "selective search, ~2000 per image",
            "favours": "none",
        },
        {
            "setting": "starting network",
            "R-CNN": "`pretrained_backbone`",
            "SPPnet": "the same",
            "Fast R-CNN": "the same",
            "the papers": "ImageNet classifier (VGG16)",
            "favours": (
                "R-CNN: our stand-in is pre-trained on crops of the training boxes, "
                "which is R-CNN's own input"
                if small
                else "none"
            ),
        },
        {
            "setting": "layers fine-tuned",
            "R-CNN": "all",
            "SPPnet": "fc6 and up (conv below the pyramid frozen)",
            "Fast R-CNN": f"from {cfg.trainable_from} up",
            "the papers": "the same (Fast R-CNN from conv3_1)",
            "favours": "none",
        },
        {
            "setting": "fine-tuning SGD iterations x batch",
            "R-CNN": f"{rcnn_iterations(cfg, cfg.backbone)} x 128 warped windows",
            "SPPnet": f"{spp_iterations(cfg, cfg.backbone)} x 128 pyramids",
            "Fast R-CNN": (
                f"{cfg.max_iters} x {cfg.images_per_batch} images x {cfg.batch_size_per_image} RoIs"
            ),
            "the papers": "each to convergence on its schedule (Fast R-CNN 40k x 128 RoIs)",
            "favours": (
                "R-CNN and SPPnet training time (fewer steps); it may cost them mAP"
                if small
                else "none"
            ),
        },
        {
            "setting": "regions for features, SVMs, hard negatives",
            "R-CNN": regions,
            "SPPnet": regions,
            "Fast R-CNN": "(no SVMs; RoIs sampled from all proposals)",
            "the papers": "all proposals of every training image",
            "favours": (
                "R-CNN and SPPnet training time and disk; fewer negatives may cost them mAP"
                if resolve_max_proposals("auto") is not None
                else "none"
            ),
        },
        {
            "setting": "SPPnet's fine-tuning windows",
            "R-CNN": "all windows of all images (warped per mini-batch)",
            "SPPnet": f"all foreground + {_spp_background_per_image()} random background per image, pooled once",
            "Fast R-CNN": (
                f"({cfg.batch_size_per_image} RoIs sampled per image per iteration from all proposals)"
            ),
            "the papers": "all windows of all images",
            "favours": "SPPnet training time (fewer pyramids pooled); fewer negatives may cost it mAP",
        },
        {
            "setting": "bias learning rate",
            "R-CNN": "x1",
            "SPPnet": "x1",
            "Fast R-CNN": f"x{cfg.bias_lr_factor:g}",
            "the papers": "x2 for all",
            "favours": "unclear, small (the models cached so far were trained so)",
        },
        {
            "setting": "test geometry",
            "R-CNN": f"{scale}, each proposal warped to {warp}",
            "SPPnet": f"{scale}, one conv pass",
            "Fast R-CNN": f"{scale}, one conv pass",
            "the papers": "600 px (max 1000), ~2000 proposals, warps 224 x 224",
            "favours": (
                "R-CNN's test time: with few, small warps its per-proposal network is cheap"
                if small
                else "none"
            ),
        },
        {
            "setting": "test time per image",
            "R-CNN": "decoded image + proposals -> detections",
            "SPPnet": "the same",
            "Fast R-CNN": "the same",
            "the papers": "the same, excluding proposals",
            "favours": "none (the four interleaved image by image)",
        },
    ]
    return rows


def format_protocol(rows: list[dict[str, str]]) -> str:
    """The rows as a Markdown table. Notebook 07 displays it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)
