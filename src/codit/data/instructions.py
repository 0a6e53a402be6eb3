"""`codit instructions`: turn an instruction source into the pool every generation job answers.

Sources: a local JSONL file or a Hub dataset (`load_dataset`, the same call works on a local
dataset folder). Each record becomes {"id", "instruction"}; a record that cannot give one is
dropped and counted under one of DROP_REASONS in a card next to the output. A file that cannot
be read as JSON lines (not UTF-8, invalid JSON, no records) is refused, naming file and line.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.workflow.provenance import (
    iter_jsonl,
    json_kind,
    provenance,
    read_jsonl,
    write_json,
    write_jsonl,
)
from codit.workflow.settings import Settings, group, json_object, json_text, option

# Why a source record is left out of the pool, in the order the checks run.
DROP_REASONS = (
    "not_an_object",  # the record is not a JSON object / mapping
    "filtered_by_keep_if",  # a --keep-if field has another value
    "missing_field",  # no instruction (or conversation) field, or it is null
    "malformed_conversation",  # not a list of {role, content} turns with a user turn
    "not_a_string",  # the instruction is a number, list, object, ...
    "empty",  # empty or whitespace only
    "too_long",  # longer than --max-chars (after stripping)
    "duplicate_text",  # same text as an earlier kept instruction
    "duplicate_id",  # same id as an earlier kept instruction
)


def first_user_turn(conversation: Any) -> str | None:
    """The first user message of a chat (LMSYS-Chat-1M style list of {role, content})."""
    if not isinstance(conversation, list):
        return None
    for turn in conversation:
        if isinstance(turn, dict) and turn.get("role") == "user":
            return turn.get("content")
    return None


def instruction_text(
    record: Mapping[str, Any], instruction_field: str, conversation_field: str | None
) -> tuple[str | None, str | None]:
    """(stripped instruction text, None), or (None, the DROP_REASONS entry that rules it out)."""
    field = conversation_field or instruction_field
    if record.get(field) is None:
        return None, "missing_field"
    if conversation_field:
        conversation = record[conversation_field]
        if not isinstance(conversation, list) or not all(
            isinstance(turn, dict) and isinstance(turn.get("role"), str) for turn in conversation
        ):
            return None, "malformed_conversation"
        text = first_user_turn(conversation)
        if not isinstance(text, str):  # no user turn, or content that is not text
            return None, "malformed_conversation"
    else:
        text = record[instruction_field]
        if not isinstance(text, str):
            return None, "not_a_string"
    if not text.strip():
        return None, "empty"
    return text.strip(), None


def load_source_records(source: str, split: str) -> Iterator[dict[str, Any]]:
    """Records of a local JSONL file, or of a Hub dataset when `source` is `hub:<owner>/<name>`."""
    if source.startswith("hub:"):
        from datasets import load_dataset

        yield from load_dataset(source.removeprefix("hub:"), split=split)
    else:
        yield from read_jsonl(source, non_empty=True)


def normalise_instructions(
    records: Iterable[Any],
    id_field: str | None,
    instruction_field: str,
    conversation_field: str | None,
    max_chars: int,
    limit: int | None,
    keep_if: dict[str, Any] | None = None,
) -> tuple[list[dict[str, str]], Counter]:
    """Keep usable, unique instructions in source order; count every dropped record by reason.

    The reasons are DROP_REASONS; a record is counted once, under the first check it fails.
    """
    kept: list[dict[str, str]] = []
    dropped: Counter = Counter()
    seen_texts: set[str] = set()
    seen_ids: set[str] = set()
    for index, record in enumerate(records):
        if limit is not None and len(kept) >= limit:
            break
        if not isinstance(record, Mapping):
            dropped["not_an_object"] += 1
            continue
        if keep_if and any(record.get(key) != value for key, value in keep_if.items()):
            dropped["filtered_by_keep_if"] += 1
            continue
        text, reason = instruction_text(record, instruction_field, conversation_field)
        if text is None:
            dropped[reason] += 1
            continue
        if len(text) > max_chars:
            dropped["too_long"] += 1
            continue
        if text in seen_texts:
            dropped["duplicate_text"] += 1
            continue
        record_id = str(record[id_field]) if id_field and id_field in record else f"{index:08d}"
        if record_id in seen_ids:
            dropped["duplicate_id"] += 1
            continue
        seen_texts.add(text)
        seen_ids.add(record_id)
        kept.append({"id": record_id, "instruction": text})
    return kept, dropped


@dataclass(frozen=True, kw_only=True)
class InstructionSource(Settings):
    """Where the instructions come from and which are kept: the config's `instructions:`."""

    source: str = option(help="local JSONL file or hub:<owner>/<name>")
    split: str = option("train", "split of a Hub dataset")
    instruction_field: str = option("instruction")
    id_field: str | None = option(None, "field with a stable id (default: index)")
    conversation_field: str | None = option(None, "chat field: first user turn")
    keep_if: dict[str, Any] | None = option(
        None,
        'JSON object, e.g. {"language": "English"}',
        parse=json_object("--keep-if"),
        render=json_text,
    )
    max_chars: int = option(4096)
    limit: int | None = option(None)

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise ValueError(f"--max-chars must be >= 1, got {self.max_chars}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")


