"""`codit cost`: GPU-hours per stage of a workflow config, from stated assumptions.

The config (e.g. config/paper.yaml) is validated with the workflow's JSON schema, which fills the
same defaults as the workflow, and resolved with `codit.workflow.config.build_grid`. The assumptions
(config/cost.yaml) give the GPU, the mean token counts and the models' shapes, keyed by Hub id.
Nothing is measured here: the result is arithmetic on those numbers, and it is only as good as
they are.

The model, per job; GPU-hours = seconds x the job's GPUs / 3600. The jobs are the workflow's own
(`codit.workflow.jobs.grid_jobs`, the list Snakemake's targets are built from), so every `seeds`
entry is a replicate: generation, Best-of-N scoring, SFT and the evaluation of trained students are
repeated per seed; the reference models and the chat vectors are evaluated once.

Generation (one job per teacher pair, sampled arm, seed and shard; the shards of an arm together
answer the config's `instructions.limit` instructions, or `--instructions N`; the sampled arms
are `direct`, the further direct samples `direct_sample1..N-1` that Best-of-N scores, at the
direct arm's cost each, and the CoDIT arms):
    Direct decoding is memory-bound. One step of R = generation.batch_size x batch_occupancy rows
    reads the post model's weights (params x bytes_per_param) and the KV cache of R rows at the
    mean context c = prompt + response / 2 tokens (full-attention layers: c tokens; sliding-window
    layers: min(c, window) tokens), so
        step seconds = (weights + R x KV(c)) / (memory bandwidth x decode_bandwidth_efficiency)
        decode tokens/s = R / step seconds.
    A model spread over several GPUs by accelerate's device_map runs its layers one after the
    other: no bandwidth is added, the step time stays, and the job holds all the GPUs (the
    workflow's `generation_gpus`: post.gpus for direct, post.gpus + pre.gpus for CoDIT).
    Prefill adds 2 x active params x prompt tokens FLOPs per instruction at prefill_mfu of the
    GPU's dense bf16 peak.
    CoDIT: the whole job (prefill and decode) takes the direct engine's time over
    codit_vs_direct_throughput, the `ratio_codit_vs_engine_direct` that `codit bench` measures
    end to end (prefill included); `--bench FILE` reads it from `codit bench --json` output,
    and with it the engine's measured `batch_occupancy` (continuous batching on the bench's
    paper-like length mix) in place of the assumed one, when the bench measured it.
Best-of-N scoring (one job per pair, Best-of-N arm and seed): no generation beyond the samples
above. The `judge` scorer makes N calls per instruction (one per candidate) to an LLM judge
served elsewhere; GPU-hours of that server = calls x (prompt + reply tokens) / its tokens/s per
GPU (config/cost.yaml `judge`; the prompt is instruction + direct response + the judging
prompt, the reply capped by judge.max_tokens). The `oracle` scorer runs on CPU: 0.
SFT (one job per pair, trained arm, seed and student; a public dataset: one per dataset, seed
and student, no teacher pair):
    tokens = examples x min(prompt + response, sft.max_length) x sft.epochs, where a teacher
    arm has `instructions` examples (a Best-of-N arm of direct responses) and a public dataset
    min(its `size`, or the CoDIT datasets' size (= instructions) when null, its usable rows)
    examples of its own token counts (config/cost.yaml `public_datasets`);
    FLOPs = flops_per_param_token x active params x tokens (6 for full fine-tuning; LoRA skips
    the frozen weights' gradients, 4; activation checkpointing recomputes the forward, +2);
    seconds = FLOPs / (dense bf16 peak x training_mfu); GPUs: the student's.
Chat vector (one job per pair, student and ratio): weight arithmetic on the CPU (the workflow's
rule asks for no GPU), 0 GPU-hours.
Evaluation (one job per student, pair, trained arm and seed; per public dataset, student and
seed; per chat vector; per reference model), per lm-eval task:
    ceil(items / evaluation.batch_size) batches of `generated_tokens` decode steps of
    evaluation.batch_size rows at context prompt + generated / 2, plus prefill as above; GPUs: the
    evaluated model's (a trained student or a chat vector has its base model's shape).
Judged benchmarks (MT-Bench, AlpacaEval 2.0, WildBench v2: evaluation.mt_bench,
evaluation.alpaca_eval, evaluation.wildbench, each on with `enabled`; a config without the section
has it off; config/cost.yaml `mt_bench`, `alpaca_eval`, `wildbench`). Every evaluated model, i.e.
every evaluation job above (counted from the workflow's evaluation jobs, whatever the answering
and judging rules are called), gets one answering job per enabled benchmark and ONE judging job
for all of them together:
    Answering (`codit mtbench|alpacaeval|wildbench answer`, the generation engine in direct
    mode, one model, on the evaluated model's GPUs; stages mt_bench_answer, alpaca_eval_answer,
    wildbench_answer): every item in every answering round (MT-Bench: both turns of every
    question; AlpacaEval: every instruction; WildBench: the last user turn of every task), each
    round in batches of evaluation.batch_size per answering group (MT-Bench: one per FastChat
    answering temperature; the other two answer greedily: one group). Direct generation's
    model per batch: a batch of b items decodes until its longest answer stops, steps
    = min(answer / batch_occupancy, max_new_tokens) with answer = min(answer_tokens,
    evaluation.<benchmark>.max_new_tokens), at b x answer / steps rows still decoding
    (b x batch_occupancy unless the cap binds) at context prompt + answer / 2; plus prefill of
    every prompt as above. The prompts: MT-Bench turn 1 question 1 + chat template, turn 2
    question 1 + answer 1 + question 2 + chat template; AlpacaEval the instruction + chat
    template; WildBench the conversation before the answer + chat template.
    Judging (stage judged_judge, one job per evaluated model; `codit mtbench|alpacaeval|
    wildbench judge` against one judge): the calls of every enabled benchmark add up. MT-Bench:
    2 x questions calls (one per question and turn); a call's prompt is the judge template + the
    question(s) + the answer(s): turn 1 question 1 and answer 1, turn 2 both questions and both
    answers; the reference-graded categories (codit.judged.mtbench.NEED_REF_CATS) add the turn-1
    reference answer, or for turn 2 a reference conversation (both questions and both reference
    answers). AlpacaEval: one pairwise call per instruction, prompt = alpaca_eval_clf's template
    + the instruction + the model's answer + the reference output, reply one token (with its top
    log-probabilities). WildBench: one call per task, prompt = the score template + the
    conversation + the answer + the checklist, reply the JSON of strengths, weaknesses and
    score. Each reply is the benchmark's judge_reply_tokens capped by judge.max_tokens.
    GPU-seconds of a benchmark's calls = calls x (prompt + reply) / the judge's tokens/s per GPU
    (as for Best-of-N); a judging job adds, when judge.serve runs the judge per job, judge.gpus
    x judge.serve_startup_s ONCE (the server starts once per evaluated model, not per
    benchmark). With judge.url the judge is an external endpoint: no start-up, the judging
    jobs hold no GPU, and the output says that the judge stages' GPU-hours (Best-of-N scoring
    and the judged benchmarks' judging, in the total) are that server's.

Not modelled (each makes the real cost higher): model loading per job (the judged benchmarks'
answering jobs included; only a served judge's start-up is counted), batch tails beyond
batch_occupancy, padding in SFT batches (packing is off), CoDIT responses of another length
(unless workload.codit_response_tokens says so), responses dropped or retried, failed jobs, a
judge server held while it is not saturated (a judging job sends judge.workers requests at a
time, so a judge it serves itself is far from saturated), judge calls retried, the start-up of a
judge served per Best-of-N scoring job, WildBench's cut of long histories and answers at 1,000
words in the judge's prompt (that one makes it lower).
The CoDIT ratio is measured on a tiny model on CPU and transferred as is; the share of skipped
pre-model steps, and so the ratio, depends on the teacher pair and the batch size.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from codit.tools.cost_assumptions import (
    BENCH_OCCUPANCY_KEY,
    BENCH_RATIO_KEY,
    DEFAULT_ASSUMPTIONS,
    GPU,
    Assumptions,
    EvalTask,
    ModelCost,
    PublicData,
    load_assumptions,
    read_bench_occupancy,
    read_bench_ratio,
    with_batch_occupancy,
    with_codit_ratio,
)
from codit.tools.cost_model import (
    answer_seconds,
    codit_generation,
    direct_generation,
    evaluation_seconds,
    judge_gpu_seconds,
    sft_seconds,
)
from codit.tools.cost_report import (
    JUDGE_STAGE,
    STAGE_LABELS,
    answer_stage,
    format_markdown,
    rounded,
)
from codit.workflow.benchmarks import Benchmark, benchmarks
from codit.workflow.config import (
    Grid,
    ModelSpec,
    PublicSpec,
    build_grid,
    schema_file,
    validate_config,
)
from codit.workflow.jobs import Job, config_jobs
from codit.workflow.naming import BEST_OF_N, CODIT, DIRECT_ARM, DIRECT_SAMPLE, PUBLIC, parse_arm

# The stages that ask the LLM judge (config `judge`: an endpoint at `url`, or served per job).
JUDGE_STAGES = ("best_of_n", "judged_judge")
# The evaluation rules of the workflow (one job per evaluated model) and the wildcard naming the
# model whose shape and GPUs it runs: every judged benchmark has one answering job per such job,
# and one judging job grades all of them (rules mtbench_answer_* ... and mtbench_judge or
# judge_answers in workflow/rules/judged.smk; counted from these, whatever those rules are named).
EVALUATED = {
    "evaluate_student": "student",
    "evaluate_chatvector": "student",
    "evaluate_reference": "model",
}
# What the output shows per judged benchmark.
JUDGED_SUMMARY = ("label", "answer_jobs", "answer_gpu_hours", "judge_calls", "judge_gpu_hours")


# --------------------------------------------------------------------------------------------
# The whole config


def load_config(path: str | Path, schema: str | Path | None = None) -> dict[str, Any]:
    """Read a workflow config and fill the schema's defaults, as the workflow does."""
    from snakemake.exceptions import WorkflowError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    schema = Path(schema or schema_file())
    if not schema.is_file():
        raise FileNotFoundError(f"config schema {str(schema)!r} does not exist")
    config = yaml.safe_load(path.read_text())
    try:
        validate_config(config, schema)
    except WorkflowError as error:
        raise ValueError(f"{path}: {error}") from None
    return config


