"""WildBench v2 checklist scoring (WB-Score and its task macro), asked through codit.judged.judge.

A bench folder holds:

- `tasks.jsonl`: one record per task, in the benchmark's order (the position is the task's
  lm-eval doc_id): {id, session_id, conversation_input: [{role, content}, ...], checklist:
  [str, ...], primary_tag, secondary_tags: [str, ...]}; the model answers the last message of
  `conversation_input` (a user turn) with the earlier messages in its context;
- `eval_template.score.v2.md`: the judge's template, with the placeholders `{$history}`,
  `{$user_query}`, `{$model_output}` and `{$checklist}`;
- `manifest.json` (written by `fetch`): where each file came from and its sha256.

For the paper grid it is WildBench's own data: the 1,024 tasks of the `v2` config of the
allenai/WildBench dataset (a parquet file; data under AI2's ImpACT low-risk licence) at a pinned
revision, and the template from the allenai/WildBench repository (Apache-2.0) at a pinned
commit, fetched at run time (`fetch`) and never copied into this code. The tiny world writes its
own (codit.tinyworld.wildbench). The answers to grade are JSONL records {session_id, output}.

The definitions follow WildBench's code (allenai/WildBench):

- the prompt (src/eval.py, `compose_eval_item` and `placeholder_generation`, mode "score"):
  the history is every message but the last, each as "USER: " or "ASSISTANT: " + its content +
  a blank line (messages of other roles are left out); the user query is the last message; the
  checklist is one "- item" line per checklist entry; history, query and model output are each
  cut to their first 1,000 space-separated words plus "... (truncated)" when longer
  (`shorten`, with --max_words_to_eval 1000 of evaluation/run_eval_v2_batch.score.sh); the
  filled template is the one user message, asked at temperature 0. We fill the four
  placeholders in one pass (WildBench replaces them one after another, so a placeholder written
  inside a model's answer would be filled too); we send no `response_format`.
- the reply is JSON {strengths, weaknesses, score} (the template's output format); the score is
  read with `json.loads`, and, where the reply is not valid JSON (a code fence around it, say),
  from the first `"score": "N"` in the text, as WildBench's later `parse_result` falls back to
  its `extract_values_from_json` (the stored src/eval.py and
  src/openai_batch_eval/batch_results_format.py versions of allenai/WildBench only try
  `json.loads` and drop the item). We also read an unquoted `"score": N` (that function's
  `allow_no_quotes` case, narrowed to a number), and refuse a score outside the template's
  1~10. A reply without a readable score is asked again (codit.judged.judge) and, if it still has
  none, counted as unparsable and left out of every mean (WildBench skips such items).
- the scores (leaderboard/data_dir/_create_tables.py, mode "score", at allenai/WildBench
  d6b8dca, the commit of the published v2.0625 tables leaderboard/data_dir/score.json and
  all_stat_wildbench.-1.json): `score` is the mean 1-10 score over the valid judgments;
  WB-Score (`wb_score`) = (score - 5) x 2 x 10; each task counts in every category its primary
  and secondary tags map to (TAG_CATEGORIES, WildBench's `task_group_new`), a category's
  adjusted score is (its mean score - 5) x 2, and the task macro (`task_macro`, the
  leaderboard's WB_score.task_macro) = 10 x sum over the categories present of weight x
  adjusted score, divided by the sum of all five weights (CATEGORY_WEIGHTS, `weights_by_task`),
  so a category with no score counts as 0.
- which answers the categories average: _create_tables.py reads each answer as the result
  files store it (eval_results/v2.0625/score.v2/eval=gpt-4o-2024-05-13/<model>.json:
  `model_output`, the answer as the judge saw it, cut by `shorten`, then stripped; an empty
  answer is stored as "") and leaves an answer that is empty or ends in "... (truncated)" out
  of the category means and of `avg_len`, not out of the mean score. We read each answer the
  same way (`judged_answer`): it counts in the mean score and WB-Score, and only if neither
  empty nor cut in the categories and the mean length (`avg_length`, WildBench's avg_len, in
  characters); `empty_answers` and `truncated_answers` count them. (The older
  src/openai_batch_eval/batch_results_format.py of commit 0c9a752 kept the newlines around the
  answer, so the test never fired there; the published tables were made with stripped answers:
  62 of reka-core-20240501's answers are empty and its categories leave them out.)
  tests/test_leaderboards.py checks this on the published numbers.

The scores file is shaped like an evaluation file of `codit evaluate`, so the report reads it
beside the lm-eval results: `results["wildbench"]` holds `score,none`, `wb_score,none` and
`task_macro,none` with their `_stderr` twins, `codit.labels` the answering model's labels, and
`codit.sample_files["wildbench"]` a per-task file in lm-eval's logged-sample layout (doc_id =
the task's position in tasks.jsonl; tasks without a valid score are left out), which the paired
bootstrap resamples. Per task, `score` is its score and `wb_score` = (score - 5) x 2 x 10, so
their means are the benchmark's; `task_macro` = N x sum over the task's categories c of
(weight_c / sum of weights) / n_c x its wb_score, with N the scored tasks and n_c those in
category c, so its mean over the N tasks is the task macro (the macro as a weighted mean of
tasks, the category sizes held fixed). Each stderr is the standard error of the mean of the
per-task values.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.judged.answering import Answerer, AnsweringRun, write_answers
from codit.judged.common import JudgedBenchmark, JudgedOutputs, fetch_file, judge_and_write
from codit.judged.judge import Judge, JudgeEndpoint, JudgeError, JudgeRequest, request_key
from codit.workflow.provenance import (
    file_sha256,
    provenance,
    read_jsonl,
    staged_dir,
    write_json,
    write_jsonl,
)
from codit.workflow.settings import Settings, group, option

BENCHMARK = "WildBench"
TASK = "wildbench"  # the benchmark's task name in the report's tables
PROMPT_VERSION = "wildbench-score.v2"
TASKS_FILE = "tasks.jsonl"
TEMPLATE_FILE = "eval_template.score.v2.md"
PLACEHOLDERS = ("history", "user_query", "model_output", "checklist")
PLACEHOLDER = re.compile(r"\{\$(history|user_query|model_output|checklist)\}")
# --max_words_to_eval of evaluation/run_eval_v2_batch.score.sh, and `shorten`'s mark.
MAX_WORDS = 1000
TRUNCATED = "... (truncated)"
ROLE_PREFIXES = {"user": "USER: ", "assistant": "ASSISTANT: "}

# WildBench's task tags -> the five categories of its leaderboard (_create_tables.py,
# `task_group_new`), and the categories' weights in the task macro (`weights_by_task`).
TAG_CATEGORIES = {
    "Information seeking": "Information/Advice seeking",
    "Creative Writing": "Creative Tasks",
    "Coding & Debugging": "Coding & Debugging",
    "Reasoning": "Planning & Reasoning",
    "Editing": "Creative Tasks",
    "Math": "Math & Data Analysis",
    "Planning": "Planning & Reasoning",
    "Brainstorming": "Creative Tasks",
    "Role playing": "Creative Tasks",
    "Advice seeking": "Information/Advice seeking",
    "Data Analysis": "Math & Data Analysis",
    "Others": "Creative Tasks",
}
CATEGORY_WEIGHTS = {
    "Creative Tasks": 0.5,
    "Planning & Reasoning": 1.25,
    "Math & Data Analysis": 1.0,
    "Information/Advice seeking": 0.75,
    "Coding & Debugging": 1.25,
}
METRICS = ("score", "wb_score", "task_macro")
TASK_FIELDS = ("id", "session_id", "conversation_input", "checklist", "primary_tag")

# The score in a reply that is not valid JSON: quoted as the template asks, else a bare number.
SCORE_QUOTED = re.compile(r'"score"\s*:\s*"([^"]*?)"')
SCORE_BARE = re.compile(r'"score"\s*:\s*(\d+(?:\.\d+)?)')


# --------------------------------------------------------------------------------------------
# Parsing the judge's reply


def as_score(value: Any) -> float | None:
    """A 1-10 score from a JSON value or text ("7", 7, " 8.5 "); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if 1 <= value <= 10 else None


