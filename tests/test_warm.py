"""The warm worker (codit.workflow.warm): real `codit` processes handing their commands to a real
server, which forks jobs from an interpreter that has torch, transformers, TRL and lm-eval
loaded. A warm job must be indistinguishable from a cold one: the same output bytes, streams
and exit status, the same resume after a kill, and it must die when its client is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_models import save_tiny_llama, write_dataset
from warm_runtime import jobs_in

from codit.workflow import warm

REPO = Path(__file__).resolve().parents[1]
SFT_RUN = ["--batch-size", "4", "--epochs", "2", "--logging-steps", "1", "--threads", "1"]
SFT_RUN += ["--device", "cpu", "--checkpoint-steps", "2"]


def environment(directory: Path, warm_on: bool = True, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in {"CODIT_FAULT", "CODIT_WARM"}}
    flag = "1" if warm_on else "0"
    return {**base, warm.WARM_VARIABLE: flag, warm.DIRECTORY_VARIABLE: str(directory), **extra}


def codit(*args: str, env: dict[str, str], cwd: Path, wait: bool = True):
    """`codit ...` as its own process, as a Snakemake shell rule runs it."""
    command = [sys.executable, "-m", "codit", *args]
    if not wait:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def server_log(directory: Path, env: dict[str, str], cwd: Path) -> Path:
    return directory / f"{warm.server_key(env, str(cwd))}.log"


def start_server(directory: Path, env: dict[str, str], cwd: Path) -> Path:
    """Start the server of this environment and folder (the first command runs itself)."""
    first = codit("--help", env=env, cwd=cwd)
    assert first.returncode == 0, first.stderr
    log = server_log(directory, env, cwd)
    wait_for_line(log, " ready")
    assert not jobs_in(log), "the command that found no server must have run itself"
    return log


def wait_for_line(log: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (log.exists() and text in log.read_text()):
        assert time.monotonic() < deadline, f"{text!r} not in {log} within {timeout} s"
        time.sleep(0.1)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def sft_inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("warm_sft")
    return save_tiny_llama(root / "llama"), write_dataset(root / "data.jsonl", count=12)


def test_server_key_follows_interpreter_folder_and_environment():
    env = {"HF_HOME": "/a", "OMP_NUM_THREADS": "1", "_": "/usr/bin/codit", "SHLVL": "2"}
    key = warm.server_key(env, "/work")
    assert warm.server_key({**env, "_": "/bin/sh", "SHLVL": "3"}, "/work") == key
    assert warm.server_key({**env, "HF_HOME": "/b"}, "/work") != key  # read at import
    assert warm.server_key({**env, "OMP_NUM_THREADS": "2"}, "/work") != key
    assert warm.server_key(env, "/elsewhere") != key


def test_commands_run_warm_with_the_clients_folder_streams_and_status(warm_directory):
    env = environment(warm_directory)
    log = start_server(warm_directory, env, REPO)
    # Relative paths (the config, and the assumptions file cost finds in config/) resolve
    # from the client's folder.
    cold_env = environment(warm_directory, warm_on=False)
    cold = codit("cost", "--configfile", "config/paper.yaml", env=cold_env, cwd=REPO)
    hot = codit("cost", "--configfile", "config/paper.yaml", env=env, cwd=REPO)
    assert cold.returncode == hot.returncode == 0, hot.stderr
    assert hot.stdout == cold.stdout and "GPU-hours" in hot.stdout
    # An error: the same one line on stderr and the same exit status as in a cold process.
    cold_error = codit("cost", "--configfile", "missing.yaml", env=cold_env, cwd=REPO)
    hot_error = codit("cost", "--configfile", "missing.yaml", env=env, cwd=REPO)
    assert hot_error.returncode == cold_error.returncode == 1
    assert hot_error.stderr == cold_error.stderr
    assert "config file 'missing.yaml' does not exist" in hot_error.stderr
    commands = [command for _, command in jobs_in(log)]
    assert [command.split(" ", 1)[1] for command in commands] == [
        "cost --configfile config/paper.yaml",
        "cost --configfile missing.yaml",
    ]
    assert log.read_text().count(": exit 0 after") == 1
    assert log.read_text().count(": exit 1 after") == 1


def test_a_warm_sft_equals_a_cold_one_also_after_a_kill_and_resume(
    warm_directory, sft_inputs, tmp_path
):
    """Same adapter bytes and losses, cold, warm, and warm killed (SIGKILL inside the job)
    then resumed; the client of the killed job dies of the same signal."""
    student, data = sft_inputs
    args = ["sft", "--student", str(student), "--data", str(data), *SFT_RUN]
    cold = codit(
        *args, "--out", "cold", env=environment(warm_directory, warm_on=False), cwd=tmp_path
    )
    assert cold.returncode == 0, cold.stderr
    faulty = environment(warm_directory, CODIT_FAULT="sft.after_checkpoint:2")
    log = start_server(warm_directory, faulty, tmp_path)
    killed = codit(*args, "--out", "hot", env=faulty, cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert "signal 9 after" in log.read_text()
    assert not (tmp_path / "hot/train_record.json").exists()
    resumed_env = environment(warm_directory)
    resumed_log = start_server(warm_directory, resumed_env, tmp_path)
    resumed = codit(*args, "--out", "hot", env=resumed_env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert len(jobs_in(resumed_log)) == 1, "the resumed run must have been a warm job"
    for name in ("adapter/adapter_model.safetensors", "merged/model.safetensors"):
        assert (tmp_path / "hot" / name).read_bytes() == (tmp_path / "cold" / name).read_bytes()
    record = "train_record.json"
    cold_record = (tmp_path / "cold" / record).read_text()
    hot_record = (tmp_path / "hot" / record).read_text()
    for key in ('"final_loss"', '"loss_curve"'):
        assert cold_record.split(key)[1][:200] == hot_record.split(key)[1][:200]


@pytest.mark.parametrize(
    ("kill", "status", "logged"),
    [
        (signal.SIGKILL, -signal.SIGKILL, "killed, its client is gone"),
        # SFT turns SIGTERM into SystemExit(143) so that its `finally` blocks run, warm or cold
        (signal.SIGTERM, 128 + signal.SIGTERM, "exit 143 after"),
    ],
)
def test_a_killed_client_takes_its_job_with_it(
    warm_directory, sft_inputs, tmp_path, kill, status, logged
):
    """SIGKILL cannot be passed on: the server kills the job when the connection drops.
    SIGTERM is passed on: the job handles it, and the client exits with the job's status."""
    student, data = sft_inputs
    env = environment(warm_directory)
    log = start_server(warm_directory, env, tmp_path)
    long_run = [*SFT_RUN, "--epochs", "500", "--out", "long"]  # the last --epochs counts
    client = codit("sft", "--student", str(student), "--data", str(data), *long_run, env=env,
                   cwd=tmp_path, wait=False)  # fmt: skip
    wait_for_line(log, "job ")
    [(job, _)] = jobs_in(log)
    deadline = time.monotonic() + 120
    while not (tmp_path / "long.checkpoints").exists():  # training, not importing
        assert time.monotonic() < deadline and client.poll() is None, client.stderr
        time.sleep(0.1)
    client.send_signal(kill)
    assert client.wait(timeout=60) == status
    wait_for_line(log, f"job {job}: {logged}", timeout=30)
    assert gone(job)
    assert not (tmp_path / "long/train_record.json").exists()
