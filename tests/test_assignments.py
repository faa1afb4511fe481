"""The student-version generator removes solutions (keeping indentation) and clears outputs."""

import importlib.util

import nbformat

from .helpers import REPO

spec = importlib.util.spec_from_file_location(
    "make_assignments", REPO / "tools" / "make_assignments.py"
)
make_assignments = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_assignments)


def test_strip_solutions_keeps_indentation_and_other_code():
    source = (
        "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\nprint(f(1))"
    )
    out, n = make_assignments.strip_solutions(source)
    assert n == 1
    assert out == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(f(1))"


def test_student_notebook_has_no_solutions_or_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\n")
    cell.outputs = [nbformat.v4.new_output("stream", text="42")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), cell]
    src = tmp_path / "00_x.ipynb"
    nbformat.write(nb, src)
    assert make_assignments.make_student_version(src, tmp_path / "out") == 1
    student = nbformat.read(tmp_path / "out" / "00_x.ipynb", as_version=4)
    assert "42" not in student.cells[1].source and student.cells[1].outputs == []
    assert "raise NotImplementedError()" in student.cells[1].source
