"""The tiny world's WildBench: a bench folder in codit.judged.wildbench's layout whose tasks are
held-out tiny-world instructions and whose checklists are their constraints and facts.

`write_tiny_bench(folder, items)` writes TINY_TASKS tasks (`tiny_items`: spread evenly over the
held-out items after the tiny MT-Bench's), odd ones with a history (the plain request and a
short assistant turn first), the five leaderboard categories taking turns as the tasks' tags,
and our own score template (TINY_TEMPLATE) with WildBench's four placeholders; each task also
carries its `tinyworld` item, which the world's judge (codit.tinyworld.judge) scores with the
oracle.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codit.judged.wildbench import BENCHMARK, TASKS_FILE, TEMPLATE_FILE
from codit.tinyworld.constraints import PHRASINGS
from codit.workflow.provenance import write_jsonl

# Tiny tasks take held-out benchmark items after the tiny MT-Bench's first ones.
TINY_TASKS = 20
TINY_SKIP = 16  # codit.tinyworld.mtbench.QUESTIONS
# A tiny task has no real task type: the five categories take turns (one tag of each), so every
# weight of the macro applies.
TINY_TAGS = ("Information seeking", "Creative Writing", "Reasoning", "Math", "Coding & Debugging")
TINY_HISTORY = "Sure. Tell me how you would like the answer written."
TINY_TEMPLATE = """You grade an answer in the tiny world against a checklist.

## History
<|begin_of_history|>
{$history}
<|end_of_history|>

## Current User Query
<|begin_of_query|>
{$user_query}
<|end_of_query|>

## AI Response
<|begin_of_response|>
{$model_output}
<|end_of_response|>

## Checklist
<|begin_of_checklist|>
{$checklist}
<|end_of_checklist|>

Reply with one JSON object: {"strengths": "...", "weaknesses": "...", "score": "N"}, N from 1 to 10.
"""
# What a judge of the tiny world reads back from a filled tiny template.
TINY_PROMPT = re.compile(
    r"<\|begin_of_query\|>\n(.*?)\n<\|end_of_query\|>.*?"
    r"<\|begin_of_response\|>\n(.*?)\n<\|end_of_response\|>",
    re.S,
)


def checklist_entry(constraint: dict[str, Any]) -> str:
    """A checklist question for one verifiable constraint (its first phrasing)."""
    wording = PHRASINGS[constraint["type"]][0].format(**constraint["kwargs"])
    return f"Does the response follow the instruction: {wording}"


def tiny_checklist(item: dict[str, Any]) -> list[str]:
    """The checklist of a held-out item: its constraints, then the facts it asks for."""
    entries = [checklist_entry(constraint) for constraint in item["constraints"]]
    if item["answer"] is not None:
        entries.append(f"Does the response give {item['answer']} as the answer?")
    else:
        entries.append(
            f"Does the response state facts about {item['subject']} and no facts of others?"
        )
    return entries


def tiny_task(index: int, item: dict[str, Any]) -> dict[str, Any]:
    """Task `index` of the tiny bench: odd tasks have a history (the plain request first)."""
    messages = [{"role": "user", "content": item["instruction"]}]
    if index % 2:
        messages = [
            {"role": "user", "content": item["request"]},
            {"role": "assistant", "content": TINY_HISTORY},
            *messages,
        ]
    return {
        "id": f"tw-wb-{index}",
        "session_id": f"tw-wb-{index}",
        "conversation_input": messages,
        "checklist": tiny_checklist(item),
        "primary_tag": TINY_TAGS[index % len(TINY_TAGS)],
        "secondary_tags": [],
        # What the world's judge needs to score an answer (codit.tinyworld.oracle).
        "tinyworld": {
            "instruction": item["instruction"],
            "constraints": item["constraints"],
            "request": item["request"],
            "subject": item["subject"],
            "answer": item["answer"],
        },
    }


def tiny_items(
    items: Sequence[dict[str, Any]], count: int = TINY_TASKS, skip: int = TINY_SKIP
) -> list[dict[str, Any]]:
    """`count` items spread evenly over `items[skip:]` (single, paired and triple constraints)."""
    pool = list(items[skip:])
    if len(pool) < count:
        raise ValueError(f"{BENCHMARK}: {len(pool)} held-out items after {skip}, need {count}")
    return [pool[i * len(pool) // count] for i in range(count)]


def write_tiny_bench(
    folder: Path, items: Sequence[dict[str, Any]], count: int = TINY_TASKS, skip: int = TINY_SKIP
) -> None:
    """The tiny world's bench folder from its held-out benchmark items (the tiny IFEval's)."""
    tasks = [tiny_task(i, item) for i, item in enumerate(tiny_items(items, count, skip))]
    write_jsonl(Path(folder) / TASKS_FILE, tasks)
    (Path(folder) / TEMPLATE_FILE).write_text(TINY_TEMPLATE, encoding="utf-8")
