"""`codit report`: collect evaluation results and dataset cards into tables and figures.

Inputs are the evaluation JSON files written by `codit evaluate` (lm-evaluation-harness results
plus a `codit` block whose `labels` name the model) and the dataset cards of `codit generate`.
Labels of an evaluated student: teacher_pair (empty for public arms, which belong to no pair),
student, arm (`direct`, `codit_alpha<A>_beta<B>`, `bestof<N>_<oracle|judge>`, `public_<name>`,
`chatvector_r<R>`; alpha and beta are read from it), seed (the replicate seed; empty for chat
vectors), and the model types student_architecture and teacher_architecture (optional). Labels
of an untouched reference model: arm `reference`, the model name in `student`, and teacher_pair
set only for a pair's instruct (post-trained) model; the figure draws those as the dotted grey
"teacher instruct" lines. Base models are references with an empty teacher_pair. Files without
seed or architecture labels (older ones) still load.

Outputs, under --out-dir: tables/main.csv (tidy, one row per evaluation, task and metric),
tables/summary.csv (each model's replicates: mean across seeds and 95% t interval; public arms
copied to every teacher pair), tables/datasets.csv, tables/main.md and tables/main.tex (teacher
pair x student with its architectures, one column per arm), tables/paired.{csv,md} (CoDIT minus
direct, paired bootstrap over benchmark items of seed-averaged scores, from the evaluations'
samples files), tables/verdicts.{csv,md} (one verdict per claim of the paper, with an interval
across worlds, i.e. teacher pairs: codit.report.verdicts; also main.md's `Verdicts` section and
report_provenance.json's `verdicts`), figures/metric_vs_alpha.png, figures/length_vs_alpha.png,
figures/paired_heatmap.png, figures/judged_vs_alpha.png, figures/verdicts.png and
report_provenance.json.

Judged benchmarks come as evaluation-shaped files too (codit.judged.common's scores.json: task
`mt_bench` with score, turn_1 and turn_2; `alpaca_eval` with length_controlled_winrate,
win_rate and avg_length; `wildbench` with score, wb_score and task_macro; per-item samples), so
they join every table, the paired bootstrap and the figures like an lm-eval task. As in the
paper, each row's CoDIT alpha is selected on MT-Bench (`--select-alpha-on`): the arm with the
best mean across seeds fills the `CoDIT (selected α)` column of every metric, and main.md lists
the choices. Selecting and reporting on the same benchmark flatters that benchmark's selected
column; the other metrics' columns are not selected on.

With a judged benchmark present, main.md (after the selection) and main.tex (first) open with
the paper's table: a block per teacher pair and student, its arms and reference models as rows,
AE2 LC, AE2 WR, MT-Bench and WB-Score as columns (those present), with a note of the verdicts
AlpacaEval 2's win rates rest on (weighted or plain; also in report_provenance.json under
`alpaca_eval_verdicts`). figures/judged_vs_alpha.png draws those metrics against alpha; it is
always written (a declared output), saying so when no judged benchmark ran.
"""

from __future__ import annotations

import argparse
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from codit.report import paired, pivots, plots, render, tables, verdicts
from codit.workflow.benchmarks import SELECTION_METRIC
from codit.workflow.jobs import REPORT_OUTPUTS
from codit.workflow.provenance import atomic_path, file_sha256, provenance, read_json, write_json
from codit.workflow.settings import Settings, option

# Output names below --out-dir: one list, which the report rule's outputs also read.
OUTPUTS = {name: Path(path) for name, path in REPORT_OUTPUTS.items()}


@dataclass(frozen=True, kw_only=True)
class ReportRun(Settings):
    """One `codit report` run: the evaluations and cards it reads, and where it writes."""

    evals: tuple[str, ...] = option(
        help="evaluation result files of `codit evaluate` (one per model)",
        metavar="JSON",
        nargs="+",
    )
    cards: tuple[str, ...] = option(
        (),
        "dataset cards of `codit generate` (one per generated dataset)",
        metavar="JSON",
        nargs="*",
    )
    out_dir: Path = option(help="results folder; tables/, figures/ and report_provenance.json")
    metric: tuple[str, ...] = option(
        (),
        "show only matching metrics (shell pattern, repeatable) in main.md, main.tex and the "
        "figures; main.csv and summary.csv always hold every metric",
        metavar="TASK/METRIC",
    )
    select_alpha_on: str = option(
        SELECTION_METRIC,
        "the metric that selects each row's CoDIT alpha for the `CoDIT (selected α)` column "
        f"(the paper: MT-Bench); without it in the results (the default {SELECTION_METRIC} "
        "when MT-Bench is off) there is no such column",
        metavar="TASK/METRIC",
    )


