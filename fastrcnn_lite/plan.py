"""Before a long run: what it will do, how long each stage will take here, and whether it fits.

Data-flow stage: none of its own. It runs the real path of the stages that a training run
repeats (**image -> proposals**, one **training iteration**, **detection** of a test image) a
few times on this machine and multiplies, before ``python -m fastrcnn_lite.train`` starts
(``--plan`` prints it and stops). Taught in ``notebooks/08_full_voc_run.ipynb``.

* :func:`plan_run` says what the run will do (data found or to download, proposals cached or to
  compute, backbone and weights, iterations, checkpoint cadence, output folder) and estimates
  each stage from timed work: selective search on a few images (when not cached), a few SGD
  iterations (:func:`~fastrcnn_lite.train.train_step`, after one warm-up) and the detection of a
  few test images (:func:`~fastrcnn_lite.fast_rcnn.detect`, after one warm-up). The network it
  times is built with random weights (the time depends on the shapes, not on the values), so a
  plan downloads nothing and leaves the run's model, RNG and files untouched. Without images
  (VOC not downloaded yet) it times synthetic images of the largest training size instead.
* The memory pre-flight (:mod:`fastrcnn_lite.preflight`) runs on CUDA before the timing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import Config, resolve_path
from .data import dataset_classes
from .fast_rcnn import build_fast_rcnn, detect, max_size_for, resolve_device
from .preflight import MemoryPreflightError, memory_preflight, synthetic_example
from .proposal_cache import load_proposals, proposal_cache_dir
from .proposals import selective_search
from .train import (
    amp_dtype,
    build_optimizer,
    grad_scaler,
    lr_at,
    set_lr,
    train_step,
    training_example,
)
from .train_state import checkpoint_iteration, existing_run
from .voc import VOC_CLASSES

__all__ = ["RunRequest", "RunPlan", "plan_run", "format_seconds", "KNOWN_SPLIT_SIZES"]

# Images per split of the real datasets (the devkit's ImageSets/Main lists), for a plan made
# before the download.
KNOWN_SPLIT_SIZES = {
    ("2007", "train"): 2501, ("2007", "val"): 2510, ("2007", "trainval"): 5011,
    ("2007", "test"): 4952, ("2012", "train"): 5717, ("2012", "val"): 5823,
    ("2012", "trainval"): 11540,
}  # fmt: skip

LONG_ON_CPU_SECONDS = 3600.0  # a CPU estimate above this gets the one-line GPU advice


@dataclass
class RunRequest:
    """What the command line asks of a run besides its :class:`~fastrcnn_lite.config.Config`.

    Notebook 08 (the training command's plan, ``--plan``).
    """

    out: Path  # the run folder (--out)
    init: str = "pretrained"  # "pretrained" (ImageNet or the small pre-training) or "scratch"
    weights: str | None = None  # --weights: a torchvision name or a local state-dict file
    resume: bool = False  # --resume
    overwrite: bool = False  # --overwrite
    evaluate: bool = False  # --eval
    checkpoint_every: int = 500  # --checkpoint-every


@dataclass
class RunPlan:
    """The printed plan and its estimate.

    Notebook 08 (the training command's plan, ``--plan``).

    Attributes:
        lines: (topic, text) pairs of the plan.
        seconds: estimated seconds of each stage: ``proposals``, ``training``, ``evaluation``.
        how: for each stage, the arithmetic behind its estimate ("40000 iterations x 23.1 s").
        per_unit: measured seconds per ``proposal_image``, ``iteration`` and ``test_image``.
        device: where the run computes.
        memory_error: the pre-flight's verdict when the run would not fit (raised by the CLI
            after printing the plan); None when it fits or was not run (CPU).
    """

    lines: list[tuple[str, str]]
    seconds: dict[str, float]
    how: dict[str, str]
    per_unit: dict[str, float]
    device: torch.device
    timed: str
    memory_error: MemoryPreflightError | None = None
    notes: list[str] = field(default_factory=list)
    untimed: set[str] = field(default_factory=set)  # stages with work to do but no estimate

    @property
    def total(self) -> float:
        """The sum of the estimated stages (an untimed stage counts 0: see :attr:`untimed`)."""
        return sum(self.seconds.values())

    def format(self) -> str:
        """The plan and the estimate as the command prints them."""
        width = max(len(topic) for topic, _ in self.lines)
        text = ["plan:"] + [f"  {topic:<{width}}  {line}" for topic, line in self.lines]
        text.append(f"estimate on this machine ({self.timed}):")
        for stage, seconds in self.seconds.items():
            shown = "?" if stage in self.untimed else format_seconds(seconds)
            text.append(f"  {stage:<{width}}  {shown:>10}   {self.how[stage]}")
        left_out = f"   + {', '.join(sorted(self.untimed))} (not timed)" if self.untimed else ""
        text.append(f"  {'total':<{width}}  {format_seconds(self.total):>10}{left_out}")
        return "\n".join(text + self.notes)


def format_seconds(seconds: float) -> str:
    """A duration for people: ``0.4 s``, ``12 s``, ``3.5 min``, ``2.1 h``, ``3.4 days``.

    Notebook 07 prints durations with it (through ``experiments.compare``).
    """
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class _Subset:
    """Some images of a dataset, for :func:`~fastrcnn_lite.fast_rcnn.detect`."""

    def __init__(self, dataset, indices: list[int]):
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        return self.dataset[self.indices[k]]


def _spread(n: int, k: int) -> list[int]:
    """k indices spread over range(n) (all of them when n <= k)."""
    return sorted({int(i) for i in np.linspace(0, n - 1, min(n, k)).round()}) if n else []


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proposal_status(dataset, cfg: Config) -> tuple[str, int]:
    """(what the cache holds, how many images still need selective search) for ``dataset``."""
    folder = proposal_cache_dir(dataset, cfg)
    if (folder / "proposals.pt").is_file():
        return f"cached in {folder}", 0
    done = len(list((folder / "parts").glob("*.npy"))) if (folder / "parts").is_dir() else 0
    todo = len(dataset) - min(done, len(dataset))
    resumed = f" ({done} done by an interrupted run)" if done else ""
    return f"to compute for {todo} images{resumed} -> {folder}", todo


def _proposals_for(dataset, indices: list[int], cfg: Config, cached: bool) -> tuple[dict, float]:
    """Proposals of some images ({index: Tensor[P, 4]}), and the seconds per image of selective search (0 if cached)."""
    if cached:
        everything = load_proposals(dataset, cfg, progress=False)
        return {i: everything[i] for i in indices}, 0.0
    props, start = {}, time.perf_counter()
    for i in indices:
        image = dataset.load_image(i)
        props[i] = selective_search(image, cfg.proposal_mode, cfg.proposal_min_size,
                                    cfg.proposals_per_image)  # fmt: skip
    return props, (time.perf_counter() - start) / max(len(indices), 1)


def _data_lines(cfg: Config, train_ds, test_ds, request: RunRequest) -> tuple[str, dict]:
    """The plan's data line and the number of images of each split."""
    root = resolve_path(cfg.data_root)
    splits = list(dict.fromkeys([cfg.train_set] + ([cfg.test_set] if request.evaluate else [])))
    if train_ds is not None:
        counts = {cfg.train_set: len(train_ds)}
        if request.evaluate:
            counts[cfg.test_set] = len(test_ds)
        listed = ", ".join(f"{s} {counts[s]} images" for s in splits)
        return f"VOC{cfg.year} under {root}: {listed} (found)", counts
    real = dataset_classes(cfg) == VOC_CLASSES  # the embedded dataset is generated on first use
    counts = {s: KNOWN_SPLIT_SIZES.get((str(cfg.year), s)) if real else None for s in splits}
    listed = ", ".join(f"{s} {counts[s] or '?'} images" for s in splits)
    if not real:
        return f"not generated yet under {root}: the run generates it first; {listed}", counts
    return (
        f"not found under {root}: download it first (python -m fastrcnn_lite.download --root "
        f"{cfg.data_root} --year {cfg.year}; make voc does), then {listed}",
        counts,
    )


def _backbone_line(cfg: Config, request: RunRequest, model) -> str:
    if request.init == "scratch":
        start = "random weights (--init scratch)"
    elif cfg.backbone == "small":
        start = "the course's region pre-training of the small network (cached after its first run)"
    elif request.weights and Path(request.weights).suffix:
        found = "found" if Path(request.weights).is_file() else "NOT FOUND"
        start = f"ImageNet weights from {request.weights} ({found})"
    else:
        name = request.weights or "IMAGENET1K_V1"
        start = f"ImageNet weights {name} (torchvision; downloaded on first use, then cached)"
    total = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return (
        f"{cfg.backbone} from {start}; SGD updates {cfg.trainable_from} and above: "
        f"{trained / 1e6:.1f}M of {total / 1e6:.1f}M parameters"
    )


def _output_line(request: RunRequest, done: int | None, cfg: Config) -> str:
    out, found = request.out, existing_run(request.out)
    if not found:
        return f"{out}: new run"
    if request.overwrite:
        return f"{out} holds a run: --overwrite deletes it and starts over"
    if request.resume:
        at = f"iteration {done}" if done is not None else "no checkpoint yet (starts afresh)"
        return f"{out} holds a run at {at}: --resume continues it"
    return f"{out} holds a run ({', '.join(found)}): refused without --resume or --overwrite"


def plan_run(
    cfg: Config,
    request: RunRequest,
    train_ds=None,
    test_ds=None,
    *,
    timed_iters: int = 2,
    timed_images: int = 2,
    budget_bytes: int | None = None,
    measure=None,
) -> RunPlan:
    """What a training run will do and how long each stage will take on this machine.

    Notebook 08 (the training command's plan, ``--plan``).

    Args:
        cfg: the run's configuration.
        request: the command line's other choices (output folder, weights, resume, eval).
        train_ds, test_ds: the datasets, or None when they are not on disk yet (the estimate
            then times synthetic images of the largest training size; proposals are not timed).
        timed_iters: SGD iterations timed (after one warm-up); ``images_per_batch`` images each.
        timed_images: test images whose detection is timed (after one warm-up image).
        budget_bytes, measure: passed to :func:`~fastrcnn_lite.preflight.memory_preflight`
            (tests simulate a small GPU with them; on a CPU without them there is no pre-flight).

    Returns:
        a :class:`RunPlan`; ``print(plan.format())`` shows it.
    """
    if timed_iters < 1 or timed_images < 1:
        raise ValueError(
            f"timed_iters and timed_images must be >= 1; got {timed_iters} and {timed_images}."
        )
    device = resolve_device(cfg)
    dtype = amp_dtype(cfg, device)
    data_line, counts = _data_lines(cfg, train_ds, test_ds, request)
    lines = [("data", data_line)]
    done = checkpoint_iteration(request.out / "checkpoint.pt") if request.resume else None
    remaining = max(cfg.max_iters - (done or 0), 0)
    workers = max(1, min(int(cfg.num_workers), os.cpu_count() or 1))
    splits = [("train", train_ds, cfg.train_set)]
    if request.evaluate and cfg.test_set != cfg.train_set:  # one split for both: its proposals once
        splits.append(("test", test_ds, cfg.test_set))
    status = {}
    for role, ds, name in splits:
        if ds is None:
            status[role] = (f"{name}: to compute after the download", counts[name] or 0)
        else:
            text, todo = _proposal_status(ds, cfg)
            status[role] = (f"{name}: {text}", todo)
    lines.append(("proposals", f"selective search ({cfg.proposal_mode}), at most "
                  f"{cfg.proposals_per_image} per image, {workers} process(es); "
                  + "; ".join(s for s, _ in status.values())))  # fmt: skip

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        num_classes = len(train_ds.classes) if train_ds is not None else len(dataset_classes(cfg))
        model = build_fast_rcnn(cfg, num_classes).to(device)
        lines.append(("backbone", _backbone_line(cfg, request, model)))
        steps = ", ".join(f"x{cfg.lr_gamma:g} at {s}" for s in cfg.lr_steps)
        scales = "/".join(str(s) for s in cfg.scales)
        precision = "mixed precision (float16 autocast)" if dtype is not None else "float32"
        lines.append(("training", f"{cfg.max_iters} SGD iterations (lr {cfg.lr:g}{', ' if steps else ''}"
                      f"{steps}){f', {remaining} to go from iteration {done}' if done else ''}; "
                      f"{cfg.images_per_batch} images x {cfg.batch_size_per_image} RoIs each, scale "
                      f"{scales} (longer side <= {max_size_for(cfg, tuple(cfg.scales))}); {precision} "
                      f"on {device}"))  # fmt: skip
        writes = -(-remaining // request.checkpoint_every) if remaining else 0
        lines.append(("checkpoints", f"every {request.checkpoint_every} iterations and at the end "
                      f"({writes} write{'s' if writes != 1 else ''}) to checkpoint.pt, with metrics.jsonl and the curves "
                      f"training.png"))  # fmt: skip
        lines.append(("output", _output_line(request, done, cfg)))
        if request.evaluate:
            lines.append(("evaluation", f"{cfg.test_set} ({counts[cfg.test_set] or '?'} images), "
                          "VOC07 11-point AP; eval.json and VOC results files in results/"))  # fmt: skip
        memory_error = None
        try:
            verdict = memory_preflight(model, cfg, device, dtype, budget_bytes=budget_bytes,
                                       measure=measure)  # fmt: skip
        except MemoryPreflightError as e:
            verdict, memory_error = f"does NOT fit: {e}", e
        lines.append(("memory", verdict or f"pre-flight on CUDA only; none on {device}"))

        per_unit, how = {}, {}
        seconds = {"proposals": 0.0, "training": 0.0, "evaluation": 0.0}
        if memory_error is None:
            generator = torch.Generator().manual_seed(cfg.seed)
            n_images = (timed_iters + 1) * cfg.images_per_batch
            if train_ds is not None:
                picks = _spread(len(train_ds), n_images)
                props, ss = _proposals_for(train_ds, picks, cfg, status["train"][1] == 0)
                per_unit["proposal_image"] = ss

                def make(k: int):
                    scale = cfg.scales[k % len(cfg.scales)]
                    return training_example(
                        train_ds, props, picks[k % len(picks)], scale, False, cfg
                    )
            else:

                def make(k: int):
                    return synthetic_example(cfg, cfg.scales[k % len(cfg.scales)], generator)

            per_unit["iteration"] = _time_training(model, cfg, device, dtype, make, timed_iters)
            if request.evaluate:
                test_cached = status.get("test", status["train"])[1] == 0
                per_unit["test_image"], test_ss = _time_detection(
                    model, cfg, device, dtype, test_ds, test_cached, timed_images, generator
                )
                if test_ss:
                    per_unit["proposal_image"] = (per_unit.get("proposal_image", 0.0) + test_ss) / (
                        2 if per_unit.get("proposal_image") else 1
                    )
        del model
    if device.type == "cuda":
        torch.cuda.empty_cache()

    untimed: set[str] = set()
    if memory_error is not None:
        how = dict.fromkeys(seconds, "not timed: the run does not fit in memory")
    else:
        todo = sum(n for _, n in status.values())
        if "proposal_image" in per_unit and todo:
            seconds["proposals"] = todo * per_unit["proposal_image"] / workers
            how["proposals"] = (f"{todo} images x {per_unit['proposal_image']:.2f} s / {workers} "
                                "process(es)")  # fmt: skip
        elif todo:
            how["proposals"] = f"{todo} images, not timed: no images on disk yet"
            untimed.add("proposals")
        else:
            how["proposals"] = "cached"
        seconds["training"] = remaining * per_unit["iteration"]
        how["training"] = f"{remaining} iterations x {per_unit['iteration']:.3f} s"
        if request.evaluate:
            n_test = counts[cfg.test_set] or 0
            seconds["evaluation"] = n_test * per_unit["test_image"]
            how["evaluation"] = f"{n_test} images x {per_unit['test_image']:.3f} s"
        else:
            how["evaluation"] = "none (no --eval)"
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    source = "the dataset's images" if train_ds is not None else "synthetic images (no data yet)"
    tested = f" and {timed_images} detected test images" if request.evaluate else ""
    timed = f"{device}{threads}; {timed_iters} timed SGD iterations{tested}, on {source}"
    plan = RunPlan(lines, seconds, how, per_unit, device, timed, memory_error, untimed=untimed)
    if device.type == "cpu" and plan.total > LONG_ON_CPU_SECONDS:
        plan.notes.append(
            f"On this CPU the run would take about {format_seconds(plan.total)}"
            f"{' and the untimed stages' if plan.untimed else ''}; on a CUDA GPU it "
            "takes hours (the paper trained VGG16 in 9.5 h on one K40): run it on a machine "
            "with a GPU with --device cuda."
        )
    return plan


def _time_training(model, cfg: Config, device, dtype, make, timed_iters: int) -> float:
    """Seconds per SGD iteration (examples made inside the clock, as in the loop), after one warm-up."""
    model.train()
    optimizer = build_optimizer(model, cfg)
    set_lr(optimizer, lr_at(0, cfg))
    scaler = grad_scaler(device, dtype)
    n = cfg.images_per_batch
    times = []
    for it in range(timed_iters + 1):
        _sync(device)
        start = time.perf_counter()
        examples = [make(it * n + k) for k in range(n)]
        train_step(model, optimizer, scaler, examples, device, dtype)
        _sync(device)
        if it > 0:  # iteration 0 warms up (allocator, kernels, caches)
            times.append(time.perf_counter() - start)
    optimizer.zero_grad(set_to_none=True)
    return float(np.mean(times))


def _time_detection(model, cfg, device, dtype, test_ds, cached, timed_images, generator):
    """(seconds per test image, image decoding included; seconds of selective search per image or 0)."""
    model.eval()
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        if test_ds is None:
            scales, max_size = tuple(cfg.test_scales), max_size_for(cfg, tuple(cfg.test_scales))
            times = []
            for k in range(timed_images + 1):
                image, props, _ = synthetic_example(cfg, max(scales), generator)
                image, props = image.to(device), props.to(device)
                _sync(device)
                start = time.perf_counter()
                model.detect_image(image, props, scales, max_size, cfg.pyramid_target_area)
                _sync(device)
                if k > 0:
                    times.append(time.perf_counter() - start)
            return float(np.mean(times)), 0.0
        picks = _spread(len(test_ds), timed_images + 1)
        props, ss = _proposals_for(test_ds, picks, cfg, cached)
        proposals = [props[i] for i in picks]
        detect(model, _Subset(test_ds, picks[:1]), proposals[:1], cfg, progress=False)  # warm-up
        timed = picks[1:] or picks
        _sync(device)
        start = time.perf_counter()
        detect(model, _Subset(test_ds, timed), proposals[-len(timed) :], cfg, progress=False)
        _sync(device)
        return (time.perf_counter() - start) / len(timed), ss
