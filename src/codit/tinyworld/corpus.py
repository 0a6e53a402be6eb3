"""Text built from the world: pre-training documents, instruction data and benchmark items.

Every split draws from its own seeded random stream, and prompts are kept unique across
splits, so the held-out pool and the benchmarks never overlap with post-training data.
"""

from __future__ import annotations

import random
from typing import Any

from codit.tinyworld import constraints as cons
from codit.tinyworld.chatformat import render_exchange
from codit.tinyworld.world import (
    ATTRIBUTES,
    DESCRIBE_QUESTIONS,
    Fact,
    facts_by_subject,
    world_facts,
)

INTROS = {
    "country": ["{s} is a country.", "{s} is a small nation.", "The land of {s} is old."],
    "creature": ["The {s} is an animal.", "The {s} is a rare creature.", "A {s} is a small beast."],
}

# Share of plain (constraint-free) questions among instruction data, like real instruction sets.
PLAIN_SHARE = 0.15
# Benchmark composition: singles test seen types again, pairs and triples are unseen combinations.
BENCHMARK_MIX = {1: 80, 2: 90, 3: 30}
HELD_OUT_PAIRS = 6
HELD_OUT_TRIPLES = 8


def _stream(seed: int, name: str) -> random.Random:
    return random.Random(f"tinyworld-{name}-{seed}")


def _question(fact: Fact, rng: random.Random) -> str:
    return rng.choice(ATTRIBUTES[fact.attribute]["questions"]).format(s=fact.subject)


def pretrain_documents(world: dict[str, Any], seed: int) -> list[str]:
    """Encyclopedia paragraphs, trivia lists, Q/A sheets and a few chat exchanges.

    The chat exchanges only ask plain questions: the base model learns the chat format, never
    constraint following.
    """
    rng = _stream(seed, "pretrain")
    grouped = facts_by_subject(world)
    facts = world_facts(world)
    docs: list[str] = []
    for subject, subject_facts in grouped.items():
        kind = subject_facts[0].kind
        for _ in range(8):
            chosen = rng.sample(subject_facts, k=rng.randint(3, len(subject_facts)))
            sentences = [rng.choice(INTROS[kind]).format(s=subject)]
            sentences += [fact.statement(rng.randrange(3)) for fact in chosen]
            text = " ".join(sentences)
            # A few shouted or lower-cased paragraphs, as web text has; no instruction asks for it.
            roll = rng.random()
            docs.append(text.upper() if roll < 0.06 else text.lower() if roll < 0.1 else text)
    for _ in range(300):
        docs.append(" ".join(f.statement(rng.randrange(3)) for f in rng.sample(facts, k=5)))
    for _ in range(200):
        pairs = rng.sample(facts, k=4)
        docs.append("\n".join(f"Q: {_question(f, rng)}\nA: {f.statement(0)}" for f in pairs))
    for _ in range(160):
        fact = rng.choice(facts)
        docs.append(render_exchange(_question(fact, rng), fact.statement(0)))
    rng.shuffle(docs)
    return docs


def split_combinations(seed: int) -> dict[str, list[tuple[str, ...]]]:
    """Seen combinations (post-training, pool) and unseen ones (benchmark only)."""
    rng = _stream(seed, "combos")
    combos = cons.all_combinations(3)
    pairs = [c for c in combos if len(c) == 2]
    triples = [c for c in combos if len(c) == 3]
    rng.shuffle(pairs)
    rng.shuffle(triples)
    return {
        "singles": [c for c in combos if len(c) == 1],
        "seen": [c for c in combos if len(c) == 1]
        + pairs[HELD_OUT_PAIRS:]
        + triples[HELD_OUT_TRIPLES:],
        "unseen_pairs": pairs[:HELD_OUT_PAIRS],
        "unseen_triples": triples[:HELD_OUT_TRIPLES],
    }


def make_instruction(
    grouped: dict[str, list[Fact]], combo: tuple[str, ...], rng: random.Random
) -> dict[str, Any]:
    """One instruction about the world with the constraints in `combo`, and its gold response."""
    subject = rng.choice(sorted(grouped))
    subject_facts = grouped[subject]
    describe = rng.random() < 0.3
    if describe:
        question = rng.choice(DESCRIBE_QUESTIONS[subject_facts[0].kind]).format(s=subject)
        ordered = rng.sample(subject_facts, k=len(subject_facts))
        default_facts = rng.randint(2, 3)
        answer = None
    else:
        main = rng.choice(subject_facts)
        question = _question(main, rng)
        others = [f for f in subject_facts if f is not main]
        ordered = [main] + rng.sample(others, k=len(others))
        default_facts = 1
        answer = main.value
    constraints = [
        {"type": kind, "kwargs": cons.sample_kwargs(kind, rng, len(ordered))} for kind in combo
    ]
    n_facts = cons.facts_needed(constraints, rng) or default_facts
    sentences = [fact.statement(0) for fact in ordered[:n_facts]]
    response = cons.transform(sentences, constraints, question, rng)
    texts = [cons.instruction_text(c, rng) for c in constraints]
    prompt = " ".join([question, *texts])
    return {
        "instruction": prompt,
        "request": question,
        "constraints": constraints,
        "combo": cons.combo_name(combo) if combo else "plain",
        "subject": subject,
        "answer": answer,
        "response": response,
    }


def _draw(
    grouped: dict[str, list[Fact]],
    combos: list[tuple[str, ...]],
    count: int,
    rng: random.Random,
    taken: set[str],
    plain_share: float,
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    attempts = 0
    while len(items) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError(f"cannot draw {count} unique instructions; the world is too small")
        combo = () if rng.random() < plain_share else rng.choice(combos)
        item = make_instruction(grouped, combo, rng)
        if item["instruction"] in taken:
            continue
        taken.add(item["instruction"])
        items.append(item)
    return items


def build_splits(
    world: dict[str, Any], seed: int, pool_size: int, posttrain_size: int
) -> dict[str, list[dict[str, Any]]]:
    """Benchmark items first, then post-training data, then the held-out pool; prompts unique."""
    grouped = facts_by_subject(world)
    combos = split_combinations(seed)
    taken: set[str] = set()
    bench_rng = _stream(seed, "bench-ifeval")
    ifeval = _draw(grouped, combos["singles"], BENCHMARK_MIX[1], bench_rng, taken, 0.0)
    ifeval += _draw(grouped, combos["unseen_pairs"], BENCHMARK_MIX[2], bench_rng, taken, 0.0)
    ifeval += _draw(grouped, combos["unseen_triples"], BENCHMARK_MIX[3], bench_rng, taken, 0.0)
    # Knowledge questions are plain questions too, so reserve them before drawing training data.
    knowledge = knowledge_items(world, seed)
    taken.update(item["question"] for item in knowledge)
    posttrain = _draw(
        grouped, combos["seen"], posttrain_size, _stream(seed, "posttrain"), taken, PLAIN_SHARE
    )
    pool = _draw(grouped, combos["seen"], pool_size, _stream(seed, "pool"), taken, PLAIN_SHARE)
    return {"ifeval": ifeval, "knowledge": knowledge, "posttrain": posttrain, "pool": pool}


def knowledge_items(world: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """One question per fact, with the fact's value as the gold answer."""
    rng = _stream(seed, "bench-knowledge")
    return [
        {
            "question": _question(fact, rng),
            "answer": fact.value,
            "subject": fact.subject,
            "attribute": fact.attribute,
        }
        for fact in world_facts(world)
    ]
