"""MT-Bench single-answer grading (FastChat's llm_judge), asked through codit.judged.judge.

A bench folder holds FastChat's layout: `question.jsonl` ({question_id, category, turns: [q1,
q2]}), `reference_answer/<name>.jsonl` ({question_id, choices: [{turns: [r1, r2]}]}) and
`judge_prompts.jsonl` ({name, type, system_prompt, prompt_template, output_format}). For the
paper grid it is FastChat's own data (Apache-2.0), fetched into the hub cache; the tiny world
writes its own. The answers to grade are JSONL records {question_id, turns: [a1, a2]}.

Answers (`codit mtbench answer`): the model answers turn 1, then turn 2 with its own first
answer in the context, through our generation engine (the model alone, direct mode), at its
category's temperature (FastChat's temperature_config; 0 means greedy; a category it does not
list: 0.7); a sampled answer's seed is derived from (seed, question id, turn), so answers do not
depend on batching.

The grading follows FastChat's definitions (fastchat/llm_judge/common.py and show_result.py):

- turn 1 is graded with `single-v1`, or `single-math-v1` (with the reference answer) for the
  categories in NEED_REF_CATS; turn 2 with `single-v1-multi-turn` or
  `single-math-v1-multi-turn`, which show the whole two-turn conversation;
- the judge gets the prompt's system message and the filled template, at temperature 0;
- the rating is the first `[[N]]` of the reply, else the first `[N]` (N may have a decimal
  part); a reply without one is asked again (codit.judged.judge) and, if it still has none, counted
  as unparsable and left out of the means (FastChat's -1, filtered in show_result.py);
- scores: the mean rating of turn 1, of turn 2, and of all valid judgments (`score`).

The scores file is shaped like an evaluation file of `codit evaluate`, so the report reads it
beside the lm-eval results: `results["mt_bench"]` holds `score,none`, `turn_1,none` and
`turn_2,none` with their `_stderr` twins (the standard error of the mean over questions),
`codit.labels` the answering model's labels (from the answers' card), and
`codit.sample_files["mt_bench"]` a per-question file in lm-eval's logged-sample layout
(doc_id = question id; each metric the mean valid rating of the question's turns; a metric
with no valid rating is left out), which the paired bootstrap resamples: the two turns of a
question share one conversation, so the question is the unit.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.judged.answering import Answerer, AnsweringRun, write_answers
from codit.judged.common import JudgedBenchmark, JudgedOutputs, fetch_file, judge_and_write
from codit.judged.judge import Judge, JudgeEndpoint, JudgeRequest, request_key
from codit.workflow.provenance import (
    file_sha256,
    provenance,
    read_jsonl,
    staged_dir,
    write_json,
)
from codit.workflow.settings import Settings, group, option

# Categories graded against the reference answer, and the answer temperature of each category
# (FastChat common.py NEED_REF_CATS and temperature_config).
NEED_REF_CATS = ("math", "reasoning", "coding", "arena-hard-200")
TEMPERATURE = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
    "arena-hard-200": 0.0,
}
PROMPT_NAMES = {
    (1, False): "single-v1",
    (1, True): "single-math-v1",
    (2, False): "single-v1-multi-turn",
    (2, True): "single-math-v1-multi-turn",
}
RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
BENCHMARK = "MT-Bench"
TASK = "mt_bench"  # the benchmark's task name in the report's tables
TURN_METRICS = {"turn_1": (1,), "turn_2": (2,), "score": (1, 2)}


def parse_rating(reply: str) -> float | None:
    """FastChat's single-answer rating: `[[N]]`, else `[N]`; None when neither is there."""
    found = RATING.search(reply) or RATING_BACKUP.search(reply)
    return float(ast.literal_eval(found.group(1))) if found else None


