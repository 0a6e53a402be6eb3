"""lm-eval hooks for the tiny-world tasks; this folder is self-contained and relocatable.

Data files and the constraint checker (tinyworld_constraints.py, a frozen copy of
codit.tinyworld.constraints) are found next to this file, never through absolute paths.
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import datasets

HERE = Path(__file__).resolve().parent


def _load_checker():
    name = "tinyworld_constraints"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _read_jsonl(filename):
    with open(HERE / filename, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_ifeval(**_metadata):
    # Constraints travel as a JSON string: their kwargs differ per type, which Arrow dislikes.
    rows = [
        {
            "key": row["key"],
            "prompt": row["prompt"],
            "request": row["request"],
            "combo": row["combo"],
            "constraints_json": json.dumps(row["constraints"]),
        }
        for row in _read_jsonl("tinyworld_ifeval.jsonl")
    ]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def load_knowledge(**_metadata):
    rows = _read_jsonl("tinyworld_knowledge.jsonl")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def process_ifeval(doc, results):
    checker = _load_checker()
    outcome = checker.check_all(json.loads(doc["constraints_json"]), results[0], doc["request"])
    return {
        "prompt_level_strict_acc": outcome["prompt_strict"],
        "inst_level_strict_acc": outcome["strict"],
        "prompt_level_loose_acc": outcome["prompt_loose"],
        "inst_level_loose_acc": outcome["loose"],
    }


def agg_inst_level_acc(items):
    # Instruction-level accuracy pools every instruction of every prompt, as IFEval does.
    flat = [ok for per_prompt in items for ok in per_prompt]
    return sum(flat) / len(flat)


def normalise(text):
    """Lower-case, punctuation to spaces, whitespace collapsed."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def first_line(text):
    for line in text.split("\n"):
        if line.strip():
            return line
    return ""


def process_knowledge(doc, results):
    """exact_match: the normalised gold answer is a whole-word span of the normalised first
    non-empty line of the response ("Kelmirth." and "The capital of X is Kelmirth." both count).
    """
    gold = normalise(doc["answer"])
    line = normalise(first_line(results[0]))
    return {"exact_match": float(bool(gold) and f" {gold} " in f" {line} ")}
