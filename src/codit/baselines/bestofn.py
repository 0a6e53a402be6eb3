"""`codit bestofn`: the Best-of-N baseline: score N direct samples, keep the best per instruction.

Candidate j is the j-th direct sample of the same instructions (candidate 0 is the `direct`
arm's data.jsonl). Every candidate response is scored; per instruction the candidate with the
highest score is kept (ties go to the lowest candidate index, so the choice is deterministic)
and written as a dataset of arm `bestof<N>_<scorer>` with a dataset card. Only ids present in
every candidate file are used; the others are counted in the card.

Scorers, each giving a score in [0, 1]:

- `oracle` (tiny world only; it knows the truth, so it is an upper bound, not a method): the
  tiny world's oracle (codit.tinyworld.oracle), score = (constraints met + knowledge right) / 2.
- `judge`: an LLM judge behind an OpenAI-compatible endpoint (asked through codit.judged.judge),
  with our own checklist prompt (JUDGE_PROMPT) ending in `Rating: [[N]]`, N in 1..10, at temperature
  0; score = (N - 1) / 9. Verdicts are cached in `<out>.judge-cache.jsonl` as they arrive, so a
  killed run resumes without asking again; the cache is removed once the outputs are written.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.data.datasets import dataset_card
from codit.judged.judge import (
    REPLY_SHOWN,
    Judge,
    JudgeEndpoint,
    JudgeError,
    JudgeRequest,
    request_key,
)
from codit.judged.judge_server import judge_at
from codit.tinyworld.oracle import Oracle
from codit.workflow.naming import SCORERS, best_of_n_arm
from codit.workflow.provenance import file_sha256, iter_jsonl, json_kind, write_json, write_jsonl
from codit.workflow.settings import Settings, group, option

# The card lists at most this many of the ids left out because a candidate lacks them.
MISSING_IDS_SHOWN = 20


# --------------------------------------------------------------------------------------------
# Candidates


@dataclass(frozen=True)
class Candidate:
    """One response to score: candidate file `sample`'s answer to instruction `id`."""

    id: Any
    sample: int
    instruction: str
    response: str


def _message_text(record: dict[str, Any], field: str, where: str) -> str:
    """The content of the single message in `record[field]` (a TRL conversational record)."""
    messages = record.get(field)
    if (
        not isinstance(messages, list)
        or not messages
        or not isinstance(messages[0], dict)
        or not isinstance(messages[0].get("content"), str)
    ):
        raise ValueError(f"{where}: field {field!r} must be a list of messages with text content")
    return messages[0]["content"]


def read_candidate(path: str | Path) -> dict[str, dict[str, Any]]:
    """Records of one candidate file by id (str), in file order; ids must be unique."""
    records: dict[str, dict[str, Any]] = {}
    for line, record in iter_jsonl(path):
        where = f"{path}:{line}"
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected a JSON object, got {json_kind(record)}")
        if "id" not in record:
            raise ValueError(f"{where}: record has no field 'id'")
        _message_text(record, "prompt", where)
        _message_text(record, "completion", where)
        key = str(record["id"])
        if key in records:
            raise ValueError(f"{where}: duplicate id {record['id']!r}")
        records[key] = record
    if not records:
        raise ValueError(f"{path}: no records (the file is empty or has only blank lines)")
    return records


def load_candidates(
    paths: Sequence[str | Path],
) -> tuple[list[str], list[dict[str, dict[str, Any]]], list[Any]]:
    """(ids kept in candidate 0's order, records by id per candidate, ids left out).

    An id is kept only if every candidate holds it; one id with different prompts in two
    candidates is an error naming the file and id (the candidates answer other instructions).
    """
    if not paths:
        raise ValueError("--candidates needs at least one dataset")
    candidates = [read_candidate(path) for path in paths]
    kept, missing = [], []
    seen: set[str] = set()
    for records in candidates:
        for key, record in records.items():
            if key in seen:
                continue
            seen.add(key)
            if all(key in other for other in candidates):
                kept.append(key)
            else:
                missing.append(record["id"])
    # Output order is candidate 0's order, whatever order the others list their ids in.
    order = {key: index for index, key in enumerate(candidates[0])}
    kept.sort(key=order.__getitem__)
    for key in kept:
        prompt = candidates[0][key]["prompt"]
        for path, records in zip(paths[1:], candidates[1:], strict=True):
            if records[key]["prompt"] != prompt:
                raise ValueError(
                    f"{path}: id {records[key]['id']!r} has another prompt than in {paths[0]}"
                )
    if not kept:
        raise ValueError("no instruction id is present in every candidate file")
    return kept, candidates, missing