class Bench:
    """One bench folder: its questions, reference answers and judge prompts."""

    def __init__(self, folder: str | Path, reference: str = "gpt-4") -> None:
        self.folder = Path(folder)
        paths = {
            "questions": self.folder / "question.jsonl",
            "prompts": self.folder / "judge_prompts.jsonl",
        }
        for path in paths.values():
            if not path.is_file():
                raise FileNotFoundError(f"MT-Bench folder {self.folder}: no {path.name}")
        self.questions = {
            str(q["question_id"]): q for q in read_jsonl(paths["questions"], objects_only=True)
        }
        self.prompts = {p["name"]: p for p in read_jsonl(paths["prompts"], objects_only=True)}
        missing = sorted(set(PROMPT_NAMES.values()) - set(self.prompts))
        if missing:
            raise ValueError(f"{paths['prompts']}: no judge prompt {', '.join(missing)}")
        reference_path = self.folder / "reference_answer" / f"{reference}.jsonl"
        self.references = {}
        if reference_path.is_file():
            for record in read_jsonl(reference_path, objects_only=True):
                self.references[str(record["question_id"])] = record["choices"][0]["turns"]
        self.sha256 = {name: file_sha256(path) for name, path in paths.items()}

    def needs_reference(self, question: dict[str, Any]) -> bool:
        return question["category"] in NEED_REF_CATS

    def prompt_name(self, question: dict[str, Any], turn: int) -> str:
        """FastChat's judge prompt for `turn` of `question`."""
        return PROMPT_NAMES[(turn, self.needs_reference(question))]

    def request(self, answer: dict[str, Any], turn: int, judge_model: str) -> JudgeRequest:
        """The judge request grading turn `turn` (1 or 2) of one answer record."""
        key = str(answer["question_id"])
        question = self.questions.get(key)
        if question is None:
            raise ValueError(f"{BENCHMARK}: question {key} of the answers is not in {self.folder}")
        with_reference = self.needs_reference(question)
        prompt = self.prompts[self.prompt_name(question, turn)]
        fields: dict[str, Any] = {
            "question": question["turns"][0],
            "answer": answer["turns"][0],
            "question_1": question["turns"][0],
            "question_2": question["turns"][1],
            "answer_1": answer["turns"][0],
            "answer_2": answer["turns"][1],
        }
        if with_reference:
            reference = self.references.get(key)
            if reference is None:
                raise ValueError(
                    f"{BENCHMARK}: question {key} ({question['category']}) is graded against a "
                    f"reference answer, and {self.folder}/reference_answer has none"
                )
            fields |= {"ref_answer_1": reference[0], "ref_answer_2": reference[1]}
        messages = [
            {"role": "system", "content": prompt["system_prompt"]},
            {"role": "user", "content": prompt["prompt_template"].format(**fields)},
        ]
        text = [messages[0]["content"], messages[1]["content"]]
        return JudgeRequest(
            request_key(judge_model, prompt["name"], *text),
            messages,
            f"question {key} turn {turn}",
        )


