"""Mixed precision: when it is allowed, the loop under float16 autocast, RoI pooling under autocast.

No GPU here: the CUDA recipe (float16 autocast + GradScaler) runs on the CPU, where PyTorch
implements the same autocast and scaler, by letting ``amp_dtype`` answer float16 for the CPU.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_pool as tv_roi_pool

from fastrcnn_lite import train as train_module
from fastrcnn_lite.boxes import boxes_to_rois
from fastrcnn_lite.checkpoint import atomic_save, load_checkpoint
from fastrcnn_lite.cli import UserError
from fastrcnn_lite.train import amp_dtype, grad_scaler, train_fast_rcnn

from .test_fast_rcnn import ShapesDataset, jittered_proposals, tiny_cfg, tiny_model


def test_amp_is_float16_on_cuda_and_refused_elsewhere():
    cfg = tiny_cfg(amp=True)
    assert amp_dtype(cfg, torch.device("cuda")) is torch.float16
    assert amp_dtype(cfg, torch.device("cuda:1")) is torch.float16
    assert amp_dtype(cfg.replace(amp=False), torch.device("cpu")) is None
    with pytest.raises(UserError, match="runs on CUDA only; this run's device is cpu.*Drop --amp"):
        amp_dtype(cfg, torch.device("cpu"))
    assert grad_scaler(torch.device("cpu"), torch.float16).is_enabled()
    assert not grad_scaler(torch.device("cpu"), None).is_enabled()
    assert not grad_scaler(
        torch.device("cpu"), torch.bfloat16
    ).is_enabled()  # no underflow to guard


class Interrupt(Exception):
    pass


def _amp_run(out, cfg, ds, props, resume=False, stop_at=None):
    model = tiny_model(cfg)

    def kill(iteration, history):
        if iteration == stop_at:
            raise Interrupt

    try:
        train_fast_rcnn(model, ds, props, cfg, out_dir=out, resume=resume, progress=False,
                        checkpoint_every=2, callback=kill)  # fmt: skip
    except Interrupt:
        pass
    return model


@pytest.mark.slow
def test_loop_under_float16_autocast_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(
        train_module, "amp_dtype", lambda cfg, device: torch.float16 if cfg.amp else None
    )
    ds = ShapesDataset(4)
    props = jittered_proposals(ds)
    cfg = tiny_cfg(max_iters=4, lr_steps=(3,), lr=0.01, amp=True)
    seen = []
    probe = tiny_model(cfg)
    probe.body.register_forward_hook(lambda m, i, o: seen.append(("body", o.dtype)))
    probe.roi_pool.register_forward_pre_hook(
        lambda m, i: seen.append(("pool", i[0].dtype, i[1].dtype))
    )
    result = train_fast_rcnn(probe, ds, props, cfg.replace(max_iters=1), progress=False)
    # The convolutions ran in float16; RoI pooling got float32 features and RoIs; weights float32.
    assert seen[:2] == [("body", torch.float16), ("pool", torch.float32, torch.float32)]
    assert all(p.dtype == torch.float32 for p in probe.parameters())
    assert torch.isfinite(torch.tensor(result["history"][0]["loss"]))

    straight = _amp_run(tmp_path / "a", cfg, ds, props)
    _amp_run(tmp_path / "b", cfg, ds, props, stop_at=2)
    resumed = _amp_run(tmp_path / "b", cfg, ds, props, resume=True)
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), f"{name} differs after an AMP resume"
    scaler = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["scaler"]
    assert scaler == load_checkpoint(tmp_path / "a" / "checkpoint.pt")["scaler"]
    assert set(scaler) >= {"scale", "growth_factor", "backoff_factor", "growth_interval"}


def test_float32_checkpoint_without_amp_field_still_resumes(tmp_path, monkeypatch):
    """Checkpoints written before cfg.amp existed have no such field: it counts as its default (off)."""
    ds = ShapesDataset(3)
    props = jittered_proposals(ds)
    cfg = tiny_cfg(max_iters=2)
    train_fast_rcnn(tiny_model(cfg), ds, props, cfg, out_dir=tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    state = load_checkpoint(path)
    del state["config"]["amp"], state["scaler"]
    atomic_save(state, path)
    result = train_fast_rcnn(tiny_model(cfg), ds, props, cfg.replace(max_iters=3), out_dir=tmp_path,
                             resume=True, progress=False)  # fmt: skip
    assert result["resumed_from"] == 2
    monkeypatch.setattr(train_module, "amp_dtype", lambda cfg, device: torch.float16)
    with pytest.raises(ValueError, match="amp = False in the checkpoint, True now"):
        train_fast_rcnn(tiny_model(cfg), ds, props, cfg.replace(max_iters=4, amp=True),
                        out_dir=tmp_path, resume=True, progress=False)  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_roi_pooling_under_autocast_runs_in_float32(dtype):
    cfg = tiny_cfg()
    model = tiny_model(cfg)  # stride 8: spatial_scale 1/8, pool 3 x 3
    g = torch.Generator().manual_seed(0)
    features = torch.randn(1, 16, 20, 90, generator=g).to(dtype)  # what autocast's conv returns
    # x1 = 515: 64.375 cells; in bfloat16 it would become 516 (64.5 cells, rounded up to 65).
    boxes = [torch.tensor([[515.0, 9.0, 700.0, 150.0], [3.0, 5.0, 41.0, 60.0]])]
    with torch.autocast("cpu", dtype=dtype):
        pooled = model.pool(features, boxes)
    assert pooled.dtype == torch.float32
    rois = boxes_to_rois(boxes)  # (2, 5) float32
    expected = tv_roi_pool(features.float(), rois, (3, 3), 1 / 8)
    assert torch.equal(pooled, expected)  # a max is exact: float32 of the float16 features
    if dtype is torch.bfloat16:
        quantized = tv_roi_pool(features.float(), rois.to(dtype).float(), (3, 3), 1 / 8)
        assert not torch.equal(pooled, quantized)  # RoI corners in bfloat16 would move the bins
