"""Training speed of R-CNN, SPPnet and Fast R-CNN side by side: one run, one machine, interleaved.

Notebook 07 shows it next to the comparison. The paper's Table 4 gives training times (VGG16:
R-CNN 84 h, SPPnet 25 h, Fast R-CNN 9.5 h), but a training time is iterations x seconds per
iteration, plus the stages that do not iterate; each system here runs its own number of
iterations (the embedded profile's time budget), so their recorded train times compare the
budgets as much as the methods. This module measures the *rates* in one run, interleaved
(system by system, repeated; the median of each, as ``fastrcnn_lite.timing`` does for test
time), then multiplies them by a budget:

* **seconds per SGD iteration**, each system's own step with its real mini-batch:
  R-CNN ``rcnn.finetune_step`` (128 warped windows from the images in memory, through the whole
  network), SPPnet ``sppnet_finetune.finetune_step`` (128 fixed pyramids through fc6, fc7),
  Fast R-CNN ``train.training_example`` + ``train.train_step`` (2 images decoded, resized and
  flipped, x 64 RoIs);
* **seconds per training image of the feature stage**: R-CNN the pool5 features of every cached
  region of one image (``rcnn.pool5_features``), SPPnet the conv map of one image
  (``sppnet_cache.conv_map``), each with the image's decoding and the float16 copy serialised in
  memory (the disk write itself is left out);
* the SVM and ridge seconds are not re-measured: they are read from the trained models' recorded
  stage times (``info["train_stages"]``) when given.

:func:`training_table` turns them into each system's training time under two budgets: **as run**
(the iterations each system runs here: ``rcnn.finetune_iterations``,
``sppnet_finetune.finetune_iterations``, ``cfg.max_iters``) and **equal budget**, the fair
protocol: every system fine-tunes for ``cfg.max_iters`` iterations of 128 regions (the papers
use 128-region mini-batches for all three) and the feature stages cover every proposal of every
training image. SPPnet's fine-tuning stage also pools its windows' pyramids once before its
first iteration; that fixed cost is not in its per-iteration rate.
"""

from __future__ import annotations

import copy
import io
import statistics
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..backbones import Backbone, build_sgd, freeze_below
from ..config import Config
from ..fast_rcnn import build_fast_rcnn
from ..pretrain import RegionClassifier, pretrained_backbone
from ..rcnn import finetune_iterations as rcnn_iterations
from ..rcnn import finetune_step as rcnn_step
from ..rcnn import pool5_features
from ..regions import (
    check_proposals,
    draw_windows,
    load_image,
    resolve_max_proposals,
    training_boxes,
    training_windows,
)
from ..roi_pool import SpatialPyramidPool
from ..sampling import ImageSampler
from ..sppnet_cache import conv_map
from ..sppnet_finetune import finetune_iterations as spp_iterations
from ..sppnet_finetune import finetune_step as spp_step
from ..sppnet_finetune import spp_fc
from ..timing import timed_call, warn_if_busy
from ..train import build_optimizer, grad_scaler, lr_at, set_lr, train_step, training_example

__all__ = [
    "SYSTEMS",
    "STAGES",
    "training_speed",
    "budgets",
    "project_training",
    "training_table",
    "format_training_table",
    "fair_verdict",
]

SYSTEMS = ("R-CNN", "SPPnet", "Fast R-CNN")
STAGES = ("fine-tuning", "features", "SVMs", "ridge")
# The recorded ``info["train_stages"]`` key of each stage that is read, not re-measured.
_RECORDED = {"SVMs": "svm_seconds", "ridge": "ridge_seconds"}


# ----------------------------------------------------------------------------------------------
# The measurement
# ----------------------------------------------------------------------------------------------
def _store(pairs: Sequence[Tensor], dataset) -> Callable[[int], Tensor]:
    """Decoded images kept in memory (R-CNN's fine-tuning keeps them so): decoded outside the clock."""
    images = {i: load_image(dataset, i) for i in torch.cat(list(pairs)).unique().tolist()}
    return images.__getitem__


