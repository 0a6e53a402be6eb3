"""A trained tiny judge: a tiny-world model taught the judge's verdicts, and its agreement with
the oracle on instructions it never saw.

`codit tinyworld train-judge --world DIR --out OUT` writes

- `OUT/model/`: the judge (save_pretrained, with the world's tokenizer and `train_record.json`);
- `OUT/data/train.jsonl`: its training examples ({format, messages, response, instruction,
  source}: the request a benchmark sends, and the reply the world's judge server writes);
- `OUT/judged.jsonl`: one record per held-out answer: the oracle's rating and the judge's reply
  and rating to MT-Bench's request;
- `OUT/agreement.json`: the agreement figures below, per-format parse and agreement shares
  (`formats`), the settings and the provenance block.

Data. Instructions are the world's instruction pool (instructions/pool.jsonl), its public
instruction set (instructions/public.jsonl, 1,024 rule-written examples) and the tiny MT-Bench's
16 questions (mt_bench/question.jsonl, turn 1: held-out IFEval items). Each is answered by its
gold response (the world's rules: public.jsonl's own, or rebuilt by corpus.build_splits from the
data card's seed and sizes) and by one sample of each of ANSWERERS (llama-instruct, mostly good
answers, and llama-base, mostly poor ones; temperature 1, top-p 1, no top-k, at most 128 new
tokens), so the oracle's scores spread over 0..1; identical answers to one instruction are kept
once. The judge learns the requests of all three judged benchmarks (FORMATS), built by
codit.judged's own modules on the tiny benches' prompts, so that it can be served (`vllm serve`)
as the judge of a real judging job:
- MT-Bench: single-v1's system prompt and turn-1 prompt per answer; the reply is the judge
  server's (judge.reply: the oracle's constraint share and knowledge, then `Rating: [[N]]`,
  N = 1 + round(9 x oracle score));
- WildBench: the tiny template's scoring prompt per answer; the reply is its JSON with the
  rating as the score (judge.wildbench_verdict);
- AlpacaEval: the tiny pairwise template for each ordered pair of answers to one instruction
  whose oracle scores differ; the reply is "m" or "M" (judge.pairwise_verdict).
The system prompt is rendered as a user turn (chatformat.JUDGE_CHAT_TEMPLATE, saved with the
model). Requests longer than the models' 512 positions (many WildBench ones, Best-of-N's
JUDGE_PROMPT) are left out (`fitting`) and counted (`counts.too_long`).

Split by instruction: held out are the 16 MT-Bench questions and a share (HELD_OUT_SHARE) of the
pool drawn by a fixed random stream (independent of --seed, so every seed is measured on the
same instructions); the judge trains on the answers to the rest of the pool and to the public
set.

Model. A full fine-tune of the world's llama-instruct (its config, tokenizer and chat format;
models.train_loop: AdamW, warmup, cosine decay, loss on the reply tokens only), CPU float32,
seeded. Not from scratch: half of the oracle's score is whether the answer states the world's
facts, which only the pre-trained models know, and a ~1M-parameter model cannot learn the world
and the judging within a few CPU minutes. The instruct model rather than the base (not
compared) because it already maps the instructions' constraint wording to the formats they ask
for.

Agreement (`agreement`), on the held-out answers: the judge's reply is generated greedily and
parsed with codit.judged.mtbench.parse_rating (FastChat's); `unparsable` counts replies without a
rating, and the figures below are over the parsed ones:
- spearman, pearson: scipy.stats correlations of judge rating vs oracle rating (None when either
  is constant);
- exact, within_1: the shares with |judge - oracle| = 0 and <= 1;
- pairwise_accuracy over `pairs`: every pair of answers to the same instruction whose oracle
  ratings differ; 1 when the judge orders them the same way, 1/2 when it rates them equal, else 0.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from itertools import combinations, permutations
from pathlib import Path
from typing import Any

from codit.judged.alpacaeval import fill, parse_verdict, template_messages
from codit.judged.mtbench import parse_rating
from codit.judged.wildbench import parse_score, score_prompt
from codit.tinyworld import alpacaeval as tiny_alpacaeval
from codit.tinyworld.chatformat import END_OF_TURN, JUDGE_CHAT_TEMPLATE
from codit.tinyworld.corpus import built_world_splits
from codit.tinyworld.judge import (
    mt_bench_items,
    pairwise_verdict,
    rating,
    reply,
    wildbench_verdict,
)
from codit.tinyworld.models import chat_prompt, generate
from codit.tinyworld.mtbench import SINGLE, SYSTEM
from codit.tinyworld.oracle import Oracle
from codit.tinyworld.wildbench import TINY_TEMPLATE, tiny_task
from codit.workflow.provenance import (
    file_sha256,
    provenance,
    read_jsonl,
    replace_dir,
    write_json,
    write_jsonl,
)

# Samples per instruction, by model of the world: instruct answers are mostly good, base ones
# mostly poor, so together with the gold response the scores cover the whole range.
ANSWERERS = {"llama-instruct": 1, "llama-base": 1}
HELD_OUT_SHARE = 0.2
HELD_OUT_STREAM = "tinyworld-judge-held-out"
MAX_ANSWER_TOKENS = 128
MAX_REPLY_TOKENS = 64  # WildBench's JSON reply is the longest
DEFAULTS = {
    "init": "llama-instruct",
    "steps": 500,
    "batch_size": 16,
    "lr": 1e-3,
    "warmup": 20,
}


def judge_prompt(instruction: str, response: str) -> str:
    """The tiny MT-Bench's turn-1 judge prompt for one answer."""
    return SINGLE.format(question=instruction, answer=response)


