"""Every job of the experiment grid, enumerated once, and the paths each one writes.

`grid_jobs` lists the jobs of the grid's rules (generation, gathering, the baselines, SFT,
chat vectors, evaluation) with their wildcards. The Snakemake targets (workflow/rules/common.smk)
and `codit cost` both read this list; tests/test_jobs.py checks that its counts equal those of
`snakemake -n` for config/config.yaml and config/paper.yaml.

The path templates below are the one spelling of each job's place: the rules' `output:`,
`log:` and `benchmark:` paths are built from them (with Snakemake wildcards in braces), and the
targets fill them with `Job.fill`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codit.workflow.benchmarks import benchmarks
from codit.workflow.config import Grid, build_grid
from codit.workflow.naming import BEST_OF_N, PUBLIC, parse_arm

# One replicate's folder.
SEED_DIR = "seed{seed}"
# Where each kind of job lives below results/, logs/<stage>/ and benchmarks/<stage>/.
DATASET_ID = "{pair}/{arm}/" + SEED_DIR  # a dataset sampled from (or picked for) a teacher pair
SHARD_ID = DATASET_ID + "/{shard}"  # one generation job's share of a dataset
PUBLIC_DATASET_ID = PUBLIC + "/{arm}"  # a public dataset, shared by every pair and seed
TRAINED_ID = DATASET_ID + "/{student}"  # a student fine-tuned on a dataset (pair `public` included)
CHAT_VECTOR_ID = "{pair}/{arm}/{student}"  # a student edited in weight space, no seed
REFERENCE_ID = "reference/{model}"  # an untouched model, evaluated as a reference line
# What the jobs that every grid job reads write: the instruction pool, the lm-eval manifest.
INSTRUCTION_POOL = "results/instructions/pool.jsonl"
INSTRUCTION_CARD = "results/instructions/card.json"
TASKS_MANIFEST = "results/eval/tasks.json"
# What the jobs write (prefixes: a rule adds `.json`, `/card.json` ...).
DATASET_DIR = "results/datasets/" + DATASET_ID
SHARD_PATH = DATASET_DIR + "/shards/{shard}"
PUBLIC_DATASET_DIR = "results/datasets/" + PUBLIC_DATASET_ID
SFT_DIR = "results/sft/" + TRAINED_ID
CHAT_VECTOR_DIR = "results/chatvector/" + CHAT_VECTOR_ID
EVAL_TRAINED = "results/eval/" + TRAINED_ID
EVAL_CHAT_VECTOR = "results/eval/" + CHAT_VECTOR_ID
EVAL_REFERENCE = "results/eval/" + REFERENCE_ID
# A judged benchmark's answers and grades beside an evaluation (`evaluated`: the path of the
# evaluation below results/eval/; `task`: a judged benchmark's task name, e.g. mt_bench).
EVALUATED = "results/eval/{evaluated}"
JUDGED_DIR = EVALUATED + ".{task}"
# Each judged benchmark's task name (config key under `evaluation`) and its commands' name
# (`codit <name> answer`, rules `<name>_answer_*`), in the order they are graded.
JUDGED_BENCHMARKS = {benchmark.task: benchmark.command for benchmark in benchmarks()}
ANSWER_RULE_KINDS = ("student", "chatvector", "reference")

# What `codit report` writes below the results folder, by the report rule's output names.
REPORT_DIR = "results"
REPORT_OUTPUTS = {
    "table": "tables/main.csv",
    "markdown": "tables/main.md",
    "latex": "tables/main.tex",
    "summary": "tables/summary.csv",
    "paired": "tables/paired.md",
    "paired_csv": "tables/paired.csv",
    "verdicts": "tables/verdicts.md",
    "verdicts_csv": "tables/verdicts.csv",
    "datasets": "tables/datasets.csv",
    "metric_figure": "figures/metric_vs_alpha.png",
    "length_figure": "figures/length_vs_alpha.png",
    "heatmap_figure": "figures/paired_heatmap.png",
    "judged_figure": "figures/judged_vs_alpha.png",
    "verdicts_figure": "figures/verdicts.png",
    "provenance": "report_provenance.json",
}

# The grid's rules, in the order their jobs run.
RULES = (
    "generate_shard",
    "gather_dataset",
    "best_of_n",
    "public_dataset",
    "sft",
    "chat_vector",
    "evaluate_student",
    "evaluate_chatvector",
    "evaluate_reference",
    *(f"{name}_answer_{kind}" for name in JUDGED_BENCHMARKS.values() for kind in ANSWER_RULE_KINDS),
    "judge_answers",
)
# Each evaluation rule, the kind of its judged benchmarks' answering rules (the same model) and
# the path of the evaluation below results/eval/.
JUDGED_OF = {
    "evaluate_student": ("student", TRAINED_ID),
    "evaluate_chatvector": ("chatvector", CHAT_VECTOR_ID),
    "evaluate_reference": ("reference", REFERENCE_ID),
}


def answer_rule(task: str, kind: str) -> str:
    """The rule that answers benchmark `task` with a model of `kind` (student, chatvector,
    reference): `alpacaeval_answer_student` ..."""
    return f"{JUDGED_BENCHMARKS[task]}_answer_{kind}"


@dataclass(frozen=True)
class Job:
    """One job of a grid rule: the rule's name and the values of its wildcards."""

    rule: str
    wildcards: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str:
        return dict(self.wildcards)[key]

    def fill(self, template: str) -> str:
        """A path template with this job's wildcards put in."""
        return template.format(**dict(self.wildcards))


