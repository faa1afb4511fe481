"""Training: SGD set-up, exact resume, checkpoints that survive a crash, clear errors, the CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from fastrcnn_lite import train_cli
from fastrcnn_lite.checkpoint import atomic_save, load_checkpoint
from fastrcnn_lite.cli import UserError, call
from fastrcnn_lite.fast_rcnn import build_fast_rcnn
from fastrcnn_lite.train import (
    build_optimizer,
    load_training_checkpoint,
    lr_at,
    read_metrics,
    train_fast_rcnn,
)
from fastrcnn_lite.train_cache import load_fast_rcnn
from fastrcnn_lite.voc import VOC_CLASSES

from .helpers import write_voc_tree
from .test_fast_rcnn import ShapesDataset, jittered_proposals, tiny_cfg, tiny_model


def test_optimizer_groups_follow_the_paper():
    cfg = tiny_cfg(lr=0.001, weight_decay=0.0005, bias_lr_factor=2.0, trainable_from="conv2")
    model = tiny_model(cfg)
    opt = build_optimizer(model, cfg)
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["weights"]["lr"] == 0.001 and groups["weights"]["weight_decay"] == 0.0005
    # Biases: 2x lr, no decay.
    assert groups["biases"]["lr"] == 0.002 and groups["biases"]["weight_decay"] == 0.0
    assert groups["norm"]["weight_decay"] == 0.0
    assert opt.defaults["momentum"] == 0.9
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in in_opt}
    assert "head.cls_score.bias" in names and "head.fc.0.bias" in names
    assert not any(n.startswith("body.1.") for n in names)  # conv1 frozen: not optimised
    assert {n for n in names if n.endswith("bias")} == {
        n for n, p in model.named_parameters() if n.endswith("bias") and p.requires_grad
    }


def test_step_schedule():
    cfg = tiny_cfg(lr=0.001, lr_steps=(30_000,), lr_gamma=0.1)
    assert lr_at(0, cfg) == 0.001 and lr_at(29_999, cfg) == 0.001
    assert lr_at(30_000, cfg) == pytest.approx(0.0001) and lr_at(39_999, cfg) == pytest.approx(
        0.0001
    )
    two = tiny_cfg(lr=0.01, lr_steps=(10, 20))
    assert [round(lr_at(i, two), 6) for i in (9, 10, 19, 20)] == [0.01, 0.001, 0.001, 0.0001]


class Interrupt(Exception):
    pass


def _run(tmp_path, cfg, ds, props, resume=False, stop_at=None, checkpoint_every=3):
    model = tiny_model(cfg)

    def kill(iteration, history):
        if stop_at is not None and iteration == stop_at:
            raise Interrupt

    try:
        train_fast_rcnn(model, ds, props, cfg, out_dir=tmp_path, resume=resume, progress=False,
                        checkpoint_every=checkpoint_every, callback=kill)  # fmt: skip
    except Interrupt:
        pass
    return model


@pytest.mark.slow
def test_interrupted_and_resumed_run_is_bitwise_identical(tmp_path):
    ds = ShapesDataset(5)
    props = jittered_proposals(ds)
    # Multi-scale, flips, a schedule step after the interruption, and dropout-free small net.
    cfg = tiny_cfg(max_iters=6, lr_steps=(4,), scales=(40, 48), lr=0.01)
    straight = _run(tmp_path / "a", cfg, ds, props)
    _run(tmp_path / "b", cfg, ds, props, stop_at=3)  # killed after the checkpoint at 3
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["iteration"] == 3
    assert [r["iter"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl")] == [1, 2, 3]
    resumed = _run(tmp_path / "b", cfg, ds, props, resume=True)
    for (name, a), (_, b) in zip(
        straight.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), f"{name} differs after resume"
    # The optimiser's momentum is restored too (checked through the final checkpoints).
    ca = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    cb = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    for k, sa in ca["optimizer"]["state"].items():
        assert torch.equal(sa["momentum_buffer"], cb["optimizer"]["state"][k]["momentum_buffer"])
    assert ca["iteration"] == cb["iteration"] == 6
    logs = [read_metrics(tmp_path / x / "metrics.jsonl") for x in ("a", "b")]
    assert [r["iter"] for r in logs[1]] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in logs[0]] == [r["loss"] for r in logs[1]]


def test_resume_errors_missing_truncated_and_other_config(tmp_path):
    ds = ShapesDataset(3)
    props = jittered_proposals(ds)
    cfg = tiny_cfg(max_iters=2)
    with pytest.raises(FileNotFoundError, match="Checkpoint not found"):
        load_training_checkpoint(tmp_path / "nothing.pt", cfg)
    _run(tmp_path, cfg, ds, props, checkpoint_every=2)
    path = tmp_path / "checkpoint.pt"
    # Another configuration: the message names each differing field.
    with pytest.raises(
        ValueError,
        match=r"batch_size_per_image = 32 in the checkpoint, 16 now; lr = 0\.01 in the checkpoint, 0\.05 now",
    ):
        _run(
            tmp_path,
            cfg.replace(lr=0.05, batch_size_per_image=16, max_iters=4),
            ds,
            props,
            resume=True,
        )
    # More iterations is allowed: max_iters is not a training field.
    _run(tmp_path, cfg.replace(max_iters=3), ds, props, resume=True)
    assert load_checkpoint(path)["iteration"] == 3
    # A model for another number of classes.
    with pytest.raises(ValueError, match="num_classes = 2 but the model has num_classes = 5"):
        load_training_checkpoint(path, cfg, tiny_model(cfg, num_classes=5))
    # A truncated file (a copy cut short, as a full disk would leave it).
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or not a fastrcnn_lite checkpoint"):
        _run(tmp_path, cfg.replace(max_iters=4), ds, props, resume=True)
    # A file that is a checkpoint, but not a training one.
    atomic_save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="not a Fast R-CNN training checkpoint"):
        load_training_checkpoint(path, cfg)


def test_crash_during_save_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    ds = ShapesDataset(3)
    props = jittered_proposals(ds)
    cfg = tiny_cfg(max_iters=4)
    _run(tmp_path, cfg.replace(max_iters=2), ds, props, checkpoint_every=2)
    path = tmp_path / "checkpoint.pt"
    before = path.read_bytes()
    real_save = torch.save

    def crash_midway(obj, f, *args, **kwargs):
        real_save({"partial": torch.zeros(1000)}, f)  # some bytes reach the temporary file
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="No space left"):
        _run(tmp_path, cfg, ds, props, resume=True, checkpoint_every=1)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before  # untouched, still loadable
    assert load_checkpoint(path)["iteration"] == 2
    # No temporary file left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.pt",
        "metrics.jsonl",
        "training.png",
    ]


def test_cuda_out_of_memory_names_the_settings_to_lower(monkeypatch):
    ds = ShapesDataset(2)
    props = jittered_proposals(ds)
    cfg = tiny_cfg(max_iters=2)
    model = tiny_model(cfg)

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(model, "forward", out_of_memory)
    with pytest.raises(
        torch.cuda.OutOfMemoryError, match=r"iteration 1.*cfg.scales.*cfg.batch_size_per_image"
    ):
        train_fast_rcnn(model, ds, props, cfg, progress=False)


def test_non_finite_loss_stops_with_advice(monkeypatch):
    ds = ShapesDataset(2)
    props = jittered_proposals(ds)
    cfg = tiny_cfg(max_iters=2)
    model = tiny_model(cfg)
    real_forward = model.forward

    def diverged(*args, **kwargs):
        losses = real_forward(*args, **kwargs)
        return dict(losses, loss=losses["loss"] * float("nan"))

    monkeypatch.setattr(model, "forward", diverged)
    with pytest.raises(FloatingPointError, match="loss became nan at iteration 1.*Lower cfg.lr"):
        train_fast_rcnn(model, ds, props, cfg, progress=False)


def tiny_voc(tmp_path):
    """A 4-image trainval and 2-image test VOCdevkit tree holding dogs and cats (18 VOC classes absent)."""
    objects = {
        f"{i:04d}": ((64, 80), [("dog", 5 + i, 8, 40 + i, 50, 0), ("cat", 44, 20, 76, 60, 0)])
        for i in range(4)
    }
    root = write_voc_tree(tmp_path / "voc", objects, image_set="trainval")
    write_voc_tree(tmp_path / "voc", dict(list(objects.items())[:2]), image_set="test")
    return root


def tiny_command(tmp_path, root, out):
    """The train command's arguments for :func:`tiny_voc` (small network from scratch, tiny cache)."""
    return ["--profile", "embedded", "--data-root", str(root), "--year", "2007", "--split", "trainval",
            "--backbone", "small", "--init", "scratch", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
            "--lr-steps", "3", "--checkpoint-every", "2", "--no-progress"]  # fmt: skip


