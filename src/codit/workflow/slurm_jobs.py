"""SLURM jobs that an earlier run in this directory submitted and that still run: record them
at submission, and at the start of every run wait for them or cancel them.

On a cluster the Snakemake that submits the jobs runs on the login node. When it dies (a lost
ssh session, a reboot, the OOM killer), its jobs keep running. A plain rerun takes the
directory's lease (runlock: no other Snakemake is alive here), sees their outputs marked
incomplete and would submit the same jobs again, so two copies would write one output. The
plugin names each job by its run's id, which the new run does not know. So:

- **Record.** The login-node Snakemake logs every job it prints (rule, wildcards, outputs:
  Snakemake's JOB_INFO event) and every submission (the SLURM plugin's "Job N has been
  submitted with SLURM jobid M" line, after its "SLURM run ID" line). A logging handler turns
  them into one line per SLURM job in `.snakemake/codit-slurm-jobs.jsonl`: run id, job id,
  rule, wildcards, outputs. SLURM itself holds the job's run id (job name), rule (comment) and
  directory (WorkDir), which also finds a job submitted in the instant before its line was
  written.
- **Check**, in `onstart` (runs that execute jobs; dry runs skip it). squeue (sacct where
  squeue cannot answer) says which recorded jobs, and which jobs of this user in this
  directory, are pending, running or requeued. `slurm.earlier_jobs` chooses:
  - `wait` (the default): one line per job (id, rule, state, outputs), then wait until SLURM
    reports each one ended. Snakemake built its DAG while they ran, so the run then starts
    again (the same command, in this process): a job that finished leaves complete outputs,
    one that failed is rerun.
  - `cancel`: scancel them, wait until SLURM reports them gone; their outputs stay
    incomplete and this run reruns them.
  - `ignore`: do not ask SLURM (for a directory whose jobs are known to be gone, e.g.
    copied away from the cluster).
  A run that cannot ask SLURM stops before any job, naming the commands that failed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

RECORD = Path(".snakemake") / "codit-slurm-jobs.jsonl"
CHOICES = ("wait", "cancel", "ignore")
# squeue's and sacct's states of a job that will not run again (everything else may still
# write its outputs: PENDING, RUNNING, COMPLETING, REQUEUED, SUSPENDED, ...).
ENDED_STATES = frozenset(
    {
        "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
        "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT",
    }
)  # fmt: skip
SQUEUE = ["squeue", "--me", "--noheader", "--states=all", "--format=%i|%T|%j|%k|%Z"]
SACCT = ["sacct", "--allocations", "--noheader", "--parsable2",
         "--format=JobID,State,JobName,Comment,WorkDir"]  # fmt: skip
SUBMITTED = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\S+?)[ .]")
RUN_ID = re.compile(r"^SLURM run ID: (\S+)")


class SlurmUnreachable(RuntimeError):
    """SLURM could not say whether the jobs of an earlier run still run."""


@dataclass
class EarlierJob:
    """One SLURM job of an earlier run in this directory, as recorded and as SLURM lists it."""

    job_id: str
    rule: str
    outputs: list[str] = field(default_factory=list)
    run_id: str = ""
    state: str = "UNKNOWN"

    def describe(self) -> str:
        outputs = ", ".join(self.outputs[:3]) + (" ..." if len(self.outputs) > 3 else "")
        return (
            f"SLURM job {self.job_id} (rule {self.rule}, run {self.run_id[:8] or '?'}, "
            f"{self.state}) writes {outputs or 'outputs SLURM does not name'}"
        )


class SubmissionRecorder(logging.Handler):
    """Appends one record line per SLURM job the login-node Snakemake submits."""

    def __init__(self, directory: Path | str = ".") -> None:
        super().__init__()
        self.record = Path(directory) / RECORD
        self.run_id = ""
        self.printed: dict[int, dict] = {}  # Snakemake job id -> rule, wildcards, outputs

    def emit(self, record: logging.LogRecord) -> None:
        if str(getattr(record, "event", "")) == "job_info":
            self.printed[record.jobid] = {
                "rule": record.rule_name,
                "wildcards": dict(record.wildcards or {}),
                "outputs": [str(path) for path in record.output or []],
            }
            return
        message = record.getMessage()
        if found := RUN_ID.match(message):
            self.run_id = found[1]
        elif found := SUBMITTED.match(message):
            job = self.printed.get(int(found[1]), {"rule": "?", "wildcards": {}, "outputs": []})
            line = {"job_id": found[2], "run_id": self.run_id, **job,
                    "submitted": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
            self.record.parent.mkdir(parents=True, exist_ok=True)
            with self.record.open("a") as out:
                out.write(json.dumps(line) + "\n")


def record_submissions(directory: Path | str = ".") -> None:
    """Install the recorder on Snakemake's logger (the login-node process, at parse time)."""
    logger = logging.getLogger("snakemake")
    if not any(isinstance(handler, SubmissionRecorder) for handler in logger.handlers):
        logger.addHandler(SubmissionRecorder(Path(directory).resolve()))


