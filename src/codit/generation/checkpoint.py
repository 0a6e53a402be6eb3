"""Append-only checkpoint of a generation shard: finished batches survive any kill.

Layout (JSON lines): a header `{"codit_checkpoint": 1, "settings": {...}}`, then one line per
record `{"batch": k, "batch_records": n, "record": {...}}`. A batch is appended, flushed and
fsynced before the next one starts, so after a kill the file holds whole batches followed by
at most one torn batch; `load` keeps the whole batches, truncates the rest and returns them. A
checkpoint written with other settings is discarded: its records would differ from this run's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from codit.workflow.faults import fault_point

CHECKPOINT_VERSION = 1


def checkpoint_path(output: str | Path) -> Path:
    """`shards/000-of-004.jsonl` -> `shards/000-of-004.jsonl.checkpoint`."""
    output = Path(output)
    return output.with_name(output.name + ".checkpoint")


class ShardCheckpoint:
    """Completed batches of one shard, keyed by batch number, on disk as they complete."""

    def __init__(self, path: str | Path, settings: dict[str, Any]) -> None:
        self.path = Path(path)
        # A JSON round trip, so the header compares equal to one read back from disk.
        self.settings = json.loads(json.dumps(settings))

    def load(self) -> dict[int, list[dict[str, Any]]]:
        """Whole batches already written with these settings; starts a fresh file otherwise."""
        if not self.path.exists():
            self._start()
            return {}
        data = self.path.read_bytes()
        lines, offset = [], 0
        for raw in data.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break  # a line torn by the kill
            try:
                lines.append((json.loads(raw), offset + len(raw)))
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            offset += len(raw)
        if not lines or lines[0][0] != self._header():
            reason = "was written with other settings" if lines else "has no header"
            message = f"codit generate: checkpoint {self.path} {reason}; starting over"
            print(message, file=sys.stderr)
            self._start()
            return {}
        kept_until = lines[0][1]
        batches: dict[int, list[dict[str, Any]]] = {}
        current: list[dict[str, Any]] = []
        for entry, end in lines[1:]:
            current.append(entry)
            if len(current) == entry["batch_records"]:
                if {item["batch"] for item in current} != {entry["batch"]}:
                    break  # interleaved batches: not something `append` writes
                batches[entry["batch"]] = [item["record"] for item in current]
                current, kept_until = [], end
        if kept_until < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(kept_until)
        return batches

    def append(self, batch: int, records: list[dict[str, Any]]) -> None:
        """Add one finished batch (flushed and fsynced before returning)."""
        payload = "".join(
            json.dumps({"batch": batch, "batch_records": len(records), "record": record}) + "\n"
            for record in records
        ).encode()
        with open(self.path, "ab") as handle:
            middle = len(payload) // 2
            handle.write(payload[:middle])
            handle.flush()
            fault_point("checkpoint.mid_write")  # tests kill here to tear a batch in half
            handle.write(payload[middle:])
            handle.flush()
            os.fsync(handle.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _header(self) -> dict[str, Any]:
        return {"codit_checkpoint": CHECKPOINT_VERSION, "settings": self.settings}

    def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w") as handle:
            handle.write(json.dumps(self._header()) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