def no_nan(text: str) -> dict:
    """Parse JSON refusing NaN / Infinity (what other JSON readers refuse), and re-dump it strictly."""

    def refuse(name):
        raise ValueError(f"bare {name} in JSON")

    data = json.loads(text, parse_constant=refuse)
    json.dumps(data, allow_nan=False)
    return data


@pytest.mark.slow
def test_cli_tiny_run_resume_and_eval(tmp_path, capsys):
    root = tiny_voc(tmp_path)
    out = tmp_path / "run"
    common = tiny_command(tmp_path, root, out)
    assert train_cli.main(common + ["--iters", "2"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 2
    assert train_cli.main(common + ["--iters", "4", "--resume", "--eval"]) == 0
    text = capsys.readouterr().out
    assert "resuming from" in text and "at iteration 2" in text and "mAP (VOC07 11-point)" in text
    assert [r["iter"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3, 4]
    result = no_nan((out / "eval.json").read_text())
    assert result["iterations"] == 4 and result["seconds_per_image"] > 0
    # A class without a test object has an undefined AP: null in the file, and left out of the mAP.
    assert set(result["ap"]) == set(VOC_CLASSES)
    assert all(result["ap"][c] is None for c in VOC_CLASSES if c not in ("dog", "cat"))
    defined = [result["ap"]["dog"], result["ap"]["cat"]]
    assert result["map"] == pytest.approx(sum(defined) / 2)
    # One VOC results file per class, readable by the evaluation's own parser.
    files = sorted(p.name for p in (out / "results").iterdir())
    assert files == sorted(f"comp4_det_test_{c}.txt" for c in VOC_CLASSES)
    assert (out / "training.png").is_file()


@pytest.mark.slow
def test_a_finished_run_is_never_overwritten_without_asking(tmp_path, capsys):
    root = tiny_voc(tmp_path)
    out = tmp_path / "run"
    common = tiny_command(tmp_path, root, out)
    assert call(train_cli.main, common + ["--iters", "4"]) == 0
    before = {name: (out / name).read_bytes() for name in ("checkpoint.pt", "metrics.jsonl")}
    capsys.readouterr()
    # The same command again, with fewer iterations, without --resume: refused, nothing touched.
    assert call(train_cli.main, common + ["--iters", "2"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "trained" not in captured.out
    assert f"{out} already holds a run" in captured.err
    assert "--resume" in captured.err and "--overwrite" in captured.err
    assert "checkpoint at iteration 4" in captured.err
    assert {name: (out / name).read_bytes() for name in before} == before
    # Both flags at once contradict each other.
    assert call(train_cli.main, common + ["--iters", "4", "--resume", "--overwrite"]) == 2
    assert "contradict" in capsys.readouterr().err
    # --overwrite starts over: a 2-iteration run replaces the 4-iteration one.
    assert call(train_cli.main, common + ["--iters", "2", "--overwrite"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 2
    assert [r["iter"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2]


@pytest.mark.slow
def test_fewer_iters_than_done_says_so(tmp_path, capsys):
    root = tiny_voc(tmp_path)
    out = tmp_path / "run"
    common = tiny_command(tmp_path, root, out) + [
        "--lr-steps",
        "9",
    ]  # one schedule for every --iters
    assert call(train_cli.main, common + ["--iters", "4"]) == 0
    capsys.readouterr()
    assert call(train_cli.main, common + ["--iters", "2", "--resume"]) == 2
    captured = capsys.readouterr()
    assert "trained" not in captured.out
    assert "has already done 4 iterations, more than the 2 asked for" in captured.err
    assert "--iters 4 or more" in captured.err and "--overwrite" in captured.err
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 4
    # As many as done: nothing to train, said in words (not "trained 4 iterations in 0.0 s").
    assert call(train_cli.main, common + ["--iters", "4", "--resume"]) == 0
    text = capsys.readouterr().out
    assert "already trained" in text and "nothing to train" in text and "trained 4" not in text


def test_api_refuses_a_folder_with_a_run_and_a_resume_past_max_iters(tmp_path):
    ds = ShapesDataset(3)
    props = jittered_proposals(ds)
    cfg = tiny_cfg(max_iters=2)
    _run(tmp_path, cfg, ds, props, checkpoint_every=2)
    with pytest.raises(UserError, match="already holds a run.*resume=True.*overwrite=True"):
        train_fast_rcnn(tiny_model(cfg), ds, props, cfg, out_dir=tmp_path, progress=False)
    with pytest.raises(UserError, match="already done 2 iterations, more than the 1 asked for"):
        _run(tmp_path, cfg.replace(max_iters=1), ds, props, resume=True)


def test_resume_without_a_checkpoint_starts_a_fresh_log(tmp_path):
    ds = ShapesDataset(3)
    props = jittered_proposals(ds)
    cfg = tiny_cfg(max_iters=3)
    # Killed at iteration 2, before its first checkpoint (every 3): a log and no checkpoint.
    _run(tmp_path, cfg, ds, props, stop_at=2, checkpoint_every=3)
    assert not (tmp_path / "checkpoint.pt").exists()
    assert [r["iter"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2]
    _run(tmp_path, cfg, ds, props, resume=True, checkpoint_every=3)
    assert [r["iter"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]


def test_metrics_log_cut_short_by_a_kill_is_read_and_damage_elsewhere_is_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"iter": 1, "loss": 1.0}\n{"iter": 2, "lo')
    assert read_metrics(path) == [{"iter": 1, "loss": 1.0}]
    path.write_text('{"iter": 1, "loss": 1.0}\nnot json\n{"iter": 3, "loss": 1.0}\n')
    with pytest.raises(UserError, match=r"metrics.jsonl line 2 is not a JSON record"):
        read_metrics(path)


def test_cli_arguments_to_config():
    def cfg_of(*argv):
        return train_cli.config_from_args(train_cli.parse_args(["--out", "x", *argv]))

    full = cfg_of("--backbone", "vgg16")
    assert (
        full.backbone == "vgg16" and full.trainable_from == "conv3_1" and full.max_iters == 40_000
    )
    alex = cfg_of("--backbone", "alexnet", "--iters", "4000")
    # The paper fine-tunes S and M from conv2; the lr step keeps its place (30k of 40k).
    assert alex.trainable_from == "conv2" and alex.max_iters == 4000 and alex.lr_steps == (3000,)
    small = cfg_of(
        "--profile", "embedded", "--multiscale", "--lr-steps", "5", "7", "--split", "train"
    )
    assert small.scales == small.test_scales == small.multiscale_scales
    assert small.lr_steps == (5, 7) and small.train_set == "train"
    # The settings the memory pre-flight names, and mixed precision.
    lowered = cfg_of("--scale", "480", "--max-size", "800", "--rois-per-image", "32",
                     "--images-per-batch", "1", "--amp")  # fmt: skip
    assert lowered.scales == lowered.test_scales == (480,) and lowered.max_size == 800
    assert lowered.batch_size_per_image == 32 and lowered.images_per_batch == 1 and lowered.amp
    assert not cfg_of().amp  # off by default
    with pytest.raises(UserError, match="--rois-per-image must be >= 1; got 0"):
        cfg_of("--rois-per-image", "0")


def test_load_fast_rcnn_names_the_mismatch(tmp_path):
    cfg = tiny_cfg(backbone="small")
    model = build_fast_rcnn(cfg, 2)
    path = tmp_path / "model.pt"
    atomic_save(
        {"model": model.state_dict(), "config": dataclasses.asdict(cfg), "num_classes": 2}, path
    )
    loaded, _ = load_fast_rcnn(path, cfg, num_classes=2)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="num_classes = 2, not 20"):
        load_fast_rcnn(path, cfg, num_classes=20)
    with pytest.raises(ValueError, match="backbone = 'small' in the checkpoint, 'vgg16' now"):
        load_fast_rcnn(path, cfg.replace(backbone="vgg16"), num_classes=2)
    with pytest.raises(ValueError, match="does not fit the model built from this config"):
        load_fast_rcnn(path, cfg.replace(pool_size=(3, 3)), num_classes=2)


def test_build_sgd_at_one_lr_steps_like_two_plain_groups():
    """R-CNN / SPPnet / pre-training call build_sgd with bias_lr_factor=1: the same updates,
    bit for bit, as the two plain groups (decay: dim > 1; no decay: the rest) they had before."""
    from fastrcnn_lite.backbones import build_sgd, small_backbone

    def net():
        torch.manual_seed(0)
        bb = small_backbone(width=4, fc_dim=8, pool_size=(2, 2))
        return torch.nn.Sequential(
            bb.body, torch.nn.AdaptiveMaxPool2d(2), torch.nn.Flatten(), bb.fc
        )

    ours, ref = net(), net()
    opt = build_sgd(ours, 0.05, 0.9, 5e-4, bias_lr_factor=1.0)
    assert [g["name"] for g in opt.param_groups] == ["weights", "biases", "norm"]
    decay = [p for p in ref.parameters() if p.dim() > 1]
    no_decay = [p for p in ref.parameters() if p.dim() <= 1]
    ref_opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                              lr=0.05, momentum=0.9)  # fmt: skip
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for model, optimizer in ((ours, opt), (ref, ref_opt)):
        for _ in range(3):
            optimizer.zero_grad()
            model(x).square().sum().backward()
            optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), ref.parameters(), strict=True))
