"""`codit prefetch`: fetch what lm-eval tasks read from the network into the hub cache, once.

Compute jobs run with HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1 (cluster nodes often have no
network, and a thousand jobs must not each hit the Hub). Building a task loads its dataset
(into HF_HOME's datasets cache) and imports its checker modules; IFEval's checkers download
NLTK's punkt_tab at import time into the first writable folder of NLTK_DATA. This command does
both on the login node, with the same environment the jobs get, and writes a manifest of what
each task read. The task handling it shares with `codit evaluate` is in `codit.lmeval_tasks`.
"""

from __future__ import annotations

import argparse
import os

from codit.config import OFFLINE_VARIABLES
from codit.lmeval_tasks import check_task_data, check_tasks_known, parse_tasks, task_manager
from codit.provenance import provenance, write_json


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