def parse_score(reply: str) -> float | None:
    """The score of a judge reply (module docstring); None when it has no readable score."""
    text = reply.strip()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        return as_score(parsed.get("score"))
    found = SCORE_QUOTED.search(text) or SCORE_BARE.search(text)
    return as_score(found.group(1)) if found else None


# --------------------------------------------------------------------------------------------
# Filling the template


def shorten(text: str, max_words: int = MAX_WORDS) -> str:
    """WildBench's `shorten`: the first `max_words` space-separated words and the mark."""
    words = text.split(" ")
    return " ".join(words[:max_words]) + TRUNCATED if len(words) > max_words else text


def render_history(messages: Sequence[dict[str, Any]]) -> str:
    """Every message but the last, as "USER: ..." / "ASSISTANT: ..." blocks."""
    return "".join(
        f"{ROLE_PREFIXES[m['role']]}{m['content']}\n\n"
        for m in messages[:-1]
        if m["role"] in ROLE_PREFIXES
    )


def render_checklist(checklist: Sequence[str]) -> str:
    return "".join(f"- {entry}\n" for entry in checklist)


def fill_template(template: str, fields: dict[str, str]) -> str:
    """The template with its four placeholders filled in one pass."""
    return PLACEHOLDER.sub(lambda found: fields[found.group(1)], template)


