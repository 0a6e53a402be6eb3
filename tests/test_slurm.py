"""The slurm profile on a real one-node SLURM (tools/local-slurm.sh, fake GPUs) produces the
results of a local run: generation shards, SFT and evaluation run as SLURM jobs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import tinyworld_cache
import yaml
from warm_runtime import warm_jobs
from workflow_runs import (
    BIN,
    REPO,
    SMALL_GRID,
    SMALL_GRID_REPLACED,
    derived_config,
    job_counts,
    results_of,
    small_config,
    snakemake,
    with_venv,
)

pytestmark = pytest.mark.slow
CLUSTER_SCRIPT = REPO / "tools/local-slurm.sh"
DAEMONS = ("slurmctld", "slurmd")


def local_slurm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """tools/local-slurm.sh with these arguments, as root; skips where that is impossible."""
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (tools/local-slurm.sh start)")
    return subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def cluster():
    """Start the one-node cluster with 4 fake GPUs; stop exactly what was started."""
    started = local_slurm("start", "4")
    assert started.returncode == 0, started.stderr
    yield
    stopped = local_slurm("stop", timeout=120)
    assert stopped.returncode == 0, stopped.stderr


def test_a_cluster_killed_without_stop_starts_again_empty(tmp_path):
    """A cluster killed outright (no `stop`, e.g. with the machine's session) leaves its job
    state behind; the next `start` must not recover those jobs into the new cluster, whose
    tests would read them as their own. Runs before the module's cluster is started."""
    started = local_slurm("start", "1")
    assert started.returncode == 0, started.stderr
    try:
        submitted = subprocess.run(
            ["sbatch", "--parsable", "-D", str(tmp_path), "--wrap", "true"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        job_id = submitted.stdout.strip().split(";")[0]
        # The daemons go without `stop` (slurmctld saves its job state as it exits).
        subprocess.run(["scontrol", "shutdown"], check=True)
        deadline = time.monotonic() + 60
        while any(
            subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0
            for name in DAEMONS
        ):
            assert time.monotonic() < deadline, "scontrol shutdown left a daemon running"
            time.sleep(0.2)
        restarted = local_slurm("start", "1")
        assert restarted.returncode == 0, restarted.stderr
        listed = subprocess.run(
            ["squeue", "--states=all", "--noheader", "--format=%i"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert listed.stdout.split() == [], f"job {job_id} came back: {listed.stdout}"
        assert "clearing the job state" in restarted.stderr
    finally:
        stopped = local_slurm("stop", timeout=120)
        assert stopped.returncode == 0, stopped.stderr


def test_slurm_run_equals_local_run(cluster, tinyworld_build, warm_directory, tmp_path):
    config = small_config(tmp_path / "small.yaml")
    local, on_slurm = tmp_path / "local", tmp_path / "slurm"
    # The tiny world is an input here, not what is tested: both runs start from the shared build.
    tinyworld_cache.copy_into(tinyworld_build, local)
    began = time.monotonic()
    warm = {"CODIT_WARM_DIR": str(warm_directory)}
    result = snakemake(
        "--cores", "2", "--configfile", str(config), "--directory", str(local), timeout=30 * 60,
        env=warm,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    local_seconds = time.monotonic() - began
    # The local run forked most jobs from warm servers; the SLURM run below starts every job
    # fresh, so the equality at the end also compares warm jobs with cold ones.
    assert {command.split()[1] for _, command in warm_jobs(warm_directory)} >= {
        "generate", "sft", "evaluate"
    }  # fmt: skip
    servers_before = sorted(warm_directory.glob("*.log")), warm_jobs(warm_directory)

    shutil.copytree(local / "resources", on_slurm / "resources")
    dry = snakemake(
        "-n", "--profile", str(REPO / "profiles/slurm-local"), "--configfile", str(config),
        "--directory", str(on_slurm),
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-3000:]
    planned = job_counts(dry.stdout)
    assert "tinyworld_model" not in planned and planned["generate_shard"] == 4
    began = time.monotonic()
    result = snakemake(
        "--profile", str(REPO / "profiles/slurm-local"), "--configfile", str(config),
        "--directory", str(on_slurm), timeout=30 * 60, env=warm,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    slurm_seconds = time.monotonic() - began
    # Neither its jobs nor its local rules start a warm server.
    assert (sorted(warm_directory.glob("*.log")), warm_jobs(warm_directory)) == servers_before
    print(f"local run {local_seconds:.0f} s, SLURM run {slurm_seconds:.0f} s (tiny world reused)")

    # Every compute job ran as a SLURM job, with the GPUs and CPUs its stage asks for.
    jobs = slurm_jobs(on_slurm)
    by_rule = {}
    for comment, gpus, cpus in jobs:
        rule = comment.split("_wildcards_")[0].removeprefix("rule_")
        by_rule.setdefault(rule, []).append((gpus, cpus))
    # direct: the post model's GPU; CoDIT: both models'
    assert sorted(by_rule["generate_shard"]) == [(1, 1), (1, 1), (2, 1), (2, 1)], jobs
    assert by_rule["sft"] == [(1, 1), (1, 1)], jobs  # two arms
    assert by_rule["evaluate_student"] == [(1, 2), (1, 2)], jobs
    # Judged benchmarks: answers on the model's GPU; each judging job served the tiny judge
    # once for the three benchmarks inside its SLURM job (no GPU: judge.gpus is 0), stopped it
    for name in ("mtbench", "alpacaeval", "wildbench"):
        assert by_rule[f"{name}_answer_student"] == [(1, 2), (1, 2)], jobs  # as evaluation
    assert by_rule["judge_answers"] == [(0, 1)] * 3, jobs
    server_logs = list((on_slurm / "logs/judged").rglob("*.judge-server.log"))
    assert len(server_logs) == 3, server_logs
    for log in server_logs:
        assert log.read_text().count("starting judge server") == 1, log
        pid = re.search(r"judge server pid (\d+)", log.read_text()).group(1)
        assert not os.path.exists(f"/proc/{pid}"), log
    local_rules = {"gather_dataset", "report", "prefetch_eval_tasks", "prepare_instructions"}
    assert not local_rules & set(by_rule), jobs
    assert results_of(on_slurm) == results_of(local)

    # A node lost in the middle of an SFT job: the job goes, nobody acts, and the run still
    # finishes with the same student (SLURM requeues the job or Snakemake retries it; either
    # way it resumes from its last checkpoint).
    student = "results/sft/tiny-llama/direct/seed0/tiny-llama-base"
    shutil.rmtree(on_slurm / student)
    often = yaml.safe_load(config.read_text())
    often["sft"]["checkpoint_steps"] = 2  # a checkpoint soon (the interval changes no result)
    (tmp_path / "often.yaml").write_text(yaml.safe_dump(often))
    profile = ["--profile", str(REPO / "profiles/slurm-local"), "--configfile",
               str(tmp_path / "often.yaml")]  # fmt: skip
    command = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), *profile,
               "--directory", str(on_slurm), f"{student}/train_record.json"]  # fmt: skip
    run = subprocess.Popen(command, cwd=REPO, env=with_venv(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 600
    while not list((on_slurm / "results/sft").rglob("*.checkpoints/checkpoint-*")):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-5000:]
        time.sleep(0.2)
    node = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    down = ["scontrol", "update", f"NodeName={node}", "State=DOWN", "Reason=codit-test-lost"]
    subprocess.run(down, check=True)
    time.sleep(3)
    # Back in service (ReturnToService=2 may have brought it back already: then this fails).
    subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], capture_output=True)
    _, stderr = run.communicate(timeout=20 * 60)
    assert run.returncode == 0, stderr[-5000:]
    lost = [
        line for line in slurm_job_lines(on_slurm) if "rule_sft" in line and "Restarts=" in line
    ]
    assert any("Restarts=0" not in line for line in lost) or len(lost) > 2, lost
    assert results_of(on_slurm) == results_of(local)


def test_a_judging_job_serves_its_judge_with_vllm_on_slurm(
    cluster, tinyworld_build, trained_judge, tmp_path
):
    """The paper's judge route on the local cluster: `judge.serve` is `vllm serve` (the tiny
    world's trained judge, vLLM's CPU build, on the GPU `judge.gpus` asks for), and the
    reference model's judging job starts it inside its SLURM job, grades the three benchmarks
    and stops it."""
    from test_vllm_judge import SERVED_NAME, process_group, serve_command

    tinyworld_cache.copy_into(tinyworld_build, tmp_path)
    judge = {"serve": serve_command(trained_judge / "model"), "model": SERVED_NAME, "gpus": 1,
             "max_tokens": 64, "workers": 2}  # fmt: skip
    config = derived_config(
        tmp_path / "vllm-judge.yaml", SMALL_GRID, {**SMALL_GRID_REPLACED, "judge": judge}
    )
    folders = {
        task: tmp_path / f"results/eval/reference/tiny-llama-instruct.{task}"
        for task in ("mt_bench", "alpaca_eval", "wildbench")
    }
    result = snakemake(
        "--profile", str(REPO / "profiles/slurm-local"), "--configfile", str(config),
        "--directory", str(tmp_path),
        *(str((folder / "scores.json").relative_to(tmp_path)) for folder in folders.values()),
        timeout=20 * 60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    judging = [
        (gpus, cpus) for comment, gpus, cpus in slurm_jobs(tmp_path) if "judge_answers" in comment
    ]
    assert judging == [(1, 1)]
    log = (tmp_path / "logs/judged/reference/tiny-llama-instruct.judge-server.log").read_text()
    assert log.count("starting judge server") == 1 and "vllm.entrypoints.openai" in log
    # The guard led the server's process group: the group is gone, vLLM's engine core too.
    pid = int(re.search(r"judge server pid (\d+)", log).group(1))
    assert not os.path.exists(f"/proc/{pid}") and not process_group(pid)
    for task, folder in folders.items():
        judgments = [
            json.loads(line) for line in (folder / "judgments.jsonl").read_text().splitlines()
        ]
        print(f"{task}: {len(judgments)} judgments")
        assert judgments, task
    # MT-Bench's ratings and WildBench's scores parse; AlpacaEval's verdicts are weighted.
    scores = {
        task: json.loads((folder / "scores.json").read_text()) for task, folder in folders.items()
    }
    assert scores["mt_bench"]["unparsable"] < scores["mt_bench"]["judgments"] / 2
    assert scores["wildbench"]["unparsable"] < scores["wildbench"]["judgments"] / 2
    verdicts = scores["alpaca_eval"]["verdicts"]
    assert verdicts["weighted"] > 0 and verdicts["unparsable"] == 0, verdicts


def job_fields(line: str) -> dict[str, str]:
    """The KEY=VALUE fields of one `scontrol show job -o` line."""
    return dict(item.split("=", 1) for item in line.split() if "=" in item)


def slurm_job_lines(workdir: Path) -> list[str]:
    """`scontrol show job -o` lines of the jobs run in `workdir` that the cluster still lists
    (a cluster may also list jobs of another run, e.g. recovered from an earlier cluster)."""
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True
    )
    return [
        line
        for line in shown.stdout.splitlines()
        if job_fields(line).get("WorkDir") == str(workdir)
    ]


def slurm_jobs(workdir: Path) -> list[tuple[str, int, int]]:
    """(comment, GPUs, CPUs) of every job run in `workdir` (finished ones stay 3600 s)."""
    jobs = []
    for line in slurm_job_lines(workdir):
        fields = job_fields(line)
        gpus = re.search(r"gpu[:=](\d+)", fields.get("TresPerJob", ""))  # e.g. gres:gpu:2
        cpus = int(fields.get("NumCPUs", "0"))
        jobs.append((fields.get("Comment", ""), int(gpus[1]) if gpus else 0, cpus))
    return jobs
