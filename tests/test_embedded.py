"""The embedded dataset: determinism, the VOC layout, tight boxes, the mix of objects, the cache."""

from __future__ import annotations

import hashlib
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from matplotlib.path import Path as PolygonPath

from fastrcnn_lite import embedded, embedded_cli, embedded_files
from fastrcnn_lite.config import Config
from fastrcnn_lite.teaching.data_plots import save_samples_figure
from fastrcnn_lite.voc import VOCDataset, read_annotation

from .helpers import write_voc_tree

SMALL = dict(num_trainval=12, num_test=8)


def _md5s(root: Path) -> dict[str, str]:
    """md5 of every file under root, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    return embedded_files.generate(tmp_path_factory.mktemp("emb"), seed=0, **SMALL)


@pytest.fixture(scope="module")
def rendered() -> list[tuple[np.ndarray, list[dict]]]:
    """120 images drawn in memory (no files): enough objects for statistics."""
    return [embedded.render_image(0, "trainval", i) for i in range(120)]


def test_classes_are_shapes():
    assert isinstance(embedded.CLASSES, tuple)
    assert 5 <= len(embedded.CLASSES) <= 6 and len(set(embedded.CLASSES)) == len(embedded.CLASSES)
    assert all(name.isalpha() and name.islower() for name in embedded.CLASSES)


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_images(small_root, tmp_path):
    again = embedded_files.generate(tmp_path / "again", seed=0, **SMALL)
    first, second = _md5s(small_root), _md5s(again)
    assert len(first) > 2 * 20 and first == second  # every JPEG, XML, split file and README
    other = _md5s(embedded_files.generate(tmp_path / "other", seed=1, **SMALL))
    jpegs = [k for k in first if k.endswith(".jpg")]
    assert sum(first[k] != other[k] for k in jpegs) == len(jpegs)


def test_an_image_does_not_depend_on_how_many_are_generated(small_root, tmp_path):
    fewer = embedded_files.generate(tmp_path / "fewer", seed=0, num_trainval=5, num_test=3)
    a, b = _md5s(small_root), _md5s(fewer)
    for name in ("000001", "000005", "100001", "100003"):
        for path in (f"JPEGImages/{name}.jpg", f"Annotations/{name}.xml"):
            key = f"VOCdevkit/VOC2007/{path}"
            assert a[key] == b[key]


# --- the VOC layout --------------------------------------------------------------------------


def test_layout_reads_with_the_voc_reader(small_root):
    voc = small_root / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        assert (voc / sub).is_dir()
    assert (voc / "README.txt").is_file()
    assert embedded_files.read_manifest(small_root)["seed"] == 0
    splits = {}
    for split in ("trainval", "train", "val", "test"):
        ds = VOCDataset(small_root, "2007", split, classes=embedded.CLASSES)
        splits[split] = set(ds.ids)
        for i in range(len(ds)):
            image, target = ds[i]  # the reader checks the size and that boxes lie inside
            assert image.shape[0] == 3 and len(target["boxes"]) >= 1
            assert target["labels"].min() >= 1 and target["labels"].max() <= len(embedded.CLASSES)
    assert (
        len(splits["trainval"]) == SMALL["num_trainval"]
        and len(splits["test"]) == SMALL["num_test"]
    )
    assert (
        splits["train"] | splits["val"] == splits["trainval"]
        and not splits["train"] & splits["val"]
    )
    assert abs(len(splits["train"]) - len(splits["val"])) <= 1
    assert not splits["trainval"] & splits["test"]


def test_xml_has_the_voc_structure(small_root):
    root = ET.parse(small_root / "VOCdevkit/VOC2007/Annotations/000001.xml").getroot()
    assert root.tag == "annotation"
    assert root.findtext("folder") == "VOC2007" and root.findtext("filename") == "000001.jpg"
    assert root.findtext("size/depth") == "3"
    for obj in root.iter("object"):
        assert obj.findtext("name") in embedded.CLASSES
        assert obj.findtext("pose") == "Unspecified"
        assert obj.findtext("truncated") in ("0", "1") and obj.findtext("difficult") in ("0", "1")
        corners = [int(obj.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")]
        assert 1 <= corners[0] <= corners[2] <= int(root.findtext("size/width"))
        assert 1 <= corners[1] <= corners[3] <= int(root.findtext("size/height"))


def test_per_class_split_files_match_the_annotations(small_root):
    voc = small_root / "VOCdevkit" / "VOC2007"
    for split in ("trainval", "test"):
        ids = (voc / f"ImageSets/Main/{split}.txt").read_text().split()
        for k, name in enumerate(embedded.CLASSES):
            rows = [
                line.split()
                for line in (voc / f"ImageSets/Main/{name}_{split}.txt").read_text().splitlines()
            ]
            assert [r[0] for r in rows] == ids
            for image_id, flag in rows:
                target = read_annotation(voc / "Annotations" / f"{image_id}.xml", embedded.CLASSES)
                mine = target["labels"] == k + 1
                expected = 1 if (mine & ~target["difficult"]).any() else 0 if mine.any() else -1
                assert int(flag) == expected


def test_files_hold_what_render_image_draws(small_root):
    """The XML boxes are render_image's boxes; the JPEG is its image up to compression."""
    from PIL import Image

    voc = small_root / "VOCdevkit" / "VOC2007"
    for split, index in (("trainval", 3), ("test", 5)):
        name = embedded.image_id(split, index)
        image, objects = embedded.render_image(0, split, index)
        target = read_annotation(voc / "Annotations" / f"{name}.xml", embedded.CLASSES)
        voc_boxes = np.array([o["box"] for o in objects], dtype=np.float32)
        np.testing.assert_array_equal(target["boxes"].numpy(), voc_boxes - [1, 1, 0, 0])
        assert [embedded.CLASSES[i - 1] for i in target["labels"]] == [o["name"] for o in objects]
        assert target["difficult"].tolist() == [o["difficult"] for o in objects]
        decoded = np.asarray(Image.open(voc / "JPEGImages" / f"{name}.jpg")).astype(np.float32)
        assert decoded.shape == image.shape
        assert np.abs(decoded - image).mean() < 6  # JPEG quality 90


