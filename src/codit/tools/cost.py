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
import copy
import json
import math
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from codit.workflow.benchmarks import Benchmark, benchmarks
from codit.workflow.config import ModelSpec, PublicSpec, build_grid, schema_file, validate_config
from codit.workflow.jobs import Job, config_jobs
from codit.workflow.naming import BEST_OF_N, CODIT, DIRECT_ARM, DIRECT_SAMPLE, PUBLIC, parse_arm

# The judged benchmarks (codit.workflow.benchmarks), each priced by its module's `Pricing`
# (items, answering rounds, judge calls and tokens; its section <task> of the assumptions).
# Each evaluated model answers every enabled one in a job of its own (stage <task>_answer), and
# one judging job per evaluated model grades them all with the judge (stage judged_judge).
JudgedBench = Any  # a benchmark module's Pricing


def pricing_of(benchmark: Benchmark) -> type:
    """The benchmark's Pricing class (its module is imported on first use)."""
    return benchmark.load().Pricing


def answer_stage(benchmark: Benchmark) -> str:
    return f"{benchmark.task}_answer"


DEFAULT_ASSUMPTIONS = Path("config/cost.yaml")
BENCH_RATIO_KEY = "ratio_codit_vs_engine_direct"
BENCH_OCCUPANCY_KEY = "batch_occupancy"
STAGE_LABELS = {
    "generate_direct": "generate (direct)",
    "generate_samples": "generate (Best-of-N extra samples)",
    "generate_codit": "generate (CoDIT)",
    "best_of_n": "Best-of-N scoring (judge server)",
    "sft": "sft (teacher datasets)",
    "sft_public": "sft (public datasets)",
    "evaluate": "evaluate (students, references)",
    "evaluate_public": "evaluate (public-dataset students)",
    "chat_vector": "chat vector (weight arithmetic, CPU)",
    "evaluate_chat_vector": "evaluate (chat vectors)",
    **{answer_stage(benchmark): f"{benchmark.label} answers" for benchmark in benchmarks()},
    # Named after the enabled benchmarks in the output (judge_stage_label).
    "judged_judge": "judging of the judged benchmarks (judge server)",
    "total": "total",
}
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
# Assumptions


@dataclass(frozen=True)
class GPU:
    """One GPU as the estimate sees it: peak bandwidth and compute, and the fractions reached."""

    name: str
    bandwidth: float  # bytes/s, peak
    decode_efficiency: float  # fraction of peak bandwidth a decode step reaches
    flops: float  # FLOP/s, dense bf16 peak
    training_mfu: float
    prefill_mfu: float
    bytes_per_param: float


@dataclass(frozen=True)
class ModelCost:
    """A model's shape: what a decode step reads and what a token costs in FLOPs."""

    hub_id: str
    params: float  # total parameters
    active_params: float  # parameters a token passes through
    kv_bytes_per_token: float  # full-attention layers
    windowed_kv_bytes_per_token: float = 0.0  # sliding-window layers
    window: int = 0  # tokens a sliding-window layer keeps

    def kv_bytes(self, context: float) -> float:
        """KV-cache bytes of one row at `context` tokens."""
        windowed = min(context, self.window) if self.window else context
        return self.kv_bytes_per_token * context + self.windowed_kv_bytes_per_token * windowed


@dataclass(frozen=True)
class EvalTask:
    """An lm-eval task: items, mean prompt tokens, mean generated tokens."""

    items: int
    prompt_tokens: float
    generated_tokens: float


@dataclass(frozen=True)
class Judge:
    """The LLM judge as a served model: Best-of-N's tokens per call, served tokens/s per GPU and
    the start-up of a server a judging job runs itself (`judge.serve`)."""

    model: str
    prompt_tokens: float  # the judging prompt around the instruction and the response
    reply_tokens: float  # mean reply (reasoning + checklist + rating), before max_tokens caps it
    tokens_per_s_per_gpu: float  # prompt + generated tokens per second per GPU, server saturated
    serve_startup_s: float | None = None  # seconds from `serve` to a healthy server, per job


JUDGE_STAGE = "judged_judge"


@dataclass(frozen=True)
class PublicData:
    """A public instruction dataset: usable rows, mean prompt and response tokens."""

    rows: int
    prompt_tokens: float
    response_tokens: float


@dataclass(frozen=True)
class Assumptions:
    """Everything `codit cost` assumes; `raw` is the file's content as used (for --json)."""

    source: str
    gpu: GPU
    prompt_tokens: float
    response_tokens: float
    codit_response_tokens: float
    batch_occupancy: float
    sft_flops_per_param_token: float
    codit_ratio: float
    codit_ratio_source: str
    models: dict[str, ModelCost]
    tasks: dict[str, EvalTask]
    raw: dict[str, Any]
    judge: Judge | None = None  # needed only by a config with the `judge` Best-of-N scorer
    public: dict[str, PublicData] = field(default_factory=dict)  # by Hub dataset id or name
    # The judged benchmarks by task (their Pricing), needed only by a config that enables them.
    judged: dict[str, JudgedBench] = field(default_factory=dict)