def _serialised(record: dict) -> int:
    """Serialise a cache record in memory (what ``torch.save`` costs, without the disk)."""
    buffer = io.BytesIO()
    torch.save(record, buffer)
    return buffer.tell()


def training_speed(
    cfg: Config,
    train_ds,
    train_props: Sequence[Tensor],
    iterations: int = 10,
    warmup: int = 1,
    backbone: Backbone | None = None,
    batch_size: int = 128,
    spp_images: int = 8,
) -> dict:
    """Seconds per SGD iteration and per feature-stage image of the three systems, interleaved.

    Notebook 07 shows it (through :func:`training_table`).

    Each round times one fine-tuning iteration of R-CNN, of SPPnet and of Fast R-CNN, then the
    feature stage of one training image for R-CNN and SPPnet (image ``round % N``), so a burst
    of load on a shared machine hits them alike; the medians are reported. Everything runs on
    the CPU, in ``torch``'s current threads, from copies of ``backbone`` (it is left as it was).

    Args:
        cfg: the profile (warp context, scales, sampling, SGD, ``trainable_from``...).
        train_ds: the training split; train_props: its proposals (list of Tensor[P_i, 4]).
        iterations: timed rounds (>= 1); warmup: untimed rounds first (>= 0).
        backbone: the starting network (default :func:`~fastrcnn_lite.pretrain.pretrained_backbone`;
            the rates depend on its shapes, not on its weights).
        batch_size: windows per R-CNN / SPPnet mini-batch (128, 25% foreground).
        spp_images: the first this many images give the pyramids SPPnet's iterations draw from.

    Returns:
        dict with ``iteration_seconds`` ({system: median seconds per SGD iteration}),
        ``image_seconds`` ({"R-CNN", "SPPnet": median seconds per training image of the feature
        stage}), ``proposals_per_image`` (their mean over the training images),
        ``num_images``, ``iterations``, ``threads``, ``batches`` ({system: its mini-batch in words}).
    """
    if (
        not isinstance(iterations, int)
        or iterations < 1
        or not isinstance(warmup, int)
        or warmup < 0
    ):
        raise ValueError(
            f"iterations must be an int >= 1 and warmup an int >= 0; got iterations={iterations!r}, warmup={warmup!r}."
        )
    if len(train_ds) == 0:
        raise ValueError("train_ds is empty; pass the training split (load_datasets(cfg)[0]).")
    check_proposals(train_ds, train_props)
    if backbone is None:
        backbone = pretrained_backbone(cfg, train_ds, progress=False)
    num_classes, rounds = len(train_ds.classes), warmup + iterations
    gen = torch.Generator().manual_seed(cfg.seed)

    # R-CNN: the windows of every image, the whole network, SGD as finetune_rcnn builds it.
    index, boxes, labels = training_windows(
        train_ds, train_props, cfg.finetune_fg_iou, cfg.use_difficult
    )
    fg, bg = torch.where(labels > 0)[0], torch.where(labels == 0)[0]
    if len(fg) == 0:
        raise ValueError(
            "train_ds has no foreground window (IoU >= cfg.finetune_fg_iou with a gt box)."
        )
    picks = [draw_windows(fg, bg, batch_size, 0.25, gen) for _ in range(rounds)]  # (B,) each
    images = _store([index[p] for p in picks], train_ds)
    rcnn = RegionClassifier(copy.deepcopy(backbone), num_classes, cfg.cls_init_std).train()
    rcnn_opt = build_sgd(rcnn, cfg.lr, cfg.momentum, cfg.weight_decay, bias_lr_factor=1.0)
    rcnn_eval = RegionClassifier(copy.deepcopy(backbone), num_classes).eval()  # the feature stage
    rcnn_batches = iter(picks)

    def rcnn_iteration() -> None:
        p = next(rcnn_batches)
        rcnn_step(rcnn, rcnn_opt, images, index[p], boxes[p], labels[p], cfg.warp_context)

    cap = resolve_max_proposals("auto")

    def rcnn_features(i: int) -> None:
        b, num_gt = training_boxes(train_ds, train_props, i, cfg.use_difficult, cap, gen)
        with torch.inference_mode():
            pool5 = pool5_features(rcnn_eval, load_image(train_ds, i), b, cfg.warp_context, 256)
        _serialised({"boxes": b, "num_gt": num_gt, "pool5": pool5.half()})

    # SPPnet: conv frozen, pyramids of the first images' windows, fc6 / fc7 + a classifier.
    spp_backbone = copy.deepcopy(backbone)
    freeze_below(spp_backbone, "fc6")
    spp_backbone.body.eval()
    spp = SpatialPyramidPool(cfg.spp_levels, 1.0 / spp_backbone.stride)
    pool, pool_labels = [], []
    with torch.inference_mode():
        for i in range(min(spp_images, len(train_ds))):
            conv, factor = conv_map(
                spp_backbone, load_image(train_ds, i), cfg.scales[0], cfg.max_size
            )
            rows = torch.where(index == i)[0]
            pool.append(spp(conv[None], [boxes[rows] * factor]).half())  # (M_i, C * sum n*n)
            pool_labels.append(labels[rows])
    pool, pool_labels = torch.cat(pool), torch.cat(pool_labels)
    spp_fg, spp_bg = torch.where(pool_labels > 0)[0], torch.where(pool_labels == 0)[0]
    if len(spp_fg) == 0:  # no object in the first images: any window will do for a rate
        spp_fg = spp_bg
    spp_model = nn.Sequential(
        spp_fc(spp_backbone, cfg.spp_levels, cfg.cls_init_std),
        nn.Linear(backbone.fc_dim, num_classes + 1),
    ).train()
    spp_opt = build_sgd(spp_model, cfg.lr, cfg.momentum, cfg.weight_decay, bias_lr_factor=1.0)

    def spp_iteration() -> None:
        p = draw_windows(spp_fg, spp_bg, batch_size, 0.25, gen)
        spp_step(spp_model, spp_opt, pool[p], pool_labels[p])

    def spp_features(i: int) -> None:
        b, num_gt = training_boxes(train_ds, train_props, i, cfg.use_difficult, cap, gen)
        with torch.inference_mode():
            conv, factor = conv_map(
                spp_backbone, load_image(train_ds, i), cfg.scales[0], cfg.max_size
            )
        _serialised({"conv": conv.half(), "factor": factor, "boxes": b, "num_gt": num_gt})

    # Fast R-CNN: the loop body of train.train_fast_rcnn (2 images decoded and resized, x 64 RoIs).
    device = torch.device("cpu")
    fast = build_fast_rcnn(cfg, num_classes, copy.deepcopy(backbone)).to(device).train()
    fast_opt = build_optimizer(fast, cfg)
    set_lr(fast_opt, lr_at(0, cfg))
    scaler = grad_scaler(device, None)
    sampler = ImageSampler(
        len(train_ds), cfg.images_per_batch, tuple(cfg.scales), cfg.flip_prob, cfg.seed
    )

    def fast_iteration() -> None:
        examples = [
            training_example(train_ds, train_props, i, s, f, cfg)
            for i, s, f in sampler.next_batch()
        ]
        train_step(fast, fast_opt, scaler, examples, device)

    steps = {"R-CNN": rcnn_iteration, "SPPnet": spp_iteration, "Fast R-CNN": fast_iteration}
    features = {"R-CNN": rcnn_features, "SPPnet": spp_features}
    step_times: dict[str, list[float]] = {name: [] for name in steps}
    image_times: dict[str, list[float]] = {name: [] for name in features}
    for r in range(rounds):
        for name, step in steps.items():  # interleaved: A, B, C, A, B, C, ...
            seconds = timed_call(step)[1]
            if r >= warmup:
                step_times[name].append(seconds)
        for name, extract in features.items():
            seconds = timed_call(extract, r % len(train_ds))[1]
            if r >= warmup:
                image_times[name].append(seconds)
    warn_if_busy("the training speed")
    return {
        "iteration_seconds": {name: statistics.median(t) for name, t in step_times.items()},
        "image_seconds": {name: statistics.median(t) for name, t in image_times.items()},
        "proposals_per_image": sum(len(p) for p in train_props) / len(train_props),
        "num_images": len(train_ds),
        "iterations": iterations,
        "threads": torch.get_num_threads(),
        "batches": {
            "R-CNN": f"{batch_size} warped windows",
            "SPPnet": f"{batch_size} pyramids",
            "Fast R-CNN": f"{cfg.images_per_batch} images x {cfg.batch_size_per_image} RoIs",
        },
    }


