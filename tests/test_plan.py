"""The plan and estimate before a run, and the memory pre-flight (simulated GPU budgets on the CPU)."""

from __future__ import annotations

import pytest
import torch

from fastrcnn_lite import preflight, train_cli
from fastrcnn_lite.cli import call
from fastrcnn_lite.config import Config
from fastrcnn_lite.data import load_datasets
from fastrcnn_lite.plan import RunRequest, format_seconds, plan_run
from fastrcnn_lite.preflight import (
    MemoryPreflightError,
    check_memory,
    memory_preflight,
    training_pass,
    worst_case_batch,
)

from .test_fast_rcnn import tiny_cfg, tiny_model
from .test_train import tiny_command, tiny_voc

GiB = 2**30


def tiny_run_cfg(tmp_path, root, **changes) -> Config:
    """The config of :func:`tests.test_train.tiny_command` (small network, 4 + 2 images)."""
    base = dict(
        data_root=str(root), cache_dir=str(tmp_path / "cache"), max_iters=40, lr_steps=(30,)
    )
    return Config.embedded(**(base | changes))


# --- the plan and the estimate ------------------------------------------------------------------
def test_estimate_is_the_timed_work_times_the_run_and_leaves_no_trace(tmp_path):
    root = tiny_voc(tmp_path)
    cfg = tiny_run_cfg(tmp_path, root, num_workers=2)
    train_ds, test_ds = load_datasets(cfg)
    out = tmp_path / "run"
    rng = torch.get_rng_state()
    plan = plan_run(cfg, RunRequest(out=out, init="scratch", evaluate=True, checkpoint_every=15),
                    train_ds, test_ds)  # fmt: skip
    # Each stage = measured seconds per unit x units to do (4 + 2 uncached images, 2 processes).
    unit = plan.per_unit
    assert plan.seconds["training"] == pytest.approx(40 * unit["iteration"])
    assert plan.seconds["evaluation"] == pytest.approx(2 * unit["test_image"])
    assert plan.seconds["proposals"] == pytest.approx(6 * unit["proposal_image"] / 2)
    assert plan.total == pytest.approx(sum(plan.seconds.values()))
    assert plan.how["training"] == f"40 iterations x {unit['iteration']:.3f} s"
    topics = [topic for topic, _ in plan.lines]
    assert topics == ["data", "proposals", "backbone", "training", "checkpoints", "output",
                      "evaluation", "memory"]  # fmt: skip
    text = plan.format()
    assert "trainval 4 images, test 2 images (found)" in text
    assert "trainval: to compute for 4 images" in text and "test: to compute for 2 images" in text
    assert "every 15 iterations and at the end (3 writes)" in text
    assert f"{out}: new run" in text and "pre-flight on CUDA only; none on cpu" in text
    assert "--device cuda" not in text  # a short CPU run needs no advice
    # Nothing written: no run folder, no proposal cache; the caller's RNG untouched.
    assert not out.exists() and not list((tmp_path / "cache").rglob("proposals.pt"))
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_long_cpu_estimate_says_so_and_how_to_use_a_gpu(tmp_path):
    root = tiny_voc(tmp_path)
    cfg = tiny_run_cfg(tmp_path, root, max_iters=10**7, lr_steps=())
    train_ds, test_ds = load_datasets(cfg)
    plan = plan_run(cfg, RunRequest(out=tmp_path / "run", init="scratch"), train_ds, test_ds,
                    timed_iters=1)  # fmt: skip
    assert plan.total > 3600
    assert len(plan.notes) == 1
    assert plan.notes[0].startswith(
        f"On this CPU the run would take about {format_seconds(plan.total)}"
    )
    assert "--device cuda" in plan.notes[0] and plan.format().endswith(plan.notes[0])


def test_format_seconds_hand_worked():
    cases = {0.42: "0.4 s", 12.4: "12 s", 210: "3.5 min", 7560: "2.1 h", 3 * 86400: "3.0 days"}
    assert {s: format_seconds(s) for s in cases} == cases


def test_plan_flag_prints_the_plan_and_stops(tmp_path, capsys):
    root = tiny_voc(tmp_path)
    out = tmp_path / "run"
    command = tiny_command(tmp_path, root, out) + ["--iters", "4", "--eval", "--plan"]
    assert call(train_cli.main, command) == 0
    text = capsys.readouterr().out
    assert text.startswith("plan:\n  data") and "estimate on this machine (cpu" in text
    for stage in ("proposals", "training", "evaluation", "total"):
        assert f"\n  {stage} " in text.split("estimate on this machine")[1]
    assert "trained" not in text and not out.exists()


def test_plan_before_the_download_uses_known_split_sizes_and_synthetic_images(tmp_path, capsys):
    command = ["--profile", "full", "--data-root", str(tmp_path / "nothing"), "--backbone", "alexnet",
               "--init", "scratch", "--scale", "96", "--max-size", "128", "--iters", "10",
               "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--eval", "--plan"]  # fmt: skip
    assert call(train_cli.main, command) == 0
    text = capsys.readouterr().out
    assert "download it first (python -m fastrcnn_lite.download" in text
    assert "trainval 5011 images, test 4952 images" in text
    assert "9963 images, not timed: no images on disk yet" in text
    estimate = text.split("estimate on this machine")[1].splitlines()
    proposals = next(line for line in estimate if line.startswith("  proposals "))
    total = next(line for line in estimate if line.startswith("  total "))
    assert proposals.split()[1] == "?" and total.endswith("+ proposals (not timed)")
    assert "on synthetic images (no data yet)" in text and not (tmp_path / "nothing").exists()


