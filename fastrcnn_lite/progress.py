"""Progress bars for long work: the one place the package chooses how they look.

Data-flow stage: none (shared helper). Every loop that can take seconds wraps its iterable in
:func:`tqdm` from here, so notebooks, the command line and saved notebooks all get the same bar.
"""

from __future__ import annotations

from tqdm.auto import tqdm

__all__ = ["tqdm"]
