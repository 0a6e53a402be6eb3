"""`codit judged`: one judging job grades one model's answers to every judged benchmark.

A judge that the job serves itself (`--judge-serve`: a vLLM server of a 70B model on the
cluster, the tiny world's judge on a laptop) takes minutes to start; one job per benchmark
would start it once per benchmark. This command starts it once and grades, in turn, the
model's answers to each benchmark it is given, each with that benchmark's own grading
(`codit mtbench judge`, `codit alpacaeval judge`, `codit wildbench judge`): the files are the
ones those commands write, with the same settings in their provenance.

Layout: the evaluated model's answers to benchmark TASK (mt_bench, alpaca_eval, wildbench) are
in the folder `<--evaluated>.TASK` (answers.jsonl, answers.card.json, written by the
benchmark's `answer` command); the judgments.jsonl, samples.jsonl and scores.json go beside
them. The judge server's output goes to `--server-log`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.judged import alpacaeval, mtbench, wildbench
from codit.judged.common import JudgedOutputs
from codit.judged.judge import JudgeEndpoint
from codit.judged.judge_server import judge_at
from codit.workflow.settings import Settings, group, option

# Every judged benchmark: its task name (the answers' folder suffix, the tables' task), in the
# order a judging job grades them.
TASKS = (mtbench.TASK, alpacaeval.TASK, wildbench.TASK)
ANSWERS = "answers.jsonl"
ANSWERS_CARD = "answers.card.json"
# What a judging job writes into each benchmark's folder.
JUDGED_FILES = ("judgments.jsonl", "samples.jsonl", "scores.json")


def answers_dir(evaluated: str | Path, task: str) -> Path:
    """The folder of one evaluated model's answers to (and grades of) one benchmark."""
    return Path(f"{evaluated}.{task}")


@dataclass(frozen=True, kw_only=True)
class JudgingRun(Settings):
    """One `codit judged` run: every benchmark given (by its bench folder) is graded."""

    evaluated: str = option(help="the evaluated model's prefix: answers in EVALUATED.<task>/")
    mt_bench: Path | None = option(None, "MT-Bench folder: grade EVALUATED.mt_bench/")
    mt_bench_reference: str = option("gpt-4", "MT-Bench's reference answers (see codit mtbench)")
    alpaca_eval: Path | None = option(None, "AlpacaEval folder: grade EVALUATED.alpaca_eval/")
    alpaca_eval_seed: int = option(
        alpacaeval.ORDER_SEED, "seed of alpaca_eval's switch of the two outputs' order"
    )
    alpaca_eval_top_logprobs: int = option(
        alpacaeval.TOP_LOGPROBS, "first-token log-probabilities for weighted verdicts (0: plain)"
    )
    wildbench: Path | None = option(None, "WildBench folder: grade EVALUATED.wildbench/")
    judge: JudgeEndpoint = group(JudgeEndpoint, "judge (OpenAI-compatible endpoint)")
    server_log: Path | None = option(
        None, "the output of the judge server --judge-serve starts (default: beside EVALUATED)"
    )

    def benches(self) -> dict[str, Path]:
        """task -> bench folder of the benchmarks to grade, in TASKS order."""
        given = {
            mtbench.TASK: self.mt_bench, alpacaeval.TASK: self.alpaca_eval,
            wildbench.TASK: self.wildbench,
        }  # fmt: skip
        return {task: Path(given[task]) for task in TASKS if given[task] is not None}

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

    def grading(self, task: str) -> tuple[Callable[..., dict[str, Any]], Settings]:
        """The benchmark's grading function and its own judging settings."""
        bench, outputs = self.benches()[task], self.outputs(task)
        answers = answers_dir(self.evaluated, task) / ANSWERS
        common = {"bench": bench, "answers": answers, "judge": self.judge, "outputs": outputs}
        if task == mtbench.TASK:
            run = mtbench.GradingRun(reference=self.mt_bench_reference, **common)
            return mtbench.grade_answers, run
        if task == alpacaeval.TASK:
            run = alpacaeval.GradingRun(
                seed=self.alpaca_eval_seed, top_logprobs=self.alpaca_eval_top_logprobs, **common
            )
            return alpacaeval.grade_answers, run
        return wildbench.grade_answers, wildbench.GradingRun(**common)


def check_answers(run: JudgingRun) -> None:
    """Every benchmark to grade has its answers and their card: refused before a judge starts."""
    if not run.benches():
        raise ValueError("codit judged: give --mt-bench, --alpaca-eval or --wildbench")
    for task in run.benches():
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
        for task in run.benches():
            grade, grading = run.grading(task)
            payloads[task] = grade(grading, running=endpoint)
    return payloads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    JudgingRun.add_arguments(parser)


def run(args: argparse.Namespace) -> None:
    payloads = judge_all(JudgingRun.from_args(args))
    print(f"codit judged: {', '.join(payloads)} graded with one judge")