def model_cost(spec: ModelSpec, assumptions: Assumptions) -> ModelCost:
    """The assumptions' entry for a model (by Hub id, else by its config name)."""
    for key in (spec.hub_id, spec.name):
        if key is not None and key in assumptions.models:
            if spec.gpus < 1:
                raise ValueError(
                    f"model {spec.name!r} has gpus: {spec.gpus} in the config; GPU-hours need "
                    "gpus >= 1 for every model a job runs"
                )
            return assumptions.models[key]
    key = spec.hub_id or spec.name
    hint = (
        " (tiny-world models run on CPU; `codit cost` is meant for GPU configs such as "
        "config/paper.yaml)"
        if spec.kind == "tinyworld"
        else ""
    )
    raise ValueError(
        f"model {spec.name!r} ({spec.kind} {spec.hub_id or spec.location}) has no entry in "
        f"{assumptions.source}; add its shape under `models:` keyed by {key!r}{hint}"
    )


def public_data(spec: PublicSpec, assumptions: Assumptions) -> PublicData:
    """The assumptions' entry for a public dataset (by Hub dataset id, else by its config name)."""
    keys = ([spec.location] if spec.kind == "hub" else []) + [spec.name]
    for key in keys:
        if key in assumptions.public:
            return assumptions.public[key]
    raise ValueError(
        f"public dataset {spec.name!r} ({spec.kind} {spec.location}) has no entry in "
        f"{assumptions.source}; add it under `public_datasets:` keyed by {keys[0]!r} "
        "(rows, prompt_tokens, response_tokens)"
    )


