"""Small fixtures shared by the tests: a VOCdevkit tree written on the fly, the real photos,
detections and targets written as lists."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MICRO = Path(os.environ.get("FASTRCNN_VOC_MICRO", REPO.parent / "shared" / "data" / "voc07-micro"))


def det(boxes, scores, labels) -> dict:
    """One image's detections from lists: boxes Tensor[D, 4], scores Tensor[D], labels Tensor[D]."""
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def tgt(boxes, labels, difficult=None) -> dict:
    """One image's target from lists: boxes Tensor[G, 4], labels Tensor[G], difficult Tensor[G]."""
    difficult = [False] * len(labels) if difficult is None else difficult
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "difficult": torch.tensor(difficult, dtype=torch.bool),
    }


def micro_root() -> Path:
    """The nine real VOC2007 photos, or skip the test when the folder is absent (a learner's clone)."""
    if not (MICRO / "VOCdevkit" / "VOC2007").is_dir():
        pytest.skip(f"real VOC photos not found at {MICRO}")
    return MICRO


def write_voc_tree(
    root: Path,
    images: dict[str, tuple[tuple[int, int], list[tuple]]],
    image_set: str = "trainval",
    year: str = "2007",
) -> Path:
    """Write a tiny VOCdevkit tree.

    ``images`` maps an id to ((height, width), [(name, xmin, ymin, xmax, ymax, difficult), ...]).
    """
    voc = root / "VOCdevkit" / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    for image_id, ((h, w), objects) in images.items():
        pixels = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(voc / "JPEGImages" / f"{image_id}.jpg")
        objs = "".join(
            f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            for n, x1, y1, x2, y2, d in objects
        )
        xml = f"<annotation><filename>{image_id}.jpg</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objs}</annotation>"
        (voc / "Annotations" / f"{image_id}.xml").write_text(xml)
    (voc / "ImageSets" / "Main" / f"{image_set}.txt").write_text("".join(f"{i}\n" for i in images))
    return root
