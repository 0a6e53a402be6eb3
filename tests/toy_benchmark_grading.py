"""The toy judged benchmark's module (its declaration: tests/toy_benchmark.py), serving
`codit toybench answer|judge` and its part of `codit judged`.

A bench folder holds `prompts.jsonl` ({id, prompt}); a model answers each prompt greedily
through our engine (`codit toybench answer`), and the judge rates each answer 1 to 10
(`Rating: [[N]]`); the score is the mean rating times the grading option `weight`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toy_benchmark import BENCHMARK

from codit.judged.answering import Answerer, AnsweringRun, write_answers
from codit.judged.common import JudgedBenchmark, JudgedOutputs, judge_and_write
from codit.judged.judge import Judge, JudgeEndpoint, JudgeRequest, request_key
from codit.workflow.provenance import file_sha256, read_jsonl
from codit.workflow.settings import Settings, group, option

TASK = BENCHMARK.task
PROMPTS = "prompts.jsonl"
RATING = re.compile(r"\[\[(\d+)\]\]")


def parse_rating(reply: str) -> float | None:
    found = RATING.search(reply)
    return float(found.group(1)) if found else None


@dataclass(frozen=True, kw_only=True)
class GradingRun(Settings):
    """One `codit toybench judge` run (and the toy's part of `codit judged`)."""

    bench: Path = option(help="toy bench folder (prompts.jsonl)")
    answers: Path = option(help="the model's answers: JSONL of {id, output}")
    judge: JudgeEndpoint = group(JudgeEndpoint, "judge (OpenAI-compatible endpoint)")
    outputs: JudgedOutputs = group(JudgedOutputs, "outputs")
    weight: int = option(1, "what each rating is multiplied by")


JUDGED = JudgedBenchmark(
    name=BENCHMARK.name, task=TASK, metrics=BENCHMARK.metrics, prompt_version="toy-v1",
    parse=parse_rating,
)  # fmt: skip


def grade_answers(grading: GradingRun, running: JudgeEndpoint | None = None) -> dict[str, Any]:
    prompts = {p["id"]: p["prompt"] for p in read_jsonl(grading.bench / PROMPTS)}
    answers = read_jsonl(grading.answers, objects_only=True)

    def grade(judge: Judge) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        requests = []
        for answer in answers:
            content = f"Rate this answer.\n{prompts[answer['id']]}\n{answer['output']}"
            key = request_key(judge.endpoint.model, JUDGED.prompt_version, content)
            requests.append(JudgeRequest(key, [{"role": "user", "content": content}], answer["id"]))
        verdicts = judge.ask(requests)
        judgments = [
            {"id": answer["id"], "rating": verdicts[request.key]["verdict"],
             "reply": verdicts[request.key]["reply"]}
            for answer, request in zip(answers, requests, strict=True)
        ]  # fmt: skip
        ratings = [j["rating"] * grading.weight for j in judgments if j["rating"] is not None]
        return judgments, {"score": sum(ratings) / len(ratings) if ratings else None}

    def samples(judgments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"doc_id": position, "filter": "none", "metrics": ["score"],
             "doc_hash": hashlib.sha256(judgment["id"].encode()).hexdigest(),
             "score": judgment["rating"] * grading.weight}
            for position, judgment in enumerate(judgments) if judgment["rating"] is not None
        ]  # fmt: skip

    return judge_and_write(
        JUDGED, grading.judge, grading.outputs, grade=grade, item_samples=samples,
        record=grading.record(), extra={"answers_sha256": file_sha256(grading.answers)},
        running=running,
    )  # fmt: skip


def answer_prompts(run: AnsweringRun) -> list[dict[str, Any]]:
    prompts = read_jsonl(Path(run.bench) / PROMPTS, objects_only=True)
    answers = Answerer(run, BENCHMARK.name).answer(
        [[{"role": "user", "content": p["prompt"]}] for p in prompts],
        [p["id"] for p in prompts],
        0.0,
    )
    return [
        {"id": p["id"], "output": a.text, "finish_reason": a.finish_reason}
        for p, a in zip(prompts, answers, strict=True)
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    AnsweringRun.add_arguments(commands.add_parser("answer", help="answer every prompt"))
    GradingRun.add_arguments(commands.add_parser("judge", help="rate the answers"))


def run(args: argparse.Namespace) -> None:
    if args.command == "answer":
        answering = AnsweringRun.from_args(args)
        records = answer_prompts(answering)
        write_answers(answering, records, [r["finish_reason"] for r in records], PROMPTS)
        return
    payload = grade_answers(GradingRun.from_args(args))
    print(json.dumps({"score": payload["score"]}))
