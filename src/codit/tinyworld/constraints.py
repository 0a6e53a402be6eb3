"""Verifiable format constraints: instruction text, compliant transform, strict and loose checks.

Standard library only: the task folder carries a copy of this file, so the benchmark scores
the same way wherever lm-eval runs, even if this module changes later.

A constraint instance is JSON metadata `{"type": ..., "kwargs": {...}}`. Types:
upper, lower, quotes, prefix, suffix, repeat, bullets, json, max_words, min_words.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from typing import Any

TYPES = (
    "upper",
    "lower",
    "quotes",
    "prefix",
    "suffix",
    "repeat",
    "bullets",
    "json",
    "max_words",
    "min_words",
)

# Pairs that cannot both hold (or would make the checks ambiguous), so they are never combined.
CONFLICTS = {
    frozenset(pair)
    for pair in [
        ("upper", "lower"),
        ("max_words", "min_words"),
        ("prefix", "repeat"),
        ("bullets", "max_words"),
        ("bullets", "min_words"),
        ("quotes", "bullets"),
        ("quotes", "prefix"),
        ("quotes", "suffix"),
        ("quotes", "repeat"),
        *[("json", other) for other in TYPES if other not in {"json", "max_words", "min_words"}],
    ]
}

PREFIXES = ["Indeed,", "Well,", "Good question!", "Here is the answer:", "Sure thing."]
SUFFIXES = ["Is there anything else?", "Hope this helps.", "That is all.", "Any other questions?"]
JSON_KEYS = ["answer", "response", "text"]

PHRASINGS = {
    "upper": [
        "Write your entire answer in capital letters.",
        "Your whole response must be in uppercase letters.",
        "Answer using only CAPITAL letters.",
    ],
    "lower": [
        "Write your entire answer in lowercase letters.",
        "Use only lowercase letters in your response.",
        "No capital letters are allowed in your answer.",
    ],
    "quotes": [
        "Wrap your entire response in double quotation marks.",
        "Put your whole answer inside double quotes.",
    ],
    "prefix": [
        'Start your answer with "{prefix}"',
        'Begin your response with the words "{prefix}"',
    ],
    "suffix": [
        'End your answer with the exact phrase "{suffix}"',
        'Finish your response with "{suffix}" and say nothing after it.',
    ],
    "repeat": [
        "First repeat the question word for word, then answer it.",
        "Before answering, copy the question exactly as it is written.",
    ],
    "bullets": [
        'Answer with exactly {n} bullet points, each starting with "* ".',
        "Your answer must contain exactly {n} bullet points in markdown.",
    ],
    "json": [
        'Format your entire answer as a JSON object with the key "{key}".',
        'Return only a JSON object whose "{key}" field holds the answer.',
    ],
    "max_words": ["Answer in at most {n} words.", "Use no more than {n} words."],
    "min_words": ["Your answer must be at least {n} words long.", "Write at least {n} words."],
}

_WORD = re.compile(r"[A-Za-z0-9']+")
_BULLET = re.compile(r"^\s*[*-]\s+\S")


def compatible(types: tuple[str, ...] | list[str]) -> bool:
    """True when no two of `types` conflict and none repeats."""
    if len(set(types)) != len(types):
        return False
    return all(frozenset(pair) not in CONFLICTS for pair in itertools.combinations(types, 2))


def all_combinations(max_size: int = 3) -> list[tuple[str, ...]]:
    """Every compatible combination of 1..max_size types, each sorted in TYPES order."""
    combos = []
    for size in range(1, max_size + 1):
        combos += [c for c in itertools.combinations(TYPES, size) if compatible(c)]
    return combos


def combo_name(types: list[str] | tuple[str, ...]) -> str:
    return "+".join(sorted(types, key=TYPES.index))


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def sample_kwargs(kind: str, rng: random.Random, n_facts_available: int) -> dict[str, Any]:
    """Parameters of a constraint; word limits are filled in later from the response."""
    if kind == "prefix":
        return {"prefix": rng.choice(PREFIXES)}
    if kind == "suffix":
        return {"suffix": rng.choice(SUFFIXES)}
    if kind == "bullets":
        return {"n": rng.randint(2, min(3, n_facts_available))}
    if kind == "json":
        return {"key": rng.choice(JSON_KEYS)}
    return {}


def instruction_text(constraint: dict[str, Any], rng: random.Random) -> str:
    """One phrasing of the constraint's instruction."""
    template = rng.choice(PHRASINGS[constraint["type"]])
    return template.format(**constraint["kwargs"])


