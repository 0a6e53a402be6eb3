"""`codit verdicts`: the paper's claims decided on the worlds of several runs at once.

A replication (other worlds, other training seeds) decides each claim on its own; pooling its
worlds with the study's gives one verdict over all of them, with W - 1 degrees of freedom for
W worlds in all. Each run's `results/tables/main.csv` is read back, the CoDIT alpha selected
per (world, student) as the report selects it (`pivots.select_alpha` on the selection metric),
and the claims decided by `codit.report.verdicts`. Worlds must not repeat across the runs: the same
teacher pair name in two tables would be averaged as one world.

With `--replication`, the replication's runs are decided on their own too, and
`replication.{csv,md}` set each claim's verdict in the study (the `--main` runs), in the
replication and in both pooled side by side, marking where study and replication disagree,
with each row's chance of agreeing if the pooled estimate were the true effect
(`codit.report.power.verdict_chances`): the agreement two runs of this size can be expected to
reach.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from codit.report import power, render, tables, verdicts
from codit.report.build import alpha_selection, write_csv, write_text, write_verdicts
from codit.workflow.provenance import file_sha256, provenance, write_json
from codit.workflow.settings import Settings, option

OUTPUTS = {"csv": "verdicts.csv", "markdown": "verdicts.md", "figure": "verdicts.png"}
TEXT_COLUMNS = ("teacher_pair", "student_architecture", "teacher_architecture")


@dataclass(frozen=True, kw_only=True)
class PooledRun(Settings):
    """One `codit verdicts` run: the main tables whose worlds are pooled, and where to write."""

    main: tuple[Path, ...] = option(
        help="results/tables/main.csv of each run (the worlds of all of them are pooled)",
        metavar="CSV",
        nargs="+",
    )
    out_dir: Path = option(help="folder for verdicts.csv, verdicts.md, verdicts.png")
    select_alpha_on: str = option(
        verdicts.SELECTION_METRIC, "the metric that selects each row's CoDIT alpha (TASK/METRIC)"
    )
    replication: tuple[Path, ...] = option(
        (),
        help="main.csv of a replication's runs (worlds of their own): decided apart and set "
        "beside the --main runs' verdicts in replication.{csv,md}",
        metavar="CSV",
        nargs="+",
    )


def read_main_table(path: Path) -> pd.DataFrame:
    """One run's main table, its text columns read as text ('' for the public arms)."""
    frame = pd.read_csv(path)
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].fillna("").astype(str)
    return frame


def combine_worlds(parts: list[tuple[Path, pd.DataFrame]]) -> pd.DataFrame:
    """The runs' main tables, one after the other; a world found in two of them is an error."""
    owner: dict[str, Path] = {}
    for path, frame in parts:
        for world in sorted(set(frame["teacher_pair"]) - {""}):
            if world in owner:
                raise ValueError(
                    f"world {world!r} is in both {owner[world]} and {path}: pooled runs need "
                    "worlds of their own (other seeds, other teacher pair names)"
                )
            owner[world] = path
    return pd.concat([frame for _, frame in parts], ignore_index=True)


def read_parts(paths: tuple[Path, ...]) -> list[tuple[Path, pd.DataFrame]]:
    """Each path with its main table, read once, for `combine_worlds` to pool."""
    return [(path, read_main_table(path)) for path in paths]


def read_main_tables(paths: tuple[Path, ...]) -> pd.DataFrame:
    """The main tables at `paths`, pooled (see `combine_worlds`)."""
    return combine_worlds(read_parts(paths))


def decided(table: pd.DataFrame, select_alpha_on: str) -> list[verdicts.Verdict]:
    """Every claim's verdicts over the worlds of `table` (alpha selected and checked as the
    report does; main.csv has no metric directions, so higher is better)."""
    selected = alpha_selection(tables.summary_table(table), select_alpha_on, {})
    return verdicts.claim_verdicts(table, selected, {}, select_alpha_on)


# The three decisions of each claim that replication.{csv,md} set side by side.
RUNS = ("study", "replication", "pooled")