def task_cost(task: str, assumptions: Assumptions) -> EvalTask:
    if task not in assumptions.tasks:
        raise ValueError(
            f"lm-eval task {task!r} has no entry in {assumptions.source}; add it under "
            "`evaluation:` (items, prompt_tokens, generated_tokens)"
        )
    return assumptions.tasks[task]


def judged_settings(evaluation: dict[str, Any], spec: Benchmark) -> dict[str, Any]:
    """`enabled` and `max_new_tokens` of a judged benchmark's section of the config's
    `evaluation` (evaluation.<task>), with the workflow's defaults; a config (or a schema)
    without the section has the benchmark off."""
    section = evaluation.get(spec.task) or {}
    max_new = section.get("max_new_tokens")
    return {
        "enabled": bool(section.get("enabled", False)),
        "max_new_tokens": spec.max_new_tokens if max_new is None else max_new,
    }


@dataclass(frozen=True)
class Workload:
    """What the stages' estimates share: the validated config, its grid and jobs, the
    assumptions, and the generation workload (instructions, batch rows, prompt and response
    tokens of each kind of dataset)."""

    config: dict[str, Any]
    assumptions: Assumptions
    grid: Grid
    jobs: list[Job]
    instructions: int
    kinds: dict[str, str]  # arm -> its kind (direct, codit, Best-of-N, ...)
    rows: float  # rows of a generation batch, at the assumed occupancy
    prompt: float
    response: dict[str, float]  # mean response tokens of a direct and of a CoDIT dataset

    @property
    def gpu(self) -> GPU:
        return self.assumptions.gpu

    def arm_kind(self, arm: str) -> str:
        """Which responses an arm's dataset holds: a Best-of-N arm keeps direct samples."""
        return "codit" if self.kinds[arm] == CODIT else "direct"

    def model(self, spec: ModelSpec) -> ModelCost:
        return model_cost(spec, self.assumptions)


