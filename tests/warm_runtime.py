"""A private folder for warm servers (codit.workflow.warm) in tests, and what their logs say."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def private_runtime() -> Iterator[Path]:
    """A short folder (socket paths are limited to about 100 bytes) for CODIT_WARM_DIR; every
    server started in it is stopped afterwards, so none outlives the test."""
    directory = Path(tempfile.mkdtemp(prefix="cw-"))
    try:
        yield directory
    finally:
        for lock in directory.glob("*.lock"):
            pid = lock.read_text().strip()
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGTERM)
        shutil.rmtree(directory, ignore_errors=True)


def jobs_in(log: Path) -> list[tuple[int, str]]:
    """(pid, command line) of every job the server of `log` started."""
    text = log.read_text() if log.exists() else ""
    found = re.findall(r"job (\d+) started: (.*) \(in ", text)
    return [(int(pid), command) for pid, command in found]


def warm_jobs(directory: Path) -> list[tuple[int, str]]:
    """(pid, command line) of every job the servers in `directory` started."""
    return [job for log in sorted(directory.glob("*.log")) for job in jobs_in(log)]


def warm_outcomes(directory: Path) -> list[str]:
    """How each warm job ended: "exit N", "signal N" or "killed"."""
    found = []
    for log in sorted(directory.glob("*.log")):
        found += re.findall(r"job \d+: (exit \d+|signal \d+|killed)", log.read_text())
    return found
