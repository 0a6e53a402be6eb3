"""CoDIT against direct generation, item by item: the paired bootstrap table of the report.

For every student evaluated on a CoDIT dataset and on the direct dataset of the same teacher
pair, and for every task and metric of the main table, `codit.report.stats.compare_replicates`
averages each benchmark item's score over the replicate seeds both arms were evaluated with (the
same seed set for both), then resamples the items (prompts for IFEval's instruction-level metrics)
and gives CoDIT minus direct with a 95% percentile interval. Only CoDIT is paired with direct:
Best-of-N, public and chat-vector arms are not. A metric that has no per-item score (e.g. a
corpus-level F1) is listed as skipped with the reason, never dropped silently.

A model's tasks may come in several files (the lm-eval evaluation and each judged benchmark's
scores file); their samples files are joined per model and seed. The comparison runs on the
items that every samples file of both arms scored: a judged benchmark leaves out an item whose
verdict was unparsable, so `n_items` (compared) may be below `n_items_direct` and
`n_items_codit` (the items each arm scored in all its seeds).

The item bootstrap holds the trained students fixed: it says whether these students differ, not
whether another training run would. With several seeds the table also gives the seed-level
comparison: CoDIT minus direct per seed (seed s of each arm), its mean and 95% Student-t
interval across seeds (`seed_low`, `seed_high`), which carries the training noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from codit.report.render import markdown_grid
from codit.report.stats import compare_replicates, seed_interval
from codit.report.tables import eval_labels, model_identity
from codit.workflow.naming import CODIT, DIRECT_ARM, format_number

NOTHING_PAIRED = (
    "No CoDIT arm could be paired: it needs a direct arm of the same pair and student, "
    "evaluated with the same seeds, both with samples files."
)
RESAMPLES = 10000
SEED = 0
COLUMNS = [
    "teacher_pair", "student", "arm", "alpha", "beta", "task", "metric",
    "n_items", "n_items_direct", "n_items_codit", "n_seeds",
    "direct", "codit", "difference", "low", "high", "p_value",
    "seed_difference", "seed_low", "seed_high",
]  # fmt: skip
# (teacher_pair, student, arm name) -> replicate seed (None when unlabelled) -> task -> the
# samples file, joined over the model's evaluation files
Replicates = dict[tuple[str, str, str], dict[Any, dict[str, str]]]


def sample_files(payload: Mapping[str, Any]) -> dict[str, str]:
    """task -> samples file of one evaluation (written by `codit evaluate --samples-dir`)."""
    return dict(payload.get("codit", {}).get("sample_files") or {})


def group_replicates(
    evaluations: Iterable[tuple[str, Mapping[str, Any]]],
) -> tuple[Replicates, dict[tuple[str, str, str], dict[str, Any]]]:
    """(direct and CoDIT samples files by model, seed and task; identity of each CoDIT model)."""
    replicates: Replicates = {}
    codit: dict[tuple[str, str, str], dict[str, Any]] = {}
    for source, payload in evaluations:
        identity = model_identity(eval_labels(payload, source), source)
        if identity["arm"] not in {DIRECT_ARM, CODIT}:
            continue  # only CoDIT is paired with direct
        key = (identity["teacher_pair"], identity["student"], identity["arm_name"])
        seed = None if math.isnan(identity["seed"]) else int(identity["seed"])
        replicates.setdefault(key, {}).setdefault(seed, {}).update(sample_files(payload))
        if identity["arm"] == CODIT:
            codit[key] = {
                "teacher_pair": key[0], "student": key[1], "arm": key[2],
                "alpha": identity["alpha"], "beta": identity["beta"],
            }  # fmt: skip
    return replicates, codit


def shared_files(
    direct: Mapping[Any, Mapping[str, str]], codit: Mapping[Any, Mapping[str, str]]
) -> dict[str, tuple[list[str], list[str]]]:
    """task -> (direct files, CoDIT files) over the seeds both arms hold, in seed order.

    A task counts only when every shared seed of both arms has its samples file.
    """
    seeds = sorted(direct.keys() & codit.keys(), key=lambda seed: (seed is None, seed or 0))
    files_a = [direct[seed] for seed in seeds]
    files_b = [codit[seed] for seed in seeds]
    tasks = set.intersection(*(set(files) for files in files_a + files_b)) if seeds else set()
    return {
        task: ([files[task] for files in files_a], [files[task] for files in files_b])
        for task in sorted(tasks)
    }


def seed_differences(main: pd.DataFrame) -> dict[tuple, dict[str, float]]:
    """(pair, student, CoDIT arm, task, metric) -> mean and t interval of CoDIT - direct over
    the seeds both arms hold (low/high NaN below two seeds)."""
    trained = main[main["arm"].isin([DIRECT_ARM, CODIT])]
    keys = ["teacher_pair", "student", "task", "metric"]
    found = {}
    for group, rows in trained.groupby(keys, sort=False):
        direct = rows[rows["arm"] == DIRECT_ARM].set_index("seed")["value"]
        for arm_name, codit in rows[rows["arm"] == CODIT].groupby("arm_name"):
            differences = (codit.set_index("seed")["value"] - direct).dropna()
            if differences.empty:
                continue
            interval = seed_interval(differences.tolist())
            found[(*group[:2], arm_name, *group[2:])] = {
                "seed_difference": interval["mean"],
                "seed_low": math.nan if interval["low"] is None else interval["low"],
                "seed_high": math.nan if interval["high"] is None else interval["high"],
            }
    return found


def paired_comparisons(
    evaluations: Iterable[tuple[str, Mapping[str, Any]]], main: pd.DataFrame
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """(table of CoDIT - direct per pair, student, arm, task, metric; skipped comparisons)."""
    replicates, codit = group_replicates(evaluations)
    across_seeds = seed_differences(main)
    no_seeds = dict.fromkeys(["seed_difference", "seed_low", "seed_high"], math.nan)
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
                    result = compare_replicates(
                        files_a, files_b, metric, RESAMPLES, SEED, shared_only=True
                    )
                except ValueError as error:
                    skipped.append({"arm": identity["arm"], "task": task, "metric": metric,
                                    "reason": str(error)})  # fmt: skip
                    continue
                rows.append({
                    **identity, "task": task, "metric": metric,
                    "n_items": result["n_items"], "n_items_direct": result["n_items_a"],
                    "n_items_codit": result["n_items_b"], "n_seeds": len(files_a),
                    "direct": result["mean_a"], "codit": result["mean_b"],
                    "difference": result["difference"],
                    "low": result["low"], "high": result["high"], "p_value": result["p_value"],
                    **across_seeds.get((*key, task, metric), no_seeds),
                })  # fmt: skip
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = ["teacher_pair", "task", "metric", "student", "alpha", "beta"]
    return table.sort_values(order, kind="stable").reset_index(drop=True), skipped


def items_text(rows: pd.DataFrame) -> str:
    """`8 items` when both arms scored every item; else the range compared and why it is lower."""
    compared = rows["n_items"].astype(int)
    low, high = compared.min(), compared.max()
    number = str(low) if low == high else f"{low}–{high}"
    text = f"Compared on {number} item{'' if high == 1 else 's'}"
    whole = (rows["n_items"] == rows["n_items_direct"]) & (rows["n_items"] == rows["n_items_codit"])
    if whole.all():
        return text + "."
    return (
        text + ": the items that both arms scored in every seed (an item without a valid "
        "verdict is left out; paired.csv's n_items_direct and n_items_codit count each arm's)."
    )


def seeds_text(counts: Iterable[int]) -> str:
    """`averaged over 3 seeds` (or `1–3 seeds` when the arms differ); `1 seed` for one."""
    numbers = list(counts)
    low, high = min(numbers), max(numbers)
    number = str(low) if low == high else f"{low}–{high}"
    return f"averaged over {number} seed{'' if high == 1 else 's'}"


def format_difference(
    row: Mapping[str, Any],
    percent: bool,
    keys: tuple[str, str, str] = ("difference", "low", "high"),
) -> str:
    """`+1.0 [-4.0, +6.0]` (percentage points for fractions); `*` when 0 is outside. `keys`
    name the difference and its interval (the item bootstrap's by default)."""
    scale = 100.0 if percent else 1.0
    difference, low, high = (float(row[key]) for key in keys)
    if any(math.isnan(value) for value in (difference, low, high)):
        return "–"
    mark = "*" if low > 0 or high < 0 else ""
    return f"{scale * difference:+.1f} [{scale * low:+.1f}, {scale * high:+.1f}]{mark}"


SEED_KEYS = ("seed_difference", "seed_low", "seed_high")


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
        body, seed_body = [], []
        for student, by_student in rows.groupby("student", sort=True):
            cells = {
                row["arm"]: format_difference(row, percent) for _, row in by_student.iterrows()
            }
            body.append([student, *(cells.get(arm, "–") for arm in arms)])
            cells = {
                row["arm"]: format_difference(row, percent, SEED_KEYS)
                for _, row in by_student.iterrows()
            }
            seed_body.append([student, *(cells.get(arm, "–") for arm in arms)])
        header = ["student"] + [
            f"α={format_number(alpha)}" + ("" if one_beta else f", β={format_number(beta)}")
            for alpha, beta in zip(columns["alpha"], columns["beta"], strict=True)
        ]
        lines += [
            "",
            f"## {pair}: {task} / {metric}",
            "",
            f"Item scores {seeds_text(rows['n_seeds'].astype(int))} per arm. {items_text(rows)}",
            "",
            markdown_grid(header, body, 1),
        ]
        if rows["seed_low"].notna().any():
            lines += [
                "",
                "Across seeds (CoDIT minus direct per seed, mean and 95% t interval; the "
                "training noise the item bootstrap leaves out):",
                "",
                markdown_grid(header, seed_body, 1),
            ]
    return "\n".join(lines) + "\n"
