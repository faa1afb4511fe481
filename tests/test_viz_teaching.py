"""Drawing added for notebooks 00-02: labels stay inside the image, proposals, PR curves."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fastrcnn_lite.teaching import curve_plots, viz  # noqa: E402


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
    curve_plots.plot_precision_recall(axes[0], recall, precision)
    curve_plots.plot_precision_recall(axes[1], recall, precision, metric="07")
    curve_plots.plot_precision_recall(axes[2], recall, precision, metric="area")
    assert axes[0].get_title() == ""
    assert axes[1].get_title() == "11-point AP = 0.182"  # 2 / 11
    assert axes[2].get_title() == "area AP = 0.100"
    with pytest.raises(ValueError, match="metric must be None, '07' or 'area'"):
        curve_plots.plot_precision_recall(axes[0], recall, precision, metric="11")
    plt.close(fig)


def test_show_detections_draws_gt_and_the_detections_above_the_score():
    class Data:
        classes = ["a", "b"]

        def __getitem__(self, i):
            target = {"boxes": torch.tensor([[2.0, 2, 10, 10]]), "image_id": f"im{i}"}
            return torch.zeros(3, 20, 30), target

    det = {"boxes": torch.tensor([[1.0, 1, 9, 9], [3, 3, 12, 12]]), "scores": torch.tensor([0.9, 0.2]),
           "labels": torch.tensor([1, 2])}  # fmt: skip
    fig = viz.show_detections(Data(), [det] * 5, [0, 3, 4], min_score=0.5)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["im0", "im3", "im4"]
    for ax in panels:  # one gt box and the one detection above 0.5
        assert len([p for p in ax.patches if isinstance(p, viz.Rectangle)]) == 2
    assert len(viz.show_detections(Data(), [det] * 5, range(5)).axes) == 6  # 3 per row, one off
    with pytest.raises(ValueError, match="indices is empty"):
        viz.show_detections(Data(), [det], [])
    plt.close("all")


def test_plot_loss_curve_running_mean_by_hand():
    ax = curve_plots.plot_loss_curve([4.0, 2.0, 0.0, 2.0], window=2, title="t")
    raw, mean = ax.lines
    assert list(raw.get_ydata()) == [4.0, 2.0, 0.0, 2.0]
    assert list(mean.get_xdata()) == [1, 2, 3] and list(mean.get_ydata()) == [3.0, 1.0, 1.0]
    assert ax.get_title() == "t"
    assert len(curve_plots.plot_loss_curve([1.0], window=5).lines) == 1  # too short for a mean
    with pytest.raises(ValueError, match="window must be a positive"):
        curve_plots.plot_loss_curve([1.0], window=0)
    plt.close("all")
