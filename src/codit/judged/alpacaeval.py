"""AlpacaEval 2.0: pairwise judging against the reference outputs, win rate and the
length-controlled win rate (the alpaca_eval project, tatsu-lab/alpaca_eval, version 0.6.6),
asked through codit.judged.judge.

A bench folder holds:

- `reference_outputs.json`: the benchmark's instructions with the reference model's outputs, a
  JSON list of {instruction, output, generator, dataset?} in the benchmark's order (for the
  paper grid the data file of the hub dataset tatsu-lab/alpaca_eval's `alpaca_eval_gpt4_baseline`
  config: 805 instructions, gpt4_1106_preview outputs; cc-by-nc-4.0). An instruction's id is
  its position in this list: alpaca_eval's `index`, on which the instruction difficulty is keyed;
- `alpaca_eval_clf.txt`: the judge prompt, alpaca_eval's own template file
  (alpaca_eval/evaluators_configs/alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt), fetched as
  data, never copied into this code: ChatML-marked messages (`<|im_start|>system ... <|im_end|>`)
  with the placeholders {instruction}, {output_1}, {output_2}; the judge answers with the
  identifier of the better output, "m" (output_1) or "M" (output_2);
- optionally `df_gamed.csv` (the hub dataset's file of the same name: annotations of the two
  gamed baselines, columns model, index, preference in [0, 1], std_delta_len,
  instruction_difficulty, not_gamed_baseline) and `instruction_difficulty.csv` (index,
  instruction_difficulty). The tiny world writes its own folder.

The model's outputs are records {instruction, output}, matched to the reference by the
instruction's text (as alpaca_eval merges them).

Judging (alpaca_eval/annotators/pairwise_evaluator.py, alpaca_eval/utils.py, the configs
weighted_alpaca_eval_gpt4_turbo/configs.yaml and alpaca_eval_clf_gpt4_turbo/configs.yaml):

- an output identical to the reference output (the same string) gets the preference 1.5 without
  a judge request (pairwise_evaluator.py `_preprocess`: "deals with equality"); its judgment
  records the verdict kind `identical`;
- the two outputs are shown in alpaca_eval's own order (`model_shown_first`: its
  RandomSwitchTwoColumnsProcessor in processors.py, seeded on "is_switched_outputs" + the
  instruction + the seed; the annotator's seed is 0, the seed of the published annotations:
  with it the stored preferences of the 57 leaderboard models follow from their judge's
  log-probabilities, tests/test_leaderboards.py) and the order is recorded in the judgment;
- the template is split into messages as alpaca_eval's `prompt_to_chatml` does, and each
  placeholder is filled in one pass (alpaca_eval replaces each placeholder's first occurrence in
  turn, so an instruction that itself contains "{output_1}" would be filled there; ours is not);
- the judge is asked at temperature 0 for the log-probabilities of the top 5 first tokens
  (alpaca_eval asks gpt-4-1106-preview at temperature 1 with max_tokens 1 and top_logprobs 5:
  the log-probabilities do not depend on the temperature of sampling; the reply's length is
  the endpoint's max_tokens: the config sets 1 for a judge that answers at once);
- a weighted preference (`weighted_preference`, alpaca_eval's `logprob_parser` with
  is_binarize false): 2 - p(m) / (p(m) + p(M)) over the first token's top log-probabilities, a
  token missing from them counted as probability 0; a reply without "m" and "M" among them, or a
  server that returns no log-probabilities, gives the plain verdict of the reply's text instead
  (`parse_verdict`: 1 for "m", 2 for "M"), and each judgment records which (`verdict_kind`);
- the order is undone: a preference shown with the model's output first becomes 3 - x, so the
  stored `preference` always reads 1 = the reference wins, 2 = the model wins, 1.5 = a tie.

Metrics: codit.judged.alpacaeval_metrics (the win rate and the length-controlled win rate);
`avg_length` is the mean length in characters of the judged outputs (every output of the
answers file is judged). alpaca_eval's leaderboard writes int(mean length of the model_outputs
file) (main.py, `avg_length`), which also counts outputs that matched no reference instruction
and were never judged: 6 of the 57 leaderboard models checked have 802 to 804 judgments, and
their published avg_length is the judged lengths summed over 805.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codit.judged import common
from codit.judged.alpacaeval_metrics import (
    BENCHMARK,
    N_SPLITS,
    TIE,
    difficulty_of_gamed,
    length_controlled_win_rate,
    mean,
    win_rate,
)
from codit.judged.answering import Answerer, AnsweringRun, write_answers
from codit.judged.judge import Judge, JudgeEndpoint, JudgeError, JudgeRequest, request_key
from codit.workflow.provenance import (
    file_sha256,
    provenance,
    read_json,
    read_jsonl,
    staged_dir,
    write_json,
)
from codit.workflow.settings import Settings, group, option

if TYPE_CHECKING:
    pass

TASK = "alpaca_eval"  # the benchmark's task name in the report's tables
PROMPT_VERSION = "alpaca_eval_clf"
REFERENCE_FILE = "reference_outputs.json"
TEMPLATE_FILE = "alpaca_eval_clf.txt"
GAMED_FILE = "df_gamed.csv"
DIFFICULTY_FILE = "instruction_difficulty.csv"
# The identifiers of output_1 and output_2 in the template, and how many first-token
# alternatives the judge returns (weighted_alpaca_eval_gpt4_turbo/configs.yaml).
FIRST, SECOND = "m", "M"
TOP_LOGPROBS = 5
# alpaca_eval's order switch (processors.py RandomSwitchTwoColumnsProcessor, its
# `_switch_column` prefix and choices) and its annotators' seed (annotators/base.py).
SWITCH_SEED_PREFIX = "is_switched_outputs"
SWITCH = (False, True)
ORDER_SEED = 0
PLACEHOLDER = re.compile(r"\{(instruction|output_1|output_2)\}")

# --------------------------------------------------------------------------------------------
# The bench folder and the judge's requests


def template_messages(text: str) -> list[dict[str, str]]:
    """ChatML-marked template text -> chat messages (alpaca_eval utils.prompt_to_chatml, without
    its `system name=...` variant, which the AlpacaEval 2 templates do not use)."""
    text = text.strip()
    if not text.startswith("<|im_start|>") or not text.endswith("<|im_end|>"):
        raise ValueError("not a ChatML-marked template (<|im_start|>role ... <|im_end|>)")
    messages = []
    for part in text.split("<|im_start|>")[1:]:
        role, _, rest = part.partition("\n")
        messages.append({"role": role.strip(), "content": rest.split("<|im_end|>", 1)[0].strip()})
    return messages


def fill(content: str, fields: Mapping[str, str]) -> str:
    """The template's placeholders replaced in one pass (texts with braces stay as they are)."""
    return PLACEHOLDER.sub(lambda found: fields[found.group(1)], content)


