"""The memory pre-flight: does one training iteration fit on this GPU, before hours of set-up?

Data-flow stage: none of its own; it runs one **forward and backward pass** of Fast R-CNN at the
largest input a run can meet, before :func:`~fastrcnn_lite.train.train_fast_rcnn` starts.
Taught in ``notebooks/08_full_voc_run.ipynb``; called by :func:`~fastrcnn_lite.plan.plan_run`.

The largest input: ``cfg.images_per_batch`` images whose shorter side is the largest training
scale and whose longer side is at the cap (``cfg.max_size``, or ``cfg.multiscale_max_size`` for
a pyramid), each with ``cfg.proposals_per_image`` proposals laid so the sampler fills all
``cfg.batch_size_per_image`` RoIs. On CUDA the peak of the caching allocator during that pass,
plus the SGD momentum buffers the first step will add (one per trained parameter), must stay
within 90% of the memory this process can have (free + what it already reserved); the rest is
left for fragmentation. If not, the run stops with a message that names the settings to lower
and their current values, instead of an out-of-memory error mid-run. On a CPU there is no
pre-flight (the operating system's memory is not a fixed budget).

The pass leaves the model as it found it: weights, BatchNorm statistics, gradients (None) and
the RNG states are restored.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .cli import UserError
from .config import Config
from .fast_rcnn import max_size_for

__all__ = [
    "MemoryPreflightError",
    "USABLE_FRACTION",
    "synthetic_example",
    "worst_case_batch",
    "training_pass",
    "memory_budget",
    "training_peak_bytes",
    "check_memory",
    "memory_preflight",
]

USABLE_FRACTION = 0.9  # of the memory budget; the rest is left for the allocator's fragmentation
GiB = 2**30


class MemoryPreflightError(UserError):
    """One training iteration at the run's largest setting would not fit in the GPU's memory.

    Notebook 08 (the training command's memory pre-flight, on CUDA).
    """


def synthetic_example(
    cfg: Config, scale: int, generator: torch.Generator, width: int | None = None
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """A made-up training example already at its training size (timing and memory only).

    Notebook 08 (the plan times synthetic images before VOC is downloaded).

    The image is ``scale`` pixels high and ``width`` wide (default: a VOC photo's 4:3, capped
    at the longer-side limit); one ground-truth box covers its middle quarter and
    ``cfg.proposals_per_image`` proposals are jittered copies of it, so their IoUs with it span
    both the foreground and the background ranges and the sampler fills every RoI slot.

    Returns:
        (image Tensor[3, scale, width] in [0, 1], proposals Tensor[P, 4],
        target dict with ``boxes`` Tensor[1, 4] and ``labels`` Tensor[1] = 1).
    """
    cap = max_size_for(cfg, tuple(cfg.scales))
    h = int(scale)
    w = int(width) if width is not None else min(round(scale * 4 / 3), cap)
    image = torch.rand(3, h, w, generator=generator)
    gt = torch.tensor([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]])  # (1, 4)
    p = cfg.proposals_per_image
    size = torch.tensor([w / 2, h / 2]) * (0.3 + 1.4 * torch.rand(p, 2, generator=generator))
    centre = torch.tensor([w / 2, h / 2]) + (torch.rand(p, 2, generator=generator) - 0.5) * size
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)  # (P, 4)
    boxes = torch.stack([boxes[:, 0].clamp(0, w - 2), boxes[:, 1].clamp(0, h - 2),
                         boxes[:, 2].clamp(1, w), boxes[:, 3].clamp(1, h)], dim=1)  # fmt: skip
    boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)  # at least one pixel wide
    return image, boxes, {"boxes": gt, "labels": torch.ones(1, dtype=torch.int64)}


def worst_case_batch(cfg: Config, generator: torch.Generator) -> list:
    """``cfg.images_per_batch`` synthetic examples at the largest scale, longer side at the cap.

    Notebook 08 (the training command's memory pre-flight, on CUDA).
    """
    scale = max(cfg.scales)
    cap = max_size_for(cfg, tuple(cfg.scales))
    return [
        synthetic_example(cfg, scale, generator, width=cap) for _ in range(cfg.images_per_batch)
    ]


def training_pass(
    model, cfg: Config, device: torch.device, dtype: torch.dtype | None = None
) -> None:
    """One forward and backward pass of ``model`` on :func:`worst_case_batch`; the model is left as it was.

    Notebook 08 (the training command's memory pre-flight, on CUDA).
    """
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    was_training = model.training
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        generator = torch.Generator().manual_seed(cfg.seed)
        batch = worst_case_batch(cfg, generator)
        images = [e[0].to(device) for e in batch]
        props = [e[1].to(device) for e in batch]
        targets = [{k: v.to(device) for k, v in e[2].items()} for e in batch]
        model.train()
        try:
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                losses = model(images, props, targets)
            losses["loss"].backward()
        finally:
            for p in model.parameters():
                p.grad = None
            with torch.no_grad():
                for name, b in model.named_buffers():
                    b.copy_(buffers[name])
            model.train(was_training)


def memory_budget(device: torch.device) -> int | None:
    """Bytes this process can use on ``device`` (CUDA: free + already reserved); None elsewhere.

    Notebook 08 (the training command's memory pre-flight, on CUDA).
    """
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device))


def _momentum_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


def training_peak_bytes(model, cfg: Config, device: torch.device, dtype=None) -> int:
    """Peak CUDA memory of :func:`training_pass` (weights included) plus the SGD momentum buffers.

    Notebook 08 (the training command's memory pre-flight, on CUDA).
    """
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    training_pass(model, cfg, device, dtype)
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device)) + _momentum_bytes(model)


def _setting(cfg: Config) -> str:
    scales = "/".join(str(s) for s in cfg.scales)
    return (f"scale {scales} (longer side up to {max_size_for(cfg, tuple(cfg.scales))}), "
            f"{cfg.images_per_batch} images per batch, {cfg.batch_size_per_image} RoIs per image")  # fmt: skip


def check_memory(peak_bytes: int | None, budget_bytes: int, cfg: Config) -> str:
    """The pre-flight's decision: a one-line verdict when ``peak_bytes`` fits, else MemoryPreflightError.

    Notebook 08 (the training command's memory pre-flight, on CUDA).

    Args:
        peak_bytes: what one iteration needs (None: the pass itself ran out of memory).
        budget_bytes: what this process can have; the run fits when
            ``peak_bytes <= USABLE_FRACTION * budget_bytes``.

    Raises:
        MemoryPreflightError: naming the settings to lower (scale, RoIs per image, images per
            batch) with their current values.
    """
    usable = USABLE_FRACTION * budget_bytes
    if peak_bytes is not None and peak_bytes <= usable:
        return (f"one iteration at the largest setting ({_setting(cfg)}) needs "
                f"{peak_bytes / GiB:.1f} GiB of {budget_bytes / GiB:.1f} GiB available: fits")  # fmt: skip
    need = (
        "ran out of memory in a single forward and backward pass"
        if peak_bytes is None
        else f"needs {peak_bytes / GiB:.1f} GiB"
    )
    largest = max(cfg.scales)
    raise MemoryPreflightError(
        f"Memory pre-flight: one training iteration at the largest setting ({_setting(cfg)}) "
        f"{need}, but only {usable / GiB:.1f} GiB of the GPU's {budget_bytes / GiB:.1f} GiB "
        f"available are usable. Lower the image scale first: --scale (cfg.scales, now "
        f"{largest}) or --max-size (cfg.max_size, now {cfg.max_size}); then the RoIs per image: "
        f"--rois-per-image (cfg.batch_size_per_image, now {cfg.batch_size_per_image}); or the "
        f"images per batch: --images-per-batch (cfg.images_per_batch, now {cfg.images_per_batch}). "
        "--amp (mixed precision) also shrinks the activations; or free the GPU of other processes."
    )


def memory_preflight(
    model,
    cfg: Config,
    device: torch.device,
    dtype: torch.dtype | None = None,
    *,
    budget_bytes: int | None = None,
    measure=None,
) -> str | None:
    """Stop a run that would not fit, before it starts: one pass at the largest setting.

    Notebook 08 (the training command's memory pre-flight, on CUDA).

    Args:
        model: the run's network (or one of the same shapes), on ``device``.
        dtype: the autocast dtype (mixed precision) or None.
        budget_bytes: bytes this process may use; None = :func:`memory_budget` (None on a CPU:
            no pre-flight).
        measure: ``measure(model, cfg, device, dtype) -> peak bytes``; None =
            :func:`training_peak_bytes` (CUDA). Tests simulate a GPU with both.

    Returns:
        the verdict line when it fits; None when there is no pre-flight (CPU).

    Raises:
        MemoryPreflightError: it would not fit (see :func:`check_memory`).
    """
    budget = memory_budget(device) if budget_bytes is None else budget_bytes
    if budget is None:
        return None
    measure = training_peak_bytes if measure is None else measure
    try:
        peak = measure(model, cfg, device, dtype)
    except torch.cuda.OutOfMemoryError:
        peak = None
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return check_memory(peak, budget, cfg)
