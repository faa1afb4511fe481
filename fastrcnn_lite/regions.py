"""The training regions of R-CNN and SPPnet: which boxes, their labels, their features on disk.

Data-flow stage: **proposals -> region features** for the two multi-stage systems. R-CNN
(Girshick et al., CVPR 2014, sections 2.3-2.4) and SPPnet (He et al., ECCV 2014, section 4)
train on the same regions, labelled the same way, and both write per-image features to disk
before the SVMs and ridge regressors (``fastrcnn_lite.region_heads``) read them:

* **Fine-tuning windows** (:func:`training_windows`, :func:`draw_windows`): every gt box and
  proposal of every image, foreground when its IoU with a gt box is >= 0.5; a mini-batch draws
  25% foreground and 75% background uniformly over *all* windows of *all* images.
* **Cached regions** (:func:`training_boxes`): per image, the gt boxes first, then all its
  proposals (a random subset only when asked for, :func:`resolve_max_proposals`).
* **The feature cache** (:class:`FeatureCache`): one file per image under
  ``<cache_dir>/<system>_features/<key>/``, the key a hash of everything the features depend on
  (:func:`feature_cache_folder` over ``fastrcnn_lite.checkpoint``'s ``module_digest`` and
  ``proposals_digest`` and :func:`dataset_key`), so a changed network or proposal set never reads stale features.

Taught in ``notebooks/03_rcnn.ipynb`` (R-CNN) and ``notebooks/05_sppnet.ipynb`` (SPPnet).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from .boxes import check_boxes
from .checkpoint import key_digest
from .config import Config, resolve_path
from .progress import tqdm
from .sampling import match_proposals
from .voc import gt_for_training

__all__ = [
    "load_image",
    "load_target",
    "check_proposals",
    "training_windows",
    "draw_windows",
    "resolve_max_proposals",
    "training_boxes",
    "dataset_key",
    "feature_cache_folder",
    "Memo",
    "FeatureCache",
]


# ----------------------------------------------------------------------------------------------
# Reading a dataset
# ----------------------------------------------------------------------------------------------
def load_image(dataset, index: int) -> Tensor:
    """Image ``index`` of ``dataset`` (Tensor[3, H, W] in [0, 1]) without its target when the
    dataset can (``load_image``), else ``dataset[index][0]``.

    No notebook: R-CNN's and SPPnet's training and ``SVMDetector.detect`` read images so.
    """
    return dataset.load_image(index) if hasattr(dataset, "load_image") else dataset[index][0]


def load_target(dataset, index: int) -> dict:
    """Target ``index`` of ``dataset`` (dict with ``boxes`` Tensor[G, 4], ``labels`` Tensor[G],
    ``difficult``...) without decoding the image when the dataset can (``load_target``).

    No notebook: R-CNN's and SPPnet's training read annotations so.
    """
    return dataset.load_target(index) if hasattr(dataset, "load_target") else dataset[index][1]


def check_proposals(dataset, proposals) -> None:
    """Raise a teaching error unless ``proposals`` is a list of one Tensor[P_i, 4] per image.

    No notebook: R-CNN's and SPPnet's training and detection check their inputs with it.
    """
    if not isinstance(proposals, Sequence) or isinstance(proposals, Tensor):
        raise TypeError(
            f"proposals must be a list of per-image Tensor[P_i, 4] (from load_proposals); got {type(proposals).__name__}."
        )
    if len(proposals) != len(dataset):
        raise ValueError(
            f"proposals has {len(proposals)} entries but the dataset has {len(dataset)} images; "
            "load the proposals of this very split (load_proposals(dataset, cfg))."
        )
    for i, p in enumerate(proposals):
        check_boxes(p, f"proposals[{i}]")


# ----------------------------------------------------------------------------------------------
# Fine-tuning windows (R-CNN section 2.3; SPPnet samples the same way)
# ----------------------------------------------------------------------------------------------
def training_windows(
    dataset, proposals: Sequence[Tensor], fg_iou: float, use_difficult: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Every fine-tuning window of every image: its gt boxes and proposals, labelled by IoU.

    No notebook: R-CNN's fine-tuning and ``sppnet_analysis.backward_cost`` (notebook 05) sample
    from it.

    A window whose IoU with its best-overlapping gt box is >= ``fg_iou`` takes that box's class,
    every other one is background (0).

    Returns:
        image_index (Tensor[M] int64), boxes (Tensor[M, 4]), labels (Tensor[M] int64), M = the
        windows of all images (per image: the G gt boxes, then the P proposals).
    """
    image_index, boxes, labels = [], [], []
    for i in range(len(dataset)):
        gt, gt_labels = gt_for_training(load_target(dataset, i), use_difficult)
        b = torch.cat([gt, proposals[i].float()])  # (G + P, 4)
        max_iou, best = match_proposals(b, gt)  # (G + P,), (G + P,)
        lab = torch.zeros(len(b), dtype=torch.long)
        if len(gt):
            lab = torch.where(max_iou >= fg_iou, gt_labels[best], lab)
        image_index.append(torch.full((len(b),), i, dtype=torch.long))
        boxes.append(b)
        labels.append(lab.long())
    return torch.cat(image_index), torch.cat(boxes), torch.cat(labels)