def candidate_items(keys: Sequence[str], candidates: Sequence[dict[str, dict]]) -> list[Candidate]:
    """Every (instruction, sample) to score, instruction by instruction."""
    items = []
    for key in keys:
        for sample, records in enumerate(candidates):
            record = records[key]
            items.append(
                Candidate(
                    record["id"],
                    sample,
                    record["prompt"][0]["content"],
                    record["completion"][0]["content"],
                )
            )
    return items


# --------------------------------------------------------------------------------------------
# Selection


def best_index(scores: Sequence[float]) -> int:
    """Index of the highest score; ties go to the lowest index."""
    return max(range(len(scores)), key=lambda j: (scores[j], -j))


def select_best(
    keys: Sequence[str],
    candidates: Sequence[dict[str, dict[str, Any]]],
    scores: dict[tuple[str, int], float],
    arm: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The chosen record per id (arm renamed, `best_of_n` block added) and the selection block.

    `scores` maps (id as str, sample) to the score of that candidate.
    """
    n = len(candidates)
    records, chosen_scores, all_scores = [], [], []
    chosen_counts, ties = [0] * n, 0
    for key in keys:
        row = [scores[(key, sample)] for sample in range(n)]
        best = best_index(row)
        ties += row.count(row[best]) > 1
        chosen_counts[best] += 1
        chosen_scores.append(row[best])
        all_scores += row
        record = dict(candidates[best][key])
        record["arm"] = arm
        record["best_of_n"] = {"sample": best, "score": row[best], "scores": row}
        records.append(record)
    selection = {
        "mean_chosen_score": statistics.fmean(chosen_scores),
        "mean_candidate_score": statistics.fmean(all_scores),
        # Candidate 0 is the direct arm: the gain of Best-of-N over it at a glance.
        "mean_sample0_score": statistics.fmean(scores[(key, 0)] for key in keys),
        "chosen_sample_counts": chosen_counts,
        "ties": ties,
    }
    return records, selection


# --------------------------------------------------------------------------------------------
# Oracle scorer (tiny world)


class OracleScorer:
    """Best-of-N's `oracle` scorer: the tiny world's oracle (codit.tinyworld.oracle) on each
    candidate, found in the pool by its id."""

    def __init__(self, world_dir: str | Path) -> None:
        self.oracle = Oracle(world_dir)

    def settings(self) -> dict[str, Any]:
        return self.oracle.settings()

    def score_one(self, candidate: Candidate) -> dict[str, Any]:
        item = self.oracle.item(candidate.id)
        if item["instruction"] != candidate.instruction:
            raise ValueError(
                f"{self.oracle.pool_path}: id {candidate.id!r} has another instruction than the "
                "candidates (another tiny world?)"
            )
        return self.oracle.score(item, candidate.response)

    def score(self, candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
        """One result per candidate, in order: `score` in [0, 1] and its two parts."""
        return [self.score_one(candidate) for candidate in candidates]


# --------------------------------------------------------------------------------------------
# LLM judge scorer

JUDGE_PROMPT_VERSION = "codit-judge-v1"
JUDGE_PROMPT = """\
You are a strict, fair reviewer of answers written by an AI assistant. Below are a user's \
instruction and the assistant's response. Decide how well the response serves the user.

<instruction>
{instruction}
</instruction>

<response>
{response}
</response>

Work through this checklist, one short line per item:
1. Task: does the response do what the instruction asks, completely?
2. Correctness: are its statements, facts, reasoning and any code or arithmetic right? \
Invented or wrong content is a serious fault.
3. Constraints: list every explicit requirement of the instruction (format, length, language, \
case, words to start or end with, number of items, style) and say whether each one is met. \
Each unmet requirement is a serious fault.
4. Helpfulness: is it clear, specific and useful, at the level of detail the user needs?
5. Economy: is it free of padding, repetition, needless disclaimers and text unrelated to \
the request?

Then rate the response from 1 to 10: 1-2 useless, wrong or off-topic; 3-4 major faults; \
5-6 partly useful with clear faults; 7-8 good with minor faults; 9-10 excellent, every \
requirement met. Judge only the response's quality, not its length.
End your reply with one final line of exactly this form, N being an integer from 1 to 10:
Rating: [[N]]"""
_RATING = re.compile(r"\[\[\s*(\d+)\s*\]\]")


def judge_prompt(instruction: str, response: str) -> str:
    return JUDGE_PROMPT.format(instruction=instruction, response=response)


def parse_rating(reply: str) -> int | None:
    """The last `[[N]]` of a judge reply when N is in 1..10, else None."""
    found = _RATING.findall(reply)
    if not found:
        return None
    rating = int(found[-1])
    return rating if 1 <= rating <= 10 else None


def judge_cache_path(out: str | Path) -> Path:
    return Path(f"{out}.judge-cache.jsonl")


class JudgeScorer:
    """Best-of-N's LLM judge: JUDGE_PROMPT per candidate, a rating 1..10, score (N - 1) / 9.

    Asked through codit.judged.judge (the `openai` client, cached verdicts); a candidate whose
    replies never hold a rating stops the stage, naming it: Best-of-N cannot pick without its score.
    """

    def __init__(self, endpoint: JudgeEndpoint, cache: Path | None = None) -> None:
        self.endpoint = endpoint
        self.judge = Judge(
            endpoint,
            benchmark="Best-of-N",
            prompt_version=JUDGE_PROMPT_VERSION,
            parse=parse_rating,
            cache=cache,
        )

    def settings(self) -> dict[str, Any]:
        return {
            **self.endpoint.provenance(),
            "prompt_version": JUDGE_PROMPT_VERSION,
            "prompt_sha256": hashlib.sha256(JUDGE_PROMPT.encode()).hexdigest(),
            "score": "(rating - 1) / 9",
        }

    def request(self, candidate: Candidate) -> JudgeRequest:
        key = request_key(
            self.endpoint.model, JUDGE_PROMPT_VERSION, candidate.instruction, candidate.response
        )
        prompt = judge_prompt(candidate.instruction, candidate.response)
        item = f"id {candidate.id!r} sample {candidate.sample}"
        return JudgeRequest(key, [{"role": "user", "content": prompt}], item)

    def score(self, candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
        """One result per candidate, in order: `score` = (rating - 1) / 9, `rating`, `reply`."""
        requests = [self.request(candidate) for candidate in candidates]
        verdicts = self.judge.ask(requests)
        for request in requests:
            entry = verdicts[request.key]
            if entry["verdict"] is None:
                raise JudgeError(
                    f"Best-of-N: {request.item}: {self.endpoint.described()} gave no rating in "
                    f"{entry['tries']} replies; last: {entry['reply'][:REPLY_SHOWN]!r}"
                )
        return [
            {
                "score": (verdicts[r.key]["verdict"] - 1) / 9,
                "rating": verdicts[r.key]["verdict"],
                "reply": verdicts[r.key]["reply"],
            }
            for r in requests
        ]


# --------------------------------------------------------------------------------------------
# The stage


def best_of_n(
    candidate_paths: Sequence[str | Path],
    scorer: OracleScorer | JudgeScorer,
    scorer_name: str,
    pair: str,
    out: str | Path,
    card_path: str | Path,
    scores_path: str | Path | None = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Score every candidate, write the best per instruction, its card and (optionally) scores.

    Returns the records written.
    """
    if scorer_name not in SCORERS:
        raise ValueError(f"--scorer must be one of {', '.join(SCORERS)}, got {scorer_name!r}")
    keys, candidates, missing = load_candidates(candidate_paths)
    items = candidate_items(keys, candidates)
    results = scorer.score(items)
    scores = {(str(c.id), c.sample): r["score"] for c, r in zip(items, results, strict=True)}
    arm = best_of_n_arm(len(candidates), scorer_name)
    records, selection = select_best(keys, candidates, scores, arm)
    settings = {
        "pair": pair,
        "arm": arm,
        "alpha": None,
        "beta": None,
        "n": len(candidates),
        "scorer": scorer_name,
        "seed": seed,
        "candidates": [
            {"path": str(path), "sha256": file_sha256(path)} for path in candidate_paths
        ],
        "scorer_settings": scorer.settings(),
    }
    card = dataset_card(records, settings)
    card["selection"] = selection
    card["missing_in_some_candidate"] = len(missing)
    card["missing_ids"] = missing[:MISSING_IDS_SHOWN]
    if scores_path is not None:
        rows = [{"id": c.id, "sample": c.sample, **r} for c, r in zip(items, results, strict=True)]
        write_jsonl(scores_path, rows)
    write_jsonl(out, records)
    write_json(card_path, card)
    # The verdicts live on in --scores (if asked for); the cache was only for resuming.
    judge_cache_path(out).unlink(missing_ok=True)
    return records


@dataclass(frozen=True, kw_only=True)
class BestOfNRun(Settings):
    """One `codit bestofn` run: N candidates of one teacher pair and seed, scored, the best kept."""

    candidates: tuple[Path, ...] = option(
        help="datasets of direct samples 0..N-1 of the same instructions (0: the direct arm)",
        metavar="JSONL",
        nargs="+",
    )
    scorer: str = option(help="how to score", choices=SCORERS)
    world: Path | None = option(
        None, "oracle scorer: tiny world folder (world.json, instructions/pool.jsonl)"
    )
    judge: JudgeEndpoint = group(JudgeEndpoint, "LLM judge scorer (OpenAI-compatible endpoint)")
    pair: str = option(help="teacher pair name (for the card)")
    seed: int | None = option(None, "generation seed of the candidates (recorded in the card)")
    out: Path = option(help="output dataset (JSONL)")
    card: Path = option(help="output dataset card (JSON)")
    scores: Path | None = option(None, "also write every candidate's score here (JSONL)")
    server_log: Path | None = option(
        None, "output of the judge server --judge-serve starts (default: OUT.judge-server.log)"
    )

    def make_scorer(self, judge: JudgeEndpoint | None = None) -> OracleScorer | JudgeScorer:
        """The scorer asked for, its options checked; `judge`: the endpoint to ask (the
        configured one, or the server started for this run)."""
        if self.scorer == "oracle":
            if self.world is None:
                raise ValueError("--scorer oracle needs --world (the tiny world folder)")
            return OracleScorer(self.world)
        return JudgeScorer(judge or self.judge, cache=judge_cache_path(self.out))


add_arguments = BestOfNRun.add_arguments


def run(args: argparse.Namespace) -> None:
    settings = BestOfNRun.from_args(args)
    for path in settings.candidates:
        if not path.is_file():
            raise FileNotFoundError(f"candidate dataset {path} does not exist")
    judged = settings.scorer == "judge"
    if judged:
        settings.judge.check()  # before a server starts
    log = settings.server_log or Path(f"{settings.out}.judge-server.log")
    with judge_at(settings.judge, log) if judged else contextlib.nullcontext() as judge:
        records = best_of_n(
            settings.candidates,
            settings.make_scorer(judge),
            settings.scorer,
            settings.pair,
            settings.out,
            settings.card,
            settings.scores,
            settings.seed,
        )
    print(f"{len(records)} records -> {settings.out}")
