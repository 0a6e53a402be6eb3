"""The LLM-judged benchmarks, each declared once: the jobs, the config schema and checks, the
judging job, the tables, the verdicts and the cost estimate all read this list.

A benchmark is a `Benchmark` entry here and a module of its own (`module`) that serves
`codit <command> fetch|answer|judge` and provides, for the judging job, a `GradingRun` settings
class (fields `bench`, `answers`, `judge`, `outputs` and the benchmark's `options`) and
`grade_answers(run, running=None)`, and for `codit cost` a `Pricing` class
(docs/adding-a-benchmark.md walks through one). A benchmark that lives outside this package is
added by naming its entry in the environment variable CODIT_JUDGED_BENCHMARKS
("module:ATTRIBUTE", comma-separated); the module must be importable wherever the workflow's
jobs run.

This module imports nothing heavy: the Snakefile reads it while it builds the DAG.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

PLUGINS_VARIABLE = "CODIT_JUDGED_BENCHMARKS"


@dataclass(frozen=True)
class Headline:
    """A metric the paper reports for a benchmark: a column of the paper's table (`column`,
    explained by `description`, printed with `digits` decimals) and a metric its claims are
    decided on (`verdict_label`)."""

    metric: str
    column: str
    verdict_label: str
    description: str
    digits: int


@dataclass(frozen=True)
class Benchmark:
    """One judged benchmark (see the module docstring)."""

    task: str  # its config section evaluation.<task>, its results' task name, its folders' suffix
    command: str  # `codit <command> fetch|answer|judge`; its rules are named <command>_...
    module: str  # the module that serves the command, the judging job and the pricing
    name: str  # the benchmark's own name, in messages
    label: str  # a short name, in the cost estimate
    help: str  # the command's line in `codit --help`
    summary: str  # what the config section turns on (the schema's description)
    published: str  # the `bench` value that means the benchmark's own data, fetched
    bench_help: str  # what each `bench` value means (the schema's description)
    data_file: str  # a bench folder of the benchmark's layout holds this file
    max_new_tokens: int  # default length of an answer
    metrics: tuple[str, ...]  # the metrics its scores files hold, headline ones first
    headlines: tuple[Headline, ...] = ()
    paper_rank: int = 100  # the paper table's columns come in this order
    # Config keys passed to the judging job as --<task>-<key> (the module's GradingRun fields
    # of the same names), with their JSON schema.
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Config keys that move the fetch elsewhere: key -> (the fetch command's flag, its help).
    fetch_sources: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    tinyworld: bool = False  # whether the tiny world builds its own bench (`bench: tinyworld`)
    pricing_key: str = ""  # the item count's key in config/cost.yaml's section <task>
    items_name: str = "items"  # what one item is called in the cost estimate

    @property
    def flag(self) -> str:
        """The judging job's flag of its bench folder: `--mt-bench`."""
        return "--" + self.task.replace("_", "-")

    def option_flag(self, key: str) -> str:
        """The judging job's flag of the option `key`: `--mt-bench-reference`."""
        return f"{self.flag}-{key.replace('_', '-')}"

    def load(self) -> Any:
        """The module that serves the benchmark (imported on first use)."""
        return importlib.import_module(self.module)

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the config section evaluation.<task>."""
        sources = {
            key: {"type": ["string", "null"], "default": None, "description": text}
            for key, (_, text) in self.fetch_sources.items()
        }
        return {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": self.summary,
            "properties": {
                "enabled": {"type": "boolean", "default": False},
                "bench": {
                    "type": "string",
                    "default": self.published,
                    "description": self.bench_help,
                },
                "max_new_tokens": {"type": "integer", "minimum": 1, "default": self.max_new_tokens},
                **{key: dict(schema) for key, schema in self.options.items()},
                **sources,
            },
        }


MT_BENCH = Benchmark(
    task="mt_bench",
    command="mtbench",
    module="codit.judged.mtbench",
    name="MT-Bench",
    label="MT-Bench",
    help="MT-Bench: grade a model's two-turn answers with an LLM judge (FastChat's grading)",
    summary=(
        "MT-Bench for every evaluated model: both turns answered through our engine, graded by "
        "the config's `judge` with FastChat's single-answer prompts"
    ),
    published="fastchat",
    bench_help=(
        "`fastchat`: FastChat's data, fetched into the hub cache by a local rule; `tinyworld`: "
        "the tiny world's own (two turns, the second adding a constraint); or a folder of "
        "FastChat's layout"
    ),
    data_file="question.jsonl",
    max_new_tokens=1024,
    metrics=("score", "turn_1", "turn_2"),
    headlines=(Headline("score", "MT-Bench", "MT-Bench", "MT-Bench mean judge score (1-10)", 2),),
    paper_rank=1,
    options={
        "reference": {
            "type": "string",
            "default": "gpt-4",
            "description": "reference answers: <bench>/reference_answer/<reference>.jsonl",
        },
    },
    fetch_sources={
        "source": (
            "--source",
            "where `fastchat` is fetched from: a URL or folder of FastChat's "
            "fastchat/llm_judge/data layout (null: FastChat's repository at the pinned commit)",
        ),
    },
    tinyworld=True,
    pricing_key="questions_per_category",
    items_name="questions",
)

ALPACA_EVAL = Benchmark(
    task="alpaca_eval",
    command="alpacaeval",
    module="codit.judged.alpacaeval",
    name="AlpacaEval 2.0",
    label="AlpacaEval 2",
    help="AlpacaEval 2.0: a model's outputs judged pairwise against the reference (WR, LC WR)",
    summary=(
        "AlpacaEval 2.0 for every evaluated model: one greedy output per instruction through our "
        "engine, judged pairwise against the reference outputs by the config's `judge` "
        "(alpaca_eval's weighted_alpaca_eval_gpt4_turbo prompt); win rate and length-controlled "
        "win rate"
    ),
    published="alpaca_eval",
    bench_help=(
        "`alpaca_eval`: the benchmark's data files and template, fetched into the hub cache by a "
        "local rule; `tinyworld`: the tiny world's (the tiny instruct model's answers as the "
        "reference); or a folder with reference_outputs.json and alpaca_eval_clf.txt"
    ),
    data_file="reference_outputs.json",
    max_new_tokens=2048,
    metrics=("length_controlled_winrate", "win_rate", "avg_length"),
    headlines=(
        Headline(
            "length_controlled_winrate",
            "AE2 LC",
            "AlpacaEval 2 LC",
            "AlpacaEval 2 length-controlled win rate against the reference (%)",
            1,
        ),
        Headline("win_rate", "AE2 WR", "AlpacaEval 2 WR", "AlpacaEval 2 win rate (%)", 1),
    ),  # fmt: skip
    paper_rank=0,
    options={
        "seed": {
            "type": "integer",
            "minimum": 0,
            "default": 0,
            "description": "seed of alpaca_eval's switch of the order the two outputs are shown "
            "in (0: alpaca_eval's own, the published annotations')",
        },
        "top_logprobs": {
            "type": "integer",
            "minimum": 0,
            "default": 5,
            "description": "first-token log-probabilities asked of the judge for weighted "
            "verdicts (alpaca_eval's default judge); 0: plain verdicts",
        },
    },
    fetch_sources={
        "data_source": (
            "--data-source",
            "where `alpaca_eval` fetches the dataset's files from: a URL or folder of the "
            "tatsu-lab/alpaca_eval dataset repository's layout (null: the Hub)",
        ),
        "template_source": (
            "--template-source",
            "where `alpaca_eval` fetches the judge's template from: a URL or folder of the "
            "tatsu-lab/alpaca_eval code repository's layout (null: its v0.6.6 tag)",
        ),
    },
    tinyworld=True,
    pricing_key="instructions",
    items_name="instructions",
)

WILDBENCH = Benchmark(
    task="wildbench",
    command="wildbench",
    module="codit.judged.wildbench",
    name="WildBench",
    label="WildBench",
    help="WildBench v2: a model's answers scored 1-10 on each task's checklist (WB-Score)",
    summary=(
        "WildBench v2 for every evaluated model: the last turn of each task answered greedily "
        "through our engine, scored 1 to 10 on the task's checklist by the config's `judge`; "
        "WB-Score and the task macro"
    ),
    published="wildbench",
    bench_help=(
        "`wildbench`: the v2 tasks and score template at pinned revisions, fetched into the hub "
        "cache by a local rule; `tinyworld`: the tiny world's (checklists from the instruction's "
        "constraints and facts); or a folder with tasks.jsonl and eval_template.score.v2.md"
    ),
    data_file="tasks.jsonl",
    max_new_tokens=4096,
    metrics=("score", "wb_score", "task_macro"),
    headlines=(
        Headline(
            "wb_score",
            "WB-Score",
            "WB-Score",
            "WildBench v2 WB-Score, (mean score - 5) x 20",
            1,
        ),
    ),  # fmt: skip
    paper_rank=2,
    fetch_sources={
        "data_source": (
            "--data-source",
            "where `wildbench` fetches the v2 split from: a URL or folder of the "
            "allenai/WildBench dataset repository's layout (null: the Hub at the pinned revision)",
        ),
        "template_source": (
            "--template-source",
            "where `wildbench` fetches the score template from: a URL or folder of the "
            "allenai/WildBench code repository's layout (null: the pinned commit)",
        ),
    },
    tinyworld=True,
    pricing_key="tasks",
    items_name="tasks",
)

# The benchmarks of this package, in the order a judging job grades them.
BUILT_IN = (MT_BENCH, ALPACA_EVAL, WILDBENCH)
# The paper selects CoDIT's alpha on MT-Bench's score (the task and metric of its scores files).
SELECTION_METRIC = f"{MT_BENCH.task}/score"


def plugins(spec: str) -> tuple[Benchmark, ...]:
    """The benchmarks a CODIT_JUDGED_BENCHMARKS value names ("module:ATTRIBUTE", ...)."""
    found = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        module, _, attribute = item.partition(":")
        if not attribute:
            raise ValueError(f"{PLUGINS_VARIABLE}: {item!r} is not module:ATTRIBUTE")
        try:
            benchmark = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"{PLUGINS_VARIABLE}: cannot load {item!r}: {error}") from None
        if not isinstance(benchmark, Benchmark):
            raise ValueError(f"{PLUGINS_VARIABLE}: {item!r} is not a codit Benchmark")
        found.append(benchmark)
    return tuple(found)


@cache
def _registered(spec: str) -> tuple[Benchmark, ...]:
    registered = (*BUILT_IN, *plugins(spec))
    for key in ("task", "command"):
        names = [getattr(benchmark, key) for benchmark in registered]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"{PLUGINS_VARIABLE}: the judged benchmark {key} {twice[0]!r} twice")
    return registered


def benchmarks() -> tuple[Benchmark, ...]:
    """Every judged benchmark: this package's, then those CODIT_JUDGED_BENCHMARKS adds."""
    return _registered(os.environ.get(PLUGINS_VARIABLE, ""))


def by_task() -> dict[str, Benchmark]:
    return {benchmark.task: benchmark for benchmark in benchmarks()}


def by_command() -> dict[str, Benchmark]:
    return {benchmark.command: benchmark for benchmark in benchmarks()}


def paper_headlines() -> list[tuple[Benchmark, Headline]]:
    """The headline metrics in the paper table's column order."""
    ranked = sorted(benchmarks(), key=lambda benchmark: benchmark.paper_rank)
    return [(benchmark, headline) for benchmark in ranked for headline in benchmark.headlines]


def fetch_flags(section: Mapping[str, Any], benchmark: Benchmark) -> list[str]:
    """The fetch command's flags for the sources a config section sets (a local folder as a
    file:// URL); [] where it keeps the benchmark's pinned defaults."""
    flags = []
    for key, (flag, _) in benchmark.fetch_sources.items():
        source = section.get(key)
        if source is not None:
            url = source if source.startswith(URL_SCHEMES) else Path(source).resolve().as_uri()
            flags += [flag, url]
    return flags


URL_SCHEMES = ("http://", "https://", "file://")
