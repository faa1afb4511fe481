"""tools/make_student.py loaded as a module (tools/ is not a package) for the tests that use it."""

import importlib.util
import sys

from .helpers import REPO


def load() -> object:
    """The ``make_student`` module, loaded once."""
    if "make_student" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "make_student", REPO / "tools" / "make_student.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["make_student"] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules["make_student"]
