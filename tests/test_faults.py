"""Fault injection across the whole DAG: every stage is killed at several points (SIGKILL at
named fault points, including in the middle of writes, and SIGTERM to Snakemake itself), the
workflow is rerun each time, and the final results equal those of an uninterrupted run.

Each round runs Snakemake on targets that only the stage under test can produce, with
CODIT_FAULT set (codit.workflow.faults: the process SIGKILLs itself the n-th time it reaches the
point), and checks that the round failed in the expected rule. docs/failures.md's table of kill
points is this list.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import tinyworld_cache
import yaml
from workflow_runs import BIN, REPO, results_of, small_config, snakemake, with_venv

pytestmark = pytest.mark.slow
PAIR, STUDENT = "tiny-llama", "tiny-llama-base"
ARMS = ["direct", "codit_alpha0.1_beta1"]
SHARDS = [
    f"results/datasets/{PAIR}/{arm}/seed0/shards/{i:03d}-of-002.jsonl"
    for arm in ARMS
    for i in (0, 1)
]
DATASETS = [f"results/datasets/{PAIR}/{arm}/seed0/data.jsonl" for arm in ARMS]
SFT = [f"results/sft/{PAIR}/{arm}/seed0/{STUDENT}/train_record.json" for arm in ARMS]
EVALS = [f"results/eval/{PAIR}/{arm}/seed0/{STUDENT}.json" for arm in ARMS] + [
    "results/eval/reference/tiny-llama-instruct.json"
]
EVALUATED = [f"{PAIR}/{arm}/seed0/{STUDENT}" for arm in ARMS] + ["reference/tiny-llama-instruct"]
ANSWERS = [f"results/eval/{name}.mt_bench/answers.card.json" for name in EVALUATED]
JUDGED = [f"results/eval/{name}.mt_bench/scores.json" for name in EVALUATED]
FINAL: list[str] = []  # the default target: tables and figures

# Snakemake picks which evaluation runs first: a student's or the reference model's.
EVALUATIONS = "evaluate_student|evaluate_reference"
# (what is killed, targets, CODIT_FAULT, rule(s) that may fail, `|`-separated; None = the round
# must succeed)
ROUNDS = [
    ("instruction pool", ["results/instructions/pool.jsonl"], None, None),
    ("generation shard after its first batch", SHARDS, "generate.after_batch:1", "generate_shard"),
    ("generation shard in the middle of a checkpoint append", SHARDS, "checkpoint.mid_write:1",
     "generate_shard"),
    ("generation shard output written, before its rename", SHARDS, "write.before_rename:1",
     "generate_shard"),
    ("generation shard after its outputs, before the checkpoint is removed", SHARDS,
     "generate.before_checkpoint_removal:1", "generate_shard"),
    ("(the remaining shards)", SHARDS, None, None),
    ("gather: dataset renamed, card not yet", DATASETS, "write.before_rename:2", "gather_dataset"),
    # Snakemake may start an SFT job before the other dataset is gathered: gather both first, so
    # that the SFT rounds below fail in SFT and nowhere else.
    ("(the remaining gathers)", DATASETS, None, None),
    ("SFT right after a checkpoint", SFT, "sft.after_checkpoint:1", "sft"),
    ("SFT between checkpoints", SFT, "sft.step:7", "sft"),
    ("SFT: SIGTERM to Snakemake while training", SFT, "SIGTERM", "sft"),
    ("SFT writing its train record (inside the staging folder)", SFT, "write.before_rename:1",
     "sft"),
    ("(the remaining SFT jobs)", SFT, None, None),
    ("evaluation after its samples, before its results", EVALS, "evaluate.after_samples:1",
     EVALUATIONS),
    ("evaluation writing its first samples file", EVALS, "write.before_rename:1", EVALUATIONS),
    ("(the remaining evaluations)", EVALS, None, None),
    ("MT-Bench answers written, their card not yet", ANSWERS, "write.before_rename:2",
     "mtbench_answer_student|mtbench_answer_reference"),
    ("(the remaining MT-Bench answers)", ANSWERS, None, None),
    ("judging: MT-Bench's judgments and samples written, its scores not yet", JUDGED,
     "write.before_rename:3", "judge_answers"),
    ("judging: MT-Bench graded, AlpacaEval's scores not yet", JUDGED,
     "write.before_rename:6", "judge_answers"),
    ("(the remaining judging)", JUDGED, None, None),
    ("report: first table renamed, the next not yet", FINAL, "write.before_rename:2", "report"),
    ("(the rerun of the whole workflow)", FINAL, None, None),
]  # fmt: skip


def failed_rules(stderr: str) -> set[str]:
    return set(re.findall(r"^Error in rule (\w+):", stderr, flags=re.MULTILINE))


def run_round(config: Path, workdir: Path, targets: list[str], fault: str | None):
    args = ["--cores", "1", "--configfile", str(config), "--directory", str(workdir), *targets]
    if fault == "SIGTERM":
        return sigterm_round(args, workdir)
    return snakemake(*args, timeout=20 * 60, env={"CODIT_FAULT": fault} if fault else None)


def sigterm_round(args: list[str], workdir: Path) -> subprocess.CompletedProcess:
    """Start Snakemake, wait until an SFT job has saved a new checkpoint (so it is training), then
    SIGTERM Snakemake and its jobs together, as a pre-empted allocation or a closed session does."""
    return interrupted_round(args, workdir, "results/sft/**/*.checkpoints/checkpoint-*",
                             signal.SIGTERM)  # fmt: skip


def interrupted_round(
    args: list[str], workdir: Path, pattern: str, kill: signal.Signals
) -> subprocess.CompletedProcess:
    """Run Snakemake with `args` until `pattern` matches a path that was not there before (earlier
    rounds left theirs), then send `kill` to Snakemake's whole process group; returns once every
    process of the group has exited."""
    before = set(workdir.glob(pattern))
    process = subprocess.Popen(
        [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=REPO, env=with_venv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while not set(workdir.glob(pattern)) - before:
        assert process.poll() is None, (pattern, process.communicate()[1][-5000:])
        assert time.monotonic() < deadline, f"{pattern} did not appear in 10 minutes"
        time.sleep(0.05)
    os.killpg(process.pid, kill)
    stdout, stderr = process.communicate(timeout=300)
    while True:  # every process of the group has exited before the next round starts
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline + 300, f"a job outlived {kill.name}"
        time.sleep(0.2)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def adapters_of(workdir: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(workdir)): path.read_bytes()
        for path in sorted((workdir / "results/sft").rglob("adapter_model.safetensors"))
    }


@pytest.fixture(scope="module")
def clean_run(tinyworld_build, tmp_path_factory) -> tuple[Path, Path]:
    """The small grid's config and an uninterrupted run of it, which both tests match."""
    root = tmp_path_factory.mktemp("faults")
    config = small_config(root / "small.yaml")
    settings = yaml.safe_load(config.read_text())
    settings["sft"]["checkpoint_steps"] = 4  # several SFT checkpoints per job
    config.write_text(yaml.safe_dump(settings))
    clean = root / "clean"
    # The tiny world is an input here, not what is tested: runs start from the shared build.
    tinyworld_cache.copy_into(tinyworld_build, clean)
    result = snakemake("--cores", "1", "--configfile", str(config), "--directory", str(clean),
                       timeout=30 * 60)  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    return config, clean


