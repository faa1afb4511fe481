"""Where the time goes: a stage-by-stage profile of one Fast R-CNN training iteration and test image.

Data-flow stage: none of its own; it times the real path of every stage, from the image to the
SGD update (training) or to the detections (test), as ``train.train_fast_rcnn`` and
``fast_rcnn.detect`` run them. Shown in ``notebooks/06_fast_rcnn.ipynb`` next to the paper's
time breakdown (section 3.1: VGG16 conv 146 ms, fc6 122 ms, fc7 20 ms, roi_pool5 17 ms per image).

How it measures: wall-clock timers (``time.perf_counter``; the device is synchronised first on
CUDA) at the borders of the stages of the real code path. Forward hooks on the model's parts
(``body``, ``roi_pool``, ``head``) and on the model itself mark when each part starts and ends
while ``model(images, proposals, targets)`` or ``model.detect_image(...)`` runs, so nothing is
re-implemented here; the time between two marks belongs to the stage that ends at the second.
Each stage's time is the median over ``repeats`` runs (after a warm-up run), so one run slowed
by another process on a shared machine does not move the result.

Training stages: ``data`` (sampling the images, reading and decoding them, rescaling and
flipping, batching), ``conv`` (the backbone body), ``sampling`` (RoI sampling, section 2.3),
``RoI pool``, ``fc`` (fc6, fc7, cls_score, bbox_pred), ``loss``, ``backward`` and ``optimizer``
(zeroing the gradients and the SGD step). Test stages: ``data``, ``conv``, ``RoI pool``, ``fc``,
``post-processing`` (softmax, box decoding, per-class NMS).

Usage (in a notebook)::

    from fastrcnn_lite.experiments.profiling import plot_profile, profile_fast_rcnn

    profile = profile_fast_rcnn(cfg, train_ds, train_props, test_ds, test_props)
    plot_profile(profile)
    profile["train"]["shares"]  # {"data": 0.07, "conv": 0.3, ...}, summing to 1
"""

from __future__ import annotations

import copy
import statistics
import time

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from ..config import Config
from ..fast_rcnn import build_fast_rcnn
from ..fast_rcnn_run import max_size_for, resolve_device
from ..sampling import ImageSampler
from ..train import build_optimizer, lr_at, set_lr, training_example

__all__ = ["TRAIN_STAGES", "TEST_STAGES", "profile_fast_rcnn", "plot_profile", "format_profile"]

TRAIN_STAGES = ("data", "conv", "sampling", "RoI pool", "fc", "loss", "backward", "optimizer")
TEST_STAGES = ("data", "conv", "RoI pool", "fc", "post-processing")

# The stage that the interval ending at each mark belongs to.
_TRAIN_MARKS = {
    "forward_start": "data",
    "body_start": "data",  # reading, rescaling, flipping, input checks, batching
    "body_end": "conv",
    "roi_pool_start": "sampling",  # sample_rois, target normalisation, boxes_to_rois
    "roi_pool_end": "RoI pool",
    "head_start": "fc",
    "head_end": "fc",
    "forward_end": "loss",
    "zero_grad_end": "optimizer",
    "backward_end": "backward",
    "step_end": "optimizer",
}
_TEST_MARKS = {
    "forward_start": "data",
    "body_start": "data",  # reading, rescaling (per pyramid level)
    "body_end": "conv",
    "roi_pool_start": "RoI pool",  # boxes_to_rois
    "roi_pool_end": "RoI pool",
    "head_start": "fc",  # putting the pooled features back in proposal order
    "head_end": "fc",
    "forward_end": "post-processing",
}


