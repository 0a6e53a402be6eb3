"""Deterministic fault injection: kill this very process at a named point of a stage.

Tests set CODIT_FAULT="<point>:<n>" to have the process send itself SIGKILL the n-th time it
reaches `fault_point("<point>")` (n >= 1), which is exactly what a pre-empted job or an OOM
kill does: no cleanup, no exception handlers, buffers not flushed. Unset, a call costs one
environment lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

FAULT_VARIABLE = "CODIT_FAULT"
_hits: Counter[str] = Counter()


def fault_point(point: str) -> None:
    """SIGKILL this process if CODIT_FAULT names this point and this is the chosen hit."""
    wanted = os.environ.get(FAULT_VARIABLE)
    if not wanted:
        return
    name, _, count = wanted.rpartition(":")
    if name != point:
        return
    _hits[point] += 1
    if _hits[point] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)