def assert_same_results_and_nothing_half_written(run: Path, clean: Path) -> None:
    assert results_of(run) == results_of(clean)
    assert adapters_of(run) == adapters_of(clean) != {}
    for name in ("main.md", "main.tex", "datasets.csv", "paired.csv", "paired.md"):
        assert (run / "results/tables" / name).read_bytes() == (
            clean / "results/tables" / name
        ).read_bytes()
    # Nothing half-written is left behind: no temporary files, checkpoints or staging folders.
    leftovers = [
        path
        for folder in ("results", "resources/tinyworld")
        for path in (run / folder).rglob("*")
        if path.name.endswith((".tmp", ".checkpoint", ".checkpoints", ".old"))
        or ".tmp-" in path.name
        or (path.parent.name == "models" and path.name.startswith("."))
    ]
    assert leftovers == []


def test_killed_at_every_stage_the_rerun_equals_an_uninterrupted_run(clean_run, tmp_path):
    config, clean = clean_run
    faulty = tmp_path / "faulty"
    shutil.copytree(clean / "resources", faulty / "resources")

    for what, targets, fault, expected in ROUNDS:
        result = run_round(config, faulty, targets, fault)
        if expected is None:
            assert result.returncode == 0, (what, result.stderr[-5000:])
        else:
            assert result.returncode != 0, f"{what}: {fault} did not stop the round"
            if fault != "SIGTERM":  # SIGTERM stops Snakemake itself, before it reports jobs
                failed = failed_rules(result.stderr)
                assert failed and failed <= set(expected.split("|")), (what, result.stderr[-5000:])

    assert_same_results_and_nothing_half_written(faulty, clean)


# Where the whole Snakemake process group is SIGKILLed (a crashed laptop or login node, the OOM
# killer): once each of these has appeared since the round began.
CRASH_POINTS = [
    ("tiny world training", "resources/tinyworld/models/.llama-instruct.checkpoint"),
    ("generation", "results/datasets/**/shards/*.jsonl.checkpoint"),
    ("SFT", "results/sft/**/*.checkpoints/checkpoint-*"),
    ("evaluation", "logs/eval/**/*.log"),
]  # fmt: skip


def test_snakemake_killed_outright_at_several_points_a_plain_rerun_continues(
    clean_run, tinyworld_build, tmp_path
):
    """SIGKILL to Snakemake and all its jobs at once, during the tiny world's training,
    generation, SFT and evaluation; after each, the same command again and nothing else: no
    `--unlock`, every killed job resumed or rerun, and results equal to an uninterrupted
    run's (the rebuilt instruct model equal to the shared build's, byte for byte)."""
    config, clean = clean_run
    crashed = tmp_path / "crashed"
    shutil.copytree(clean / "resources", crashed / "resources")
    shutil.rmtree(crashed / "resources/tinyworld/models/llama-instruct")  # trained again here
    args = ["--cores", "all", "--configfile", str(config), "--directory", str(crashed)]
    for what, pattern in CRASH_POINTS:
        interrupted_round(args, crashed, pattern, signal.SIGKILL)
        assert list((crashed / ".snakemake/locks").iterdir()), f"{what}: no locks left to clear"
    final = snakemake(*args, timeout=30 * 60)
    assert final.returncode == 0, final.stderr[-5000:]
    assert "removed the Snakemake locks of a run that ended without removing them" in final.stderr
    resumed = (crashed / "logs/tinyworld/llama-instruct.log").read_text()
    assert "resumed from" in resumed, "the instruct model's training must have resumed"
    model = "resources/tinyworld/models/llama-instruct/model.safetensors"
    assert (crashed / model).read_bytes() == (tinyworld_build / model).read_bytes()
    assert_same_results_and_nothing_half_written(crashed, clean)
    assert not (crashed / ".snakemake/locks").exists()
