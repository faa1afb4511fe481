"""The PASCAL VOC reader: any standard VOCdevkit tree, real or embedded.

Data-flow stage: **image** (the first stage). Everything downstream reads images and boxes
through :class:`VOCDataset`, so the embedded dataset (written by ``fastrcnn_lite.embedded`` in
the same layout) and real PASCAL VOC go through the very same code.

Layout read::

    <root>/VOCdevkit/VOC<year>/JPEGImages/<id>.jpg
    <root>/VOCdevkit/VOC<year>/Annotations/<id>.xml
    <root>/VOCdevkit/VOC<year>/ImageSets/Main/<image_set>.txt

Boxes come out in the package's continuous pixel convention (see ``fastrcnn_lite.boxes``):
the VOC 1-based inclusive corners are converted by :func:`~fastrcnn_lite.boxes.voc_to_xyxy`
here and nowhere else.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .boxes import voc_to_xyxy

__all__ = ["VOC_CLASSES", "VOCDataset", "read_annotation", "voc_dir", "DOWNLOAD_HINT"]

# The 20 PASCAL VOC classes in the standard order; label i + 1 is VOC_CLASSES[i], 0 = background.
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip

DOWNLOAD_HINT = (
    "Download PASCAL VOC with `python -m fastrcnn_lite.download --root data/voc --year 2007`, "
    "or generate the embedded dataset with `python -m fastrcnn_lite.embedded --root data/embedded`."
)


def voc_dir(root: str | Path, year: str) -> Path:
    """``<root>/VOCdevkit/VOC<year>``."""
    return Path(root) / "VOCdevkit" / f"VOC{year}"


def _text(node: ET.Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        raise ValueError(f"{where}: missing <{tag}>.")
    return child.text.strip()


def read_annotation(path: str | Path, classes: tuple[str, ...] = VOC_CLASSES) -> dict:
    """Parse one VOC annotation XML.

    Returns:
        dict with ``boxes`` (Tensor[G, 4] float32, continuous x1, y1, x2, y2), ``labels``
        (Tensor[G] int64, 1..len(classes)), ``difficult`` (Tensor[G] bool), ``image_id`` (str),
        ``size`` ((height, width)).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Annotation file not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"Malformed annotation XML {path}: {e}") from e
    where = str(path)
    size = root.find("size")
    if size is None:
        raise ValueError(f"{where}: missing <size>.")
    width, height = int(_text(size, "width", where)), int(_text(size, "height", where))
    boxes, labels, difficult = [], [], []
    for k, obj in enumerate(root.iter("object")):
        name = _text(obj, "name", f"{where} object {k}")
        if name not in classes:
            raise ValueError(
                f"{where} object {k}: unknown class {name!r}; expected one of {list(classes)}."
            )
        bb = obj.find("bndbox")
        if bb is None:
            raise ValueError(f"{where} object {k} ({name}): missing <bndbox>.")
        corners = [
            float(_text(bb, t, f"{where} object {k} ({name})"))
            for t in ("xmin", "ymin", "xmax", "ymax")
        ]
        xmin, ymin, xmax, ymax = corners
        if xmax < xmin or ymax < ymin:
            raise ValueError(
                f"{where} object {k} ({name}): box {corners} has xmax < xmin or ymax < ymin."
            )
        if xmin < 1 or ymin < 1 or xmax > width or ymax > height:
            raise ValueError(
                f"{where} object {k} ({name}): box {corners} lies outside the {width}x{height} image "
                "(VOC corners are 1-based: 1 <= xmin <= xmax <= width)."
            )
        diff = obj.find("difficult")
        boxes.append(corners)
        labels.append(classes.index(name) + 1)
        difficult.append(diff is not None and diff.text is not None and diff.text.strip() == "1")
    voc_boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)  # (G, 4) 1-based inclusive
    return {
        "boxes": voc_to_xyxy(voc_boxes),  # (G, 4) continuous
        "labels": torch.tensor(labels, dtype=torch.int64),  # (G,)
        "difficult": torch.tensor(difficult, dtype=torch.bool),  # (G,)
        "image_id": path.stem,
        "size": (height, width),
    }


class VOCDataset(torch.utils.data.Dataset):
    """Images and boxes from a VOCdevkit tree.

    Args:
        root: the folder that contains ``VOCdevkit/``.
        year: ``"2007"``, ``"2012"``, ... (the ``VOC<year>`` folder).
        image_set: the split file under ``ImageSets/Main`` (``train``, ``val``, ``trainval``, ``test``).
        classes: class names in label order (label i + 1 = classes[i]); VOC's 20 by default,
            ``fastrcnn_lite.embedded.CLASSES`` for the embedded dataset.

    ``dataset[i]`` returns ``(image, target)``: image Tensor[3, H, W] float32 in [0, 1] and the
    dict of :func:`read_annotation`.
    """

    def __init__(
        self,
        root: str | Path,
        year: str = "2007",
        image_set: str = "trainval",
        classes: tuple[str, ...] = VOC_CLASSES,
    ):
        self.root = Path(root)
        self.year = str(year)
        self.image_set = image_set
        self.classes = tuple(classes)
        self.dir = voc_dir(root, self.year)
        if not self.dir.is_dir():
            raise FileNotFoundError(
                f"No VOCdevkit tree at {self.dir} (looked for <root>/VOCdevkit/VOC{self.year}). {DOWNLOAD_HINT}"
            )
        split = self.dir / "ImageSets" / "Main" / f"{image_set}.txt"
        if not split.is_file():
            have = sorted(
                p.stem for p in (self.dir / "ImageSets" / "Main").glob("*.txt") if "_" not in p.stem
            )
            raise FileNotFoundError(
                f"No split file {split}; splits found there: {have}. {DOWNLOAD_HINT}"
            )
        self.ids = [line.strip() for line in split.read_text().splitlines() if line.strip()]

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"VOCDataset({str(self.root)!r}, year={self.year!r}, image_set={self.image_set!r}, {len(self)} images, {len(self.classes)} classes)"

    def image_path(self, index: int) -> Path:
        return self.dir / "JPEGImages" / f"{self.ids[index]}.jpg"

    def annotation_path(self, index: int) -> Path:
        return self.dir / "Annotations" / f"{self.ids[index]}.xml"

    def load_target(self, index: int) -> dict:
        """The annotation of image ``index`` without decoding the image."""
        return read_annotation(self.annotation_path(index), self.classes)

    def load_image(self, index: int) -> Tensor:
        """Image ``index`` as Tensor[3, H, W] float32 in [0, 1]."""
        path = self.image_path(index)
        if not path.is_file():
            raise FileNotFoundError(f"Image file not found: {path}")
        try:
            with Image.open(path) as im:
                array = np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
        except OSError as e:
            raise ValueError(f"Cannot decode image {path}: {e}") from e
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)  # (3, H, W)

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        target = self.load_target(index)
        image = self.load_image(index)
        if tuple(image.shape[1:]) != target["size"]:
            raise ValueError(
                f"{self.image_path(index)}: image is {image.shape[2]}x{image.shape[1]} but its annotation says "
                f"{target['size'][1]}x{target['size'][0]} (width x height)."
            )
        return image, target
