"""Grader for notebook 06's test-time detection exercise (Fast R-CNN section 3).

Data-flow stage: none (teaching aid) for **heads -> detections**. The reference,
:func:`detect_reference`, composes the steps of
:meth:`FastRCNN.postprocess <fastrcnn_lite.fast_rcnn.FastRCNN.postprocess>` (softmax,
:func:`~fastrcnn_lite.boxes.decode_boxes`,
:func:`~fastrcnn_lite.detect.postprocess_detections`); ``tests/test_grading_roi_fast.py`` checks
they agree. The learner's function:

- ``postprocess(class_logits, box_deltas, proposals, image_size, box_means, box_stds,
  score_thresh, nms_thresh, detections_per_img)`` with ``class_logits`` Tensor[P, K + 1],
  ``box_deltas`` Tensor[P, 4K] and ``proposals`` Tensor[P, 4] -> dict with ``boxes``
  (Tensor[D, 4]), ``scores`` (Tensor[D]) and ``labels`` (Tensor[D] in 1..K).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ...boxes import decode_boxes
from ...detect import postprocess_detections
from .boxes import random_boxes
from .core import Case, differ, exercise, grade

__all__ = ["check_detect", "detect_reference"]


def detect_reference(
    class_logits: Tensor,
    box_deltas: Tensor,
    proposals: Tensor,
    image_size: tuple[int, int],
    box_means: Tensor,
    box_stds: Tensor,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.3,
    detections_per_img: int = 100,
) -> dict[str, Tensor]:
    """Test-time decoding of one image, the steps of ``FastRCNN.postprocess`` (section 3).

    Notebook 06 (the reference of its detection exercise, :func:`check_detect`).

    Args:
        class_logits (Tensor[P, K + 1]), box_deltas (Tensor[P, 4K]): the head's outputs.
        proposals (Tensor[P, 4]): the image's proposals, in the pixels of ``image_size``.
        box_means, box_stds (Tensor[K, 4]): the regression-target statistics (un-normalise).

    Returns:
        dict with ``boxes`` (Tensor[D, 4]), ``scores`` (Tensor[D]), ``labels`` (Tensor[D] in 1..K).
    """
    num_props, k = len(proposals), box_means.shape[0]
    scores = F.softmax(class_logits, dim=1)  # (P, K + 1)
    deltas = box_deltas.reshape(num_props, k, 4) * box_stds + box_means  # (P, K, 4)
    boxes = decode_boxes(proposals, deltas.reshape(num_props, 4 * k))  # (P, 4K)
    return postprocess_detections(
        boxes.reshape(num_props, k, 4), scores[:, 1:], image_size, score_thresh, nms_thresh,
        detections_per_img,
    )  # fmt: skip


def _detections_compare(got, expected) -> str | None:
    if not isinstance(got, dict) or not {"boxes", "scores", "labels"} <= set(got):
        return "expected a dict with 'boxes', 'scores' and 'labels'"
    boxes, scores, labels = (torch.as_tensor(got[k]) for k in ("boxes", "scores", "labels"))
    if len(scores) != len(expected["scores"]):
        return f"{len(scores)} detections where {len(expected['scores'])} were expected"
    order = torch.argsort(scores, descending=True, stable=True)
    for key, value in (("scores", scores), ("labels", labels), ("boxes", boxes)):
        why = differ(value[order], expected[key], atol=1e-4, rtol=1e-4)
        if why:
            return f"'{key}' (sorted by score): {why}"
    return None


@exercise("06", points=3, task="test-time decoding: softmax, per-class boxes, per-class NMS")
def check_detect(fn: Callable, random_cases: int = 10) -> str:
    """Grade ``fn(class_logits, box_deltas, proposals, image_size, box_means, box_stds,
    score_thresh, nms_thresh, detections_per_img)``: it must give :func:`detect_reference`'s
    detections. Notebook 06 grades its detection exercise with it."""
    __tracebackhide__ = True
    g = torch.Generator().manual_seed(11)
    size = (100, 120)  # (height, width)
    zeros2, ones2 = torch.zeros(2, 4), torch.ones(2, 4)

    def logits_for(*rows):  # probabilities -> logits
        return torch.tensor(rows).log()

    def call(logits, deltas, boxes, means=zeros2, stds=ones2, score=0.05, nms=0.3, cap=100):
        """The arguments of one call: (class_logits, box_deltas, proposals, image_size,
        box_means, box_stds, score_thresh, nms_thresh, detections_per_img)."""
        return (logits, deltas, boxes, size, means, stds, score, nms, cap)

    box = torch.tensor([[20.0, 20.0, 60.0, 60.0]])
    overlapping = torch.tensor([[20.0, 20.0, 60.0, 60.0], [24.0, 20.0, 64.0, 60.0]])  # IoU 0.82
    medium = torch.tensor([[20.0, 20.0, 60.0, 60.0], [36.0, 20.0, 76.0, 60.0]])  # IoU 0.43
    cases = [
        Case(
            "one proposal, class 2 wins",
            call(logits_for([0.1, 0.2, 0.7]), torch.zeros(1, 8), box),
            hint="Scores are the softmax of class_logits; column 0 is background, columns 1..K the "
            "classes (labels 1..K). Keep every class above score_thresh, not only the best.",
        ),
        Case(
            "background wins: nothing above the score threshold",
            call(logits_for([0.97, 0.02, 0.01]), torch.zeros(1, 8), box),
            hint="Drop the background column before thresholding: a background RoI is no detection.",
        ),
        Case(
            "each class uses its own deltas",
            call(
                logits_for([0.1, 0.5, 0.4]),
                torch.tensor([[0.1, 0.0, 0.0, 0.0, -0.1, 0.0, 0.2, 0.0]]),
                box,
            ),
            hint="Class k's deltas are columns 4(k - 1) to 4k of box_deltas: one box per class.",
        ),
        Case(
            "deltas are normalised: un-normalise with means and stds",
            call(
                logits_for([0.1, 0.9, 0.0 + 1e-6]),
                torch.tensor([[1.0, -1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]]),
                box,
                means=torch.tensor([[0.05, 0.0, 0.1, 0.0]] * 2),
                stds=torch.tensor([[0.1, 0.1, 0.2, 0.2]] * 2),
            ),
            hint="Before decoding: deltas * box_stds[k - 1] + box_means[k - 1] (the targets were "
            "normalised in training).",
        ),
        Case(
            "boxes pushed past the image border are clipped",
            call(
                logits_for([0.1, 0.9, 1e-6]),
                torch.tensor([[-0.3, -0.4, 0.3, 0.3, 0.0, 0.0, 0.0, 0.0]]),
                torch.tensor([[2.0, 4.0, 40.0, 50.0]]),
            ),
            hint="Clip x to [0, width] and y to [0, height]; image_size is (height, width).",
        ),
        Case(
            "two overlapping boxes of one class: NMS keeps the better",
            call(logits_for([0.1, 0.8, 0.1], [0.2, 0.7, 0.1]), torch.zeros(2, 8), overlapping),
            hint="Run NMS per class (IoU > nms_thresh suppresses), highest score first.",
        ),
        Case(
            "two overlapping boxes of different classes: per-class NMS keeps both",
            call(
                logits_for([0.1, 0.85, 0.05], [0.1, 0.05, 0.85]),
                torch.zeros(2, 8),
                overlapping,
                score=0.5,
            ),
            hint="Boxes of different classes never suppress each other (batched_nms with the labels).",
        ),
        Case(
            "IoU 0.43: above the paper's NMS threshold 0.3",
            call(logits_for([0.1, 0.8, 0.1], [0.2, 0.7, 0.1]), torch.zeros(2, 8), medium),
            hint="Use nms_thresh (0.3 in the paper), not 0.5.",
        ),
        Case(
            "at most detections_per_img, the best first",
            call(
                torch.randn(30, 3, generator=g),
                torch.randn(30, 8, generator=g) * 0.1,
                random_boxes(30, g, torch.float32),
                cap=5,
            ),
            hint="After NMS keep the detections_per_img highest-scoring detections of all classes.",
        ),
    ]
    for _ in range(random_cases):
        p, k = 40, 3
        cases.append(
            Case(
                "40 random proposals, 3 classes",
                call(
                    torch.randn(p, k + 1, generator=g) * 2,
                    torch.randn(p, 4 * k, generator=g),
                    random_boxes(p, g, torch.float32),
                    means=torch.randn(k, 4, generator=g) * 0.02,
                    stds=torch.rand(k, 4, generator=g) * 0.1 + 0.1,
                ),
            )
        )
    return grade(
        fn,
        detect_reference,
        cases,
        name="check_detect",
        against="fastrcnn_lite's Fast R-CNN post-processing (FastRCNN.postprocess)",
        compare=_detections_compare,
        covered="background dropped, per-class deltas, un-normalising, clipping, per-class NMS, cap",
    )
