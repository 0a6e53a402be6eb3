"""The Snakemake DAG: dry runs of both configs (job counts per rule), lint, early config errors,
and (slow) the whole tiny-world DAG for real."""

import csv
import json
import re
from pathlib import Path

import pytest
import tinyworld_cache
import yaml
from warm_runtime import warm_jobs, warm_outcomes
from workflow_runs import (
    REPO,
    derived_config,
    job_blocks,
    job_counts,
    snakemake,
)

from codit.tools.cost import load_config
from codit.workflow.jobs import RULES, config_jobs
from codit.workflow.jobs import job_counts as grid_job_counts

# Rules that run on compute nodes, with the GPUs of their models.
COMPUTE_RULES = {
    "generate_shard",
    "sft",
    "evaluate_student",
    "evaluate_reference",
    "evaluate_chatvector",
    "mtbench_answer_student",
    "mtbench_answer_reference",
    "mtbench_answer_chatvector",
}


# CPUs per job of each compute rule in config/paper.yaml (resources.<stage>.cpus).
PAPER_CPUS = {
    "generate_shard": 4,
    "sft": 8,
    "evaluate_student": 8,
    "evaluate_reference": 8,
    "evaluate_chatvector": 8,
    "mtbench_answer_student": 8,
    "mtbench_answer_reference": 8,
    "mtbench_answer_chatvector": 8,
}
# Local rules fetch into the hub cache on the login node; nothing else may reach the network.
FETCH_RULES = {
    "download_model",
    "prepare_instructions",
    "prefetch_eval_tasks",
    "public_dataset",
    "fetch_mtbench",
    "fetch_alpacaeval",
    "fetch_wildbench",
}
OFFLINE = "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1"
# config/paper.yaml's judge: gpt-oss-120b served by vLLM in each judging job.
PAPER_JUDGE_SERVE = (
    "envs/.vllm/bin/vllm serve openai/gpt-oss-120b --host 127.0.0.1 --port {port} "
    "--tensor-parallel-size 2"
)
HUB_ENV = "HF_HOME=resources/hub/huggingface NLTK_DATA=resources/hub/nltk_data"


def assert_package_lists_the_same_jobs(configfile, dry_run_counts):
    """codit.workflow.jobs (read by the targets and by `codit cost`) lists exactly the grid jobs
    that Snakemake plans."""
    listed = grid_job_counts(config_jobs(load_config(configfile)))
    planned = {rule: count for rule, count in dry_run_counts.items() if rule in RULES}
    assert listed == planned


