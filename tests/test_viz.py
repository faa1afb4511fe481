"""Drawing boxes: rectangles where the boxes are, one colour per class, dashed difficult boxes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from fastrcnn_lite.teaching import viz  # noqa: E402
from fastrcnn_lite.voc import VOCDataset  # noqa: E402

from .helpers import micro_root  # noqa: E402

CLASSES = ("circle", "square", "star")


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def _rectangles(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_class_colors_are_distinct():
    for n in (1, 6, 20, 25):
        colours = viz.class_colors(n)
        assert len(colours) == n and len(set(colours)) == n
        assert all(len(c) == 3 and all(0 <= v <= 1 for v in c) for c in colours)


def test_boxes_land_where_they_are_with_class_colour_text_and_dashes(ax):
    image = torch.rand(3, 40, 60)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 5.0], [20.5, 10.0, 60.0, 40.0], [1.0, 2.0, 3.0, 4.0]])
    labels = torch.tensor([3, 1, 3])
    viz.draw_boxes(
        ax, image, boxes, labels, scores=torch.tensor([0.9, 0.25, 0.5]), classes=CLASSES,
        difficult=torch.tensor([False, True, False]),
    )  # fmt: skip
    assert ax.images[0].get_extent() == [0, 60, 40, 0]  # pixel i spans [i, i + 1)
    rects = _rectangles(ax)
    assert len(rects) == 3
    for rect, (x1, y1, x2, y2) in zip(rects, boxes.tolist(), strict=True):
        assert (
            rect.get_xy() == (x1, y1)
            and rect.get_width() == x2 - x1
            and rect.get_height() == y2 - y1
        )
    palette = viz.class_colors(len(CLASSES))
    assert rects[0].get_edgecolor()[:3] == pytest.approx(palette[2])
    assert rects[1].get_edgecolor()[:3] == pytest.approx(palette[0])
    assert rects[0].get_edgecolor() == rects[2].get_edgecolor()  # same class, same colour
    assert [r.get_linestyle() for r in rects] == ["-", "--", "-"]
    assert [t.get_text() for t in ax.texts] == ["star 0.90", "circle 0.25", "star 0.50"]


def test_accepts_numpy_pil_and_tensor_images(ax):
    pixels = np.random.default_rng(0).integers(0, 255, (30, 20, 3), dtype=np.uint8)
    for image in (
        pixels,
        Image.fromarray(pixels),
        torch.from_numpy(pixels).permute(2, 0, 1),
        pixels / 255.0,
    ):
        ax.clear()
        viz.draw_boxes(ax, image, np.array([[1, 2, 5, 9]]))
        shown = ax.images[0].get_array()
        assert shown.shape == (30, 20, 3)
        scale = 255 if shown.dtype != np.uint8 else 1
        np.testing.assert_allclose(np.asarray(shown, dtype=np.float64) * scale, pixels, atol=1e-3)
        assert len(_rectangles(ax)) == 1 and not ax.texts  # no labels, no text


def test_no_image_no_boxes_and_plain_labels(ax):
    viz.draw_boxes(ax, torch.rand(3, 8, 8), None)
    viz.draw_boxes(ax, torch.rand(3, 8, 8), torch.zeros(0, 4))
    assert not _rectangles(ax)
    viz.draw_boxes(ax, None, [[1, 1, 4, 4], [2, 2, 6, 6]], labels=[0, 7], color="red")  # overlay
    assert [t.get_text() for t in ax.texts] == ["background", "7"]
    assert all(r.get_edgecolor()[:3] == (1.0, 0.0, 0.0) for r in _rectangles(ax))


def test_errors_say_what_was_expected(ax):
    image = torch.rand(3, 10, 10)
    with pytest.raises(ValueError, match=r"boxes must be \[G, 4\].*rois\[:, 1:\]"):
        viz.draw_boxes(ax, image, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="labels must have one entry per box: 2 boxes but 1"):
        viz.draw_boxes(ax, image, torch.zeros(2, 4), labels=torch.tensor([1]))
    with pytest.raises(ValueError, match=r"labels must lie in 0..3.*Add 1"):
        viz.draw_boxes(ax, image, torch.zeros(1, 4), labels=torch.tensor([4]), classes=CLASSES)
    with pytest.raises(ValueError, match=r"must be \[3, H, W\] \(channels first\)"):
        viz.draw_boxes(ax, torch.rand(10, 10, 3), None)
    with pytest.raises(ValueError, match="image must be"):
        viz.draw_boxes(ax, np.zeros((4, 4, 4)), None)


class _FakeDataset:
    classes = CLASSES

    def __getitem__(self, i):
        target = {
            "boxes": torch.tensor([[1.0, 1.0, 8.0, 8.0], [2.0, 3.0, 5.0, 9.0]]),
            "labels": torch.tensor([1, 2]),
            "difficult": torch.tensor([False, True]),
            "image_id": f"img{i}",
        }
        return torch.rand(3, 12, 16), target


def test_show_samples_grid():
    fig = viz.show_samples(_FakeDataset(), [0, 1, 2], ncols=2)
    shown = [a for a in fig.axes if a.images]
    assert len(fig.axes) == 4 and len(shown) == 3
    assert [a.get_title() for a in shown] == ["img0", "img1", "img2"]
    assert all(len(_rectangles(a)) == 2 for a in shown)
    plt.close(fig)
    fig = viz.show_samples(_FakeDataset(), range(2), show_difficult=False)
    assert all(len(_rectangles(a)) == 1 for a in fig.axes)
    plt.close(fig)
    with pytest.raises(ValueError, match="indices is empty"):
        viz.show_samples(_FakeDataset(), [])


def test_show_samples_on_real_photos():
    ds = VOCDataset(micro_root(), "2007", "test")
    fig = viz.show_samples(ds, range(min(3, len(ds))))
    for ax, i in zip(fig.axes, range(len(ds)), strict=False):
        target = ds.load_target(i)
        assert len(_rectangles(ax)) == len(target["boxes"])
        texts = {t.get_text() for t in ax.texts}
        assert texts == {ds.classes[label - 1] for label in target["labels"].tolist()}
    plt.close(fig)