def replication_table(runs: dict[str, list[verdicts.Verdict]]) -> pd.DataFrame:
    """One row per claim (study order, then any the study lacks): each run's estimate,
    interval, worlds and verdict, and whether study and replication give the same verdict."""
    keyed = {
        name: {(v.claim, v.label, v.baseline): v for v in claims} for name, claims in runs.items()
    }
    keys = list(dict.fromkeys(key for name in RUNS for key in keyed[name]))
    rows = []
    for key in keys:
        found = next(keyed[name][key] for name in RUNS if key in keyed[name])
        row = {"claim": key[0], "metric": key[1], "baseline": key[2]}
        row["vs"] = verdicts.baseline_label(found)
        for name in RUNS:
            verdict = keyed[name].get(key)
            row |= {
                f"{name}_{field}": getattr(verdict, field, None)
                for field in ("n_worlds", "estimate", "low", "high", "verdict")
            }
            row[f"{name}_cell"] = verdicts.summary_cell(verdict) if verdict else tables.MISSING_CELL
        both = row["study_verdict"] is not None and row["replication_verdict"] is not None
        row["agree"] = both and row["study_verdict"] == row["replication_verdict"]
        row["agree_chance"] = agree_chance(row)
        rows.append(row)
    return pd.DataFrame(rows)


def agree_chance(row: dict) -> float:
    """The chance that study and replication reach the same verdict if the pooled estimate
    were the true effect (each run's noise from its own interval); NaN without intervals."""
    pair = ("study", "replication")
    needed = [row.get(f"{name}_{field}") for name in pair for field in ("low", "high")]
    needed.append(row.get("pooled_estimate"))
    if any(value is None or math.isnan(value) for value in needed):
        return math.nan
    study, replication = (
        power.verdict_chances(
            row["pooled_estimate"], row[f"{name}_low"], row[f"{name}_high"], row[f"{name}_n_worlds"]
        )
        for name in pair
    )
    return sum(study[outcome] * replication[outcome] for outcome in study)


def replication_markdown(table: pd.DataFrame, runs: dict[str, list[verdicts.Verdict]]) -> str:
    """The claims side by side and one line on how many verdicts agree."""
    worlds = {name: max((v.n_worlds for v in claims), default=0) for name, claims in runs.items()}
    header = ["claim", "metric", "vs", *(f"{name} ({worlds[name]} worlds)" for name in RUNS)]
    body = [
        [
            row.claim,
            row.metric,
            row.vs,
            *(getattr(row, f"{name}_cell") for name in RUNS),
            "yes" if row.agree else "**no**",
        ]
        for row in table.itertuples()
    ]
    agree = int(table["agree"].sum())
    chances = table["agree_chance"].dropna()
    expected = (
        f" If the pooled estimates were the true effects, {chances.sum():.1f} of the "
        f"{len(chances)} rows with intervals would be expected to agree (all of them: "
        f"probability {chances.prod():.2g}; codit.report.power.verdict_chances)."
        if len(chances)
        else ""
    )
    return (
        f"{agree} of {len(table)} verdicts agree between the study and the replication."
        f"{expected}\n\n"
        f"{render.markdown_grid([*header, 'agree'], body, numeric_from=3)}\n"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    PooledRun.add_arguments(parser)


def run(args: argparse.Namespace) -> None:
    pooled = PooledRun.from_args(args)
    # each table is read once: the study's, the replication's and the pooled verdicts share them
    study_parts = read_parts(pooled.main)
    claims = decided(combine_worlds(study_parts), pooled.select_alpha_on)
    out = pooled.out_dir
    write_verdicts(
        claims,
        out / OUTPUTS["csv"],
        out / OUTPUTS["markdown"],
        out / OUTPUTS["figure"],
        pooled.select_alpha_on,
    )
    record = provenance({**pooled.record(), "confidence": tables.CONFIDENCE})
    record["inputs"] = {str(path): file_sha256(path) for path in pooled.main + pooled.replication}
    record["verdicts"] = verdicts.verdict_records(claims)
    write_json(out / "verdicts_provenance.json", record)
    worlds = max((claim.n_worlds for claim in claims), default=0)
    print(f"codit verdicts: {len(claims)} verdicts over {worlds} worlds -> {out}")
    if pooled.replication:
        replication_parts = read_parts(pooled.replication)
        compare_replication(pooled, claims, study_parts, replication_parts)


def compare_replication(
    pooled: PooledRun,
    study: list[verdicts.Verdict],
    study_parts: list[tuple[Path, pd.DataFrame]],
    replication_parts: list[tuple[Path, pd.DataFrame]],
) -> None:
    """replication.{csv,md}: the study's, the replication's and the pooled verdicts."""
    runs = {
        "study": study,
        "replication": decided(combine_worlds(replication_parts), pooled.select_alpha_on),
        "pooled": decided(combine_worlds(study_parts + replication_parts), pooled.select_alpha_on),
    }
    table = replication_table(runs)
    write_csv(table, pooled.out_dir / "replication.csv")
    write_text(replication_markdown(table, runs), pooled.out_dir / "replication.md")
    print(
        f"codit verdicts: {int(table['agree'].sum())} of {len(table)} verdicts agree with the "
        f"replication -> {pooled.out_dir / 'replication.md'}"
    )
