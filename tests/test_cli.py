"""fastrcnn_lite.cli: user errors end in one line and exit status 2; bugs keep their traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from fastrcnn_lite import cli


def _run_snippet(body: str) -> subprocess.CompletedProcess:
    code = (
        textwrap.dedent(
            """
        from fastrcnn_lite.cli import UserError, run

        def main(argv=None):
        """
        )
        + textwrap.indent(textwrap.dedent(body), "    ")
        + "\nrun(main, prog='tool')\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_user_error_is_a_value_error():
    assert issubclass(cli.UserError, ValueError)


def test_call_user_error_prints_one_line_and_returns_2(capsys):
    def main(argv=None):
        raise cli.UserError("results file runs/x.txt is missing; run detect first")

    assert cli.call(main, [], prog="tool") == 2
    err = capsys.readouterr().err
    assert err == "tool: error: results file runs/x.txt is missing; run detect first\n"


def test_call_file_not_found_names_the_file(capsys, tmp_path):
    missing = tmp_path / "nope.txt"

    def main(argv=None):
        missing.read_text()

    assert cli.call(main, [], prog="tool") == 2
    assert capsys.readouterr().err == f"tool: error: No such file or directory: {missing}\n"


def test_call_multiline_message_becomes_one_line(capsys):
    def main(argv=None):
        raise cli.UserError("first line\n  second line")

    assert cli.call(main, [], prog="tool") == 2
    assert capsys.readouterr().err == "tool: error: first line second line\n"


def test_call_programming_error_propagates():
    def main(argv=None):
        raise IndexError("list index out of range")

    with pytest.raises(IndexError, match="out of range"):
        cli.call(main, [], prog="tool")


def test_call_plain_value_error_is_not_swallowed():
    """A ValueError that is not a UserError comes from code (torch, a bug): keep its traceback."""

    def main(argv=None):
        raise ValueError("bad internal state")

    with pytest.raises(ValueError, match="bad internal state"):
        cli.call(main, [], prog="tool")


def test_call_status_passthrough():
    assert cli.call(lambda argv=None: None, []) == 0
    assert cli.call(lambda argv=None: 3, []) == 3


def test_call_keyboard_interrupt(capsys):
    def main(argv=None):
        raise KeyboardInterrupt

    assert cli.call(main, [], prog="tool") == 130
    assert capsys.readouterr().err == "tool: interrupted\n"


def test_traceback_variable_shows_user_errors(monkeypatch):
    monkeypatch.setenv("FASTRCNN_TRACEBACK", "1")

    def main(argv=None):
        raise cli.UserError("shown with its traceback")

    with pytest.raises(cli.UserError):
        cli.call(main, [], prog="tool")


def test_run_in_a_process_user_error_has_no_traceback():
    proc = _run_snippet('raise UserError("checkpoint runs/a/checkpoint.pt is damaged")')
    assert proc.returncode == 2
    assert proc.stderr == "tool: error: checkpoint runs/a/checkpoint.pt is damaged\n"
    assert "Traceback" not in proc.stderr


def test_run_in_a_process_bug_keeps_traceback():
    proc = _run_snippet("return [][1]")
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "IndexError" in proc.stderr


@pytest.mark.parametrize(
    "module, args, message",
    [
        (
            "evaluate",
            ["--voc-root", "{tmp}/nowhere", "--results", "{tmp}", "--no-progress"],
            "No VOCdevkit tree at",
        ),
        (
            "proposals",
            ["--profile", "full", "--data-root", "{tmp}/nowhere", "--workers", "0"],
            "No VOCdevkit tree at",
        ),
        (
            "download",
            ["--root", "{tmp}", "--year", "2012", "--image-sets", "test"],
            "No VOC archive",
        ),
        ("embedded", ["--root", "{tmp}/emb", "--num-trainval", "1"], "num_trainval must be an int"),
    ],
)
def test_every_command_ends_a_user_error_in_one_line(tmp_path, module, args, message):
    from .helpers import REPO

    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", f"fastrcnn_lite.{module}", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [
        line for line in proc.stderr.splitlines() if "fastrcnn_lite" in line or "Error" in line
    ]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"python -m fastrcnn_lite.{module}: error: ")
    assert message in lines[0]