def score_prompt(template: str, task: dict[str, Any], output: str) -> str:
    """The score template filled for one answer to `task` (WildBench's own fields)."""
    messages = task["conversation_input"]
    return fill_template(
        template,
        {
            "history": shorten(render_history(messages)),
            "user_query": shorten(messages[-1]["content"]),
            "model_output": shorten(output),
            "checklist": render_checklist(task["checklist"]),
        },
    )


def categories_of(task: dict[str, Any]) -> list[str]:
    """The leaderboard categories of a task's primary and secondary tags, deduplicated."""
    tags = [task["primary_tag"], *task.get("secondary_tags", [])]
    return sorted({TAG_CATEGORIES[tag] for tag in tags})


def conversation(task: dict[str, Any]) -> list[dict[str, str]]:
    """The messages a model answers: the task's conversation, ending with the user's query."""
    return [{"role": m["role"], "content": m["content"]} for m in task["conversation_input"]]


def answer_text(answer: dict[str, Any]) -> str:
    """An answer record's output (WildBench's result files hold a one-element list)."""
    output = answer.get("output")
    if isinstance(output, list) and output:
        output = output[0]
    if not isinstance(output, str):
        raise ValueError(f"{BENCHMARK}: answer {answer.get('session_id')!r} has no output text")
    return output


