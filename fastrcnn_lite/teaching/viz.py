"""Drawing images with boxes: ground truth, proposals and detections, with matplotlib.

Data-flow stage: none; a look at any stage (images and gt boxes, proposals, detections). Works
the same for the embedded dataset and real VOC photos.

Boxes are the package's continuous (x1, y1, x2, y2) pixels (see ``fastrcnn_lite.boxes``). The
image is drawn with ``extent=(0, W, H, 0)`` so pixel column ``i`` spans ``[i, i + 1)`` and a box
edge at ``x = 10`` falls exactly on the border between columns 9 and 10.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.patches import Rectangle

from ..boxes import box_iou

__all__ = [
    "class_colors",
    "to_display_image",
    "draw_boxes",
    "show_samples",
    "show_proposals",
    "show_detections",
]


def class_colors(num_classes: int) -> list[tuple[float, float, float]]:
    """One RGB colour per class (index 0 = label 1): tab10 up to 10 classes, tab20 up to 20, then hsv.

    No notebook: :func:`draw_boxes` and :func:`show_samples` colour the classes with it.
    """
    if num_classes <= 20:
        cmap = colormaps[
            "tab10" if num_classes <= 10 else "tab20"
        ]  # listed: integer k = k-th colour
        return [tuple(float(v) for v in cmap(k)[:3]) for k in range(num_classes)]
    cmap = colormaps["hsv"]
    return [tuple(float(v) for v in cmap(k / num_classes)[:3]) for k in range(num_classes)]


def to_display_image(image) -> np.ndarray:
    """Any image the course handles as ndarray[H, W, 3] (or [H, W]) ready for ``imshow``.

    No notebook: the drawing functions here convert each image with it.

    Accepts Tensor[3, H, W] (float in [0, 1] or uint8), Tensor[H, W], ndarray[H, W, 3] or
    [H, W] (uint8 or float in [0, 1]) and PIL images.
    """
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu()
        if array.ndim == 3:
            if array.shape[0] not in (1, 3):
                raise ValueError(
                    f"A Tensor image must be [3, H, W] (channels first); got shape {tuple(array.shape)}. "
                    "For channels-last data pass a numpy array [H, W, 3]."
                )
            array = array.permute(1, 2, 0)  # (H, W, C)
        array = array.numpy()
    elif hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        array = np.asarray(image.convert("RGB"))
    else:
        array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(
            f"image must be [3, H, W] (Tensor), [H, W, 3] or [H, W] (array); got shape {array.shape}."
        )
    if array.dtype != np.uint8:
        array = np.clip(array.astype(np.float32), 0.0, 1.0)
    return array


def _as_array(values, name: str, shape_hint: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype == object:
        raise TypeError(
            f"{name} must be numbers ({shape_hint}); got {type(values).__name__} of objects."
        )
    return array


def draw_boxes(
    ax: plt.Axes,
    image=None,
    boxes=None,
    labels=None,
    scores=None,
    classes: Sequence[str] | None = None,
    difficult=None,
    color=None,
    linewidth: float = 1.5,
    fontsize: float = 7,
    show_text: bool = True,
    title: str | None = None,
) -> plt.Axes:
    """Draw an image and its boxes on ``ax``.

    Notebook 00 draws boxes with it; notebooks 03, 05 and 06 too.

    Args:
        ax: a matplotlib Axes.
        image: Tensor[3, H, W] float in [0, 1] (what ``VOCDataset`` returns), ndarray[H, W, 3],
            a PIL image, or None to draw boxes over what ``ax`` already shows (detections on
            top of ground truth, say).
        boxes (Tensor[G, 4] or array): continuous (x1, y1, x2, y2) pixels; None or empty for none.
        labels (Tensor[G] int, optional): 1..K (0 = background); picks a colour per class and
            the text ``classes[label - 1]``.
        scores (Tensor[G], optional): shown after the class name (detections).
        classes: class names in label order (``voc.VOC_CLASSES``, ``embedded.CLASSES``).
        difficult (Tensor[G] bool, optional): difficult boxes are drawn dashed.
        color: one colour for every box (overrides the per-class colours).
        linewidth, fontsize: line width and label font size.
        show_text: write the class name / score at each box's top-left corner.
        title: the Axes title.

    Returns:
        The Axes.
    """
    if image is not None:
        array = to_display_image(image)
        height, width = array.shape[:2]
        ax.imshow(array, extent=(0, width, height, 0), cmap="gray" if array.ndim == 2 else None)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=fontsize + 2)
    if boxes is None:
        return ax
    boxes = _as_array(boxes, "boxes", "[G, 4] x1, y1, x2, y2").astype(np.float64)
    if boxes.size == 0:
        return ax
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"boxes must be [G, 4] continuous (x1, y1, x2, y2); got shape {boxes.shape}. "
            "For RoIs [R, 5] drop the batch-index column: rois[:, 1:]."
        )
    count = len(boxes)
    optional = {}
    for name, values in (("labels", labels), ("scores", scores), ("difficult", difficult)):
        if values is None:
            continue
        values = _as_array(values, name, "[G]").reshape(-1)
        if len(values) != count:
            raise ValueError(
                f"{name} must have one entry per box: {count} boxes but {len(values)} {name}."
            )
        optional[name] = values
    labels, scores, difficult = (
        optional.get("labels"),
        optional.get("scores"),
        optional.get("difficult"),
    )
    if labels is not None:
        labels = labels.astype(np.int64)
        if classes is not None and (labels.min() < 0 or labels.max() > len(classes)):
            raise ValueError(
                f"labels must lie in 0..{len(classes)} (0 = background, i = classes[i - 1]); got "
                f"{labels.min()}..{labels.max()}. Are they 0-based class indices? Add 1."
            )
    num_colours = (
        len(classes)
        if classes is not None
        else int(labels.max())
        if labels is not None and count
        else 1
    )
    palette = class_colors(max(num_colours, 1))
    top, per_point = _data_per_point(ax)  # to keep labels inside the image (below)
    label_height, pad = (fontsize + 2.4) * per_point, 0.8 * per_point  # text + box padding
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        label = int(labels[k]) if labels is not None else None
        if color is not None:
            edge = color
        elif label is not None and label >= 1:
            edge = palette[(label - 1) % len(palette)]
        elif label == 0:
            edge = (0.5, 0.5, 0.5)  # background
        else:
            edge = palette[0]
        dashed = difficult is not None and bool(difficult[k])
        ax.add_patch(
            Rectangle(
                (x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=edge, linewidth=linewidth,
                linestyle="--" if dashed else "-",
            )
        )  # fmt: skip
        if not show_text or (label is None and scores is None):
            continue
        parts = []
        if label is not None:
            parts.append(
                classes[label - 1]
                if classes is not None and label >= 1
                else "background"
                if label == 0
                else str(label)
            )
        if scores is not None:
            parts.append(f"{float(scores[k]):.2f}")
        # Above the box's top edge; inside it (under the edge) when that would leave the image.
        inside = y1 - top < label_height
        ax.text(
            x1, y1 + pad if inside else y1, " ".join(parts), fontsize=fontsize, color="white",
            va="top" if inside else "bottom", ha="left",
            bbox=dict(facecolor=edge, edgecolor="none", alpha=0.8, pad=0.8),
            clip_on=True,
        )  # fmt: skip
    return ax


def _data_per_point(ax: plt.Axes) -> tuple[float, float]:
    """(top of the drawn area, data units per typographic point) on ``ax`` as it is laid out now."""
    bottom, top = ax.get_ylim()
    pixels = max(ax.get_window_extent().height, 1.0)  # the Axes' height on screen
    return min(bottom, top), abs(bottom - top) / pixels * ax.figure.dpi / 72


def show_samples(
    dataset,
    indices: Sequence[int],
    ncols: int = 4,
    classes: Sequence[str] | None = None,
    show_difficult: bool = True,
    figsize: tuple[float, float] | None = None,
    fontsize: float = 7,
) -> plt.Figure:
    """A grid of dataset images with their ground-truth boxes and class names.

    Notebook 00 shows the dataset with it.

    Args:
        dataset: anything whose ``dataset[i]`` is ``(image, target)`` with ``target["boxes"]``,
            ``["labels"]`` and optionally ``["difficult"]``, ``["image_id"]`` (``VOCDataset``).
        indices: which images.
        ncols: images per row.
        classes: class names; ``dataset.classes`` by default.
        show_difficult: draw difficult boxes (dashed); False leaves them out.
        figsize: default 2.6 inches per image.

    Returns:
        The Figure (call ``plt.show()`` or ``fig.savefig(...)``).
    """
    indices = list(indices)
    if not indices:
        raise ValueError("indices is empty; pass the dataset indices to show, e.g. range(8).")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1; got {ncols}.")
    classes = classes if classes is not None else getattr(dataset, "classes", None)
    ncols = min(ncols, len(indices))
    nrows = -(-len(indices) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=figsize or (2.6 * ncols, 2.6 * nrows), squeeze=False
    )
    for ax in axes.flat[len(indices) :]:
        ax.axis("off")
    for ax, index in zip(axes.flat, indices, strict=False):  # extra axes stay off
        image, target = dataset[index]
        boxes, labels = target["boxes"], target["labels"]
        difficult = target.get("difficult")
        if difficult is not None and not show_difficult:
            keep = ~torch.as_tensor(difficult, dtype=torch.bool)
            boxes, labels, difficult = boxes[keep], labels[keep], None
        draw_boxes(
            ax, image, boxes, labels, classes=classes, difficult=difficult, fontsize=fontsize,
            title=str(target.get("image_id", index)),
        )  # fmt: skip
    fig.tight_layout()
    return fig


def show_proposals(
    image,
    target: dict,
    boxes,
    classes: Sequence[str] | None = None,
    top: Sequence[int] = (100, 1000),
    figsize: tuple[float, float] = (13, 4),
) -> plt.Figure:
    """Proposals of one image: the top N for each N in ``top``, then each object's best proposal.

    Notebook 01 shows an image's proposals with it.

    Taught in notebook 01 (region proposals).

    Args:
        image: Tensor[3, H, W] (or any image :func:`draw_boxes` accepts).
        target: ``boxes`` (Tensor[G, 4]) and ``labels`` (Tensor[G]), as ``VOCDataset`` gives.
        boxes (Tensor[P, 4]): the proposals, best-ranked first (P may be 0).
        classes: class names in label order.
        top: one panel per N, showing the first N proposals (thin yellow).
        figsize: the figure's size in inches.

    Returns:
        The Figure; its last panel shows the gt boxes (thick) and, for each, the proposal with
        the highest IoU, labelled with that IoU.
    """
    fig, axes = plt.subplots(1, len(top) + 1, figsize=figsize, squeeze=False)
    axes = axes[0]
    for ax, n in zip(axes, top, strict=False):  # the last Axes is drawn below
        draw_boxes(
            ax, image, boxes[:n], color="yellow", linewidth=0.4, show_text=False,
            title=f"top {min(n, len(boxes))} of {len(boxes)} proposals",
        )  # fmt: skip
    gt = target["boxes"]
    draw_boxes(
        axes[-1], image, gt, target["labels"], classes=classes, linewidth=2.5, show_text=False,
        title="objects (thick) and their best proposal (IoU)",
    )  # fmt: skip
    if len(boxes) and len(gt):
        best_iou, best = box_iou(gt.double(), boxes.double()).max(dim=1)  # (G,) IoU, which proposal
        draw_boxes(
            axes[-1], None, boxes[best], labels=target["labels"], scores=best_iou,
            classes=classes, linewidth=1,
        )  # fmt: skip
    fig.tight_layout()
    return fig


def show_detections(
    dataset,
    detections: Sequence[dict],
    indices: Sequence[int],
    min_score: float = 0.0,
    ncols: int | None = None,
    figsize: tuple[float, float] | None = None,
) -> plt.Figure:
    """Test images with their gt boxes (thin white) and the detections above ``min_score``.

    Notebook 03 shows its detections with it; notebooks 05 and 06 too.

    Taught in notebooks 03, 05 and 06 (what each detector finds).

    Args:
        dataset: ``dataset[i] -> (image Tensor[3, H, W], target)`` with ``classes`` (VOCDataset).
        detections: one dict per image of the dataset: ``boxes`` (Tensor[D, 4]), ``scores``
            (Tensor[D]), ``labels`` (Tensor[D], 1..K), as every detector's ``detect`` returns.
        indices: which images to show, one panel each.
        min_score: detections scoring at most this are left out.
        ncols: panels per row (default: all in one row up to 4, else 3 per row).
        figsize: the figure's size in inches (default: 3 x 3.4 per panel).

    Returns:
        The Figure; each panel is titled with the image id.
    """
    indices = list(indices)
    if not indices:
        raise ValueError("indices is empty; pass the dataset indices of the images to show.")
    if ncols is None:
        ncols = len(indices) if len(indices) <= 4 else 3
    nrows = -(-len(indices) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=figsize or (3 * ncols, 3.4 * nrows), squeeze=False
    )
    for ax in axes.flat[len(indices) :]:
        ax.axis("off")
    for ax, i in zip(axes.flat, indices, strict=False):
        image, target = dataset[i]
        draw_boxes(ax, image, target["boxes"], color="white", show_text=False, linewidth=1)
        det = detections[i]
        keep = det["scores"] > min_score  # (D,)
        draw_boxes(
            ax, None, det["boxes"][keep], det["labels"][keep], det["scores"][keep],
            classes=dataset.classes,
        )  # fmt: skip
        ax.set_title(str(target["image_id"]), fontsize=9)
    fig.tight_layout()
    return fig


def compact_figures(quality: int = 85) -> None:
    """Show inline notebook figures as JPEG instead of PNG.

    Notebook 00 calls it first; notebooks 01, 02, 06, 07 and 08 too.

    The embedded dataset's textured images compress badly as PNG (about 0.7 MB per sample grid);
    as JPEG they take a tenth of that, which keeps the committed notebooks small and diffable.
    Call once at the top of a notebook; does nothing outside IPython.
    """
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is None:
        return
    set_matplotlib_formats("jpeg", pil_kwargs={"quality": quality})
