"""Fixtures shared by the unit tests (the process-wide set-up is the repository's conftest.py)."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one torch thread beats two, by far on a busy machine.

    A test module asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
