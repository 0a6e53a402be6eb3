"""Writes the lm-eval task folder: YAML + utils from the package templates, plus data files."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from codit.workflow.provenance import write_jsonl

TASK_NAMES = ("tinyworld_ifeval", "tinyworld_knowledge")
TEMPLATE_FILES = ("tinyworld_ifeval.yaml", "tinyworld_knowledge.yaml", "utils.py")


def write_task_folder(
    out_dir: str | os.PathLike,
    ifeval_items: list[dict[str, Any]],
    knowledge_items: list[dict[str, Any]],
) -> Path:
    """Create `out_dir` for `--include_path`; it holds no absolute paths, so it can be moved."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    templates = resources.files("codit.tinyworld") / "task_templates"
    for name in TEMPLATE_FILES:
        (folder / name).write_text((templates / name).read_text(encoding="utf-8"))
    # A frozen copy of the checker, so scores do not drift if the package changes later.
    checker = resources.files("codit.tinyworld") / "constraints.py"
    with resources.as_file(checker) as source:
        shutil.copyfile(source, folder / "tinyworld_constraints.py")
    write_jsonl(
        folder / "tinyworld_ifeval.jsonl",
        [
            {
                "key": index,
                "prompt": item["instruction"],
                "request": item["request"],
                "combo": item["combo"],
                "constraints": item["constraints"],
            }
            for index, item in enumerate(ifeval_items)
        ],
    )
    write_jsonl(
        folder / "tinyworld_knowledge.jsonl",
        [{"id": index, **item} for index, item in enumerate(knowledge_items)],
    )
    return folder
