"""`codit public`: a public instruction dataset mapped, cleaned and subsampled into an arm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codit.baselines.public import SKIP_REASONS, FieldMapping, subsample, usable_rows
from codit.cli import main
from codit.workflow.provenance import file_sha256, read_jsonl, write_json, write_jsonl

ALPACA = FieldMapping(instruction="instruction", response="output", context="input")


def write_source(path: Path, rows: list) -> Path:
    write_jsonl(path, rows)
    return path


def run_public(tmp_path: Path, source: Path, *options: str) -> tuple[list[dict], dict]:
    """`codit public` on `source`; returns (records, card)."""
    out, card = tmp_path / "public.jsonl", tmp_path / "card.json"
    argv = ["public", "--name", "alpaca", "--source", str(source)]
    main([*argv, *options, "--out", str(out), "--card", str(card)])
    return read_jsonl(out), json.loads(card.read_text())


def numbered(count: int) -> list[dict]:
    return [{"instruction": f"Question {i}?", "output": f"Answer {i}."} for i in range(count)]


def public_error(tmp_path: Path, *options: str) -> str:
    out = tmp_path / "public.jsonl"
    with pytest.raises(SystemExit) as error:
        main(["public", *options, "--out", str(out), "--card", str(tmp_path / "card.json")])
    assert not out.exists()
    return str(error.value.code)


def test_field_mapping_appends_a_non_empty_context():
    rows = [
        {"instruction": " Sum these. ", "input": "2 and 3", "output": " 5 "},
        {"instruction": "Say hi.", "input": "", "output": "Hi."},
        {"instruction": "Say bye.", "output": "Bye."},  # no context field at all
        {"instruction": "Name one.", "input": "  ", "output": "One."},
    ]
    kept, skipped, read = usable_rows(rows, ALPACA, "alpaca")
    assert kept == [
        {"id": "alpaca-0", "instruction": "Sum these.\n\n2 and 3", "response": "5"},
        {"id": "alpaca-1", "instruction": "Say hi.", "response": "Hi."},
        {"id": "alpaca-2", "instruction": "Say bye.", "response": "Bye."},
        {"id": "alpaca-3", "instruction": "Name one.", "response": "One."},
    ]
    assert not skipped and read == 4


def test_messages_take_the_first_user_turn_and_the_assistant_reply():
    def chat(*turns):
        return {"messages": [{"role": role, "content": text} for role, text in turns]}

    rows = [
        chat(("system", "Be brief."), ("user", "Q1"), ("assistant", "A1"), ("user", "Q2")),
        chat(("user", "Q3"), ("user", "Q4")),  # malformed: no reply right after the user turn
        chat(("assistant", "A")),  # malformed: no user turn
        chat(("user", "Q5")),  # malformed: the chat ends on the user turn
        {"messages": "Q as a string"},  # malformed
        {"messages": None},  # missing
        chat(("user", "Q6"), ("assistant", "")),  # empty response
        {"messages": [{"role": "user", "content": 1}, {"role": "assistant", "content": "A"}]},
    ]
    kept, skipped, _ = usable_rows(rows, FieldMapping(messages="messages"), "chat")
    assert kept == [{"id": "chat-0", "instruction": "Q1", "response": "A1"}]
    assert skipped == {
        "malformed_messages": 4,
        "missing_field": 1,
        "empty_response": 1,
        "not_a_string": 1,
    }


def test_bad_rows_are_skipped_and_counted_by_reason(tmp_path):
    rows = [
        {"id": 1, "instruction": "Keep me.", "output": "Kept."},
        ["not", "an", "object"],  # not_an_object
        {"id": 2, "output": "No instruction."},  # missing_field
        {"id": 3, "instruction": "No output."},  # missing_field
        {"instruction": "No id.", "output": "x"},  # missing_field (id)
        {"id": 4, "instruction": 7, "output": "x"},  # not_a_string
        {"id": 5, "instruction": "List.", "output": ["a"]},  # not_a_string
        {"id": 6, "instruction": "Ctx.", "input": 3, "output": "x"},  # not_a_string
        {"id": 7, "instruction": "  ", "output": "x"},  # empty_instruction
        {"id": 8, "instruction": "Blank.", "output": "\n"},  # empty_response
        {"id": 9, "instruction": " Keep me. ", "output": "Again."},  # duplicate_text
        {"id": 1, "instruction": "Same id.", "output": "x"},  # duplicate_id
        {"id": 10, "instruction": "Last.", "output": "Done."},
    ]
    source = write_source(tmp_path / "source.jsonl", rows)
    options = ["--instruction-field", "instruction", "--response-field", "output"]
    records, card = run_public(
        tmp_path, source, *options, "--context-field", "input", "--id-field", "id", "--size", "5"
    )
    assert [record["id"] for record in records] == ["1", "10"]
    assert card["skipped"] == {
        "not_an_object": 1,
        "missing_field": 3,
        "malformed_messages": 0,
        "not_a_string": 3,
        "empty_instruction": 1,
        "empty_response": 1,
        "duplicate_text": 1,
        "duplicate_id": 1,
    }
    assert set(card["skipped"]) == set(SKIP_REASONS)
    assert (card["source_rows"], card["usable_rows"], card["num_records"]) == (13, 2, 2)


def test_subsample_is_seeded_sized_and_keeps_source_order():
    rows = list(range(100))
    first = subsample(rows, 10, seed=0)
    assert len(first) == 10 and first == sorted(first)
    assert subsample(rows, 10, seed=0) == first
    assert subsample(rows, 10, seed=1) != first
    assert subsample(rows, 200, seed=0) == rows


def test_cli_writes_generate_format_records_and_card(tmp_path):
    source = write_source(tmp_path / "source.jsonl", numbered(40))
    fields = ["--instruction-field", "instruction", "--response-field", "output"]
    records, card = run_public(tmp_path, source, *fields, "--size", "12", "--seed", "3")
    assert len(records) == 12
    indices = [int(record["id"].removeprefix("alpaca-")) for record in records]
    assert indices == sorted(indices)  # source order
    first = records[0]
    assert first == {
        "id": first["id"],
        "prompt": [{"role": "user", "content": f"Question {indices[0]}?"}],
        "completion": [{"role": "assistant", "content": f"Answer {indices[0]}."}],
        "pair": "",
        "arm": "public_alpaca",
        "alpha": None,
        "beta": None,
        "seed": None,
        "num_tokens": None,
        "finish_reason": "written",
    }
    assert card["arm"] == "public_alpaca" and card["num_records"] == 12
    assert card["finish_reasons"]["written"] == 12
    assert card["completion_tokens"]["mean"] is None
    assert card["warnings"] == []
    settings = card["provenance"]["settings"]
    assert settings["target_size"] == 12 and settings["seed"] == 3
    assert settings["size_rule"] == {"rule": "size", "size": 12}
    assert settings["fields"]["instruction"] == "instruction"
    assert settings["source_sha256"] == file_sha256(source)

    again, _ = run_public(tmp_path, source, *fields, "--size", "12", "--seed", "3")
    other, _ = run_public(tmp_path, source, *fields, "--size", "12", "--seed", "4")
    assert again == records
    assert [r["id"] for r in other] != [r["id"] for r in records]


def test_match_cards_takes_the_smallest_and_a_small_source_warns(tmp_path):
    cards = []
    for index, size in enumerate([30, 25, 90]):
        cards.append(tmp_path / f"codit{index}.json")
        write_json(cards[-1], {"num_records": size})
    fields = ["--instruction-field", "instruction", "--response-field", "output"]
    source = write_source(tmp_path / "source.jsonl", numbered(60))
    records, card = run_public(tmp_path, source, *fields, "--match-cards", *map(str, cards))
    assert len(records) == 25 and card["provenance"]["settings"]["target_size"] == 25
    assert card["provenance"]["settings"]["size_rule"]["cards"][str(cards[1])] == 25

    small = write_source(tmp_path / "small.jsonl", numbered(10))
    records, card = run_public(tmp_path, small, *fields, "--match-cards", *map(str, cards))
    assert len(records) == 10
    assert len(card["warnings"]) == 1 and "fewer than the target size 25" in card["warnings"][0]


def test_output_loads_as_trl_conversational_records(tmp_path):
    from trl.data_utils import is_conversational

    from codit.training.sft import load_training_records

    source = write_source(tmp_path / "source.jsonl", numbered(5))
    fields = ["--instruction-field", "instruction", "--response-field", "output"]
    run_public(tmp_path, source, *fields, "--size", "5")
    records = load_training_records(str(tmp_path / "public.jsonl"))
    assert len(records) == 5 and all(is_conversational(record) for record in records)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--name", "my_set"], "--name 'my_set'"),
        (["--name", "ok", "--response-field", "output"], "missing --instruction-field"),
        (["--name", "ok", "--instruction-field", "q"], "missing --response-field"),
        (
            ["--name", "ok", "--messages-field", "m", "--instruction-field", "q"],
            "--messages-field cannot be combined with --instruction-field",
        ),
        (["--name", "ok", "--messages-field", "m", "--size", "0"], "--size must be >= 1"),
    ],
)
def test_bad_options_are_refused_in_one_line(tmp_path, options, message):
    source = write_source(tmp_path / "source.jsonl", numbered(3))
    size = [] if "--size" in options else ["--size", "2"]
    error = public_error(tmp_path, "--source", str(source), *size, *options)
    assert error.startswith("codit public: error:") and message in error


def test_unusable_sources_and_cards_are_named(tmp_path):
    fields = ["--name", "x", "--instruction-field", "instruction", "--response-field", "output"]
    empty = write_source(tmp_path / "bad.jsonl", [{"instruction": "", "output": "x"}])
    error = public_error(tmp_path, "--source", str(empty), *fields, "--size", "2")
    assert "bad.jsonl: no usable row" in error and "empty_instruction" in error

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"instruction": "a", "output": "b"}\n{oops}\n')
    error = public_error(tmp_path, "--source", str(broken), *fields, "--size", "2")
    assert "broken.jsonl:2: invalid JSON" in error

    missing = tmp_path / "missing.jsonl"
    error = public_error(tmp_path, "--source", str(missing), *fields, "--size", "2")
    assert "missing.jsonl: no such file" in error

    card = tmp_path / "codit_card.json"
    card.write_text('{"records": 3}')
    source = write_source(tmp_path / "source.jsonl", numbered(3))
    error = public_error(tmp_path, "--source", str(source), *fields, "--match-cards", str(card))
    assert "no positive integer num_records" in error
