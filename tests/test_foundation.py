"""Config, transforms, detection post-processing and checkpoints: the small shared stages."""

import dataclasses
import os

import pytest
import torch
import torchvision
import yaml

from fastrcnn_lite import checkpoint, config, detect, transforms
from fastrcnn_lite.config import Config

from .helpers import REPO


def test_config_has_the_papers_defaults():
    cfg = Config()
    assert (cfg.images_per_batch, cfg.images_per_batch * cfg.batch_size_per_image) == (2, 128)
    assert (
        cfg.positive_fraction,
        cfg.fg_iou_thresh,
        cfg.bg_iou_thresh_lo,
        cfg.bg_iou_thresh_hi,
    ) == (0.25, 0.5, 0.1, 0.5)
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.bias_lr_factor) == (0.001, 0.9, 0.0005, 2.0)
    assert (cfg.max_iters, cfg.lr_steps) == (40_000, (30_000,))
    assert (cfg.scales, cfg.max_size, cfg.multiscale_scales, cfg.multiscale_max_size) == (
        (600,),
        1000,
        (480, 576, 688, 864, 1200),
        2000,
    )
    assert (cfg.nms_thresh, cfg.cls_init_std, cfg.bbox_init_std, cfg.box_loss_weight) == (
        0.3,
        0.01,
        0.001,
        1.0,
    )
    assert (cfg.svd_rank_fc6, cfg.svd_rank_fc7, cfg.pool_size, cfg.warp_context) == (
        1024,
        256,
        (7, 7),
        16,
    )


def test_every_config_field_has_a_comment():
    source = (REPO / "fastrcnn_lite" / "config.py").read_text().splitlines()
    for field in dataclasses.fields(Config):
        line = next(s for s in source if s.strip().startswith(f"{field.name}:"))
        assert "#" in line, f"Config.{field.name} has no comment"


def test_profile_from_env(monkeypatch):
    monkeypatch.setenv("FASTRCNN_PROFILE", "full")
    assert config.profile_from_env() == ("full", Config())
    monkeypatch.setenv("FASTRCNN_PROFILE", "embedded")
    assert config.profile_from_env()[1].backbone == "small"
    monkeypatch.setenv("FASTRCNN_PROFILE", "huge")
    with pytest.raises(ValueError, match=r"one of \('embedded', 'full'\); got 'huge'"):
        config.profile_from_env()


def test_resolve_path_from_notebooks_folder(monkeypatch):
    monkeypatch.delenv("FASTRCNN_HOME", raising=False)
    monkeypatch.chdir(REPO / "notebooks")
    assert config.resolve_path("data/embedded") == REPO / "data" / "embedded"


def test_scale_factor_follows_the_paper():
    assert transforms.scale_factor((375, 500), 600, 1000) == 600 / 375  # shorter side -> 600
    assert transforms.scale_factor((300, 1200), 600, 1000) == 1000 / 1200  # longer side capped


def test_resize_and_flip_move_boxes_with_the_image():
    image = torch.zeros(3, 10, 20)
    image[:, 2:4, 5:8] = 1.0  # a 3x2 block: continuous box (5, 2, 8, 4)
    box = torch.tensor([[5.0, 2.0, 8.0, 4.0]])
    flipped, fbox = transforms.hflip(image, box)
    ys, xs = torch.where(flipped[0] > 0)
    assert fbox.tolist() == [
        [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
    ]
    big, bbox = transforms.resize(image, box, 2.0)
    assert big.shape == (3, 20, 40) and bbox.tolist() == [[10.0, 4.0, 16.0, 8.0]]


def test_batch_images_pads_bottom_right():
    batch = transforms.batch_images([torch.ones(3, 4, 5), torch.ones(3, 6, 2)])
    assert batch.shape == (2, 3, 6, 5)
    assert (
        batch[0, :, 4:].sum() == 0
        and batch[1, :, :, 2:].sum() == 0
        and batch[1, :, :, :2].sum() == 36
    )


def test_postprocess_detections_matches_torchvision_per_class_nms():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 3, 2, generator=g) * 80
    class_boxes = torch.cat(
        [xy, xy + 5 + torch.rand(50, 3, 2, generator=g) * 30], dim=2
    )  # (P, K, 4)
    class_scores = torch.rand(50, 3, generator=g)
    out = detect.postprocess_detections(
        class_boxes,
        class_scores,
        (100, 100),
        score_thresh=0.2,
        nms_thresh=0.3,
        detections_per_img=1000,
    )
    boxes = torchvision.ops.clip_boxes_to_image(class_boxes.reshape(-1, 4), (100, 100))
    scores, labels = class_scores.reshape(-1), torch.arange(1, 4).repeat(50)
    keep = scores > 0.2
    ref = torchvision.ops.batched_nms(boxes[keep], scores[keep], labels[keep], 0.3)
    assert torch.equal(out["scores"], scores[keep][ref]) and torch.equal(
        out["labels"], labels[keep][ref]
    )
    capped = detect.postprocess_detections(
        class_boxes, class_scores, (100, 100), detections_per_img=5
    )
    assert len(capped["boxes"]) == 5


