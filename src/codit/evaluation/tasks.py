"""lm-eval tasks: their names, the index that finds them, and loading their data.

`codit evaluate` and `codit prefetch` both build tasks this way: prefetch on the login node to
fill the hub cache, evaluate (offline) to check, before it loads a model, that every task's
data is in that cache, so a missing entry fails in seconds with a message that says what to
run. IFEval's checkers download NLTK's punkt_tab at import time into the first writable folder
of NLTK_DATA, which `check_task_data` creates.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.workflow.config import OFFLINE_VARIABLES
from codit.workflow.settings import Settings, option


@dataclass(frozen=True, kw_only=True)
class TaskSelection(Settings):
    """Which lm-eval tasks, and where lm-eval looks for their YAMLs (prefetch and evaluate)."""

    tasks: str = option(help="comma-separated lm-eval task names")
    include_path: tuple[str, ...] = option((), "extra folder of task YAMLs (repeatable)")
    default_tasks: bool = option(
        True,
        "index lm-eval's own ~15k task configs too (--no-default-tasks: only --include-path "
        "tasks, which is much faster)",
    )

    def names(self) -> list[str]:
        return parse_tasks(self.tasks)

    def index(self):
        """lm-eval's task index, after checking that every task name is in it."""
        manager = task_manager(list(self.include_path), include_defaults=self.default_tasks)
        check_tasks_known(self.names(), manager, list(self.include_path))
        return manager


def parse_tasks(text: str) -> list[str]:
    """`--tasks a,b` -> ["a", "b"]; none at all is an error."""
    tasks = [name.strip() for name in text.split(",") if name.strip()]
    if not tasks:
        raise ValueError("--tasks: no task names given")
    return tasks


def task_manager(include_paths: list[str], include_defaults: bool):
    """lm-eval's index of tasks: its own (unless `include_defaults` is off) and the YAML
    folders of `include_paths`, each of which must exist."""
    from lm_eval.tasks import TaskManager

    for path in include_paths:
        if not Path(path).is_dir():
            raise FileNotFoundError(f"--include-path {path}: no such directory")
    return TaskManager(include_path=include_paths or None, include_defaults=include_defaults)


def check_tasks_known(tasks: list[str], manager, include_paths: list[str]) -> None:
    """Refuse unknown task names before the model is loaded, with near matches as hints."""
    known = set(manager.all_tasks)
    unknown = [name for name in tasks if name not in known and not Path(name).is_file()]
    if not unknown:
        return
    hints = {name: difflib.get_close_matches(name, known, n=3) for name in unknown}
    hint_text = "; ".join(f"{name}: did you mean {', '.join(h)}?" for name, h in hints.items() if h)
    searched = ", ".join(include_paths) or "(none)"
    raise ValueError(
        f"unknown lm-eval task(s) {', '.join(unknown)}; include paths searched: {searched}"
        + (f"; {hint_text}" if hint_text else "")
    )


def is_offline() -> bool:
    return any(
        os.environ.get(name, "").lower() in {"1", "true", "yes"} for name in OFFLINE_VARIABLES
    )


def describe_task(task: Any) -> dict[str, Any]:
    """What a task read: its dataset and the number of documents in each split."""
    config = task.config
    dataset = getattr(task, "dataset", None) or {}
    return {
        "dataset_path": config.dataset_path or "custom_dataset",
        "dataset_name": config.dataset_name,
        "splits": {split: len(rows) for split, rows in dataset.items()},
    }


def check_task_data(tasks: list[str], manager) -> dict[str, dict[str, Any]]:
    """Build every task (loading its data); a task whose data is unreachable is named."""
    # NLTK downloads into the first existing writable folder on its path, so create ours.
    nltk_data = os.environ.get("NLTK_DATA")
    if nltk_data and not is_offline():
        Path(nltk_data.split(os.pathsep)[0]).mkdir(parents=True, exist_ok=True)
    described = {}
    for name in tasks:
        try:
            # A group or tag expands to its leaf tasks, each loading its data.
            loaded = manager.load([name])["tasks"]
        except (ConnectionError, OSError, LookupError) as error:
            where = os.environ.get("HF_HOME", "~/.cache/huggingface")
            hint = (
                f"it is not in the offline cache (HF_HOME={where}); run `codit prefetch --tasks "
                f"{name}` with the same HF_HOME on a machine that reaches the Hub (the workflow's "
                "prefetch_eval_tasks rule does this on the login node)"
                if is_offline()
                else "check the task's dataset_path and your network"
            )
            raise ValueError(
                f"lm-eval task {name}: cannot load its data: {error}; {hint}"
            ) from None
        for leaf, task in loaded.items():
            described[leaf] = describe_task(task)
    return described
