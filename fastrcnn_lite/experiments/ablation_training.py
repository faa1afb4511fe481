"""The paper's ablations that need retraining, as short paired experiments: Tables 5 and 6.

Data-flow stage: **losses -> parameter updates** changed one setting at a time, then the whole
test path (image -> proposals -> conv map -> RoI pool -> heads -> detections -> VOC07 mAP).
Every variant is a Fast R-CNN trained by :func:`~fastrcnn_lite.train.train_fast_rcnn` (through
:func:`~fastrcnn_lite.train_cache.load_or_train_fast_rcnn`, which caches each trained model keyed
by every config field, the data and the starting weights) on a **short schedule**
(:func:`short_schedule`: ``iters`` iterations, the lr steps scaled with them), and is compared
with a **reference** trained with exactly the same schedule and the profile's default settings:
every comparison is paired (the same test images) and at equal budget.

* :func:`finetune_depth_ablation`, section 4.5 and Table 5: conv layers frozen
  (``trainable_from="fc6"``, SPPnet's situation) and every layer trained (:data:`DEEPER_LAYER`)
  against the default ``cfg.trainable_from``.
* :func:`multitask_ablation`, section 5.1 and Table 6: the reference (multi-task loss) tested
  with and without its box deltas; a model trained with the classification loss only
  (``box_loss_weight=0``) tested without box regression; stage-wise training: that model, then
  its ``bbox_pred`` alone trained with the box loss (:func:`train_box_stage`), tested with box
  regression.

Table 7 (scales) and SPPnet's five test scales are ``ablation_scales.py``; the rows of the
ablations' table, ``ablation_training_report.py``. Each result is a plain dict (JSON) cached by
:func:`~fastrcnn_lite.experiments.ablation_common.cached_result` under the short config (every
field, the schedule included) and :func:`training_key` (the data, the proposals, the start);
intervals and verdicts as ``ablations.py``'s docstring defines them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import torch
from torch import Tensor

from ..checkpoint import proposals_digest, tensors_digest
from ..config import Config
from ..data import dataset_digest
from ..detect import postprocess_detections
from ..fast_rcnn import FastRCNN
from ..pretrain import pretrained_backbone
from ..progress import tqdm
from ..regions import check_proposals, dataset_key, load_image, load_target
from ..train import train_fast_rcnn
from ..train_cache import load_or_train_fast_rcnn
from .ablation_common import cached_result, to_cpu, voc07_map
from .ablation_stats import map_interval

__all__ = [
    "SHORT_ITERS",
    "DEEPER_LAYER",
    "short_schedule",
    "training_key",
    "train_variant",
    "train_box_stage",
    "variant_detections",
    "finetune_depth_ablation",
    "multitask_ablation",
]

SHORT_ITERS = 300  # the short schedule's iterations (the embedded reference trains 1500)
# "All layers" of Table 5 per backbone: the paper's deepest setting is conv2_1 and up (VGG16).
DEEPER_LAYER = {"small": "conv1", "alexnet": "conv1", "vgg16": "conv2_1"}


def short_schedule(cfg: Config, iters: int = SHORT_ITERS) -> Config:
    """``cfg`` with ``max_iters = iters`` and each of ``cfg.lr_steps`` scaled by ``iters / cfg.max_iters``.

    No notebook: the schedule of every model of the retraining ablations (notebook 07 prints it).
    The embedded profile's 1500 iterations with a step at 1100 become 300 with a step at 220.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1 SGD iteration; got {iters}.")
    steps = tuple(max(1, round(s * iters / cfg.max_iters)) for s in cfg.lr_steps)
    return cfg.replace(max_iters=int(iters), lr_steps=steps)


def training_key(cfg: Config, train_ds, train_props, test_ds, test_props, pretrained: bool) -> dict:
    """What a retraining ablation's result depends on besides ``cfg`` (whose every field, the
    schedule included, ``cached_result`` hashes): both splits (their content, through
    :func:`~fastrcnn_lite.data.dataset_digest`), their proposals and the starting weights.

    No notebook: the cache keys of this module and ``ablation_scales.py``."""
    start = "scratch"
    if pretrained:
        backbone = pretrained_backbone(cfg, train_ds, progress=False)
        start = tensors_digest(
            [*backbone.body.state_dict().values(), *backbone.fc.state_dict().values()]
        )
    return {"train": dataset_key(train_ds), "train_data": dataset_digest(train_ds),
            "train_proposals": proposals_digest(train_props), "test": dataset_key(test_ds),
            "test_data": dataset_digest(test_ds), "test_proposals": proposals_digest(test_props),
            "start": start}  # fmt: skip


