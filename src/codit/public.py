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

from codit.datasets import dataset_card, dataset_record
from codit.instructions import load_source_records
from codit.naming import PUBLIC_NAME, public_arm
from codit.provenance import file_sha256, write_json, write_jsonl

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="dataset name; the arm is public_<name>")
    parser.add_argument("--source", required=True, help="local JSONL file or hub:<owner>/<name>")
    parser.add_argument("--split", default="train", help="split of a Hub dataset")
    parser.add_argument("--instruction-field", default=None, help="field with the instruction")
    parser.add_argument("--response-field", default=None, help="field with the response")
    parser.add_argument(
        "--context-field", default=None, help="optional input/context appended to the instruction"
    )
    parser.add_argument("--id-field", default=None, help="stable id field (default: name-index)")
    parser.add_argument(
        "--messages-field",
        default=None,
        help="chat field instead: first user turn and the assistant turn right after it",
    )
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--size", type=int, default=None, help="number of examples to keep")
    size.add_argument(
        "--match-cards",
        nargs="+",
        default=None,
        metavar="CARD",
        help="dataset cards of the CoDIT datasets: keep as many as the smallest has",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsample")
    parser.add_argument("--out", required=True, help="output JSONL of prompt/completion records")
    parser.add_argument("--card", required=True, help="output JSON dataset card")


def run(args: argparse.Namespace) -> None:
    if not re.fullmatch(PUBLIC_NAME, args.name):
        raise ValueError(
            f"--name {args.name!r}: use letters, digits, '.' and '-' only, starting with a letter "
            "or digit (no '_', so the arm name public_<name> parses back)"
        )
    fields = FieldMapping(
        instruction=args.instruction_field,
        response=args.response_field,
        context=args.context_field,
        id=args.id_field,
        messages=args.messages_field,
    )
    fields.check()
    if args.size is not None:
        if args.size < 1:
            raise ValueError(f"--size must be >= 1, got {args.size}")
        size_rule: dict[str, Any] = {"rule": "size", "size": args.size}
        target = args.size
    else:
        sizes = {card: card_size(card) for card in args.match_cards}
        size_rule = {"rule": "match_cards", "cards": sizes}
        target = min(sizes.values())
    is_hub = args.source.startswith("hub:")
    if not is_hub and not Path(args.source).is_file():
        raise FileNotFoundError(
            f"{args.source}: no such file (give a Hub dataset as hub:<owner>/<name>)"
        )
    arm = public_arm(args.name)
    rows, skipped, source_rows = usable_rows(
        load_source_records(args.source, args.split), fields, args.name
    )
    if not rows:
        raise ValueError(f"{args.source}: no usable row (skipped: {dict(skipped)})")
    warnings = []
    if len(rows) < target:
        # The comparison is then unequal in size; the card says so rather than failing the run.
        warnings.append(
            f"{args.source} has {len(rows)} usable rows, fewer than the target size {target}: "
            "all of them are kept"
        )
    records = [make_record(item, arm) for item in subsample(rows, target, args.seed)]
    settings = {
        "name": args.name,
        "arm": arm,
        "pair": "",
        "source": args.source,
        "split": args.split if is_hub else None,
        "source_sha256": None if is_hub else file_sha256(args.source),
        "fields": {
            "instruction": fields.instruction,
            "response": fields.response,
            "context": fields.context,
            "id": fields.id,
            "messages": fields.messages,
        },
        "size_rule": size_rule,
        "target_size": target,
        "seed": args.seed,
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
    write_jsonl(args.out, records)
    write_json(args.card, card)
    print(
        f"{len(records)} of {len(rows)} usable rows ({source_rows} read) -> {args.out}; "
        f"skipped {dict(skipped)}" + "".join(f"\nwarning: {text}" for text in warnings)
    )