def test_paper_config_dry_run_lists_the_full_grid(tmp_path):
    # --cores 64: a dry run caps threads at the local cores; SLURM jobs get their own CPUs.
    result = snakemake(
        "-n", "-p", "--cores", "64", "--profile", str(REPO / "profiles/slurm"), "--configfile",
        str(REPO / "config/paper.yaml"), "--directory", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    jobs = job_blocks(result.stdout)
    for rule, resources, command in jobs:
        if rule in COMPUTE_RULES:
            assert int(resources["gpu"]) >= 1 and int(resources["runtime"]) > 0, (rule, resources)
            assert int(resources["mem_mb"]) > 0, (rule, resources)
            assert int(resources["threads"]) == PAPER_CPUS[rule], (rule, resources)
            assert command.startswith(f"{HUB_ENV} {OFFLINE} codit "), command
            assert f"--threads {PAPER_CPUS[rule]} " in command, command
        elif rule in FETCH_RULES:
            assert command.startswith(f"{HUB_ENV} codit "), command
        # Only the fetch rules run with network access to the hub cache.
        assert (rule in FETCH_RULES) == command.startswith(f"{HUB_ENV} codit "), (rule, command)
    assert {rule for rule, _, _ in jobs} >= COMPUTE_RULES | FETCH_RULES
    # Best-of-N asks for its own stage's memory and time (resources.bestofn of paper.yaml).
    best_of_n = [resources for rule, resources, _ in jobs if rule == "best_of_n"]
    assert best_of_n and all((r["mem_mb"], r["runtime"]) == ("8000", "2880") for r in best_of_n), (
        best_of_n
    )
    pairs, shards, students, references, seeds = 3, 32, 3, 9, 3
    # per pair and seed: direct, 3 more direct samples for Best-of-4, 5 CoDIT alphas generated;
    # direct, Best-of-4 and the 5 CoDIT arms trained; 2 public datasets trained once per seed
    generated, trained, public, chat_vectors = 9, 7, 2, 2
    assert job_counts(result.stdout) == {
        "download_model": 9,
        "prepare_instructions": 1,
        "prefetch_eval_tasks": 1,
        "generate_shard": pairs * seeds * generated * shards,
        "gather_dataset": pairs * seeds * generated,
        "best_of_n": pairs * seeds,
        "public_dataset": public,
        "sft": (pairs * trained + public) * seeds * students,
        "evaluate_student": (pairs * trained + public) * seeds * students,
        "chat_vector": chat_vectors,
        "evaluate_chatvector": chat_vectors,
        "evaluate_reference": references,
        # The judged benchmarks: each fetched once; every evaluated model answers each, and one
        # judging job per evaluated model grades its three answer files
        **{f"fetch_{name}": 1 for name in ("mtbench", "alpacaeval", "wildbench")},
        **{
            f"{name}_answer_{kind}": count
            for name in ("mtbench", "alpacaeval", "wildbench")
            for kind, count in (
                ("student", (pairs * trained + public) * seeds * students),
                ("chatvector", chat_vectors),
                ("reference", references),
            )
        },
        "judge_answers": (pairs * trained + public) * seeds * students + chat_vectors + references,
        "report": 1,
        "all": 1,
    }
    assert_package_lists_the_same_jobs(REPO / "config/paper.yaml", job_counts(result.stdout))
    assert "tinyworld" not in result.stdout  # the paper grid does not build the tiny world
    commands = {rule: [c for r, _, c in jobs if r == rule] for rule, _, _ in jobs}
    # Best-of-4 scores direct samples 0..3 of its own seed with the judge of the config.
    judged = next(c for c in commands["best_of_n"] if "qwen3-8b/bestof4_judge/seed1" in c)
    samples = ["direct/seed1"] + [f"direct_sample{j}/seed1" for j in (1, 2, 3)]
    assert all(f"results/datasets/qwen3-8b/{sample}/data.jsonl" in judged for sample in samples)
    assert f"--scorer judge --judge-serve '{PAPER_JUDGE_SERVE}'" in judged
    assert "--judge-model openai/gpt-oss-120b" in judged and "--seed 1" in judged
    # A public dataset is as large as the smallest CoDIT dataset of the first seed.
    alpaca = next(c for c in commands["public_dataset"] if "--name alpaca" in c)
    assert "--source hub:tatsu-lab/alpaca" in alpaca and "--context-field input" in alpaca
    assert alpaca.count("/seed0/card.json") == pairs * 5 and "/seed1/" not in alpaca
    judged = next(c for c in commands["judge_answers"] if "reference/qwen3-8b " in c)
    assert (
        "codit judged --evaluated results/eval/reference/qwen3-8b --mt-bench resources/hub/"
        "mt_bench --alpaca-eval resources/hub/alpaca_eval --wildbench resources/hub/wildbench "
        "--mt-bench-reference gpt-4 --alpaca-eval-seed 0 --alpaca-eval-top-logprobs 0"
    ) in judged
    assert f"--judge-serve '{PAPER_JUDGE_SERVE}' --judge-model openai/gpt-oss-120b" in judged
    # Each judging job serves the judge on GPUs of its own.
    assert {r["gpu"] for rule, r, _ in jobs if rule in ("judge_answers", "best_of_n")} == {"2"}
    for name, task, tokens in (("mtbench", "mt_bench", 1024), ("alpacaeval", "alpaca_eval", 2048),
                               ("wildbench", "wildbench", 4096)):  # fmt: skip
        answered = next(c for c in commands[f"{name}_answer_reference"] if "qwen3-8b " in c)
        assert f"codit {name} answer --model resources/hub/models/qwen3-8b " in answered
        engine = "--backend vllm --batch-size 16 --dtype bfloat16 --device cuda"
        assert f"--max-new-tokens {tokens} {engine}" in answered
        # On vLLM a model is split over the GPUs of its job: one for Qwen3-8B, two for 27B.
        assert "--vllm-tensor-parallel-size" not in answered
        large = next(c for c in commands[f"{name}_answer_reference"] if "gemma-3-27b-it " in c)
        assert "--vllm-tensor-parallel-size 2 " in large
        assert answered.endswith(
            f"--out results/eval/reference/qwen3-8b.{task}/answers.jsonl --card results/eval/"
            f"reference/qwen3-8b.{task}/answers.card.json > logs/judged/reference/qwen3-8b.{task}"
            ".answer.log 2>&1"
        )
    # Generation on vLLM: a job's GPUs are its tensor parallelism (a pair: post + pre GPUs).
    shards = [(r, c) for rule, r, c in jobs if rule == "generate_shard"]
    assert all("--backend vllm " in c and "--vllm-python " in c for _, c in shards)
    expected = [("qwen3-8b", "direct", 1), ("qwen3-8b", "codit", 2),
                ("qwen3-30b-a3b", "direct", 2), ("gemma-3-27b", "codit", 4)]  # fmt: skip
    for pair, mode, gpus in expected:
        resources, command = next((r, c) for r, c in shards if f"--mode {mode} --pair {pair} " in c)
        assert resources["gpu"] == str(gpus), (pair, mode, resources)
        parallel = f"--vllm-tensor-parallel-size {gpus} "
        assert (parallel in command) == (gpus > 1), command
    vector = commands["chat_vector"][0]
    assert "--student resources/hub/models/qwen3-8b-base" in vector and "--ratio " in vector


def test_a_judge_the_job_serves_runs_on_the_jobs_gpus(tmp_path):
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    serve = "vllm serve openai/gpt-oss-120b --host 127.0.0.1 --port {port}"
    config["judge"] = {"serve": serve, "model": "openai/gpt-oss-120b", "gpus": 2}
    (tmp_path / "served.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(
        "-n", "-p", "--configfile", str(tmp_path / "served.yaml"), "--directory", str(tmp_path)
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    judged = [(r, c) for rule, r, c in job_blocks(result.stdout) if rule == "best_of_n"]
    assert len(judged) == 9
    for resources, command in judged:
        assert resources["gpu"] == "2", resources
        assert f"--judge-serve '{serve}' --judge-model openai/gpt-oss-120b" in command, command
        assert "--judge-url" not in command and "--server-log logs/bestofn/" in command


def test_the_tiny_worlds_mt_bench_alone_with_its_served_judge_is_in_the_dag(tmp_path):
    """MT-Bench alone on in the tiny world: every evaluated model answers it, every answer file
    is graded by a judging job that serves the world's judge; nothing of the other two."""
    config = derived_config(
        tmp_path / "mt_bench.yaml",
        {"evaluation": {"mt_bench": {"enabled": True, "bench": "tinyworld"},
                        "alpaca_eval": {"enabled": False}, "wildbench": {"enabled": False}}},
        {"judge": {"serve": TINY_JUDGE, "model": "tinyworld-oracle-judge"}},
    )  # fmt: skip
    result = snakemake("-n", "-p", "--configfile", str(config), "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    evaluated = counts["evaluate_student"] + counts["evaluate_chatvector"] + 3
    assert counts["judge_answers"] == counts["mtbench_answer_student"] + 5 == evaluated == 47
    assert "fetch_mtbench" not in counts  # the tiny world builds its own bench
    assert not [rule for rule in counts if "alpaca" in rule or "wildbench" in rule], counts
    judged = [c for rule, _, c in job_blocks(result.stdout) if rule == "judge_answers"]
    assert all(f"--judge-serve '{TINY_JUDGE}'" in c for c in judged)
    assert all(" --mt-bench resources/tinyworld/mt_bench --mt-bench-reference" in c for c in judged)
    assert_package_lists_the_same_jobs(config, counts)


def test_tiny_world_dry_run(tmp_path):
    result = snakemake(
        "-n", "--configfile", str(REPO / "config/config.yaml"), "--directory", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    shards, students, references, seeds = 1, 2, 3, 3
    # per seed: direct, 3 more direct samples for Best-of-4 and 4 CoDIT alphas generated;
    # direct, Best-of-4 (oracle) and the 4 CoDIT arms trained, and the public dataset
    generated, trained, chat_vectors = 8, 6, 2
    assert job_counts(result.stdout) == {
        "tinyworld_data": 1,
        "tinyworld_model": 3,
        "prepare_instructions": 1,
        "prefetch_eval_tasks": 1,
        "generate_shard": seeds * generated * shards,
        "gather_dataset": seeds * generated,
        "best_of_n": seeds,
        "public_dataset": 1,
        "sft": (trained + 1) * seeds * students,
        "evaluate_student": (trained + 1) * seeds * students,
        "chat_vector": chat_vectors,
        "evaluate_chatvector": chat_vectors,
        "evaluate_reference": references,
        # The three judged benchmarks: every evaluated model answers each, and one judging job
        # per evaluated model grades the three with a served tiny judge; the tiny AlpacaEval's
        # reference outputs are the tiny instruct model's
        "tinyworld_alpacaeval": 1,
        **{
            f"{name}_answer_{kind}": count
            for name in ("mtbench", "alpacaeval", "wildbench")
            for kind, count in (
                ("student", (trained + 1) * seeds * students),
                ("chatvector", chat_vectors),
                ("reference", references),
            )
        },
        "judge_answers": (trained + 1) * seeds * students + chat_vectors + references,
        "report": 1,
        "all": 1,
    }
    assert_package_lists_the_same_jobs(REPO / "config/config.yaml", job_counts(result.stdout))


@pytest.mark.parametrize("study", ["decide", "decide-replication", "decide-replication-2"])
def test_deciding_study_dry_run_trains_every_student_on_every_world(study, tmp_path):
    configfile = REPO / f"config/{study}.yaml"
    result = snakemake("-n", "--configfile", str(configfile), "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr
    worlds, students, alphas, public_seeds = 12, 2, 3, 4
    # per world: direct, 3 more direct samples for Best-of-4 and 3 CoDIT alphas generated;
    # direct, Best-of-4 and the CoDIT arms trained; the public dataset once for all worlds,
    # trained with its own four seeds
    generated, trained = 1 + 3 + alphas, 1 + 1 + alphas
    models = worlds * trained * students + public_seeds * students
    counts = job_counts(result.stdout)
    assert counts["tinyworld_world_model"] == 2 * worlds  # each world's base and instruct
    assert counts["tinyworld_model"] == 3  # the students and the tiny AlpacaEval's reference
    assert counts["generate_shard"] == worlds * generated
    assert counts["sft"] == counts["evaluate_student"] == counts["judge_answers"] == models
    assert "chat_vector" not in counts and "evaluate_reference" not in counts
    assert_package_lists_the_same_jobs(configfile, counts)
    world, seed = {"decide": (1, 0), "decide-replication": (13, 1)}.get(study, (25, 2))
    student = f"results/sft/world{world}/direct/seed{seed}/tiny-gpt2-base/train_record.json"
    planned = snakemake(
        "-n", "-p", "--configfile", str(configfile), "--directory", str(tmp_path), student
    )  # fmt: skip
    commands = [line for line in planned.stdout.splitlines() if "codit " in line]
    # the world's teacher trains with the world's seed; its arms sample and train with seeds
    # of their own (seed_offset 1000 x world), so no two worlds share random numbers
    assert any("--models-dir" in c and f"--seed {world} " in c for c in commands)
    own_seed = f"--seed {1000 * world + seed} "
    assert any("codit generate" in c and own_seed in c for c in commands)
    assert any("codit sft" in c and own_seed in c for c in commands)


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_bad_config_fails_at_dry_run_naming_the_key(tmp_path):
    config = (REPO / "config/config.yaml").read_text().replace("top_p: 1.0", "top_p: 1.7")
    (tmp_path / "bad.yaml").write_text(config)
    result = snakemake("-n", "--configfile", "bad.yaml", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "1.7 is greater than the maximum of 1" in output
    assert "['generation']['top_p']" in output


# The smoke grid (config/smoke.yaml): every rule and every kind of arm once, as small as that
# allows. The whole grid (every alpha, three seeds) is `make run`'s job.
TINY_JUDGE = "codit tinyworld judge --world resources/tinyworld --port {port}"
SMOKE = REPO / "config/smoke.yaml"
SMOKE_ARMS = ["direct", "bestof2_oracle", "public_tinyworld-rules", "codit_alpha0.1_beta1"]
# Rules the smoke run itself does not run: the tiny world comes from the shared build (which
# these rules made, tinyworld_cache.built), and the tiny world has no Hub model to download
# and its own judged benchmarks. A world's teacher (tinyworld_world_model, the deciding study's)
# is `codit tinyworld train --models-dir --seed`: test_tinyworld trains one, the deciding
# study's dry runs plan twelve.
NOT_IN_SMOKE_RUN = {
    "tinyworld_data", "tinyworld_model", "tinyworld_alpacaeval", "tinyworld_world_model",
    "download_model", "fetch_mtbench", "fetch_alpacaeval", "fetch_wildbench",
}  # fmt: skip


def rules_of_workflow() -> set[str]:
    listed = snakemake("--list-rules")
    assert listed.returncode == 0, listed.stderr
    return set(listed.stdout.split())


def test_the_smoke_config_plans_every_rule_and_arm_kind(tmp_path):
    """config/smoke.yaml from an empty folder: every rule but the Hub's and a world's own
    teacher (the smoke run below takes the tiny world from the shared build)."""
    result = snakemake("-n", "--configfile", str(SMOKE), "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr
    hub_only = {"download_model", "fetch_mtbench", "fetch_alpacaeval", "fetch_wildbench"}
    assert set(job_counts(result.stdout)) == rules_of_workflow() - hub_only - {
        "tinyworld_world_model"
    }
    assert_package_lists_the_same_jobs(SMOKE, job_counts(result.stdout))


@pytest.mark.slow
def test_smoke_grid_runs_every_rule_and_every_arm_kind(tinyworld_build, warm_directory, tmp_path):
    tinyworld_cache.copy_into(tinyworld_build, tmp_path)
    result = snakemake(
        "--cores", "1", "--configfile", str(SMOKE), "--directory", str(tmp_path),
        timeout=40 * 60, env={"CODIT_WARM_DIR": str(warm_directory)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    ran = job_counts(result.stdout + result.stderr)
    assert set(ran) == rules_of_workflow() - NOT_IN_SMOKE_RUN, ran
    # A local run forks its jobs from warm servers (codit.workflow.warm): all but the first of a
    # kind.
    warm_stages = {command.split()[1] for _, command in warm_jobs(warm_directory)}
    assert {"generate", "sft", "evaluate"} <= warm_stages, warm_stages
    assert set(warm_outcomes(warm_directory)) == {"exit 0"}
    with open(tmp_path / "results/tables/main.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "teacher_pair", "student", "student_architecture", "teacher_architecture", "arm",
        "arm_name", "alpha", "beta", "seed", "task", "metric", "value", "stderr", "n_scored",
        "n_items",
    ]  # fmt: skip
    # The oracle judge's every verdict is readable: judged cells rest on all their items.
    judged = [row for row in rows if row["n_items"]]
    assert judged and all(row["n_scored"] == row["n_items"] for row in judged)
    # every student x arm and every reference model has both tasks
    seen = {(row["student"], row["arm_name"], row["seed"], row["task"]) for row in rows}
    tasks = ("tinyworld_ifeval", "tinyworld_knowledge")
    for student in ("tiny-llama-base", "tiny-gpt2-base"):
        for arm in SMOKE_ARMS:
            for task in tasks:
                assert (student, arm, "0", task) in seen, (student, arm, task)
    for task in tasks:
        assert ("tiny-llama-base", "chatvector_r1", "", task) in seen
        for model in ("tiny-llama-base", "tiny-llama-instruct", "tiny-gpt2-base"):
            assert (model, "reference", "", task) in seen
    architectures = {(row["student"], row["student_architecture"]) for row in rows}
    assert ("tiny-gpt2-base", "gpt2") in architectures
    # The chat vector at r = 1 on the pair's own base is the instruct model itself (up to
    # float32 rounding of base + (post - base), which may flip a rare greedy token).
    chat = {
        (r["task"], r["metric"]): float(r["value"])
        for r in rows
        if r["arm_name"] == "chatvector_r1"
    }
    teacher = {
        (r["task"], r["metric"]): float(r["value"])
        for r in rows
        if r["arm"] == "reference" and r["student"] == "tiny-llama-instruct"
    }
    assert chat.keys() == teacher.keys()
    assert all(abs(chat[key] - teacher[key]) <= 0.02 for key in chat), (chat, teacher)
    with open(tmp_path / "results/tables/summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    assert {row["arm_name"] for row in summary} >= set(SMOKE_ARMS)
    assert all(row["n_seeds"] == "1" for row in summary if row["arm"] == "codit")
    with open(tmp_path / "results/tables/datasets.csv") as handle:
        datasets = {row["arm_name"] for row in csv.DictReader(handle)}
    assert datasets >= set(SMOKE_ARMS)
    for figure in ("metric_vs_alpha.png", "length_vs_alpha.png", "paired_heatmap.png"):
        assert (tmp_path / "results/figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The judged benchmarks: every evaluated model graded on each by one judge its judging job
    # served once, then stopped (the server logs name their pids, all gone)
    evaluated = ran["evaluate_student"] + ran["evaluate_chatvector"] + 3
    assert ran["judge_answers"] == evaluated == 12
    judgments = {"mt_bench": 32, "alpaca_eval": 32, "wildbench": 20}  # per model
    for task, count in judgments.items():
        graded = sorted((tmp_path / "results/eval").rglob(f"*.{task}/scores.json"))
        assert len(graded) == evaluated, task
        for path in graded:
            scores = json.loads(path.read_text())
            assert scores["judgments"] == count, path
            assert scores.get("unparsable", scores.get("verdicts", {}).get("unparsable")) == 0
    # ... and in the tables beside the lm-eval tasks, with the alpha selected on MT-Bench
    for task in judgments:
        judged = {(row["student"], row["arm_name"]) for row in rows if row["task"] == task}
        assert len(judged) == 12 and ("tiny-llama-instruct", "reference") in judged, task
    markdown = (tmp_path / "results/tables/main.md").read_text()
    assert "## mt_bench/score (raw value, higher is better)" in markdown
    assert "## CoDIT α selected on mt_bench/score" in markdown and "(α=0.1)" in markdown
    with open(tmp_path / "results/tables/paired.csv") as handle:
        paired = {(row["task"], row["metric"]) for row in csv.DictReader(handle)}
    assert {("mt_bench", "score"), ("alpaca_eval", "win_rate"), ("wildbench", "score")} <= paired
    server_logs = list((tmp_path / "logs/judged").rglob("*.judge-server.log"))
    assert len(server_logs) == evaluated
    for log in server_logs:
        assert log.read_text().count("starting judge server") == 1, log
        pid = re.search(r"judge server pid (\d+)", log.read_text()).group(1)
        assert not Path(f"/proc/{pid}").exists(), log
    # a second run has nothing left to do: results are complete and up to date
    again = snakemake("-n", "--configfile", str(SMOKE), "--directory", str(tmp_path))
    assert "Nothing to be done" in again.stdout + again.stderr