def train_variant(cfg: Config, train_ds, train_props: Sequence[Tensor], pretrained: bool = True,
                  progress: bool = True) -> tuple[FastRCNN, dict]:  # fmt: skip
    """A Fast R-CNN trained with ``cfg`` by :func:`~fastrcnn_lite.train_cache.load_or_train_fast_rcnn`
    (cached by every config field, the data and the starting weights): (model in eval mode,
    info with ``train_seconds`` and ``from_cache``).

    No notebook: every variant of the retraining ablations."""
    model, info = load_or_train_fast_rcnn(cfg, train_ds, list(train_props), progress=progress,
                                          pretrained=pretrained)  # fmt: skip
    return model.eval(), info


def train_box_stage(model: FastRCNN, cfg: Config, train_ds, train_props: Sequence[Tensor], iters: int,
                    progress: bool = True) -> tuple[FastRCNN, dict]:  # fmt: skip
    """Stage-wise training's second stage (Table 6): a copy of ``model`` whose ``bbox_pred`` alone
    is trained with the box loss (weight ``cfg.box_loss_weight``, normally 1) for ``iters``
    iterations of :func:`~fastrcnn_lite.train.train_fast_rcnn` (``cfg``'s sampling and lr, its
    lr steps scaled by :func:`short_schedule`); every other parameter is frozen, so frozen
    BatchNorm layers keep their statistics (``FastRCNN.train``) and only ``bbox_pred`` changes.

    No notebook: :func:`multitask_ablation` calls it; ``model`` is left unchanged.

    Returns:
        (the trained copy in eval mode, {"train_seconds": ..., "iterations": iters}).
    """
    if cfg.box_loss_weight <= 0:
        raise ValueError(f"the box stage trains with the box loss: cfg.box_loss_weight must be > 0; "
                         f"got {cfg.box_loss_weight}.")  # fmt: skip
    staged = copy.deepcopy(model)
    for name, p in staged.named_parameters():
        p.requires_grad_(name.startswith("head.bbox_pred."))
    staged.box_loss_weight = cfg.box_loss_weight
    result = train_fast_rcnn(
        staged, train_ds, list(train_props), short_schedule(cfg, iters), progress=progress
    )
    return staged.eval(), {"train_seconds": result["train_seconds"], "iterations": iters}


def _no_box_regression(model: FastRCNN, logits: Tensor, props: Tensor, size) -> dict:
    """Detections scored by the softmax, each box its proposal (no box deltas applied)."""
    scores = torch.softmax(logits, dim=1)[:, 1:]  # (P, K)
    boxes = props[:, None, :].expand(len(props), model.num_classes, 4)  # (P, K, 4)
    return postprocess_detections(boxes, scores, size, model.score_thresh, model.nms_thresh,
                                  model.detections_per_img)  # fmt: skip


def variant_detections(model: FastRCNN, test_ds, test_props: Sequence[Tensor], scales: Sequence[int] | None = None,
                    max_size: int | None = None, target_area: float | None = None, progress: bool = True,
                    desc: str = "test") -> dict[str, list[dict]]:  # fmt: skip
    """Detections of ``model`` on every test image, with and without box regression, from one
    :meth:`~fastrcnn_lite.fast_rcnn.FastRCNN.score_proposals` pass per image (``scales``,
    ``max_size``, ``target_area``: None = the model's own; several scales = the image pyramid,
    each RoI pooled at the scale of :func:`~fastrcnn_lite.transforms.pyramid_levels`).

    No notebook: the retraining ablations test every variant with it.

    Returns:
        {"box_regression": [...], "proposals": [...]}: per image a dict with ``boxes``
        Tensor[D, 4], ``scores`` Tensor[D], ``labels`` Tensor[D] on the CPU; "proposals" keeps
        each proposal as its box (the softmax scores it, its deltas are not applied).
    """
    check_proposals(test_ds, test_props)
    model.eval()
    device = next(model.parameters()).device
    out = {"box_regression": [], "proposals": []}
    with torch.inference_mode():
        for i in tqdm(range(len(test_ds)), desc=desc, disable=not progress):
            image, props = load_image(test_ds, i).to(device), test_props[i].float().to(device)
            if len(props) == 0:
                for dets in out.values():
                    dets.append(model._empty_detections(torch.device("cpu")))
                continue
            size = tuple(image.shape[-2:])
            logits, deltas = model.score_proposals(image, props, scales, max_size, target_area)
            out["box_regression"].append(to_cpu(model.postprocess(logits, deltas, props, size)))
            out["proposals"].append(to_cpu(_no_box_regression(model, logits, props, size)))
    return out


