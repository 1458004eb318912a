"""Shared test set-up."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def prepared_data_cache(tmp_path_factory):
    """Corpora prepared on the fly go to a folder of the test session, not to ~/.cache/attnlab."""
    import os

    folder = tmp_path_factory.mktemp("attnlab-cache")
    old = os.environ.get("ATTNLAB_CACHE")
    os.environ["ATTNLAB_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("ATTNLAB_CACHE", None)
    else:
        os.environ["ATTNLAB_CACHE"] = old


@pytest.fixture(autouse=True)
def one_thread():
    """Every test runs torch on one thread, and leaves it so for the next one.

    The test models are tiny: their many small kernels run faster on one thread than on two, and
    far faster than on two that fight other jobs for a shared machine's cores. Restoring after each
    test also undoes any ``--threads`` a CLI test passed.
    """
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)