def workload(
    config: dict[str, Any], assumptions: Assumptions, instructions: int | None = None
) -> Workload:
    """The shared workload of a validated config (`instructions`: instructions.limit when None)."""
    if instructions is None:
        instructions = config["instructions"]["limit"]
        if instructions is None:
            raise ValueError(
                "instructions.limit of the config is null: the estimate needs the number of "
                "instructions; set instructions.limit or pass --instructions N"
            )
    if instructions < 1:
        raise ValueError(f"--instructions must be at least 1, got {instructions}")
    grid = build_grid(config)
    generation = config["generation"]
    return Workload(
        config=config,
        assumptions=assumptions,
        grid=grid,
        jobs=config_jobs(config, grid),  # the workflow's own
        instructions=instructions,
        kinds={arm: parse_arm(arm).kind for arm in [*grid.generated_arms, *grid.arms]},
        rows=generation["batch_size"] * assumptions.batch_occupancy,
        prompt=assumptions.prompt_tokens,
        response={
            "direct": min(assumptions.response_tokens, generation["max_new_tokens"]),
            "codit": min(assumptions.codit_response_tokens, generation["max_new_tokens"]),
        },
    )


def generation_costs(w: Workload) -> dict[str, dict[str, Any]]:
    """Per teacher pair: the cost of a whole direct and CoDIT arm (each shard takes a share)."""
    pairs: dict[str, dict[str, Any]] = {}
    for name, (post, pre) in w.grid.pairs.items():
        cost = w.model(post)
        direct = direct_generation(
            cost, w.gpu, w.instructions, w.prompt, w.response["direct"], w.rows
        )
        codit_direct = direct_generation(
            cost, w.gpu, w.instructions, w.prompt, w.response["codit"], w.rows
        )
        codit = codit_generation(codit_direct, w.assumptions.codit_ratio)
        gpus_direct, gpus_codit = post.gpus, post.gpus + pre.gpus
        pairs[name] = {
            "gpus_direct": gpus_direct,
            "gpus_codit": gpus_codit,
            "direct_decode_tokens_per_s": direct.decode_tokens_per_s,
            "direct_tokens_per_s": direct.tokens_per_s,
            "codit_tokens_per_s": codit.tokens_per_s,
            "gpu_hours_direct_arm": direct.seconds * gpus_direct / 3600,
            "gpu_hours_codit_arm": codit.seconds * gpus_codit / 3600,
        }
    return pairs


