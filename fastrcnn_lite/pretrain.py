"""Supervised pre-training: the network every system starts from.

Data-flow stage: **backbone** (before any detector is built). R-CNN (section 2.3), SPPnet and
Fast R-CNN (section 2.2) all start from a CNN pre-trained on ImageNet classification, then
adapt it to detection. On real VOC that network is torchvision's ImageNet AlexNet or VGG16.

The embedded dataset has no ImageNet, so the course adds a stand-in stage with the same role:
the small backbone is trained as an *image-region classifier* on warped crops (R-CNN's warp,
``fastrcnn_lite.warp``) of the ground-truth boxes of the training split, with K + 1 outputs
(background crops are random boxes with IoU < 0.3 with every gt box)::

    crop Tensor[B, 3, s, s] -> body -> adaptive max-pool to pool_size -> fc6, fc7 -> Linear(fc_dim, K + 1)

Only ``body`` and ``fc`` (fc6, fc7) are kept; the classification layer is thrown away, as the
paper throws away ImageNet's 1000-way fc8. The result is cached with
:func:`~fastrcnn_lite.checkpoint.cache_path`, so the notebooks train it once.

Note what this stand-in sees that ImageNet pre-training does not: the detection classes of the
training split. That makes the small-profile numbers easier than the real problem; every system
starts from the same network, so the comparison between them stays fair.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import Backbone, build_sgd, new_backbone, small_backbone
from .boxes import box_iou, clip_boxes_to_image
from .checkpoint import atomic_save, cache_path, load_checkpoint
from .config import Config
from .data import dataset_digest
from .progress import tqdm
from .voc import gt_for_training
from .warp import warp_regions

__all__ = [
    "pretrained_backbone",
    "pretrain_small_backbone",
    "region_crops",
    "random_background_boxes",
    "jitter_boxes",
    "RegionClassifier",
]

IMAGENET_WEIGHTS = "IMAGENET1K_V1"

# The config fields the small backbone's pre-training depends on (its cache key): the detectors'
# own settings (schedules, sampling, scales) do not change the network they all start from.
PRETRAIN_FIELDS = (
    "data_root",
    "year",
    "train_set",
    "backbone",
    "pool_size",
    "warp_context",
    "seed",
    "cache_dir",
)


def jitter_boxes(boxes: Tensor, generator: torch.Generator, std: float = 0.08) -> Tensor:
    """Randomly shift and rescale boxes (centre by ``std`` of the size, size by ``exp(N(0, std))``).

    No notebook: :func:`region_crops` jitters the gt boxes with it.
    """
    wh = boxes[:, 2:] - boxes[:, :2]  # (G, 2)
    centre = (
        boxes[:, :2] + 0.5 * wh + std * wh * torch.randn(wh.shape, generator=generator)
    )  # (G, 2)
    wh = wh * torch.exp(std * torch.randn(wh.shape, generator=generator))  # (G, 2)
    return torch.cat([centre - 0.5 * wh, centre + 0.5 * wh], dim=1)  # (G, 4)


def random_background_boxes(
    gt_boxes: Tensor,
    image_size: tuple[int, int],
    num: int,
    generator: torch.Generator,
    max_iou: float = 0.3,
    min_side: float = 12.0,
    tries: int = 20,
) -> Tensor:
    """Up to ``num`` random boxes inside the image whose IoU with every gt box is < ``max_iou``.

    No notebook: :func:`region_crops` draws its background with it.

    Sides are log-uniform between ``min_side`` and 0.7 x the image side; fewer than ``num`` come
    back when the image is so crowded that ``tries * num`` candidates do not yield enough.

    Returns:
        Tensor[<=num, 4].
    """
    height, width = image_size
    n = num * tries
    lo = math.log(min(min_side, 0.5 * min(height, width)))
    wh = torch.exp(
        lo
        + torch.rand(n, 2, generator=generator)
        * (math.log(0.7) + torch.tensor([math.log(width), math.log(height)]) - lo)
    )  # (n, 2)
    wh = torch.minimum(wh, torch.tensor([float(width), float(height)]))
    x1y1 = torch.rand(n, 2, generator=generator) * (
        torch.tensor([float(width), float(height)]) - wh
    )  # (n, 2)
    candidates = torch.cat([x1y1, x1y1 + wh], dim=1)  # (n, 4)
    if len(gt_boxes):
        candidates = candidates[box_iou(candidates, gt_boxes).max(dim=1).values < max_iou]
    return candidates[:num]


def region_crops(
    dataset,
    size: int,
    context: int,
    seed: int = 0,
    jitters_per_box: int = 4,
    background_per_box: float = 1.0,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """The pre-training set: warped crops of the gt boxes (jittered) and of background boxes.

    No notebook: :func:`pretrain_small_backbone` trains on them.

    Args:
        dataset: a :class:`~fastrcnn_lite.voc.VOCDataset` (the training split).
        size: the warp size (``backbone.input_size``).
        context: R-CNN's context padding at the warped size (``cfg.warp_context``).
        jitters_per_box: crops per gt box (the first is the exact box, the rest jittered).
        background_per_box: background crops per foreground crop.

    Returns:
        (crops Tensor[B, 3, size, size] uint8, labels Tensor[B] int64 in 0..K, 0 = background).
    """
    gen = torch.Generator().manual_seed(seed)
    crops, labels = [], []
    for i in tqdm(range(len(dataset)), desc="pretrain crops", disable=not progress):
        image, target = dataset[i]
        # Never the difficult objects, whatever cfg.use_difficult says: the pre-trained network
        # is shared by every system and its cache key (PRETRAIN_FIELDS) leaves that field out.
        gt, gt_labels = gt_for_training(target)
        size_hw = tuple(image.shape[1:])
        fg = [gt] + [
            clip_boxes_to_image(jitter_boxes(gt, gen), size_hw) for _ in range(jitters_per_box - 1)
        ]
        fg_boxes = torch.cat(fg)  # (G * jitters, 4)
        fg_labels = gt_labels.repeat(jitters_per_box)
        ok = ((fg_boxes[:, 2:] - fg_boxes[:, :2]) >= 2).all(dim=1)
        fg_boxes, fg_labels = fg_boxes[ok], fg_labels[ok]
        num_bg = max(1, round(background_per_box * len(fg_boxes)))
        bg_boxes = random_background_boxes(target["boxes"], size_hw, num_bg, gen)
        boxes = torch.cat([fg_boxes, bg_boxes])  # (B_i, 4)
        warped = warp_regions(image, boxes, size, context)  # (B_i, 3, s, s)
        crops.append((warped.clamp(0, 1) * 255).round().to(torch.uint8))
        labels.append(torch.cat([fg_labels, torch.zeros(len(bg_boxes), dtype=torch.int64)]))
    return torch.cat(crops), torch.cat(labels)


class RegionClassifier(nn.Module):
    """A whole-network classifier of warped regions (pre-training, and R-CNN's fine-tuning).

    No notebook: the pre-training and R-CNN's fine-tuning train it.

    crops Tensor[B, 3, s, s] -> body -> adaptive max-pool to pool_size ("pool5") -> fc6, fc7 ->
    cls_score Linear(fc_dim, K + 1) -> class_logits Tensor[B, K + 1]. The body and fc modules are
    the backbone's own (shared, not copied). For an ``input_size`` crop the body output is about
    ``pool_size`` already (5x5 for the small backbone, 13x13 -> 6x6 for AlexNet, 14x14 -> 7x7 for
    VGG16), so the adaptive max-pool plays the role of the dropped last max-pool (pool5).
    """

    def __init__(self, backbone: Backbone, num_classes: int, init_std: float = 0.01):
        super().__init__()
        self.body, self.fc = backbone.body, backbone.fc
        self.pool_size = tuple(backbone.pool_size)
        self.input_size = backbone.input_size
        self.cls_score = nn.Linear(backbone.fc_dim, num_classes + 1)
        nn.init.normal_(self.cls_score.weight, std=init_std)
        nn.init.zeros_(self.cls_score.bias)

    def pool5(self, crops: Tensor) -> Tensor:  # (B, 3, s, s) -> (B, C*h*w)
        crops = crops.contiguous(memory_format=torch.channels_last)  # ~1.5x faster convs on CPU
        return F.adaptive_max_pool2d(self.body(crops), self.pool_size).flatten(1)  # (B, C*h*w)

    def forward(self, crops: Tensor) -> Tensor:  # (B, 3, s, s) -> (B, K + 1)
        return self.cls_score(self.fc(self.pool5(crops)))  # (B, K + 1)


def pretrain_small_backbone(
    cfg: Config,
    train_ds,
    iters: int = 300,
    batch_size: int = 64,
    lr: float = 0.02,
    progress: bool = True,
) -> tuple[Backbone, dict]:
    """Train a fresh :func:`~fastrcnn_lite.backbones.small_backbone` as a region classifier.

    No notebook: :func:`pretrained_backbone` runs it for the small backbone.

    SGD with momentum 0.9, weight decay 5e-4, cosine learning-rate decay, random horizontal
    flips; ``iters`` mini-batches of ``batch_size`` warped crops (see :func:`region_crops`).

    Returns:
        (backbone, info): info has ``seconds`` (wall clock, crops included), ``losses`` (one per
        iteration), ``train_accuracy`` (on the last 10% of the mini-batches) and ``num_crops``.
    """
    num_classes = len(train_ds.classes)
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    backbone = small_backbone(pool_size=tuple(cfg.pool_size))
    crops, labels = region_crops(
        train_ds, backbone.input_size, cfg.warp_context, cfg.seed, progress=progress
    )
    model = RegionClassifier(backbone, num_classes)
    # The paper's decay groups with this stand-in stage's own fixed settings (not cfg's, which
    # are the detectors'): every group at the base lr, as the cached network was trained.
    opt = build_sgd(model, lr, momentum=0.9, weight_decay=5e-4, bias_lr_factor=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda it: 0.5 * (1 + math.cos(math.pi * it / iters))
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    losses, correct, seen = [], 0, 0
    model.train()
    for it in tqdm(range(iters), desc="pretrain", disable=not progress):
        idx = torch.randint(len(crops), (batch_size,), generator=gen)
        x = crops[idx].float().div_(255)  # (B, 3, s, s)
        flip = torch.rand(batch_size, generator=gen) < 0.5
        x[flip] = x[flip].flip(-1)
        logits = model(x)  # (B, K + 1)
        loss = F.cross_entropy(logits, labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if it >= iters - max(1, iters // 10):
            correct += (logits.argmax(1) == labels[idx]).sum().item()
            seen += batch_size
    model.eval()
    info = {
        "seconds": time.perf_counter() - start,
        "losses": losses,
        "train_accuracy": correct / max(seen, 1),
        "num_crops": len(crops),
    }
    return backbone, info


def pretrained_backbone(
    cfg: Config,
    train_ds=None,
    progress: bool = True,
    weights: str | Path | None = None,
    iters: int = 300,
) -> Backbone:
    """The pre-trained network all three systems start from.

    Notebook 03 starts R-CNN from it, notebook 05 SPPnet and notebook 06 Fast R-CNN.

    * ``cfg.backbone == "small"``: load the course's region-classifier pre-training from the
      cache, or train it (:func:`pretrain_small_backbone`, ~1 minute on 2 cores) and cache it.
      Needs ``train_ds``.
    * ``"alexnet"`` / ``"vgg16"``: torchvision's ImageNet network: ``weights`` = a local
      state-dict path, or None for ``"IMAGENET1K_V1"`` (downloads on first use).

    The returned backbone is in eval mode (BatchNorm uses its running statistics).
    """
    if cfg.backbone in ("alexnet", "vgg16"):
        backbone = new_backbone(
            cfg.backbone, weights=weights if weights is not None else IMAGENET_WEIGHTS
        )
        backbone.body.eval(), backbone.fc.eval()
        return backbone
    if cfg.backbone != "small":
        raise ValueError(
            f"cfg.backbone must be 'small', 'alexnet' or 'vgg16'; got {cfg.backbone!r}."
        )
    if train_ds is None:
        raise ValueError(
            "pretrained_backbone needs train_ds for the small backbone (it is pre-trained on the "
            "training split's regions); pass the dataset from load_datasets(cfg)."
        )
    # The key covers the training data itself (ids, annotations and image bytes): a dataset
    # regenerated at the same root trains a new network instead of loading a stale one.
    path = cache_path(
        cfg, "pretrained", only=PRETRAIN_FIELDS, data=dataset_digest(train_ds), iters=iters,
        version=2,
    )  # fmt: skip
    backbone = new_backbone(cfg.backbone, cfg.pool_size)
    if path.is_file():
        state = load_checkpoint(path)
        backbone.body.load_state_dict(state["body"])
        backbone.fc.load_state_dict(state["fc"])
        if progress:
            print(f"pretrained backbone loaded from {path.name} (trained in {state['seconds']:.0f} s, "
                  f"crop accuracy {state['train_accuracy']:.2f})")  # fmt: skip
    else:
        backbone, info = pretrain_small_backbone(cfg, train_ds, iters=iters, progress=progress)
        state = {"body": backbone.body.state_dict(), "fc": backbone.fc.state_dict(), "seconds": info["seconds"],
                 "train_accuracy": info["train_accuracy"], "losses": torch.tensor(info["losses"])}  # fmt: skip
        atomic_save(state, path)
        if progress:
            print(f"pretrained backbone trained in {info['seconds']:.0f} s on {info['num_crops']} crops "
                  f"(crop accuracy {info['train_accuracy']:.2f}); cached at {path.name}")  # fmt: skip
    backbone.body.eval(), backbone.fc.eval()
    return backbone
