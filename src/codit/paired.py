"""CoDIT against direct generation, item by item: the paired bootstrap table of the report.

For every student evaluated on a CoDIT dataset and on the direct dataset of the same teacher
pair, and for every task and metric of the main table, `codit.stats.compare_replicates` averages
each benchmark item's score over the replicate seeds both arms were evaluated with (the same
seed set for both), then resamples the items (prompts for IFEval's instruction-level metrics)
and gives CoDIT minus direct with a 95% percentile interval. Only CoDIT is paired with direct:
Best-of-N, public and chat-vector arms are not. A metric that has no per-item score (e.g. a
corpus-level F1) is listed as skipped with the reason, never dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from codit.naming import CODIT, DIRECT_ARM, format_number
from codit.stats import compare_replicates
from codit.tables import eval_labels, markdown_grid, model_identity

NOTHING_PAIRED = (
    "No CoDIT arm could be paired: it needs a direct arm of the same pair and student, "
    "evaluated with the same seeds, both with samples files."
)
RESAMPLES = 10000
SEED = 0
COLUMNS = [
    "teacher_pair", "student", "arm", "alpha", "beta", "task", "metric", "n_items", "n_seeds",
    "direct", "codit", "difference", "low", "high", "p_value",
]  # fmt: skip
# (teacher_pair, student, arm name) -> replicate seed (None when unlabelled) -> evaluation
Replicates = dict[tuple[str, str, str], dict[Any, Mapping[str, Any]]]


def sample_files(payload: Mapping[str, Any]) -> dict[str, str]:
    """task -> samples file of one evaluation (written by `codit evaluate --samples-dir`)."""
    return dict(payload.get("codit", {}).get("sample_files") or {})


def group_replicates(
    evaluations: Iterable[tuple[str, Mapping[str, Any]]],
) -> tuple[Replicates, dict[tuple[str, str, str], dict[str, Any]]]:
    """(direct and CoDIT evaluations by model and seed; identity of each CoDIT model)."""
    replicates: Replicates = {}
    codit: dict[tuple[str, str, str], dict[str, Any]] = {}
    for source, payload in evaluations:
        identity = model_identity(eval_labels(payload, source), source)
        if identity["arm"] not in {DIRECT_ARM, CODIT}:
            continue  # only CoDIT is paired with direct
        key = (identity["teacher_pair"], identity["student"], identity["arm_name"])
        seed = None if math.isnan(identity["seed"]) else int(identity["seed"])
        replicates.setdefault(key, {})[seed] = payload
        if identity["arm"] == CODIT:
            codit[key] = {
                "teacher_pair": key[0], "student": key[1], "arm": key[2],
                "alpha": identity["alpha"], "beta": identity["beta"],
            }  # fmt: skip
    return replicates, codit


def shared_files(
    direct: Mapping[Any, Mapping[str, Any]], codit: Mapping[Any, Mapping[str, Any]]
) -> dict[str, tuple[list[str], list[str]]]:
    """task -> (direct files, CoDIT files) over the seeds both arms hold, in seed order.

    A task counts only when every shared seed of both arms has its samples file.
    """
    seeds = sorted(direct.keys() & codit.keys(), key=lambda seed: (seed is None, seed or 0))
    files_a = [sample_files(direct[seed]) for seed in seeds]
    files_b = [sample_files(codit[seed]) for seed in seeds]
    tasks = set.intersection(*(set(files) for files in files_a + files_b)) if seeds else set()
    return {
        task: ([files[task] for files in files_a], [files[task] for files in files_b])
        for task in sorted(tasks)
    }


def paired_comparisons(
    evaluations: Iterable[tuple[str, Mapping[str, Any]]], main: pd.DataFrame
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """(table of CoDIT - direct per pair, student, arm, task, metric; skipped comparisons)."""
    replicates, codit = group_replicates(evaluations)
    metrics_by_task: dict[str, list[str]] = {}
    for task, metric in main[["task", "metric"]].drop_duplicates().itertuples(index=False):
        metrics_by_task.setdefault(task, []).append(metric)

    rows, skipped = [], []
    for key, identity in sorted(codit.items()):
        baseline = replicates.get((key[0], key[1], DIRECT_ARM))
        if baseline is None:
            continue  # no direct arm in this grid: nothing to pair with
        for task, (files_a, files_b) in shared_files(baseline, replicates[key]).items():
            for metric in metrics_by_task.get(task, []):
                try:
                    result = compare_replicates(files_a, files_b, metric, RESAMPLES, SEED)
                except ValueError as error:
                    skipped.append({"arm": identity["arm"], "task": task, "metric": metric,
                                    "reason": str(error)})  # fmt: skip
                    continue
                rows.append({
                    **identity, "task": task, "metric": metric,
                    "n_items": result["n_items"], "n_seeds": len(files_a),
                    "direct": result["mean_a"], "codit": result["mean_b"],
                    "difference": result["difference"],
                    "low": result["low"], "high": result["high"], "p_value": result["p_value"],
                })  # fmt: skip
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = ["teacher_pair", "task", "metric", "student", "alpha", "beta"]
    return table.sort_values(order, kind="stable").reset_index(drop=True), skipped


def seeds_text(counts: Iterable[int]) -> str:
    """`averaged over 3 seeds` (or `1–3 seeds` when the arms differ); `1 seed` for one."""
    numbers = list(counts)
    low, high = min(numbers), max(numbers)
    number = str(low) if low == high else f"{low}–{high}"
    return f"averaged over {number} seed{'' if high == 1 else 's'}"


def format_difference(row: Mapping[str, Any], percent: bool) -> str:
    """`+1.0 [-4.0, +6.0]` (percentage points for fractions); `*` when 0 is outside."""
    scale = 100.0 if percent else 1.0
    if any(math.isnan(float(row[key])) for key in ("difference", "low", "high")):
        return "–"
    mark = "*" if row["low"] > 0 or row["high"] < 0 else ""
    return (
        f"{scale * row['difference']:+.1f} "
        f"[{scale * row['low']:+.1f}, {scale * row['high']:+.1f}]{mark}"
    )


def render_paired_markdown(table: pd.DataFrame) -> str:
    """One section per teacher pair and metric: students as rows, CoDIT arms as columns."""
    lines = [
        "# CoDIT minus direct generation, paired over benchmark items",
        "",
        f"Paired bootstrap ({RESAMPLES} resamples of the items both arms were evaluated on, "
        f"seed {SEED}): difference and 95% percentile interval, in percentage points for "
        "metrics in [0, 1]; * marks an interval that excludes 0. With several training seeds, "
        "each item's score is first averaged over the seeds both arms were trained with.",
    ]
    if table.empty:
        return "\n".join([*lines, "", NOTHING_PAIRED, ""])
    for (pair, task, metric), rows in table.groupby(["teacher_pair", "task", "metric"]):
        percent = rows[["direct", "codit"]].stack().between(0, 1).all()
        columns = rows.drop_duplicates("arm").sort_values(["alpha", "beta"])
        arms = columns["arm"].tolist()
        one_beta = columns["beta"].nunique() == 1
        body = []
        for student, by_student in rows.groupby("student", sort=True):
            cells = {
                row["arm"]: format_difference(row, percent) for _, row in by_student.iterrows()
            }
            body.append([student, *(cells.get(arm, "–") for arm in arms)])
        header = ["student"] + [
            f"α={format_number(alpha)}" + ("" if one_beta else f", β={format_number(beta)}")
            for alpha, beta in zip(columns["alpha"], columns["beta"], strict=True)
        ]
        lines += [
            "",
            f"## {pair}: {task} / {metric}",
            "",
            f"Item scores {seeds_text(rows['n_seeds'].astype(int))} per arm.",
            "",
            markdown_grid(header, body, 1),
        ]
    return "\n".join(lines) + "\n"