@dataclass(frozen=True, kw_only=True)
class InstructionsRun(Settings):
    """One `codit instructions` run: the source and the pool and card it writes."""

    selection: InstructionSource = group(InstructionSource, "instructions")
    out: str = option(help="output JSONL of {id, instruction}")
    card: str = option(help="output JSON with counts and provenance")


add_arguments = InstructionsRun.add_arguments


def run(args: argparse.Namespace) -> None:
    instructions_run = InstructionsRun.from_args(args)
    selection = instructions_run.selection
    kept, dropped = normalise_instructions(
        load_source_records(selection.source, selection.split),
        selection.id_field,
        selection.instruction_field,
        selection.conversation_field,
        selection.max_chars,
        selection.limit,
        selection.keep_if or {},
    )
    if not kept:
        raise ValueError(
            f"{selection.source}: no usable instruction left (dropped: {dict(dropped)})"
        )
    out = instructions_run.out
    write_jsonl(out, kept)
    card = {
        "num_instructions": len(kept),
        "dropped": dict(dropped),
        **provenance(selection.record()),
    }
    write_json(instructions_run.card, card)
    print(f"{len(kept)} instructions -> {out}; dropped {dict(dropped)}")


# ---- reading the pool (what every generation job answers)


@dataclass(frozen=True)
class Instruction:
    """One instruction of the pool: its id and its text."""

    id: Any
    text: str


def load_instructions(
    path: str | Path,
    id_field: str = "id",
    instruction_field: str = "instruction",
    limit: int | None = None,
) -> list[Instruction]:
    """Read the instruction JSONL (first `limit` records); ids must be present and unique.

    The file is the output of `codit instructions`, so any bad record is an error naming the
    file and line, as is a file without records.
    """
    instructions: list[Instruction] = []
    seen: set[str] = set()
    for line, record in iter_jsonl(path):
        if limit is not None and len(instructions) >= limit:
            break
        where = f"{path}:{line}"
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected a JSON object, got {json_kind(record)}")
        for field in (id_field, instruction_field):
            if field not in record:
                raise ValueError(f"{where}: record has no field {field!r}")
        text = record[instruction_field]
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: field {instruction_field!r} must be a non-empty string")
        key = str(record[id_field])
        if key in seen:
            raise ValueError(f"{where}: duplicate id {record[id_field]!r}")
        seen.add(key)
        instructions.append(Instruction(record[id_field], text))
    if not instructions and limit != 0:
        raise ValueError(f"{path}: no instructions (the file is empty or has only blank lines)")
    return instructions
