"""The picture of a training run: loss and learning-rate curves, in a notebook and as a PNG.

Data-flow stage: none (a view of **losses -> parameter updates**, the training stage of
:mod:`fastrcnn_lite.train`). Taught in ``notebooks/06_fast_rcnn.ipynb`` (live curves while the
model trains) and ``notebooks/08_full_voc_run.ipynb`` (the PNG a long command-line run keeps
beside its checkpoint).

* :func:`plot_losses` and :class:`LiveLossPlot` draw in a notebook (``matplotlib.pyplot``).
* :func:`training_figure` and :func:`write_training_curves` never touch ``pyplot``: they build a
  ``matplotlib.figure.Figure`` and render it with the Agg canvas, so a training run writing its
  PNG leaves the caller's pyplot state (open figures, backend) exactly as it was. The PNG is
  written to a temporary file and renamed, so a kill mid-write never leaves half a picture.

A history is a list of the records of ``metrics.jsonl``: dicts with ``iter``, ``loss``,
``loss_cls``, ``loss_box`` and ``lr``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .checkpoint import atomic_write

__all__ = ["plot_losses", "LiveLossPlot", "training_figure", "write_training_curves"]


def _smoothed(history: list[dict], key: str, smooth: int) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, values of ``key``), a moving average over ``smooth`` records when there are enough."""
    its = np.array([r["iter"] for r in history])
    values = np.array([r[key] for r in history], dtype=float)
    if smooth > 1 and len(values) >= smooth:
        return its[smooth - 1 :], np.convolve(values, np.ones(smooth) / smooth, mode="valid")
    return its, values


def _draw_losses(axes, history: list[dict], smooth: int) -> None:
    for ax, keys in zip(axes, (("loss",), ("loss_cls", "loss_box")), strict=True):
        for key in keys:
            ax.plot(*_smoothed(history, key, smooth), label=key)
        ax.set_xlabel("iteration")
        ax.legend()
    axes[0].set_title("multi-task loss")
    axes[1].set_title("its two terms")


def plot_losses(history: list[dict], smooth: int = 20, figsize: tuple[float, float] = (10, 3.5)):
    """A pyplot figure of the training losses in ``history`` (moving averages over ``smooth`` iterations).

    Notebook 06 plots its run's losses with it.

    For notebooks: the figure is shown inline like any pyplot figure.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=figsize)
    _draw_losses(axes, history, smooth)
    fig.tight_layout()
    return fig


class LiveLossPlot:
    """A callback for :func:`~fastrcnn_lite.train.train_fast_rcnn` that redraws the loss curves in a notebook.

    Notebook 06 watches its training with it.

    Every ``every`` iterations it replaces one displayed figure (smoothed total, classification
    and box losses against the iteration). Outside IPython it does nothing.
    """

    def __init__(self, every: int = 50, smooth: int = 20, figsize: tuple[float, float] = (10, 3.5)):
        self.every, self.smooth, self.figsize = every, smooth, figsize
        self.handle = None

    def __call__(self, iteration: int, history: list[dict]) -> None:
        if iteration % self.every != 0:
            return
        try:
            from IPython.display import display
        except ImportError:  # pragma: no cover - IPython comes with the notebook extra
            return
        fig = plot_losses(history, self.smooth, self.figsize)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        import matplotlib.pyplot as plt

        plt.close(fig)


def training_figure(
    history: list[dict], smooth: int = 20, figsize: tuple[float, float] = (12, 3.4)
):
    """A ``matplotlib.figure.Figure`` (no pyplot) of a run: the losses and the learning rate.

    Notebook 08 (the run's ``training.png``, written by the training command).

    Three panels against the iteration: the multi-task loss (each iteration faint, the moving
    average over ``smooth`` iterations solid), its two terms (smoothed), and the learning rate
    (log scale: the step schedule's drops are equal steps).

    Raises:
        ValueError: ``history`` is empty or its records lack ``iter``, ``loss``, ``loss_cls``,
            ``loss_box`` or ``lr``.
    """
    from matplotlib.figure import Figure

    if not history:
        raise ValueError("history is empty: there is no iteration to plot yet.")
    missing = {"iter", "loss", "loss_cls", "loss_box", "lr"} - set(history[0])
    if missing:
        raise ValueError(
            f"history records need iter, loss, loss_cls, loss_box and lr (the lines of "
            f"metrics.jsonl); the first record lacks {sorted(missing)}: {history[0]}."
        )
    fig = Figure(figsize=figsize)
    axes = fig.subplots(1, 3)
    its = np.array([r["iter"] for r in history])
    axes[0].plot(its, [r["loss"] for r in history], color="C0", alpha=0.25, lw=0.8)
    _draw_losses(axes[:2], history, smooth)
    axes[2].step(its, [r["lr"] for r in history], where="post", color="C3")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("iteration")
    axes[2].set_title("learning rate")
    fig.suptitle(f"iteration {int(its[-1])}", fontsize=9, x=0.99, ha="right")
    fig.tight_layout()
    return fig


def write_training_curves(
    history: list[dict], path: str | Path, smooth: int = 20, dpi: int = 80
) -> Path:
    """Write :func:`training_figure` of ``history`` as a PNG at ``path``, atomically; returns the path.

    Notebook 08 (the run's ``training.png``, written by the training command).

    The figure is rendered by the Agg canvas without pyplot, then closed by dropping it.
    """
    path = Path(path)
    fig = training_figure(history, smooth)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    return path