def job(rule: str, **wildcards: Any) -> Job:
    return Job(rule, tuple((key, str(value)) for key, value in wildcards.items()))


def shard_names(num_shards: int) -> list[str]:
    """`000-of-004` ...: the shard wildcard of each generation job of one dataset."""
    return [f"{index:03d}-of-{num_shards:03d}" for index in range(num_shards)]


def parse_shard(shard: str) -> tuple[int, int]:
    """`001-of-004` -> (1, 4)."""
    index, total = (int(part) for part in shard.split("-of-"))
    return index, total


def shard_bounds(num_items: int, num_shards: int, shard_index: int) -> tuple[int, int]:
    """[start, end) of shard `shard_index`: contiguous, order preserving, sizes differ by <= 1."""
    if num_shards < 1:
        raise ValueError(f"--num-shards must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index must lie in [0, {num_shards - 1}], got {shard_index}")
    return num_items * shard_index // num_shards, num_items * (shard_index + 1) // num_shards


def dataset_dir(pair: str, arm: str, seed: int | str) -> str:
    """Where one dataset lives: per teacher pair and seed, or once for a public one."""
    if pair == PUBLIC:
        return PUBLIC_DATASET_DIR.format(arm=arm)
    return DATASET_DIR.format(pair=pair, arm=arm, seed=seed)


def trained_datasets(grid: Grid) -> list[tuple[str, str, int]]:
    """(pair, arm, seed) of every dataset a student is fine-tuned on; a public dataset is
    trained once per public seed under the `public` pair."""
    runs = [(pair, arm, seed) for pair in grid.pairs for arm in grid.arms for seed in grid.seeds]
    return runs + [(PUBLIC, arm, seed) for arm in grid.public for seed in grid.public_seeds]


def grid_jobs(grid: Grid, num_shards: int, judged: Sequence[str] = ()) -> list[Job]:
    """Every job of the grid's rules (RULES), each once; `judged`: the judged benchmarks
    (tasks) every evaluated model also answers, one job each, all graded by one judging job."""
    jobs = []
    best_of_n = [arm for arm in grid.arms if parse_arm(arm).kind == BEST_OF_N]
    for pair in grid.pairs:
        for seed in grid.seeds:
            for arm in grid.generated_arms:
                jobs += [
                    job("generate_shard", pair=pair, arm=arm, seed=seed, shard=shard)
                    for shard in shard_names(num_shards)
                ]
                jobs.append(job("gather_dataset", pair=pair, arm=arm, seed=seed))
            jobs += [job("best_of_n", pair=pair, arm=arm, seed=seed) for arm in best_of_n]
    jobs += [job("public_dataset", arm=arm) for arm in grid.public]
    for pair, arm, seed in trained_datasets(grid):
        for student in grid.students:
            jobs.append(job("sft", pair=pair, arm=arm, seed=seed, student=student))
            jobs.append(job("evaluate_student", pair=pair, arm=arm, seed=seed, student=student))
    for vector in grid.chat_vectors:
        wildcards = {"pair": vector.pair, "arm": vector.arm, "student": vector.student.slug}
        jobs += [job("chat_vector", **wildcards), job("evaluate_chatvector", **wildcards)]
    jobs += [job("evaluate_reference", model=model) for model in grid.references]
    if judged:
        for evaluation in [j for j in jobs if j.rule in JUDGED_OF]:
            kind, evaluated = JUDGED_OF[evaluation.rule]
            jobs += [Job(answer_rule(task, kind), evaluation.wildcards) for task in judged]
            jobs.append(job("judge_answers", evaluated=evaluation.fill(evaluated)))
    return jobs


def judged_tasks(config: dict[str, Any]) -> list[str]:
    """The judged benchmarks a validated config turns on, in grading order."""
    evaluation = config["evaluation"]
    return [task for task in JUDGED_BENCHMARKS if evaluation.get(task, {}).get("enabled")]


def config_jobs(config: dict[str, Any], grid: Grid | None = None) -> list[Job]:
    """The jobs of a validated config (pass its grid when it is built already)."""
    return grid_jobs(
        grid or build_grid(config),
        config["generation"]["num_shards"],
        judged=judged_tasks(config),
    )


def job_counts(jobs: list[Job]) -> dict[str, int]:
    """Jobs per rule, as `snakemake -n` tallies them."""
    return dict(Counter(job.rule for job in jobs))


def of_rule(jobs: list[Job], rule: str) -> list[Job]:
    return [job for job in jobs if job.rule == rule]
