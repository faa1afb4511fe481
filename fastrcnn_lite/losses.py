"""Fast R-CNN's multi-task loss: softmax log loss plus smooth L1 box regression.

Data-flow stage: **losses** (training only). Implements paper section 2.3, eq. 1-3::

    L(p, u, t^u, v) = L_cls(p, u) + lambda [u >= 1] L_loc(t^u, v)

    L_cls(p, u)   = -log p_u                                  (log loss of the true class u)
    L_loc(t^u, v) = sum over x, y, w, h of smooth_L1(t^u_i - v_i)
    smooth_L1(x)  = 0.5 x^2 if |x| < 1, else |x| - 0.5

``p`` is the softmax over K + 1 classes (background u = 0), ``t^u`` the predicted box deltas of
the *true* class ``u`` and ``v`` the (normalised) regression target. The indicator ``[u >= 1]``
switches the box term off for background RoIs, which have no gt box.

Normalisation, as the paper's Caffe code did it: both terms are averaged over the R RoIs of the
mini-batch (the ``SmoothL1Loss`` layer sums over RoIs and coordinates and divides by the
number of RoIs, background ones included), so ``lambda = 1`` balances them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["smooth_l1", "fast_rcnn_loss"]


def smooth_l1(x: Tensor) -> Tensor:
    """Elementwise smooth L1 (paper eq. 3): ``0.5 x^2`` where ``|x| < 1``, else ``|x| - 0.5``.

    Less sensitive to outliers than the L2 loss of R-CNN and SPPnet: its gradient is bounded
    by 1, so a badly placed proposal cannot blow up training. Notebook 06 teaches it. ``x`` is
    a tensor of any shape; the result has the same shape.
    """
    abs_x = x.abs()
    return torch.where(abs_x < 1, 0.5 * x * x, abs_x - 0.5)


def fast_rcnn_loss(
    class_logits: Tensor,
    box_deltas: Tensor,
    labels: Tensor,
    regression_targets: Tensor,
    box_loss_weight: float = 1.0,
) -> dict[str, Tensor]:
    """The multi-task loss of one mini-batch of RoIs. Notebook 06 teaches it (an exercise).

    Args:
        class_logits (Tensor[R, K + 1]): ``cls_score`` outputs (before the softmax).
        box_deltas (Tensor[R, 4 * K]): ``bbox_pred`` outputs; columns ``4(u-1):4u`` are
            class u's (dx, dy, dw, dh). Background has no deltas.
        labels (Tensor[R] int64): true class u of each RoI, 0 = background, 1..K.
        regression_targets (Tensor[R, 4]): target deltas v of each RoI (normalised); rows of
            background RoIs are ignored.
        box_loss_weight: lambda (1 in the paper).

    Returns:
        dict with ``loss_cls``, ``loss_box`` (both scalars, averaged over the R RoIs) and
        ``loss`` = loss_cls + lambda * loss_box.
    """
    num_rois = class_logits.shape[0]
    if labels.shape != (num_rois,) or regression_targets.shape != (num_rois, 4):
        raise ValueError(
            f"labels must be Tensor[{num_rois}] and regression_targets Tensor[{num_rois}, 4] to match "
            f"class_logits {tuple(class_logits.shape)}; got {tuple(labels.shape)} and "
            f"{tuple(regression_targets.shape)}."
        )
    num_classes = class_logits.shape[1] - 1
    if box_deltas.shape != (num_rois, 4 * num_classes):
        raise ValueError(
            f"box_deltas must be Tensor[{num_rois}, {4 * num_classes}] (4 deltas per foreground class); "
            f"got {tuple(box_deltas.shape)}."
        )
    # Mean of -log p_u over the R RoIs (sum / R, so an empty batch gives 0 rather than NaN).
    loss_cls = F.cross_entropy(class_logits, labels, reduction="sum") / max(num_rois, 1)

    fg = torch.where(labels > 0)[0]  # [u >= 1]: only foreground RoIs have a box to regress
    deltas = box_deltas.reshape(num_rois, num_classes, 4)  # (R, K, 4)
    deltas_fg = deltas[fg, labels[fg] - 1]  # (R_fg, 4): t^u, the true class's deltas
    loss_box = smooth_l1(deltas_fg - regression_targets[fg]).sum() / max(num_rois, 1)
    return {
        "loss_cls": loss_cls,
        "loss_box": loss_box,
        "loss": loss_cls + box_loss_weight * loss_box,
    }
