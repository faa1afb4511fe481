"""nbgrader, the optional instructor route, grades notebook 00 end to end in a scratch course.

``tools/make_student.py --nbgrader-source`` adds nbgrader's cell metadata on the fly (the committed
notebooks carry none); ``nbgrader generate_assignment`` must then hand out the same code cells as
``make student``, and ``nbgrader autograde`` must give a submission with the reference solutions
every registered point and the untouched release none. Skipped when nbgrader (the
``instructors`` extra, which ``make test`` installs) is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from fastrcnn_lite.teaching.grading import EXERCISES

from . import student_tool
from .helpers import REPO

pytest.importorskip(
    "nbgrader",
    reason="nbgrader is the instructors extra: pip install -e '.[instructors]' (make test does)",
)
from nbgrader.api import Gradebook  # noqa: E402

make_student = student_tool.load()
NOTEBOOK = REPO / "notebooks" / "00_data_and_boxes.ipynb"
CONFIG = """\
c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "fastrcnn-lite"
c.CourseDirectory.db_url = {db!r}
c.ExecutePreprocessor.timeout = 900
"""


def run(command: list[str], course: Path) -> str:
    env = dict(os.environ)
    # nbgrader runs `alembic` from PATH: put this environment's scripts first.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["JUPYTER_CONFIG_DIR"] = str(course.parent / "jupyter-config")  # no user config
    env.setdefault("FASTRCNN_HOME", str(REPO))  # the course folder is outside the repository
    done = subprocess.run(
        command, cwd=course, env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_nbgrader_generates_and_autogrades_notebook_00(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    db = f"sqlite:///{course / 'gradebook.db'}"
    (course / "nbgrader_config.py").write_text(CONFIG.format(root=str(course), db=db))
    source = course / "source" / "ps00"
    run(
        [sys.executable, str(REPO / "tools" / "make_student.py"), "--nbgrader-source", str(source)]
        + [str(NOTEBOOK)],
        course,
    )
    run([sys.executable, "-m", "nbgrader", "generate_assignment", "ps00", "--force"], course)

    # nbgrader hands out the same code cells as `make student`.
    committed = nbformat.read(NOTEBOOK, as_version=4)
    released = nbformat.read(course / "release" / "ps00" / NOTEBOOK.name, as_version=4)
    ours = make_student.student_notebook(committed, NOTEBOOK.name)
    code = [c.source for c in released.cells if c.cell_type == "code"]
    assert code == [c.source for c in ours.cells if c.cell_type == "code"]

    # Two submissions: alice puts every reference solution back, bob hands in the release.
    exercises = make_student.find_exercises(committed, NOTEBOOK.name)
    assert exercises, "notebook 00 has no exercise"
    solved = nbformat.read(course / "release" / "ps00" / NOTEBOOK.name, as_version=4)
    sources = nbformat.read(source / NOTEBOOK.name, as_version=4)
    for cell, reference in zip(solved.cells, sources.cells, strict=True):
        if cell.cell_type == "code" and make_student.STUB.search(cell.source):
            cell.source = make_student.restore_solutions(cell.source, reference.source)
    for student, nb in (("alice", solved), ("bob", released)):
        (course / "submitted" / student / "ps00").mkdir(parents=True)
        nbformat.write(nb, course / "submitted" / student / "ps00" / NOTEBOOK.name)
    run([sys.executable, "-m", "nbgrader", "autograde", "ps00"], course)

    total = sum(EXERCISES[ex.grader].points for ex in exercises)
    with Gradebook(db) as gradebook:
        alice = gradebook.find_submission("ps00", "alice")
        bob = gradebook.find_submission("ps00", "bob")
        assert (alice.score, alice.max_score) == (total, total)
        assert (bob.score, bob.max_score) == (0, total)
        graded = {
            grade.name: grade.auto_score
            for grade in gradebook.find_submission_notebook(
                "00_data_and_boxes", "ps00", "alice"
            ).grades
        }
    assert graded == {ex.grader: EXERCISES[ex.grader].points for ex in exercises}