# ----------------------------------------------------------------------------------------------
# Budgets, projection, table
# ----------------------------------------------------------------------------------------------
def budgets(cfg: Config, backbone_name: str | None = None) -> dict[str, dict[str, int]]:
    """SGD iterations of each system: ``"as run"`` (each its own default) and ``"equal budget"``.

    No notebook: :func:`training_table` projects both (notebook 07).

    As run: ``rcnn.finetune_iterations``, ``sppnet_finetune.finetune_iterations`` and
    ``cfg.max_iters``. Equal budget (the fair protocol): ``cfg.max_iters`` iterations of 128
    regions for every system, the papers' mini-batch size for all three.
    """
    name = cfg.backbone if backbone_name is None else backbone_name
    return {
        "as run": {
            "R-CNN": rcnn_iterations(cfg, name),
            "SPPnet": spp_iterations(cfg, name),
            "Fast R-CNN": cfg.max_iters,
        },
        "equal budget": dict.fromkeys(SYSTEMS, cfg.max_iters),
    }


def _check_speed(speed: Mapping) -> None:
    for key, names in (("iteration_seconds", SYSTEMS), ("image_seconds", SYSTEMS[:2])):
        values = speed.get(key) if isinstance(speed, Mapping) else None
        if not isinstance(values, Mapping) or any(
            not isinstance(values.get(n), (int, float)) or not values[n] > 0 for n in names
        ):
            raise ValueError(
                f"speed[{key!r}] must map {list(names)} to positive seconds (from training_speed); "
                f"got {values!r}."
            )