def draw_windows(
    fg: Tensor, bg: Tensor, batch_size: int, positive_fraction: float, generator: torch.Generator
) -> Tensor:
    """One R-CNN / SPPnet mini-batch: ``round(positive_fraction * batch_size)`` foreground
    windows (32 of 128) and the rest background, each drawn uniformly with replacement.

    No notebook: R-CNN's and SPPnet's fine-tuning draw their mini-batches with it (notebook 03
    explains the 32 / 96 split).

    Args:
        fg (Tensor[M_fg] int64), bg (Tensor[M_bg] int64): indices of the foreground / background
            windows (M_fg > 0); with M_bg = 0 the batch holds the foreground windows only.

    Returns:
        Tensor[batch_size] int64 (Tensor[num_fg] when M_bg = 0): foreground indices first.
    """
    num_fg = min(round(positive_fraction * batch_size), batch_size)
    return torch.cat([
        fg[torch.randint(len(fg), (num_fg,), generator=generator)],
        bg[torch.randint(len(bg), (batch_size - num_fg,), generator=generator)] if len(bg) else fg[:0],
    ])  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Cached regions and the feature cache
# ----------------------------------------------------------------------------------------------
def resolve_max_proposals(max_proposals_per_image: int | None | str) -> int | None:
    """``"auto"`` (the default of ``train_rcnn`` and ``train_sppnet``): all training proposals, for
    every backbone, as the papers cache them (R-CNN section 2.3, SPPnet section 4); an int keeps a
    random subset of that many per image (a shortcut for a user short of time or disk).

    No notebook: ``train_rcnn`` and ``train_sppnet`` resolve their ``max_proposals_per_image``
    with it, and ``load_or_train_rcnn`` / ``load_or_train_sppnet`` key their model cache by the
    resolved value (notebook 07's protocol table reports it).

    Returns:
        None (all proposals) or the int given.
    """
    if max_proposals_per_image == "auto":
        return None
    if max_proposals_per_image is not None and (
        isinstance(max_proposals_per_image, bool)
        or not isinstance(max_proposals_per_image, int)
        or max_proposals_per_image < 0
    ):
        raise ValueError(
            f"max_proposals_per_image must be an int >= 0, None (all) or 'auto' (all); got {max_proposals_per_image!r}."
        )
    return max_proposals_per_image


