"""Serving a judge for as long as one job needs it: start it, wait until it is healthy, stop
exactly it.

`served(command, log)` starts the server `command` (an argv list in which `{port}` becomes a
free port on 127.0.0.1) in a process group of its own, its output appended to `log`; polls
`GET http://127.0.0.1:{port}{health}` until it answers 200; yields a `Server` (the base URL of
its OpenAI-compatible API, `http://127.0.0.1:{port}/v1`, and its pid); and, however the job
leaves the block (return, exception, SIGTERM from Snakemake or SLURM through
`runtime.sigterm_exits`, Ctrl-C), sends SIGTERM to that process group, waits `grace` seconds
and SIGKILLs whatever is left. A job that is itself SIGKILLed takes the server with it
(PR_SET_PDEATHSIG). A server that exits before it is healthy, or is not healthy within
`startup_timeout`, is an error quoting the last lines of its log.

Servers the workflow starts this way (both answer /health):
`vllm serve MODEL --host 127.0.0.1 --port {port}` (in envs/vllm.yaml: vLLM pins its own torch
and transformers) for real judges, and `transformers serve --host 127.0.0.1 --port {port}` for
small models on CPU.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from codit.judged.judge import JudgeEndpoint, JudgeError
from codit.workflow.guard import guarded
from codit.workflow.runtime import sigterm_exits

# Lines of the server's log quoted when it fails to start.
LOG_LINES_SHOWN = 20


@dataclass(frozen=True)
class Server:
    """A judge server that is up: where its API is, and its process (its group's leader)."""

    url: str
    pid: int


def free_port() -> int:
    """A TCP port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _log_tail(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-LOG_LINES_SHOWN:]) or "(empty)"


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether GET `url` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def stop(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM the server's process group; SIGKILL what is left after `grace` seconds (also
    workers of a leader that already exited)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def served(
    command: Sequence[str],
    log: Path,
    *,
    health: str = "/health",
    startup_timeout: float = 900.0,
    grace: float = 30.0,
    poll: float = 0.5,
) -> Iterator[Server]:
    """Run the judge server `command` while the block runs; yields it once it is healthy."""
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    described = shlex.join(argv)
    with open(log, "a", encoding="utf-8") as output:
        output.write(f"codit: starting judge server: {described}\n")
        output.flush()
        process = subprocess.Popen(
            guarded(argv),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output.write(f"codit: judge server pid {process.pid}, port {port}\n")
    try:
        deadline = time.monotonic() + startup_timeout
        health_url = f"http://127.0.0.1:{port}{health}"
        while not healthy(health_url):
            if process.poll() is not None:
                raise JudgeError(
                    f"judge server exited with status {process.returncode} before it was "
                    f"healthy: {described}\nlast lines of {log}:\n{_log_tail(log)}"
                )
            if time.monotonic() > deadline:
                raise JudgeError(
                    f"judge server not healthy at {health_url} after {startup_timeout:g} s: "
                    f"{described}\nlast lines of {log}:\n{_log_tail(log)}"
                )
            time.sleep(poll)
        yield Server(f"http://127.0.0.1:{port}/v1", process.pid)
    finally:
        stop(process, grace)


@contextlib.contextmanager
def judge_at(
    endpoint: JudgeEndpoint, log: Path, running: JudgeEndpoint | None = None
) -> Iterator[JudgeEndpoint]:
    """The endpoint to ask: `endpoint` itself, or, when it has a `serve` command, the same
    judge at the URL of a server started for the block (and stopped after it); `running`: one
    that an enclosing `judge_at` already started for this endpoint."""
    if running is not None:
        yield running
        return
    if not endpoint.serve:
        yield endpoint
        return
    with (
        sigterm_exits("the judge server was stopped"),
        served(shlex.split(endpoint.serve), log) as server,
    ):
        yield replace(endpoint, url=server.url)
