"""One live Snakemake run per working directory, and no manual unlock after a crash.

Snakemake marks a directory as in use with lock files (`.snakemake/locks/`) that a run
removes when it ends. A run that is killed outright (SIGKILL, the OOM killer, a lost laptop)
leaves them behind, and every later run stops with a LockException until `snakemake
--unlock`. Lock files cannot say whether their owner still lives; a kernel file lock can:
the kernel releases it the moment its process dies, however it dies.

So every Snakemake process of this workflow takes `.snakemake/codit-run.lease` with flock:
- when it reads the Snakefile (before Snakemake checks its locks): if it gets the lease, no
  other Snakemake process of this workflow is alive in this directory, so any Snakemake lock
  files are a dead run's and are removed, as `--unlock` would (Snakemake's own check then
  passes); if it does not, the lock files are left alone and Snakemake's check decides (a dry
  run may look while a run works; a run that would write is refused);
- when a run starts its jobs (`onstart`, which dry runs skip): a run that has not got the
  lease waits a little for it (a dry run or listing holds it for seconds), then stops with a
  message naming the process that holds it. No run executes a job without the lease.
The lease file records its holder (pid, host, start, command) for those messages. flock
also works across machines on NFSv4 and Lustre, where a crashed host's locks expire.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import IO

LEASE = Path(".snakemake") / "codit-run.lease"
SNAKEMAKE_LOCKS = Path(".snakemake") / "locks"
START_WAIT_SECONDS = 30.0

_held: IO[str] | None = None  # this process's lease, kept open (and locked) until it exits


class DirectoryInUse(RuntimeError):
    """Another live Snakemake process of this workflow works in the same directory."""


def claim_when_read(directory: Path | str = ".") -> None:
    """Take the lease if it is free and remove a dead run's Snakemake locks; else say who
    holds it and leave everything as it is."""
    if _held is not None:
        return
    directory = Path(directory)
    lease = _open(directory)
    if not _try_lock(lease):
        holder = _holder(lease)
        lease.close()
        print(
            f"codit: {_in_use(directory, holder)} This one may look (a dry run), but a run "
            f"waits for it at most {START_WAIT_SECONDS:.0f} s and then stops: two runs must "
            "not share a directory.",
            file=sys.stderr,
        )
        return
    previous = _holder(lease)
    _hold(lease)
    locks = directory / SNAKEMAKE_LOCKS
    if locks.is_dir() and any(locks.iterdir()):
        shutil.rmtree(locks)
        print(
            f"codit: removed the Snakemake locks of a run that ended without removing them "
            f"({previous}); no other Snakemake is working in {directory.resolve()}.",
            file=sys.stderr,
        )


def claim_for_jobs(directory: Path | str = ".", wait: float = START_WAIT_SECONDS) -> None:
    """Hold the lease before any job runs: wait up to `wait` seconds for it, then stop."""
    if _held is not None:
        return
    lease = _open(Path(directory))
    deadline = time.monotonic() + wait
    while not _try_lock(lease):
        if time.monotonic() > deadline:
            holder = _holder(lease)
            lease.close()
            raise DirectoryInUse(
                f"{_in_use(Path(directory), holder)} Two runs must not share a directory: "
                "wait for it to end or stop it, then run this command again."
            )
        time.sleep(0.5)
    _hold(lease)


def _open(directory: Path) -> IO[str]:
    path = directory / LEASE
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a+")


def _try_lock(lease: IO[str]) -> bool:
    try:
        fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _hold(lease: IO[str]) -> None:
    """Keep the locked `lease` for this process's life, with this process as its holder."""
    global _held
    _record(lease)
    _held = lease


def _in_use(directory: Path, holder: str) -> str:
    return f"another Snakemake is working in {directory.resolve()}: {holder}."


def _record(lease: IO[str]) -> None:
    lease.seek(0)
    lease.truncate()
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv),
    }
    lease.write(json.dumps(holder) + "\n")
    lease.flush()


def _holder(lease: IO[str]) -> str:
    """Who holds (or last held) the lease, in words."""
    try:
        lease.seek(0)
        holder = json.loads(lease.read())
        return (
            f"pid {holder['pid']} on {holder['host']}, started {holder['started']}: "
            f"`{holder['command']}`"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that left no record"