class _Marks:
    """Timestamps at named points of the real code path, set by forward hooks."""

    def __init__(self, device: torch.device):
        self.device = device
        self.events: list[tuple[str, float]] = []
        self.handles = []

    def mark(self, name: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.events.append((name, time.perf_counter()))

    def hook(self, module: nn.Module, name: str) -> None:
        self.handles.append(module.register_forward_pre_hook(lambda *_: self.mark(f"{name}_start")))
        self.handles.append(module.register_forward_hook(lambda *_: self.mark(f"{name}_end")))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def seconds(self, stages: dict[str, str]) -> dict[str, float]:
        """Seconds per stage: each interval between two marks goes to the stage of its end mark."""
        out: dict[str, float] = {}
        for (_, t0), (name, t1) in zip(self.events, self.events[1:], strict=False):
            stage = stages[name]
            out[stage] = out.get(stage, 0.0) + (t1 - t0)
        return out


def _summary(runs: list[dict[str, float]], stages: tuple[str, ...]) -> dict:
    seconds = {s: statistics.median(r.get(s, 0.0) for r in runs) for s in stages}
    total = sum(seconds.values())
    return {
        "seconds": seconds,
        "shares": {s: seconds[s] / total for s in stages},
        "total": total,
        "runs": len(runs),
    }


def profile_fast_rcnn(
    cfg: Config,
    train_ds,
    train_proposals: list[Tensor],
    test_ds=None,
    test_proposals: list[Tensor] | None = None,
    model: nn.Module | None = None,
    repeats: int = 5,
) -> dict:
    """Profile one Fast R-CNN training iteration and one test image, stage by stage.

    Notebook 06 runs it, next to the paper's time breakdown.

    Args:
        cfg: the profile (``Config.embedded()`` in the notebooks): scales, RoIs per image, SGD.
        train_ds, test_ds: :class:`~fastrcnn_lite.voc.VOCDataset` (``ds[i] -> (image, target)``);
            ``test_ds`` defaults to ``train_ds``.
        train_proposals, test_proposals (list of Tensor[P_i, 4]): one per image, original pixels.
        model: a :class:`~fastrcnn_lite.fast_rcnn.FastRCNN`; a copy is trained and run, so the
            model passed in is left as it was. None builds ``cfg``'s network with random
            weights (:func:`~fastrcnn_lite.fast_rcnn.build_fast_rcnn`): the shares depend on the
            shapes, not on the weights.
        repeats: timed runs of each (after one warm-up run); each stage's median is reported.

    Returns:
        dict with ``train`` and ``test``, each a dict: ``seconds`` ({stage: median seconds}, the
        stages of :data:`TRAIN_STAGES` / :data:`TEST_STAGES` in order), ``shares`` ({stage:
        fraction of the sum of the medians}, summing to 1), ``total`` (that sum, seconds) and
        ``runs``; and ``threads`` (torch CPU threads), ``device``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1 (timed runs per stage); got {repeats}.")
    test_ds = train_ds if test_ds is None else test_ds
    test_proposals = train_proposals if test_proposals is None else test_proposals
    for name, ds, props in (
        ("train", train_ds, train_proposals),
        ("test", test_ds, test_proposals),
    ):
        if len(props) != len(ds):
            raise ValueError(
                f"Need one proposal tensor per {name} image: {len(ds)} images, {len(props)} "
                "proposal tensors. Pass the proposals of the same split (load_proposals(ds, cfg))."
            )
    if model is None:
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            model = build_fast_rcnn(cfg, len(train_ds.classes))
        model = model.to(resolve_device(cfg))
    else:
        model = copy.deepcopy(model)  # training steps must not change the caller's model
    device = next(model.parameters()).device

    marks = _Marks(device)
    marks.hook(model, "forward")
    marks.hook(model.body, "body")
    marks.hook(model.roi_pool, "roi_pool")
    marks.hook(model.head, "head")
    try:
        # --- training: the loop body of train.train_fast_rcnn --------------------------------
        model.train()
        optimizer = build_optimizer(model, cfg)
        set_lr(optimizer, lr_at(0, cfg))
        sampler = ImageSampler(len(train_ds), cfg.images_per_batch, tuple(cfg.scales),
                               cfg.flip_prob, seed=cfg.seed)  # fmt: skip
        train_runs = []
        for run in range(repeats + 1):
            marks.events.clear()
            marks.mark("start")
            examples = [
                training_example(train_ds, train_proposals, i, s, f, cfg)
                for i, s, f in sampler.next_batch()
            ]
            images = [e[0].to(device) for e in examples]
            props = [e[1].to(device) for e in examples]
            targets = [{k: v.to(device) for k, v in e[2].items()} for e in examples]
            losses = model(images, props, targets)
            optimizer.zero_grad(set_to_none=True)
            marks.mark("zero_grad_end")
            losses["loss"].backward()
            marks.mark("backward_end")
            optimizer.step()
            marks.mark("step_end")
            if run > 0:  # run 0 warms up (allocator, kernels, caches)
                train_runs.append(marks.seconds(_TRAIN_MARKS))

        # --- test: the loop body of fast_rcnn.detect -----------------------------------------
        model.eval()
        scales = tuple(cfg.test_scales)
        max_size = max_size_for(cfg, scales)
        test_runs = []
        for run in range(repeats + 1):
            i = run % len(test_ds)
            marks.events.clear()
            marks.mark("start")
            image = test_ds[i][0].to(device)
            boxes = test_proposals[i].to(device)
            model.detect_image(image, boxes, scales, max_size, cfg.pyramid_target_area)
            marks.mark("forward_end")
            if run > 0:
                test_runs.append(marks.seconds(_TEST_MARKS))
    finally:
        marks.remove()
    return {
        "train": _summary(train_runs, TRAIN_STAGES),
        "test": _summary(test_runs, TEST_STAGES),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }


def format_profile(profile: dict) -> str:
    """The profile as a small text table: milliseconds and share of every stage.

    Notebook 06 prints it."""
    lines = []
    for part, title in (("train", "training iteration"), ("test", "test image")):
        p = profile[part]
        lines.append(f"{title}: {p['total'] * 1e3:.1f} ms (median of {p['runs']} runs per stage)")
        for stage, seconds in p["seconds"].items():
            lines.append(f"  {stage:<16}{seconds * 1e3:9.1f} ms {p['shares'][stage]:7.1%}")
    return "\n".join(lines)


def plot_profile(profile: dict, ax=None, figsize: tuple[float, float] = (10, 2.4)):
    """Horizontal stacked bars: each stage's share of a training iteration and of a test image.

    Notebook 06 draws it.

    Args:
        profile: the result of :func:`profile_fast_rcnn`.
        ax: a matplotlib Axes to draw in (a new figure when None).

    Returns:
        the matplotlib Figure.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    colours = {stage: plt.cm.tab10(i) for i, stage in enumerate(TRAIN_STAGES)}
    colours["post-processing"] = plt.cm.tab10(len(TRAIN_STAGES))
    rows = (("test", "test image"), ("train", "training iteration"))
    seen = set()
    for y, (part, _title) in enumerate(rows):
        p = profile[part]
        left = 0.0
        for stage, share in p["shares"].items():
            label = stage if stage not in seen else None
            seen.add(stage)
            ax.barh(y, share, left=left, color=colours[stage], edgecolor="white", label=label)
            if share >= 0.06:
                ax.text(left + share / 2, y, f"{share:.0%}", ha="center", va="center", fontsize=8)
            left += share
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(
        [f"{title}\n{profile[part]['total'] * 1e3:.0f} ms" for part, title in rows], fontsize=9
    )
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the time (median of each stage)")
    ax.legend(ncol=5, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35), frameon=False)
    fig.tight_layout()
    return fig
