"""The tiny world's oracle: how well a response answers a pool instruction, by the world's rules.

score = (constraints + knowledge) / 2, where
- constraints = the share of the instruction's verifiable constraints the response meets (the
  strict check of codit.tinyworld.constraints; 1 for an instruction without constraints);
- knowledge = for a single-fact question (pool `answer` set): 1 if the gold value occurs in the
  response as a whole word, case-insensitive, else 0; for an open "describe" question (`answer`
  null): correct / (correct + wrong), where correct counts the distinct values of the subject's
  facts the response mentions and wrong the distinct values of other subjects' facts (neither a
  value of the subject nor the subject's name) it mentions; 0 when it mentions no world value.

It knows the truth, so it is an upper bound, not a method: Best-of-N's `oracle` scorer and the
tiny world's judge server (codit.tinyworld.judge) use it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from codit.tinyworld.constraints import check_all
from codit.workflow.provenance import file_sha256, read_jsonl


def _mentions(value: str, text: str) -> bool:
    """Whether `value` occurs in `text` as whole words, case-insensitive, any whitespace."""
    words = r"\s+".join(re.escape(word) for word in value.split())
    return re.search(rf"(?<![A-Za-z0-9]){words}(?![A-Za-z0-9])", text, re.IGNORECASE) is not None


class Oracle:
    """The oracle of one built tiny world (its world.json and instruction pool)."""

    def __init__(self, world_dir: str | Path) -> None:
        self.world_dir = Path(world_dir)
        self.world_path = self.world_dir / "world.json"
        self.pool_path = self.world_dir / "instructions" / "pool.jsonl"
        for path in (self.world_path, self.pool_path):
            if not path.is_file():
                raise FileNotFoundError(f"--world {world_dir}: {path} does not exist")
        world = json.loads(self.world_path.read_text(encoding="utf-8"))
        self.values: dict[str, set[str]] = {}
        for fact in world["facts"]:
            self.values.setdefault(fact["subject"], set()).add(fact["value"])
        self.pool = {
            str(record["id"]): record for record in read_jsonl(self.pool_path, objects_only=True)
        }
        self.by_text = {record["instruction"]: key for key, record in self.pool.items()}

    def settings(self) -> dict[str, Any]:
        return {
            "oracle": True,
            "world": str(self.world_dir),
            "world_sha256": file_sha256(self.world_path),
            "pool_sha256": file_sha256(self.pool_path),
        }

    def knowledge(self, item: dict[str, Any], response: str) -> float:
        """The knowledge part of the score (module docstring)."""
        if item["answer"] is not None:
            return float(_mentions(str(item["answer"]), response))
        subject = item["subject"]
        if subject not in self.values:
            raise ValueError(f"{self.world_path}: no facts about subject {subject!r}")
        own = self.values[subject]
        others = set().union(*(v for s, v in self.values.items() if s != subject)) - own
        others.discard(subject)  # naming the subject is not a claim about another one
        correct = sum(_mentions(value, response) for value in own)
        wrong = sum(_mentions(value, response) for value in others)
        return correct / (correct + wrong) if correct + wrong else 0.0

    def item(self, item_id: Any) -> dict[str, Any]:
        """The pool instruction with id `item_id`."""
        item = self.pool.get(str(item_id))
        if item is None:
            raise ValueError(f"{self.pool_path}: no instruction with id {item_id!r}")
        if "answer" not in item or "subject" not in item:
            raise ValueError(
                f"{self.pool_path}: id {item_id!r} has no 'answer'/'subject' field; "
                "rebuild the tiny world with `codit tinyworld`"
            )
        return item

    def item_for(self, instruction: str) -> dict[str, Any]:
        """The pool instruction whose text is `instruction` (a judge sees only the text)."""
        found = self.by_text.get(instruction)
        if found is None:
            raise ValueError(f"{self.pool_path}: no instruction {instruction[:80]!r}")
        return self.item(found)

    def score(self, item: dict[str, Any], response: str) -> dict[str, Any]:
        """`score` in [0, 1] and its two parts (module docstring)."""
        met = check_all(item["constraints"], response, item["request"])["strict"]
        constraints = sum(met) / len(met) if met else 1.0
        knowledge = self.knowledge(item, response)
        return {
            "score": (constraints + knowledge) / 2,
            "constraints": constraints,
            "knowledge": knowledge,
        }
