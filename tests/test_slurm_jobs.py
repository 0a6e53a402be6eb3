"""The record of submitted SLURM jobs and the start-of-run check, without a cluster
(codit.workflow.slurm_jobs; tests/test_slurm.py runs them on the real local SLURM)."""

from __future__ import annotations

import json
import logging

import pytest

from codit.workflow import slurm_jobs

SFT_OUTPUTS = [
    "results/sft/p/direct/seed0/s/adapter",
    "results/sft/p/direct/seed0/s/train_record.json",
]


def snakemake_log(recorder: logging.Handler, message: str, **extra: object) -> None:
    """Emit a record as Snakemake's logger does (its events travel in `extra`)."""
    record = logging.LogRecord("snakemake", logging.INFO, __file__, 0, message, None, None)
    record.__dict__.update(extra)
    recorder.handle(record)


def test_the_recorder_writes_one_line_per_submitted_job(tmp_path):
    recorder = slurm_jobs.SubmissionRecorder(tmp_path)
    # The order of a real run: the plugin's run id, the job printed, then its submission.
    snakemake_log(recorder, "SLURM run ID: 4c1d0e52-aaaa-bbbb-cccc-0123456789ab")
    snakemake_log(recorder, " Rule: sft, Jobid: 7", event="job_info", jobid=7, rule_name="sft",
                  wildcards={"arm": "direct"}, output=SFT_OUTPUTS)  # fmt: skip
    snakemake_log(recorder, " Rule: prepare_instructions, Jobid: 2", event="job_info", jobid=2,
                  rule_name="prepare_instructions", wildcards={}, output=["p.jsonl"])  # fmt: skip
    snakemake_log(recorder, "Job 7 has been submitted with SLURM jobid 4242 (log: logs/x.log).")
    lines = (tmp_path / slurm_jobs.RECORD).read_text().splitlines()
    assert len(lines) == 1  # the local rule printed but never submitted is not recorded
    entry = json.loads(lines[0])
    assert entry["job_id"] == "4242" and entry["rule"] == "sft"
    assert entry["run_id"].startswith("4c1d0e52") and entry["outputs"] == SFT_OUTPUTS
    assert entry["wildcards"] == {"arm": "direct"}
    recorded = slurm_jobs.recorded_jobs(tmp_path)
    assert list(recorded) == ["4242"] and recorded["4242"].outputs == SFT_OUTPUTS


def test_a_torn_last_record_line_is_skipped(tmp_path):
    record = tmp_path / slurm_jobs.RECORD
    record.parent.mkdir(parents=True)
    whole = {"job_id": "5", "run_id": "r", "rule": "sft", "wildcards": {}, "outputs": ["o"]}
    record.write_text(json.dumps(whole) + "\n" + '{"job_id": "6", "ru')
    assert list(slurm_jobs.recorded_jobs(tmp_path)) == ["5"]


def test_without_slurm_the_check_refuses_naming_the_commands_and_keeps_the_record(
    tmp_path, monkeypatch
):
    recorder = slurm_jobs.SubmissionRecorder(tmp_path)
    snakemake_log(recorder, " Rule: sft, Jobid: 1", event="job_info", jobid=1, rule_name="sft",
                  wildcards={}, output=SFT_OUTPUTS)  # fmt: skip
    snakemake_log(recorder, "Job 1 has been submitted with SLURM jobid 99 (log: l).")
    before = (tmp_path / slurm_jobs.RECORD).read_bytes()
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))  # no squeue, no sacct
    with pytest.raises(slurm_jobs.SlurmUnreachable) as refused:
        slurm_jobs.check_earlier_jobs("wait", 1, slurm_executor=False, directory=tmp_path)
    message = str(refused.value)
    assert "`squeue --me" in message and "`sacct" in message and "--jobs=99" in message
    assert "1 recorded in .snakemake/codit-slurm-jobs.jsonl" in message
    assert "slurm={earlier_jobs: ignore}" in message and "Nothing was submitted" in message
    assert (tmp_path / slurm_jobs.RECORD).read_bytes() == before
    # `ignore` does not ask SLURM at all
    assert (
        slurm_jobs.check_earlier_jobs("ignore", 1, slurm_executor=True, directory=tmp_path) is False
    )


def test_a_local_run_with_nothing_recorded_asks_no_slurm(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    assert (
        slurm_jobs.check_earlier_jobs("wait", 1, slurm_executor=False, directory=tmp_path) is False
    )
    # On SLURM the question is asked even with nothing recorded (a job submitted an instant
    # before its record line): without squeue that is a refusal.
    with pytest.raises(slurm_jobs.SlurmUnreachable, match="squeue --me"):
        slurm_jobs.check_earlier_jobs("wait", 1, slurm_executor=True, directory=tmp_path)
