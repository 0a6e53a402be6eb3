"""`python -m codit.workflow.guard -- COMMAND ...`: run COMMAND so that no process of it outlives
the process that started the guard.

A served judge (`vllm serve`) or a vLLM engine starts processes of its own (vLLM's engine core,
its workers, multiprocessing's resource tracker). Killing the server's leader when the job dies
(PR_SET_PDEATHSIG) does not end them: a parent's death signal is not inherited, and vLLM's
engine core outlives its API server. So the job starts this guard as the leader of a process
group of its own (`start_new_session=True`); the guard starts COMMAND in that group, which
every process COMMAND starts inherits, and

- when the process that started it dies (its parent changes: even a SIGKILLed job), it ends
  the whole group: SIGTERM, then SIGKILL after GRACE_SECONDS;
- when COMMAND exits, it ends what COMMAND left in the group and exits with COMMAND's status;
- it ignores SIGTERM itself: a caller that stops the group (judge_server.stop: SIGTERM to the
  group, then SIGKILL) waits on the guard, which exits once COMMAND has, not before.

Standard library only, and stdin, stdout and stderr pass straight to COMMAND: the guard writes
nothing to them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

GRACE_SECONDS = 10.0
POLL_SECONDS = 0.2


def guarded(command: list[str]) -> list[str]:
    """`command` run under the guard (start it with `start_new_session=True`)."""
    return [sys.executable, "-m", "codit.workflow.guard", "--", *command]


def end_group(group: int, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM every process of `group` (the guard ignores it), then SIGKILL those left after
    `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _others(group):
        time.sleep(POLL_SECONDS)
    for pid in _others(group):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _others(group: int) -> list[int]:
    """The live processes of `group` but the guard (Linux: /proc; elsewhere none known)."""
    members = []
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else []:
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the command's closing parenthesis: state, ppid, pgrp, ...
            if int(fields[2]) == group and fields[0] != "Z" and int(entry.name) != os.getpid():
                members.append(int(entry.name))
    return members


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: python -m codit.workflow.guard -- COMMAND [ARGS ...]", file=sys.stderr)
        return 2
    command = argv[argv.index("--") + 1 :]
    parent, group = os.getppid(), os.getpgrp()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # COMMAND gets the default SIGTERM back (ignored signals are inherited across exec).
    child = subprocess.Popen(
        command, preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)
    )
    while True:
        try:
            status = child.wait(timeout=POLL_SECONDS)
            break
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:  # the job that started us is gone
                end_group(group)
                return 1
    end_group(group)  # what COMMAND left behind
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
