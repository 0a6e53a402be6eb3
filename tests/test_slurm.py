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
import yaml
from test_workflow import REPO, job_counts, snakemake

pytestmark = pytest.mark.slow
CLUSTER_SCRIPT = REPO / "tools/local-slurm.sh"
# The tiny world, cut down to one alpha, one student and two shards per dataset; the teacher
# and student models ask for a GPU each, so jobs only schedule because of the fake GPUs.
SMALL_GRID = {
    "tinyworld": {"seed": 0, "pool_size": 96},
    "models": {
        "tiny-llama-base": {"tinyworld": "llama-base", "gpus": 1},
        "tiny-llama-instruct": {"tinyworld": "llama-instruct", "gpus": 1},
    },
    "teacher_pairs": {"tiny-llama": {"post": "tiny-llama-instruct", "pre": "tiny-llama-base"}},
    "generation": {"alphas": [0.1], "max_new_tokens": 96, "batch_size": 32, "num_shards": 2},
    "students": ["tiny-llama-base"],
    "sft": {"epochs": 1, "learning_rate": 0.002, "batch_size": 8, "max_length": 256},
    "evaluation": {"references": ["tiny-llama-instruct"], "limit": 64},
    # Evaluation jobs ask for 2 CPUs (resources.evaluate.cpus), the others for `threads`: 1.
    "resources": {"evaluate": {"mem_mb": 2000, "runtime_minutes": 15, "cpus": 2}},
}


def small_config(path: Path) -> Path:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for key, value in SMALL_GRID.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    config["models"] = SMALL_GRID["models"]
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def cluster():
    """Start the one-node cluster with 4 fake GPUs; stop exactly what was started."""
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (tools/local-slurm.sh start)")
    started = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "start", "4"], capture_output=True, text=True, timeout=600
    )
    assert started.returncode == 0, started.stderr
    yield
    stopped = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "stop"], capture_output=True, text=True, timeout=120
    )
    assert stopped.returncode == 0, stopped.stderr


def results_of(workdir: Path) -> dict[str, object]:
    """What must agree between runs: datasets byte for byte, SFT losses, every metric."""
    found: dict[str, object] = {}
    for path in sorted((workdir / "results/datasets").rglob("data.jsonl")):
        found[str(path.relative_to(workdir))] = path.read_bytes()
    for path in sorted((workdir / "results/sft").rglob("train_record.json")):
        record = json.loads(path.read_text())
        found[str(path.relative_to(workdir))] = (record["final_loss"], record["loss_curve"])
    for path in sorted((workdir / "results/eval").rglob("*.json")):
        payload = json.loads(path.read_text())
        # tasks.json is the prefetch manifest: what each task read
        found[str(path.relative_to(workdir))] = payload.get("results", payload.get("tasks"))
    found["main.csv"] = (workdir / "results/tables/main.csv").read_text()
    return found


def test_slurm_run_equals_local_run(cluster, tmp_path):
    config = small_config(tmp_path / "small.yaml")
    local, on_slurm = tmp_path / "local", tmp_path / "slurm"
    began = time.monotonic()
    result = snakemake(
        "--cores", "2", "--configfile", str(config), "--directory", str(local), timeout=30 * 60
    )
    assert result.returncode == 0, result.stderr[-5000:]
    local_seconds = time.monotonic() - began

    # The tiny world is an input here, not what is tested: reuse the local run's build.
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
        "--directory", str(on_slurm), timeout=30 * 60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    slurm_seconds = time.monotonic() - began
    print(f"local run {local_seconds:.0f} s, SLURM run {slurm_seconds:.0f} s (tiny world reused)")

    # Every compute job ran as a SLURM job, with the GPUs and CPUs its stage asks for.
    jobs = slurm_jobs()
    by_rule = {}
    for comment, gpus, cpus in jobs:
        rule = comment.split("_wildcards_")[0].removeprefix("rule_")
        by_rule.setdefault(rule, []).append((gpus, cpus))
    # direct: the post model's GPU; CoDIT: both models'
    assert sorted(by_rule["generate_shard"]) == [(1, 1), (1, 1), (2, 1), (2, 1)], jobs
    assert by_rule["sft"] == [(1, 1), (1, 1)], jobs  # two arms
    assert by_rule["evaluate_student"] == [(1, 2), (1, 2)], jobs
    local_rules = {"gather_dataset", "report", "prefetch_eval_tasks", "prepare_instructions"}
    assert not local_rules & set(by_rule), jobs
    assert results_of(on_slurm) == results_of(local)


def slurm_jobs() -> list[tuple[str, int, int]]:
    """(comment, GPUs, CPUs) of every job the cluster lists (finished ones stay for 300 s)."""
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True
    )
    jobs = []
    for line in shown.stdout.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        gpus = re.search(r"gpu[:=](\d+)", fields.get("TresPerJob", ""))  # e.g. gres:gpu:2
        cpus = int(fields.get("NumCPUs", "0"))
        jobs.append((fields.get("Comment", ""), int(gpus[1]) if gpus else 0, cpus))
    return jobs
