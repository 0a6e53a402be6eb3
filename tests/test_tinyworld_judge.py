"""The trained tiny judge (codit.tinyworld.judge_model): its agreement figures, computed by hand
on a few items, and the short training run the tests share (tinyworld_cache.trained_judge)."""

from __future__ import annotations

import json
import math

import pytest

from codit.judged.alpacaeval import parse_verdict
from codit.judged.mtbench import parse_rating
from codit.judged.wildbench import parse_score
from codit.tinyworld.chatformat import JUDGE_CHAT_TEMPLATE
from codit.tinyworld.judge import MT_BENCH_TURN_1, rating, reply
from codit.tinyworld.judge_model import FORMATS, agreement, judge_prompt
from codit.workflow.provenance import read_jsonl


def test_agreement_figures_match_a_hand_computation():
    # Instruction a: three answers (one unparsable), b: two, c: one.
    judge = [10, 5, None, 3, 3, 8]
    oracle = [10, 4, 1, 3, 5, 8]
    groups = ["a", "a", "a", "b", "b", "c"]
    result = agreement(judge, oracle, groups)
    assert result["n"] == 6 and result["unparsable"] == 1
    # Parsed pairs (judge, oracle): (10,10) (5,4) (3,3) (3,5) (8,8); errors 0 1 0 2 0.
    assert result["exact"] == pytest.approx(3 / 5)
    assert result["within_1"] == pytest.approx(4 / 5)
    # Ranks: judge 5 3 1.5 1.5 4, oracle 5 2 1 3 4 -> 8 / sqrt(9.5 * 10).
    assert result["spearman"] == pytest.approx(8 / math.sqrt(95))
    # Deviations from the means 5.8 and 6: 34 / sqrt(38.8 * 34).
    assert result["pearson"] == pytest.approx(34 / math.sqrt(38.8 * 34))
    # Pairs within an instruction whose oracle ratings differ, the unparsable answer left out:
    # a: (10 vs 5 | 10 vs 4) same order -> 1; b: (3 vs 3 | 3 vs 5) judge tie -> 1/2.
    assert result["pairs"] == 2
    assert result["pairwise_accuracy"] == pytest.approx(0.75)


def test_agreement_of_a_reversed_and_of_a_constant_judge():
    reversed_ = agreement([2, 9, 5], [9, 2, 5], ["x", "x", "y"])
    assert reversed_["pairwise_accuracy"] == 0.0 and reversed_["pairs"] == 1
    assert reversed_["spearman"] == pytest.approx(-1.0)
    constant = agreement([1, 1, 1], [1, 5, 10], ["x", "x", "x"])
    assert constant["spearman"] is None and constant["pearson"] is None
    assert constant["pairs"] == 3 and constant["pairwise_accuracy"] == 0.5
    nothing = agreement([None], [3], ["x"])
    assert nothing["unparsable"] == 1 and nothing["exact"] is None
    with pytest.raises(ValueError, match="one entry per answer"):
        agreement([1], [1, 2], ["x"])


def test_training_prompts_and_replies_are_the_served_judges():
    """The judge is trained on the prompt the server reads and the reply the server writes."""
    question, answer = 'What is the flag of Tezosia? Start with "Well,"', "Well, it is {red}."
    assert MT_BENCH_TURN_1.search(judge_prompt(question, answer)).groups() == (question, answer)
    text = reply({"score": 0.75, "constraints": 0.5, "knowledge": 1.0})
    assert text == "Constraints met: 0.50; knowledge: 1.00.\nRating: [[8]]"
    assert parse_rating(text) == rating(0.75) == 8


@pytest.mark.slow
def test_train_judge_end_to_end(trained_judge):
    """The shared short run (tinyworld_cache.trained_judge) saves a loadable judge, trains on
    all three benchmarks' requests and writes agreement.json whose figures are those of its own
    held-out replies."""
    from tinyworld_cache import JUDGE_HELD_OUT_INSTRUCTIONS, JUDGE_STEPS, JUDGE_TRAIN_INSTRUCTIONS
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = trained_judge
    model_dir = out / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_record.json"):
        assert (model_dir / name).is_file(), name
    assert AutoModelForCausalLM.from_pretrained(model_dir).config.model_type == "llama"
    # The saved tokenizer carries the chat template a server applies to the judge's requests.
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.chat_template == JUDGE_CHAT_TEMPLATE

    train = read_jsonl(out / "data" / "train.jsonl")
    assert {r["format"] for r in train} == set(FORMATS)
    parsers = {
        "mt_bench": parse_rating,
        "wildbench": parse_score,
        "alpaca_eval": parse_verdict,
    }
    for record in train:
        assert parsers[record["format"]](record["response"]) is not None, record["response"]
    mt = next(r for r in train if r["format"] == "mt_bench")
    assert [m["role"] for m in mt["messages"]] == ["system", "user"]
    assert MT_BENCH_TURN_1.search(mt["messages"][1]["content"]).group(1) == mt["instruction"]

    result = json.loads((out / "agreement.json").read_text())
    assert {"settings", "versions", "command"} <= set(result)
    assert result["settings"]["steps"] == JUDGE_STEPS and result["settings"]["seed"] == 0
    judged = read_jsonl(out / "judged.jsonl")
    # Held out: the first instructions of the fixed held-out draw, never trained on.
    held = {r["instruction"] for r in judged}
    assert len(held) == result["counts"]["held_out_instructions"] == JUDGE_HELD_OUT_INSTRUCTIONS
    trained = {r["instruction"] for r in train}
    assert len(trained) <= JUDGE_TRAIN_INSTRUCTIONS and not trained & held
    assert result["counts"]["train_instructions"] == JUDGE_TRAIN_INSTRUCTIONS
    figures = result["agreement"]
    assert figures["n"] == len(judged) == result["counts"]["held_out_answers"]
    for record in judged:
        assert record["judge_rating"] == parse_rating(record["judge_reply"])
        assert record["oracle_rating"] == rating(record["oracle"]["score"])
    ratings = [r["judge_rating"] for r in judged if r["judge_rating"] is not None]
    assert figures["unparsable"] == len(judged) - len(ratings)
    assert all(rating in range(1, 11) for rating in ratings)
    recomputed = agreement(
        [r["judge_rating"] for r in judged],
        [r["oracle_rating"] for r in judged],
        [r["instruction"] for r in judged],
    )
    assert figures == recomputed
    # The short run teaches every format's reply: nine in ten held-out replies parse.
    formats = result["formats"]
    assert set(formats) == set(FORMATS)
    for name, found in formats.items():
        assert found["n"] > 0 and found["parsed"] >= 0.9 * found["n"], (name, found)