def _conv_parameters(model: FastRCNN) -> int:
    return sum(p.numel() for p in model.body.parameters() if p.requires_grad)


def finetune_depth_ablation(cfg: Config, train_ds, train_props: Sequence[Tensor], test_ds,
                            test_props: Sequence[Tensor], iters: int = SHORT_ITERS, deeper: str | None = None,
                            rounds: int = 200, pretrained: bool = True, progress: bool = True) -> dict:  # fmt: skip
    """Which layers to fine-tune (section 4.5, Table 5), on the short schedule.

    Notebook 07 runs it (section 9).

    Three Fast R-CNNs, each trained for ``iters`` iterations (:func:`short_schedule`) from the
    same start: conv layers frozen (``trainable_from="fc6"``: only fc6 and up learn, SPPnet's
    situation), the reference (``cfg.trainable_from``) and a deeper setting (``deeper``, default
    :data:`DEEPER_LAYER` of the backbone: every layer of the small one). All tested at
    ``cfg.test_scales`` with box regression.

    Args:
        cfg: the profile (``Config.embedded()``); train_ds, train_props, test_ds, test_props:
            the splits and their proposals (lists of Tensor[P_i, 4]).
        iters: the short schedule's iterations; rounds: bootstrap draws.
        pretrained: start from :func:`~fastrcnn_lite.pretrain.pretrained_backbone` (False: random
            weights, the tests' tiny settings).

    Returns:
        dict with ``curve``: one dict per variant (``trainable_from``, ``map``,
        ``trainable_conv_parameters``, ``train_seconds``) in the order fc6, reference, deeper;
        ``reference`` (its ``trainable_from``), ``deeper``; ``map_fc6``, ``map_deeper``
        (intervals of each minus the reference); ``iters``, ``lr_steps``, ``num_test_images``,
        ``from_cache``.
    """
    short = short_schedule(cfg, iters)
    deeper = deeper or DEEPER_LAYER.get(cfg.backbone, "conv1")
    settings = ["fc6", cfg.trainable_from, deeper]
    if len(set(settings)) != 3:
        raise ValueError(
            f"fc6, cfg.trainable_from and deeper must be three different layers; got {settings}."
        )
    key = training_key(short, train_ds, train_props, test_ds, test_props, pretrained) | {
        "deeper": deeper, "rounds": rounds}  # fmt: skip

    def compute() -> dict:
        targets = [load_target(test_ds, i) for i in range(len(test_ds))]
        curve, detections = [], {}
        for layer in settings:
            model, info = train_variant(short.replace(trainable_from=layer), train_ds, train_props, pretrained,
                                        progress)  # fmt: skip
            detections[layer] = variant_detections(model, test_ds, test_props, progress=progress,
                                                desc=f"from {layer}")["box_regression"]  # fmt: skip
            curve.append({"trainable_from": layer, "map": voc07_map(detections[layer], targets, test_ds.classes),
                          "trainable_conv_parameters": _conv_parameters(model),
                          "train_seconds": info["train_seconds"]})  # fmt: skip
        ref = detections[cfg.trainable_from]
        return {
            "curve": curve, "reference": cfg.trainable_from, "deeper": deeper,
            "map_fc6": map_interval(detections["fc6"], ref, targets, test_ds.classes, rounds),
            "map_deeper": map_interval(detections[deeper], ref, targets, test_ds.classes, rounds),
            "iters": short.max_iters, "lr_steps": list(short.lr_steps), "num_test_images": len(test_ds),
        }  # fmt: skip

    return cached_result(short, "ablation_finetune_depth", key, compute)