def best_of_n_costs(w: Workload) -> tuple[dict[str, Any], dict[str, float]]:
    """(Best-of-N's judge figures, GPU-hours per scoring job by arm): the judge scores each of
    the N candidates of every instruction once (the oracle scorer runs on the CPU)."""
    best_arms = [parse_arm(arm) for arm in w.grid.arms if w.kinds[arm] == BEST_OF_N]
    judge_arms = [arm for arm in best_arms if arm.scorer == "judge"]
    if not judge_arms:
        return {}, {}
    judge = w.assumptions.judge
    if judge is None:
        raise ValueError(
            f"best_of_n.scorers has `judge` but {w.assumptions.source} has no `judge:` "
            "section (prompt_tokens, reply_tokens, tokens_per_s_per_gpu)"
        )
    reply = min(judge.reply_tokens, w.config["judge"]["max_tokens"])
    call_prompt = w.prompt + w.response["direct"] + judge.prompt_tokens
    calls_per_job = {arm.name: arm.n * w.instructions for arm in judge_arms}
    judge_hours_per_job = {
        arm: judge_gpu_seconds(judge, n, call_prompt, reply) / 3600
        for arm, n in calls_per_job.items()
    }
    best_of_n = {
        "judge_model": w.config["judge"]["model"],
        "judge_calls_per_job": calls_per_job,
        "judge_prompt_tokens_per_call": call_prompt,
        "judge_reply_tokens_per_call": reply,
        "judge_tokens_per_s_per_gpu": judge.tokens_per_s_per_gpu,
        "judge_gpu_hours_per_job": judge_hours_per_job,
    }
    return best_of_n, judge_hours_per_job


@dataclass(frozen=True)
class SftCosts:
    """GPU-hours of one SFT job by student: on a teacher arm's dataset (`instructions`
    examples, by the dataset's kind) and on each public dataset (its own size)."""

    public_rows: dict[str, dict[str, Any]]
    per_job: dict[str, dict[str, float]]
    public_per_job: dict[str, dict[str, float]]


def sft_costs(w: Workload) -> SftCosts:
    sft = w.config["sft"]
    public_rows: dict[str, dict[str, Any]] = {}
    for arm, spec in w.grid.public.items():
        data = public_data(spec, w.assumptions)
        size = spec.settings.get("size")
        target = w.instructions if size is None else size  # null: the CoDIT datasets' size
        public_rows[arm] = {
            "examples": min(target, data.rows),
            "example_tokens": min(data.prompt_tokens + data.response_tokens, sft["max_length"]),
        }

    def hours(student: ModelSpec, examples: float, example_tokens: float) -> float:
        seconds = sft_seconds(
            w.model(student),
            w.gpu,
            examples,
            example_tokens,
            sft["epochs"],
            w.assumptions.sft_flops_per_param_token,
        )
        return seconds * student.gpus / 3600

    per_job: dict[str, dict[str, float]] = {}
    public_per_job: dict[str, dict[str, float]] = {}
    limit = sft["max_length"]
    for slug, student in w.grid.students.items():
        per_job[slug] = {
            kind: hours(student, w.instructions, min(w.prompt + w.response[kind], limit))
            for kind in ("direct", "codit")
        }
        public_per_job[slug] = {
            arm: hours(student, entry["examples"], entry["example_tokens"])
            for arm, entry in public_rows.items()
        }
    return SftCosts(public_rows, per_job, public_per_job)


def evaluated_models(w: Workload) -> dict[str, ModelSpec]:
    """Every model an evaluation job runs: students, references, chat vectors' students."""
    vector_students = {vector.student.slug: vector.student for vector in w.grid.chat_vectors}
    return {**w.grid.students, **w.grid.references, **vector_students}


def evaluation_costs(w: Workload) -> dict[str, float]:
    """GPU-hours of one evaluation job by model: the lm-eval tasks on its shape and GPUs."""
    evaluation = w.config["evaluation"]

    def hours(spec: ModelSpec) -> float:
        seconds = sum(
            evaluation_seconds(
                w.model(spec),
                w.gpu,
                task_cost(task, w.assumptions),
                evaluation["batch_size"],
                evaluation["limit"],
            )
            for task in evaluation["tasks"]
        )
        return seconds * spec.gpus / 3600

    return {slug: hours(spec) for slug, spec in evaluated_models(w).items()}


