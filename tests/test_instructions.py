"""`codit instructions`: the pool every generation job answers."""

import json

import pytest

from codit.cli import main
from codit.data.instructions import DROP_REASONS, first_user_turn, normalise_instructions
from codit.workflow.provenance import read_jsonl


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
        "empty": 1,
        "missing_field": 1,
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


def run_instructions(tmp_path, lines, *options):
    """`codit instructions` on a source of these JSON lines; returns (pool, card)."""
    source = tmp_path / "source.jsonl"
    source.write_text("".join(line + "\n" for line in lines))
    out, card = tmp_path / "pool.jsonl", tmp_path / "card.json"
    argv = ["instructions", "--source", str(source), "--out", str(out), "--card", str(card)]
    main(argv + list(options))
    return read_jsonl(out), json.loads(card.read_text())


def test_card_counts_every_bad_instruction_record_by_reason(tmp_path):
    records = [
        '{"id": 1, "instruction": "Keep me.", "lang": "en"}',
        '["not", "an", "object"]',  # not_an_object
        '"a bare string"',  # not_an_object
        "42",  # not_an_object
        '{"id": 2, "instruction": "Filtered.", "lang": "de"}',  # filtered_by_keep_if
        '{"id": 3, "lang": "en"}',  # missing_field
        '{"id": 4, "instruction": null, "lang": "en"}',  # missing_field
        '{"id": 5, "instruction": 7, "lang": "en"}',  # not_a_string
        '{"id": 6, "instruction": ["a", "list"], "lang": "en"}',  # not_a_string
        '{"id": 7, "instruction": {"text": "nested"}, "lang": "en"}',  # not_a_string
        '{"id": 8, "instruction": " \\t\\n ", "lang": "en"}',  # empty
        '{"id": 9, "instruction": "", "lang": "en"}',  # empty
        '{"id": 10, "instruction": "This one is far too long.", "lang": "en"}',  # too_long
        '{"id": 11, "instruction": " Keep me. ", "lang": "en"}',  # duplicate_text
        '{"id": 1, "instruction": "Same id.", "lang": "en"}',  # duplicate_id
        '{"id": 12, "instruction": "Last.", "lang": "en"}',
    ]
    options = ["--id-field", "id", "--max-chars", "20", "--keep-if", '{"lang": "en"}']
    pool, card = run_instructions(tmp_path, records, *options)
    assert pool == [{"id": "1", "instruction": "Keep me."}, {"id": "12", "instruction": "Last."}]
    assert card["num_instructions"] == 2
    assert card["dropped"] == {
        "not_an_object": 3,
        "filtered_by_keep_if": 1,
        "missing_field": 2,
        "not_a_string": 3,
        "empty": 2,
        "too_long": 1,
        "duplicate_text": 1,
        "duplicate_id": 1,
    }
    assert set(card["dropped"]) <= set(DROP_REASONS)


def test_card_counts_malformed_conversations(tmp_path):
    def chat(conversation):
        return json.dumps({"chat": conversation})

    records = [
        chat([{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"}]),
        json.dumps({"other": 1}),  # missing_field
        chat(None),  # missing_field
        chat("Q as a string"),  # malformed_conversation
        chat({"role": "user", "content": "Q"}),  # malformed_conversation: not a list
        chat(["Q", "A"]),  # malformed_conversation: turns are not objects
        chat([{"content": "Q"}]),  # malformed_conversation: turn without a role
        chat([{"role": "assistant", "content": "A"}]),  # malformed_conversation: no user turn
        chat([{"role": "user", "content": [{"type": "text", "text": "Q"}]}]),  # content parts
        chat([{"role": "user"}]),  # malformed_conversation: user turn without content
        chat([{"role": "user", "content": "  "}]),  # empty
        chat([{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}]),
    ]
    pool, card = run_instructions(tmp_path, records, "--conversation-field", "chat")
    assert [item["instruction"] for item in pool] == ["Q1", "Q2"]
    assert card["dropped"] == {"missing_field": 2, "malformed_conversation": 7, "empty": 1}


def instructions_error(tmp_path, content: bytes, *options) -> str:
    source = tmp_path / "source.jsonl"
    source.write_bytes(content)
    out = tmp_path / "pool.jsonl"
    argv = ["instructions", "--source", str(source), "--out", str(out)]
    with pytest.raises(SystemExit) as error:
        main(argv + ["--card", str(tmp_path / "card.json"), *options])
    assert not out.exists()
    return str(error.value.code)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "source.jsonl: no records (the file is empty or has only blank lines)"),
        (b"\n \n\t\n", "source.jsonl: no records"),
        (
            b'{"instruction": "ok"}\n{"instruction": "caf\xe9"}\n',
            "source.jsonl:2: not UTF-8 text (byte 0xe9 at byte 21 of the line)",
        ),
        (b'{"instruction": "ok"}\n\n{"instruction": ok}\n', "source.jsonl:3: invalid JSON"),
        (b'[1]\n"x"\n', "no usable instruction left (dropped: {'not_an_object': 2})"),
    ],
)
def test_unreadable_source_is_refused_naming_file_and_line(tmp_path, content, message):
    assert message in instructions_error(tmp_path, content)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--keep-if", "[1]"], "--keep-if must be a JSON object"),
        (["--max-chars", "0"], "--max-chars must be >= 1"),
        (["--limit", "0"], "--limit must be >= 1"),
    ],
)
def test_bad_options_are_refused(tmp_path, options, message):
    assert message in instructions_error(tmp_path, b'{"instruction": "ok"}\n', *options)


def test_read_jsonl_skips_a_byte_order_mark_and_can_require_objects(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\n[2]\n')
    assert read_jsonl(path) == [{"a": 1}, [2]]
    with pytest.raises(ValueError, match=r"bom\.jsonl:3: expected a JSON object, got an array"):
        read_jsonl(path, objects_only=True)