def project_training(
    speed: Mapping,
    iterations: Mapping[str, int],
    num_images: int,
    recorded: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, dict[str, float]]:
    """Each system's training time by stage: rates x budget, plus the recorded SVM / ridge seconds.

    No notebook: :func:`training_table` calls it (notebook 07).

    Args:
        speed: :func:`training_speed`'s result (``iteration_seconds``, ``image_seconds``).
        iterations: {system: SGD iterations} (one budget of :func:`budgets`).
        num_images: training images whose features are computed (all of them).
        recorded: {system: ``info["train_stages"]``} of the trained models (optional); their
            ``svm_seconds`` and ``ridge_seconds`` become the SVMs and ridge stages.

    Returns:
        {system: {stage: seconds}}: ``fine-tuning`` = iterations x seconds per iteration;
        ``features`` = num_images x seconds per image (R-CNN, SPPnet); ``SVMs`` and ``ridge``
        where recorded.
    """
    _check_speed(speed)
    if not isinstance(num_images, int) or num_images < 0:
        raise ValueError(f"num_images must be an int >= 0; got {num_images!r}.")
    missing = [n for n in SYSTEMS if n not in iterations]
    if missing:
        raise ValueError(
            f"iterations must give every system's iterations; {missing} missing from {dict(iterations)}."
        )
    out: dict[str, dict[str, float]] = {}
    for name in SYSTEMS:
        stages = {"fine-tuning": iterations[name] * speed["iteration_seconds"][name]}
        if name in speed["image_seconds"]:
            stages["features"] = num_images * speed["image_seconds"][name]
        for stage, key in _RECORDED.items():
            if recorded is not None and key in recorded.get(name, {}):
                stages[stage] = float(recorded[name][key])
        out[name] = stages
    return out


