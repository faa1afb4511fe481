"""Which dataset a configuration means: the embedded default or real PASCAL VOC.

Data-flow stage: **image**. One function turns a :class:`~fastrcnn_lite.config.Config` into the
train and test :class:`~fastrcnn_lite.voc.VOCDataset` objects, so every notebook and command
opens its data the same way. The embedded dataset is generated on first use.
"""

from __future__ import annotations

from .config import Config, resolve_path
from .voc import VOC_CLASSES, VOCDataset

__all__ = ["load_datasets", "dataset_classes"]


def dataset_classes(cfg: Config) -> tuple[str, ...]:
    """The class names of the dataset ``cfg`` points to (label i + 1 = classes[i])."""
    from . import embedded

    return embedded.CLASSES if _is_embedded(cfg) else VOC_CLASSES


def _is_embedded(cfg: Config) -> bool:
    return resolve_path(cfg.data_root) == resolve_path(Config.embedded().data_root)


def load_datasets(cfg: Config) -> tuple[VOCDataset, VOCDataset]:
    """``(train, test)`` datasets for ``cfg``: ``cfg.train_set`` and ``cfg.test_set`` of VOC<cfg.year>.

    For the embedded profile the dataset is generated under ``cfg.data_root`` if it is missing.
    """
    if _is_embedded(cfg):
        from . import embedded

        root = embedded.ensure_embedded(cfg)
        classes = embedded.CLASSES
    else:
        root = resolve_path(cfg.data_root)
        classes = VOC_CLASSES
    return VOCDataset(root, cfg.year, cfg.train_set, classes), VOCDataset(
        root, cfg.year, cfg.test_set, classes
    )