def grade(
    bench: Bench, answers: Sequence[dict[str, Any]], judge: Judge
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(one judgment per answer and turn, the scores); see the module docstring."""
    requests = [
        (answer, turn, bench.request(answer, turn, judge.endpoint.model))
        for answer in answers
        for turn in (1, 2)
    ]
    verdicts = judge.ask([request for _, _, request in requests])
    judgments = []
    for answer, turn, request in requests:
        entry = verdicts[request.key]
        question = bench.questions[str(answer["question_id"])]
        judgments.append(
            {
                "question_id": answer["question_id"],
                "category": question["category"],
                "turn": turn,
                "rating": entry["verdict"],
                "judge_prompt": bench.prompt_name(question, turn),
                "reply": entry["reply"],
            }
        )
    return judgments, scores(judgments)


def scores(judgments: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean valid rating per turn and overall; unparsable judgments counted, not averaged."""

    def mean(turns: tuple[int, ...]) -> float | None:
        ratings = [j["rating"] for j in judgments if j["turn"] in turns and j["rating"] is not None]
        return sum(ratings) / len(ratings) if ratings else None

    return {
        **{metric: mean(turns) for metric, turns in TURN_METRICS.items()},
        "judgments": len(judgments),
        "unparsable": sum(j["rating"] is None for j in judgments),
    }


def question_samples(bench: Bench, judgments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per question in lm-eval's logged-sample layout (see the module docstring)."""
    ratings: dict[int, dict[int, float]] = {}
    for judgment in judgments:
        turns = ratings.setdefault(judgment["question_id"], {})
        if judgment["rating"] is not None:
            turns[judgment["turn"]] = judgment["rating"]
    samples = []
    for question_id, turns in ratings.items():
        question = bench.questions[str(question_id)]
        record: dict[str, Any] = {
            "doc_id": question_id,
            "doc_hash": hashlib.sha256(json.dumps(question["turns"]).encode()).hexdigest(),
            "filter": "none",
            "metrics": list(TURN_METRICS),
            "category": question["category"],
        }
        for metric, wanted in TURN_METRICS.items():
            valid = [turns[turn] for turn in wanted if turn in turns]
            if valid:
                record[metric] = sum(valid) / len(valid)
        samples.append(record)
    return samples


# --------------------------------------------------------------------------------------------
# Fetching FastChat's data

# FastChat's MT-Bench data (Apache-2.0) at a fixed commit, so every run grades the same way.
FASTCHAT_COMMIT = "0e6e7fdc78bf64aceea1508694ce4e6472810b8b"
FASTCHAT_DATA = "https://raw.githubusercontent.com/lm-sys/FastChat/{commit}/fastchat/llm_judge/data"
# Bench file -> its path below FastChat's data folder.
FASTCHAT_FILES = {
    "question.jsonl": "mt_bench/question.jsonl",
    "reference_answer/gpt-4.jsonl": "mt_bench/reference_answer/gpt-4.jsonl",
    "judge_prompts.jsonl": "judge_prompts.jsonl",
}


@dataclass(frozen=True, kw_only=True)
class FetchRun(Settings):
    """One `codit mtbench fetch` run: FastChat's MT-Bench files into a bench folder."""

    out: Path = option(help="the bench folder to write")
    source: str = option(
        FASTCHAT_DATA.format(commit=FASTCHAT_COMMIT),
        "base URL (or file:// folder) of FastChat's llm_judge/data",
    )


def fetch(run: FetchRun) -> dict[str, Any]:
    """Download the bench files into a staging folder, check them, then swap it in."""
    with staged_dir(run.out) as staging:
        files = {
            name: fetch_file(f"{run.source.rstrip('/')}/{remote}", staging / name, BENCHMARK)
            for name, remote in FASTCHAT_FILES.items()
        }
        bench = Bench(staging)  # refuses a folder that is not MT-Bench's
        manifest = {"questions": len(bench.questions), "files": files, **provenance(run.record())}
        write_json(staging / "manifest.json", manifest)
    return manifest


# --------------------------------------------------------------------------------------------
# Answering


def temperature_of(category: str) -> float:
    return TEMPERATURE.get(category, 0.7)


def answer_questions(run: AnsweringRun) -> list[dict[str, Any]]:
    """Both turns of every question of the bench, in question-id order."""
    questions = sorted(
        read_jsonl(Path(run.bench) / "question.jsonl", objects_only=True),
        key=lambda question: question["question_id"],
    )
    answers = {
        q["question_id"]: {"turns": [], "finish_reasons": [], "num_tokens": []} for q in questions
    }
    with Answerer(run, BENCHMARK) as answerer:
        for turn in (1, 2):
            for temperature in sorted({temperature_of(q["category"]) for q in questions}):
                group = [q for q in questions if temperature_of(q["category"]) == temperature]
                conversations = [
                    conversation(q, answers[q["question_id"]]["turns"], turn) for q in group
                ]
                names = [f"{q['question_id']}:turn{turn}" for q in group]
                for question, result in zip(
                    group, answerer.answer(conversations, names, temperature), strict=True
                ):
                    record = answers[question["question_id"]]
                    record["turns"].append(result.text)
                    record["finish_reasons"].append(result.finish_reason)
                    record["num_tokens"].append(result.num_tokens)
    return [
        {
            "question_id": q["question_id"],
            "category": q["category"],
            "temperature": temperature_of(q["category"]),
            **answers[q["question_id"]],
        }
        for q in questions
    ]


def conversation(question: dict[str, Any], answered: list[str], turn: int) -> list[dict[str, str]]:
    """The messages before the answer to `turn`: turn 2 sees the first question and answer."""
    messages = [{"role": "user", "content": question["turns"][0]}]
    if turn == 2:
        messages += [
            {"role": "assistant", "content": answered[0]},
            {"role": "user", "content": question["turns"][1]},
        ]
    return messages


# --------------------------------------------------------------------------------------------
# Cost (`codit cost`)


@dataclass(frozen=True)
class Pricing:
    """MT-Bench as `codit cost` sees it (the section mt_bench of config/cost.yaml): FastChat's
    questions per category and mean tokens. Like every judged benchmark's Pricing it tells the
    estimate its items, the answering groups (items batched together: one answering
    temperature), the prompt tokens of each answering round, and the judge calls and prompt
    tokens of one judging job."""

    categories: dict[str, int]  # questions per category
    turn1_question_tokens: float
    turn2_question_tokens: float
    chat_template_tokens: float  # the answering prompt's chat template, per prompt
    answer_tokens: float  # mean answer per turn, before max_new_tokens caps it
    reference_tokens: float  # mean reference answer per turn (categories in NEED_REF_CATS)
    judge_template_tokens: float  # a judge prompt's fixed text and chat format
    judge_reply_tokens: float  # mean judge reply, before judge.max_tokens caps it

    @property
    def questions(self) -> int:
        return sum(self.categories.values())

    @property
    def items(self) -> int:
        return self.questions

    @property
    def reference_questions(self) -> int:
        """Questions graded against the reference answer (FastChat's NEED_REF_CATS)."""
        return sum(n for category, n in self.categories.items() if category in NEED_REF_CATS)

    def temperature_groups(self) -> list[int]:
        """Questions per answering temperature: `codit mtbench answer` batches each temperature
        on its own (temperature_of)."""
        groups: dict[float, int] = {}
        for category, n in self.categories.items():
            groups[temperature_of(category)] = groups.get(temperature_of(category), 0) + n
        return [groups[temperature] for temperature in sorted(groups)]

    def answer_groups(self) -> list[int]:
        return self.temperature_groups()

    def answer_prompts(self, answer_tokens: float) -> tuple[float, ...]:
        """Mean prompt tokens of the two answering turns: turn 2 holds the first question, the
        model's first answer and the second question."""
        turn1 = self.turn1_question_tokens + self.chat_template_tokens
        turn2 = (
            self.turn1_question_tokens
            + answer_tokens
            + self.turn2_question_tokens
            + self.chat_template_tokens
        )
        return turn1, turn2

    def judge_calls(self) -> int:
        """One call per question and turn."""
        return 2 * self.questions

    def judge_prompt_tokens(self, answer_tokens: float) -> float:
        """Prompt tokens of one judging job's 2 x questions calls (FastChat's single-answer
        prompts): turn 1 shows question 1 and answer 1; turn 2 the whole conversation; the
        NEED_REF_CATS prompts add the reference answer of turn 1, and for turn 2 a reference
        conversation (both questions and both reference answers)."""
        q1, q2 = self.turn1_question_tokens, self.turn2_question_tokens
        template, reference = self.judge_template_tokens, self.reference_tokens
        turn1 = self.questions * (template + q1 + answer_tokens)
        turn1 += self.reference_questions * reference
        turn2 = self.questions * (template + q1 + answer_tokens + q2 + answer_tokens)
        turn2 += self.reference_questions * (q1 + reference + q2 + reference)
        return turn1 + turn2


# --------------------------------------------------------------------------------------------
# Command line


@dataclass(frozen=True, kw_only=True)
class GradingRun(Settings):
    """One `codit mtbench judge` run: one model's answers graded by the judge."""

    bench: Path = option(help="MT-Bench folder (question.jsonl, judge_prompts.jsonl, ...)")
    reference: str = option("gpt-4", "reference answers: BENCH/reference_answer/NAME.jsonl")
    answers: Path = option(help="the model's answers: JSONL of {question_id, turns: [a1, a2]}")
    judge: JudgeEndpoint = group(JudgeEndpoint, "judge (OpenAI-compatible endpoint)")
    outputs: JudgedOutputs = group(JudgedOutputs, "outputs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    FetchRun.add_arguments(
        commands.add_parser("fetch", help="FastChat's MT-Bench data into a bench folder")
    )
    AnsweringRun.add_arguments(
        commands.add_parser("answer", help="answer both turns of every question with a model")
    )
    GradingRun.add_arguments(
        commands.add_parser("judge", help="grade a model's two-turn answers with the judge")
    )


def run(args: argparse.Namespace) -> None:
    if args.command == "fetch":
        fetch_run = FetchRun.from_args(args)
        manifest = fetch(fetch_run)
        print(f"codit mtbench: {manifest['questions']} questions -> {fetch_run.out}")
        return
    if args.command == "answer":
        answering = AnsweringRun.from_args(args)
        records = answer_questions(answering)
        reasons = [reason for record in records for reason in record["finish_reasons"]]
        write_answers(answering, records, reasons, "question.jsonl")
        return
    grade_answers(GradingRun.from_args(args))


JUDGED = JudgedBenchmark(
    name=BENCHMARK, task=TASK, metrics=tuple(TURN_METRICS), prompt_version="fastchat",
    parse=parse_rating,
)  # fmt: skip


def grade_answers(grading: GradingRun, running: JudgeEndpoint | None = None) -> dict[str, Any]:
    """Grade the answers; write the judgments, the per-question samples and the scores."""
    bench = Bench(grading.bench, grading.reference)
    answers = read_jsonl(grading.answers, objects_only=True)
    payload = judge_and_write(
        JUDGED, grading.judge, grading.outputs,
        grade=lambda judge: grade(bench, answers, judge),
        item_samples=lambda judgments: question_samples(bench, judgments),
        record=grading.record(),
        extra={"bench_sha256": bench.sha256, "answers_sha256": file_sha256(grading.answers)},
        running=running,
    )  # fmt: skip
    print(
        f"codit mtbench: {BENCHMARK} score {payload['score']} (turn 1 {payload['turn_1']}, "
        f"turn 2 {payload['turn_2']}; {payload['unparsable']} unparsable) -> "
        f"{grading.outputs.scores}"
    )
    return payload
