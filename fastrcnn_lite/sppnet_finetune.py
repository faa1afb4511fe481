"""SPPnet's fine-tuning: a new fc6 for the pyramid, then fc6 and fc7 trained on fixed pyramids.

Data-flow stage: **heads** (the fc layers above the pyramid), trained before the SVMs. He et
al., ECCV 2014, section 4; Fast R-CNN section 2.3 explains why only the fc layers: training
windows are sampled like R-CNN's (25% foreground, uniformly over all windows of all images), so
a mini-batch's 128 windows come from ~128 images, and a backward pass through the pyramid would
need the conv activations of all of them (``fastrcnn_lite.sppnet_analysis.backward_cost``).
With the conv layers frozen, each window's pyramid is fixed and pooled once from the cached conv
maps (``fastrcnn_lite.sppnet_cache``)::

    pyramids Tensor[B, C * sum n*n] --fc6 (spp_fc), fc7--> Tensor[B, fc_dim]
        --cls_score (temporary)--> class_logits Tensor[B, K + 1]      (B windows of a mini-batch)

The fine-tuned fc6 and fc7 then feed the SVMs (``fastrcnn_lite.region_heads``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import Backbone, OneDNNLinear, build_sgd
from .config import Config
from .progress import tqdm
from .regions import FeatureCache, draw_windows, load_target
from .roi_pool import SpatialPyramidPool
from .sampling import match_proposals
from .sppnet_cache import cached_pyramids
from .voc import gt_for_training

__all__ = ["spp_fc", "finetune_iterations", "finetune_step", "finetune_spp_fc"]


def spp_fc(backbone: Backbone, levels: Sequence[int], init_std: float = 0.01) -> nn.Sequential:
    """A copy of ``backbone.fc`` whose fc6 takes the pyramid: Linear(C * sum(n*n), fc_dim).

    Notebook 05 builds one to show where the pre-trained fc6 weights go.

    The columns of the level ``n == pool_size`` get the pre-trained fc6 weights (the pyramid's
    levels are concatenated level by level, channel-major within a level, the same layout as the
    flattened ``C x n x n`` pool5 the pre-trained fc6 reads); the other levels start at zero. With
    no matching level, fc6 is initialised from N(0, init_std^2). fc7 keeps its pre-trained weights.
    """
    fc = copy.deepcopy(backbone.fc)
    index = next(i for i, m in enumerate(fc) if isinstance(m, nn.Linear))
    old = fc[index]
    channels = backbone.out_channels
    fc6 = OneDNNLinear(
        channels * sum(n * n for n in levels), old.out_features
    )  # (fc_dim, C * sum n*n)
    with torch.no_grad():
        h, w = backbone.pool_size
        if h == w and h in levels:
            offset = channels * sum(n * n for n in levels[: list(levels).index(h)])
            fc6.weight.zero_()
            fc6.weight[:, offset : offset + channels * h * w] = old.weight
            fc6.bias.copy_(old.bias)
        else:
            nn.init.normal_(fc6.weight, std=init_std)
            nn.init.zeros_(fc6.bias)
    fc[index] = fc6
    return fc


class _SPPClassifier(nn.Module):
    def __init__(self, fc: nn.Module, fc_dim: int, num_classes: int, init_std: float):
        super().__init__()
        self.fc = fc
        self.cls_score = nn.Linear(fc_dim, num_classes + 1)
        nn.init.normal_(self.cls_score.weight, std=init_std)
        nn.init.zeros_(self.cls_score.bias)

    def forward(self, pyramids: Tensor) -> Tensor:  # (B, C * sum n*n) -> (B, K + 1)
        return self.cls_score(self.fc(pyramids))


def finetune_iterations(cfg: Config, backbone_name: str) -> int:
    """SGD iterations of SPPnet's fc fine-tuning by default: 600 for the small backbone (the embedded
    profile's time budget), ``cfg.max_iters`` otherwise.

    No notebook: the fine-tuning uses it, and notebook 07's protocol table reports it.
    """
    return 600 if backbone_name == "small" else cfg.max_iters


def finetune_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, pyramids: Tensor, labels: Tensor
) -> Tensor:
    """One SGD iteration of SPPnet's fc fine-tuning on fixed pyramids: fc6, fc7, cls_score, log loss.

    No notebook: :func:`finetune_spp_fc` runs it every iteration (its schedule steps after it);
    ``fastrcnn_lite.experiments.train_speed`` times it (notebook 07).

    Args:
        model: fc6, fc7 and a classifier: Tensor[B, C * sum n*n] -> logits Tensor[B, K + 1].
        pyramids (Tensor[B, C * sum n*n], any float dtype), labels (Tensor[B] int64): the
            mini-batch's windows (0 = background).

    Returns:
        the loss (0-dim Tensor) of this mini-batch, before the update.
    """
    loss = F.cross_entropy(model(pyramids.float()), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def finetune_spp_fc(
    fc: nn.Module,
    backbone: Backbone,
    cache: FeatureCache,
    spp: SpatialPyramidPool,
    dataset,
    cfg: Config,
    iters: int | None = None,
    batch_size: int = 128,
    positive_fraction: float = 0.25,
    bg_per_image: int = 32,
    lr: float | None = None,
    progress: bool = True,
) -> dict:
    """Fine-tune fc6, fc7 (and a temporary cls_score) on pyramid features of training windows.

    No notebook: :func:`~fastrcnn_lite.sppnet.train_sppnet` runs it (notebook 05 shows its
    losses, ``info["finetune_losses"]``).

    Windows: gt boxes and proposals with IoU >= ``cfg.fg_iou_thresh`` are foreground (labelled
    with the gt class); background are proposals with IoU in [``cfg.bg_iou_thresh_lo``, 0.5)
    (SPPnet's [0.1, 0.5)), all of them if none fall there. The conv layers are frozen, so each
    window's pyramid is fixed: it is pooled once from the cached conv maps (all foreground
    windows, at most ``bg_per_image`` random background windows per image), then the fc layers
    train on mini-batches of ``batch_size`` with 25% foreground, SGD momentum 0.9, lr x0.1 for
    the last quarter.

    Returns:
        info with ``losses``, ``seconds``, ``num_fg_windows``, ``num_bg_windows``. ``fc`` is
        trained in place.
    """
    start = time.perf_counter()
    iters = iters if iters is not None else finetune_iterations(cfg, backbone.name)
    lr = lr if lr is not None else cfg.lr
    gen = torch.Generator().manual_seed(cfg.seed)
    feats, labels = [], []
    with torch.inference_mode():
        for i in tqdm(range(len(cache)), desc="SPPnet windows", disable=not progress):
            record = cache.load(i)
            gt, gt_labels = gt_for_training(load_target(dataset, i), cfg.use_difficult)
            max_iou, best = match_proposals(record["boxes"], gt)  # (G + P,), (G + P,)
            fg = torch.where(max_iou >= cfg.fg_iou_thresh)[0]
            bg = torch.where((max_iou < cfg.fg_iou_thresh) & (max_iou >= cfg.bg_iou_thresh_lo))[0]
            if len(bg) == 0:
                bg = torch.where(max_iou < cfg.fg_iou_thresh)[0]
            bg = bg[torch.randperm(len(bg), generator=gen)[:bg_per_image]]
            rows = torch.cat([fg, bg])
            feats.append(cached_pyramids(spp, record, rows).half())
            labels.append(torch.cat([gt_labels[best[fg]], torch.zeros(len(bg), dtype=torch.long)]))
    feats, labels = torch.cat(feats), torch.cat(labels)  # (M, F), (M,)
    fg, bg = torch.where(labels > 0)[0], torch.where(labels == 0)[0]
    if len(fg) == 0:
        raise ValueError(
            f"SPPnet fine-tuning found no foreground window (IoU >= {cfg.fg_iou_thresh} with a gt box) in "
            f"{len(cache)} training images; does the training split have any (non-difficult) objects?"
        )
    torch.manual_seed(cfg.seed)
    model = _SPPClassifier(fc, backbone.fc_dim, len(dataset.classes), cfg.cls_init_std)
    # As R-CNN's fine-tuning (rcnn.finetune_rcnn): the paper's decay groups, every group at the
    # base lr (bias_lr_factor=1): the cached SPPnet models come from it, and the cache key (the
    # config) would not notice a change to 2x.
    opt = build_sgd(model, lr, cfg.momentum, cfg.weight_decay, bias_lr_factor=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.75 * iters)], 0.1)
    losses = []
    model.train()
    for _ in tqdm(range(iters), desc="SPPnet fine-tuning (fc only)", disable=not progress):
        pick = draw_windows(fg, bg, batch_size, positive_fraction, gen)  # (B,)
        loss = finetune_step(model, opt, feats[pick], labels[pick])
        sched.step()
        losses.append(loss.item())
    model.eval()
    return {
        "losses": losses,
        "seconds": time.perf_counter() - start,
        "num_fg_windows": len(fg),
        "num_bg_windows": len(bg),
    }
