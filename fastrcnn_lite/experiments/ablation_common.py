"""What the three ablations share: the input checks, one conv pass per image, the result cache.

Data-flow stage: **region features** of a trained Fast R-CNN at test time, for the ablations
(``ablation_svd.py``, ``ablation_proposals.py``, ``ablation_svm.py``). :func:`pooled_features`
takes an image (Tensor[3, height, width]) and boxes (Tensor[P, 4], original pixels) to the
RoI-pooled features (Tensor[P, C, h, w]) the model's head reads; :func:`cached_result` stores each
experiment's result (a plain dict) as JSON keyed by :func:`evaluation_key` and the experiment's
settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from torch import Tensor

from ..checkpoint import cache_path, module_digest, proposals_digest, write_json
from ..config import Config
from ..evaluate import evaluate_detections
from ..fast_rcnn import FastRCNN
from ..regions import check_proposals, dataset_key
from ..transforms import resize, scale_factor

__all__ = [
    "CACHE_VERSION",
    "check_inputs",
    "pooled_features",
    "to_cpu",
    "voc07_map",
    "cached_result",
    "evaluation_key",
]

CACHE_VERSION = 1  # bump when the computation of a cached result changes


def check_inputs(model: FastRCNN, dataset, proposals) -> None:
    """Check that ``model`` is a FastRCNN with one test scale and that ``proposals`` hold one
    Tensor[P, 4] per image of ``dataset``.

    No notebook: each ablation checks its arguments with it.

    Raises:
        TypeError: ``model`` is not a FastRCNN.
        ValueError: several test scales, or proposals that do not match the dataset.
    """
    if not isinstance(model, FastRCNN):
        raise TypeError(
            f"model must be a trained fastrcnn_lite FastRCNN; got {type(model).__name__}."
        )
    if len(model.test_scales) != 1:
        raise ValueError(
            f"the ablations run at one test scale; the model has test_scales {model.test_scales}. "
            "Set model.test_scales = (s,) (and model.max_size) first."
        )
    check_proposals(dataset, proposals)


def pooled_features(
    model: FastRCNN, image: Tensor, boxes: Tensor, scale: int, max_size: int
) -> Tensor:
    """RoI-pooled features (Tensor[P, C, h, w]) of ``boxes`` (original pixels) after one conv pass
    at ``scale``: what :meth:`FastRCNN.score_proposals` computes before the head.

    No notebook: the ablations pool each test image once and score every variant from it.

    Args:
        image: Tensor[3, height, width], on the model's device.
        boxes: Tensor[P, 4], (x1, y1, x2, y2) in the image's pixels.
        scale, max_size: the test scale (shorter side) and the cap on the longer side.
    """
    factor = scale_factor(tuple(image.shape[-2:]), scale, max_size)
    scaled_image, scaled_boxes = resize(image, boxes, factor)
    features = model.body(scaled_image[None])  # (1, C, H', W')
    return model.pool(features, [scaled_boxes])  # (P, C, h, w)


def to_cpu(detections: dict) -> dict:
    """The detections of one image (``boxes`` Tensor[D, 4], ``scores`` Tensor[D], ``labels``
    Tensor[D]) copied to the CPU. No notebook: the ablations keep their detections there."""
    return {key: value.cpu() for key, value in detections.items()}


def voc07_map(detections, targets, classes) -> float:
    """VOC07 11-point mAP of per-image detections against ``targets``
    (:func:`~fastrcnn_lite.evaluate.evaluate_detections`). No notebook: the ablations' mAPs."""
    return float(evaluate_detections(detections, targets, classes, metric="07")["map"])


def cached_result(cfg: Config, name: str, key: dict, compute: Callable[[], dict]) -> dict:
    """``compute()`` stored as JSON at ``cache_path(cfg, name, **key)`` (.json), or loaded from it.

    No notebook: each ablation's result goes through it. The returned dict has ``from_cache``
    (True when it was loaded); a result computed now is read back from its JSON, so a fresh
    and a loaded result are alike (tuples become lists).
    """
    path = cache_path(cfg, name, version=CACHE_VERSION, **key).with_suffix(".json")
    if path.is_file():
        return json.loads(path.read_text()) | {"from_cache": True}
    write_json(path, compute())
    return json.loads(path.read_text()) | {"from_cache": False}


def evaluation_key(model: FastRCNN, test_ds, test_props) -> dict:
    """What every ablation's result depends on: the model's weights, the test split, its
    proposals and the test scale (the experiment adds its own settings to this key).

    No notebook: the cache keys of the three ablations."""
    return {"model": module_digest(model), "test": dataset_key(test_ds),
            "test_proposals": proposals_digest(test_props),
            "test_scale": (tuple(model.test_scales), model.max_size)}  # fmt: skip
