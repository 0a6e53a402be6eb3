"""`codit public`: a public instruction dataset as a training arm, as large as the CoDIT data.

The source is a Hub dataset (`hub:<owner>/<name>`, loaded with `load_dataset`) or a local JSONL
file. A field mapping turns each row into one (instruction, response) pair: instruction and
response fields, an optional context field appended to the instruction (Alpaca's `input`,
Dolly's `context`) and an optional id field; or a chat field whose first user turn and the
assistant turn right after it give the pair. Rows that cannot give a pair are skipped and
counted under one of SKIP_REASONS. The usable rows are subsampled to the target size with a
fixed seed (`--size`, or the smallest `num_records` of the `--match-cards` dataset cards) and
written in source order as the same TRL conversational records `codit generate` writes, so the
SFT stage trains on them unchanged.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.data.datasets import dataset_card, dataset_record
from codit.data.instructions import load_source_records
from codit.workflow.naming import PUBLIC_NAME, public_arm
from codit.workflow.provenance import file_sha256, write_json, write_jsonl
from codit.workflow.settings import Settings, group, option

# Why a source row is left out, in the order the checks run.
SKIP_REASONS = (
    "not_an_object",  # the row is not a JSON object / mapping
    "missing_field",  # a mapped field is absent or null
    "malformed_messages",  # not a list of {role, content} turns with a user turn then an assistant
    "not_a_string",  # instruction, context or response is a number, list, object, ...
    "empty_instruction",  # empty or whitespace only
    "empty_response",  # empty or whitespace only
    "duplicate_text",  # same instruction (with its context) as an earlier usable row
    "duplicate_id",  # same id as an earlier usable row
)
# `finish_reason` of every record: the response was written by people, not sampled.
WRITTEN = "written"


@dataclass(frozen=True)
class FieldMapping:
    """Which source fields give the instruction, response, context and id of a row."""

    instruction: str | None = None
    response: str | None = None
    context: str | None = None
    id: str | None = None
    messages: str | None = None

    def check(self) -> None:
        """Either a chat field, or both an instruction and a response field."""
        if self.messages:
            mixed = [
                flag
                for flag, value in (
                    ("--instruction-field", self.instruction),
                    ("--response-field", self.response),
                    ("--context-field", self.context),
                )
                if value
            ]
            if mixed:
                raise ValueError(f"--messages-field cannot be combined with {', '.join(mixed)}")
            return
        missing = [
            flag
            for flag, value in (
                ("--instruction-field", self.instruction),
                ("--response-field", self.response),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"missing {' and '.join(missing)} (or give --messages-field for a chat dataset)"
            )


def _message_pair(messages: Any) -> tuple[Any, Any] | None:
    """(first user turn's content, content of the assistant turn right after it), or None."""
    if not isinstance(messages, list) or not all(
        isinstance(turn, Mapping) and isinstance(turn.get("role"), str) for turn in messages
    ):
        return None
    for position, turn in enumerate(messages):
        if turn["role"] == "user":
            following = messages[position + 1] if position + 1 < len(messages) else None
            if following is None or following["role"] != "assistant":
                return None
            return turn.get("content"), following.get("content")
    return None


def row_pair(
    row: Mapping[str, Any], fields: FieldMapping
) -> tuple[tuple[str, str] | None, str | None]:
    """((instruction, response), None), or (None, the SKIP_REASONS entry that rules the row out).

    Both texts are stripped; a non-empty context follows the instruction after a blank line.
    """
    if fields.messages:
        if row.get(fields.messages) is None:
            return None, "missing_field"
        pair = _message_pair(row[fields.messages])
        if pair is None:
            return None, "malformed_messages"
        instruction, response = pair
        context = None
    else:
        assert fields.instruction and fields.response  # FieldMapping.check ran
        if row.get(fields.instruction) is None or row.get(fields.response) is None:
            return None, "missing_field"
        instruction, response = row[fields.instruction], row[fields.response]
        # Alpaca and Dolly leave the context empty on most rows: absent means none.
        context = row.get(fields.context) if fields.context else None
    if not all(isinstance(text, str) for text in (instruction, response)):
        return None, "not_a_string"
    if context is not None and not isinstance(context, str):
        return None, "not_a_string"
    if not instruction.strip():
        return None, "empty_instruction"
    if not response.strip():
        return None, "empty_response"
    prompt = instruction.strip()
    if context and context.strip():
        prompt = f"{prompt}\n\n{context.strip()}"
    return (prompt, response.strip()), None


def usable_rows(
    rows: Iterable[Any], fields: FieldMapping, name: str
) -> tuple[list[dict[str, str]], Counter, int]:
    """(usable {id, instruction, response} in source order, skips by reason, rows read).

    A row is counted once, under the first check it fails. Without an id field a row's id is
    `<name>-<row index>` (0-based, counting every source row, skipped or not).
    """
    kept: list[dict[str, str]] = []
    skipped: Counter = Counter()
    seen_texts: set[str] = set()
    seen_ids: set[str] = set()
    index = -1
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            skipped["not_an_object"] += 1
            continue
        if fields.id and row.get(fields.id) is None:
            skipped["missing_field"] += 1
            continue
        pair, reason = row_pair(row, fields)
        if pair is None:
            skipped[reason] += 1
            continue
        instruction, response = pair
        if instruction in seen_texts:
            skipped["duplicate_text"] += 1
            continue
        row_id = str(row[fields.id]) if fields.id else f"{name}-{index}"
        if row_id in seen_ids:
            skipped["duplicate_id"] += 1
            continue
        seen_texts.add(instruction)
        seen_ids.add(row_id)
        kept.append({"id": row_id, "instruction": instruction, "response": response})
    return kept, skipped, index + 1


def subsample(rows: list[Any], size: int, seed: int) -> list[Any]:
    """`size` rows drawn with `random.Random(seed)`, in source order; all rows if fewer."""
    if len(rows) <= size:
        return list(rows)
    chosen = random.Random(seed).sample(range(len(rows)), size)
    return [rows[position] for position in sorted(chosen)]


def card_size(card_path: str) -> int:
    """`num_records` of a dataset card written by `codit generate` (or this stage)."""
    path = Path(card_path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{card_path}: not a JSON dataset card ({error.msg})") from None
    size = card.get("num_records") if isinstance(card, dict) else None
    # bool is an int to Python, but never a record count.
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"{card_path}: dataset card has no positive integer num_records")
    return size


def make_record(item: Mapping[str, str], arm: str) -> dict[str, Any]:
    """One record in `codit generate`'s format; nothing was sampled, so no seed or token count."""
    return dataset_record(
        item["id"],
        item["instruction"],
        item["response"],
        pair="",
        arm=arm,
        alpha=None,
        beta=None,
        seed=None,
        num_tokens=None,
        finish_reason=WRITTEN,
    )


@dataclass(frozen=True, kw_only=True)
class PublicSource(Settings):
    """One public dataset of the config's `public_datasets:`: where it is, how its fields map,
    and how much of it is kept."""

    name: str = option(help="dataset name; the arm is public_<name>")
    source: str = option(help="local JSONL file or hub:<owner>/<name>")
    split: str = option("train", "split of a Hub dataset")
    instruction_field: str | None = option(None, "field with the instruction")
    response_field: str | None = option(None, "field with the response")
    context_field: str | None = option(None, "optional input/context appended to the instruction")
    id_field: str | None = option(None, "stable id field (default: name-index)")
    messages_field: str | None = option(
        None, "chat field instead: first user turn and the assistant turn right after it"
    )
    size: int | None = option(None, "number of examples to keep")
    match_cards: tuple[str, ...] = option(
        (),
        "dataset cards of the CoDIT datasets: keep as many as the smallest has",
        metavar="CARD",
        nargs="+",
    )
    seed: int = option(0, "seed of the subsample")

    def __post_init__(self) -> None:
        if not re.fullmatch(PUBLIC_NAME, self.name):
            raise ValueError(
                f"--name {self.name!r}: use letters, digits, '.' and '-' only, starting with a "
                "letter or digit (no '_', so the arm name public_<name> parses back)"
            )
        if (self.size is None) == (not self.match_cards):
            raise ValueError("give one of --size and --match-cards")
        if self.size is not None and self.size < 1:
            raise ValueError(f"--size must be >= 1, got {self.size}")
        self.fields().check()

    def fields(self) -> FieldMapping:
        return FieldMapping(
            instruction=self.instruction_field,
            response=self.response_field,
            context=self.context_field,
            id=self.id_field,
            messages=self.messages_field,
        )


@dataclass(frozen=True, kw_only=True)
class PublicRun(Settings):
    """One `codit public` run: the dataset, and the records and card it writes."""

    dataset: PublicSource = group(PublicSource, "dataset")
    out: str = option(help="output JSONL of prompt/completion records")
    card: str = option(help="output JSON dataset card")


add_arguments = PublicRun.add_arguments


def run(args: argparse.Namespace) -> None:
    public_run = PublicRun.from_args(args)
    build(public_run.dataset, public_run.out, public_run.card)


def build(dataset: PublicSource, out: str, card_path: str) -> None:
    """Subsample the dataset to its target size; write its records and card."""
    fields = dataset.fields()
    if dataset.size is not None:
        size_rule: dict[str, Any] = {"rule": "size", "size": dataset.size}
        target = dataset.size
    else:
        sizes = {card: card_size(card) for card in dataset.match_cards}
        size_rule = {"rule": "match_cards", "cards": sizes}
        target = min(sizes.values())
    is_hub = dataset.source.startswith("hub:")
    if not is_hub and not Path(dataset.source).is_file():
        raise FileNotFoundError(
            f"{dataset.source}: no such file (give a Hub dataset as hub:<owner>/<name>)"
        )
    arm = public_arm(dataset.name)
    rows, skipped, source_rows = usable_rows(
        load_source_records(dataset.source, dataset.split), fields, dataset.name
    )
    if not rows:
        raise ValueError(f"{dataset.source}: no usable row (skipped: {dict(skipped)})")
    warnings = []
    if len(rows) < target:
        # The comparison is then unequal in size; the card says so rather than failing the run.
        warnings.append(
            f"{dataset.source} has {len(rows)} usable rows, fewer than the target size {target}: "
            "all of them are kept"
        )
    records = [make_record(item, arm) for item in subsample(rows, target, dataset.seed)]
    settings = {
        "name": dataset.name,
        "arm": arm,
        "pair": "",
        "source": dataset.source,
        "split": dataset.split if is_hub else None,
        "source_sha256": None if is_hub else file_sha256(dataset.source),
        "fields": {
            "instruction": fields.instruction,
            "response": fields.response,
            "context": fields.context,
            "id": fields.id,
            "messages": fields.messages,
        },
        "size_rule": size_rule,
        "target_size": target,
        "seed": dataset.seed,
    }
    card = dataset_card(records, settings)
    card.pop("skipped_ids", None)  # generation's per-reason ids; our skips are counted below
    card.update(
        {
            "source_rows": source_rows,
            "usable_rows": len(rows),
            "skipped": {reason: skipped.get(reason, 0) for reason in SKIP_REASONS},
            "warnings": warnings,
        }
    )
    write_jsonl(out, records)
    write_json(card_path, card)
    print(
        f"{len(records)} of {len(rows)} usable rows ({source_rows} read) -> {out}; "
        f"skipped {dict(skipped)}" + "".join(f"\nwarning: {text}" for text in warnings)
    )
