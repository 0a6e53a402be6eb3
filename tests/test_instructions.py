"""`codit instructions`: the pool every generation job answers."""

import json

import pytest

from codit.cli import main
from codit.instructions import first_user_turn, normalise_instructions


def test_normalise_keeps_order_and_counts_drops():
    records = [
        {"id": "a", "instruction": "  Say hi.  "},
        {"id": "b", "instruction": "   "},
        {"id": "c", "instruction": "x" * 50},
        {"id": "d", "instruction": "Say hi."},
        {"id": "a", "instruction": "Another one."},
        {"id": "e"},
        {"id": "f", "instruction": "Last."},
    ]
    kept, dropped = normalise_instructions(records, "id", "instruction", None, 20, None)
    assert kept == [{"id": "a", "instruction": "Say hi."}, {"id": "f", "instruction": "Last."}]
    assert dropped == {
        "empty_or_missing": 2,
        "too_long": 1,
        "duplicate_text": 1,
        "duplicate_id": 1,
    }


def test_conversations_keep_if_and_limit():
    records = [
        {"conversation": [{"role": "user", "content": "Q1"}], "language": "English"},
        {"conversation": [{"role": "user", "content": "Q2"}], "language": "German"},
        {
            "conversation": [
                {"role": "system", "content": "S"},
                {"role": "user", "content": "Q3"},
                {"role": "assistant", "content": "A3"},
            ],
            "language": "English",
        },
        {"conversation": [{"role": "user", "content": "Q4"}], "language": "English"},
    ]
    kept, dropped = normalise_instructions(
        records, None, "instruction", "conversation", 100, 2, {"language": "English"}
    )
    assert kept == [
        {"id": "00000000", "instruction": "Q1"},
        {"id": "00000002", "instruction": "Q3"},
    ]
    assert dropped == {"filtered_by_keep_if": 1}
    assert first_user_turn("not a chat") is None


def test_cli_writes_pool_and_card(tmp_path):
    source = tmp_path / "source.jsonl"
    source.write_text('{"id": 1, "instruction": "One"}\n{"id": 2, "instruction": "One"}\n')
    out, card = tmp_path / "pool.jsonl", tmp_path / "card.json"
    main(
        [
            "instructions",
            "--source",
            str(source),
            "--id-field",
            "id",
            "--out",
            str(out),
            "--card",
            str(card),
        ]
    )
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"id": "1", "instruction": "One"}
    ]
    written = json.loads(card.read_text())
    assert written["num_instructions"] == 1 and written["dropped"] == {"duplicate_text": 1}
    assert written["versions"]["transformers"] == "5.23.0"


def test_cli_names_the_bad_line(tmp_path):
    source = tmp_path / "source.jsonl"
    source.write_text('{"instruction": "ok"}\n{"instruction": broken}\n')
    with pytest.raises(SystemExit, match=r"source\.jsonl:2: invalid JSON"):
        main(
            [
                "instructions",
                "--source",
                str(source),
                "--out",
                str(tmp_path / "o.jsonl"),
                "--card",
                str(tmp_path / "c.json"),
            ]
        )
