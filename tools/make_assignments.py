"""Student versions of the notebooks, for instructors: `make assignments`.

Exercise cells carry nbgrader's markers::

    ### BEGIN SOLUTION
    ...the reference answer...
    ### END SOLUTION

This script writes assignments/<notebook>.ipynb with every marked block replaced by
``# YOUR CODE HERE`` and ``raise NotImplementedError()``, and every output cleared, so students
start from a clean notebook whose grader cells (``grading.check_*``) fail until they answer.
Instructors who prefer nbgrader (``pip install -e .[instructors]``) can use the same markers with
``nbgrader generate_assignment``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(
    r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*$",
    re.MULTILINE | re.DOTALL,
)


def strip_solutions(source: str) -> tuple[str, int]:
    """Replace each solution block, keeping its indentation; returns (new source, blocks replaced)."""
    return BLOCK.subn(
        lambda m: f"{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError()", source
    )


def make_student_version(path: Path, out_dir: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    total = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source, n = strip_solutions(cell.source)
            total += n
            cell.outputs, cell.execution_count = [], None
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "assignments")
    args = parser.parse_args()
    for path in args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        n = make_student_version(path, args.out)
        print(f"{args.out / path.name}: {n} solution block(s) removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
