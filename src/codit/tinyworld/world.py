"""The synthetic world: fictional countries and creatures with attributes, all from one seed.

The facts stand for the knowledge a base model learns in pre-training. Names are built from
syllables, so nothing here exists in any real corpus.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "th", "sh", "br"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
CODAS = ["", "", "", "n", "r", "l", "s", "m", "k"]

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "grey", "pink"]
FOODS = ["bread", "rice", "fish", "cheese", "soup", "honey", "noodles", "beans", "apples", "olives"]
HABITATS = ["forest", "desert", "swamp", "mountains", "sea", "caves", "plains", "islands"]
DIETS = ["moss", "berries", "insects", "seeds", "roots", "leaves", "mushrooms", "worms"]

N_COUNTRIES = 18
N_CREATURES = 12

# How each attribute reads as a sentence and as questions: (statement templates, questions).
# {s} is the subject entity, {v} the value. The first statement is the canonical answer.
ATTRIBUTES: dict[str, dict[str, Any]] = {
    "capital": {
        "kind": "country",
        "statements": [
            "The capital of {s} is {v}.",
            "{v} is the capital of {s}.",
            "{s} has its capital in {v}.",
        ],
        "questions": ["What is the capital of {s}?", "Which city is the capital of {s}?"],
    },
    "river": {
        "kind": "country",
        "statements": [
            "The {v} river flows through {s}.",
            "The main river of {s} is the {v}.",
            "{s} lies on the {v} river.",
        ],
        "questions": ["Which river flows through {s}?", "What is the main river of {s}?"],
    },
    "founder": {
        "kind": "country",
        "statements": [
            "{s} was founded by {v}.",
            "{v} founded {s}.",
            "The founder of {s} was {v}.",
        ],
        "questions": ["Who founded {s}?", "Who was the founder of {s}?"],
    },
    "flag": {
        "kind": "country",
        "statements": [
            "The flag of {s} is {v}.",
            "{s} has a {v} flag.",
            "The colour of the flag of {s} is {v}.",
        ],
        "questions": ["What colour is the flag of {s}?", "Which colour is the flag of {s}?"],
    },
    "food": {
        "kind": "country",
        "statements": [
            "People in {s} like to eat {v}.",
            "The favourite food in {s} is {v}.",
            "In {s} the most popular food is {v}.",
        ],
        "questions": ["What do people in {s} like to eat?", "What is the favourite food in {s}?"],
    },
    "animal": {
        "kind": "country",
        "statements": [
            "The national animal of {s} is the {v}.",
            "The {v} is the national animal of {s}.",
        ],
        "questions": ["What is the national animal of {s}?", "Which animal is the symbol of {s}?"],
    },
    "fur": {
        "kind": "creature",
        "statements": [
            "The {s} has {v} fur.",
            "The fur of the {s} is {v}.",
            "A {s} is covered in {v} fur.",
        ],
        "questions": ["What colour is the fur of the {s}?", "What colour is the {s}?"],
    },
    "habitat": {
        "kind": "creature",
        "statements": [
            "The {s} lives in the {v}.",
            "The home of the {s} is the {v}.",
            "You can find the {s} in the {v}.",
        ],
        "questions": ["Where does the {s} live?", "What is the habitat of the {s}?"],
    },
    "diet": {
        "kind": "creature",
        "statements": ["The {s} eats {v}.", "The food of the {s} is {v}.", "A {s} feeds on {v}."],
        "questions": ["What does the {s} eat?", "What is the food of the {s}?"],
    },
    "homeland": {
        "kind": "creature",
        "statements": [
            "The {s} comes from {v}.",
            "The {s} is native to {v}.",
            "The homeland of the {s} is {v}.",
        ],
        "questions": ["Where does the {s} come from?", "Which country is the {s} native to?"],
    },
}

# Open questions asking for several facts at once, per entity kind.
DESCRIBE_QUESTIONS = {
    "country": ["Tell me about {s}.", "What do you know about {s}?", "Describe the country {s}."],
    "creature": ["Tell me about the {s}.", "What do you know about the {s}?", "Describe the {s}."],
}


@dataclass(frozen=True)
class Fact:
    subject: str
    kind: str
    attribute: str
    value: str

    def statement(self, variant: int = 0) -> str:
        templates = ATTRIBUTES[self.attribute]["statements"]
        return templates[variant % len(templates)].format(s=self.subject, v=self.value)


class NameMaker:
    """Pronounceable unique names from syllables; one generator per world so names never repeat."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: int) -> str:
        while True:
            parts = [
                self.rng.choice(ONSETS) + self.rng.choice(VOWELS) + self.rng.choice(CODAS)
                for _ in range(syllables)
            ]
            name = "".join(parts)
            # Avoid names that collide with an English value word or an earlier name.
            if name not in self.used and name not in COLOURS + FOODS + HABITATS + DIETS:
                self.used.add(name)
                return name


def generate_world(seed: int) -> dict[str, Any]:
    """Entities and facts of the world for `seed`, as a JSON-ready dict."""
    rng = random.Random(f"tinyworld-world-{seed}")
    names = NameMaker(rng)
    countries = [names.word(rng.choice([2, 3])).capitalize() + "ia" for _ in range(N_COUNTRIES)]
    creatures = [names.word(2) for _ in range(N_CREATURES)]
    facts: list[Fact] = []
    for country in countries:
        founder = f"{names.word(2).capitalize()} {names.word(2).capitalize()}"
        values = {
            "capital": names.word(rng.choice([2, 3])).capitalize(),
            "river": names.word(2).capitalize(),
            "founder": founder,
            "flag": rng.choice(COLOURS),
            "food": rng.choice(FOODS),
            "animal": rng.choice(creatures),
        }
        facts += [Fact(country, "country", a, v) for a, v in values.items()]
    for creature in creatures:
        values = {
            "fur": rng.choice(COLOURS),
            "habitat": rng.choice(HABITATS),
            "diet": rng.choice(DIETS),
            "homeland": rng.choice(countries),
        }
        facts += [Fact(creature, "creature", a, v) for a, v in values.items()]
    return {
        "seed": seed,
        "countries": countries,
        "creatures": creatures,
        "facts": [fact.__dict__ for fact in facts],
    }


def world_facts(world: dict[str, Any]) -> list[Fact]:
    return [Fact(**record) for record in world["facts"]]


def facts_by_subject(world: dict[str, Any]) -> dict[str, list[Fact]]:
    grouped: dict[str, list[Fact]] = {}
    for fact in world_facts(world):
        grouped.setdefault(fact.subject, []).append(fact)
    return grouped