add_arguments = ReportRun.add_arguments


def read_inputs(paths: list[str]) -> list[tuple[str, Any]]:
    """(path, parsed JSON) for each input file, in the order given."""
    return [(str(path), read_json(path)) for path in paths]


def select_metrics(table: pd.DataFrame, patterns: list[str], strict: bool = True) -> pd.DataFrame:
    """Rows whose `task/metric` matches one of the patterns; every row when there are none.
    `strict`: matching nothing is an error (for the main table, which holds every metric)."""
    if not patterns or table.empty:
        return table
    names = table["task"] + "/" + table["metric"]
    keep = names.map(lambda name: any(fnmatch.fnmatchcase(name, p) for p in patterns))
    if strict and not keep.any():
        known = ", ".join(sorted(names.unique()))
        raise ValueError(f"--metric {' '.join(patterns)} matches none of: {known}")
    return table[keep]


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a table; seeds and counts as integers (pandas holds them as floats beside NaN)."""
    integers = {
        c: frame[c].astype("Int64")
        for c in ("seed", "n_seeds", "n_scored", "n_items")
        if c in frame.columns
    }
    with atomic_path(path) as tmp:
        frame.assign(**integers).to_csv(tmp, index=False)


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_verdicts(
    claims: list[verdicts.Verdict],
    csv_path: Path,
    markdown_path: Path,
    figure_path: Path,
    selection_metric: str,
) -> None:
    """verdicts.csv, verdicts.md and verdicts.png: the report's, and `codit verdicts`' over
    several runs."""
    write_csv(verdicts.verdict_table(claims), csv_path)
    write_text(verdicts.render_markdown(claims, selection_metric=selection_metric), markdown_path)
    plots.plot_verdicts(claims, figure_path)


def report_settings(report: ReportRun) -> dict[str, Any]:
    return {
        "out_dir": str(report.out_dir),
        "metric_patterns": list(report.metric),
        "figure_dpi": plots.DPI,
        "percent_rule": "a metric whose values all lie in [0, 1] is shown in %",
        "best_rule": "per row, on the mean across seeds, lm-eval's higher_is_better direction "
        "(default: higher)",
        "seed_interval": f"Student-t, {tables.CONFIDENCE:.0%}, across seeds; none for one seed",
    }


MODEL_KEYS = ["teacher_pair", "student", "arm_name", "seed"]


def seeds_per_arm(table: pd.DataFrame) -> dict[str, int]:
    """arm name -> how many distinct replicate seeds it was evaluated with (0: unseeded)."""
    trained = table[table["arm"] != tables.REFERENCE_ARM]
    return {
        str(name): int(rows["seed"].nunique())
        for name, rows in trained.groupby("arm_name", sort=True)
    }


def provenance_record(
    report: ReportRun,
    table: pd.DataFrame,
    datasets: pd.DataFrame,
    skipped_comparisons: list[dict[str, str]],
) -> dict[str, Any]:
    """Inputs with digests, outputs, counts, and the shared provenance block."""
    return {
        "inputs": {
            "evals": [{"path": str(p), "sha256": file_sha256(p)} for p in report.evals],
            "cards": [{"path": str(p), "sha256": file_sha256(p)} for p in report.cards],
        },
        "outputs": [str(report.out_dir / output) for output in OUTPUTS.values()],
        "counts": {
            "main_rows": len(table),
            "metrics": int(table.groupby(["task", "metric"]).ngroups),
            "models": int(table.groupby(MODEL_KEYS, dropna=False).ngroups),
            "datasets": len(datasets),
            "seeds_per_arm": seeds_per_arm(table),
        },
        # Metrics without a per-item score cannot be paired; each says why.
        "paired_skipped": skipped_comparisons,
        "provenance": provenance(report_settings(report)),
    }


def alpha_selection(
    summary: pd.DataFrame, on: str, directions: dict[str, bool]
) -> dict[tuple[str, str], str]:
    """(pair, student) -> selected CoDIT arm; a metric other than the default must exist."""
    task, slash, metric = on.partition("/")
    present = ((summary["task"] == task) & (summary["metric"] == metric)).any()
    if not slash or (not present and on != SELECTION_METRIC):
        known = ", ".join(sorted(set(summary["task"] + "/" + summary["metric"])))
        raise ValueError(f"--select-alpha-on {on!r} is none of the results' metrics: {known}")
    return pivots.select_alpha(summary, on, directions) if present else {}


def selection_table(
    summary: pd.DataFrame,
    on: str,
    directions: dict[str, bool],
    selected: dict[tuple[str, str], str],
) -> pivots.MetricTable | None:
    """The selection metric's table, for main.md's list of selected alphas (None: none)."""
    if not selected:
        return None
    task, _, metric = on.partition("/")
    rows = summary[(summary["task"] == task) & (summary["metric"] == metric)]
    return pivots.metric_table(rows, tables.metric_direction(directions, task, metric), selected)


def run(args: argparse.Namespace) -> None:
    write_report(ReportRun.from_args(args))


def write_report(report: ReportRun) -> None:
    """Every table and figure of the report, and its provenance."""
    evaluations = read_inputs(report.evals)
    table = tables.main_table(evaluations)
    summary = tables.summary_table(table)
    datasets = tables.datasets_table(read_inputs(report.cards))
    shown = select_metrics(summary, report.metric)
    directions = tables.higher_is_better(evaluations)
    selected = alpha_selection(summary, report.select_alpha_on, directions)
    metric_tables = pivots.metric_tables(shown, directions, selected)
    selection = selection_table(summary, report.select_alpha_on, directions, selected)
    verdicts_of_judge = tables.alpaca_eval_verdicts(evaluations)
    paper = pivots.paper_table(
        shown, directions, selected, verdicts_of_judge, tables.partially_scored(table)
    )
    claims = verdicts.claim_verdicts(table, selected, directions, report.select_alpha_on)

    out = Path(report.out_dir)
    write_csv(table, out / OUTPUTS["table"])
    write_csv(summary, out / OUTPUTS["summary"])
    write_csv(datasets, out / OUTPUTS["datasets"])
    claims_section = verdicts.markdown_section(claims, selection_metric=report.select_alpha_on)
    markdown = render.render_markdown(metric_tables, selection, paper, claims_section)
    write_text(markdown, out / OUTPUTS["markdown"])
    write_text(render.render_latex(metric_tables, paper), out / OUTPUTS["latex"])
    comparisons, skipped = paired.paired_comparisons(evaluations, table)
    write_csv(comparisons, out / OUTPUTS["paired_csv"])
    write_text(paired.render_paired_markdown(comparisons), out / OUTPUTS["paired"])
    write_verdicts(
        claims,
        out / OUTPUTS["verdicts_csv"],
        out / OUTPUTS["verdicts"],
        out / OUTPUTS["verdicts_figure"],
        report.select_alpha_on,
    )
    plots.plot_metric_vs_alpha(shown, out / OUTPUTS["metric_figure"])
    plots.plot_length_vs_alpha(datasets, out / OUTPUTS["length_figure"])
    shown_pairs = select_metrics(comparisons, report.metric, strict=False)
    plots.plot_paired_heatmap(shown_pairs, out / OUTPUTS["heatmap_figure"])
    plots.plot_judged_vs_alpha(shown, out / OUTPUTS["judged_figure"])
    record = provenance_record(report, table, datasets, skipped)
    record["alpha_selection"] = {
        "on": report.select_alpha_on if selected else None,
        "selected": [
            {"teacher_pair": pair, "student": student, "arm": arm}
            for (pair, student), arm in sorted(selected.items())
        ],
    }
    # Whether AE2's win rates rest on weighted or plain verdicts (None: AlpacaEval 2 is off).
    record["alpaca_eval_verdicts"] = verdicts_of_judge
    # One verdict per claim of the paper, decided across worlds (teacher pairs).
    record["verdicts"] = verdicts.verdict_records(claims)
    record["verdict_confidence"] = tables.CONFIDENCE
    write_json(out / OUTPUTS["provenance"], record)
    print(
        f"codit report: {len(table)} result rows, {len(metric_tables)} metrics, "
        f"{len(datasets)} datasets -> {out}"
    )
