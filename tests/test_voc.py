"""The VOC reader on real photos and on trees written by the test, including every bad-input error."""

import pytest
import torch

from fastrcnn_lite.voc import VOC_CLASSES, VOCDataset, read_annotation, read_classes

from .helpers import micro_root, write_voc_tree


def test_reads_real_voc_photos():
    ds = VOCDataset(micro_root(), "2007", "test")
    assert len(ds) == 9
    objects = difficult = 0
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.dtype == torch.float32 and image.shape[0] == 3
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert tuple(image.shape[1:]) == target["size"]
        h, w = target["size"]
        boxes = target["boxes"]
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert (
            target["labels"].dtype == torch.int64
            and (target["labels"] >= 1).all()
            and (target["labels"] <= 20).all()
        )
        objects += len(boxes)
        difficult += int(target["difficult"].sum())
    assert (objects, difficult) == (46, 8)  # the folder's README


def _convention_check():
    # VOC (1-based inclusive) xmin=1..xmax=10 covers 10 pixel columns -> continuous x1=0, x2=10
    def check(root):
        target = read_annotation(root / "VOCdevkit/VOC2007/Annotations/a.xml")
        assert target["boxes"].tolist() == [[0.0, 4.0, 10.0, 20.0]]
        assert target["labels"].tolist() == [VOC_CLASSES.index("dog") + 1]
        assert target["difficult"].tolist() == [True]

    return check


def test_box_conversion(tmp_path):
    root = write_voc_tree(tmp_path, {"a": ((30, 40), [("dog", 1, 5, 10, 20, 1)])})
    _convention_check()(root)


def test_custom_classes(tmp_path):
    root = write_voc_tree(tmp_path, {"a": ((30, 40), [("star", 2, 2, 9, 9, 0)])})
    ds = VOCDataset(root, classes=("circle", "star"))
    assert ds.load_target(0)["labels"].tolist() == [2]


def test_missing_root_names_path_and_download_command(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"VOCdevkit/VOC2007.*python -m fastrcnn_lite.download"
    ):
        VOCDataset(tmp_path / "nowhere")


def test_missing_split_lists_available(tmp_path):
    root = write_voc_tree(tmp_path, {"a": ((30, 40), [("dog", 1, 5, 10, 20, 0)])})
    with pytest.raises(FileNotFoundError, match=r"test\.txt.*\['trainval'\]"):
        VOCDataset(root, image_set="test")


@pytest.mark.parametrize(
    "obj, message",
    [
        (("dog", 10, 5, 4, 20, 0), r"a\.xml object 0 \(dog\).*xmax < xmin"),
        (("dog", 1, 5, 41, 20, 0), r"a\.xml object 0 \(dog\).*outside the 40x30 image"),
        (("unicorn", 1, 5, 10, 20, 0), r"a\.xml object 0: unknown class 'unicorn'"),
    ],
)
def test_bad_boxes_name_file_and_object(tmp_path, obj, message):
    root = write_voc_tree(tmp_path, {"a": ((30, 40), [obj])})
    with pytest.raises(ValueError, match=message):
        VOCDataset(root)[0]


def test_malformed_xml_and_missing_files(tmp_path):
    root = write_voc_tree(
        tmp_path, {"a": ((30, 40), [("dog", 1, 5, 10, 20, 0)]), "b": ((30, 40), [])}
    )
    voc = root / "VOCdevkit/VOC2007"
    (voc / "Annotations/a.xml").write_text("<annotation><size>")
    ds = VOCDataset(root)
    with pytest.raises(ValueError, match=r"Malformed annotation XML .*a\.xml"):
        ds.load_target(0)
    (voc / "JPEGImages/b.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"Image file not found: .*b\.jpg"):
        ds[1]
    (voc / "JPEGImages/b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"Cannot decode image .*b\.jpg"):
        ds[1]
    (voc / "Annotations/b.xml").unlink()
    with pytest.raises(FileNotFoundError, match=r"Annotation file not found: .*b\.xml"):
        ds.load_target(1)


def test_image_without_objects(tmp_path):
    root = write_voc_tree(tmp_path, {"b": ((30, 40), [])})
    _, target = VOCDataset(root)[0]
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)


# --- bad real data names the file and the field (issue 9) ------------------------------------


def _xml(root, image_id):
    return root / "VOCdevkit/VOC2007/Annotations" / f"{image_id}.xml"


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            "<xmin>1</xmin>",
            "<xmin>abc</xmin>",
            r"a\.xml object 0 \(dog\): <xmin> must be a number; got 'abc'",
        ),
        (
            "<ymax>20</ymax>",
            "<ymax>nan</ymax>",
            r"a\.xml object 0 \(dog\): <ymax> must be a finite number; got 'nan'",
        ),
        (
            "<width>40</width>",
            "<width>forty</width>",
            r"a\.xml <size>: <width> must be an integer; got 'forty'",
        ),
        ("<height>30</height>", "<height></height>", r"a\.xml <size>: missing <height>"),
    ],
)
def test_non_numeric_fields_name_file_object_and_field(tmp_path, old, new, message):
    root = write_voc_tree(tmp_path, {"a": ((30, 40), [("dog", 1, 5, 10, 20, 0)])})
    path = _xml(root, "a")
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(ValueError, match=message):
        VOCDataset(root).load_target(0)