def test_amp_is_refused_on_a_cpu(tmp_path, capsys):
    root = tiny_voc(tmp_path)
    command = tiny_command(tmp_path, root, tmp_path / "run") + ["--iters", "2", "--amp"]
    assert call(train_cli.main, command) == 2
    err = capsys.readouterr().err
    assert "--amp (cfg.amp, mixed precision) runs on CUDA only" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


# --- the memory pre-flight -----------------------------------------------------------------------
def test_preflight_decision_names_the_settings_and_their_values():
    cfg = Config()  # the paper's: scale 600, longer side 1000, 2 images x 64 RoIs
    line = check_memory(int(7.2 * GiB), 8 * GiB, cfg)
    assert line.startswith(
        "one iteration at the largest setting (scale 600 (longer side up to 1000)"
    )
    assert "needs 7.2 GiB of 8.0 GiB available: fits" in line
    with pytest.raises(MemoryPreflightError, match="needs 7.3 GiB, but only 7.2 GiB") as error:
        check_memory(int(7.3 * GiB), 8 * GiB, cfg)  # above the 90% usable
    message = str(error.value)
    for setting in ("--scale (cfg.scales, now 600)", "--max-size (cfg.max_size, now 1000)",
                    "--rois-per-image (cfg.batch_size_per_image, now 64)",
                    "--images-per-batch (cfg.images_per_batch, now 2)"):  # fmt: skip
        assert setting in message
    assert message.index("--scale") < message.index("--rois-per-image") < message.index("--images")
    multi = cfg.replace(scales=(480, 576, 688, 864, 1200), batch_size_per_image=32)
    with pytest.raises(MemoryPreflightError, match=r"now 1200\).*now 32\)"):
        check_memory(None, 8 * GiB, multi)  # the pass itself ran out of memory


def test_preflight_with_a_simulated_small_gpu():
    cfg = tiny_cfg()
    model = tiny_model(cfg)
    seen = []

    def measure(m, c, device, dtype):
        seen.append((m, c, device, dtype))
        return 3 * GiB

    with pytest.raises(
        MemoryPreflightError, match="needs 3.0 GiB, but only 1.8 GiB of the GPU's 2.0"
    ):
        memory_preflight(model, cfg, torch.device("cpu"), budget_bytes=2 * GiB, measure=measure)
    assert seen == [(model, cfg, torch.device("cpu"), None)]
    fits = memory_preflight(model, cfg, torch.device("cpu"), budget_bytes=4 * GiB, measure=measure)
    assert fits.endswith("needs 3.0 GiB of 4.0 GiB available: fits")

    def out_of_memory(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(
        MemoryPreflightError, match="ran out of memory in a single forward and backward"
    ):
        memory_preflight(
            model, cfg, torch.device("cpu"), budget_bytes=4 * GiB, measure=out_of_memory
        )
    # Without a budget on the CPU there is no pre-flight at all.
    assert memory_preflight(model, cfg, torch.device("cpu"), measure=measure) is None


def test_preflight_pass_is_the_largest_batch_and_leaves_the_model_alone():
    cfg = tiny_cfg(scales=(40, 48), multiscale_max_size=80, images_per_batch=2, batch_size_per_image=24,
                   proposals_per_image=300)  # fmt: skip
    model = tiny_model(cfg).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    shapes = []
    model.body.register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape)))
    model.roi_pool.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    training_pass(model, cfg, torch.device("cpu"))
    # N = 2 images at the largest scale (48) with the longer side at the cap (80); every RoI slot.
    assert shapes[0] == (2, 3, 48, 80) and shapes[1][0] == 2 * 24
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN stats too
    assert all(p.grad is None for p in model.parameters()) and not model.training
    assert torch.equal(torch.get_rng_state(), rng)
    batch = worst_case_batch(cfg, torch.Generator().manual_seed(0))
    assert [len(e[1]) for e in batch] == [300, 300]


def test_cli_stops_before_training_when_the_gpu_is_too_small(tmp_path, capsys, monkeypatch):
    root = tiny_voc(tmp_path)
    out = tmp_path / "run"
    passes = []

    def peak(model, cfg, device, dtype):
        training_pass(model, cfg, device, dtype)  # the real pass, on the CPU
        passes.append(cfg.scales)
        return 3 * GiB

    monkeypatch.setattr(preflight, "memory_budget", lambda device: 2 * GiB)
    monkeypatch.setattr(preflight, "training_peak_bytes", peak)
    assert call(train_cli.main, tiny_command(tmp_path, root, out) + ["--iters", "2"]) == 2
    captured = capsys.readouterr()
    assert passes == [(192,)] and "Traceback" not in captured.err
    assert "memory       does NOT fit" in captured.out  # the plan is printed first
    assert "error: Memory pre-flight" in captured.err
    assert "--scale (cfg.scales, now 192)" in captured.err
    assert not (out / "checkpoint.pt").exists() and "trained" not in captured.out