def judge_serving(w: Workload, enabled: list[Benchmark]) -> tuple[int, float]:
    """(GPUs, start-up seconds) of the judge a judging job serves itself; (0, 0) for an endpoint
    or no judged benchmark; refuses assumptions or a config that cannot be priced."""
    judge, judge_config = w.assumptions.judge, w.config["judge"]
    if not enabled:
        return 0, 0.0
    missing = [spec.task for spec in enabled if spec.task not in w.assumptions.judged]
    missing += ["judge"] if judge is None else []
    if missing:
        names = ", ".join(f"evaluation.{spec.task}" for spec in enabled)
        raise ValueError(
            f"{names} enabled but {w.assumptions.source} has no "
            + " and no ".join(f"`{key}:`" for key in missing)
            + " section"
        )
    if not judge_config["serve"]:
        return 0, 0.0
    if judge_config["gpus"] < 1:
        raise ValueError(
            "judge.serve is set with judge.gpus 0: a judging job would serve the judge "
            "without a GPU; GPU-hours need judge.gpus >= 1"
        )
    if judge.serve_startup_s is None:
        raise ValueError(
            f"judge.serve is set but {w.assumptions.source} has no judge.serve_startup_s "
            "(seconds from the serve command to a healthy server)"
        )
    return judge_config["gpus"], judge.serve_startup_s


