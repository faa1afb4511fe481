"""The model cache of R-CNN and SPPnet: a trained SVM detector loaded, or trained then saved.

Data-flow stage: none of its own; it wraps a whole training pipeline (``rcnn.train_rcnn`` or
``sppnet.train_sppnet``: proposals Tensor[P_i, 4] per image -> a trained
:class:`~fastrcnn_lite.region_heads.SVMDetector`) in the cache of ``fastrcnn_lite.checkpoint``.
The key is built from every input the model depends on, so a changed setting never loads a
stale model; ``rcnn.load_or_train_rcnn`` and ``sppnet.load_or_train_sppnet`` are this function
for each system.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from .backbones import Backbone
from .checkpoint import atomic_save, cache_path, load_checkpoint, module_digest, proposals_digest
from .config import Config
from .region_heads import SVMDetector
from .regions import dataset_key

__all__ = ["load_or_train"]


def load_or_train(
    detector: type[SVMDetector],
    train: Callable[..., SVMDetector],
    cfg: Config,
    train_ds,
    proposals: Sequence[Tensor],
    progress: bool = True,
    backbone: Backbone | None = None,
    **kwargs,
):
    """The trained ``detector`` for this config, data, proposals and starting weights, from the
    model cache, or ``train(cfg, train_ds, proposals, progress, backbone=backbone, **kwargs)``
    then cached (atomic save).

    No notebook: ``load_or_train_rcnn`` and ``load_or_train_sppnet`` (notebooks 03 and 05) are
    it for each system.

    The cache key covers the config, the dataset, a digest of the proposals, the starting
    weights (``backbone``, or "pretrained" for :func:`~fastrcnn_lite.pretrain.pretrained_backbone`)
    and ``kwargs``, so a changed setting never loads a stale model. ``info["from_cache"]`` (and
    ``info["loaded"]``, 0/1) says which happened; the train times are those measured when it was
    trained; ``info`` has the keys of the detector contract (:meth:`SVMDetector.contract_info`).
    The detector is on the CPU, in eval mode.
    """
    weights = module_digest(backbone.body, backbone.fc) if backbone is not None else "pretrained"
    path = cache_path(cfg, detector.name.lower().replace("-", ""), data=dataset_key(train_ds),
                      proposals=proposals_digest(proposals), version=3, backbone=weights, **kwargs)  # fmt: skip
    if path.is_file():
        model = detector.from_state_dict(cfg, load_checkpoint(path))
        model.contract_info(from_cache=True)
        return model.eval()
    model = train(cfg, train_ds, proposals, progress, backbone=backbone, **kwargs)
    atomic_save(model.state_dict(), path)
    model.contract_info(from_cache=False)
    return model.eval()