class Bench:
    """One bench folder: its tasks and the judge's template; refuses what is not WildBench."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        paths = {"tasks": self.folder / TASKS_FILE, "template": self.folder / TEMPLATE_FILE}
        for path in paths.values():
            if not path.is_file():
                raise FileNotFoundError(f"{BENCHMARK} folder {self.folder}: no {path.name}")
        self.template = paths["template"].read_text(encoding="utf-8")
        missing = [name for name in PLACEHOLDERS if "{$" + name + "}" not in self.template]
        if missing:
            raise ValueError(
                f"{paths['template']}: not WildBench's score template (no placeholder "
                f"{', '.join('{$' + name + '}' for name in missing)})"
            )
        self.tasks = read_jsonl(paths["tasks"], objects_only=True, non_empty=True)
        self.index: dict[str, int] = {}
        for position, task in enumerate(self.tasks):
            self._check(task, f"{paths['tasks']}, task {position}")
            if task["session_id"] in self.index:
                raise ValueError(f"{paths['tasks']}: session_id {task['session_id']!r} twice")
            self.index[task["session_id"]] = position
        self.sha256 = {name: file_sha256(path) for name, path in paths.items()}

    @staticmethod
    def _check(task: dict[str, Any], where: str) -> None:
        lacking = [name for name in TASK_FIELDS if name not in task]
        if lacking:
            raise ValueError(f"{where}: not a WildBench task (no {', '.join(lacking)})")
        messages = task["conversation_input"]
        if not messages or messages[-1].get("role") != "user":
            raise ValueError(f"{where}: the conversation does not end with a user query")
        if not isinstance(task["checklist"], list):
            raise ValueError(f"{where}: the checklist is not a list")
        tags = [task["primary_tag"], *task.get("secondary_tags", [])]
        unknown = sorted(set(tags) - TAG_CATEGORIES.keys())
        if unknown:
            raise ValueError(f"{where}: task tags {unknown} are not WildBench's")

    def task_of(self, answer: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(doc_id, task) of an answer record."""
        position = self.index.get(str(answer.get("session_id")))
        if position is None:
            raise ValueError(
                f"{BENCHMARK}: session {answer.get('session_id')!r} of the answers is not in "
                f"{self.folder}"
            )
        return position, self.tasks[position]

    def prompt(self, task: dict[str, Any], output: str) -> str:
        """The filled template for one answer to `task`."""
        return score_prompt(self.template, task, output)

    def request(self, answer: dict[str, Any], judge_model: str) -> JudgeRequest:
        """The judge request scoring one answer record."""
        position, task = self.task_of(answer)
        prompt = self.prompt(task, answer_text(answer))
        return JudgeRequest(
            request_key(judge_model, PROMPT_VERSION, prompt),
            [{"role": "user", "content": prompt}],
            f"task {position} (session {task['session_id']})",
        )


# --------------------------------------------------------------------------------------------
# Scores