# The judge's three formats: the messages each benchmark sends about an answer (codit.judged's
# modules, on the tiny benches' prompts) and the reply the world's judge server writes.
FORMATS = ("mt_bench", "alpaca_eval", "wildbench")


def mt_bench_messages(instruction: str, response: str) -> list[dict[str, str]]:
    """The tiny MT-Bench's turn-1 judge request (single-v1: its system prompt, then the prompt)."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": judge_prompt(instruction, response)},
    ]


def pairwise_messages(instruction: str, first: str, second: str) -> list[dict[str, str]]:
    """The tiny AlpacaEval's request comparing output_1 `first` with output_2 `second`."""
    fields = {"instruction": instruction, "output_1": first, "output_2": second}
    return [
        {**m, "content": fill(m["content"], fields)}
        for m in template_messages(tiny_alpacaeval.TEMPLATE)
    ]


def wildbench_messages(index: int, item: dict[str, Any], response: str) -> list[dict[str, str]]:
    """The tiny WildBench's request scoring `response` to `item` (as its task `index`)."""
    return [
        {"role": "user", "content": score_prompt(TINY_TEMPLATE, tiny_task(index, item), response)}
    ]


def judge_records(
    answers: list[dict[str, Any]], items: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The judge's examples of every format for `answers`: {format, messages, response, source,
    instruction}; AlpacaEval's from each ordered pair of answers to one instruction whose oracle
    scores differ. `items` holds the oracle item of each instruction."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for answer in answers:
        groups.setdefault(answer["instruction"], []).append(answer)
    records = []
    for index, (instruction, group) in enumerate(groups.items()):
        for a in group:
            base = {"instruction": instruction, "source": a["source"]}
            records.append(
                {**base, "format": "mt_bench", "response": reply(a["oracle"]),
                 "messages": mt_bench_messages(instruction, a["response"])}
            )  # fmt: skip
            records.append(
                {**base, "format": "wildbench", "response": wildbench_verdict(a["oracle"]),
                 "messages": wildbench_messages(index, items[instruction], a["response"])}
            )  # fmt: skip
        for a, b in permutations(group, 2):
            first, second = a["oracle"]["score"], b["oracle"]["score"]
            if first != second:
                records.append(
                    {"instruction": instruction, "source": f"{a['source']}/{b['source']}",
                     "format": "alpaca_eval", "response": pairwise_verdict(first, second),
                     "messages": pairwise_messages(instruction, a["response"], b["response"])}
                )  # fmt: skip
    return records


