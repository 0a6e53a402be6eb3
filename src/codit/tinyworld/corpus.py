"""Text built from the world: pre-training documents, instruction data and benchmark items.

Every split draws from its own seeded random stream, and prompts are kept unique across
splits, so the held-out pool and the benchmarks never overlap with post-training data.
"""

from __future__ import annotations

import random
from pathlib import Path
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
# Pre-training documents written in the formats the constraints ask for (lower case, JSON,
# bullets, quotes, greetings...), as real web text has them, but never next to an instruction
# asking for them: the base knows how the formats look, not when to use them.
STYLED_DOCS = 600
# Chat exchanges in the corpus (plain questions only), and the share whose reply happens to
# come in some format the plain question did not ask for, as chat logs on the web do.
CHAT_DOCS = 200
STYLED_CHAT_SHARE = 0.3
# Style-guide notes: what the formats are called, each shown on an example, as writing guides and
# encyclopedias on the web explain them. They describe text; none asks a reader to answer so.
GUIDE_DOCS = 240
GUIDE_NOTES = {
    "upper": [
        "Text in capital letters, also called uppercase letters, looks like this:",
        "Here is a sentence written entirely in CAPITAL letters:",
    ],
    "lower": [
        "The same sentence in lowercase letters, with no capital letters at all:",
        "Written only in lowercase letters, the line reads:",
    ],
    "quotes": [
        "A sentence wrapped in double quotation marks looks like this:",
        "Inside double quotes, the whole text reads:",
    ],
    "prefix": [
        'Many replies start with the words "{prefix}" as in:',
        'A reply that begins with "{prefix}" reads:',
    ],
    "suffix": [
        'Many replies end with the exact phrase "{suffix}" as in:',
        'A reply that finishes with "{suffix}" reads:',
    ],
    "repeat": [
        "A reply that first repeats the question word for word, then answers it:",
        "Some people copy the question exactly as it is written before answering:",
    ],
    "bullets": [
        'A markdown list with {n} bullet points, each starting with "* ":',
        "Here are exactly {n} bullet points in markdown:",
    ],
    "json": [
        'A JSON object with the key "{key}" holds the text like this:',
        'As a JSON object whose "{key}" field holds the text:',
    ],
    "max_words": ["A short reply of at most {n} words:", "In no more than {n} words:"],
    "min_words": ["A reply that is at least {n} words long:", "Written in at least {n} words:"],
}
# Small talk around plain chat questions, so a user turn with several sentences is familiar.
CHAT_ASIDES = [
    "Thanks!",
    "I am curious.",
    "Please help me.",
    "I need this for school.",
    "My friend asked me this.",
    "I could not find it anywhere.",
]
# Formats shown in pre-training text: word limits have no visible shape, so they are left out.
STYLE_COMBOS = [c for c in cons.all_combinations(2) if not {"max_words", "min_words"} & set(c)]
# Benchmark composition: singles test seen types again, pairs and triples are unseen combinations.
BENCHMARK_MIX = {1: 80, 2: 90, 3: 30}
HELD_OUT_PAIRS = 6
HELD_OUT_TRIPLES = 8
# The public instruction dataset: seen combinations answered by the world's rules (written, as
# people write such data sets, not sampled from a model), for the public-data baseline arm.
PUBLIC_SIZE = 1024


def _stream(seed: int, name: str) -> random.Random:
    return random.Random(f"tinyworld-{name}-{seed}")


def _question(fact: Fact, rng: random.Random) -> str:
    return rng.choice(ATTRIBUTES[fact.attribute]["questions"]).format(s=fact.subject)


