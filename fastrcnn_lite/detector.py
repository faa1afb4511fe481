"""One contract for the three detectors (and the SVD variant): build, train-or-load, move, detect.

Data-flow stage: the whole path **image + proposals -> detections**, seen from outside. R-CNN
(``fastrcnn_lite.rcnn.RCNN``), SPPnet (``fastrcnn_lite.sppnet.SPPNet``) and Fast R-CNN
(``fastrcnn_lite.fast_rcnn.FastRCNN``, also its truncated-SVD copy) are built from different
stages, but a comparison or a benchmark only needs what they have in common, :class:`Detector`:

* ``name``: one of :data:`SYSTEMS` ("R-CNN", "SPPnet", "Fast R-CNN", "Fast R-CNN + SVD").
* ``to(device)``: move every network and head weight; returns the detector.
* ``detect_image(image Tensor[3, H, W], proposals Tensor[P, 4]) -> {boxes Tensor[D, 4], scores
  Tensor[D], labels Tensor[D] int64 in 1..K}``: one decoded image and its proposals, on the
  detector's device, in original image pixels, at the test scales of the config it was built
  with; what ``fastrcnn_lite.timing`` times as "test time per image".
* ``score_proposals(image, proposals) -> (scores Tensor[P, K or K + 1], box_deltas Tensor[P, 4K])``:
  the network part of ``detect_image`` (no box decoding, no NMS): what the detector benchmark times.
* ``info``: a dict with the same keys for all (:data:`INFO_KEYS`): ``from_cache`` (bool: loaded
  from the model cache, not trained by this call), ``train_seconds`` (the system's own training
  stages, as measured when it was trained; shared pre-training excluded), ``train_stages``
  ({stage: seconds}), ``cache_bytes`` (disk of its training-feature cache; 0 for Fast R-CNN) and
  ``parameters`` (numbers in the test-time detector). Each system keeps its own extra keys too
  (R-CNN's ``cache_dir``, ``finetune_losses``, ``loaded``; Fast R-CNN's ``history``,
  ``iterations``, ``path``...).

:func:`load_or_train` builds any of them by name: the trained detector from the model cache, or
trained then cached, on the device ``cfg.device`` names, in eval mode. It calls each system's own
``load_or_train_*`` function (those stay public: notebooks 03, 05 and 06 use them).

Why a protocol and not a base class: the three detectors are different kinds of object (two
multi-stage pipelines with SVMs, one ``nn.Module``), and the contract is only what a caller may
rely on. ``fastrcnn_lite.detect`` is a different thing: the post-processing stage (per-class NMS)
all three end with. Taught in ``notebooks/07_comparison.ipynb``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from .config import Config
from .fast_rcnn import FastRCNN
from .fast_rcnn_run import resolve_device
from .rcnn import load_or_train_rcnn
from .sppnet import load_or_train_sppnet
from .svd import count_parameters, truncated_svd
from .train_cache import load_or_train_fast_rcnn

__all__ = ["SYSTEMS", "INFO_KEYS", "Detector", "load_or_train", "fast_rcnn_info", "with_svd"]

# The systems, in the paper's order (Table 4).
SYSTEMS = ("R-CNN", "SPPnet", "Fast R-CNN", "Fast R-CNN + SVD")
# The keys every detector's ``info`` has (see the module docstring).
INFO_KEYS = ("from_cache", "train_seconds", "train_stages", "cache_bytes", "parameters")


@runtime_checkable
class Detector(Protocol):
    """What R-CNN, SPPnet, Fast R-CNN and Fast R-CNN + SVD all offer (see the module docstring).

    Notebook 07 compares the four detectors through it (``fastrcnn_lite.experiments.compare``).
    """

    name: str
    info: dict

    def to(self, device: torch.device | str) -> Detector: ...

    def detect_image(self, image: Tensor, proposals: Tensor) -> dict[str, Tensor]: ...

    def score_proposals(self, image: Tensor, proposals: Tensor) -> tuple[Tensor, Tensor]: ...


def fast_rcnn_info(model: FastRCNN, info: dict) -> dict:
    """The contract's ``info`` of a Fast R-CNN from ``load_or_train_fast_rcnn``'s info: its keys
    (``train_seconds``, ``from_cache``, ``iterations``, ``history``...) plus ``train_stages``
    ({"sgd_seconds": its one training stage}), ``cache_bytes`` (0: no feature cache) and
    ``parameters``.

    No notebook: :func:`load_or_train` fills a Fast R-CNN's ``info`` with it.
    """
    seconds = float(info["train_seconds"])
    return dict(info, from_cache=bool(info.get("from_cache")), train_seconds=seconds,
                train_stages={"sgd_seconds": seconds}, cache_bytes=0,
                parameters=count_parameters(model))  # fmt: skip


def with_svd(fast: FastRCNN, cfg: Config) -> FastRCNN:
    """Fast R-CNN + SVD (section 3.1): a copy of ``fast`` with fc6 and fc7 compressed to ranks
    ``cfg.svd_rank_fc6`` / ``cfg.svd_rank_fc7``; its train time is Fast R-CNN's plus the SVD's.

    Notebook 07 gets its Fast R-CNN + SVD from it (through :func:`load_or_train`).
    """
    start = time.perf_counter()
    compressed = truncated_svd(fast, cfg.svd_rank_fc6, cfg.svd_rank_fc7)
    svd_seconds = time.perf_counter() - start
    compressed.name = "Fast R-CNN + SVD"
    stages = dict(fast.info.get("train_stages", {}), svd_seconds=svd_seconds)
    compressed.info = dict(fast.info, train_seconds=sum(stages.values()), train_stages=stages,
                           parameters=count_parameters(compressed))  # fmt: skip
    return compressed


def load_or_train(
    system: str,
    cfg: Config,
    train_ds,
    proposals: Sequence[Tensor],
    progress: bool = True,
    device: torch.device | str | None = None,
    **options,
) -> Detector:
    """The trained detector ``system`` for ``cfg``, data and proposals: from the model cache, or
    trained then cached; on ``device`` (default ``cfg.device``, "auto" = cuda when available), in
    eval mode, with the contract's ``info`` (:data:`INFO_KEYS`).

    Notebook 07 builds its detectors with it (through ``fastrcnn_lite.experiments.compare``).

    Args:
        system: one of :data:`SYSTEMS`.
        cfg: the profile (``Config.embedded()`` or ``Config()``).
        train_ds: the training split; proposals: its proposals (list of Tensor[P_i, 4]).
        progress: progress bars (and Fast R-CNN's "loaded from" line).
        options: passed on to the system's own function: ``backbone``, ``finetune_iters``,
            ``max_proposals_per_image`` for :func:`~fastrcnn_lite.rcnn.load_or_train_rcnn` and
            :func:`~fastrcnn_lite.sppnet.load_or_train_sppnet`; ``pretrained``, ``callback`` for
            :func:`~fastrcnn_lite.train.load_or_train_fast_rcnn`.

    "Fast R-CNN + SVD" loads (or trains) Fast R-CNN, then compresses it (:func:`with_svd`).
    """
    if not isinstance(cfg, Config):
        raise TypeError(
            f"cfg must be a fastrcnn_lite.config.Config; got {type(cfg).__name__}. Try Config.embedded()."
        )
    if system == "R-CNN":
        detector = load_or_train_rcnn(cfg, train_ds, proposals, progress, **options)
    elif system == "SPPnet":
        detector = load_or_train_sppnet(cfg, train_ds, proposals, progress, **options)
    elif system in ("Fast R-CNN", "Fast R-CNN + SVD"):
        fast, info = load_or_train_fast_rcnn(cfg, train_ds, proposals, progress, **options)
        fast.info = fast_rcnn_info(fast, info)
        detector = fast if system == "Fast R-CNN" else with_svd(fast, cfg)
    else:
        raise ValueError(f"system must be one of {list(SYSTEMS)}; got {system!r}.")
    return detector.to(resolve_device(cfg) if device is None else device).eval()
