"""The tiny world's AlpacaEval 2: a bench folder in codit.judged.alpacaeval's layout that the world
can judge.

`write_tiny_bench(folder, items, reference_outputs)` writes, from the held-out benchmark items
(the tiny IFEval's, corpus.build_splits' `ifeval`):

- `reference_outputs.json`: TINY_ITEMS instructions (`tiny_items`: spread evenly over the items
  after the tiny MT-Bench's first mtbench.QUESTIONS, leaving out the tiny WildBench's
  codit.tinyworld.wildbench.tiny_items, so the three judged benchmarks share no instruction), each
  with the reference output, the tiny instruct model's answer (`reference_answers`: world
  models/llama-instruct, greedy, CPU float32, at most MAX_NEW_TOKENS new tokens), and, under
  `tinyworld`, its oracle item (codit.tinyworld.oracle), which the world's judge server reads;
- `alpaca_eval_clf.txt`: our own pairwise template (TEMPLATE) with alpaca_eval's ChatML
  message markers and placeholders {instruction}, {output_1}, {output_2}; the judge answers
  "m" (output_1 better) or "M" (output_2), and TINY_PROMPT reads the three back out.

There is no `df_gamed.csv` or `instruction_difficulty.csv`: the length-controlled win rate runs
alpaca_eval's GLM without the difficulty term and the regularisation toward the gamed baselines
(`length_controlled_minimal`, codit.judged.alpacaeval_metrics.GLM_NOTES says so in the scores).

`write_world_bench(world)` does it all for a built world with a trained llama-instruct: the
held-out items rebuilt from the data card, the reference answers, the folder `world/FOLDER`,
where the judge server (codit.tinyworld.judge) looks for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codit.tinyworld.mtbench import QUESTIONS, oracle_item
from codit.workflow.provenance import staged_dir, write_json

FOLDER = "alpaca_eval"  # the bench folder's name under the world
# codit.judged.alpacaeval's file names and output identifiers, not imported from it so that the
# judge server, which reads them, starts without its numpy and scipy (tests check they agree).
REFERENCE_FILE, TEMPLATE_FILE = "reference_outputs.json", "alpaca_eval_clf.txt"
FIRST, SECOND = "m", "M"
TINY_ITEMS = 32
REFERENCE_MODEL = "llama-instruct"
GENERATOR = f"tinyworld-{REFERENCE_MODEL}"
MAX_NEW_TOKENS = 128  # as the judge model's answers (judge_model.MAX_ANSWER_TOKENS)
TEMPLATE = """<|im_start|>system
You compare two answers to one instruction of the tiny world and name the better one.
<|im_end|>
<|im_start|>user
The better answer meets more of the instruction's format constraints and states the world's facts
correctly.

[Instruction]
{instruction}
[End of Instruction]

[Answer m]
{output_1}
[End of Answer m]

[Answer M]
{output_2}
[End of Answer M]

Reply with the identifier of the better answer and nothing else: m or M.
<|im_end|>
"""
# What a judge of the tiny world reads back from a filled TEMPLATE: instruction, output_1,
# output_2.
TINY_PROMPT = re.compile(
    r"\[Instruction\]\n(.*?)\n\[End of Instruction\]\n\n\[Answer m\]\n(.*?)\n\[End of Answer m\]"
    r"\n\n\[Answer M\]\n(.*?)\n\[End of Answer M\]",
    re.S,
)


def tiny_items(items: Sequence[dict[str, Any]], count: int = TINY_ITEMS) -> list[dict[str, Any]]:
    """`count` items spread evenly over those after the tiny MT-Bench's that the tiny WildBench
    does not use (single, paired and triple constraints alike)."""
    from codit.tinyworld.wildbench import tiny_items as wildbench_items

    taken = {item["instruction"] for item in wildbench_items(items)}
    pool = [item for item in items[QUESTIONS:] if item["instruction"] not in taken]
    if len(pool) < count:
        raise ValueError(f"tiny AlpacaEval: {len(pool)} unused held-out items, need {count}")
    return [pool[i * len(pool) // count] for i in range(count)]


def reference_answers(
    world_dir: str | Path, items: Sequence[dict[str, Any]], max_new_tokens: int = MAX_NEW_TOKENS
) -> dict[str, str]:
    """{instruction: the world's llama-instruct's greedy answer} (CPU float32, batched with left
    padding: the same answers on every run)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codit.tinyworld.models import chat_prompt, generate

    world = Path(world_dir)
    path = world / "models" / REFERENCE_MODEL
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no model (build it with `codit tinyworld train`)")
    tokenizer = AutoTokenizer.from_pretrained(world / "tokenizer")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    prompts = [chat_prompt(tokenizer, item["instruction"]) for item in items]
    texts = generate(model, tokenizer, prompts, max_new_tokens, do_sample=False)
    return {item["instruction"]: text for item, text in zip(items, texts, strict=True)}


def write_tiny_bench(
    folder: str | Path,
    items: Sequence[dict[str, Any]],
    reference_outputs: Mapping[str, str],
    count: int = TINY_ITEMS,
) -> None:
    """The bench folder for `tiny_items(items, count)`, with `reference_outputs` ({instruction:
    output}, e.g. `reference_answers`') as the reference."""
    chosen = tiny_items(items, count)
    missing = [i["instruction"] for i in chosen if i["instruction"] not in reference_outputs]
    if missing:
        raise ValueError(f"tiny AlpacaEval: no reference output for {missing[0][:80]!r}")
    references = [
        {
            "instruction": item["instruction"],
            "output": reference_outputs[item["instruction"]],
            "generator": GENERATOR,
            "dataset": "tinyworld",
            "tinyworld": oracle_item(item, item["constraints"]),
        }
        for item in chosen
    ]
    folder = Path(folder)
    write_json(folder / REFERENCE_FILE, references)
    (folder / TEMPLATE_FILE).write_text(TEMPLATE, encoding="utf-8")


def held_out_items(world_dir: str | Path) -> list[dict[str, Any]]:
    """The world's held-out benchmark items (the tiny IFEval's), rebuilt from its data card."""
    from codit.tinyworld.corpus import built_world_splits

    return built_world_splits(world_dir)["ifeval"]


def write_world_bench(world_dir: str | Path, count: int = TINY_ITEMS) -> Path:
    """`world_dir/FOLDER` for a built world whose llama-instruct is trained; returns it."""
    items = held_out_items(world_dir)
    answers = reference_answers(world_dir, tiny_items(items, count))
    folder = Path(world_dir) / FOLDER
    with staged_dir(folder) as staging:  # a killed job leaves the old folder or none
        write_tiny_bench(staging, items, answers, count)
    return folder
