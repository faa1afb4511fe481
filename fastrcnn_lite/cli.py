"""One way for every command-line tool to report a user's mistake: one line, exit status 2.

Data-flow stage: none (the shell around every stage). A command such as
``python -m fastrcnn_lite.evaluate`` ends its module with::

    if __name__ == "__main__":
        from .cli import run

        run(main)

and raises :class:`UserError` (a :class:`ValueError`, so ``except ValueError`` and the tests'
``pytest.raises(ValueError, ...)`` keep working) where what the user gave is wrong: a missing
results file, a damaged checkpoint, a split that is not there. :func:`run` turns such an error,
and the operating system's own ``FileNotFoundError``/``PermissionError``/... on a path the user
gave, into one line on stderr in argparse's form ``prog: error: <message>`` and exit status 2,
with no Python traceback. Any other exception is a bug in the course's code and keeps its full
traceback (exit status 1), so it can be reported and fixed. Ctrl-C prints ``prog: interrupted``
and exits with 130 (what a shell reports for SIGINT).

Set ``FASTRCNN_TRACEBACK=1`` to see the traceback of a user error as well (for debugging).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

__all__ = ["UserError", "is_user_error", "format_error", "call", "run", "prog_name"]

# OS errors about a path the user gave; any other OSError is reported with its traceback.
_USER_OS_ERRORS = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    FileExistsError,
)
_USER_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}  # disk full / quota


class UserError(ValueError):
    """What the user gave (a path, a file's content, an option) is wrong; not a bug.

    No notebook: the commands and the checks of files and options they run.

    The message must say what was expected, what came and the likely fix, and name the file
    (and the field) when a file is at fault. Command-line tools print it as one line.
    """


def is_user_error(error: BaseException) -> bool:
    """True for errors :func:`run` reports in one line (user errors), False for bugs.

    No notebook: every command's ``if __name__ == "__main__":`` block (through :func:`run`).
    """
    if isinstance(error, UserError):
        return True
    if isinstance(error, _USER_OS_ERRORS):
        return True
    return isinstance(error, OSError) and error.errno in _USER_ERRNOS


def format_error(error: BaseException) -> str:
    """The one-line text of a user error (an OS error names its file: ``strerror: filename``).

    No notebook: every command's ``if __name__ == "__main__":`` block (through :func:`run`).
    """
    if isinstance(error, OSError) and not isinstance(error, UserError) and error.strerror:
        text = error.strerror
        if error.filename is not None:
            text += f": {os.fsdecode(error.filename)}"
        if getattr(error, "filename2", None) is not None:
            text += f" -> {os.fsdecode(error.filename2)}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())  # one line, whatever the message held


def prog_name() -> str:
    """``python -m <module>`` for the running module, else the script's name.

    No notebook: every command's ``if __name__ == "__main__":`` block (through :func:`run`).
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        name = spec.name.removesuffix(".__main__")
        return f"python -m {name}"
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "fastrcnn_lite"


def call(
    main: Callable[..., int | None],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
) -> int:
    """Run ``main(argv)`` and return its exit status; a user error prints one line and gives 2.

    No notebook: every command's ``if __name__ == "__main__":`` block (through :func:`run`).

    Args:
        main: a command's ``main(argv=None) -> int | None``.
        argv: the arguments (``None``: ``main`` reads ``sys.argv``).
        prog: the name printed before ``: error:`` (default: ``python -m <module>``).

    Returns:
        ``main``'s status (``None`` counts as 0), 2 after a user error, 130 after Ctrl-C.
        argparse's own ``SystemExit`` passes through unchanged; any other exception propagates
        with its traceback.
    """
    prog = prog or prog_name()
    try:
        status = main() if argv is None else main(list(argv))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if not is_user_error(e) or os.environ.get("FASTRCNN_TRACEBACK"):
            raise
        print(f"{prog}: error: {format_error(e)}", file=sys.stderr)
        return 2
    return 0 if status is None else int(status)


def run(
    main: Callable[..., int | None],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
) -> NoReturn:
    """``sys.exit(call(main, argv))``: what every ``if __name__ == "__main__":`` block calls.

    No notebook: every command (``python -m fastrcnn_lite.<module>``).
    """
    sys.exit(call(main, argv, prog=prog))