def model_shown_first(seed: int, instruction: str) -> bool:
    """Whether the judge sees the model's output as output_1: alpaca_eval's switch of output_1
    (the reference) and output_2 (the model), drawn with the instruction's text as the seed."""
    return random.Random(f"{SWITCH_SEED_PREFIX}{instruction}{seed}").choices(SWITCH, k=1)[0]


def read_difficulty(path: Path) -> dict[int, float]:
    """instruction_difficulty.csv: {index: difficulty} (the first two columns, header skipped)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    return {int(row[0]): float(row[1]) for row in rows if row}


class Bench:
    """One bench folder (see the module docstring): reference outputs, judge prompt and the
    length-control data that are there."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        paths = {
            "references": self.folder / REFERENCE_FILE,
            "template": self.folder / TEMPLATE_FILE,
        }
        for path in paths.values():
            if not path.is_file():
                raise FileNotFoundError(f"{BENCHMARK} folder {self.folder}: no {path.name}")
        references = read_json(paths["references"])
        if not isinstance(references, list) or not all(
            isinstance(r, dict) and isinstance(r.get("instruction"), str) for r in references
        ):
            raise ValueError(f"{paths['references']}: not a JSON list of {{instruction, output}}")
        self.references: list[dict[str, Any]] = references
        self.ids = {r["instruction"]: i for i, r in enumerate(references)}
        if len(self.ids) != len(references):
            raise ValueError(f"{paths['references']}: an instruction appears twice")
        text = paths["template"].read_text(encoding="utf-8")
        try:
            self.messages = template_messages(text)
        except ValueError as error:
            raise ValueError(f"{paths['template']}: {error}") from None
        found = {name for m in self.messages for name in PLACEHOLDER.findall(m["content"])}
        if found != {"instruction", "output_1", "output_2"}:
            raise ValueError(
                f"{paths['template']}: needs {{instruction}}, {{output_1}}, {{output_2}}"
            )
        self.gamed = None
        self.difficulty: dict[int, float] | None = None
        if (self.folder / GAMED_FILE).is_file():
            import pandas as pd

            paths["gamed"] = self.folder / GAMED_FILE
            self.gamed = pd.read_csv(paths["gamed"]).drop(columns=["model"], errors="ignore")
            self.difficulty = difficulty_of_gamed(self.gamed)
        elif (self.folder / DIFFICULTY_FILE).is_file():
            paths["difficulty"] = self.folder / DIFFICULTY_FILE
            self.difficulty = read_difficulty(paths["difficulty"])
        self.sha256 = {name: file_sha256(path) for name, path in paths.items()}

    def instruction_id(self, output: Mapping[str, Any]) -> int:
        found = self.ids.get(output.get("instruction"))  # type: ignore[arg-type]
        if found is None:
            shown = str(output.get("instruction"))[:80]
            raise ValueError(f"{BENCHMARK}: instruction {shown!r} is not in {self.folder}")
        return found

    def request(
        self, instruction_id: int, output: str, judge_model: str, *, seed: int, top_logprobs: int
    ) -> tuple[JudgeRequest, bool]:
        """(the judge request comparing `output` with the reference, whether the model's output
        is shown first)."""
        reference = self.references[instruction_id]
        first = model_shown_first(seed, reference["instruction"])
        shown = (output, reference["output"]) if first else (reference["output"], output)
        fields = {
            "instruction": reference["instruction"],
            "output_1": shown[0],
            "output_2": shown[1],
        }
        messages = [{**m, "content": fill(m["content"], fields)} for m in self.messages]
        key = request_key(
            judge_model, PROMPT_VERSION, top_logprobs, *(m["content"] for m in messages)
        )
        return JudgeRequest(key, messages, f"instruction {instruction_id}"), first