def test_postprocess_detections_empty_and_bad_shapes():
    out = detect.postprocess_detections(torch.zeros(0, 3, 4), torch.zeros(0, 3), (10, 10))
    assert out["boxes"].shape == (0, 4)
    with pytest.raises(ValueError, match=r"class_scores must be Tensor\[P, K\]"):
        detect.postprocess_detections(torch.zeros(5, 3, 4), torch.zeros(5, 4), (10, 10))


def test_atomic_save_survives_a_crash_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    checkpoint.atomic_save({"w": torch.ones(3)}, path)

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_save({"w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(checkpoint.load_checkpoint(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left behind


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Checkpoint not found"):
        checkpoint.load_checkpoint(tmp_path / "missing.pt")
    path = checkpoint.atomic_save({"w": torch.ones(100)}, tmp_path / "c.pt")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"Cannot read checkpoint .*c\.pt.*truncated"):
        checkpoint.load_checkpoint(path)


def test_cache_path_changes_with_config():
    a = checkpoint.cache_path(Config.embedded(), "fast_rcnn")
    assert a == checkpoint.cache_path(Config.embedded(), "fast_rcnn")
    assert a != checkpoint.cache_path(Config.embedded(lr=0.02), "fast_rcnn")
    assert a != checkpoint.cache_path(Config.embedded(), "fast_rcnn", iters=5)
    # only=: the key follows just the named fields.
    b = checkpoint.cache_path(Config.embedded(), "x", only=("seed",))
    assert b == checkpoint.cache_path(Config.embedded(lr=0.02), "x", only=("seed",))
    assert b != checkpoint.cache_path(Config.embedded(seed=1), "x", only=("seed",))


def test_environment_yml_names_the_notebook_extra():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["-e .[notebooks]"]
    assert any(str(d).startswith("python") for d in env["dependencies"])
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "notebooks" in extras


# --- checkpoints: checksums, empty files, stale temporary files (issue 9) ---------------------


def test_load_checkpoint_empty_file_names_it(tmp_path):
    """A 0-byte file (a write cut short) gives the clear message, not an IndexError."""
    path = tmp_path / "run" / "checkpoint.pt"
    path.parent.mkdir()
    path.write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"Cannot read checkpoint .*checkpoint\.pt: the file is empty"
    ):
        checkpoint.load_checkpoint(path)


def test_load_checkpoint_refuses_a_changed_byte(tmp_path):
    """torch.load does not notice a flipped byte inside a tensor; the checksum does."""
    weights = torch.arange(1000, dtype=torch.float32)
    path = checkpoint.atomic_save({"w": weights, "iteration": 7}, tmp_path / "c.pt")
    loaded = checkpoint.load_checkpoint(path)
    assert set(loaded) == {"w", "iteration"} and torch.equal(loaded["w"], weights)
    data = bytearray(path.read_bytes())
    at = data.find(torch.tensor([500.0]).numpy().tobytes())
    assert at > 0
    data[at] ^= 0xFF  # 500.0 becomes another float; the zip still reads fine
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=True)["w"][500] != 500  # torch alone accepts it
    with pytest.raises(ValueError, match=r"Checkpoint .*c\.pt is damaged: .*checksum"):
        checkpoint.load_checkpoint(path)


def test_content_digest_is_stable_across_save_and_load(tmp_path):
    obj = {
        "model": {"fc.weight": torch.randn(3, 4), "n": torch.tensor(5)},
        "optimizer": {"state": {0: {"momentum_buffer": torch.ones(2)}}, "groups": [{"lr": 0.1}]},
        "rng": ("MT19937", [1, 2, 3], 0.5, True),
        "half": torch.ones(2, dtype=torch.bfloat16),
        "empty": torch.zeros(0, 4),
        "name": "x",
        "none": None,
    }
    path = checkpoint.atomic_save(obj, tmp_path / "c.pt")
    assert checkpoint.content_digest(checkpoint.load_checkpoint(path)) == checkpoint.content_digest(
        obj
    )
    changed = {**obj, "model": {**obj["model"], "n": torch.tensor(6)}}
    assert checkpoint.content_digest(changed) != checkpoint.content_digest(obj)


