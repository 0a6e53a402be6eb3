"""`codit prefetch`: fetch what lm-eval tasks read from the network into the hub cache, once.

Compute jobs run with HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1 (cluster nodes often have no
network, and a thousand jobs must not each hit the Hub). Building a task loads its dataset
(into HF_HOME's datasets cache) and imports its checker modules; IFEval's checkers download
NLTK's punkt_tab at import time into the first writable folder of NLTK_DATA. This command does
both on the login node, with the same environment the jobs get, and writes a manifest of what
each task read. The task handling it shares with `codit evaluate` is in `codit.evaluation.tasks`.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from codit.evaluation.tasks import TaskSelection, check_task_data
from codit.workflow.config import OFFLINE_VARIABLES
from codit.workflow.provenance import provenance, write_json
from codit.workflow.settings import Settings, group, option


@dataclass(frozen=True, kw_only=True)
class PrefetchRun(Settings):
    """One `codit prefetch` run: the tasks, and the manifest it writes."""

    selection: TaskSelection = group(TaskSelection, "tasks")
    out: str = option(help="manifest of the fetched tasks (JSON)")


add_arguments = PrefetchRun.add_arguments


def run(args: argparse.Namespace) -> None:
    prefetch = PrefetchRun.from_args(args)
    tasks, manager = prefetch.selection.names(), prefetch.selection.index()
    described = check_task_data(tasks, manager)
    environment = {
        name: os.environ.get(name)
        for name in ("HF_HOME", "NLTK_DATA", *OFFLINE_VARIABLES)
        if os.environ.get(name)
    }
    write_json(
        prefetch.out,
        {
            "tasks": described,
            "environment": environment,
            "provenance": provenance(prefetch.record()),
        },
    )
    for name, info in described.items():
        splits = ", ".join(f"{split} {rows}" for split, rows in info["splits"].items())
        print(f"codit prefetch: {name}: {info['dataset_path']} ({splits})")
