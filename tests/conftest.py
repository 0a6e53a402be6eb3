"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tinyworld_cache
import torch
import warm_runtime

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel workers share the machine's cores: one torch thread each, no oversubscription.
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread (and the machine's 2 cores are shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tinyworld_build() -> Path:
    """The default tiny world, built once by the workflow's rules (tests/tinyworld_cache.py);
    copy it with `tinyworld_cache.copy_into(tinyworld_build, workdir)` rather than writing into
    it."""
    return tinyworld_cache.built()


@pytest.fixture(scope="session")
def trained_judge(tinyworld_build) -> Path:
    """A judge trained briefly on the shared tiny world (tinyworld_cache.trained_judge): its
    folder, shared by every test and test worker; read it, never write into it."""
    return tinyworld_cache.trained_judge(tinyworld_build)


@pytest.fixture()
def warm_directory() -> Path:
    """A private CODIT_WARM_DIR whose servers are stopped after the test (tests/warm_runtime.py)."""
    with warm_runtime.private_runtime() as directory:
        yield directory
