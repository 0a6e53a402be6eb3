"""The trained tiny judge (codit.tinyworld.judge_model): its agreement figures, computed by hand
on a few items, and a short end-to-end training run on the shared tiny world."""

from __future__ import annotations

import json
import math

import pytest

from codit.judged.mtbench import parse_rating
from codit.tinyworld.judge import MT_BENCH_TURN_1, rating, reply
from codit.tinyworld.judge_model import agreement, judge_prompt
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
def test_train_judge_end_to_end(tinyworld_build, tmp_path):
    """A short run trains and saves a loadable judge and writes agreement.json whose figures are
    those of its own held-out replies."""
    from transformers import AutoModelForCausalLM

    from codit.cli import main

    world = tinyworld_build / "resources" / "tinyworld"
    out = tmp_path / "judge"
    main(["tinyworld", "train-judge", "--world", str(world), "--out", str(out), "--steps", "80",
          "--max-train-instructions", "150", "--threads", "1"])  # fmt: skip
    model_dir = out / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_record.json"):
        assert (model_dir / name).is_file(), name
    assert AutoModelForCausalLM.from_pretrained(model_dir).config.model_type == "llama"
    train = read_jsonl(out / "data" / "train.jsonl")
    assert all(parse_rating(r["response"]) in range(1, 11) for r in train)

    result = json.loads((out / "agreement.json").read_text())
    assert {"settings", "versions", "command"} <= set(result)
    assert result["settings"]["steps"] == 80 and result["settings"]["seed"] == 0
    judged = read_jsonl(out / "judged.jsonl")
    # Held out: 20% of the 512-instruction pool and the 16 MT-Bench questions, never trained on.
    held = {r["instruction"] for r in judged}
    assert len(held) == result["counts"]["held_out_instructions"] == round(0.2 * 512) + 16
    trained = {MT_BENCH_TURN_1.search(r["instruction"]).group(1) for r in train}
    assert len(trained) == 150 and not trained & held
    figures = result["agreement"]
    assert figures["n"] == len(judged) == result["counts"]["held_out_answers"]
    for record in judged:
        assert record["judge_rating"] == parse_rating(record["judge_reply"])
        assert record["oracle_rating"] == rating(record["oracle"]["score"])
    ratings = [r["judge_rating"] for r in judged if r["judge_rating"] is not None]
    assert figures["unparsable"] == len(judged) - len(ratings)
    assert figures["unparsable"] <= 0.1 * len(judged)  # 80 steps teach the reply's format
    assert all(rating in range(1, 11) for rating in ratings)
    recomputed = agreement(
        [r["judge_rating"] for r in judged],
        [r["oracle_rating"] for r in judged],
        [r["instruction"] for r in judged],
    )
    assert figures == recomputed
    assert set(result["by_set"]) == {"pool", "mt_bench"}
    assert result["by_set"]["mt_bench"]["n"] + result["by_set"]["pool"]["n"] == figures["n"]
