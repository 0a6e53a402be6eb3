"""`codit judged`: one judging job grades one model's answers to every judged benchmark.

A judge that the job serves itself (`--judge-serve`: a vLLM server of gpt-oss-120b on the
cluster, the tiny world's judge on a laptop) takes minutes to start; one job per benchmark
would start it once per benchmark. This command starts it once and grades, in turn, the
model's answers to each benchmark it is given, each with that benchmark's own grading
(`codit mtbench judge`, `codit alpacaeval judge`, ...): the files are the ones those commands
write, with the same settings in their provenance.

The benchmarks are the registered ones (codit.workflow.benchmarks): `--<task> FOLDER` gives a
benchmark's bench folder (`--mt-bench`, `--alpaca-eval`, ...) and `--<task>-<option>` its
grading options (`--mt-bench-reference`, `--alpaca-eval-seed`, ...). Layout: the evaluated
model's answers to benchmark TASK are in the folder `<--evaluated>.TASK` (answers.jsonl,
answers.card.json, written by the benchmark's `answer` command); the judgments.jsonl,
samples.jsonl and scores.json go beside them. The judge server's output goes to
`--server-log`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codit.judged.common import JudgedOutputs
from codit.judged.judge import JudgeEndpoint
from codit.judged.judge_server import judge_at
from codit.workflow.benchmarks import benchmarks, by_task

ANSWERS = "answers.jsonl"
ANSWERS_CARD = "answers.card.json"
# What a judging job writes into each benchmark's folder.
JUDGED_FILES = ("judgments.jsonl", "samples.jsonl", "scores.json")
# The Python type of a grading option's value, by its JSON schema type.
OPTION_TYPES = {"string": str, "integer": int, "number": float}


def answers_dir(evaluated: str | Path, task: str) -> Path:
    """The folder of one evaluated model's answers to (and grades of) one benchmark."""
    return Path(f"{evaluated}.{task}")


@dataclass(frozen=True, kw_only=True)
class JudgingRun:
    """One `codit judged` run: every benchmark given (by its bench folder) is graded, with its
    grading options (by task: the benchmark's GradingRun fields)."""

    evaluated: str
    benches: Mapping[str, Path]
    judge: JudgeEndpoint
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    server_log: Path | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.benches) - set(by_task()))
        if unknown:
            raise ValueError(f"codit judged: no judged benchmark {unknown[0]!r}")

    @property
    def tasks(self) -> list[str]:
        """The tasks to grade, in the registry's order."""
        return [benchmark.task for benchmark in benchmarks() if benchmark.task in self.benches]

    def outputs(self, task: str) -> JudgedOutputs:
        folder = answers_dir(self.evaluated, task)
        return JudgedOutputs(
            answers_card=folder / ANSWERS_CARD, out=folder / JUDGED_FILES[0],
            samples=folder / JUDGED_FILES[1], scores=folder / JUDGED_FILES[2],
            server_log=self.server_log_path,
        )  # fmt: skip

    @property
    def server_log_path(self) -> Path:
        return self.server_log or Path(f"{self.evaluated}.judge-server.log")

    def grading(self, task: str) -> tuple[Callable[..., dict[str, Any]], Any]:
        """The benchmark's grading function and its own judging settings."""
        module = by_task()[task].load()
        run = module.GradingRun(
            bench=Path(self.benches[task]),
            answers=answers_dir(self.evaluated, task) / ANSWERS,
            judge=self.judge,
            outputs=self.outputs(task),
            **self.options.get(task, {}),
        )
        return module.grade_answers, run


def check_answers(run: JudgingRun) -> None:
    """Every benchmark to grade has its answers and their card: refused before a judge starts."""
    if not run.benches:
        flags = ", ".join(benchmark.flag for benchmark in benchmarks())
        raise ValueError(f"codit judged: give the bench folder of a benchmark ({flags})")
    for task in run.tasks:
        for name in (ANSWERS, ANSWERS_CARD):
            path = answers_dir(run.evaluated, task) / name
            if not path.is_file():
                raise ValueError(f"codit judged: {task}: no {path} (run `codit ... answer` first)")


def judge_all(run: JudgingRun) -> dict[str, dict[str, Any]]:
    """Grade each benchmark's answers with one judge (served once); task -> its scores."""
    check_answers(run)
    run.judge.check()  # before a server starts
    payloads = {}
    with judge_at(run.judge, run.server_log_path) as endpoint:
        for task in run.tasks:
            grade, grading = run.grading(task)
            payloads[task] = grade(grading, running=endpoint)
    return payloads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--evaluated", required=True,
        help="the evaluated model's prefix: answers in EVALUATED.<task>/",
    )  # fmt: skip
    for benchmark in benchmarks():
        parser.add_argument(
            benchmark.flag, type=Path, dest=f"bench_{benchmark.task}", metavar="FOLDER",
            help=f"{benchmark.name} folder: grade EVALUATED.{benchmark.task}/",
        )  # fmt: skip
        for key, schema in benchmark.options.items():
            parser.add_argument(
                benchmark.option_flag(key), dest=f"option_{benchmark.task}_{key}",
                type=OPTION_TYPES[schema["type"]], default=schema.get("default"),
                help=f"{benchmark.name}: {schema.get('description', key)}",
            )  # fmt: skip
    JudgeEndpoint.add_arguments(
        parser, parser.add_argument_group("judge (OpenAI-compatible endpoint)")
    )
    parser.add_argument(
        "--server-log", type=Path, default=None,
        help="the output of the judge server --judge-serve starts (default: beside EVALUATED)",
    )  # fmt: skip


def from_args(args: argparse.Namespace) -> JudgingRun:
    benches, options = {}, {}
    for benchmark in benchmarks():
        folder = getattr(args, f"bench_{benchmark.task}")
        if folder is None:
            continue
        benches[benchmark.task] = folder
        options[benchmark.task] = {
            key: getattr(args, f"option_{benchmark.task}_{key}") for key in benchmark.options
        }
    return JudgingRun(
        evaluated=args.evaluated, benches=benches, options=options,
        judge=JudgeEndpoint.from_args(args), server_log=args.server_log,
    )  # fmt: skip


def run(args: argparse.Namespace) -> None:
    payloads = judge_all(from_args(args))
    print(f"codit judged: {', '.join(payloads)} graded with one judge")