def _section(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"{where}: `{key}` must be a mapping")
    return value


def _number(section: dict[str, Any], key: str, where: str, maximum: float | None = None) -> float:
    """A positive number at `where`.`key` (at most `maximum`); the error names the key."""
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{where}.{key}: expected a positive number, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{where}.{key}: expected at most {maximum}, got {value!r}")
    return float(value)


def parse_assumptions(data: dict[str, Any], source: str = "assumptions") -> Assumptions:
    """Check and convert the assumptions mapping (the content of config/cost.yaml)."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping at the top level")
    gpu_raw = _section(data, "gpu", source)
    where = f"{source}: gpu"
    gpu = GPU(
        name=str(gpu_raw.get("name", "GPU")),
        bandwidth=_number(gpu_raw, "memory_bandwidth_gb_s", where) * 1e9,
        decode_efficiency=_number(gpu_raw, "decode_bandwidth_efficiency", where, maximum=1),
        flops=_number(gpu_raw, "bf16_dense_tflops", where) * 1e12,
        training_mfu=_number(gpu_raw, "training_mfu", where, maximum=1),
        prefill_mfu=_number(gpu_raw, "prefill_mfu", where, maximum=1),
        bytes_per_param=_number(gpu_raw, "bytes_per_param", where),
    )
    workload = _section(data, "workload", source)
    where = f"{source}: workload"
    response = _number(workload, "response_tokens", where)
    codit_response = (
        response
        if workload.get("codit_response_tokens") is None
        else _number(workload, "codit_response_tokens", where)
    )
    occupancy = (
        1.0
        if workload.get("batch_occupancy") is None
        else _number(workload, "batch_occupancy", where, maximum=1)
    )
    sft = _section(data, "sft", source)

    models = {}
    for hub_id, entry in _section(data, "models", source).items():
        where = f"{source}: models.{hub_id}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be a mapping")
        params = _number(entry, "params_b", where) * 1e9
        windowed = entry.get("windowed_kv_bytes_per_token")
        models[hub_id] = ModelCost(
            hub_id=hub_id,
            params=params,
            active_params=(
                params
                if entry.get("active_params_b") is None
                else _number(entry, "active_params_b", where) * 1e9
            ),
            kv_bytes_per_token=_number(entry, "kv_bytes_per_token", where),
            windowed_kv_bytes_per_token=(
                0.0 if windowed is None else _number(entry, "windowed_kv_bytes_per_token", where)
            ),
            window=0 if windowed is None else int(_number(entry, "window", where)),
        )

    tasks = {}
    for task, entry in _section(data, "evaluation", source).items():
        where = f"{source}: evaluation.{task}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be a mapping")
        tasks[task] = EvalTask(
            items=int(_number(entry, "items", where)),
            prompt_tokens=_number(entry, "prompt_tokens", where),
            generated_tokens=_number(entry, "generated_tokens", where),
        )

    judge = None
    if data.get("judge") is not None:
        entry, where = _section(data, "judge", source), f"{source}: judge"
        judge = Judge(
            model=str(entry.get("model", "judge")),
            prompt_tokens=_number(entry, "prompt_tokens", where),
            reply_tokens=_number(entry, "reply_tokens", where),
            tokens_per_s_per_gpu=_number(entry, "tokens_per_s_per_gpu", where),
            serve_startup_s=(
                None
                if entry.get("serve_startup_s") is None
                else _number(entry, "serve_startup_s", where)
            ),
        )

    judged: dict[str, JudgedBench] = {}
    for benchmark in benchmarks():
        if data.get(benchmark.task) is None:
            continue
        entry, where = _section(data, benchmark.task, source), f"{source}: {benchmark.task}"
        pricing = pricing_of(benchmark)
        # the first field counts the items (a number, or a number per category), the others
        # are tokens under their own names
        count_field, *token_fields = (item.name for item in fields(pricing))
        key = benchmark.pricing_key
        if typing.get_type_hints(pricing)[count_field] == dict[str, int]:
            categories = _section(entry, key, where)
            count: Any = {
                str(category): int(_number(categories, category, f"{where}.{key}"))
                for category in categories
            }
        else:
            count = int(_number(entry, key, where))
        judged[benchmark.task] = pricing(
            **{count_field: count}, **{name: _number(entry, name, where) for name in token_fields}
        )

    public = {}
    if data.get("public_datasets") is not None:
        for key, entry in _section(data, "public_datasets", source).items():
            where = f"{source}: public_datasets.{key}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: must be a mapping")
            public[key] = PublicData(
                rows=int(_number(entry, "rows", where)),
                prompt_tokens=_number(entry, "prompt_tokens", where),
                response_tokens=_number(entry, "response_tokens", where),
            )

    return Assumptions(
        source=source,
        gpu=gpu,
        prompt_tokens=_number(workload, "prompt_tokens", where=f"{source}: workload"),
        response_tokens=response,
        codit_response_tokens=codit_response,
        batch_occupancy=occupancy,
        sft_flops_per_param_token=_number(sft, "flops_per_param_token", f"{source}: sft"),
        codit_ratio=_number(data, "codit_vs_direct_throughput", source),
        codit_ratio_source=source,
        models=models,
        tasks=tasks,
        raw=copy.deepcopy(data),
        judge=judge,
        public=public,
        judged=judged,
    )


def load_assumptions(path: str | Path) -> Assumptions:
    """Read and check an assumptions YAML file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"assumptions file {str(path)!r} does not exist")
    return parse_assumptions(yaml.safe_load(path.read_text()), source=str(path))


