"""The generated datasets: their records, their cards, and `codit gather`.

A record is one instruction and its response with the settings that made it; a card
summarises a dataset (lengths, finish reasons, repetition, skipped instructions, throughput)
and carries the provenance of the run. `codit gather` concatenates the shards of one dataset in
shard order, checks that they come from one run, sums their skip counts and applies the
keep/drop rule for responses cut at the token limit. Every stage that writes a dataset
(generation, Best-of-N, public datasets) writes it with these functions; nothing here needs
torch.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.workflow.provenance import provenance, read_jsonl, write_json, write_jsonl
from codit.workflow.settings import Settings, group, option

# Why a response ended: its stop token, or the token limit (then it is cut).
FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_REASONS = (FINISH_STOP, FINISH_LENGTH)
# Why an instruction of a shard gets no response; the card counts each reason and lists the
# first SKIPPED_IDS_SHOWN ids.
SKIP_TOO_LONG = "too_long_for_context"  # prompt + --max-new-tokens exceeds the context
SKIP_REASONS = (SKIP_TOO_LONG,)
SKIPPED_IDS_SHOWN = 20
# Repetition in the cards: word 4-grams; a response with half its 4-grams repeated is degenerate.
REPETITION_N = 4
DEGENERATE_SHARE = 0.5


def dataset_record(
    record_id: Any,
    instruction: str,
    response: str,
    *,
    pair: str,
    arm: str,
    alpha: float | None,
    beta: float | None,
    seed: int | None,
    num_tokens: int | None,
    finish_reason: str,
) -> dict[str, Any]:
    """The one record layout of every dataset (generated, Best-of-N, public): a TRL
    conversational prompt/completion pair with its arm, seed, length and finish reason."""
    return {
        "id": record_id,
        "prompt": [{"role": "user", "content": instruction}],
        "completion": [{"role": "assistant", "content": response}],
        "pair": pair,
        "arm": arm,
        "alpha": alpha,
        "beta": beta,
        "seed": seed,
        "num_tokens": num_tokens,
        "finish_reason": finish_reason,
    }


def _percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolation percentile (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def repeated_ngram_share(text: str, n: int = REPETITION_N) -> float:
    """Share of a response's word n-grams that already occurred earlier in the same response.

    Our repetition measure (words split on whitespace, so it compares across tokenizers): 0
    for text without a repeated n-gram or shorter than n words, near 1 for a loop such as
    "a b c d a b c d ...". The released CoDIT code flags n-gram repetition; this is our own
    definition.
    """
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeated = 0
    for gram in grams:
        repeated += gram in seen
        seen.add(gram)
    return repeated / len(grams)


def repetition_summary(texts: Sequence[str]) -> dict[str, Any]:
    """Mean repeated n-gram share of the responses and the share of degenerate ones."""
    shares = [repeated_ngram_share(text) for text in texts]
    return {
        "n": REPETITION_N,
        "mean_repeated_share": statistics.fmean(shares) if shares else None,
        "degenerate_share": (
            sum(share >= DEGENERATE_SHARE for share in shares) / len(shares) if shares else None
        ),
        "degenerate_threshold": DEGENERATE_SHARE,
    }


def dataset_card(
    records: Sequence[dict[str, Any]],
    settings: dict[str, Any],
    throughput: dict[str, Any] | None = None,
    skipped: dict[str, int] | None = None,
    skipped_ids: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """Summary of a generated dataset plus the provenance of the settings that made it.

    `throughput` (tokens, seconds, tokens/s) is measured, not a setting, so it sits beside the
    provenance block rather than inside it. `skipped` counts the instructions left without a
    response per SKIP_REASONS entry; `skipped_ids` lists (the first SKIPPED_IDS_SHOWN of) their
    ids.
    """
    # Written (not generated) datasets have no teacher token counts: null statistics then.
    tokens = [record["num_tokens"] for record in records if record.get("num_tokens") is not None]
    words = [len(record["completion"][0]["content"].split()) for record in records]
    reasons = [record["finish_reason"] for record in records]
    card = {
        "pair": settings.get("pair"),
        "arm": settings.get("arm"),
        "alpha": settings.get("alpha"),
        "beta": settings.get("beta"),
        "num_records": len(records),
        # stop and length always; any other reason (a written dataset's) as it occurs
        "finish_reasons": {
            reason: reasons.count(reason)
            for reason in [*FINISH_REASONS, *sorted(set(reasons) - set(FINISH_REASONS))]
        },
        "completion_tokens": {
            "mean": statistics.fmean(tokens) if tokens else None,
            "median": statistics.median(tokens) if tokens else None,
            "p90": _percentile(tokens, 0.9) if tokens else None,
            "max": max(tokens) if tokens else None,
        },
        "completion_words": {"mean": statistics.fmean(words) if words else None},
        "repetition": repetition_summary(
            [record["completion"][0]["content"] for record in records]
        ),
        "skipped": {reason: (skipped or {}).get(reason, 0) for reason in SKIP_REASONS},
        "skipped_ids": {
            reason: list((skipped_ids or {}).get(reason, []))[:SKIPPED_IDS_SHOWN]
            for reason in SKIP_REASONS
        },
        "provenance": provenance(settings),
    }
    if throughput is not None:
        card["throughput"] = throughput
    return card


def throughput_summary(generated_tokens: int, seconds: float) -> dict[str, Any]:
    return {
        "generated_tokens": generated_tokens,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(generated_tokens / seconds, 2) if seconds > 0 else None,
    }


def _read_shard_card(card_path: str | Path, index: int, num_shards: int) -> dict[str, Any]:
    """Shard card `card_path`, checked to be the card of shard `index` of `num_shards`."""
    card = json.loads(Path(card_path).read_text())
    shard = card.get("provenance", {}).get("settings", {}).get("shard") or {}
    if not {"num_shards", "shard_index", "start", "end"} <= shard.keys():
        raise ValueError(f"{card_path}: not the card of a `codit generate` shard")
    if (shard["shard_index"], shard["num_shards"]) != (index, num_shards):
        raise ValueError(
            f"{card_path}: shard {shard['shard_index']} of {shard['num_shards']}, "
            f"expected shard {index} of {num_shards} (give shards in index order)"
        )
    return card


def default_card_path(dataset_path: str | Path) -> Path:
    """The card beside a dataset: `shards/000-of-004.jsonl` -> `shards/000-of-004.card.json`."""
    return Path(dataset_path).with_suffix(".card.json")


def gather_shards(
    shard_paths: Sequence[str | Path],
    shard_card_paths: Sequence[str | Path] | None,
    out: str | Path,
    card: str | Path,
    drop_truncated: bool = False,
) -> list[dict[str, Any]]:
    """Concatenate shard datasets (in shard-index order) into one dataset and card.

    The shard cards (default: `default_card_path` of each shard) must come from one run split
    into len(shard_paths) shards: identical settings apart from the shard block, and shard i
    given at position i. With `drop_truncated`, responses cut at max_new_tokens (finish reason
    "length") are left out of the dataset; the card counts them either way. Returns the
    records written.
    """
    if shard_card_paths is None:
        shard_card_paths = [default_card_path(path) for path in shard_paths]
    if not shard_paths or len(shard_paths) != len(shard_card_paths):
        raise ValueError("gather needs one card per shard (--cards), in the same order")
    records: list[dict[str, Any]] = []
    first_settings: dict[str, Any] = {}
    tokens, seconds = 0, 0.0
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    skipped_ids: dict[str, list[Any]] = {reason: [] for reason in SKIP_REASONS}
    shards = zip(shard_paths, shard_card_paths, strict=True)
    for index, (shard_path, card_path) in enumerate(shards):
        shard_card = _read_shard_card(card_path, index, len(shard_paths))
        settings = dict(shard_card["provenance"]["settings"])
        shard = settings.pop("shard")
        if index == 0:
            first_settings = settings
        elif settings != first_settings:
            differing = sorted(
                key
                for key in settings.keys() | first_settings.keys()
                if settings.get(key) != first_settings.get(key)
            )
            raise ValueError(f"{card_path}: settings differ from shard 0 in {', '.join(differing)}")
        # Cards written before skipping existed have no `skipped` block: nothing was skipped.
        shard_skipped = shard_card.get("skipped") or {}
        for reason, count in shard_skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
        for reason, ids in (shard_card.get("skipped_ids") or {}).items():
            skipped_ids.setdefault(reason, []).extend(ids)
        shard_records = read_jsonl(shard_path)
        expected = shard["end"] - shard["start"] - sum(shard_skipped.values())
        if len(shard_records) != expected:
            raise ValueError(
                f"{shard_path}: {len(shard_records)} records, but its card "
                f"{card_path} covers {shard['end'] - shard['start']} instructions, "
                f"{sum(shard_skipped.values())} of them skipped"
            )
        records.extend(shard_records)
        shard_throughput = shard_card.get("throughput") or {}
        tokens += shard_throughput.get("generated_tokens", 0)
        seconds += shard_throughput.get("seconds", 0.0)
    ids = [str(record["id"]) for record in records]
    if len(set(ids)) != len(ids):
        raise ValueError("the gathered shards contain duplicate instruction ids")
    gathered = {
        **first_settings,
        "shard": {"num_shards": len(shard_paths), "gathered_from": list(map(str, shard_paths))},
        "drop_truncated": drop_truncated,
    }
    truncated = sum(record["finish_reason"] == FINISH_LENGTH for record in records)
    kept = [
        record
        for record in records
        if not (drop_truncated and record["finish_reason"] == FINISH_LENGTH)
    ]
    dataset = dataset_card(
        records, gathered, throughput_summary(tokens, seconds), skipped, skipped_ids
    )
    dataset["num_generated"] = len(records)
    dataset["num_records"] = len(kept)
    dataset["truncated"] = {"generated": truncated, "dropped": len(records) - len(kept)}
    write_jsonl(out, kept)
    write_json(card, dataset)
    return kept


@dataclass(frozen=True, kw_only=True)
class GatherSettings(Settings):
    """What the config decides about gathering (its `generation.drop_truncated`)."""

    drop_truncated: bool = option(
        False,
        "leave responses cut at --max-new-tokens out of the dataset (the card counts them)",
    )


@dataclass(frozen=True, kw_only=True)
class GatherRun(Settings):
    """One `codit gather` run: the shards of one dataset, concatenated, with one card."""

    shards: tuple[str, ...] = option(
        help="the shard outputs of one dataset, in shard order", metavar="SHARD_JSONL", nargs="+"
    )
    cards: tuple[str, ...] = option(
        (),
        "the shards' cards, same order as --shards (default: SHARD.card.json beside each "
        "SHARD.jsonl)",
        metavar="SHARD_CARD",
        nargs="+",
    )
    out: str = option(help="the dataset (JSONL)")
    card: str = option(help="the dataset's card (JSON)")
    settings: GatherSettings = group(GatherSettings, "gathering")


add_arguments = GatherRun.add_arguments


def run(args: argparse.Namespace) -> None:
    gather = GatherRun.from_args(args)
    cards = list(gather.cards) or None
    drop = gather.settings.drop_truncated
    gather_shards(list(gather.shards), cards, gather.out, gather.card, drop)
