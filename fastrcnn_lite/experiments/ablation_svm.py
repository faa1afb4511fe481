"""Softmax vs post-hoc SVMs on a trained Fast R-CNN's own fc7 (paper section 5.4, Table 8).

Data-flow stage: **heads**: one-vs-rest linear SVMs (``fastrcnn_lite.svm.train_svms`` on
``fastrcnn_lite.region_heads.SVMRegions``, R-CNN's training set: gt boxes positive, IoU <
``cfg.svm_neg_iou`` negative, hard-negative mining) trained on the model's fc7 (Tensor[G + P, F]
per training image), against the model's softmax. At test time both score the same fc7
(Tensor[P, F]): SVM margins Tensor[P, K], softmax logits Tensor[P, K + 1]; both decode the
model's own ``bbox_pred`` (Tensor[P, 4K]) and end with the same per-class NMS. Passes on both
mAPs and the interval of their difference (``ablation_stats.map_interval``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..boxes import decode_boxes
from ..checkpoint import proposals_digest
from ..config import Config
from ..detect import postprocess_detections
from ..fast_rcnn import FastRCNN
from ..progress import tqdm
from ..region_heads import SVM_SCORE_THRESH, SVMRegions
from ..regions import check_proposals, dataset_key, load_image, load_target
from ..svm import train_svms
from ..voc import gt_for_training
from .ablation_common import (
    cached_result,
    check_inputs,
    evaluation_key,
    pooled_features,
    to_cpu,
    voc07_map,
)
from .ablation_stats import map_interval

__all__ = ["svm_ablation"]


def svm_ablation(
    model: FastRCNN,
    cfg: Config,
    train_ds,
    train_proposals: Sequence[Tensor],
    test_ds,
    test_proposals: Sequence[Tensor],
    rounds: int = 200,
    progress: bool = True,
) -> dict:
    """Softmax vs post-hoc SVMs on the model's own fc7 (paper section 5.4, Table 8).

    Notebook 07 runs it (section 9).

    Training: for each training image, one conv pass at ``cfg.scales[0]`` (no flip), fc7 of its
    gt boxes (not difficult) and of all its proposals; ``SVMRegions`` labels them as R-CNN does
    (gt boxes positive; IoU < ``cfg.svm_neg_iou`` with every gt box of a class: a negative of
    that class) and ``train_svms`` mines hard negatives (``cfg.svm_C``,
    ``cfg.svm_hard_negative_rounds``, ``cfg.seed``). The regions' loader hands over fc7 itself
    (its feature function is the identity): the adapter from Fast R-CNN to the SVM stage.
    Test: the same fc7 scored by the softmax (``cls_score``) and by the SVMs (threshold
    ``SVM_SCORE_THRESH`` on the margins); both decode the model's own ``bbox_pred`` and end with
    the same per-class NMS.

    Returns:
        dict with ``map_softmax``, ``map_svm``, ``map_difference`` (SVM - softmax, interval),
        ``svm_train_images``, ``num_test_images``, ``from_cache``.
    """
    check_inputs(model, test_ds, test_proposals)
    check_proposals(train_ds, train_proposals)
    if len(cfg.scales) != 1:
        raise ValueError(
            f"svm_ablation computes training features at one scale; cfg.scales is {cfg.scales}."
        )
    key = evaluation_key(model, test_ds, test_proposals) | {
        "train": dataset_key(train_ds),
        "train_proposals": proposals_digest(train_proposals),
        "rounds": rounds,
    }

    def compute() -> dict:
        return _svm(
            model, cfg, train_ds, train_proposals, test_ds, test_proposals, rounds, progress
        )

    return cached_result(cfg, "ablation_svm", key, compute)


def _svm_detections(
    model: FastRCNN, scores: Tensor, box_deltas: Tensor, boxes: Tensor, size
) -> dict:
    """Detections from SVM margins (Tensor[P, K]) and the model's own box deltas (Tensor[P, 4K])."""
    num, k = scores.shape
    deltas = box_deltas.reshape(num, k, 4) * model.box_stds + model.box_means  # (P, K, 4)
    class_boxes = decode_boxes(boxes, deltas.reshape(num, 4 * k)).reshape(num, k, 4)  # (P, K, 4)
    return postprocess_detections(class_boxes, scores, size, SVM_SCORE_THRESH, model.nms_thresh,
                                  model.detections_per_img)  # fmt: skip


def _svm(model, cfg, train_ds, train_props, test_ds, test_props, rounds, progress) -> dict:
    model.eval()
    device = next(model.parameters()).device

    def load(index: int) -> tuple[Tensor, int, Tensor]:  # SVMRegions' loader: fc7 of gt + proposals
        gt, _ = gt_for_training(load_target(train_ds, index), cfg.use_difficult)
        boxes = torch.cat([gt, train_props[index].float()])  # (G + P, 4)
        with torch.inference_mode():
            image = load_image(train_ds, index).to(device)
            pooled = pooled_features(model, image, boxes.to(device), cfg.scales[0], cfg.max_size)
            fc7 = model.head.fc(pooled.flatten(1)).cpu()  # (G + P, F)
        return boxes, len(gt), fc7

    classes = test_ds.classes
    regions = SVMRegions(load, lambda x: x, train_ds, len(classes), cfg.svm_neg_iou, cfg.use_difficult,
                         cfg.bbox_reg_iou)  # fmt: skip
    svms = train_svms(regions, len(classes), C=cfg.svm_C, hard_negative_rounds=cfg.svm_hard_negative_rounds,
                      seed=cfg.seed, class_names=classes, progress=progress)  # fmt: skip
    targets = [load_target(test_ds, i) for i in range(len(test_ds))]
    softmax, svm = [], []
    with torch.inference_mode():
        for i in tqdm(range(len(test_ds)), desc="softmax vs SVMs", disable=not progress):
            image, props = load_image(test_ds, i).to(device), test_props[i].float().to(device)
            if len(props) == 0:
                softmax.append(model._empty_detections(torch.device("cpu")))
                svm.append(model._empty_detections(torch.device("cpu")))
                continue
            size = tuple(image.shape[-2:])
            fc7 = model.head.fc(
                pooled_features(model, image, props, model.test_scales[0], model.max_size).flatten(
                    1
                )
            )
            logits, deltas = (
                model.head.cls_score(fc7),
                model.head.bbox_pred(fc7),
            )  # (P, K + 1), (P, 4K)
            softmax.append(to_cpu(model.postprocess(logits, deltas, props, size)))
            scores = svms(fc7.cpu()).to(device)  # (P, K) margins
            svm.append(to_cpu(_svm_detections(model, scores, deltas, props, size)))
    return {
        "map_softmax": voc07_map(softmax, targets, classes),
        "map_svm": voc07_map(svm, targets, classes),
        "map_difference": map_interval(svm, softmax, targets, classes, rounds),
        "svm_train_images": len(train_ds),
        "num_test_images": len(test_ds),
    }
