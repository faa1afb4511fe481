"""fastrcnn_lite.progress: plain tqdm in a terminal; in a notebook a bar that leaves a final line.

The notebook case runs a real kernel (nbclient, as `make course` and tools/execute_notebooks.py
do) and reads what the saved notebook keeps.
"""

import io
import re

import nbformat
import pytest
import tqdm.std

from fastrcnn_lite import progress


def test_terminal_gets_plain_tqdm():
    assert issubclass(progress.tqdm, tqdm.std.tqdm)
    assert not issubclass(progress.tqdm, __import__("tqdm.notebook").notebook.tqdm_notebook)
    out = io.StringIO()
    for _ in progress.tqdm(range(3), desc="train", file=out, mininterval=0):
        pass
    assert re.search(r"train: 100%\|\S+\| 3/3 \[", out.getvalue())  # tqdm's own meter


def test_final_line():
    bar = tqdm.std.tqdm(total=1500, desc="train", file=io.StringIO())
    bar.update(1500)
    assert re.fullmatch(r"train: 100% 1500/1500 in \d\d:\d\d", progress.final_line(bar))
    bar = tqdm.std.tqdm(total=10, file=io.StringIO())
    bar.update(3)
    assert re.fullmatch(r"30% 3/10 in \d\d:\d\d", progress.final_line(bar))
    bar = tqdm.std.tqdm(desc="read", file=io.StringIO())
    bar.update(7)
    assert re.fullmatch(r"read: 7 it in \d\d:\d\d", progress.final_line(bar))


def test_notebook_bar_leaves_a_final_line():
    pytest.importorskip("ipywidgets")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from fastrcnn_lite.progress import tqdm\n"
            "for _ in tqdm(range(4), desc='train'):\n    pass"
        ),
        nbformat.v4.new_code_cell(
            "bar = tqdm(range(10), desc='early')\n"
            "for i in bar:\n    if i == 3:\n        break\n"
            "bar.close()\nimport tqdm.notebook\nprint(isinstance(bar, tqdm.notebook.tqdm_notebook))"
        ),
    ]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    first, second = (cell.outputs for cell in nb.cells)
    assert len(first) == 1 and set(first[0].data) == {"text/plain"}  # no widget left behind
    assert re.fullmatch(r"train: 100% 4/4 in \d\d:\d\d", first[0].data["text/plain"])
    assert re.fullmatch(r"early: 30% 3/10 in \d\d:\d\d", second[0].data["text/plain"])
    assert second[1].text.strip() == "True"  # it was the notebook's widget bar
