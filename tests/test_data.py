"""data.py: a dataset's classes come from the dataset, not its path; the training-data digest."""

from __future__ import annotations

import shutil

import pytest
import torch

from fastrcnn_lite import data, embedded, embedded_files, proposals_cli
from fastrcnn_lite.config import Config
from fastrcnn_lite.voc import VOC_CLASSES, VOCDataset

from .helpers import write_voc_tree

SMALL = dict(num_trainval=4, num_test=2)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return embedded_files.generate(tmp_path_factory.mktemp("emb"), seed=0, **SMALL)


def test_a_copy_of_the_embedded_data_elsewhere_reads_with_its_classes(generated, tmp_path):
    copy = tmp_path / "copy of the embedded data"
    shutil.copytree(generated, copy)
    cfg = Config.embedded(data_root=str(copy))
    assert not data._is_embedded(cfg)  # not the profile's folder: nothing is generated there
    train, test = data.load_datasets(cfg)
    assert train.classes == test.classes == embedded.CLASSES == data.dataset_classes(cfg)
    target = train.load_target(0)  # was: "unknown class 'circle'"
    names = [embedded.CLASSES[k - 1] for k in target["labels"].tolist()]
    assert names and all(n in embedded.CLASSES for n in names)


def test_proposals_command_with_embedded_profile_and_a_copy(
    generated, tmp_path, monkeypatch, capsys
):
    copy = tmp_path / "copy"
    shutil.copytree(generated, copy)
    monkeypatch.setenv("FASTRCNN_HOME", str(tmp_path))
    argv = ["--profile", "embedded", "--data-root", str(copy), "--split", "test", "--workers", "0"]
    assert proposals_cli.main(argv) == 0
    assert "proposal recall:" in capsys.readouterr().out


def test_real_voc_trees_keep_the_voc_classes(tmp_path):
    root = write_voc_tree(tmp_path / "voc", {"a": ((30, 40), [("dog", 1, 1, 9, 9, 0)])})
    cfg = Config(data_root=str(root), train_set="trainval", test_set="trainval")
    assert data.dataset_classes(cfg) == VOC_CLASSES
    assert data.load_datasets(cfg)[0].load_target(0)["labels"].tolist() == [12]


def test_ensure_embedded_adds_the_class_list_to_an_older_tree(tmp_path):
    cfg = Config.embedded(data_root=str(tmp_path / "emb"))
    root = embedded_files.ensure_embedded(cfg, verbose=False, **SMALL)
    classes_file = root / "VOCdevkit/VOC2007/classes.txt"
    assert classes_file.read_text().split() == list(embedded.CLASSES)
    classes_file.unlink()  # as a tree generated before classes.txt existed
    jpeg = root / "VOCdevkit/VOC2007/JPEGImages/000001.jpg"
    stamp = jpeg.stat().st_mtime_ns
    embedded_files.ensure_embedded(cfg, verbose=False, **SMALL)
    assert classes_file.read_text().split() == list(embedded.CLASSES)
    assert jpeg.stat().st_mtime_ns == stamp  # not regenerated for that


def test_dataset_digest_follows_the_data_not_the_path(tmp_path):
    def digest(root):
        return data.dataset_digest(VOCDataset(root, "2007", "trainval"))

    a = embedded_files.generate(tmp_path / "a", seed=0, **SMALL)
    first = digest(a)
    assert digest(shutil.copytree(a, tmp_path / "copy")) == first  # same bytes elsewhere
    embedded_files.generate(a, seed=1, **SMALL)  # regenerated at the same root
    assert digest(a) != first
    embedded_files.generate(a, seed=0, **SMALL)  # byte-identical again
    assert digest(a) == first
    xml = a / "VOCdevkit/VOC2007/Annotations/000001.xml"
    xml.write_text(
        xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1)
    )
    assert digest(a) != first  # one annotation changed


def test_dataset_digest_of_an_in_memory_dataset():
    class Tiny:
        classes = ("a",)

        def __init__(self, value):
            self.value = value

        def __len__(self):
            return 2

        def __getitem__(self, i):
            target = {"boxes": torch.tensor([[0.0, 0, 2, 2]]), "labels": torch.tensor([1])}
            return torch.full((3, 4, 4), self.value), target

    assert data.dataset_digest(Tiny(0.5)) == data.dataset_digest(Tiny(0.5))
    assert data.dataset_digest(Tiny(0.5)) != data.dataset_digest(Tiny(0.25))