# --------------------------------------------------------------------------------------------
# Verdicts


def parse_verdict(reply: str) -> int | None:
    """The plain verdict in the order shown: 1 for "m" (output_1), 2 for "M"; None otherwise."""
    answer = reply.strip().strip("\"'`*.").strip()
    return {FIRST: 1, SECOND: 2}.get(answer)


def weighted_preference(top_logprobs: Sequence[Mapping[str, Any]] | None) -> float | None:
    """alpaca_eval's logprob_parser (not binarised), in the order shown: 2 - p(m) / (p(m) + p(M));
    None when neither token is among the first token's top log-probabilities."""
    found = {t["token"]: t["logprob"] for t in top_logprobs or () if t["token"] in (FIRST, SECOND)}
    if not found:
        return None
    first, second = found.get(FIRST, -math.inf), found.get(SECOND, -math.inf)
    top = max(first, second)
    denominator = top + math.log(math.exp(first - top) + math.exp(second - top))
    return 2 - math.exp(first - denominator)


def shown_preference(entry: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """(the preference in the order shown, "weighted" or "plain"); (None, None) without one."""
    weighted = weighted_preference(entry.get("top_logprobs"))
    if weighted is not None:
        return weighted, "weighted"
    if entry.get("verdict") is not None:
        return float(entry["verdict"]), "plain"
    return None, None


def model_preference(preference: float | None, model_first: bool) -> float | None:
    """Undo the order: 2 = the model wins, whichever side it was shown on."""
    if preference is None:
        return None
    return 3 - preference if model_first else preference


def judge_for(
    endpoint: JudgeEndpoint, cache: Path | None = None, top_logprobs: int = TOP_LOGPROBS
) -> Judge:
    """The judge as AlpacaEval 2 asks it (first-token log-probabilities; 0: plain verdicts)."""
    return Judge(
        endpoint, benchmark=BENCHMARK, prompt_version=PROMPT_VERSION, parse=parse_verdict,
        cache=cache, top_logprobs=top_logprobs,
    )  # fmt: skip


def judge_outputs(
    bench: Bench, outputs: Sequence[Mapping[str, Any]], judge: Judge, *, seed: int = ORDER_SEED
) -> list[dict[str, Any]]:
    """One judgment per output, in the bench's instruction order; see the module docstring."""
    by_id: dict[int, Mapping[str, Any]] = {}
    for output in outputs:
        instruction_id = bench.instruction_id(output)
        if instruction_id in by_id:
            raise ValueError(f"{BENCHMARK}: two outputs for instruction {instruction_id}")
        by_id[instruction_id] = output
    asked = []
    for instruction_id in sorted(by_id):
        text = str(by_id[instruction_id]["output"])
        request, first = bench.request(
            instruction_id, text, judge.endpoint.model or "", seed=seed,
            top_logprobs=judge.top_logprobs,
        )  # fmt: skip
        if text == bench.references[instruction_id]["output"]:
            request = None  # a tie, without asking the judge
        asked.append((instruction_id, text, request, first))
    verdicts = judge.ask([request for _, _, request, _ in asked if request is not None])
    judgments = []
    for instruction_id, text, request, first in asked:
        entry = {"reply": None} if request is None else verdicts[request.key]
        shown, kind = (TIE, "identical") if request is None else shown_preference(entry)
        judgments.append(
            {
                "instruction_id": instruction_id,
                "model_shown_first": first,
                "shown_preference": shown,
                "preference": model_preference(shown, first),
                "verdict_kind": kind,
                "output_length": len(text),
                "reference_length": len(bench.references[instruction_id]["output"]),
                "reply": entry["reply"],
                "top_logprobs": entry.get("top_logprobs"),
            }
        )
    return judgments


def scores(bench: Bench, judgments: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Win rate, length-controlled win rate and mean answer length of one model's judgments."""
    preferences = [j["preference"] for j in judgments]
    kinds = [j["verdict_kind"] for j in judgments]
    lc = length_controlled_win_rate(
        preferences,
        [j["output_length"] for j in judgments],
        [j["reference_length"] for j in judgments],
        [j["instruction_id"] for j in judgments],
        instruction_difficulty=bench.difficulty,
        gamed=bench.gamed,
    )
    return {
        **win_rate(preferences),
        **{key: value for key, value in lc.items() if key != "glm_preference"},
        "avg_length": mean([j["output_length"] for j in judgments]),
        "judgments": len(judgments),
        "verdicts": {
            "weighted": kinds.count("weighted"),
            "plain": kinds.count("plain"),
            "identical": kinds.count("identical"),
            "unparsable": kinds.count(None),
        },
        "glm_preference": lc["glm_preference"],
    }


# The report's metrics, each with the key of its standard error in `scores` (None: none).
METRIC_STDERR = {
    "length_controlled_winrate": "lc_standard_error",
    "win_rate": "standard_error",
    "avg_length": None,
}


def results_block(result: Mapping[str, Any]) -> dict[str, Any]:
    """lm-eval's `results[task]` layout of `scores`, with the metrics' own standard errors."""
    return common.results_block(result, [], list(METRIC_STDERR), METRIC_STDERR)


def instruction_samples(
    bench: Bench, judgments: Sequence[dict[str, Any]], result: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One record per judged instruction in lm-eval's logged-sample layout, for the paired
    bootstrap: win_rate = (preference - 1) x 100 (left out without a verdict),
    length_controlled_winrate = the GLM's preference at zero length difference x 100, only
    when the GLM has the instructions' difficulty: without it that value is the same for
    every instruction, and a bootstrap over items would show no spread where there is some."""
    per_item_lc = bench.difficulty is not None
    samples = []
    for judgment, lc in zip(judgments, result["glm_preference"], strict=True):
        reference = bench.references[judgment["instruction_id"]]
        record: dict[str, Any] = {
            "doc_id": judgment["instruction_id"],
            "doc_hash": hashlib.sha256(json.dumps(reference["instruction"]).encode()).hexdigest(),
            "filter": "none",
            "metrics": ["win_rate", *(["length_controlled_winrate"] if per_item_lc else [])],
        }
        if per_item_lc:
            record["length_controlled_winrate"] = lc * 100
        if judgment["preference"] is not None:
            record["win_rate"] = (judgment["preference"] - 1) * 100
        samples.append(record)
    return samples


# --------------------------------------------------------------------------------------------
# Fetching AlpacaEval 2.0's data

# The data files of the tatsu-lab/alpaca_eval dataset repository (datasets 4 no longer runs its
# loading script, so the files are fetched as they are) and the judge's template from the
# alpaca_eval code at the release whose GLM codit.judged.alpacaeval follows (0.6.6).
DATASET_SOURCE = "https://huggingface.co/datasets/tatsu-lab/alpaca_eval/resolve/{revision}"
DATASET_REVISION = "main"  # the dataset has no release tags; the manifest keeps each digest
REFERENCE_SOURCE_FILE = "alpaca_eval_gpt4_baseline.json"  # AlpacaEval 2.0's reference: GPT-4 Turbo
ALPACA_EVAL_SOURCE = "https://raw.githubusercontent.com/tatsu-lab/alpaca_eval/{tag}"
ALPACA_EVAL_TAG = "v0.6.6"
TEMPLATE_PATH = "src/alpaca_eval/evaluators_configs/alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt"
INSTRUCTIONS = 805


@dataclass(frozen=True, kw_only=True)
class FetchRun(Settings):
    """One `codit alpacaeval fetch` run: AlpacaEval 2.0's reference outputs, the GLM's data and
    the judge's template into a bench folder."""

    out: Path = option(help="the bench folder to write")
    data_source: str = option(
        DATASET_SOURCE.format(revision=DATASET_REVISION),
        "base URL (or file:// folder) of the tatsu-lab/alpaca_eval dataset repository",
    )
    template_source: str = option(
        ALPACA_EVAL_SOURCE.format(tag=ALPACA_EVAL_TAG),
        "base URL (or file:// folder) of the tatsu-lab/alpaca_eval code repository",
    )
    length_control_data: bool = option(
        True, "also fetch df_gamed.csv and instruction_difficulty.csv (the full LC GLM)"
    )
    instructions: int = option(INSTRUCTIONS, "how many instructions the reference must hold")


def fetch(run: FetchRun) -> dict[str, Any]:
    """Download the files into a staging folder, check them, then swap it in."""
    data = run.data_source.rstrip("/")
    with staged_dir(run.out) as staging:
        files = {
            "references": common.fetch_file(
                f"{data}/{REFERENCE_SOURCE_FILE}", staging / REFERENCE_FILE, BENCHMARK
            ),
            "template": common.fetch_file(
                f"{run.template_source.rstrip('/')}/{TEMPLATE_PATH}",
                staging / TEMPLATE_FILE,
                BENCHMARK,
            ),
        }
        if run.length_control_data:
            for name in (GAMED_FILE, DIFFICULTY_FILE):
                files[name] = common.fetch_file(f"{data}/{name}", staging / name, BENCHMARK)
        bench = Bench(staging)  # refuses files that are not AlpacaEval's
        if len(bench.references) != run.instructions:
            raise ValueError(
                f"{BENCHMARK}: {files['references']['url']} holds {len(bench.references)} "
                f"instructions, not {run.instructions}"
            )
        manifest = {
            "instructions": len(bench.references),
            "gamed_baselines": bench.gamed is not None,  # the full length_controlled_v1
            "files": files,
            **provenance(run.record()),
        }
        write_json(staging / "manifest.json", manifest)
    return manifest


# --------------------------------------------------------------------------------------------
# Cost (`codit cost`)


@dataclass(frozen=True)
class Pricing:
    """AlpacaEval 2.0 as `codit cost` sees it (the section alpaca_eval of config/cost.yaml): one
    greedy answer per instruction, one pairwise judge call per instruction (alpaca_eval_clf: the
    instruction, the model's output and the reference output; a one-token verdict with its top
    log-probabilities)."""

    instructions: int
    instruction_tokens: float  # mean instruction
    chat_template_tokens: float  # the answering prompt's chat template
    answer_tokens: float  # mean answer, before max_new_tokens caps it
    reference_tokens: float  # mean reference output
    judge_template_tokens: float  # alpaca_eval_clf's fixed text and chat format
    judge_reply_tokens: float  # the verdict token, before judge.max_tokens caps it

    @property
    def items(self) -> int:
        return self.instructions

    def answer_groups(self) -> list[int]:
        return [self.instructions]  # greedy: one temperature

    def answer_prompts(self, answer_tokens: float) -> tuple[float, ...]:
        return (self.instruction_tokens + self.chat_template_tokens,)

    def judge_calls(self) -> int:
        return self.instructions

    def judge_prompt_tokens(self, answer_tokens: float) -> float:
        per_call = (
            self.judge_template_tokens
            + self.instruction_tokens
            + answer_tokens
            + self.reference_tokens
        )
        return self.instructions * per_call


# --------------------------------------------------------------------------------------------
# Command line

# Answers are greedy (our choice: a model's answers then depend on the model alone; recorded).
ANSWER_TEMPERATURE = 0.0


def answer_instructions(run: AnsweringRun) -> list[dict[str, Any]]:
    """The model's output for every instruction of the bench, in the bench's order."""
    bench = Bench(run.bench)
    instructions = [reference["instruction"] for reference in bench.references]
    with Answerer(run, BENCHMARK) as answerer:
        answers = answerer.answer(
            [[{"role": "user", "content": text}] for text in instructions],
            [f"instruction{i}" for i in range(len(instructions))],
            ANSWER_TEMPERATURE,
        )
    return [
        {"instruction": text, "output": answer.text, "generator": str(run.model),
         "finish_reason": answer.finish_reason, "num_tokens": answer.num_tokens,
         "temperature": ANSWER_TEMPERATURE}
        for text, answer in zip(instructions, answers, strict=True)
    ]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class GradingRun(Settings):
    """One `codit alpacaeval judge` run: one model's outputs against the reference outputs."""

    bench: Path = option(help="AlpacaEval folder (reference_outputs.json, alpaca_eval_clf.txt)")
    answers: Path = option(help="the model's outputs: JSONL of {instruction, output}")
    judge: JudgeEndpoint = group(JudgeEndpoint, "judge (OpenAI-compatible endpoint)")
    outputs: common.JudgedOutputs = group(common.JudgedOutputs, "outputs")
    seed: int = option(
        ORDER_SEED, "seed of alpaca_eval's switch of the two outputs' order (0: alpaca_eval's own)"
    )
    top_logprobs: int = option(
        TOP_LOGPROBS, "first-token log-probabilities asked for weighted verdicts (0: plain)"
    )


JUDGED = common.JudgedBenchmark(
    name=BENCHMARK, task=TASK, metrics=tuple(METRIC_STDERR), prompt_version=PROMPT_VERSION,
    parse=parse_verdict, stderr_keys=METRIC_STDERR,
)  # fmt: skip


def grade_answers(grading: GradingRun, running: JudgeEndpoint | None = None) -> dict[str, Any]:
    """Judge the outputs; write the judgments, the per-instruction samples and the scores."""
    bench = Bench(grading.bench)
    outputs = read_jsonl(grading.answers, objects_only=True)
    kept: dict[str, Any] = {}

    def grade(judge: Judge) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        judgments = judge_outputs(bench, outputs, judge, seed=grading.seed)
        readable = sum(j["preference"] is not None for j in judgments)
        if readable < N_SPLITS:  # alpaca_eval's GLM is fitted over N_SPLITS folds
            raise JudgeError(
                f"{BENCHMARK}: {readable} readable verdicts of {len(judgments)} from "
                f"{judge.endpoint.described()} (prompt version {judge.prompt_version}): the "
                f"length-controlled win rate's GLM needs at least {N_SPLITS} (alpaca_eval fits "
                f"it over {N_SPLITS} folds)"
            )
        result = scores(bench, judgments)
        kept["glm_preference"] = result.pop("glm_preference")
        return judgments, result

    payload = common.judge_and_write(
        JUDGED, grading.judge, grading.outputs, grade=grade,
        item_samples=lambda judgments: instruction_samples(bench, judgments, kept),
        record=grading.record(),
        extra={"bench_sha256": bench.sha256, "answers_sha256": file_sha256(grading.answers)},
        running=running,
        top_logprobs=grading.top_logprobs,
    )  # fmt: skip
    print(
        f"codit alpacaeval: LC win rate {payload['length_controlled_winrate']:.2f}, win rate "
        f"{payload['win_rate']:.2f} ({payload['glm']}) -> {grading.outputs.scores}"
    )
    return payload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    FetchRun.add_arguments(
        commands.add_parser("fetch", help="AlpacaEval 2.0's reference outputs and template")
    )
    AnsweringRun.add_arguments(
        commands.add_parser("answer", help="answer every instruction of the bench with a model")
    )
    GradingRun.add_arguments(
        commands.add_parser("judge", help="judge a model's outputs against the reference")
    )


def run(args: argparse.Namespace) -> None:
    if args.command == "fetch":
        fetch_run = FetchRun.from_args(args)
        manifest = fetch(fetch_run)
        print(f"codit alpacaeval: {manifest['instructions']} instructions -> {fetch_run.out}")
        return
    if args.command == "answer":
        answering = AnsweringRun.from_args(args)
        records = answer_instructions(answering)
        reasons = [record["finish_reason"] for record in records]
        write_answers(answering, records, reasons, REFERENCE_FILE)
        return
    grade_answers(GradingRun.from_args(args))