def test_sizes_written_as_floats_still_read(tmp_path):
    root = write_voc_tree(tmp_path, {"a": ((30, 40), [("dog", 1, 5, 10, 20, 0)])})
    path = _xml(root, "a")
    path.write_text(path.read_text().replace("<width>40</width>", "<width>40.0</width>"))
    assert VOCDataset(root).load_target(0)["size"] == (30, 40)


def test_truncated_jpeg_names_the_image(tmp_path):
    root = write_voc_tree(tmp_path, {"a": ((30, 40), [])})
    jpg = root / "VOCdevkit/VOC2007/JPEGImages/a.jpg"
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"Cannot decode image .*a\.jpg: image file is truncated"):
        VOCDataset(root).load_image(0)


def test_split_file_with_repeated_or_no_ids_is_refused(tmp_path):
    root = write_voc_tree(tmp_path, {"a": ((30, 40), []), "b": ((30, 40), [])})
    split = root / "VOCdevkit/VOC2007/ImageSets/Main/trainval.txt"
    split.write_text("a\nb\n\na\n")
    with pytest.raises(
        ValueError, match=r"trainval\.txt lists an image id more than once: 'a' \(lines 1 and 4\)"
    ):
        VOCDataset(root)
    split.write_text("\n  \n")
    with pytest.raises(ValueError, match=r"Split file .*trainval\.txt lists no image id"):
        VOCDataset(root)


def test_classes_come_from_the_dataset(tmp_path):
    root = write_voc_tree(tmp_path, {"a": ((30, 40), [("star", 2, 2, 9, 9, 0)])})
    assert VOCDataset(root).classes == VOC_CLASSES  # no classes.txt: VOC's 20
    with pytest.raises(ValueError, match=r"unknown class 'star'.*classes\.txt"):
        VOCDataset(root).load_target(0)
    (root / "VOCdevkit/VOC2007/classes.txt").write_text("circle\nstar\n")
    ds = VOCDataset(root)
    assert ds.classes == ("circle", "star") and read_classes(root) == ("circle", "star")
    assert ds.load_target(0)["labels"].tolist() == [2]
    assert VOCDataset(root, classes=("star",)).load_target(0)["labels"].tolist() == [
        1
    ]  # explicit wins
    (root / "VOCdevkit/VOC2007/classes.txt").write_text("circle\nstar\ncircle\n")
    with pytest.raises(ValueError, match=r"classes\.txt lists \['circle'\] more than once"):
        VOCDataset(root)


def test_difficult_flags_and_gt_for_training():
    from fastrcnn_lite.voc import difficult_flags, gt_for_training

    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 3, 3]])
    labels = torch.tensor([1, 2, 3])
    target = {"boxes": boxes, "labels": labels, "difficult": torch.tensor([False, True, False])}
    assert difficult_flags(target).tolist() == [False, True, False]
    assert difficult_flags({"boxes": boxes, "labels": labels}).tolist() == [False] * 3
    gt, gt_labels = gt_for_training(target)
    assert torch.equal(gt, boxes[[0, 2]]) and gt_labels.tolist() == [1, 3]
    gt, gt_labels = gt_for_training(target, use_difficult=True)
    assert torch.equal(gt, boxes) and gt_labels.tolist() == [1, 2, 3]
    gt, gt_labels = gt_for_training({"boxes": boxes.double(), "labels": labels})  # no flags: all
    assert gt.dtype == torch.float32 and gt_labels.tolist() == [1, 2, 3]