def training_table(
    speed: Mapping,
    cfg: Config,
    num_images: int,
    recorded: Mapping[str, Mapping[str, float]] | None = None,
) -> list[dict]:
    """The training-speed table: one row per (budget, system), as run here and at equal budget.

    Notebook 07 shows it (:func:`format_training_table`, :func:`fair_verdict`).

    Returns:
        rows with ``budget`` ("as run" / "equal budget"), ``system``, ``iterations``, ``stages``
        ({stage: seconds}, :func:`project_training`), ``total`` (their sum) and ``shares``
        ({stage: fraction of the total}).
    """
    rows = []
    for budget, iterations in budgets(cfg).items():
        for name, stages in project_training(speed, iterations, num_images, recorded).items():
            total = sum(stages.values())
            rows.append({
                "budget": budget, "system": name, "iterations": iterations[name], "stages": stages,
                "total": total, "shares": {k: v / total if total else 0.0 for k, v in stages.items()},
            })  # fmt: skip
    return rows


def format_training_table(rows: list[dict], speed: Mapping | None = None) -> str:
    """The rows as a Markdown table (seconds per stage, total, share by stage).

    Notebook 07 displays it. With ``speed`` a first line gives the measured rates.
    """
    lines = []
    if speed is not None:
        it, im = speed["iteration_seconds"], speed["image_seconds"]
        lines.append(
            "Measured: s / SGD iteration "
            + ", ".join(f"{n} {it[n]:.3f} ({speed['batches'][n]})" for n in SYSTEMS)
            + "; s / training image of the feature stage "
            + ", ".join(f"{n} {im[n]:.3f}" for n in im)
            + f" (median of {speed['iterations']}, {speed['threads']} threads).\n"
        )
    head = (
        "budget",
        "system",
        "iterations",
        *(f"{s} (s)" for s in STAGES),
        "total (s)",
        "share by stage",
    )
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"{row['stages'][s]:.1f}" if s in row["stages"] else "-" for s in STAGES]
        shares = ", ".join(f"{s} {row['shares'][s]:.0%}" for s in STAGES if s in row["shares"])
        lines.append(
            f"| {row['budget']} | {row['system']} | {row['iterations']} | " + " | ".join(cells)
            + f" | {row['total']:.1f} | {shares} |"
        )  # fmt: skip
    return "\n".join(lines)


def fair_verdict(rows: list[dict]) -> str:
    """ "Fast R-CNN trains faster than R-CNN under the fair protocol: yes/no, by which stage".

    Notebook 07 prints it under the table. The stage named is the one with the largest
    difference in seconds between R-CNN and Fast R-CNN at equal budget (Fast R-CNN has one
    stage, its fine-tuning).
    """
    fair = {r["system"]: r for r in rows if r["budget"] == "equal budget"}
    if "R-CNN" not in fair or "Fast R-CNN" not in fair:
        raise ValueError(
            "rows must hold the 'equal budget' rows of R-CNN and Fast R-CNN (training_table)."
        )
    rcnn, fast = fair["R-CNN"], fair["Fast R-CNN"]
    gaps = {s: rcnn["stages"].get(s, 0.0) - fast["stages"].get(s, 0.0) for s in STAGES}
    stage = max(gaps, key=lambda s: abs(gaps[s]))
    faster = fast["total"] < rcnn["total"]
    ratio = rcnn["total"] / fast["total"] if fast["total"] else float("inf")
    return (
        "Fast R-CNN trains faster than R-CNN under the fair protocol: "
        + (f"yes, {ratio:.1f}x" if faster else f"no ({1 / ratio:.1f}x slower)" if ratio else "no")
        + f" ({fast['total']:.0f} s vs {rcnn['total']:.0f} s); the largest difference is in "
        + f"{stage} ({abs(gaps[stage]):.0f} s {'less' if gaps[stage] > 0 else 'more'} for Fast R-CNN)."
    )