def training_boxes(
    dataset,
    proposals: Sequence[Tensor],
    index: int,
    use_difficult: bool,
    max_proposals: int | None,
    generator: torch.Generator,
) -> tuple[Tensor, int]:
    """The regions of image ``index`` whose features are cached: its gt boxes, then its proposals
    (a random subset of ``max_proposals`` of them drawn with ``generator``; None: all).

    No notebook: R-CNN's and SPPnet's feature caches hold these boxes.

    Returns:
        (boxes Tensor[G + P, 4] with the gt boxes first, G).
    """
    gt, _ = gt_for_training(load_target(dataset, index), use_difficult)
    props = proposals[index].float()
    if max_proposals is not None and len(props) > max_proposals:
        props = props[torch.randperm(len(props), generator=generator)[:max_proposals]]
    return torch.cat([gt, props]), len(gt)  # (G + P, 4)


def dataset_key(dataset) -> str:
    """What identifies a split in a cache key: ``"<root>|<image_set>|<number of images>"``.

    No notebook: the feature caches' and the model cache's keys.
    """
    root = str(getattr(dataset, "root", type(dataset).__name__))
    return f"{root}|{getattr(dataset, 'image_set', '')}|{len(dataset)}"


def feature_cache_folder(cfg: Config, system: str, parts: Sequence) -> Path:
    """``<cfg.cache_dir>/<system>_features/<key>``, the key ``checkpoint.key_digest(list(parts))``
    (12 hex digits; ``parts`` the digests and settings the cached features depend on).

    No notebook: R-CNN's and SPPnet's feature caches.
    """
    return resolve_path(cfg.cache_dir) / f"{system}_features" / key_digest(list(parts), 12)


class Memo:
    """Keep computed per-image values while their total size stays under ``max_bytes``.

    No notebook: R-CNN's fine-tuning and :class:`~fastrcnn_lite.region_heads.SVMRegions` keep
    images and features with it.

    ``get(key, make)`` returns the kept value or ``make()`` (a tuple; its tensors are counted).
    """

    def __init__(self, max_bytes: int):
        self.max_bytes, self.used, self.items = max_bytes, 0, {}

    def get(self, key, make: Callable):
        if key in self.items:
            return self.items[key]
        value = make()
        size = sum(t.numel() * t.element_size() for t in value if isinstance(t, Tensor))
        if self.used + size <= self.max_bytes:
            self.items[key], self.used = value, self.used + size
        return value


class FeatureCache:
    """A folder of per-image region features: ``<folder>/<image index>.pt`` + ``index.json``.

    No notebook: R-CNN's and SPPnet's features on disk (notebooks 03 and 05 print its size).

    Each file holds ``boxes`` (Tensor[G + P, 4], the gt boxes first), ``num_gt`` and the
    features (``pool5`` Tensor[G + P, F] float16 for R-CNN, F = C*h*w; SPPnet stores its conv map instead).
    """

    def __init__(self, folder: str | Path, reused: bool = True):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "index.json").read_text())
        self.num_images, self.bytes, self.num_regions = (
            meta["num_images"],
            meta["bytes"],
            meta.get("num_regions", 0),
        )
        self.reused = reused  # True: an existing cache was found (no features computed this time)

    def __len__(self) -> int:
        return self.num_images

    def load(self, index: int) -> dict:
        return torch.load(self.folder / f"{index:06d}.pt", weights_only=True)

    @staticmethod
    def is_complete(folder: Path) -> bool:
        return (folder / "index.json").is_file()

    @staticmethod
    def write(
        folder: Path, records: Callable[[int], dict], num_images: int, desc: str, progress: bool
    ) -> FeatureCache:
        """Write ``records(i)`` for every image, then ``index.json`` last (an interrupted run is redone)."""
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        total, regions = 0, 0
        for i in tqdm(range(num_images), desc=desc, disable=not progress):
            path = folder / f"{i:06d}.pt"
            record = records(i)
            torch.save(record, path)
            total += path.stat().st_size
            regions += len(record["boxes"])
        meta = {"num_images": num_images, "bytes": total, "num_regions": regions}
        (folder / "index.json").write_text(json.dumps(meta))
        return FeatureCache(folder, reused=False)
