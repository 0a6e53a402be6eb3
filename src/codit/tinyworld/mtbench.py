"""The tiny world's MT-Bench: a bench folder in FastChat's layout that the world can grade.

`write_bench(folder, items)` writes, from held-out benchmark instructions (the tiny IFEval's):

- `question.jsonl`: FastChat's fields ({question_id, category, turns}); turn 1 is the
  instruction, turn 2 asks for the first answer again under one more format constraint
  (capitals, or lowercase). Category `extraction`, which FastChat answers greedily. Each record
  also keeps, under `tinyworld`, the oracle items of both turns (codit.tinyworld.oracle);
- `judge_prompts.jsonl`: our own prompts under FastChat's four single-answer names and fields
  (a tiny world cannot read FastChat's English instructions to a judge; the prompt choice, the
  rating format and the means are FastChat's, codit.judged.mtbench).

The world's judge server (codit.tinyworld.judge) grades turn 1 against the first item and
turn 2, which shows the whole conversation, against the second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codit.workflow.provenance import write_jsonl

QUESTIONS = 16
CATEGORY = "extraction"
FOLLOW_UPS = [
    ({"type": "upper", "kwargs": {}}, "Now write your answer again in capital letters only."),
    ({"type": "lower", "kwargs": {}}, "Now write your answer again in lowercase letters only."),
]
SYSTEM = "You grade answers in the tiny world. End with: Rating: [[N]], N from 1 to 10."
SINGLE = (
    "[Question]\n{question}\n\n[The Start of Assistant's Answer]\n{answer}\n"
    "[The End of Assistant's Answer]"
)
MULTI_TURN = (
    "<|The Start of Assistant A's Conversation with User|>\n\n### User:\n{question_1}\n\n"
    "### Assistant A:\n{answer_1}\n\n### User:\n{question_2}\n\n### Assistant A:\n{answer_2}\n\n"
    "<|The End of Assistant A's Conversation with User|>"
)
REFERENCE = "[Reference]\n{ref_answer_1}\n\n"
REFERENCE_MULTI_TURN = "[Reference]\n{ref_answer_1}\n{ref_answer_2}\n\n"
JUDGE_PROMPTS = [
    {"name": "single-v1", "template": SINGLE},
    {"name": "single-math-v1", "template": REFERENCE + SINGLE},
    {"name": "single-v1-multi-turn", "template": MULTI_TURN},
    {"name": "single-math-v1-multi-turn", "template": REFERENCE_MULTI_TURN + MULTI_TURN},
]


def oracle_item(item: dict[str, Any], constraints: list[dict[str, Any]]) -> dict[str, Any]:
    """What the oracle needs to score an answer to `item` under `constraints`."""
    return {
        "instruction": item["instruction"],
        "constraints": constraints,
        "request": item["request"],
        "subject": item["subject"],
        "answer": item["answer"],
    }


def questions(items: list[dict[str, Any]], count: int = QUESTIONS) -> list[dict[str, Any]]:
    """Two-turn questions from the first `count` items (ids 1..count)."""
    records = []
    for index, item in enumerate(items[:count]):
        follow_up, text = FOLLOW_UPS[index % len(FOLLOW_UPS)]
        records.append(
            {
                "question_id": index + 1,
                "category": CATEGORY,
                "turns": [item["instruction"], text],
                "tinyworld": {
                    "turn_1": oracle_item(item, item["constraints"]),
                    "turn_2": oracle_item(item, [follow_up]),
                },
            }
        )
    return records


def write_bench(folder: Path, items: list[dict[str, Any]]) -> None:
    write_jsonl(folder / "question.jsonl", questions(items))
    prompts = [
        {
            "name": prompt["name"],
            "type": "single",
            "system_prompt": SYSTEM,
            "prompt_template": prompt["template"],
            "output_format": "[[rating]]",
        }
        for prompt in JUDGE_PROMPTS
    ]
    write_jsonl(folder / "judge_prompts.jsonl", prompts)
