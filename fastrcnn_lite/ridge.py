"""Post-hoc box regressors of R-CNN and SPPnet: class-specific ridge regression.

Data-flow stage: **heads** (the box regressors beside the SVMs of ``fastrcnn_lite.svm``), after
region features are computed and cached. R-CNN appendix C: one regressor per class from region
features (pool5 in R-CNN, the pyramid in SPPnet: Tensor[P, F]) to the box deltas of
``fastrcnn_lite.boxes.encode_boxes`` that move a proposal onto its gt box (Tensor[P, 4K]),
trained on proposals with IoU > 0.6 with a gt box of that class, ``lambda = 1000`` on features
scaled to average norm 20 (as for the SVMs). Closed form. The bias is not regularised (the
features and targets are centred instead); with an unregularised bias R-CNN's whitening of the
targets changes nothing (ridge is solved independently per output, and equivariant to linear
maps of the targets). Fast R-CNN replaces them with its ``bbox_pred`` layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .svm import feature_scale

__all__ = ["ridge_regression", "BoxRegressors", "train_box_regressors"]


def ridge_regression(features: Tensor, targets: Tensor, lam: float) -> tuple[Tensor, Tensor]:
    """Closed-form ridge regression with an unregularised bias.

    No notebook: :func:`train_box_regressors` solves each class with it.

    Minimises ``|features @ W + b - targets|^2 + lam |W|^2`` by centring features and targets
    (which removes the bias) and solving the normal equations in the primal (M >= F) or the
    dual (M < F) form, whichever is smaller.

    Args:
        features (Tensor[M, F]), targets (Tensor[M, T]).

    Returns:
        (W Tensor[F, T], b Tensor[T]), float32. M = 0 gives zeros.
    """
    if features.dim() != 2 or targets.dim() != 2 or features.shape[0] != targets.shape[0]:
        raise ValueError(
            f"features must be Tensor[M, F] and targets Tensor[M, T] with the same M; got "
            f"{tuple(features.shape)} and {tuple(targets.shape)}."
        )
    if lam <= 0:
        raise ValueError(f"lam must be > 0 (R-CNN uses 1000); got {lam}.")
    num, dim = features.shape
    if num == 0:
        return torch.zeros(dim, targets.shape[1]), torch.zeros(targets.shape[1])
    x, t = features.double(), targets.double()
    x_mean, t_mean = x.mean(0), t.mean(0)
    xc, tc = x - x_mean, t - t_mean  # (M, F), (M, T)
    if num >= dim:
        w = torch.linalg.solve(xc.T @ xc + lam * torch.eye(dim, dtype=x.dtype), xc.T @ tc)  # (F, T)
    else:
        w = xc.T @ torch.linalg.solve(xc @ xc.T + lam * torch.eye(num, dtype=x.dtype), tc)  # (F, T)
    b = t_mean - x_mean @ w  # (T,)
    return w.float(), b.float()


@dataclass(eq=False)
class BoxRegressors:
    """Class-specific linear box regressors: ``deltas_k = (scale * features) @ weight[k] + bias[k]``.

    No notebook: the box regressors of R-CNN and SPPnet (``region_heads.SVMDetector``).

    Attributes:
        weight (Tensor[K, F, 4]), bias (Tensor[K, 4]): per class k + 1, predicting
            (dx, dy, dw, dh) of :func:`fastrcnn_lite.boxes.encode_boxes`.
        scale: feature scaling (average norm 20).
        counts (Tensor[K]): training examples per class (0: the regressor predicts no move).
    """

    weight: Tensor
    bias: Tensor
    scale: float
    counts: Tensor

    def __call__(self, features: Tensor) -> Tensor:
        """features (Tensor[P, F]) -> box_deltas Tensor[P, 4 * K] (class k + 1 in columns 4k..4k+3)."""
        deltas = (
            torch.einsum("pd,kdt->pkt", features.float() * self.scale, self.weight) + self.bias
        )  # (P, K, 4)
        return deltas.flatten(1)  # (P, 4K)

    def state_dict(self) -> dict:
        return {
            "weight": self.weight,
            "bias": self.bias,
            "scale": self.scale,
            "counts": self.counts,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> BoxRegressors:
        return cls(state["weight"], state["bias"], float(state["scale"]), state["counts"])


def train_box_regressors(
    features: Tensor, labels: Tensor, targets: Tensor, num_classes: int, lam: float = 1000.0
) -> BoxRegressors:
    """Fit one ridge regressor per class (R-CNN appendix C).

    No notebook: ``region_heads.train_heads`` runs it.

    Args:
        features (Tensor[M, F]): region features (pool5) of the training proposals, which the
            caller has already restricted to IoU > 0.6 with their best gt box.
        labels (Tensor[M] int64): class 1..K of that gt box.
        targets (Tensor[M, 4]): ``encode_boxes(proposal, gt box)``.
        lam: ridge penalty (R-CNN: 1000 on features of average norm 20).

    Returns:
        BoxRegressors; a class without examples predicts zero deltas.
    """
    if labels.shape != (features.shape[0],) or targets.shape != (features.shape[0], 4):
        raise ValueError(
            f"labels must be Tensor[{features.shape[0]}] and targets Tensor[{features.shape[0]}, 4] to match "
            f"features {tuple(features.shape)}; got {tuple(labels.shape)} and {tuple(targets.shape)}."
        )
    scale = feature_scale(features)
    x = features.float() * scale
    weight = torch.zeros(num_classes, features.shape[1], 4)
    bias = torch.zeros(num_classes, 4)
    counts = torch.zeros(num_classes, dtype=torch.int64)
    for k in range(num_classes):
        mask = labels == k + 1
        counts[k] = int(mask.sum())
        weight[k], bias[k] = ridge_regression(x[mask], targets[mask].float(), lam)
    return BoxRegressors(weight, bias, scale, counts)
