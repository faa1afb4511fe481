"""Drawing added for notebooks 00-02: labels stay inside the image, proposals, PR curves."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fastrcnn_lite import viz  # noqa: E402


def _label_extents(fig, ax):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    image_box = ax.images[0].get_window_extent(renderer)
    return image_box, [t.get_bbox_patch().get_window_extent(renderer) for t in ax.texts]


@pytest.mark.parametrize("y1", [0.0, 2.0, 60.0])
def test_a_label_stays_inside_the_image(y1):
    """A box at the top edge gets its label inside the box; lower boxes keep it above the box."""
    fig, ax = plt.subplots(figsize=(3, 3))
    viz.draw_boxes(
        ax, torch.rand(3, 100, 120), torch.tensor([[10.0, y1, 60.0, y1 + 30]]),
        torch.tensor([1]), scores=torch.tensor([0.9]), classes=("cat",),
    )  # fmt: skip
    image_box, (label,) = _label_extents(fig, ax)
    assert label.y1 <= image_box.y1 + 0.5  # display y grows upwards: the label's top is inside
    box_top_px = ax.transData.transform((10.0, y1))[1]
    if y1 == 60.0:
        assert label.y0 >= box_top_px - 1.5  # room above: on the top edge (its box pads 1 px)
    else:
        assert label.y1 <= box_top_px + 0.5  # no room: it hangs inside, under the top edge
    plt.close(fig)


def test_show_proposals_draws_the_best_proposal_of_each_object():
    image = torch.rand(3, 50, 60)
    gt = torch.tensor([[0.0, 0.0, 20.0, 20.0], [30.0, 20.0, 60.0, 50.0]])
    proposals = torch.tensor([[30.0, 20.0, 58.0, 50.0], [0.0, 0.0, 20.0, 25.0], [5.0, 5, 9, 9]])
    fig = viz.show_proposals(
        image, {"boxes": gt, "labels": torch.tensor([1, 2])}, proposals, ("a", "b"), top=(2,)
    )
    left, right = fig.axes
    assert len(left.patches) == 2 and left.get_title() == "top 2 of 3 proposals"
    assert len(right.patches) == 4  # two objects + the best proposal of each
    assert [t.get_text() for t in right.texts] == ["a 0.80", "b 0.93"]  # 400/500, 840/900
    plt.close(fig)
    fig = viz.show_proposals(image, {"boxes": gt, "labels": torch.tensor([1, 2])}, proposals[:0])
    assert len(fig.axes[-1].patches) == 2  # no proposals: only the objects
    plt.close(fig)


def test_plot_precision_recall_titles_the_ap_and_refuses_unknown_metrics():
    recall, precision = torch.tensor([0.1]), torch.tensor([1.0])
    fig, axes = plt.subplots(1, 3)
    viz.plot_precision_recall(axes[0], recall, precision)
    viz.plot_precision_recall(axes[1], recall, precision, metric="07")
    viz.plot_precision_recall(axes[2], recall, precision, metric="area")
    assert axes[0].get_title() == ""
    assert axes[1].get_title() == "11-point AP = 0.182"  # 2 / 11
    assert axes[2].get_title() == "area AP = 0.100"
    with pytest.raises(ValueError, match="metric must be None, '07' or 'area'"):
        viz.plot_precision_recall(axes[0], recall, precision, metric="11")
    plt.close(fig)
