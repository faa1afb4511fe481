"""Progress bars for long work: the one place the package chooses how they look.

Data-flow stage: none (shared helper). Every loop that can take seconds wraps its iterable in
:func:`tqdm` from here, so notebooks, the command line and saved notebooks all get the same bar.

In a terminal (and in any process without a Jupyter kernel) this is plain ``tqdm``. In a
notebook it is tqdm's widget bar, with one change: when the bar closes, its output is replaced
(``update_display_data`` on the bar's display id) by one static line such as
``train: 100% 1500/1500 in 02:11``. A saved notebook therefore shows how the loop ended, not a
widget frozen at 0% that only a live kernel could draw.
"""

from __future__ import annotations

from tqdm.auto import tqdm as _auto_tqdm

__all__ = ["tqdm", "final_line"]


def final_line(bar) -> str:
    """The line a closed bar leaves behind: ``desc: 100% n/total in mm:ss`` (``desc: n it in
    mm:ss`` without a total; a bar stopped early shows the percentage it reached).

    No notebook: the progress bars' closing line (:func:`tqdm`).
    """
    d = dict(bar.format_dict)
    fmt = (
        "{percentage:.0f}% {n_fmt}/{total_fmt} in {elapsed}"
        if d["total"]
        else "{n_fmt} {unit} in {elapsed}"
    )
    d["bar_format"] = ("{desc}: " if d["prefix"] else "") + fmt
    d["prefix"] = d["prefix"] or ""
    line = bar.format_meter(**d)
    return line.replace(": : ", ": ")


def _notebook_class():
    """tqdm.auto's class when it is the notebook widget bar, else None."""
    try:
        from tqdm.notebook import tqdm_notebook
    except ImportError:  # pragma: no cover - tqdm always ships it
        return None
    return _auto_tqdm if issubclass(_auto_tqdm, tqdm_notebook) else None


_NOTEBOOK = _notebook_class()

if _NOTEBOOK is None:
    tqdm = _auto_tqdm  # a terminal, a script, a test: plain tqdm
else:
    from IPython.display import display as _display

    class tqdm(_NOTEBOOK):  # noqa: N801 - the name every module imports
        """tqdm's notebook bar that leaves a static final line in the saved notebook."""

        def __init__(self, *args, **kwargs):
            shown = kwargs.pop("display", True)
            super().__init__(*args, display=False, **kwargs)
            self._handle = None
            if shown and not self.disable and self.delay <= 0:
                self._handle = _display(self.container, display_id=True)
                self.displayed = True

        def close(self):
            if self.disable:
                return
            super().close()
            if self._handle is not None:
                self._handle.update({"text/plain": final_line(self)}, raw=True)
                self._handle = None