# --- boxes -----------------------------------------------------------------------------------


def _reference_raster(outlines: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Pixel centres inside the outline and outside any hole: an independent rasteriser."""
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    centres = np.stack([xx.ravel(), yy.ravel()], 1)
    inside = PolygonPath(outlines[0]).contains_points(centres)
    for hole in outlines[1:]:
        inside &= ~PolygonPath(hole).contains_points(centres)
    return inside.reshape(height, width)


def _grow(mask: np.ndarray) -> np.ndarray:
    """Dilate a bool mask by one pixel (3 x 3), with numpy shifts."""
    padded = np.pad(mask, 1)
    height, width = mask.shape
    return np.logical_or.reduce(
        [padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)]
    )


def test_boxes_are_tight_around_the_visible_pixels(rendered):
    checked = 0
    for image, objects in rendered[:40]:
        height, width = image.shape[:2]
        for obj in objects:
            mask = obj["mask"]
            ys, xs = np.nonzero(mask)
            xmin, ymin, xmax, ymax = obj["box"]
            assert (xmin, ymin, xmax, ymax) == (
                xs.min() + 1,
                ys.min() + 1,
                xs.max() + 1,
                ys.max() + 1,
            )
            assert 1 <= xmin <= xmax <= width and 1 <= ymin <= ymax <= height
            # The visible mask is the shape, to a pixel: compare with an independent rasteriser.
            reference = _reference_raster(obj["outlines"], height, width)
            assert not (mask & ~_grow(reference)).any()
            if obj["occluded"] or obj["truncated"]:
                continue
            assert not (~mask & ~_grow(~reference)).any()  # the shape's inside is all drawn
            # A whole, unoccluded object: its box is the reference raster's extent to a pixel,
            # and the outline's extent to two (a sharp tip covers less than half a pixel).
            ys, xs = np.nonzero(reference)
            box = np.array([xmin - 1, ymin - 1, xmax, ymax])  # continuous
            np.testing.assert_allclose(
                box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1
            )
            outer = obj["outlines"][0]
            extent = np.array(
                [outer[:, 0].min(), outer[:, 1].min(), outer[:, 0].max(), outer[:, 1].max()]
            )
            assert np.all(np.abs(box - extent) <= 2) and np.abs(box - extent).mean() <= 1
            checked += 1
    assert checked > 30


def test_occluded_objects_lose_the_covered_pixels(rendered):
    """A later object's pixels are not part of an earlier object's mask, and at least half shows."""
    occluded = 0
    for _image, objects in rendered:
        for k, obj in enumerate(objects):
            assert (
                obj["visible"] >= embedded.MIN_VISIBLE - 0.1
            )  # thin lines drawn over may take a little
            for later in objects[k + 1 :]:
                assert not (obj["mask"] & later["mask"]).any()
            occluded += obj["occluded"]
    assert occluded > 0


# --- the mix of objects ------------------------------------------------------------------------


def test_the_mix_of_images_and_objects(rendered):
    objects = [o for _, objs in rendered for o in objs]
    sizes = np.array([image.shape[:2] for image, _ in rendered])
    assert sizes.min() >= embedded.IMAGE_SIDE[0] and sizes.max() <= embedded.IMAGE_SIDE[1]
    assert len({tuple(s) for s in sizes}) > 50  # widths and heights vary
    per_image = [len(objs) for _, objs in rendered]
    assert min(per_image) >= 1 and max(per_image) <= 5 and np.mean(per_image) > 2
    counts = np.array([sum(o["name"] == c for o in objects) for c in embedded.CLASSES])
    assert counts.min() > 0.6 * counts.mean() and counts.max() < 1.4 * counts.mean()  # balanced
    difficult = np.mean([o["difficult"] for o in objects])
    occluded = np.mean([o["occluded"] for o in objects])
    assert 0.02 < difficult < 0.2 and 0.1 < occluded < 0.5
    assert any(o["truncated"] for o in objects)
    box_sizes = np.array(
        [
            np.sqrt((o["box"][2] - o["box"][0] + 1) * (o["box"][3] - o["box"][1] + 1))
            for o in objects
        ]
    )
    assert box_sizes.min() < 16 and box_sizes.max() > 80
    aspects = np.array(
        [(o["box"][2] - o["box"][0] + 1) / (o["box"][3] - o["box"][1] + 1) for o in objects]
    )
    assert aspects.min() < 0.6 and aspects.max() > 1.6
    assert all(
        o["difficult"] == (s < embedded.DIFFICULT_SIZE)
        for o, s in zip(objects, box_sizes, strict=True)
    )
    assert {o["texture"] for o in objects} == set(embedded.TEXTURES)


def test_colour_does_not_tell_the_class(rendered):
    """Nearest-class-mean on an object's mean colour is near chance (1/6), far from useful."""
    colours, labels = [], []
    for image, objects in rendered:
        for o in objects:
            colours.append(image[o["mask"]].mean(0))
            labels.append(embedded.CLASSES.index(o["name"]))
    colours, labels = np.array(colours), np.array(labels)
    half = len(labels) // 2
    means = np.array(
        [colours[:half][labels[:half] == k].mean(0) for k in range(len(embedded.CLASSES))]
    )
    predicted = np.linalg.norm(colours[half:, None] - means[None], axis=2).argmin(1)
    assert (predicted == labels[half:]).mean() < 0.3


# --- generate / ensure_embedded ----------------------------------------------------------------


def test_generation_is_fast(tmp_path):
    start = time.perf_counter()
    embedded_files.generate(tmp_path, seed=3, num_trainval=12, num_test=8)
    assert time.perf_counter() - start < 10  # about 0.5 s on two idle cores; 600 images ~ 15 s


def test_ensure_embedded_generates_once_and_regenerates_on_change(tmp_path, capsys):
    cfg = Config.embedded(data_root=str(tmp_path / "emb"))
    root = embedded_files.ensure_embedded(cfg, num_trainval=6, num_test=4)
    assert root == tmp_path / "emb" and "generated" in capsys.readouterr().out
    VOCDataset(root, cfg.year, cfg.test_set, classes=embedded.CLASSES)
    jpeg = root / "VOCdevkit/VOC2007/JPEGImages/000001.jpg"
    stamp = jpeg.stat().st_mtime_ns

    assert embedded_files.ensure_embedded(cfg, num_trainval=6, num_test=4) == root
    assert capsys.readouterr().out == "" and jpeg.stat().st_mtime_ns == stamp  # silent reuse

    manifest = root / "VOCdevkit/VOC2007" / embedded_files.MANIFEST
    stored = json.loads(manifest.read_text())
    manifest.write_text(
        json.dumps({**stored, "version": stored["version"] - 1})
    )  # an old generator
    embedded_files.ensure_embedded(cfg, num_trainval=6, num_test=4)
    assert "generated" in capsys.readouterr().out
    assert json.loads(manifest.read_text())["version"] == embedded.GENERATOR_VERSION

    embedded_files.ensure_embedded(cfg, seed=1, num_trainval=6, num_test=4)  # another seed
    assert (
        "generated" in capsys.readouterr().out and embedded_files.read_manifest(root)["seed"] == 1
    )

    embedded_files.ensure_embedded(cfg, seed=1, num_trainval=6, num_test=5)  # another size
    assert "generated" in capsys.readouterr().out
    assert len(VOCDataset(root, "2007", "test", classes=embedded.CLASSES)) == 5

    jpeg.unlink()  # an incomplete tree
    embedded_files.ensure_embedded(cfg, seed=1, num_trainval=6, num_test=5)
    assert "generated" in capsys.readouterr().out and jpeg.is_file()
    assert not list((root / "VOCdevkit").glob(".*"))  # no temporary folders left


def test_never_overwrites_a_tree_it_did_not_write(tmp_path):
    write_voc_tree(tmp_path, {"000001": ((10, 10), [("dog", 1, 1, 5, 5, 0)])})
    with pytest.raises(ValueError, match="not written by fastrcnn_lite.embedded"):
        embedded_files.generate(tmp_path, **SMALL)
    with pytest.raises(ValueError, match="real PASCAL VOC"):
        embedded_files.ensure_embedded(Config.embedded(data_root=str(tmp_path)))
    assert (tmp_path / "VOCdevkit/VOC2007/JPEGImages/000001.jpg").is_file()


def test_errors_say_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        embedded_files.generate(tmp_path, seed=-1)
    with pytest.raises(ValueError, match=r"num_trainval must be an int in \[2"):
        embedded_files.generate(tmp_path, num_trainval=0)
    with pytest.raises(ValueError, match="num_test must be an int"):
        embedded_files.generate(tmp_path, num_test=2.5)
    with pytest.raises(ValueError, match="split must be one of"):
        embedded.render_image(0, "val", 0)
    with pytest.raises(TypeError, match="expects a fastrcnn_lite.config.Config"):
        embedded_files.ensure_embedded("data/embedded")


def test_command_line(tmp_path, capsys):
    assert (
        embedded_cli.main(["--root", str(tmp_path), "--num-trainval", "4", "--num-test", "2"]) == 0
    )
    out = capsys.readouterr().out
    assert "wrote" in out and "trainval.txt: 4 images" in out and "test.txt: 2 images" in out
    assert len(VOCDataset(tmp_path, "2007", "trainval", classes=embedded.CLASSES)) == 4
    figure = save_samples_figure(tmp_path, tmp_path / "fig" / "samples.png", count=2)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
