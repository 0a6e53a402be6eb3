"""CoDIT against direct generation, item by item: the paired bootstrap table of the report.

For every student evaluated on a CoDIT dataset and on the direct dataset of the same teacher
pair, and for every task and metric of the main table, `codit.stats.compare_files` resamples
the benchmark items both evaluations share (prompts for IFEval's instruction-level metrics) and
gives CoDIT minus direct with a 95% percentile interval. A metric that has no per-item score
(e.g. a corpus-level F1) is listed as skipped with the reason, never dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from codit.naming import DIRECT_ARM, format_number
from codit.stats import compare_files
from codit.tables import REFERENCE_ARM, eval_labels, markdown_grid, model_identity

NOTHING_PAIRED = (
    "No CoDIT arm could be paired: it needs a direct arm of the same pair and student, "
    "both evaluated with samples files."
)
RESAMPLES = 10000
SEED = 0
COLUMNS = [
    "teacher_pair", "student", "arm", "alpha", "beta", "task", "metric", "n_items",
    "direct", "codit", "difference", "low", "high", "p_value",
]  # fmt: skip


def sample_files(payload: Mapping[str, Any]) -> dict[str, str]:
    """task -> samples file of one evaluation (written by `codit evaluate --samples-dir`)."""
    return dict(payload.get("codit", {}).get("sample_files") or {})


def paired_comparisons(
    evaluations: Iterable[tuple[str, Mapping[str, Any]]], main: pd.DataFrame
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """(table of CoDIT - direct per pair, student, arm, task, metric; skipped comparisons)."""
    direct: dict[tuple[str, str], Mapping[str, Any]] = {}
    codit: list[tuple[dict[str, Any], Mapping[str, Any]]] = []
    for source, payload in evaluations:
        labels = eval_labels(payload, source)
        # The arm's full name (codit_alpha0.1_beta1), not only its kind
        identity = {**model_identity(labels, source), "arm": str(labels["arm"])}
        if identity["arm"] == DIRECT_ARM:
            direct[(identity["teacher_pair"], identity["student"])] = payload
        elif identity["arm"] != REFERENCE_ARM:
            codit.append((identity, payload))
    metrics = main[["task", "metric"]].drop_duplicates().itertuples(index=False)
    metrics_by_task: dict[str, list[str]] = {}
    for task, metric in metrics:
        metrics_by_task.setdefault(task, []).append(metric)

    rows, skipped = [], []
    for identity, payload in codit:
        baseline = direct.get((identity["teacher_pair"], identity["student"]))
        if baseline is None:
            continue  # no direct arm in this grid: nothing to pair with
        files_a, files_b = sample_files(baseline), sample_files(payload)
        for task in sorted(set(files_a) & set(files_b)):
            for metric in metrics_by_task.get(task, []):
                try:
                    result = compare_files(files_a[task], files_b[task], metric, RESAMPLES, SEED)
                except ValueError as error:
                    skipped.append({"arm": identity["arm"], "task": task, "metric": metric,
                                    "reason": str(error)})  # fmt: skip
                    continue
                rows.append({
                    **identity, "task": task, "metric": metric,
                    "n_items": result["n_items"], "direct": result["mean_a"],
                    "codit": result["mean_b"], "difference": result["difference"],
                    "low": result["low"], "high": result["high"], "p_value": result["p_value"],
                })  # fmt: skip
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = ["teacher_pair", "task", "metric", "student", "alpha", "beta"]
    return table.sort_values(order, kind="stable").reset_index(drop=True), skipped


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
        "metrics in [0, 1]; * marks an interval that excludes 0.",
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
        lines += ["", f"## {pair}: {task} / {metric}", "", markdown_grid(header, body, 1)]
    return "\n".join(lines) + "\n"