def test_load_checkpoint_without_checksum_still_loads(tmp_path):
    """A checkpoint written before checksums existed (plain torch.save) loads unchecked."""
    path = tmp_path / "old.pt"
    torch.save({"w": torch.ones(2)}, path)
    assert torch.equal(checkpoint.load_checkpoint(path)["w"], torch.ones(2))


def test_atomic_save_removes_temporaries_of_killed_writes(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "ckpt.pt"
    # A writer that was killed: its process is gone, its temporary file is not.
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(proc.stdout)
    stale = tmp_path / f".ckpt.pt.{dead_pid}.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    # A writer still running (this process) and another file's temporary are left alone.
    live = tmp_path / f".ckpt.pt.{os.getpid()}.live.tmp"
    live.write_bytes(b"being written")
    other = tmp_path / f".other.pt.{dead_pid}.x.tmp"
    other.write_bytes(b"")
    checkpoint.atomic_save({"w": torch.ones(3)}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ckpt.pt", live.name, other.name])


def test_atomic_write_cleans_up_on_failure(tmp_path):
    path = tmp_path / "out.json"

    def fail(f):
        f.write(b"{")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        checkpoint.atomic_write(path, fail)
    assert list(tmp_path.iterdir()) == []
    checkpoint.atomic_write(path, lambda f: f.write(b"{}"))
    assert path.read_text() == "{}"


def test_write_json_is_strict_json(tmp_path):
    import json
    import math

    path = checkpoint.write_json(
        tmp_path / "out" / "eval.json",
        {"map": math.nan, "ap": [math.inf, 0.5], "t": torch.tensor(float("nan")), "n": 3},
    )

    def strict(constant):
        raise AssertionError(f"bare {constant}")

    assert json.loads(path.read_text(), parse_constant=strict) == {
        "map": None,
        "ap": [None, 0.5],
        "t": None,
        "n": 3,
    }
    assert [p.name for p in path.parent.iterdir()] == ["eval.json"]


def _sha1(*chunks: bytes, length=12) -> str:
    import hashlib

    h = hashlib.sha1()
    for c in chunks:
        h.update(c)
    return h.hexdigest()[:length]


def test_cache_key_digests_hash_the_bytes_existing_caches_were_named_by():
    """Each digest against hashlib fed by hand the bytes the cache names on disk came from."""
    import json

    gen = torch.Generator().manual_seed(0)
    props = [torch.rand(3, 4, generator=gen) * 100, torch.zeros(0, 4)]
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    mixed = [
        torch.arange(6).view(2, 3),
        torch.tensor([True, False]),
        torch.rand(2, generator=gen).bfloat16(),
    ]

    assert checkpoint.proposals_digest(props) == _sha1(
        b"(3, 4)", props[0].numpy().tobytes(), b"(0, 4)", b""
    )
    state = net.state_dict()
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                           "1.running_var", "1.num_batches_tracked"]  # fmt: skip
    chunks = [c for k, t in state.items() for c in (k.encode(), t.float().numpy().tobytes())]
    assert checkpoint.module_digest(net) == _sha1(*chunks)
    assert checkpoint.tensors_digest(mixed) == _sha1(
        b"torch.int64(2, 3)", mixed[0].numpy().tobytes(),
        b"torch.bool(2,)", mixed[1].numpy().tobytes(),
        b"torch.bfloat16(2,)", mixed[2].float().numpy().tobytes(),
    )  # fmt: skip
    key = {"b": 1, "a": [0.5, None], "c": Config}  # unsorted keys, a value JSON cannot write
    text = json.dumps(key, sort_keys=True, default=repr).encode()
    assert checkpoint.key_digest(key, 10) == _sha1(text, length=10)
    assert checkpoint.short_digest(["x", b"y"], length=None) == _sha1(b"xy", length=40)
    cfg = Config(cache_dir="cache")
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "device"} | {"v": "1"}
    expected = f"fast_rcnn-{_sha1(json.dumps(fields, sort_keys=True, default=repr).encode(), length=10)}.pt"
    assert checkpoint.cache_path(cfg, "fast_rcnn", v=1).name == expected
