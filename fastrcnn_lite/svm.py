"""Post-hoc classifiers of R-CNN and SPPnet: linear SVMs with hard-negative mining.

Data-flow stage: **heads** (the SVMs; their ridge box regressors are ``fastrcnn_lite.ridge``),
after region features are computed and cached. R-CNN (Girshick et al. 2014, section 2.3 and
appendix B) and SPPnet train them as separate stages after fine-tuning; Fast R-CNN replaces them
and the regressors with its two sibling layers. An SVM reads fc7 of a region
(Tensor[P, F] -> scores Tensor[P, K]).

Linear SVMs (one per class, R-CNN section 2.3, appendix B)
---------------------------------------------------------
* Positives of class k: the **ground-truth boxes** of class k only. Negatives: proposals with
  IoU < 0.3 with every gt box of class k. Proposals in between are ignored.
* There are far too many negatives to use at once, so R-CNN uses **hard-negative mining**: train
  on the positives and a few negatives, score every negative, add those that violate the margin
  (score > -1) to the cache, drop the easy ones (score < -1.2), retrain; a few passes.
* R-CNN solved each SVM with liblinear (L1-loss dual), ``C = 0.001``, positives weighted x2, a
  bias feature of 10 (so the bias is regularised like a weight), after scaling the features so
  that their average L2 norm is 20. Here the same kind of objective is solved in the primal with
  the **squared** hinge (liblinear's L2-loss SVM): it is piecewise quadratic, so Newton's method
  reaches its exact minimum in a few steps (the test checks that the gradient there is zero)::

      min_w,b'  0.5 |w|^2 + 0.5 b'^2 + C sum_i c_i max(0, 1 - y_i (w . x_i + bias_mult b'))^2

  with ``c_i = positive_weight`` for positives and 1 for negatives; bias = bias_mult * b'.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .progress import tqdm

__all__ = [
    "FEATURE_NORM",
    "feature_scale",
    "svm_objective",
    "train_linear_svm",
    "mine_hard_negatives",
    "LinearSVMs",
    "train_svms",
]

FEATURE_NORM = 20.0  # R-CNN scales features to this average L2 norm before the SVMs and ridge
HARD_NEGATIVE_THRESH = -1.0  # a negative scoring above this violates the margin: "hard"
EASY_NEGATIVE_THRESH = -1.2  # R-CNN evicts cached negatives scoring below this


def feature_scale(features: Tensor, target_norm: float = FEATURE_NORM) -> float:
    """The factor that makes the average L2 norm of the rows of ``features`` equal to ``target_norm``.

    No notebook: :func:`train_box_regressors` scales its features with it.
    """
    norm = features.float().norm(dim=1).mean().item() if len(features) else 0.0
    return target_norm / norm if norm > 0 else 1.0


def _check_xy(features: Tensor, labels: Tensor) -> None:
    if not isinstance(features, Tensor) or features.dim() != 2:
        got = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"features must be Tensor[M, F]; got {got}.")
    if not isinstance(labels, Tensor) or labels.shape != (features.shape[0],):
        got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(
            f"labels must be Tensor[{features.shape[0]}] of +1 / -1 (one per row of features); got {got}."
        )


def svm_objective(
    weight: Tensor,
    bias: Tensor,
    features: Tensor,
    labels: Tensor,
    C: float,
    positive_weight: float = 2.0,
    bias_mult: float = 10.0,
) -> Tensor:
    """The squared-hinge SVM objective (see the module docstring) at ``(weight, bias)``.

    No notebook: the tests check :func:`train_linear_svm`'s minimum with it.

    Args:
        weight (Tensor[F]), bias (Tensor[]): the classifier; score = features @ weight + bias.
        features (Tensor[M, F]), labels (Tensor[M]): +1 (positive) or -1 (negative).

    Returns:
        Tensor[]: 0.5 |w|^2 + 0.5 (b / bias_mult)^2 + C sum_i c_i max(0, 1 - y_i s_i)^2.
    """
    scores = features @ weight + bias  # (M,)
    y = labels.to(scores.dtype)
    cost = torch.where(y > 0, positive_weight, 1.0).to(scores.dtype)  # (M,)
    margins = (1 - y * scores).clamp(min=0)  # (M,)
    return 0.5 * weight.dot(weight) + 0.5 * (bias / bias_mult) ** 2 + C * (cost * margins**2).sum()


def train_linear_svm(
    features: Tensor,
    labels: Tensor,
    C: float = 0.001,
    positive_weight: float = 2.0,
    bias_mult: float = 10.0,
    max_iter: int = 50,
    init: tuple[Tensor, float] | None = None,
) -> tuple[Tensor, float]:
    """Minimise :func:`svm_objective` exactly with Newton's method (float64).

    No notebook: :func:`train_svms` trains each class's SVM with it.

    The squared hinge makes the objective piecewise quadratic, so Newton steps with a
    backtracking line search find the exact minimum in a few iterations (Chapelle 2007,
    "Training a support vector machine in the primal"): with the rows inside the margin ``sv``,
    the gradient is ``beta - 2C X_sv^T (c y (1 - y X_sv beta))`` and the Hessian
    ``I + 2C X_sv^T diag(c) X_sv``, where ``X = [features, bias_mult]`` and ``beta = [w, b']``.

    Args:
        features (Tensor[M, F]): already scaled (see :func:`feature_scale`).
        labels (Tensor[M]): +1 / -1.
        C: data-term weight (R-CNN: 0.001 on features of average norm 20).
        positive_weight: cost multiplier of positives (R-CNN: 2).
        bias_mult: the bias is learnt as ``bias_mult * b'`` with ``b'`` regularised (liblinear's
            bias feature; R-CNN: 10).
        max_iter: Newton iterations (rarely more than ~15 are needed).
        init: a warm start ``(weight, bias)`` (the previous hard-negative round).

    Returns:
        (weight Tensor[F] float32, bias float).
    """
    _check_xy(features, labels)
    if not set(labels.unique().tolist()) <= {-1, 1}:
        raise ValueError(
            f"labels must be +1 (positive) or -1 (negative); got values {labels.unique().tolist()}."
        )
    x = torch.cat(
        [features.double(), torch.full((len(features), 1), float(bias_mult), dtype=torch.float64)],
        1,
    )  # (M, F+1)
    y = labels.double()
    cost = torch.where(y > 0, positive_weight, 1.0).double()  # (M,)
    beta = torch.zeros(x.shape[1], dtype=torch.float64)  # (F+1,) = [w, b']
    if init is not None:
        beta[:-1] = init[0].double()
        beta[-1] = float(init[1]) / bias_mult

    def objective(b: Tensor) -> Tensor:
        margins = (1 - y * (x @ b)).clamp(min=0)  # (M,)
        return 0.5 * b.dot(b) + C * (cost * margins**2).sum()

    value = objective(beta)
    for _ in range(max_iter):
        margins = 1 - y * (x @ beta)  # (M,)
        sv = margins > 0
        xs = x[sv]  # (M_sv, F+1)
        grad = beta - 2 * C * xs.T @ (cost[sv] * y[sv] * margins[sv])  # (F+1,)
        if grad.abs().max() <= 1e-10 * max(1.0, value.item()):
            break
        hessian = (
            torch.eye(len(beta), dtype=torch.float64) + 2 * C * (xs * cost[sv, None]).T @ xs
        )  # (F+1, F+1)
        step = torch.linalg.solve(hessian, grad)  # (F+1,)
        t, decrease = 1.0, grad.dot(step)
        while True:
            candidate = objective(beta - t * step)
            if candidate <= value - 1e-4 * t * decrease or t < 1e-12:
                break
            t *= 0.5
        beta, value = beta - t * step, candidate
    return beta[:-1].float(), float(beta[-1] * bias_mult)


def mine_hard_negatives(
    scores: Tensor,
    negative_mask: Tensor,
    cached: Tensor,
    hard_thresh: float = HARD_NEGATIVE_THRESH,
    easy_thresh: float = EASY_NEGATIVE_THRESH,
) -> tuple[Tensor, Tensor]:
    """One round of hard-negative mining (R-CNN section 2.3): update the negative cache.

    Notebook 03 grades the exercise that writes one round of it.

    A negative that the current SVM scores above ``hard_thresh`` (inside the margin) and that is
    not cached yet is *hard*: it joins the cache. A cached one scoring below ``easy_thresh`` is
    *easy*: it leaves. Both comparisons are strict. Elementwise, so one class (Tensor[P]) or all
    K classes at once (Tensor[P, K]).

    Args:
        scores (Tensor[P] or Tensor[P, K]): SVM scores of the regions of one image.
        negative_mask (bool Tensor, same shape): region is a negative of the class (IoU < 0.3
            with every gt box of that class).
        cached (bool Tensor, same shape): region is in the negative cache before this round.
        hard_thresh, easy_thresh: R-CNN's -1 and -1.2.

    Returns:
        (cached, hard): the cache after the round, and the new hard negatives (bool, same shape).
    """
    hard = negative_mask & (scores > hard_thresh) & ~cached
    return (cached | hard) & ~(scores < easy_thresh), hard


@dataclass(eq=False)
class LinearSVMs:
    """One linear SVM per foreground class: ``scores = (scale * features) @ weight.T + bias``.

    No notebook: the SVMs of R-CNN and SPPnet (``region_heads.SVMDetector``).

    Attributes:
        weight (Tensor[K, F]), bias (Tensor[K]): per class k + 1.
        scale: the feature scaling applied before the SVMs (R-CNN's average norm 20).
        trained (Tensor[K] bool): False for a class without positives; it always scores -inf.
        history: per hard-negative round, the number of cached negatives per class.
    """

    weight: Tensor
    bias: Tensor
    scale: float
    trained: Tensor
    history: list = field(default_factory=list)

    def __call__(self, features: Tensor) -> Tensor:
        """features (Tensor[P, F]) -> scores Tensor[P, K] (SVM margins; > 0 means the class)."""
        scores = (features.float() * self.scale) @ self.weight.T + self.bias  # (P, K)
        return scores.masked_fill(~self.trained, -math.inf)

    def state_dict(self) -> dict:
        return {"weight": self.weight, "bias": self.bias, "scale": self.scale, "trained": self.trained,
                "history": torch.tensor(self.history) if self.history else torch.zeros(0)}  # fmt: skip

    @classmethod
    def from_state_dict(cls, state: dict) -> LinearSVMs:
        history = state["history"].tolist() if state["history"].numel() else []
        return cls(
            state["weight"], state["bias"], float(state["scale"]), state["trained"].bool(), history
        )


def _check_region(region: dict, index: int, num_classes: int) -> None:
    for key in ("features", "positive_labels", "negative_mask"):
        if key not in region:
            raise ValueError(
                f"regions[{index}] must be a dict with features, positive_labels, negative_mask; missing {key!r}."
            )
    num = region["features"].shape[0]
    if region["positive_labels"].shape != (num,) or region["negative_mask"].shape != (
        num,
        num_classes,
    ):
        raise ValueError(
            f"regions[{index}]: features has {num} rows, so positive_labels must be Tensor[{num}] and "
            f"negative_mask Tensor[{num}, {num_classes}]; got {tuple(region['positive_labels'].shape)} and "
            f"{tuple(region['negative_mask'].shape)}."
        )


def train_svms(
    regions: Sequence[dict],
    num_classes: int,
    C: float = 0.001,
    hard_negative_rounds: int = 3,
    initial_negatives_per_image: int = 4,
    positive_weight: float = 2.0,
    bias_mult: float = 10.0,
    max_iter: int = 50,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    progress: bool = True,
) -> LinearSVMs:
    """Train one linear SVM per class with hard-negative mining (R-CNN section 2.3).

    No notebook: ``region_heads.train_heads`` runs it (notebook 03 shows its hard-negative
    history).

    Args:
        regions: one dict per training image (a Sequence, so it can load lazily from disk) with
            ``features`` (Tensor[P, F], e.g. fc7 of every gt box and proposal of the image),
            ``positive_labels`` (Tensor[P] int64: the class 1..K of a row that is a positive,
            i.e. a non-difficult gt box; 0 otherwise) and ``negative_mask`` (Tensor[P, K] bool:
            row is a negative for class k + 1, i.e. a proposal with IoU < 0.3 with every gt box of
            that class).
        num_classes: K.
        C, positive_weight, bias_mult, max_iter: see :func:`train_linear_svm`.
        hard_negative_rounds: passes over all images that add hard negatives (score > -1) and
            drop easy ones (< -1.2), each followed by retraining; stops early when none is new.
        initial_negatives_per_image: random negatives per image and class before the first training.
        class_names: for messages.

    Returns:
        LinearSVMs. A class with no positive example gets ``trained = False`` (it never fires)
        and a warning names it.
    """
    names = (
        list(class_names)
        if class_names is not None
        else [str(k) for k in range(1, num_classes + 1)]
    )
    gen = torch.Generator().manual_seed(seed)
    # Pass 0: positives, the feature scale, and the initial negative cache (a mask per image).
    positives = [[] for _ in range(num_classes)]
    cached = []  # per image: Tensor[P, K] bool, "this negative is in the cache"
    norms, count = 0.0, 0
    for i in tqdm(range(len(regions)), desc="SVM positives", disable=not progress):
        region = regions[i]
        _check_region(region, i, num_classes)
        x = region["features"].float()
        norms += x.norm(dim=1).sum().item()
        count += len(x)
        for k in range(num_classes):
            positives[k].append(x[region["positive_labels"] == k + 1])
        noise = torch.rand(region["negative_mask"].shape, generator=gen).masked_fill(
            ~region["negative_mask"], 2.0
        )
        rank = noise.argsort(dim=0).argsort(
            dim=0
        )  # (P, K) random rank of each negative within its column
        cached.append(region["negative_mask"] & (rank < initial_negatives_per_image))  # (P, K)
    if count == 0:
        raise ValueError(
            "train_svms got no regions (every image had zero rows); check the features and proposals."
        )
    scale = FEATURE_NORM / (norms / count) if norms > 0 else 1.0
    positives = [torch.cat(p) * scale if p else torch.zeros(0) for p in positives]
    trained = torch.tensor([len(p) > 0 for p in positives])
    for k in torch.where(~trained)[0].tolist():
        warnings.warn(
            f"class {names[k]!r} has no positive example (non-difficult gt box) in the training regions; "
            "its SVM is not trained and the class is never detected.",
            stacklevel=2,
        )
    dim = regions[0]["features"].shape[1]
    weight, bias = torch.zeros(num_classes, dim), torch.zeros(num_classes)
    history = []
    for round_ in range(hard_negative_rounds + 1):
        # Collect the cached negatives (and, after round 0, mine new hard ones with the current SVMs).
        negatives = [[] for _ in range(num_classes)]
        new = 0
        desc = "SVM initial negatives" if round_ == 0 else f"hard negatives, round {round_}"
        for i in tqdm(range(len(regions)), desc=desc, disable=not progress):
            region = regions[i]
            x = region["features"].float() * scale  # (P, F)
            if round_ > 0:
                scores = x @ weight.T + bias  # (P, K)
                cached[i], hard = mine_hard_negatives(scores, region["negative_mask"], cached[i])
                new += int(hard.sum())
            for k in range(num_classes):
                negatives[k].append(x[cached[i][:, k]])
        if round_ > 0 and new == 0:
            break
        history.append([sum(len(n) for n in negatives[k]) for k in range(num_classes)])
        for k in range(num_classes):
            if not trained[k]:
                continue
            neg = torch.cat(negatives[k])  # (M_neg, F)
            x = torch.cat([positives[k], neg])  # (M, F)
            y = torch.cat([torch.ones(len(positives[k])), -torch.ones(len(neg))]).long()
            weight[k], bias[k] = train_linear_svm(
                x,
                y,
                C,
                positive_weight,
                bias_mult,
                max_iter,
                init=(weight[k], bias[k].item()) if round_ else None,
            )
    return LinearSVMs(weight, bias, scale, trained, history)
