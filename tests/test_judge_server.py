"""codit.judged.judge_server: a real server process started for a block and stopped after it, also
when the block fails, when the job is terminated and when it is killed outright."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from workflow_runs import REPO

from codit.judged.judge import JudgeEndpoint, JudgeError
from codit.judged.judge_server import judge_at, served

FAKE_JUDGE = [sys.executable, str(REPO / "tests/fake_judge.py"), "{port}"]


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_server_runs_while_the_block_runs_and_is_stopped_after(tmp_path):
    log = tmp_path / "judge.log"
    with served(FAKE_JUDGE, log, startup_timeout=60) as server:
        url, pid = server.url, server.pid
        assert alive(pid) and url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        port = url.split(":")[2].split("/")[0]
        assert f"codit: judge server pid {pid}, port {port}" in log.read_text()
        assert f"listening on port {port}" in log.read_text()
    assert not alive(pid)


def test_a_failing_block_still_stops_the_server(tmp_path):
    with pytest.raises(KeyError), served(FAKE_JUDGE, tmp_path / "judge.log") as server:
        pid = server.pid
        raise KeyError("the judging failed")
    assert not alive(pid)


def test_a_server_that_dies_or_never_gets_healthy_is_an_error_quoting_its_log(tmp_path):
    crash = [sys.executable, "-c", "import sys; print('no GPU here'); sys.exit(3)"]
    message = r"(?s)exited with status 3 before.*no GPU here"
    with pytest.raises(JudgeError, match=message), served(crash, tmp_path / "c.log", poll=0.05):
        pass
    # Listens, but has no /health: stopped after the timeout.
    silent = [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
    message = r"not healthy at http://127.0.0.1:\d+/health after 2 s"
    with (
        pytest.raises(JudgeError, match=message),
        served(silent, tmp_path / "silent.log", startup_timeout=2, poll=0.1),
    ):
        pass
    for log in ("c.log", "silent.log"):
        pid = int(re.search(r"judge server pid (\d+)", (tmp_path / log).read_text()).group(1))
        assert not alive(pid)


def test_a_server_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    stubborn = tmp_path / "stubborn.py"
    stubborn.write_text(
        "import signal, sys, runpy\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"sys.argv = [{str(REPO / 'tests/fake_judge.py')!r}, sys.argv[1]]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    started = time.monotonic()
    command = [sys.executable, str(stubborn), "{port}"]
    with served(command, tmp_path / "j.log", grace=1) as server:
        pid = server.pid
    assert not alive(pid) and time.monotonic() - started < 30


JOB = """
import sys, time
from pathlib import Path
from codit.judged.judge import JudgeEndpoint
from codit.judged.judge_server import judge_at
from codit.workflow.runtime import sigterm_exits

endpoint = JudgeEndpoint(model="m", serve={serve!r})
with sigterm_exits(), judge_at(endpoint, Path({log!r})) as judge:
    Path({ready!r}).write_text(judge.url)
    time.sleep(600)
"""


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_terminated_or_killed_job_takes_its_server_with_it(tmp_path, how):
    ready = tmp_path / "ready"
    serve = " ".join(FAKE_JUDGE)
    script = JOB.format(serve=serve, log=str(tmp_path / "j.log"), ready=str(ready))
    job = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    children = Path(f"/proc/{job.pid}/task/{job.pid}/children").read_text().split()
    assert ready.read_text().endswith("/v1") and len(children) == 1
    server = int(children[0])
    job.send_signal(how)
    # SIGTERM ends the job through SystemExit (status 128 + 15) after it stopped the server.
    assert job.wait(timeout=60) == (128 + how if how == signal.SIGTERM else -how)
    deadline = time.monotonic() + 30
    while alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(server)


def test_judge_at_leaves_an_endpoint_with_a_url_alone(tmp_path):
    endpoint = JudgeEndpoint(url="http://judge:8000/v1", model="m")
    with judge_at(endpoint, tmp_path / "unused.log") as judge:
        assert judge is endpoint
    assert not (tmp_path / "unused.log").exists()
