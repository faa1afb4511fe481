"""The command ``python -m fastrcnn_lite.download``: get PASCAL VOC 2007 or 2012.

Data-flow stage: **image** (getting the data); what happens to each archive is in
:mod:`fastrcnn_lite.download`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .config import Config, resolve_path
from .download import DEFAULT_IMAGE_SETS, download_voc

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fastrcnn_lite.download``: get PASCAL VOC 2007 or 2012.

    No notebook: the command ``make voc`` runs (notebook 00 shows it; notebook 08 calls
    :func:`download_voc` itself).
    """
    parser = argparse.ArgumentParser(
        prog="python -m fastrcnn_lite.download",
        description="Download PASCAL VOC (md5-checked, resumable) into <root>/VOCdevkit/VOC<year>.",
    )
    parser.add_argument(
        "--root",
        help=f"folder for VOCdevkit/ and downloads/ (default: {Config().data_root} in the project folder)",
    )
    parser.add_argument("--year", choices=sorted(DEFAULT_IMAGE_SETS), default="2007")
    parser.add_argument(
        "--image-sets", nargs="+", help="default: trainval test (2007), trainval (2012)"
    )
    parser.add_argument(
        "--delete-archives", action="store_true", help="delete the .tar files after extraction"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    root = Path(args.root) if args.root else resolve_path(Config().data_root)
    folder = download_voc(
        root,
        args.year,
        args.image_sets,
        progress=not args.no_progress,
        keep_archives=not args.delete_archives,
    )
    print(f"PASCAL VOC {args.year} is in {folder.resolve()}")
    print(f"Load it with VOCDataset({str(root)!r}, year={args.year!r}, image_set='trainval').")
    return 0


if __name__ == "__main__":
    from fastrcnn_lite.cli import run

    run(main)
