"""Committed notebooks are clean, complete and follow the course's structure.

nbval (in `make test`) re-runs each notebook and compares outputs; these checks cover what it
does not: metadata noise, outputs actually stored, and the goal / summary / exercises structure.
"""

import json

import pytest

from .helpers import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean_and_complete(path):
    nb = json.loads(path.read_text())
    assert set(nb["metadata"]) <= {"kernelspec", "language_info"}, (
        "run tools/execute_notebooks.py to clean metadata"
    )
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] is not None for c in code), (
        "commit notebooks executed (nbval needs counts)"
    )
    assert not any(o.get("output_type") == "error" for c in code for o in c["outputs"]), (
        "a stored output is an error"
    )
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    for heading in ("Summary", "Exercises"):
        assert f"## {heading}" in text, f"missing a '## {heading}' section"
    sources = "\n".join("".join(c["source"]) for c in code)
    assert "sys.path" not in sources and "!pip" not in sources and "%pip" not in sources


def test_every_notebook_is_listed_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"`{path.stem}`" in readme, f"{path.stem} missing from the README's notebook table"
