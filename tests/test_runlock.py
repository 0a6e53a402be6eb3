"""One live run per directory (codit.workflow.runlock), with real Snakemake processes on a two-rule
workflow that takes the lease as ours does: a SIGKILLed run's locks are removed by the next
run, a live run's never, and a second run beside a live one stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
# The lines of our Snakefile that take the lease, around two jobs of settable length.
SNAKEFILE = f"""
import sys
sys.path.insert(0, {str(REPO / "src")!r})
from codit.workflow import runlock

if not (workflow.remote_exec or workflow.subprocess_exec):
    runlock.claim_when_read()

onstart:
    runlock.claim_for_jobs(wait=2)

rule all:
    input: "slow.txt"

rule slow:
    output: "slow.txt"
    shell: "sleep $SLOW_SECONDS; touch {{output}}"

rule other:
    output: "other.txt"
    shell: "touch {{output}}"
"""


@pytest.fixture()
def workdir(tmp_path) -> Path:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    return tmp_path


def snakemake(workdir: Path, *args: str, seconds: int = 0, wait: bool = True):
    env = {**os.environ, "SLOW_SECONDS": str(seconds)}
    command = [str(SNAKEMAKE), "--cores", "1", *args]
    if not wait:  # its own process group, to be killed whole as a crash would
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        return subprocess.Popen(command, cwd=workdir, env=env, text=True, start_new_session=True,
                                **pipes)  # fmt: skip
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def locks(workdir: Path) -> list[str]:
    folder = workdir / ".snakemake/locks"
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def started_slow_job(workdir: Path) -> subprocess.Popen:
    """A run whose job sleeps for a minute, returned once the job is running."""
    run = snakemake(workdir, seconds=60, wait=False)
    deadline = time.monotonic() + 60
    while not (locks(workdir) and _sleeping(run.pid)):
        assert run.poll() is None, run.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the slow job did not start in a minute"
        time.sleep(0.1)
    return run


def _sleeping(group: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[3]) == group and command.startswith(b"sleep"):
                return True
    return False


def stop(run: subprocess.Popen) -> None:
    with_group = run.pid
    os.killpg(with_group, signal.SIGKILL)
    run.communicate(timeout=60)


def test_a_rerun_after_snakemake_was_sigkilled_continues_without_unlock(workdir):
    run = started_slow_job(workdir)
    stop(run)  # Snakemake and its job, SIGKILLed together
    assert locks(workdir), "a SIGKILLed Snakemake leaves its lock files"
    rerun = snakemake(workdir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "removed the Snakemake locks of a run that ended without removing them" in rerun.stderr
    assert f"pid {run.pid} " in rerun.stderr  # names the dead run
    assert (workdir / "slow.txt").exists() and locks(workdir) == []


def test_a_second_run_beside_a_live_one_is_refused(workdir):
    live = started_slow_job(workdir)
    try:
        held = locks(workdir)
        second = snakemake(workdir)  # the same targets: Snakemake's own lock check stops it
        assert second.returncode != 0
        assert f"another Snakemake is working in {workdir}: pid {live.pid} " in second.stderr
        assert "LockException" in second.stderr or "cannot be locked" in second.stderr
        dry = snakemake(workdir, "-n")  # a dry run may look
        assert dry.returncode == 0, dry.stderr[-3000:]
        assert locks(workdir) == held, "the live run's locks must survive both"
        # Other targets pass Snakemake's lock check; the lease stops the run before its jobs.
        # (Snakemake then removes the whole lock folder as any ending run does, the live
        # run's files included: the lease, not those files, keeps the next run out.)
        beside = snakemake(workdir, "other.txt")
        assert beside.returncode != 0 and "DirectoryInUse" in beside.stderr, beside.stderr
        assert not (workdir / "other.txt").exists()
        again = snakemake(workdir)
        assert again.returncode != 0 and "DirectoryInUse" in again.stderr, again.stderr
        assert live.poll() is None, "the live run goes on"
    finally:
        stop(live)