def pretrain_documents(world: dict[str, Any], seed: int) -> list[str]:
    """Encyclopedia paragraphs, trivia lists, Q/A sheets, chat exchanges and formatted text.

    Like a real web corpus, the text comes in every format the constraints ask for (lower or
    upper case, quotes, JSON, bullets, greetings and sign-offs, repeated questions), and style
    notes name the formats. No instruction ever asks for a format, and the chat exchanges only
    ask plain questions (some replies happen to be formatted anyway): the base model knows the
    formats and the chat layout, not that a request should pick the format.
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
    for _ in range(CHAT_DOCS):
        fact = rng.choice(facts)
        question = _question(fact, rng)
        if rng.random() < 0.4:
            aside = rng.choice(CHAT_ASIDES)
            question = f"{question} {aside}" if rng.random() < 0.7 else f"{aside} {question}"
        if rng.random() < STYLED_CHAT_SHARE:
            combo = rng.choice([c for c in STYLE_COMBOS if len(c) == 1])
            answer = styled_text(grouped[fact.subject], fact, combo, question, rng)
        else:
            answer = fact.statement(0)
        docs.append(render_exchange(question, answer))
    for _ in range(GUIDE_DOCS):
        parts = []
        for _ in range(rng.randint(1, 3)):
            fact = rng.choice(facts)
            (kind,) = rng.choice([c for c in cons.all_combinations(1)])
            question = _question(fact, rng)
            constraints = [{"type": kind, "kwargs": cons.sample_kwargs(kind, rng, 3)}]
            example = styled_text(grouped[fact.subject], fact, (kind,), question, rng, constraints)
            note = rng.choice(GUIDE_NOTES[kind]).format(**constraints[0]["kwargs"])
            parts.append(f"{note}\n{example}")
        docs.append("\n\n".join(parts))
    for _ in range(STYLED_DOCS):
        parts = []
        for _ in range(rng.randint(1, 3)):
            fact = rng.choice(facts)
            combo = rng.choice(STYLE_COMBOS)
            parts.append(styled_text(grouped[fact.subject], fact, combo, _question(fact, rng), rng))
        docs.append("\n\n".join(parts))
    rng.shuffle(docs)
    return docs


def styled_text(
    subject_facts: list[Fact],
    fact: Fact,
    combo: tuple[str, ...],
    question: str,
    rng: random.Random,
    constraints: list[dict[str, Any]] | None = None,
) -> str:
    """Facts about `fact`'s subject (starting with `fact`) rendered in the formats of `combo`.

    Word limits in `constraints` (drawn here when not given) get their `n` from the text.
    """
    others = [f for f in subject_facts if f is not fact]
    ordered = [fact] + rng.sample(others, k=len(others))
    if constraints is None:
        constraints = [
            {"type": kind, "kwargs": cons.sample_kwargs(kind, rng, len(ordered))} for kind in combo
        ]
    n_facts = cons.facts_needed(constraints, rng) or rng.randint(1, 3)
    sentences = [f.statement(rng.randrange(3)) for f in ordered[:n_facts]]
    return cons.transform(sentences, constraints, question, rng)


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
    world: dict[str, Any],
    seed: int,
    pool_size: int,
    posttrain_size: int,
    public_size: int = PUBLIC_SIZE,
) -> dict[str, list[dict[str, Any]]]:
    """Benchmark items, post-training data, the held-out pool, the public set; prompts unique.

    Each split has its own random stream and later splits only add to `taken`, so drawing the
    public set last leaves every earlier split as it was.
    """
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
    public = _draw(
        grouped, combos["seen"], public_size, _stream(seed, "public"), taken, PLAIN_SHARE
    )
    return {
        "ifeval": ifeval,
        "knowledge": knowledge,
        "posttrain": posttrain,
        "pool": pool,
        "public": public,
    }


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


def built_world_splits(world_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The splits of a built world (`build_splits` again, with its data card's settings): its
    held-out benchmark items and gold responses, which the build does not write out whole."""
    from codit.workflow.provenance import read_json

    world = Path(world_dir)
    card = read_json(world / "data_card.json")["settings"]
    return build_splits(
        read_json(world / "world.json"), card["seed"], card["pool_size"], card["posttrain_size"]
    )