def grade(
    bench: Bench, answers: Sequence[dict[str, Any]], judge: Judge
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(one judgment per answer, the scores); see the module docstring."""
    seen: set[str] = set()
    for answer in answers:
        if str(answer.get("session_id")) in seen:
            raise ValueError(f"{BENCHMARK}: session {answer.get('session_id')!r} answered twice")
        seen.add(str(answer.get("session_id")))
    requests = [(answer, bench.request(answer, judge.endpoint.model)) for answer in answers]
    verdicts = judge.ask([request for _, request in requests])
    judgments = []
    for answer, request in requests:
        position, task = bench.task_of(answer)
        shown = judged_answer(answer_text(answer))
        entry = verdicts[request.key]
        judgments.append(
            {
                "doc_id": position,
                "session_id": task["session_id"],
                "categories": categories_of(task),
                "score": entry["verdict"],
                "output_length": len(shown),
                "empty_answer": not shown,
                "truncated_answer": shown.endswith(TRUNCATED),
                "reply": entry["reply"],
            }
        )
    return judgments, scores(judgments)


def judged_answer(output: str) -> str:
    """An answer as WildBench's result files store it: cut as the judge saw it, then stripped."""
    return shorten(output).strip()


def in_categories(judgment: dict[str, Any]) -> bool:
    """Whether a judgment counts in the category means (and the mean length): a valid score of
    an answer neither empty nor cut (_create_tables.py leaves those out)."""
    return judgment["score"] is not None and not (
        judgment["empty_answer"] or judgment["truncated_answer"]
    )


def adjusted(score: float) -> float:
    """WildBench's adjusted score of a 1-10 score: (score - 5) x 2, in [-8, 10]."""
    return (score - 5) * 2


def category_scores(judgments: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """The scores each category averages (a task counts in each of its categories)."""
    found: dict[str, list[float]] = {}
    for judgment in filter(in_categories, judgments):
        for category in judgment["categories"]:
            found.setdefault(category, []).append(judgment["score"])
    return found


def task_macro(category_means: Mapping[str, float]) -> float | None:
    """10 x the weighted adjusted category means (1-10 means) over the sum of all five weights;
    a category without a mean counts 0."""
    if not category_means:
        return None
    total = sum(CATEGORY_WEIGHTS[c] * adjusted(mean) for c, mean in category_means.items())
    return 10 * total / sum(CATEGORY_WEIGHTS.values())


def scores(judgments: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean score, WB-Score, task macro, the categories and the mean answer length; unparsable
    judgments counted, not averaged; empty and cut answers counted and left out of the
    categories and the length."""
    valid = [j["score"] for j in judgments if j["score"] is not None]
    mean = sum(valid) / len(valid) if valid else None
    by_category = category_scores(judgments)
    means = {c: sum(values) / len(values) for c, values in by_category.items()}
    lengths = [j["output_length"] for j in judgments if in_categories(j)]
    return {
        "score": mean,
        "wb_score": None if mean is None else adjusted(mean) * 10,
        "task_macro": task_macro(means),
        "categories": {
            category: {
                "tasks": len(values),
                "wb_score": adjusted(means[category]) * 10,
            }
            for category, values in sorted(by_category.items())
        },
        "avg_length": sum(lengths) / len(lengths) if lengths else None,
        "judgments": len(judgments),
        "unparsable": len(judgments) - len(valid),
        "empty_answers": sum(j["empty_answer"] for j in judgments),
        "truncated_answers": sum(j["truncated_answer"] for j in judgments),
    }


def doc_hash(task: dict[str, Any]) -> str:
    """What identifies a task's document: its conversation and checklist."""
    payload = json.dumps([conversation(task), task["checklist"]], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def task_samples(bench: Bench, judgments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per validly scored task in lm-eval's logged-sample layout (module docstring)."""
    scored = [j for j in judgments if j["score"] is not None]
    sizes = {category: len(values) for category, values in category_scores(scored).items()}
    weight_sum = sum(CATEGORY_WEIGHTS.values())
    samples = []
    for judgment in scored:
        wb_score = adjusted(judgment["score"]) * 10
        categories = judgment["categories"] if in_categories(judgment) else []
        share = sum(CATEGORY_WEIGHTS[c] / weight_sum / sizes[c] for c in categories)
        samples.append(
            {
                "doc_id": judgment["doc_id"],
                "doc_hash": doc_hash(bench.tasks[judgment["doc_id"]]),
                "filter": "none",
                "metrics": list(METRICS),
                "session_id": judgment["session_id"],
                "categories": judgment["categories"],
                "score": judgment["score"],
                "wb_score": wb_score,
                "task_macro": len(scored) * share * wb_score,
            }
        )
    return samples


# --------------------------------------------------------------------------------------------
# Fetching WildBench's data

# The v2 tasks (allenai/WildBench, config "v2", split "test") at a fixed dataset revision, and
# the score template at the commit of the published v2.0625 tables this module's scoring follows
# (the module docstring); the template's digest is the one tests/test_leaderboards.py fills.
DATASET_REVISION = "3bd6dd0b75c70c3c2564944bde05b73dbb63b116"
DATASET_SOURCE = "https://huggingface.co/datasets/allenai/WildBench/resolve/{revision}"
DATASET_FILE = "v2/test-00000-of-00001.parquet"
WILDBENCH_COMMIT = "d6b8dcaf377d173d031980f97c16e1a82618c03d"
WILDBENCH_SOURCE = "https://raw.githubusercontent.com/allenai/WildBench/{commit}"
TEMPLATE_PATH = "evaluation/eval_template.score.v2.md"
TEMPLATE_SHA256 = "5c10c98b4f88ef12fddcde41988c32cca68367214bc2437dd270b6692e9c1e02"
V2_TASKS = 1024


@dataclass(frozen=True, kw_only=True)
class FetchRun(Settings):
    """One `codit wildbench fetch` run: WildBench's v2 tasks and score template into a folder."""

    out: Path = option(help="the bench folder to write")
    data_source: str = option(
        DATASET_SOURCE.format(revision=DATASET_REVISION),
        "base URL (or file:// folder) of the allenai/WildBench dataset repository",
    )
    data_file: str = option(DATASET_FILE, "the v2 test split's parquet file below --data-source")
    template_source: str = option(
        WILDBENCH_SOURCE.format(commit=WILDBENCH_COMMIT),
        "base URL (or file:// folder) of the allenai/WildBench code repository",
    )
    tasks: int = option(V2_TASKS, "how many tasks the split must hold (v2: 1,024)")
    template_sha256: str = option(
        TEMPLATE_SHA256, "the sha256 the template must have ('': any template)"
    )


def task_record(row: dict[str, Any]) -> dict[str, Any]:
    """The fields of a dataset row the bench keeps."""
    messages = row.get("conversation_input") or []
    return {
        "id": row.get("id"),
        "session_id": row.get("session_id"),
        "conversation_input": [{"role": m["role"], "content": m["content"]} for m in messages],
        "checklist": list(row.get("checklist") or []),
        "primary_tag": row.get("primary_tag"),
        "secondary_tags": list(row.get("secondary_tags") or []),
    }


def fetch(run: FetchRun) -> dict[str, Any]:
    """Download the split and the template into a staging folder, check them, then swap it in."""
    import pyarrow.parquet

    with staged_dir(run.out) as staging:
        parquet = staging / "source" / Path(run.data_file).name
        files = {
            "data": fetch_file(
                f"{run.data_source.rstrip('/')}/{run.data_file}", parquet, BENCHMARK
            ),
            "template": fetch_file(
                f"{run.template_source.rstrip('/')}/{TEMPLATE_PATH}",
                staging / TEMPLATE_FILE,
                BENCHMARK,
            ),
        }
        try:
            rows = pyarrow.parquet.read_table(parquet).to_pylist()
        except Exception as error:  # pyarrow raises several types for a file that is not parquet
            url = files["data"]["url"]
            raise ValueError(f"{BENCHMARK}: {url} is not a parquet file: {error}") from None
        digest = files["template"]["sha256"]
        if run.template_sha256 and digest != run.template_sha256:
            raise ValueError(
                f"{BENCHMARK}: {files['template']['url']} has the sha256 {digest}, not "
                f"{run.template_sha256} (WildBench's score template, the one the scoring was "
                "checked with); pass --template-sha256 '' to use another template"
            )
        if len(rows) != run.tasks:
            raise ValueError(
                f"{BENCHMARK}: {files['data']['url']} holds {len(rows)} tasks, not {run.tasks}"
            )
        write_jsonl(staging / TASKS_FILE, [task_record(row) for row in rows])
        shutil.rmtree(staging / "source")
        bench = Bench(staging)  # refuses data that is not WildBench's
        manifest = {"tasks": len(bench.tasks), "files": files, **provenance(run.record())}
        write_json(staging / "manifest.json", manifest)
    return manifest


# --------------------------------------------------------------------------------------------
# Cost (`codit cost`)


@dataclass(frozen=True)
class Pricing:
    """WildBench v2 as `codit cost` sees it (the section wildbench of config/cost.yaml): one greedy
    answer to the last user turn of every task's conversation, one checklist-score judge call per
    task (the history, the query, the answer and the checklist; a JSON reply with strengths,
    weaknesses and the score)."""

    tasks: int
    conversation_tokens: float  # mean history + last user turn
    chat_template_tokens: float  # the answering prompt's chat template
    answer_tokens: float  # mean answer, before max_new_tokens caps it
    checklist_tokens: float  # mean checklist
    judge_template_tokens: float  # the score template's fixed text and chat format
    judge_reply_tokens: float  # mean judge reply, before judge.max_tokens caps it

    @property
    def items(self) -> int:
        return self.tasks

    def answer_groups(self) -> list[int]:
        return [self.tasks]  # greedy: one temperature

    def answer_prompts(self, answer_tokens: float) -> tuple[float, ...]:
        return (self.conversation_tokens + self.chat_template_tokens,)

    def judge_calls(self) -> int:
        return self.tasks

    def judge_prompt_tokens(self, answer_tokens: float) -> float:
        per_call = (
            self.judge_template_tokens
            + self.conversation_tokens
            + answer_tokens
            + self.checklist_tokens
        )
        return self.tasks * per_call


# --------------------------------------------------------------------------------------------
# Command line


@dataclass(frozen=True, kw_only=True)
class GradingRun(Settings):
    """One `codit wildbench judge` run: one model's answers scored by the judge."""

    bench: Path = option(help="WildBench folder (tasks.jsonl, eval_template.score.v2.md)")
    answers: Path = option(help="the model's answers: JSONL of {session_id, output}")
    judge: JudgeEndpoint = group(JudgeEndpoint, "judge (OpenAI-compatible endpoint)")
    outputs: JudgedOutputs = group(JudgedOutputs, "outputs")


# Answers are greedy: WildBench's tasks have one reference-free score, and greedy answers make a
# model's score depend on the model alone (our choice; the answering temperature is recorded).
ANSWER_TEMPERATURE = 0.0


def answer_tasks(run: AnsweringRun) -> list[dict[str, Any]]:
    """The model's answer to the last user turn of every task, in the bench's order."""
    bench = Bench(run.bench)
    with Answerer(run, BENCHMARK) as answerer:
        answers = answerer.answer(
            [conversation(task) for task in bench.tasks],
            [task["session_id"] for task in bench.tasks],
            ANSWER_TEMPERATURE,
        )
    return [
        {"session_id": task["session_id"], "output": answer.text,
         "finish_reason": answer.finish_reason, "num_tokens": answer.num_tokens,
         "temperature": ANSWER_TEMPERATURE}
        for task, answer in zip(bench.tasks, answers, strict=True)
    ]  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    FetchRun.add_arguments(
        commands.add_parser("fetch", help="WildBench's v2 tasks and score template into a folder")
    )
    AnsweringRun.add_arguments(
        commands.add_parser("answer", help="answer the last turn of every task with a model")
    )
    GradingRun.add_arguments(
        commands.add_parser("judge", help="score a model's answers with the judge")
    )


def run(args: argparse.Namespace) -> None:
    if args.command == "fetch":
        fetch_run = FetchRun.from_args(args)
        manifest = fetch(fetch_run)
        print(f"codit wildbench: {manifest['tasks']} tasks -> {fetch_run.out}")
        return
    if args.command == "answer":
        answering = AnsweringRun.from_args(args)
        records = answer_tasks(answering)
        reasons = [record["finish_reason"] for record in records]
        write_answers(answering, records, reasons, TASKS_FILE)
        return
    grade_answers(GradingRun.from_args(args))


JUDGED = JudgedBenchmark(
    name=BENCHMARK, task=TASK, metrics=METRICS, prompt_version=PROMPT_VERSION, parse=parse_score
)


def check_categories(judgments: Sequence[dict[str, Any]], judge: Judge) -> None:
    """Refuse a task category whose judged tasks got no readable verdict: the task macro would
    count it 0 (a category of empty or cut answers only is WildBench's own 0, and kept)."""
    judged = {category for j in judgments for category in j["categories"]}
    readable = {c for j in judgments if j["score"] is not None for c in j["categories"]}
    if missing := sorted(judged - readable):
        raise JudgeError(
            f"{BENCHMARK}: no readable verdict from {judge.endpoint.described()} (prompt version "
            f"{judge.prompt_version}) in the task categories {', '.join(missing)}: the task "
            "macro would count them 0"
        )


def grade_checked(
    bench: Bench, answers: Sequence[dict[str, Any]], judge: Judge
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`grade`, refusing categories without a readable verdict."""
    judgments, result = grade(bench, answers, judge)
    check_categories(judgments, judge)
    return judgments, result


def grade_answers(grading: GradingRun, running: JudgeEndpoint | None = None) -> dict[str, Any]:
    """Score the answers; write the judgments, the per-task samples and the scores."""
    bench = Bench(grading.bench)
    answers = read_jsonl(grading.answers, objects_only=True)
    payload = judge_and_write(
        JUDGED, grading.judge, grading.outputs,
        grade=lambda judge: grade_checked(bench, answers, judge),
        item_samples=lambda judgments: task_samples(bench, judgments),
        record=grading.record(),
        extra={"bench_sha256": bench.sha256, "answers_sha256": file_sha256(grading.answers)},
        running=running,
    )  # fmt: skip
    print(
        f"codit wildbench: WB-Score {payload['wb_score']} (task macro {payload['task_macro']}; "
        f"{payload['unparsable']} unparsable) -> {grading.outputs.scores}"
    )
    return payload