def bench_record(path: str | Path) -> dict[str, Any]:
    """The JSON line of `codit bench --json` in a file: the last line that parses as a JSON
    object with key `ratio_codit_vs_engine_direct`, so a log that also holds progress lines
    works."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"bench file {str(path)!r} does not exist")
    for line in reversed(path.read_text().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and BENCH_RATIO_KEY in record:
            return record
    raise ValueError(
        f"bench file {str(path)!r} holds no JSON line with key {BENCH_RATIO_KEY!r}; "
        "write one with `codit bench --json > FILE`"
    )


def read_bench_ratio(path: str | Path) -> float:
    """`ratio_codit_vs_engine_direct` of the bench line (`bench_record`); the key is null when
    the tiny-world pair was not benched."""
    ratio = bench_record(path)[BENCH_RATIO_KEY]
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio <= 0:
        raise ValueError(
            f"bench file {str(path)!r}: {BENCH_RATIO_KEY} is {ratio!r}, not a positive "
            "number (it is null when the tinyworld pair was not benched)"
        )
    return float(ratio)


def read_bench_occupancy(path: str | Path) -> float | None:
    """`batch_occupancy` (the engine's measured occupancy) of the same bench line as
    `read_bench_ratio`; None when that line has no such figure (a bench from before continuous
    batching, or one that ran no engine_codit)."""
    occupancy = bench_record(path).get(BENCH_OCCUPANCY_KEY)
    if occupancy is None:
        return None
    number = not isinstance(occupancy, bool) and isinstance(occupancy, int | float)
    if not number or not 0 < occupancy <= 1:
        where = f"bench file {str(path)!r}: {BENCH_OCCUPANCY_KEY}"
        raise ValueError(f"{where} is {occupancy!r}, not a number in (0, 1]")
    return float(occupancy)


def with_batch_occupancy(assumptions: Assumptions, occupancy: float) -> Assumptions:
    """The same assumptions with another batch occupancy (a measured one)."""
    raw = copy.deepcopy(assumptions.raw)
    raw["workload"]["batch_occupancy"] = occupancy
    return replace(assumptions, batch_occupancy=occupancy, raw=raw)


def with_codit_ratio(assumptions: Assumptions, ratio: float, source: str) -> Assumptions:
    """The same assumptions with another CoDIT/direct throughput ratio."""
    raw = copy.deepcopy(assumptions.raw)
    raw["codit_vs_direct_throughput"] = ratio
    return replace(assumptions, codit_ratio=ratio, codit_ratio_source=source, raw=raw)


# --------------------------------------------------------------------------------------------
# Per-job arithmetic


def decode_step_seconds(model: ModelCost, gpu: GPU, rows: float, context: float) -> float:
    """Seconds of one memory-bound decode step: weights plus `rows` KV caches at `context`."""
    read = model.params * gpu.bytes_per_param + rows * model.kv_bytes(context)
    return read / (gpu.bandwidth * gpu.decode_efficiency)


def prefill_seconds(model: ModelCost, gpu: GPU, prompt_tokens: float) -> float:
    """Seconds of the forward passes over `prompt_tokens` prompt tokens (compute-bound)."""
    return 2 * model.active_params * prompt_tokens / (gpu.flops * gpu.prefill_mfu)


@dataclass(frozen=True)
class GenerationCost:
    """Direct generation of `instructions` responses with one model on one job's GPUs."""

    decode_tokens_per_s: float  # generated tokens per second of decoding
    tokens_per_s: float  # generated tokens per second of the job, prefill included
    seconds: float  # wall time for all instructions


def direct_generation(
    model: ModelCost,
    gpu: GPU,
    instructions: float,
    prompt_tokens: float,
    response_tokens: float,
    batch_rows: float,
) -> GenerationCost:
    """Wall time of direct generation: decode steps at `batch_rows` rows, plus prefill."""
    context = prompt_tokens + response_tokens / 2
    decode_tps = batch_rows / decode_step_seconds(model, gpu, batch_rows, context)
    tokens = instructions * response_tokens
    seconds = tokens / decode_tps + prefill_seconds(model, gpu, instructions * prompt_tokens)
    return GenerationCost(decode_tps, tokens / seconds, seconds)


def codit_generation(direct: GenerationCost, ratio: float) -> GenerationCost:
    """CoDIT takes the direct engine's time over the measured throughput ratio."""
    return GenerationCost(
        direct.decode_tokens_per_s * ratio, direct.tokens_per_s * ratio, direct.seconds / ratio
    )


def sft_seconds(
    model: ModelCost,
    gpu: GPU,
    instructions: float,
    example_tokens: float,
    epochs: float,
    flops_per_param_token: float,
) -> float:
    """Seconds of LoRA SFT over `instructions` examples of `example_tokens` each."""
    flops = flops_per_param_token * model.active_params * instructions * example_tokens * epochs
    return flops / (gpu.flops * gpu.training_mfu)


def evaluation_seconds(
    model: ModelCost, gpu: GPU, task: EvalTask, batch_size: int, limit: int | None
) -> float:
    """Seconds of one lm-eval generation task: decode steps per batch plus prefill."""
    items = task.items if limit is None else min(task.items, limit)
    batches = math.ceil(items / batch_size)
    context = task.prompt_tokens + task.generated_tokens / 2
    decode = batches * task.generated_tokens * decode_step_seconds(model, gpu, batch_size, context)
    return decode + prefill_seconds(model, gpu, items * task.prompt_tokens)


def judge_gpu_seconds(
    judge: Judge, calls: float, call_prompt_tokens: float, reply_tokens: float
) -> float:
    """GPU-seconds a judge server spends on `calls` calls of the given prompt and reply tokens."""
    return calls * (call_prompt_tokens + reply_tokens) / judge.tokens_per_s_per_gpu


def answer_seconds(
    model: ModelCost,
    gpu: GPU,
    bench: JudgedBench,
    batch_size: int,
    max_new_tokens: int,
    occupancy: float,
) -> float:
    """Seconds of one answering job of a judged benchmark (`codit mtbench|alpacaeval|wildbench
    answer`, the engine in direct mode): every item in every answering round (MT-Bench's two
    turns; one otherwise), batched per answering group (an answering temperature), each batch
    decoding until its longest answer stops (direct generation's model: the mean answer over the
    batch occupancy, capped at max_new_tokens), plus prefill of every prompt."""
    answer = min(bench.answer_tokens, max_new_tokens)
    steps = min(answer / occupancy, max_new_tokens)  # the longest answer of a batch
    seconds = 0.0
    for prompt in bench.answer_prompts(answer):
        context = prompt + answer / 2
        for group in bench.answer_groups():
            for start in range(0, group, batch_size):
                rows = min(batch_size, group - start) * answer / steps  # rows still decoding
                seconds += steps * decode_step_seconds(model, gpu, rows, context)
        seconds += prefill_seconds(model, gpu, bench.items * prompt)
    return seconds


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


def estimate(
    config: dict[str, Any], assumptions: Assumptions, instructions: int | None = None
) -> dict[str, Any]:
    """GPU-hours of every stage of a validated config, at full precision (see the docstring)."""
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
    gpu = assumptions.gpu
    generation, sft, evaluation = config["generation"], config["sft"], config["evaluation"]
    shards = generation["num_shards"]
    jobs = config_jobs(config, grid)  # the workflow's own
    kinds = {arm: parse_arm(arm).kind for arm in [*grid.generated_arms, *grid.arms]}
    best_arms = [parse_arm(arm) for arm in grid.arms if kinds[arm] == BEST_OF_N]
    rows = generation["batch_size"] * assumptions.batch_occupancy
    prompt = assumptions.prompt_tokens
    response = {
        "direct": min(assumptions.response_tokens, generation["max_new_tokens"]),
        "codit": min(assumptions.codit_response_tokens, generation["max_new_tokens"]),
    }

    def arm_kind(arm: str) -> str:
        """Which responses an arm's dataset holds: a Best-of-N arm keeps direct samples."""
        return "codit" if kinds[arm] == CODIT else "direct"

    # Generation: the cost of a whole arm per pair; each of its shards takes a share.
    pairs: dict[str, dict[str, Any]] = {}
    for name, (post, pre) in grid.pairs.items():
        cost = model_cost(post, assumptions)
        direct = direct_generation(cost, gpu, instructions, prompt, response["direct"], rows)
        codit_direct = direct_generation(cost, gpu, instructions, prompt, response["codit"], rows)
        codit = codit_generation(codit_direct, assumptions.codit_ratio)
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

    # Best-of-N scoring: the judge scores each of the N candidates of every instruction once
    # (the oracle scorer runs on CPU).
    judge_arms = [arm for arm in best_arms if arm.scorer == "judge"]
    best_of_n: dict[str, Any] = {}
    judge_hours_per_job: dict[str, float] = {}
    if judge_arms:
        judge = assumptions.judge
        if judge is None:
            raise ValueError(
                f"best_of_n.scorers has `judge` but {assumptions.source} has no `judge:` "
                "section (prompt_tokens, reply_tokens, tokens_per_s_per_gpu)"
            )
        reply = min(judge.reply_tokens, config["judge"]["max_tokens"])
        call_prompt = prompt + response["direct"] + judge.prompt_tokens
        calls_per_job = {arm.name: arm.n * instructions for arm in judge_arms}
        judge_hours_per_job = {
            arm: judge_gpu_seconds(judge, n, call_prompt, reply) / 3600
            for arm, n in calls_per_job.items()
        }
        best_of_n.update(
            {
                "judge_model": config["judge"]["model"],
                "judge_calls_per_job": calls_per_job,
                "judge_prompt_tokens_per_call": call_prompt,
                "judge_reply_tokens_per_call": reply,
                "judge_tokens_per_s_per_gpu": judge.tokens_per_s_per_gpu,
                "judge_gpu_hours_per_job": judge_hours_per_job,
            }
        )

    # SFT: a teacher arm's dataset has `instructions` examples; a public one its own size.
    public_rows: dict[str, dict[str, Any]] = {}
    for arm, spec in grid.public.items():
        data = public_data(spec, assumptions)
        size = spec.settings.get("size")
        target = instructions if size is None else size  # null: the CoDIT datasets' size
        public_rows[arm] = {
            "examples": min(target, data.rows),
            "example_tokens": min(data.prompt_tokens + data.response_tokens, sft["max_length"]),
        }

    def sft_hours_of(student: ModelSpec, examples: float, example_tokens: float) -> float:
        seconds = sft_seconds(
            model_cost(student, assumptions),
            gpu,
            examples,
            example_tokens,
            sft["epochs"],
            assumptions.sft_flops_per_param_token,
        )
        return seconds * student.gpus / 3600

    sft_per_job: dict[str, dict[str, float]] = {}
    sft_public_per_job: dict[str, dict[str, float]] = {}
    for slug, student in grid.students.items():
        sft_per_job[slug] = {
            kind: sft_hours_of(
                student, instructions, min(prompt + response[kind], sft["max_length"])
            )
            for kind in ("direct", "codit")
        }
        sft_public_per_job[slug] = {
            arm: sft_hours_of(student, entry["examples"], entry["example_tokens"])
            for arm, entry in public_rows.items()
        }

    # Evaluation: lm-eval tasks on the evaluated model's shape and GPUs.
    def evaluation_hours(spec: ModelSpec) -> float:
        cost = model_cost(spec, assumptions)
        seconds = sum(
            evaluation_seconds(
                cost,
                gpu,
                task_cost(task, assumptions),
                evaluation["batch_size"],
                evaluation["limit"],
            )
            for task in evaluation["tasks"]
        )
        return seconds * spec.gpus / 3600

    vector_students = {vector.student.slug: vector.student for vector in grid.chat_vectors}
    models = {**grid.students, **grid.references, **vector_students}
    evaluate_per_job = {slug: evaluation_hours(spec) for slug, spec in models.items()}

    # Judged benchmarks: every evaluated model (one per evaluation job of the workflow's list)
    # answers each enabled benchmark in a job of its own, on its GPUs; one judging job per
    # evaluated model asks the judge (at judge.url, or served on the job's judge.gpus) for the
    # answers of every enabled benchmark, so a served judge starts once per evaluated model.
    evaluated = [job.get(EVALUATED[job.rule]) for job in jobs if job.rule in EVALUATED]
    judge_config = config["judge"]
    served = bool(judge_config["serve"])
    enabled = [spec for spec in benchmarks() if judged_settings(evaluation, spec)["enabled"]]
    judged_detail: dict[str, dict[str, Any]] = {
        spec.task: {"enabled": False} for spec in benchmarks()
    }
    judging_jobs = len(evaluated) if enabled else 0
    judge_gpus, startup = 0, 0.0
    judge = assumptions.judge
    if enabled:
        missing = [spec.task for spec in enabled if spec.task not in assumptions.judged]
        missing += ["judge"] if judge is None else []
        if missing:
            names = ", ".join(f"evaluation.{spec.task}" for spec in enabled)
            raise ValueError(
                f"{names} enabled but {assumptions.source} has no "
                + " and no ".join(f"`{key}:`" for key in missing)
                + " section"
            )
        if served:
            judge_gpus = judge_config["gpus"]
            if judge_gpus < 1:
                raise ValueError(
                    "judge.serve is set with judge.gpus 0: a judging job would serve the judge "
                    "without a GPU; GPU-hours need judge.gpus >= 1"
                )
            if judge.serve_startup_s is None:
                raise ValueError(
                    f"judge.serve is set but {assumptions.source} has no judge.serve_startup_s "
                    "(seconds from the serve command to a healthy server)"
                )
            startup = judge.serve_startup_s
    judged_stages: dict[str, dict[str, Any]] = {}
    for spec in enabled:
        bench = assumptions.judged[spec.task]
        max_new = judged_settings(evaluation, spec)["max_new_tokens"]
        answer = min(bench.answer_tokens, max_new)
        answer_per_job = {
            slug: answer_seconds(
                model_cost(model, assumptions),
                gpu,
                bench,
                evaluation["batch_size"],
                max_new,
                assumptions.batch_occupancy,
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
        judged_detail[spec.task] = {
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
        judged_stages[answer_stage(spec)] = {"jobs": len(evaluated), "gpu_hours": answer_hours}
    startup_hours = judging_jobs * judge_gpus * startup / 3600
    details = [judged_detail[spec.task] for spec in enabled]
    judged_total = {
        "answer_jobs": sum(detail["answer_jobs"] for detail in details),
        "answer_gpu_hours": sum(detail["answer_gpu_hours"] for detail in details),
        "judge_calls": sum(detail["judge_calls"] for detail in details),
        "judge_gpu_hours": sum(detail["judge_gpu_hours"] for detail in details) + startup_hours,
    }
    judged_stages[JUDGE_STAGE] = {
        "jobs": judging_jobs,
        "gpu_hours": judged_total["judge_gpu_hours"],
    }
    judged: dict[str, Any] = {
        "benchmarks": [spec.task for spec in enabled],
        "jobs": judging_jobs,
        "per_benchmark": {
            spec.task: {key: judged_detail[spec.task][key] for key in JUDGED_SUMMARY}
            for spec in enabled
        },
        "total": judged_total,
    }
    if enabled:
        judged.update(
            {
                "judge_model": judge_config["model"],
                "judge_served": served,
                "judge_gpus_per_job": judge_gpus,
                "judge_startup_s_per_job": startup,
                "startup_gpu_hours": startup_hours,
                "judge_tokens_per_s_per_gpu": judge.tokens_per_s_per_gpu,
                "judge_calls_per_job": sum(detail["judge_calls_per_job"] for detail in details),
                "judge_gpu_hours_per_job": (
                    sum(detail["judge_gpu_seconds_per_job"] for detail in details)
                    + judge_gpus * startup
                )
                / 3600,
            }
        )

    def stage_and_hours(job: Job) -> tuple[str | None, float]:
        """The cost stage of one of the workflow's jobs and its GPU-hours; gathering shards and
        subsampling a public dataset are CPU bookkeeping, not costed (None)."""
        wildcards = dict(job.wildcards)
        arm, pair = wildcards.get("arm", ""), wildcards.get("pair")
        if job.rule == "generate_shard":
            stage = {
                DIRECT_ARM: "generate_direct",
                DIRECT_SAMPLE: "generate_samples",
                CODIT: "generate_codit",
            }[kinds[arm]]
            arm_hours = pairs[pair][f"gpu_hours_{arm_kind(arm)}_arm"]
            return stage, arm_hours / shards
        if job.rule == "best_of_n":
            return "best_of_n", judge_hours_per_job.get(arm, 0.0)
        if job.rule == "sft":
            student = wildcards["student"]
            if pair == PUBLIC:
                return "sft_public", sft_public_per_job[student][arm]
            return "sft", sft_per_job[student][arm_kind(arm)]
        if job.rule == "evaluate_student":
            stage = "evaluate_public" if pair == PUBLIC else "evaluate"
            return stage, evaluate_per_job[wildcards["student"]]
        if job.rule == "evaluate_reference":
            return "evaluate", evaluate_per_job[wildcards["model"]]
        if job.rule == "chat_vector":  # `codit chatvector` adds weights on the CPU
            return "chat_vector", 0.0
        if job.rule == "evaluate_chatvector":
            return "evaluate_chat_vector", evaluate_per_job[wildcards["student"]]
        # The judged benchmarks' answering and judging jobs are counted per evaluated model
        # above, whatever the rules are called.
        return None, 0.0

    stages = {key: {"jobs": 0, "gpu_hours": 0.0} for key in STAGE_LABELS if key != "total"}
    for job in jobs:
        stage, hours = stage_and_hours(job)
        if stage is not None:
            stages[stage]["jobs"] += 1
            stages[stage]["gpu_hours"] += hours
    if judge_arms:
        best_of_n["judge_calls"] = sum(
            best_of_n["judge_calls_per_job"].get(job.get("arm"), 0)
            for job in jobs
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
    endpoint = "serve" if served else "url" if judge_config["url"] else None
    external = sum(stages[key]["gpu_hours"] for key in JUDGE_STAGES) if endpoint == "url" else 0.0
    return {
        "instructions": instructions,
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
        "gpu": gpu.name,
        "codit_vs_direct_throughput": assumptions.codit_ratio,
        "codit_vs_direct_throughput_source": assumptions.codit_ratio_source,
        "stages": stages,
        "judge_endpoint": endpoint,
        "judge_external_gpu_hours": external,
        "pairs": pairs,
        "best_of_n": best_of_n,
        "judged": judged,
        **judged_detail,
        "public": public_rows,
        "sft_gpu_hours_per_job": sft_per_job,
        "sft_public_gpu_hours_per_job": sft_public_per_job,
        "evaluate_gpu_hours_per_job": evaluate_per_job,
    }


# --------------------------------------------------------------------------------------------
# Output


def round_sig(value: float, digits: int = 3) -> float:
    """`value` rounded to `digits` significant figures."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def format_sig(value: float, digits: int = 3) -> str:
    """`value` at `digits` significant figures, without exponent, thousands separated."""
    rounded = round_sig(value, digits)
    if rounded == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}"


def rounded(value: Any, digits: int = 3) -> Any:
    """Every float in a nested structure rounded to `digits` significant figures."""
    if isinstance(value, float):
        return round_sig(value, digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item, digits) for item in value]
    return value


def format_tokens(value: float) -> str:
    """A token count: whole numbers as they are, others at 3 significant figures."""
    return f"{int(value):,}" if float(value).is_integer() else format_sig(value)


def judge_stage_label(result: dict[str, Any]) -> str:
    """The judging stage's label, naming the enabled judged benchmarks."""
    labels = [result[key]["label"] for key in result["judged"]["benchmarks"]]
    if not labels:
        return STAGE_LABELS[JUDGE_STAGE]
    return f"judging of {', '.join(labels)} (judge server)"


def format_judged(result: dict[str, Any]) -> list[str]:
    """The judged benchmarks' table (answers and judge calls per benchmark, the judge's
    start-ups, the total) and what each benchmark's jobs do; nothing when none is enabled."""
    judged = result["judged"]
    if not judged["benchmarks"]:
        return []
    details = [result[key] for key in judged["benchmarks"]]
    total = judged["total"]
    lines = [
        "",
        "| judged benchmark | answer jobs | answer GPU-hours | judge calls | judge GPU-hours |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for detail in details:
        lines.append(
            f"| {detail['label']} | {detail['answer_jobs']:,} | "
            f"{format_sig(detail['answer_gpu_hours'])} | {detail['judge_calls']:,} | "
            f"{format_sig(detail['judge_gpu_hours'])} |"
        )
    if judged["judge_served"]:
        lines.append(
            f"| judge start-up (once per judging job: {judged['jobs']:,} x "
            f"{judged['judge_gpus_per_job']} GPUs x {format_sig(judged['judge_startup_s_per_job'])}"
            f" s) | | | | {format_sig(judged['startup_gpu_hours'])} |"
        )
    lines += [
        f"| total | {total['answer_jobs']:,} | {format_sig(total['answer_gpu_hours'])} | "
        f"{total['judge_calls']:,} | {format_sig(total['judge_gpu_hours'])} |",
        "",
    ]
    for detail in details:
        prompts = " and ".join(format_tokens(tokens) for tokens in detail["answer_prompt_tokens"])
        rounds = f" x {detail['rounds']} turns" if detail["rounds"] > 1 else ""
        per = " per turn" if detail["rounds"] > 1 else ""
        lines.append(
            f"{detail['label']}: each evaluated model answers {detail['items']:,} "
            f"{detail['items_name']}{rounds} on its own GPUs "
            f"({format_tokens(detail['answer_tokens'])} answer tokens assumed, at most "
            f"{detail['max_new_tokens']:,}; prompts of {prompts} tokens; "
            f"{detail['answer_batches_per_round']} batches of up to "
            f"{detail['answer_batch_size']}{per}).",
        )
    if judged["judge_served"]:
        where = (
            f"served by each judging job on {judged['judge_gpus_per_job']} GPUs, "
            f"{format_sig(judged['judge_startup_s_per_job'])} s start-up per job included"
        )
    else:
        where = "at judge.url, an external endpoint (the judging jobs hold no GPU)"
    calls = "; ".join(
        f"{detail['label']} {detail['judge_calls_per_job']:,} calls of "
        f"{format_tokens(round_sig(detail['judge_prompt_tokens_per_call']))} prompt + "
        f"{format_tokens(detail['judge_reply_tokens_per_call'])} reply "
        f"token{'' if detail['judge_reply_tokens_per_call'] == 1 else 's'} "
        f"({format_sig(detail['judge_gpu_seconds_per_job'])} GPU-seconds)"
        for detail in details
    )
    lines += [
        "",
        f"The judge ({judged['judge_model']}) is {where}. One judging job per evaluated model "
        f"({judged['jobs']:,} jobs) grades every enabled benchmark's answers: {calls} per job, "
        f"at {format_sig(judged['judge_tokens_per_s_per_gpu'])} tokens/s per GPU; "
        f"{format_sig(judged['judge_gpu_hours_per_job'])} GPU-hours per judging job.",
    ]
    return lines


def format_markdown(result: dict[str, Any], config_name: str) -> str:
    """The stage table and the per-pair generation table, as Markdown."""
    codit_arms = sum(parse_arm(arm).kind == CODIT for arm in result["arms"])
    samples = sum(parse_arm(arm).kind == DIRECT_SAMPLE for arm in result["generated_arms"])
    lines = [
        f"{config_name}: {result['instructions']:,} instructions, {result['pairs_count']} "
        f"teacher pairs x {len(result['arms'])} trained arms ({codit_arms} CoDIT) x "
        f"{len(result['seeds'])} seeds ({samples} extra direct samples per pair and seed for "
        f"Best-of-N), {len(result['public_arms'])} public datasets, "
        f"{len(result['chat_vectors'])} chat vectors, {len(result['students'])} students, "
        f"{len(result['references'])} references; {result['gpu']}; CoDIT/direct throughput "
        f"{result['codit_vs_direct_throughput']:.2f} "
        f"({result['codit_vs_direct_throughput_source']})",
        "",
        "| stage | jobs | GPU-hours |",
        "| --- | ---: | ---: |",
    ]
    for key, label in STAGE_LABELS.items():
        stage = result["stages"][key]
        if key == JUDGE_STAGE:
            label = judge_stage_label(result)
        if stage["jobs"] or key == "total":  # stages the config does not have are left out
            lines.append(f"| {label} | {stage['jobs']:,} | {format_sig(stage['gpu_hours'])} |")
    best = result["best_of_n"]
    if best.get("judge_calls"):
        lines += [
            "",
            f"Best-of-N judge ({best['judge_model']}): {best['judge_calls']:,} calls of "
            f"{format_sig(best['judge_prompt_tokens_per_call'])} prompt + "
            f"{format_sig(best['judge_reply_tokens_per_call'])} reply tokens at "
            f"{format_sig(best['judge_tokens_per_s_per_gpu'])} tokens/s per GPU "
            "(GPU-hours of a saturated server; a server kept up while idle costs more).",
        ]
    lines += format_judged(result)
    if result["judge_external_gpu_hours"]:
        total = result["stages"]["total"]["gpu_hours"]
        lines += [
            "",
            f"The judge is at judge.url, an external endpoint: the judge stages' "
            f"{format_sig(result['judge_external_gpu_hours'])} GPU-hours (Best-of-N scoring, "
            "the judged benchmarks' judging) are that server's, not GPUs the workflow's jobs "
            f"hold; the jobs' own GPU-hours: "
            f"{format_sig(total - result['judge_external_gpu_hours'])}.",
        ]
    lines += [
        "",
        "| teacher pair | GPUs per job direct / CoDIT | tokens/s per job direct | "
        "tokens/s per job CoDIT | GPU-hours per direct arm and seed | "
        "GPU-hours per CoDIT arm and seed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, pair in result["pairs"].items():
        lines.append(
            f"| {name} | {pair['gpus_direct']} / {pair['gpus_codit']} | "
            f"{format_sig(pair['direct_tokens_per_s'])} | "
            f"{format_sig(pair['codit_tokens_per_s'])} | "
            f"{format_sig(pair['gpu_hours_direct_arm'])} | "
            f"{format_sig(pair['gpu_hours_codit_arm'])} |"
        )
    return "\n".join(lines)


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
        assumptions = with_codit_ratio(assumptions, read_bench_ratio(args.bench), str(args.bench))
        occupancy = read_bench_occupancy(args.bench)
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