def fitting(records: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """The records whose prompt and reply (and its end of turn) fit the model's positions: a
    longer one would be cut while training and is refused by a served judge."""
    from codit.tinyworld.models import MAX_POSITIONS

    def length(record: dict[str, Any]) -> int:
        prompt = tokenizer.apply_chat_template(
            record["messages"], add_generation_prompt=True, tokenize=False
        )
        text = prompt + record["response"] + END_OF_TURN
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return [record for record in records if length(record) <= MAX_POSITIONS]


def format_agreement(judged: list[dict[str, Any]]) -> dict[str, Any]:
    """Per format, on held-out replies: how many parsed, and how often the verdict is the
    oracle's (MT-Bench and WildBench: rating within one point; AlpacaEval: the better answer)."""
    parsers = {
        "mt_bench": parse_rating,
        "wildbench": parse_score,
        "alpaca_eval": lambda text: {1: "m", 2: "M"}.get(parse_verdict(text)),
    }
    figures = {}
    for name in FORMATS:
        rows = [r for r in judged if r["format"] == name]
        parsed = [(parsers[name](r["judge_reply"]), r["response"]) for r in rows]
        parsed = [(verdict, truth) for verdict, truth in parsed if verdict is not None]
        if name == "alpaca_eval":
            agree = sum(verdict == truth for verdict, truth in parsed)
        else:
            target = {"mt_bench": parse_rating, "wildbench": parse_score}[name]
            agree = sum(abs(verdict - target(truth)) <= 1 for verdict, truth in parsed)
        figures[name] = {
            "n": len(rows),
            "parsed": len(parsed),
            "agree": agree / len(parsed) if parsed else None,
        }
    return figures


def instructions(world: Path) -> dict[str, list[dict[str, Any]]]:
    """Oracle items with their gold responses: {"train": pool + public, "held_out": pool +
    MT-Bench}. Each item carries `set` ("pool", "public" or "mt_bench") and `gold`."""
    oracle = Oracle(world)
    splits = built_world_splits(world)
    gold = {item["instruction"]: item["response"] for item in splits["pool"] + splits["ifeval"]}
    pool = list(oracle.pool.values())
    missing = [item["id"] for item in pool if item["instruction"] not in gold]
    if missing:
        raise ValueError(f"{world}: pool items {missing[:3]} are not the data card's pool")
    pool_items = [{**item, "set": "pool", "gold": gold[item["instruction"]]} for item in pool]
    order = list(range(len(pool_items)))
    random.Random(HELD_OUT_STREAM).shuffle(order)
    held = set(order[: round(HELD_OUT_SHARE * len(order))])
    public = [
        {**item, "set": "public", "gold": item["response"]}
        for item in read_jsonl(world / "instructions" / "public.jsonl", objects_only=True)
    ]
    bench = [
        {**item["turn_1"], "set": "mt_bench", "gold": gold[question]}
        for question, item in mt_bench_items(world).items()
    ]
    return {
        "train": [item for i, item in enumerate(pool_items) if i not in held] + public,
        "held_out": [item for i, item in enumerate(pool_items) if i in held] + bench,
    }


def answers(world: Path, items: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The gold response and the ANSWERERS' samples for `items`, each scored by the oracle."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(world / "tokenizer")
    prompts = [chat_prompt(tokenizer, item["instruction"]) for item in items]
    responses = [[("gold", item["gold"])] for item in items]
    for offset, (name, samples) in enumerate(ANSWERERS.items()):
        path = world / "models" / name
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no model (build it with `codit tinyworld train`)")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        torch.manual_seed(seed * 1000 + offset)
        for _ in range(samples):
            texts = generate(
                model, tokenizer, prompts, MAX_ANSWER_TOKENS,
                do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
            )  # fmt: skip
            for found, text in zip(responses, texts, strict=True):
                found.append((name, text))
    oracle = Oracle(world)
    records = []
    for item, found in zip(items, responses, strict=True):
        seen: set[str] = set()
        for source, response in found:
            if response in seen:
                continue
            seen.add(response)
            result = oracle.score(item, response)
            records.append(
                {
                    "set": item["set"],
                    "instruction": item["instruction"],
                    "source": source,
                    "response": response,
                    "oracle": result,
                    "oracle_rating": rating(result["score"]),
                }
            )
    return records


def agreement(
    judge: Sequence[float | None], oracle: Sequence[int], groups: Sequence[str]
) -> dict[str, Any]:
    """Agreement of judge ratings (None: unparsable) with oracle ratings (module docstring);
    `groups` names each answer's instruction."""
    from scipy.stats import pearsonr, spearmanr

    if not len(judge) == len(oracle) == len(groups):
        raise ValueError("judge, oracle and groups must have one entry per answer")
    kept = [(j, o, g) for j, o, g in zip(judge, oracle, groups, strict=True) if j is not None]
    judged = [j for j, _, _ in kept]
    truth = [o for _, o, _ in kept]
    varied = len(set(judged)) > 1 and len(set(truth)) > 1
    errors = [abs(j - o) for j, o, _ in kept]
    credit, pairs = 0.0, 0
    for (j1, o1, g1), (j2, o2, g2) in combinations(kept, 2):
        if g1 != g2 or o1 == o2:
            continue
        pairs += 1
        credit += 0.5 if j1 == j2 else float((j1 - j2) * (o1 - o2) > 0)
    return {
        "n": len(judge),
        "unparsable": len(judge) - len(kept),
        "spearman": float(spearmanr(judged, truth).statistic) if varied else None,
        "pearson": float(pearsonr(judged, truth).statistic) if varied else None,
        "exact": sum(e == 0 for e in errors) / len(errors) if errors else None,
        "within_1": sum(e <= 1 for e in errors) / len(errors) if errors else None,
        "pairs": pairs,
        "pairwise_accuracy": credit / pairs if pairs else None,
    }


def train_judge(
    world: str | Path,
    out: str | Path,
    seed: int = 0,
    threads: int = 2,
    steps: int | None = None,
    lr: float | None = None,
    max_train_instructions: int | None = None,
    max_held_out_instructions: int | None = None,
) -> dict[str, Any]:
    """Build the data, train the judge, measure it; writes `out` atomically (module docstring).
    `max_train_instructions` keeps the first N training instructions (quick checks); the
    held-out set is the same whatever it is. `max_held_out_instructions` measures on the first
    N held-out instructions only (quick checks: the pool's come first). Returns the agreement
    record."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codit.tinyworld.models import (
        _loss_summary,
        generation_config,
        instruction_examples,
        train_loop,
    )

    world, out = Path(world), Path(out)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    transformers.set_seed(seed)
    settings = {**DEFAULTS, "seed": seed, "threads": threads, "world": str(world)}
    settings |= {key: value for key, value in (("steps", steps), ("lr", lr)) if value is not None}
    settings |= {
        "answerers": ANSWERERS,
        "held_out_share": HELD_OUT_SHARE,
        "max_answer_tokens": MAX_ANSWER_TOKENS,
        "max_reply_tokens": MAX_REPLY_TOKENS,
        "judge_formats": list(FORMATS),
        "max_train_instructions": max_train_instructions,
        "max_held_out_instructions": max_held_out_instructions,
    }
    split = instructions(world)
    if max_train_instructions is not None:
        split["train"] = split["train"][:max_train_instructions]
    if max_held_out_instructions is not None:
        split["held_out"] = split["held_out"][:max_held_out_instructions]
    train_answers = answers(world, split["train"], seed)
    held_answers = answers(world, split["held_out"], seed + 1)
    answers_seconds = time.perf_counter() - wall0

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        data_path = staging / "data" / "train.jsonl"
        tokenizer = AutoTokenizer.from_pretrained(world / "tokenizer")
        tokenizer.chat_template = JUDGE_CHAT_TEMPLATE
        train_items = {item["instruction"]: item for item in split["train"]}
        train_records = judge_records(train_answers, train_items)
        kept = fitting(train_records, tokenizer)
        write_jsonl(data_path, kept)
        examples = instruction_examples(data_path, tokenizer)
        init = world / "models" / settings["init"]
        model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
        train0 = time.perf_counter()
        losses = train_loop(model, examples, tokenizer.pad_token_id, settings, seed)
        train_seconds = time.perf_counter() - train0
        model.generation_config = generation_config(tokenizer)
        model_dir = staging / "model"
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        record = provenance(settings)
        record["loss"] = _loss_summary(losses)
        record["n_examples"] = len(examples)
        write_json(model_dir / "train_record.json", record)

        # Measured on the saved judge, as a server would load it.
        judge = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        held_items = {item["instruction"]: item for item in split["held_out"]}
        all_held = judge_records(held_answers, held_items)
        # MT-Bench's prompts all fit (judged.jsonl keeps one row per held-out answer).
        held_records = [r for r in all_held if r["format"] == "mt_bench"]
        held_records += fitting([r for r in all_held if r["format"] != "mt_bench"], tokenizer)
        prompts = [
            tokenizer.apply_chat_template(r["messages"], add_generation_prompt=True, tokenize=False)
            for r in held_records
        ]
        replies = generate(judge, tokenizer, prompts, MAX_REPLY_TOKENS, do_sample=False)
        by_format = [
            {"format": r["format"], "response": r["response"], "judge_reply": text}
            for r, text in zip(held_records, replies, strict=True)
        ]
        # MT-Bench's replies to the held-out answers, in their order (judge_records keeps it).
        mt_bench_replies = iter(r["judge_reply"] for r in by_format if r["format"] == "mt_bench")
        judged = [
            {**a, "judge_reply": text, "judge_rating": parse_rating(text)}
            for a, text in zip(held_answers, mt_bench_replies, strict=True)
        ]
        write_jsonl(staging / "judged.jsonl", judged)

        def measure(rows: list[dict[str, Any]]) -> dict[str, Any]:
            return agreement(
                [r["judge_rating"] for r in rows],
                [r["oracle_rating"] for r in rows],
                [r["instruction"] for r in rows],
            )

        result = provenance(settings)
        result["agreement"] = measure(judged)
        result["formats"] = format_agreement(by_format)
        result["by_set"] = {
            name: measure([r for r in judged if r["set"] == name]) for name in ("pool", "mt_bench")
        }
        result["counts"] = {
            "train_examples": {name: sum(r["format"] == name for r in kept) for name in FORMATS},
            "too_long": {
                "train": len(train_records) - len(kept),
                "held_out": len(all_held) - len(held_records),
            },
            "train_instructions": len(split["train"]),
            "held_out_instructions": len(split["held_out"]),
            "train_answers": len(train_answers),
            "held_out_answers": len(held_answers),
        }
        result["oracle_ratings"] = {
            name: _histogram([a["oracle_rating"] for a in rows])
            for name, rows in (("train", train_answers), ("held_out", held_answers))
        }
        result["inputs"] = {
            "world_sha256": file_sha256(world / "world.json"),
            "pool_sha256": file_sha256(world / "instructions" / "pool.jsonl"),
            "init_sha256": file_sha256(init / "model.safetensors"),
        }
        result["loss"] = {"first": losses[0], "last": losses[-1]}
        result["seconds"] = {
            "answers": round(answers_seconds, 2),
            "train": round(train_seconds, 2),
            "wall": round(time.perf_counter() - wall0, 2),
            "cpu": round(time.process_time() - cpu0, 2),
        }
        write_json(staging / "agreement.json", result)
        replace_dir(staging, out, out.with_name(f".{out.name}.old"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _histogram(ratings: list[int]) -> dict[str, int]:
    return {str(n): ratings.count(n) for n in range(1, 11)}


def headline(result: dict[str, Any]) -> str:
    """One line of the figures that matter."""
    a = result["agreement"]

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"held-out answers {a['n']} (unparsable {a['unparsable']}): "
        f"Spearman {fmt(a['spearman'])}, Pearson {fmt(a['pearson'])}, "
        f"exact {fmt(a['exact'])}, within 1 {fmt(a['within_1'])}, "
        f"pairwise accuracy {fmt(a['pairwise_accuracy'])} over {a['pairs']} pairs; "
        + "; ".join(
            f"{name} replies parsed {f['parsed']}/{f['n']}, agreeing {fmt(f['agree'])}"
            for name, f in result["formats"].items()
        )
        + f"; wall {result['seconds']['wall']:.1f} s"
    )