def multitask_ablation(cfg: Config, train_ds, train_props: Sequence[Tensor], test_ds, test_props: Sequence[Tensor],
                       iters: int = SHORT_ITERS, box_stage_iters: int | None = None, rounds: int = 200,
                       pretrained: bool = True, progress: bool = True) -> dict:  # fmt: skip
    """Multi-task vs stage-wise training, with and without test-time box regression (section 5.1, Table 6).

    Notebook 07 runs it (section 9).

    * multi-task: the reference (the short schedule, ``cfg``'s loss), tested with its box
      deltas applied and without them (each proposal its own box);
    * classification only: the same schedule with ``box_loss_weight=0``, tested without box
      regression (its ``bbox_pred`` never learned);
    * stage-wise: that model, then :func:`train_box_stage` (``bbox_pred`` alone, the box loss,
      ``box_stage_iters`` iterations, default ``iters // 2``), tested with box regression.

    Args: as :func:`finetune_depth_ablation`.

    Returns:
        dict with ``map_multi_task`` and ``map_multi_task_no_box`` (the reference with / without
        box regression), ``map_classification_only`` (no box regression), ``map_stage_wise``
        (with); intervals ``map_stage_wise_vs_multi_task`` (both with box regression),
        ``map_classification_vs_multi_task`` (both without), ``map_box_regression`` (the
        reference with minus without); ``train_seconds`` per model (``multi_task``,
        ``classification_only``, ``box_stage``); ``iters``, ``box_stage_iters``, ``lr_steps``,
        ``num_test_images``, ``from_cache``.
    """
    short = short_schedule(cfg, iters)
    box_stage_iters = max(1, iters // 2) if box_stage_iters is None else int(box_stage_iters)
    key = training_key(short, train_ds, train_props, test_ds, test_props, pretrained) | {
        "box_stage_iters": box_stage_iters, "rounds": rounds}  # fmt: skip

    def compute() -> dict:
        classes = test_ds.classes
        targets = [load_target(test_ds, i) for i in range(len(test_ds))]
        reference, ref_info = train_variant(short, train_ds, train_props, pretrained, progress)
        multi = variant_detections(
            reference, test_ds, test_props, progress=progress, desc="multi-task"
        )
        cls_only, cls_info = train_variant(short.replace(box_loss_weight=0.0), train_ds, train_props, pretrained,
                                           progress)  # fmt: skip
        no_box = variant_detections(
            cls_only, test_ds, test_props, progress=progress, desc="classification only"
        )
        start = time.perf_counter()
        staged, stage_info = train_box_stage(
            cls_only, short, train_ds, train_props, box_stage_iters, progress
        )
        stage_info["wall_seconds"] = time.perf_counter() - start
        stage = variant_detections(
            staged, test_ds, test_props, progress=progress, desc="stage-wise"
        )
        with_box, without = multi["box_regression"], multi["proposals"]
        return {
            "map_multi_task": voc07_map(with_box, targets, classes),
            "map_multi_task_no_box": voc07_map(without, targets, classes),
            "map_classification_only": voc07_map(no_box["proposals"], targets, classes),
            "map_stage_wise": voc07_map(stage["box_regression"], targets, classes),
            "map_stage_wise_vs_multi_task": map_interval(stage["box_regression"], with_box, targets, classes, rounds),
            "map_classification_vs_multi_task": map_interval(no_box["proposals"], without, targets, classes, rounds),
            "map_box_regression": map_interval(with_box, without, targets, classes, rounds),
            "train_seconds": {"multi_task": ref_info["train_seconds"], "classification_only": cls_info["train_seconds"],
                              "box_stage": stage_info["train_seconds"]},
            "iters": short.max_iters, "box_stage_iters": box_stage_iters, "lr_steps": list(short.lr_steps),
            "num_test_images": len(test_ds),
        }  # fmt: skip

    return cached_result(short, "ablation_multitask", key, compute)