def judged_costs(w: Workload) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(per benchmark: its figures; the judged stages; the summary): every evaluated model (one
    per evaluation job of the workflow's list) answers each enabled benchmark in a job of its
    own, on its GPUs; one judging job per evaluated model asks the judge (at judge.url, or
    served on the job's judge.gpus) for the answers of every enabled benchmark, so a served
    judge starts once per evaluated model."""
    evaluation, judge_config, judge = w.config["evaluation"], w.config["judge"], w.assumptions.judge
    evaluated = [job.get(EVALUATED[job.rule]) for job in w.jobs if job.rule in EVALUATED]
    models = evaluated_models(w)
    enabled = [spec for spec in benchmarks() if judged_settings(evaluation, spec)["enabled"]]
    detail: dict[str, dict[str, Any]] = {spec.task: {"enabled": False} for spec in benchmarks()}
    judging_jobs = len(evaluated) if enabled else 0
    judge_gpus, startup = judge_serving(w, enabled)
    stages: dict[str, dict[str, Any]] = {}
    for spec in enabled:
        bench = w.assumptions.judged[spec.task]
        max_new = judged_settings(evaluation, spec)["max_new_tokens"]
        answer = min(bench.answer_tokens, max_new)
        answer_per_job = {
            slug: answer_seconds(
                w.model(model),
                w.gpu,
                bench,
                evaluation["batch_size"],
                max_new,
                w.assumptions.batch_occupancy,
            )
            * model.gpus
            / 3600
            for slug, model in models.items()
        }
        calls = bench.judge_calls()
        call_prompt = bench.judge_prompt_tokens(answer) / calls
        reply = min(bench.judge_reply_tokens, judge_config["max_tokens"])
        judge_seconds = judge_gpu_seconds(judge, calls, call_prompt, reply)
        batches = sum(math.ceil(n / evaluation["batch_size"]) for n in bench.answer_groups())
        answer_hours = sum(answer_per_job[slug] for slug in evaluated)
        detail[spec.task] = {
            "enabled": True,
            "label": spec.label,
            "items": bench.items,
            "items_name": spec.items_name,
            "rounds": len(bench.answer_prompts(answer)),
            "max_new_tokens": max_new,
            "answer_tokens": answer,
            "answer_prompt_tokens": list(bench.answer_prompts(answer)),
            "answer_batch_size": evaluation["batch_size"],
            "answer_batches_per_round": batches,
            "answer_gpu_hours_per_job": answer_per_job,
            "answer_jobs": len(evaluated),
            "answer_gpu_hours": answer_hours,
            "judge_calls_per_job": calls,
            "judge_prompt_tokens_per_call": call_prompt,
            "judge_reply_tokens_per_call": reply,
            "judge_gpu_seconds_per_job": judge_seconds,
            "judge_calls": calls * judging_jobs,
            "judge_gpu_hours": judge_seconds * judging_jobs / 3600,
        }
        stages[answer_stage(spec)] = {"jobs": len(evaluated), "gpu_hours": answer_hours}
    startup_hours = judging_jobs * judge_gpus * startup / 3600
    details = [detail[spec.task] for spec in enabled]
    total = {
        "answer_jobs": sum(item["answer_jobs"] for item in details),
        "answer_gpu_hours": sum(item["answer_gpu_hours"] for item in details),
        "judge_calls": sum(item["judge_calls"] for item in details),
        "judge_gpu_hours": sum(item["judge_gpu_hours"] for item in details) + startup_hours,
    }
    stages[JUDGE_STAGE] = {"jobs": judging_jobs, "gpu_hours": total["judge_gpu_hours"]}
    summary: dict[str, Any] = {
        "benchmarks": [spec.task for spec in enabled],
        "jobs": judging_jobs,
        "per_benchmark": {
            spec.task: {key: detail[spec.task][key] for key in JUDGED_SUMMARY} for spec in enabled
        },
        "total": total,
    }
    if enabled:
        summary.update(
            {
                "judge_model": judge_config["model"],
                "judge_served": bool(judge_config["serve"]),
                "judge_gpus_per_job": judge_gpus,
                "judge_startup_s_per_job": startup,
                "startup_gpu_hours": startup_hours,
                "judge_tokens_per_s_per_gpu": judge.tokens_per_s_per_gpu,
                "judge_calls_per_job": sum(item["judge_calls_per_job"] for item in details),
                "judge_gpu_hours_per_job": (
                    sum(item["judge_gpu_seconds_per_job"] for item in details)
                    + judge_gpus * startup
                )
                / 3600,
            }
        )
    return detail, stages, summary


@dataclass(frozen=True)
class PerJob:
    """The GPU-hours of one job of each kind, which `job_stage` reads for the workflow's jobs."""

    pairs: dict[str, dict[str, Any]]
    best_of_n: dict[str, float]
    sft: SftCosts
    evaluate: dict[str, float]


def job_stage(w: Workload, job: Job, per_job: PerJob) -> tuple[str | None, float]:
    """The cost stage of one of the workflow's jobs and its GPU-hours; gathering shards and
    subsampling a public dataset are CPU bookkeeping, not costed (None)."""
    wildcards = dict(job.wildcards)
    arm, pair = wildcards.get("arm", ""), wildcards.get("pair")
    if job.rule == "generate_shard":
        stage = {
            DIRECT_ARM: "generate_direct",
            DIRECT_SAMPLE: "generate_samples",
            CODIT: "generate_codit",
        }[w.kinds[arm]]
        arm_hours = per_job.pairs[pair][f"gpu_hours_{w.arm_kind(arm)}_arm"]
        return stage, arm_hours / w.config["generation"]["num_shards"]
    if job.rule == "best_of_n":
        return "best_of_n", per_job.best_of_n.get(arm, 0.0)
    if job.rule == "sft":
        student = wildcards["student"]
        if pair == PUBLIC:
            return "sft_public", per_job.sft.public_per_job[student][arm]
        return "sft", per_job.sft.per_job[student][w.arm_kind(arm)]
    if job.rule == "evaluate_student":
        stage = "evaluate_public" if pair == PUBLIC else "evaluate"
        return stage, per_job.evaluate[wildcards["student"]]
    if job.rule == "evaluate_reference":
        return "evaluate", per_job.evaluate[wildcards["model"]]
    if job.rule == "chat_vector":  # `codit chatvector` adds weights on the CPU
        return "chat_vector", 0.0
    if job.rule == "evaluate_chatvector":
        return "evaluate_chat_vector", per_job.evaluate[wildcards["student"]]
    # The judged benchmarks' answering and judging jobs are counted per evaluated model
    # (judged_costs), whatever the rules are called.
    return None, 0.0


def estimate(
    config: dict[str, Any], assumptions: Assumptions, instructions: int | None = None
) -> dict[str, Any]:
    """GPU-hours of every stage of a validated config, at full precision (see the docstring)."""
    w = workload(config, assumptions, instructions)
    best_of_n, best_of_n_per_job = best_of_n_costs(w)
    sft = sft_costs(w)
    per_job = PerJob(generation_costs(w), best_of_n_per_job, sft, evaluation_costs(w))
    judged_detail, judged_stages, judged = judged_costs(w)

    stages = {key: {"jobs": 0, "gpu_hours": 0.0} for key in STAGE_LABELS if key != "total"}
    for job in w.jobs:
        stage, hours = job_stage(w, job, per_job)
        if stage is not None:
            stages[stage]["jobs"] += 1
            stages[stage]["gpu_hours"] += hours
    if best_of_n:
        best_of_n["judge_calls"] = sum(
            best_of_n["judge_calls_per_job"].get(job.get("arm"), 0)
            for job in w.jobs
            if job.rule == "best_of_n"
        )
    best_of_n["jobs"] = stages["best_of_n"]["jobs"]
    stages.update(judged_stages)
    stages["total"] = {
        "jobs": sum(stage["jobs"] for stage in stages.values()),
        "gpu_hours": sum(stage["gpu_hours"] for stage in stages.values()),
    }
    # A judge at judge.url runs elsewhere: the judge stages' GPU-hours are that endpoint's (at
    # saturation), not GPUs the workflow's jobs hold.
    judge_config, grid = config["judge"], w.grid
    endpoint = "serve" if judge_config["serve"] else "url" if judge_config["url"] else None
    external = sum(stages[key]["gpu_hours"] for key in JUDGE_STAGES) if endpoint == "url" else 0.0
    return {
        "instructions": w.instructions,
        "pairs_count": len(grid.pairs),
        "seeds": grid.seeds,
        "public_seeds": grid.public_seeds,
        "generated_arms": grid.generated_arms,
        "arms": grid.arms,
        "public_arms": list(grid.public),
        "chat_vectors": [
            {"pair": v.pair, "student": v.student.slug, "ratio": v.ratio, "arm": v.arm}
            for v in grid.chat_vectors
        ],
        "students": list(grid.students),
        "references": list(grid.references),
        "gpu": w.gpu.name,
        "codit_vs_direct_throughput": assumptions.codit_ratio,
        "codit_vs_direct_throughput_source": assumptions.codit_ratio_source,
        "stages": stages,
        "judge_endpoint": endpoint,
        "judge_external_gpu_hours": external,
        "pairs": per_job.pairs,
        "best_of_n": best_of_n,
        "judged": judged,
        **judged_detail,
        "public": sft.public_rows,
        "sft_gpu_hours_per_job": sft.per_job,
        "sft_public_gpu_hours_per_job": sft.public_per_job,
        "evaluate_gpu_hours_per_job": per_job.evaluate,
    }


# --------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--configfile", required=True, type=Path, help="workflow config (e.g. config/paper.yaml)"
    )
    parser.add_argument(
        "--assumptions",
        type=Path,
        default=DEFAULT_ASSUMPTIONS,
        help=f"GPU, workload and model-shape assumptions (default: {DEFAULT_ASSUMPTIONS})",
    )
    parser.add_argument(
        "--bench",
        type=Path,
        help=f"output of `codit bench --json`: use its {BENCH_RATIO_KEY} as the CoDIT/direct "
        f"throughput ratio and its {BENCH_OCCUPANCY_KEY} (when measured) as the batch occupancy",
    )
    parser.add_argument(
        "--engine",
        choices=("hf", "vllm"),
        default="hf",
        help="whose measured figures --bench gives: our engine's (engine_codit / engine_direct, "
        "and its batch occupancy) or vLLM's (vllm_codit / vllm_direct; vLLM refills its batch "
        "itself, so the assumed occupancy stays)",
    )
    parser.add_argument(
        "--instructions",
        type=int,
        help="number of instructions (default: instructions.limit of the config)",
    )
    parser.add_argument(
        "--schema",
        type=Path,
        help="config JSON schema (default: workflow/schemas/config.schema.yaml)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of Markdown tables"
    )


def run(args: argparse.Namespace) -> None:
    config = load_config(args.configfile, args.schema)
    assumptions = load_assumptions(args.assumptions)
    if args.bench is not None:
        ratio = read_bench_ratio(args.bench, args.engine)
        source = f"{args.bench} ({args.engine} engine)"
        assumptions = with_codit_ratio(assumptions, ratio, source)
        occupancy = read_bench_occupancy(args.bench) if args.engine == "hf" else None
        if occupancy is not None:
            assumptions = with_batch_occupancy(assumptions, occupancy)
    result = estimate(config, assumptions, args.instructions)
    if args.json:
        output = {
            "config": str(args.configfile),
            **rounded(result),
            "assumptions": {"file": str(args.assumptions), **assumptions.raw},
        }
        print(json.dumps(output))
    else:
        print(format_markdown(result, str(args.configfile)))
