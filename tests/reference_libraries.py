"""The benchmarks' own code, imported in tests to check ours against it (alpaca-eval and fschat
are dev dependencies), and the real benchmark data the conformance tests read."""

from __future__ import annotations

import importlib.metadata
import os
import sys
import types
from pathlib import Path

import pytest

# Real data from the benchmarks' public repositories (each file names its source). It lives
# beside the project, never in it; CODIT_SHARED_DATA points elsewhere (a fresh clone in /tmp).
SHARED_DATA = Path(
    os.environ.get("CODIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def shared_data(relative: str) -> Path:
    """A file or folder of the shared real data; the test is skipped, naming the folder, where
    it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(
            f"real benchmark data {path} is absent (the shared data folder {SHARED_DATA}; set "
            "CODIT_SHARED_DATA to where it is)"
        )
    return path


def import_alpaca_eval() -> types.ModuleType:
    """alpaca_eval; its utils import pkg_resources (gone from setuptools >= 82) for the two
    version helpers parse_version and get_distribution: a stand-in provides them."""
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            from packaging.version import Version

            stand_in = types.ModuleType("pkg_resources")
            stand_in.parse_version = Version
            stand_in.get_distribution = lambda name: types.SimpleNamespace(
                version=importlib.metadata.version(name)
            )
            sys.modules["pkg_resources"] = stand_in
    import alpaca_eval

    return alpaca_eval
