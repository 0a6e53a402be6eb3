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
from warm_runtime import private_runtime, warm_jobs
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
    """Start the one-node cluster with 4 fake GPUs; stop exactly what was started, and check
    that no process of the cluster outlives it."""
    started = local_slurm("start", "4")
    assert started.returncode == 0, started.stderr
    yield
    stopped = local_slurm("stop", timeout=180)
    assert stopped.returncode == 0, stopped.stderr
    # `stop` cancels the jobs and ends what a job left behind, naming it: nothing may be left.
    assert "left behind" not in stopped.stderr, stopped.stderr
    assert cluster_processes() == [], cluster_processes()


def cluster_processes() -> list[str]:
    """Live processes of the local cluster: its daemons, job steps, and any process that runs
    in one of its jobs (their environment names the cluster)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        name = status.split("\n", 1)[0].split(":", 1)[1].strip()
        if "State:\tZ" in status:
            continue  # a zombie has ended; init reaps it
        if name in (*DAEMONS, "slurmstepd") or b"SLURM_CLUSTER_NAME=codit-local" in environ:
            found.append(f"{entry.name} {name}")
    return found


@pytest.fixture(scope="module")
def local_small_run(tinyworld_build, tmp_path_factory):
    """The small grid run on this machine (no SLURM): what every SLURM run must reproduce.
    Yields its folder and the warm-server folder its jobs forked from."""
    config = small_config(tmp_path_factory.mktemp("config") / "small.yaml")
    local = tmp_path_factory.mktemp("local")
    # The tiny world is an input here, not what is tested: every run starts from the build.
    tinyworld_cache.copy_into(tinyworld_build, local)
    with private_runtime() as warm_directory:
        began = time.monotonic()
        result = snakemake(
            "--cores", "2", "--configfile", str(config), "--directory", str(local),
            timeout=30 * 60, env={"CODIT_WARM_DIR": str(warm_directory)},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-5000:]
        print(f"local run {time.monotonic() - began:.0f} s")
        yield local, warm_directory


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
        # (a zombie has exited: init may take its time to reap it, or never)
        while [line for line in cluster_processes() if line.split()[1] in DAEMONS]:
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


def test_slurm_run_equals_local_run(cluster, local_small_run, tmp_path):
    config = small_config(tmp_path / "small.yaml")
    (local, warm_directory), on_slurm = local_small_run, tmp_path / "slurm"
    warm = {"CODIT_WARM_DIR": str(warm_directory)}
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
    print(f"SLURM run {slurm_seconds:.0f} s (tiny world reused)")

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


# A login node lost while an SFT job and a generation shard run on SLURM.
SFT_DIRECT = "results/sft/tiny-llama/direct/seed0/tiny-llama-base"
CODIT_SHARD = "results/datasets/tiny-llama/codit_alpha0.1_beta1/seed0/shards/000-of-002.jsonl"


def lost_login_node(local: Path, workdir: Path, config: Path) -> tuple[list[str], dict[str, str]]:
    """Start a SLURM run of one SFT job and one generation shard in `workdir` and SIGKILL its
    Snakemake once SLURM runs both. Returns the command and the two jobs' ids by rule."""
    shutil.copytree(local / "resources", workdir / "resources")
    # The inputs as the local run made them (times kept: they are up to date)
    for inputs in ("results/instructions", "results/datasets/tiny-llama/direct"):
        shutil.copytree(local / inputs, workdir / inputs)
    command = [
        str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
        "--profile", str(REPO / "profiles/slurm-local"), "--configfile", str(config),
        "--directory", str(workdir), f"{SFT_DIRECT}/train_record.json", CODIT_SHARD,
    ]  # fmt: skip
    run = subprocess.Popen(command, cwd=REPO, env=with_venv(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while True:
        jobs = [job_fields(line) for line in slurm_job_lines(workdir)]
        states = {
            job["Comment"].split("_wildcards_")[0].removeprefix("rule_"): (
                job["JobId"],
                job["JobState"],
            )
            for job in jobs
        }
        if [state for _, state in states.values()] == ["RUNNING", "RUNNING"]:
            break
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-5000:]
        time.sleep(0.2)
    run.kill()  # the login node is gone; its two jobs keep running
    run.communicate()
    assert sorted(states) == ["generate_shard", "sft"], states
    record = (workdir / ".snakemake/codit-slurm-jobs.jsonl").read_text().splitlines()
    recorded = {json.loads(line)["rule"]: json.loads(line) for line in record}
    assert {rule: entry["job_id"] for rule, entry in recorded.items()} == {
        rule: job_id for rule, (job_id, _) in states.items()
    }, record
    assert recorded["sft"]["outputs"][-1] == f"{SFT_DIRECT}/train_record.json", record
    return command, {rule: job_id for rule, (job_id, _) in states.items()}


def lost_run_results(workdir: Path) -> tuple[object, bytes]:
    record = json.loads((workdir / SFT_DIRECT / "train_record.json").read_text())
    return (record["final_loss"], record["loss_curve"]), (workdir / CODIT_SHARD).read_bytes()


def test_after_a_lost_login_node_the_rerun_waits_for_its_jobs(cluster, local_small_run, tmp_path):
    """SIGKILL the login-node Snakemake while an SFT job and a generation shard run; SLURM
    requeues the SFT job (a lost node). With SLURM unreachable the plain rerun refuses and
    touches nothing; then it waits for both jobs, submits neither again, and the results are
    the local run's."""
    local, _ = local_small_run
    config = derived_config(tmp_path / "small.yaml", {**SMALL_GRID, "slurm": {"poll_seconds": 1}},
                            SMALL_GRID_REPLACED)  # fmt: skip
    workdir = tmp_path / "run"
    command, job_ids = lost_login_node(local, workdir, config)
    # The requeued job of the dead run (a node loss) keeps its id and waits to start again; both
    # jobs are held (the shard suspended), so that both are still on SLURM when the rerun asks.
    subprocess.run(["scontrol", "requeue", job_ids["sft"]], check=True)
    subprocess.run(["scontrol", "hold", job_ids["sft"]], check=True)
    subprocess.run(["scontrol", "suspend", job_ids["generate_shard"]], check=True)

    # SLURM unreachable: the rerun refuses, naming the command, before touching anything.
    markers = sorted(path.name for path in (workdir / ".snakemake/incomplete").rglob("*"))
    record = (workdir / ".snakemake/codit-slurm-jobs.jsonl").read_bytes()
    stopped = local_slurm("controller", "stop")
    assert stopped.returncode == 0, stopped.stderr
    try:
        refused = subprocess.run(command, cwd=REPO, env=with_venv(), capture_output=True,
                                 text=True, timeout=300)  # fmt: skip
    finally:
        started = local_slurm("controller", "start")
        assert started.returncode == 0, started.stderr
    assert refused.returncode != 0
    assert "cannot tell whether SLURM jobs of an earlier run" in refused.stderr, refused.stderr
    assert "`squeue --me" in refused.stderr and "Nothing was submitted" in refused.stderr
    assert sorted(p.name for p in (workdir / ".snakemake/incomplete").rglob("*")) == markers
    assert (workdir / ".snakemake/codit-slurm-jobs.jsonl").read_bytes() == record
    assert sorted(job_fields(line)["JobId"] for line in slurm_job_lines(workdir)) == sorted(
        job_ids.values()
    )

    # The plain rerun: one line per job, then it waits; the jobs go on and it ends with them.
    rerun = subprocess.Popen(command, cwd=REPO, env=with_venv(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    said = []
    for line in rerun.stderr:
        said.append(line)
        if "waiting for these 2 jobs of an earlier run" in line:
            break
    job_lines = [line for line in said if line.startswith("codit: SLURM job")]
    assert len(job_lines) == 2, "".join(said)
    assert f"SLURM job {job_ids['sft']} (rule sft" in "".join(job_lines)
    assert f"{SFT_DIRECT}/train_record.json" in "".join(job_lines)
    assert f"SLURM job {job_ids['generate_shard']} (rule generate_shard" in "".join(job_lines)
    subprocess.run(["scontrol", "release", job_ids["sft"]], check=True)
    subprocess.run(["scontrol", "resume", job_ids["generate_shard"]], check=True)
    rest = rerun.communicate(timeout=20 * 60)[1]
    assert rerun.returncode == 0, rest[-5000:]
    assert f"SLURM job {job_ids['sft']} ended: COMPLETED" in rest, rest[-5000:]
    assert "starting this run again" in rest, rest[-5000:]

    # One SLURM job per output (the SFT job ran twice under one id: requeued), results equal.
    lines = slurm_job_lines(workdir)
    assert sorted(job_fields(line)["JobId"] for line in lines) == sorted(job_ids.values()), lines
    restarts = {job_fields(line)["JobId"]: job_fields(line)["Restarts"] for line in lines}
    assert restarts[job_ids["sft"]] != "0", lines
    assert lost_run_results(workdir) == lost_run_results(local)


def test_after_a_lost_login_node_the_rerun_can_cancel_its_jobs(cluster, local_small_run, tmp_path):
    """The same loss, rerun with `slurm.earlier_jobs: cancel`: the earlier jobs are cancelled
    and gone before this run submits them again, once each, with the local run's results."""
    local, _ = local_small_run
    config = derived_config(tmp_path / "small.yaml", {**SMALL_GRID, "slurm": {"poll_seconds": 1}},
                            SMALL_GRID_REPLACED)  # fmt: skip
    workdir = tmp_path / "run"
    command, job_ids = lost_login_node(local, workdir, config)
    rerun = subprocess.run(
        [*command, "--config", "slurm={earlier_jobs: cancel}"], cwd=REPO,
        env=with_venv(), capture_output=True, text=True, timeout=20 * 60,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-5000:]
    assert "cancelling these 2 jobs of an earlier run" in rerun.stderr, rerun.stderr[-5000:]
    fields = [job_fields(line) for line in slurm_job_lines(workdir)]
    by_rule: dict[str, list[dict[str, str]]] = {}
    for job in fields:
        by_rule.setdefault(job["Comment"].split("_wildcards_")[0], []).append(job)
    for rule, jobs in by_rule.items():
        old, new = sorted(jobs, key=lambda job: int(job["JobId"]))
        assert old["JobId"] == job_ids[rule.removeprefix("rule_")], fields
        assert old["JobState"] == "CANCELLED" and new["JobState"] == "COMPLETED", fields
        # The new copy started after the cancelled one had ended: never two writers at once.
        assert new["StartTime"] >= old["EndTime"], fields
    assert sorted(by_rule) == ["rule_generate_shard", "rule_sft"], fields
    assert lost_run_results(workdir) == lost_run_results(local)


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
             "max_tokens": 64, "workers": 2, "max_unparsable_share": 0.5}  # fmt: skip
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
