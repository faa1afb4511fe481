"""The command that computes and caches a split's selective-search proposals, then prints recall.

Data-flow stage: **proposals** (the shell around ``proposals.py`` and ``proposal_cache.py``). It
opens the profile's dataset, fills the proposal cache (one ``Tensor[P, 4]`` per image, see
:func:`~fastrcnn_lite.proposal_cache.load_proposals`) and prints a
:class:`~fastrcnn_lite.proposals.RecallTable` per split. Run it as::

    python -m fastrcnn_lite.proposals --profile embedded            # both splits, fast mode
    python -m fastrcnn_lite.proposals --profile full --mode quality --split test
    python -m fastrcnn_lite.proposals --data-root ../shared/data/voc07-micro --split test
"""

from __future__ import annotations

import argparse
import time

from .config import Config
from .data import dataset_root
from .proposal_cache import load_proposals, proposal_cache_dir
from .proposals import DEFAULT_TOP_N, MODES, proposal_recall
from .voc import VOCDataset, read_classes

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m fastrcnn_lite.proposals [--profile P] [--mode M] [--split S] [--data-root D]``.

    No notebook: the ``python -m fastrcnn_lite.proposals`` command (listed in the README).
    The worker processes run ``fastrcnn_lite.proposal_cache._compute_file``, never a function of
    ``__main__``, so the pool works however the command is started.
    """
    parser = argparse.ArgumentParser(
        description="Compute and cache selective-search proposals, then print their recall."
    )
    parser.add_argument(
        "--profile",
        choices=("embedded", "full"),
        default="embedded",
        help="Config.embedded() or Config()",
    )
    parser.add_argument(
        "--mode", choices=MODES, default=None, help="selective search mode (default: the profile's)"
    )
    parser.add_argument(
        "--split",
        default="all",
        help="trainval, test, ... or 'all' (the profile's train and test sets)",
    )
    parser.add_argument(
        "--data-root", default=None, help="a folder holding VOCdevkit/ (default: the profile's)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default: cfg.num_workers)"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="resize factor before selective search"
    )
    args = parser.parse_args(argv)

    cfg = Config.embedded() if args.profile == "embedded" else Config()
    if args.data_root is not None:
        cfg = cfg.replace(data_root=args.data_root)
    root = dataset_root(cfg)  # the embedded data is generated there if it is missing
    classes = read_classes(root, cfg.year)  # the dataset's own (classes.txt, else VOC's)
    splits = (cfg.train_set, cfg.test_set) if args.split == "all" else (args.split,)
    for split in splits:
        dataset = VOCDataset(root, cfg.year, split, classes)
        start = time.perf_counter()
        proposals = load_proposals(
            dataset, cfg, args.mode, scale=args.scale, num_workers=args.workers
        )
        seconds = time.perf_counter() - start
        folder = proposal_cache_dir(dataset, cfg, args.mode, scale=args.scale)
        size = (folder / "proposals.pt").stat().st_size
        print(
            f"{split}: {len(dataset)} images in {seconds:.1f} s; cache {folder} ({size / 2**20:.1f} MiB)"
        )
        targets = [dataset.load_target(i) for i in range(len(dataset))]
        top_n = tuple(n for n in DEFAULT_TOP_N if n <= cfg.proposals_per_image)
        print(proposal_recall(proposals, targets, top_n=top_n))
    return 0


if __name__ == "__main__":
    from fastrcnn_lite.cli import run

    run(main)
