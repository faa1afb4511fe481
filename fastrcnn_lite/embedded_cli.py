"""The command that writes the embedded dataset: ``python -m fastrcnn_lite.embedded``.

Data-flow stage: **image** (the shell around ``embedded_files.generate``). It writes the
VOCdevkit tree under ``--root`` (``make data`` runs it with ``--root data/embedded``), prints the
split sizes and object counts, and with ``--figure PNG`` saves the first 8 trainval images with
their boxes (``teaching.data_plots.save_samples_figure``, the README's picture)::

    python -m fastrcnn_lite.embedded --root data/embedded            # 400 trainval + 200 test
    python -m fastrcnn_lite.embedded --root /tmp/emb --seed 1 --figure /tmp/emb.png
"""

from __future__ import annotations

import argparse
import time

from .config import resolve_path
from .embedded_files import generate, read_manifest
from .teaching.data_plots import save_samples_figure

__all__ = ["main"]

# The first line of embedded.py's docstring before the split (the --help text is unchanged).
DESCRIPTION = (
    "The embedded dataset: a synthetic detection set the package writes itself, in the VOC layout."
)


def main(argv: list[str] | None = None) -> int:
    """``python -m fastrcnn_lite.embedded --root data/embedded [--seed 0] [--num-trainval n] [--num-test n]``.

    No notebook: the command ``make data`` runs (notebook 00's exercises run it with another seed).
    """
    parser = argparse.ArgumentParser(
        prog="python -m fastrcnn_lite.embedded", description=DESCRIPTION
    )
    parser.add_argument(
        "--root",
        default="data/embedded",
        help="folder that will hold VOCdevkit/ (default data/embedded)",
    )
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument(
        "--num-trainval", type=int, default=400, help="trainval images (default 400)"
    )
    parser.add_argument("--num-test", type=int, default=200, help="test images (default 200)")
    parser.add_argument("--year", default="2007", help="VOC<year> folder name (default 2007)")
    parser.add_argument(
        "--figure", metavar="PNG", help="also save the first 8 trainval images with their boxes"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    root = generate(
        resolve_path(args.root),
        args.seed,
        args.num_trainval,
        args.num_test,
        args.year,
        progress=True,
    )
    seconds = time.perf_counter() - start
    vdir = root / "VOCdevkit" / f"VOC{args.year}"
    print(f"wrote {vdir} in {seconds:.1f} s (seed {args.seed})")
    for split in ("trainval", "train", "val", "test"):
        print(
            f"  ImageSets/Main/{split}.txt: {len((vdir / 'ImageSets' / 'Main' / f'{split}.txt').read_text().split())} images"
        )
    stats = read_manifest(root, args.year)["stats"]
    print(
        f"  {stats['objects']} objects: {stats['difficult']} difficult, {stats['occluded']} occluded, "
        f"{stats['truncated']} truncated"
    )
    print(
        f"load it with VOCDataset({str(root)!r}, {args.year!r}, 'trainval', classes=embedded.CLASSES)"
    )
    if args.figure:
        save_samples_figure(root, args.figure, year=args.year)
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    from fastrcnn_lite.cli import run

    run(main)