def facts_needed(constraints: list[dict[str, Any]], rng: random.Random) -> int:
    """How many fact sentences the compliant response should carry."""
    types = {c["type"] for c in constraints}
    if "bullets" in types:
        return next(c["kwargs"]["n"] for c in constraints if c["type"] == "bullets")
    if "min_words" in types:
        return rng.randint(2, 3)
    if "max_words" in types:
        return 1
    return 0  # the caller's default


def transform(
    sentences: list[str], constraints: list[dict[str, Any]], request: str, rng: random.Random
) -> str:
    """A response that states `sentences` and obeys every constraint.

    Word limits (max_words/min_words) get their `n` set here from the finished response.
    """
    by_type = {c["type"]: c for c in constraints}
    if "bullets" in by_type:
        body = "\n".join(f"* {s}" for s in sentences[: by_type["bullets"]["kwargs"]["n"]])
        joiner = "\n"
    else:
        body = " ".join(sentences)
        joiner = " "
    if "json" in by_type:
        body = json.dumps({by_type["json"]["kwargs"]["key"]: body})
    if "prefix" in by_type:
        body = by_type["prefix"]["kwargs"]["prefix"] + joiner + body
    if "repeat" in by_type:
        body = request + "\n" + body
    if "suffix" in by_type:
        body = body + joiner + by_type["suffix"]["kwargs"]["suffix"]
    if "upper" in by_type:
        body = body.upper()
    if "lower" in by_type:
        body = body.lower()
    if "quotes" in by_type:
        body = f'"{body}"'
    count = word_count(body)
    if "max_words" in by_type:
        by_type["max_words"]["kwargs"]["n"] = count + rng.randint(0, 4)
    if "min_words" in by_type:
        by_type["min_words"]["kwargs"]["n"] = max(1, count - rng.randint(0, 4))
    return body


def _json_payload(text: str) -> Any:
    stripped = text.strip()
    # Code fences are tolerated, as IFEval does.
    stripped = re.sub(r"^```(?:json|JSON)?\s*", "", stripped)
    stripped = re.sub(r"\s*```$", "", stripped)
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        return None


def check(constraint: dict[str, Any], response: str, request: str) -> bool:
    """Strict check of one constraint on one response."""
    kind, kwargs = constraint["type"], constraint["kwargs"]
    text = response.strip()
    if not text:
        return False
    if kind == "upper":
        return text == text.upper() and any(ch.isalpha() for ch in text)
    if kind == "lower":
        return text == text.lower() and any(ch.isalpha() for ch in text)
    if kind == "quotes":
        return len(text) > 1 and text[0] == '"' and text[-1] == '"'
    if kind == "prefix":
        return text.lower().startswith(kwargs["prefix"].lower())
    if kind == "suffix":
        return text.lower().endswith(kwargs["suffix"].lower())
    if kind == "repeat":
        return text.lower().startswith(request.strip().lower())
    if kind == "bullets":
        return sum(bool(_BULLET.match(line)) for line in text.split("\n")) == kwargs["n"]
    if kind == "json":
        payload = _json_payload(text)
        return isinstance(payload, dict) and kwargs["key"] in payload
    if kind == "max_words":
        return word_count(text) <= kwargs["n"]
    if kind == "min_words":
        return word_count(text) >= kwargs["n"]
    raise ValueError(f"unknown constraint type {kind!r}; known: {', '.join(TYPES)}")


def loose_variants(response: str) -> list[str]:
    """IFEval's loose relaxations: drop the first and/or last line, strip markdown '*'."""
    lines = response.split("\n")
    cut = [
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    return cut + [variant.replace("*", "") for variant in cut]


def check_all(constraints: list[dict[str, Any]], response: str, request: str) -> dict[str, Any]:
    """Strict and loose results, per instruction and for the whole prompt."""
    strict = [check(c, response, request) for c in constraints]
    variants = loose_variants(response)
    loose = [any(check(c, v, request) for v in variants) for c in constraints]
    return {
        "strict": strict,
        "loose": loose,
        "prompt_strict": all(strict),
        "prompt_loose": all(loose),
    }
