"""What `codit cost` assumes (config/cost.yaml): the GPU, the workload, each model's shape, each
lm-eval task and judged benchmark, the judge and the public datasets; read and checked, each
error naming its key; and the measured records of `codit bench` that replace an assumption."""

from __future__ import annotations

import copy
import json
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from codit.workflow.benchmarks import Benchmark, benchmarks

DEFAULT_ASSUMPTIONS = Path("config/cost.yaml")
# The keys of `codit bench --json` output that replace an assumption.
BENCH_RATIO_KEY = "ratio_codit_vs_engine_direct"
BENCH_OCCUPANCY_KEY = "batch_occupancy"
# The judged benchmarks (codit.workflow.benchmarks), each priced by its module's `Pricing`
# (items, answering rounds, judge calls and tokens; its section <task> of the assumptions).
# Each evaluated model answers every enabled one in a job of its own (stage <task>_answer), and
# one judging job per evaluated model grades them all with the judge (stage judged_judge).
JudgedBench = Any  # a benchmark module's Pricing


def pricing_of(benchmark: Benchmark) -> type:
    """The benchmark's Pricing class (its module is imported on first use)."""
    return benchmark.load().Pricing


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


# Each engine's CoDIT/direct throughput ratio in a `codit bench --json` line (of its
# headline_pair, the tiny world's when benched: our engine_codit over engine_direct,
# vllm_codit over vllm_direct).
ENGINE_RATIO_KEYS = {"hf": BENCH_RATIO_KEY, "vllm": "ratio_vllm_codit_vs_direct"}


def read_bench_ratio(path: str | Path, engine: str = "hf") -> float:
    """`engine`'s CoDIT/direct ratio of the bench line (`bench_record`, ENGINE_RATIO_KEYS); the
    key is null when the bench did not run that engine."""
    key = ENGINE_RATIO_KEYS[engine]
    ratio = bench_record(path).get(key)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio <= 0:
        raise ValueError(
            f"bench file {str(path)!r}: {key} is {ratio!r}, not a positive number (it is null "
            f"or absent when the bench did not run the {engine} engine's CoDIT and direct "
            "methods)"
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
