"""`codit prefetch`: fetch what lm-eval tasks read from the network into the hub cache, once.

Compute jobs run with HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1 (cluster nodes often have no
network, and a thousand jobs must not each hit the Hub). Building a task loads its dataset
(into HF_HOME's datasets cache) and imports its checker modules; IFEval's checkers download
NLTK's punkt_tab at import time into the first writable folder of NLTK_DATA. This command does
both on the login node, with the same environment the jobs get, and writes a manifest of what
each task read. `check_task_data` is the same build, used by `codit evaluate` before it loads a
model, so a missing cache entry fails in seconds with a message that says what to run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from codit.config import OFFLINE_VARIABLES
from codit.evaluation import check_tasks_known, parse_tasks, task_manager
from codit.provenance import provenance, write_json


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", required=True, help="comma-separated lm-eval task names")
    parser.add_argument(
        "--include-path", action="append", default=[], help="extra folder of task YAMLs"
    )
    parser.add_argument(
        "--no-default-tasks", action="store_true", help="index only --include-path tasks"
    )
    parser.add_argument("--out", required=True, help="manifest of the fetched tasks (JSON)")


def run(args: argparse.Namespace) -> None:
    tasks = parse_tasks(args.tasks)
    manager = task_manager(args.include_path, include_defaults=not args.no_default_tasks)
    check_tasks_known(tasks, manager, args.include_path)
    described = check_task_data(tasks, manager)
    environment = {
        name: os.environ.get(name)
        for name in ("HF_HOME", "NLTK_DATA", *OFFLINE_VARIABLES)
        if os.environ.get(name)
    }
    write_json(
        args.out,
        {"tasks": described, "environment": environment, "provenance": provenance(vars(args))},
    )
    for name, info in described.items():
        splits = ", ".join(f"{split} {rows}" for split, rows in info["splits"].items())
        print(f"codit prefetch: {name}: {info['dataset_path']} ({splits})")
