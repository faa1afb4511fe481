"""Execute notebooks in place (embedded profile) and clean their metadata for diffable commits.

    .venv/bin/python tools/execute_notebooks.py notebooks/04_roi_pooling.ipynb   # one
    .venv/bin/python tools/execute_notebooks.py                                  # all, in order
    .venv/bin/python tools/execute_notebooks.py --clean-only notebooks/*.ipynb   # metadata only

The saved outputs are what nbval compares in ``make test``; re-run this after changing package
code a notebook uses. ``make course`` does not use this script: it executes copies into reports/.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

ROOT = Path(__file__).resolve().parents[1]


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop execution metadata, widget state and machine paths; keep outputs and counts."""
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb


def execute(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("FASTRCNN_PROFILE", "embedded")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # kernels: idle threads sleep ...
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")  # ... after spinning ~0.1 ms (conftest.py)
    # Notebook 07 saves the comparison report; only `make course` writes it into reports/.
    if not os.environ.get("FASTRCNN_REPORTS"):
        os.environ["FASTRCNN_REPORTS"] = tempfile.mkdtemp(prefix="fastrcnn-reports-")
    start = time.perf_counter()
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(path.parent)}}
    )
    seconds = time.perf_counter() - start
    nbformat.write(clean(nb), path)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument(
        "--clean-only", action="store_true", help="only clean metadata, do not execute"
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        if args.clean_only:
            nbformat.write(clean(nbformat.read(path, as_version=4)), path)
            print(f"cleaned {path}")
            continue
        print(f"executing {path} ...", flush=True)
        print(f"  done in {execute(path.resolve(), args.timeout):.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