def recorded_jobs(directory: Path | str = ".") -> dict[str, EarlierJob]:
    """The record's jobs by SLURM job id (a torn last line, from a kill mid-write, is skipped)."""
    path = Path(directory) / RECORD
    jobs = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        jobs[entry["job_id"]] = EarlierJob(
            entry["job_id"], entry["rule"], entry["outputs"], entry["run_id"]
        )
    return jobs


def _run(command: Sequence[str]) -> tuple[bool, str]:
    """(succeeded, stdout or the reason it failed) of a SLURM client command."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    if done.returncode != 0:
        return False, f"exit {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
    return True, done.stdout


def _listed(answer: str) -> dict[str, tuple[str, str, str, str]]:
    """id -> (state, job name, comment, work dir) from `|`-separated lines in that order."""
    jobs = {}
    for line in answer.splitlines():
        job_id, state, name, comment, workdir = (line.split("|") + [""] * 5)[:5]
        # sacct writes "CANCELLED by 0" where squeue writes CANCELLED
        jobs[job_id.strip()] = (state.split()[0] if state.strip() else "", name, comment, workdir)
    return jobs


def slurm_states(recorded: Sequence[str]) -> dict[str, tuple[str, str, str, str]]:
    """SLURM's view of this user's jobs: id -> (state, run id, comment, work dir). squeue first;
    sacct, for the recorded ids, where squeue cannot answer."""
    ok, answer = _run(SQUEUE)
    if ok:
        return _listed(answer)
    failed = f"`{' '.join(SQUEUE)}` failed ({answer})"
    if not recorded:
        raise SlurmUnreachable(failed)
    sacct = [*SACCT, f"--jobs={','.join(recorded)}"]
    ok, sacct_answer = _run(sacct)
    if ok:
        return _listed(sacct_answer)
    raise SlurmUnreachable(f"{failed}, and so did `{' '.join(sacct)}` ({sacct_answer})")


def earlier_jobs(directory: Path | str, recorded: dict[str, EarlierJob]) -> list[EarlierJob]:
    """Jobs of earlier runs here that SLURM lists as not ended: the `recorded` ones and any job
    of this user whose work directory is this one (no run of this directory is alive but us)."""
    directory = Path(directory).resolve()
    listed = slurm_states(sorted(recorded))
    found = []
    for job_id, (state, name, comment, workdir) in listed.items():
        if state in ENDED_STATES:
            continue
        here = workdir and Path(workdir).resolve() == directory
        if job_id not in recorded and not here:
            continue
        job = recorded.get(job_id) or EarlierJob(
            job_id, comment.removeprefix("rule_").split("_wildcards_")[0], [], name
        )
        job.state = state
        found.append(job)
    return sorted(found, key=lambda job: int(re.sub(r"\D.*", "", job.job_id) or 0))


def check_earlier_jobs(
    choice: str,
    poll_seconds: float,
    slurm_executor: bool,
    directory: Path | str = ".",
    say: Callable[[str], None] = lambda line: print(f"codit: {line}", file=sys.stderr),
) -> bool:
    """Wait for (or cancel) the SLURM jobs of an earlier run here before this run submits any.
    True when jobs were waited for: the caller's DAG predates their outputs."""
    directory = Path(directory)
    if choice == "ignore":
        return False
    recorded = recorded_jobs(directory)
    if not slurm_executor and not recorded:
        return False
    try:
        running = earlier_jobs(directory, recorded)
    except SlurmUnreachable as error:
        raise SlurmUnreachable(
            f"cannot tell whether SLURM jobs of an earlier run in {directory.resolve()} still "
            f"run ({len(recorded)} recorded in {RECORD}): {error}. Nothing was "
            "submitted or removed. Run the same command again once SLURM answers; if those jobs "
            "are known to have ended, `--config 'slurm={earlier_jobs: ignore}'` skips this check."
        ) from None
    if not running:
        (directory / RECORD).unlink(missing_ok=True)  # every recorded job has ended
        return False
    for job in running:
        say(job.describe())
    if choice == "cancel":
        say(f"cancelling these {len(running)} jobs of an earlier run (slurm.earlier_jobs: cancel)")
        ok, answer = _run(["scancel", *(job.job_id for job in running)])
        if not ok:
            raise SlurmUnreachable(f"`scancel {' '.join(j.job_id for j in running)}`: {answer}")
    else:
        say(
            f"waiting for these {len(running)} jobs of an earlier run to end, checking every "
            f"{poll_seconds:g} s (`--config 'slurm={{earlier_jobs: cancel}}'` cancels them "
            "instead)"
        )
    states = {job.job_id: job.state for job in running}
    while states:
        time.sleep(poll_seconds)
        listed = slurm_states(sorted(states))
        for job_id in sorted(states):
            state = listed.get(job_id, ("ENDED",))[0] or "ENDED"
            if state in ENDED_STATES or state == "ENDED":
                say(f"SLURM job {job_id} ended: {state}")
                del states[job_id]
            elif state != states[job_id]:
                say(f"SLURM job {job_id}: {state}")
                states[job_id] = state
    (directory / RECORD).unlink(missing_ok=True)
    if choice == "wait":
        say("they have ended; starting this run again, so that it sees what they wrote")
    return choice == "wait"


def start_again() -> None:
    """Replace this Snakemake process by the same command, so that it builds its DAG anew."""
    sys.stderr.flush()
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, *sys.argv])
