"""The picture of a run: the PNG beside the checkpoint, drawn without touching pyplot's state."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from PIL import Image

from fastrcnn_lite.curves import training_figure, write_training_curves
from fastrcnn_lite.train import train_fast_rcnn

from .test_fast_rcnn import ShapesDataset, jittered_proposals, tiny_cfg, tiny_model


def history(n: int = 30) -> list[dict]:
    return [{"iter": i, "loss": 2.0 / i, "loss_cls": 1.5 / i, "loss_box": 0.5 / i,
             "lr": 0.01 if i <= 20 else 0.001} for i in range(1, n + 1)]  # fmt: skip


def test_figure_holds_the_losses_and_the_learning_rate():
    records = history()
    fig = training_figure(records, smooth=5)
    loss_ax, terms_ax, lr_ax = fig.axes
    raw, smoothed = loss_ax.lines
    assert np.array_equal(raw.get_ydata(), [r["loss"] for r in records])
    # The moving average over 5 iterations, computed by hand for its first point.
    assert smoothed.get_xdata()[0] == 5
    assert smoothed.get_ydata()[0] == pytest.approx(sum(2.0 / i for i in range(1, 6)) / 5)
    assert [line.get_label() for line in terms_ax.lines] == ["loss_cls", "loss_box"]
    assert np.array_equal(lr_ax.lines[0].get_ydata(), [r["lr"] for r in records])
    assert lr_ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="history is empty"):
        training_figure([])
    with pytest.raises(ValueError, match=r"first record lacks \['lr'\]"):
        training_figure([{"iter": 1, "loss": 1.0, "loss_cls": 1.0, "loss_box": 0.0}])


def test_png_written_atomically_without_pyplot_state(tmp_path):
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    open_fig = plt.figure()  # a learner's figure, open in the session
    before = plt.get_fignums()
    try:
        path = write_training_curves(history(), tmp_path / "run" / "training.png")
        assert plt.get_fignums() == before and matplotlib.get_backend() == backend
    finally:
        plt.close(open_fig)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (960, 272)  # 12 x 3.4 inches at 80 dpi
    assert sorted(p.name for p in path.parent.iterdir()) == ["training.png"]


def test_training_refreshes_the_png_at_each_checkpoint(tmp_path):
    ds = ShapesDataset(3)
    props = jittered_proposals(ds)
    cfg = tiny_cfg(max_iters=5)
    png = tmp_path / "training.png"
    seen = {}

    def look(iteration, records):
        seen[iteration] = png.read_bytes() if png.exists() else None

    train_fast_rcnn(tiny_model(cfg), ds, props, cfg, out_dir=tmp_path, progress=False,
                    checkpoint_every=2, callback=look)  # fmt: skip
    assert seen[1] is None  # no checkpoint yet, no picture
    assert seen[2] is not None and seen[3] == seen[2]  # drawn with the checkpoint at 2 ...
    assert seen[4] != seen[2] and seen[5] != seen[4]  # ... redrawn at 4 and at the end (5)
