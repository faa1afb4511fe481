"""The PASCAL VOC reader: any standard VOCdevkit tree, real or embedded.

Data-flow stage: **image** (the first stage). Everything downstream reads images and boxes
through :class:`VOCDataset`, so the embedded dataset (written by ``fastrcnn_lite.embedded_files``
in the same layout) and real PASCAL VOC go through the very same code.

Layout read::

    <root>/VOCdevkit/VOC<year>/JPEGImages/<id>.jpg
    <root>/VOCdevkit/VOC<year>/Annotations/<id>.xml
    <root>/VOCdevkit/VOC<year>/ImageSets/Main/<image_set>.txt
    <root>/VOCdevkit/VOC<year>/classes.txt      (optional: the dataset's class names, one a line)

What a dataset's classes are comes from the dataset: ``classes.txt`` when the tree has one (the
embedded generator writes it), else PASCAL VOC's 20. So a copy of a dataset at another path
reads the same, and :func:`read_classes` is the one place that decides it.

Errors on bad data name the file and the field (``Annotations/000005.xml object 2 (dog):
<xmin> must be a number; got 'abc'``); they are :class:`~fastrcnn_lite.cli.UserError`, so a
command prints them as one line.

Boxes come out in the package's continuous pixel convention (see ``fastrcnn_lite.boxes``):
the VOC 1-based inclusive corners are converted by :func:`~fastrcnn_lite.boxes.voc_to_xyxy`
here and nowhere else.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .boxes import voc_to_xyxy
from .cli import UserError

__all__ = [
    "VOC_CLASSES",
    "CLASSES_FILE",
    "VOCDataset",
    "read_annotation",
    "difficult_flags",
    "gt_for_training",
    "read_classes",
    "read_split",
    "voc_dir",
    "DOWNLOAD_HINT",
]

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


CLASSES_FILE = "classes.txt"  # in VOC<year>/: the dataset's class names, one a line


def voc_dir(root: str | Path, year: str) -> Path:
    """``<root>/VOCdevkit/VOC<year>``.

    No notebook: the reader, ``download.py`` and the training command build paths with it.
    """
    return Path(root) / "VOCdevkit" / f"VOC{year}"


def read_classes(root: str | Path, year: str = "2007") -> tuple[str, ...]:
    """The class names of the dataset at ``<root>/VOCdevkit/VOC<year>``, in label order.

    ``classes.txt`` in that folder (one name a line, as the embedded generator writes it) when
    it exists, else :data:`VOC_CLASSES`. Label i + 1 is ``classes[i]``; 0 is background.

    No notebook: :class:`VOCDataset`, ``data.load_datasets`` and the commands call it.

    Raises:
        UserError: ``classes.txt`` is empty, or names a class twice or with spaces.
    """
    path = voc_dir(root, str(year)) / CLASSES_FILE
    if not path.is_file():
        return VOC_CLASSES
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if not names or repeated or any(len(n.split()) != 1 for n in names):
        problem = (
            "no class name"
            if not names
            else f"{repeated} more than once"
            if repeated
            else "a name with spaces"
        )
        raise UserError(
            f"{path} lists {problem}; expected one class name per line, each once, in label order "
            f"(label 1 first). Fix the file, or delete it to use the 20 PASCAL VOC classes."
        )
    return tuple(names)


def read_split(path: str | Path) -> list[str]:
    """The image ids of a split file (``ImageSets/Main/<image_set>.txt``), one a line.

    Notebook 00 shows these files; :class:`VOCDataset` reads them with this.

    Raises:
        FileNotFoundError: no such file.
        UserError: the file lists no id, or an id twice (the message names the file, the ids
            and their line numbers): a repeated image would be counted twice in training and
            evaluation.
    """
    path = Path(path)
    ids, first_line, repeats = [], {}, []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        image_id = fields[0]  # VOC's <class>_<split>.txt files add a flag after the id
        if image_id in first_line:
            repeats.append(f"{image_id!r} (lines {first_line[image_id]} and {lineno})")
        else:
            first_line[image_id] = lineno
        ids.append(image_id)
    if not ids:
        raise UserError(
            f"Split file {path} lists no image id; expected one id per line (e.g. 000005). "
            "Is the file truncated? Download or generate the dataset again."
        )
    if repeats:
        shown = ", ".join(repeats[:5]) + (
            f" and {len(repeats) - 5} more" if len(repeats) > 5 else ""
        )
        raise UserError(
            f"Split file {path} lists an image id more than once: {shown}. Each image must appear "
            "once; remove the repeated lines (were two split files concatenated?)."
        )
    return ids


def _text(node: ET.Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise UserError(f"{where}: missing <{tag}>.")
    return child.text.strip()


def _number(node: ET.Element, tag: str, where: str, kind: type = float):
    """The number in ``<tag>``; an error naming the file, the object and the field otherwise."""
    text = _text(node, tag, where)
    what = "an integer" if kind is int else "a number"
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{where}: <{tag}> must be {what}; got {text!r}.") from None
    if not math.isfinite(value) or (kind is int and not value.is_integer()):
        raise UserError(
            f"{where}: <{tag}> must be {'a finite number' if kind is float else what}; got {text!r}."
        )
    return int(value) if kind is int else value


def read_annotation(path: str | Path, classes: tuple[str, ...] = VOC_CLASSES) -> dict:
    """Parse one VOC annotation XML.

    Notebook 00 shows the XML this parses (through ``VOCDataset.load_target``).

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
        raise UserError(f"Malformed annotation XML {path}: {e}") from e
    where = str(path)
    size = root.find("size")
    if size is None:
        raise UserError(f"{where}: missing <size>.")
    width = _number(size, "width", f"{where} <size>", int)
    height = _number(size, "height", f"{where} <size>", int)
    boxes, labels, difficult = [], [], []
    for k, obj in enumerate(root.iter("object")):
        name = _text(obj, "name", f"{where} object {k}")
        if name not in classes:
            raise UserError(
                f"{where} object {k}: unknown class {name!r}; expected one of {list(classes)}. "
                f"A dataset with classes of its own lists them, one a line, in "
                f"{path.parent.parent / CLASSES_FILE}."
            )
        bb = obj.find("bndbox")
        if bb is None:
            raise UserError(f"{where} object {k} ({name}): missing <bndbox>.")
        corners = [
            _number(bb, t, f"{where} object {k} ({name})") for t in ("xmin", "ymin", "xmax", "ymax")
        ]
        xmin, ymin, xmax, ymax = corners
        if xmax < xmin or ymax < ymin:
            raise UserError(
                f"{where} object {k} ({name}): box {corners} has xmax < xmin or ymax < ymin."
            )
        if xmin < 1 or ymin < 1 or xmax > width or ymax > height:
            raise UserError(
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


def difficult_flags(target: dict) -> Tensor:
    """The ``difficult`` flags of a target (Tensor[G] bool); all False when it has none.

    VOC marks hard objects ``<difficult>1``: evaluation ignores them (neither a hit nor a miss)
    and the systems do not train on them (:func:`gt_for_training`). Notebook 02 teaches why
    evaluation ignores them; ``evaluate.py`` reads the flags with this.
    """
    difficult = target.get("difficult")
    if difficult is None:
        return torch.zeros_like(target["labels"], dtype=torch.bool)  # (G,)
    return difficult.bool()  # (G,)


def gt_for_training(target: dict, use_difficult: bool = False) -> tuple[Tensor, Tensor]:
    """The gt boxes (Tensor[G', 4] float32) and labels (Tensor[G']) a detector trains on: the
    difficult objects dropped unless ``use_difficult`` (``cfg.use_difficult``; the paper's code
    drops them).

    Notebook 03 teaches why training drops difficult objects; every system's training
    (``regions.py``, ``region_heads.py``, ``pretrain.py``, ``sppnet.py``, ``train.py``) calls it.
    """
    keep = torch.ones(len(target["boxes"]), dtype=torch.bool)  # (G,)
    if not use_difficult and "difficult" in target:
        keep = ~target["difficult"].bool()
    return target["boxes"][keep].float(), target["labels"][keep]


class VOCDataset(torch.utils.data.Dataset):
    """Images and boxes from a VOCdevkit tree.

    Notebook 00 teaches it (every notebook opens its data through ``data.load_datasets``).

    Args:
        root: the folder that contains ``VOCdevkit/``.
        year: ``"2007"``, ``"2012"``, ... (the ``VOC<year>`` folder).
        image_set: the split file under ``ImageSets/Main`` (``train``, ``val``, ``trainval``, ``test``).
        classes: class names in label order (label i + 1 = classes[i]); None (default): the
            dataset's own, from :func:`read_classes` (``classes.txt`` in the tree, else VOC's 20).

    ``dataset[i]`` returns ``(image, target)``: image Tensor[3, H, W] float32 in [0, 1] and the
    dict of :func:`read_annotation`.
    """

    def __init__(
        self,
        root: str | Path,
        year: str = "2007",
        image_set: str = "trainval",
        classes: tuple[str, ...] | None = None,
    ):
        self.root = Path(root)
        self.year = str(year)
        self.image_set = image_set
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
        self.ids = read_split(split)
        self.classes = tuple(read_classes(root, self.year) if classes is None else classes)

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
        except OSError as e:  # "image file is truncated", "cannot identify image file"
            raise UserError(
                f"Cannot decode image {path}: {e}. Replace it with a complete copy (download or "
                "generate the dataset again)."
            ) from e
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)  # (3, H, W)

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        target = self.load_target(index)
        image = self.load_image(index)
        if tuple(image.shape[1:]) != target["size"]:
            raise UserError(
                f"{self.image_path(index)}: image is {image.shape[2]}x{image.shape[1]} but its annotation says "
                f"{target['size'][1]}x{target['size'][0]} (width x height)."
            )
        return image, target
