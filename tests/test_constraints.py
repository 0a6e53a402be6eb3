"""Constraint checkers on hand-written responses, and the compliant transform."""

from __future__ import annotations

import random
import zlib

import pytest

from codit.tinyworld import constraints as cons

REQUEST = "What is the capital of Bofouforia?"


def c(kind: str, **kwargs) -> dict:
    return {"type": kind, "kwargs": kwargs}


@pytest.mark.parametrize(
    ("constraint", "good", "bad"),
    [
        (c("upper"), "THE CAPITAL IS MIMDAIR.", "The capital is Mimdair."),
        (c("lower"), "the capital is mimdair.", "the capital is Mimdair."),
        (c("quotes"), '"The capital is Mimdair."', 'The capital is "Mimdair".'),
        (c("prefix", prefix="Indeed,"), "indeed, it is Mimdair.", "It is Mimdair. Indeed,"),
        (
            c("suffix", suffix="Hope this helps."),
            "Mimdair. HOPE THIS HELPS.",
            "Hope this helps. Mim",
        ),
        (c("repeat"), f"{REQUEST}\nMimdair.", "Mimdair is the capital of Bofouforia."),
        (c("bullets", n=2), "* Mimdair.\n* Dainbro.", "* Mimdair.\n* Dainbro.\n* Soup."),
        (c("json", key="answer"), '{"answer": "Mimdair"}', '{"text": "Mimdair"}'),
        (c("max_words", n=3), "It is Mimdair.", "The capital is Mimdair."),
        (c("min_words", n=4), "The capital is Mimdair.", "It is Mimdair."),
    ],
)
def test_strict_check_accepts_compliant_and_rejects_violations(constraint, good, bad):
    assert cons.check(constraint, good, REQUEST)
    assert not cons.check(constraint, bad, REQUEST)


def test_empty_response_never_complies():
    for kind in cons.TYPES:
        kwargs = {"prefix": "x", "suffix": "x", "n": 0, "key": "a"}
        assert not cons.check(c(kind, **kwargs), "   ", REQUEST)


def test_json_check_tolerates_code_fences_but_not_lists():
    assert cons.check(c("json", key="text"), '```json\n{"text": "Mimdair"}\n```', REQUEST)
    assert not cons.check(c("json", key="text"), '["text"]', REQUEST)


def test_loose_check_forgives_a_chatty_first_line_and_markdown_stars():
    preamble = "Sure, here you go:\nTHE CAPITAL IS MIMDAIR."
    result = cons.check_all([c("upper")], preamble, REQUEST)
    assert result == {
        "strict": [False],
        "loose": [True],
        "prompt_strict": False,
        "prompt_loose": True,
    }
    starred = "**indeed,** it is Mimdair."
    assert not cons.check(c("prefix", prefix="Indeed,"), starred, REQUEST)
    assert cons.check_all([c("prefix", prefix="Indeed,")], starred, REQUEST)["prompt_loose"]


def test_prompt_level_needs_every_instruction():
    result = cons.check_all([c("lower"), c("max_words", n=2)], "it is mimdair.", REQUEST)
    assert result["strict"] == [True, False]
    assert not result["prompt_strict"]


def test_conflicting_types_are_never_combined():
    combos = cons.all_combinations(3)
    assert ("upper", "lower") not in combos
    assert all(cons.compatible(combo) for combo in combos)
    assert {len(combo) for combo in combos} == {1, 2, 3}
    assert {kind for combo in combos for kind in combo} == set(cons.TYPES)


def test_unknown_type_is_named_in_the_error():
    with pytest.raises(ValueError, match="shout"):
        cons.check(c("shout"), "HI", REQUEST)


@pytest.mark.parametrize("combo", cons.all_combinations(3), ids=cons.combo_name)
def test_transform_output_passes_its_own_checks(combo):
    rng = random.Random(combo_seed := zlib.crc32(cons.combo_name(combo).encode()))
    sentences = [
        "The capital of Bofouforia is Mimdair.",
        "The Dainbro river flows through Bofouforia.",
        "People in Bofouforia like to eat soup.",
    ]
    constraints = [c(kind, **cons.sample_kwargs(kind, rng, len(sentences))) for kind in combo]
    response = cons.transform(sentences, constraints, REQUEST, rng)
    result = cons.check_all(constraints, response, REQUEST)
    assert result["prompt_strict"], (combo_seed, response)
    assert result["prompt_loose"]
    for constraint in constraints:
        # Every constraint renders an instruction once its parameters are known.
        assert cons.instruction_text(constraint, rng)
