"""`codit report`: collect evaluation results and dataset cards into tables and figures.

Inputs are the evaluation JSON files written by `codit evaluate` (lm-evaluation-harness results
plus a `codit` block whose `labels` name the model) and the dataset cards of `codit generate`.
Labels of an evaluated student: teacher_pair, student, arm (`direct` or `codit_alpha<A>_beta<B>`).
Labels of an untouched reference model: arm `reference`, the model name in `student`, and
teacher_pair set only for a pair's instruct (post-trained) model; the figure draws those as the
dotted grey "teacher instruct" lines. Base models are references with an empty teacher_pair.

Outputs, under --out-dir: tables/main.csv (tidy), tables/datasets.csv, tables/main.md,
tables/main.tex, tables/paired.{csv,md} (CoDIT minus direct, paired bootstrap over benchmark
items, from the evaluations' samples files), figures/metric_vs_alpha.png,
figures/length_vs_alpha.png, figures/paired_heatmap.png and report_provenance.json.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from codit import paired, plots, tables
from codit.provenance import atomic_path, file_sha256, provenance, write_json

MAIN_CSV = Path("tables/main.csv")
DATASETS_CSV = Path("tables/datasets.csv")
MAIN_MD = Path("tables/main.md")
MAIN_TEX = Path("tables/main.tex")
METRIC_FIGURE = Path("figures/metric_vs_alpha.png")
LENGTH_FIGURE = Path("figures/length_vs_alpha.png")
HEATMAP_FIGURE = Path("figures/paired_heatmap.png")
PAIRED_CSV = Path("tables/paired.csv")
PAIRED_MD = Path("tables/paired.md")
PROVENANCE_JSON = Path("report_provenance.json")
OUTPUTS = (
    MAIN_CSV,
    DATASETS_CSV,
    MAIN_MD,
    MAIN_TEX,
    PAIRED_CSV,
    PAIRED_MD,
    METRIC_FIGURE,
    LENGTH_FIGURE,
    HEATMAP_FIGURE,
    PROVENANCE_JSON,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--evals",
        nargs="+",
        required=True,
        metavar="JSON",
        help="evaluation result files of `codit evaluate` (one per model)",
    )
    parser.add_argument(
        "--cards",
        nargs="*",
        default=[],
        metavar="JSON",
        help="dataset cards of `codit generate` (one per generated dataset)",
    )
    parser.add_argument(
        "--out-dir",
        required=True,
        type=Path,
        help="results folder; tables/, figures/ and report_provenance.json",
    )
    parser.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="TASK/METRIC",
        help="show only matching metrics (shell pattern, repeatable) in main.md, "
        "main.tex and metric_vs_alpha.png; main.csv always holds every metric",
    )


def read_json(path: str | os.PathLike) -> Any:
    """Parse one input file; malformed JSON is reported with the file's name."""
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: invalid JSON ({error.msg}, line {error.lineno})") from None


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
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def report_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "out_dir": str(args.out_dir),
        "metric_patterns": list(args.metric),
        "figure_dpi": plots.DPI,
        "percent_rule": "a metric whose values all lie in [0, 1] is shown in %",
        "best_rule": "per row, lm-eval's higher_is_better direction (default: higher)",
    }


def provenance_record(
    args: argparse.Namespace,
    table: pd.DataFrame,
    datasets: pd.DataFrame,
    skipped_comparisons: list[dict[str, str]],
) -> dict[str, Any]:
    """Inputs with digests, outputs, counts, and the shared provenance block."""
    return {
        "inputs": {
            "evals": [{"path": str(p), "sha256": file_sha256(p)} for p in args.evals],
            "cards": [{"path": str(p), "sha256": file_sha256(p)} for p in args.cards],
        },
        "outputs": [str(args.out_dir / output) for output in OUTPUTS],
        "counts": {
            "main_rows": len(table),
            "metrics": int(table.groupby(["task", "metric"]).ngroups),
            "models": int(
                table.groupby(
                    ["teacher_pair", "student", "arm", "alpha", "beta"], dropna=False
                ).ngroups
            ),
            "datasets": len(datasets),
        },
        # Metrics without a per-item score cannot be paired; each says why.
        "paired_skipped": skipped_comparisons,
        "provenance": provenance(report_settings(args)),
    }


def run(args: argparse.Namespace) -> None:
    evaluations = read_inputs(args.evals)
    table = tables.main_table(evaluations)
    datasets = tables.datasets_table(read_inputs(args.cards))
    shown = select_metrics(table, args.metric)
    metric_tables = tables.metric_tables(shown, tables.higher_is_better(evaluations))

    out = Path(args.out_dir)
    write_csv(table, out / MAIN_CSV)
    write_csv(datasets, out / DATASETS_CSV)
    write_text(tables.render_markdown(metric_tables), out / MAIN_MD)
    write_text(tables.render_latex(metric_tables), out / MAIN_TEX)
    comparisons, skipped = paired.paired_comparisons(evaluations, table)
    write_csv(comparisons, out / PAIRED_CSV)
    write_text(paired.render_paired_markdown(comparisons), out / PAIRED_MD)
    plots.plot_metric_vs_alpha(shown, out / METRIC_FIGURE)
    plots.plot_length_vs_alpha(datasets, out / LENGTH_FIGURE)
    shown_pairs = select_metrics(comparisons, args.metric, strict=False)
    plots.plot_paired_heatmap(shown_pairs, out / HEATMAP_FIGURE)
    write_json(out / PROVENANCE_JSON, provenance_record(args, table, datasets, skipped))
    print(
        f"codit report: {len(table)} result rows, {len(metric_tables)} metrics, "
        f"{len(datasets)} datasets -> {out}"
    )
