"""Two curves the notebooks read: a training loss over iterations, and precision against recall.

Data-flow stage: none; a look at **losses** (:func:`plot_loss_curve`, one loss per iteration and
its running mean, for R-CNN's and SPPnet's fine-tuning) and at **evaluation**
(:func:`plot_precision_recall`: recall and precision Tensor[D] after each of D ranked detections,
with what the 11-point or the area AP measures on them). Fast R-CNN's loss terms and learning rate
have :mod:`fastrcnn_lite.curves`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..evaluate import voc_ap

__all__ = ["plot_loss_curve", "plot_precision_recall"]


def plot_loss_curve(
    losses, window: int = 10, title: str = "", ylabel: str = "loss", ax: plt.Axes | None = None
) -> plt.Axes:
    """One loss per iteration (faint) and its running mean over ``window`` iterations.

    Notebook 03 plots a training loss with it; notebook 05 too.

    Taught in notebooks 03 and 05 (the fine-tuning of R-CNN and SPPnet); Fast R-CNN's loss terms
    and learning rate have :func:`fastrcnn_lite.curves.plot_losses`.

    Args:
        losses (sequence or Tensor[T]): the loss of each iteration.
        window: iterations per point of the running mean (the mean of iterations
            ``t - window + 1 .. t`` is drawn at ``t``).
        title, ylabel: the Axes' title and y label.
        ax: the Axes to draw in (a new 10 x 3 inch figure when None).

    Returns:
        The Axes.
    """
    losses = torch.as_tensor(losses, dtype=torch.float64).flatten()  # (T,)
    if window < 1:
        raise ValueError(f"window must be a positive number of iterations; got {window}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3))
    ax.plot(losses.tolist(), alpha=0.4, label="per iteration")
    if len(losses) >= window:
        mean = losses.unfold(0, window, 1).mean(1)  # (T - window + 1,)
        ax.plot(list(range(window - 1, len(losses))), mean.tolist(), label=f"mean of {window}")
    ax.set(xlabel="iteration", ylabel=ylabel, title=title)
    ax.legend()
    return ax


def plot_precision_recall(
    ax: plt.Axes,
    recall,
    precision,
    metric: str | None = None,
    label: str | None = None,
    color=None,
) -> plt.Axes:
    """A precision/recall curve, with what one AP metric measures on it.

    Notebook 02 draws what each AP metric measures with it.

    Taught in notebook 02 (evaluation).

    Args:
        ax: a matplotlib Axes.
        recall (Tensor[D]): recall after each ranked detection (``evaluate.precision_recall``).
        precision (Tensor[D]): precision after each ranked detection.
        metric: None (the curve alone), ``"07"`` (also the 11 sampled precisions, the highest
            precision at recall >= t for t = 0, 0.1, ..., 1) or ``"area"`` (also the monotone
            envelope, with the area under it shaded). The title then gives the AP.
        label: legend text of the curve.
        color: the curve's colour.

    Returns:
        The Axes.
    """
    recall = torch.as_tensor(recall, dtype=torch.float64).flatten()  # (D,)
    precision = torch.as_tensor(precision, dtype=torch.float64).flatten()  # (D,)
    (line,) = ax.plot(
        recall.tolist(), precision.tolist(), marker=".", markersize=4, linewidth=1,
        color=color, label=label or "precision after each detection",
    )  # fmt: skip
    if metric == "07":
        t = [i / 10 for i in range(11)]
        sampled = [
            float(precision[recall >= v].max()) if bool((recall >= v).any()) else 0.0 for v in t
        ]
        ax.vlines(t, 0, sampled, color="tab:red", linewidth=1, alpha=0.6)
        ax.plot(t, sampled, "o", color="tab:red", markersize=4, label="11 sampled precisions")
    elif metric == "area":
        mrec = [0.0, *recall.tolist(), 1.0]
        mpre = torch.cat([precision.new_zeros(1), precision, precision.new_zeros(1)])
        envelope = mpre.flip(0).cummax(0).values.flip(0).tolist()  # max precision to the right
        ax.fill_between(mrec, envelope, step="pre", color="tab:orange", alpha=0.25, linewidth=0)
        ax.step(mrec, envelope, where="pre", color="tab:orange", linewidth=1.2, label="envelope")
    elif metric is not None:
        raise ValueError(f"metric must be None, '07' or 'area'; got {metric!r}.")
    if metric is not None:
        name = "11-point AP" if metric == "07" else "area AP"
        ax.set_title(f"{name} = {voc_ap(recall, precision, metric):.3f}", fontsize=9)
    ax.set(xlabel="recall", ylabel="precision", xlim=(-0.02, 1.02), ylim=(-0.02, 1.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    line.set_zorder(3)
    return ax
