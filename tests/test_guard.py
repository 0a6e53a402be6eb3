"""codit.workflow.guard: no process of a guarded command outlives the job that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_judge_server import alive

from codit.workflow.guard import guarded

# A command that leaves a process of its own behind (as vLLM's API server leaves its engine
# core): a background sleep, then a foreground one.
LEAVES_A_CHILD = ["sh", "-c", "sleep 300 & echo $! > {pid}; exec sleep {seconds}"]

JOB = """
import subprocess, sys
from codit.workflow.guard import guarded
process = subprocess.Popen(guarded(sys.argv[1:]), start_new_session=True)
print(process.pid, flush=True)
process.wait()
"""


def command(pid_file: Path, seconds: int) -> list[str]:
    return [part.format(pid=pid_file, seconds=seconds) for part in LEAVES_A_CHILD]


def wait_for(path: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    return int(path.read_text())


def gone(pid: int, timeout: float = 15.0) -> bool:
    """Whether `pid` ends (or is a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_sigkilled_job_takes_the_guarded_group_with_it(tmp_path):
    left = tmp_path / "left.pid"
    job = subprocess.Popen(
        [sys.executable, "-c", JOB, *command(left, 300)], stdout=subprocess.PIPE, text=True
    )
    guard = int(job.stdout.readline())
    background = wait_for(left)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert gone(background) and gone(guard)


def test_the_guard_exits_with_the_commands_status_and_ends_what_it_left(tmp_path):
    left = tmp_path / "left.pid"
    finished = subprocess.run(
        guarded(["sh", "-c", f"sleep 300 & echo $! > {left}; exit 3"]), start_new_session=True
    )
    assert finished.returncode == 3
    assert gone(wait_for(left), timeout=2.0)


def test_a_sigterm_to_the_group_waits_for_the_command(tmp_path):
    """judge_server.stop: SIGTERM to the group; the guard exits once the command has."""
    trap = "trap 'sleep 1; exit 0' TERM; while true; do sleep 0.1; done"
    process = subprocess.Popen(guarded(["sh", "-c", trap]), start_new_session=True)
    time.sleep(1.0)
    began = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert time.monotonic() - began >= 0.9  # it waited for the command's own shutdown
