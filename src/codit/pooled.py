"""`codit verdicts`: the paper's claims decided on the worlds of several runs at once.

A replication (other worlds, other training seeds) decides each claim on its own; pooling its
worlds with the study's gives one verdict over all of them, with W - 1 degrees of freedom for
W worlds in all. Each run's `results/tables/main.csv` is read back, the CoDIT alpha selected
per (world, student) as the report selects it (`tables.select_alpha` on the selection metric),
and the claims decided by `codit.verdicts`. Worlds must not repeat across the runs: the same
teacher pair name in two tables would be averaged as one world.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from codit import tables, verdicts
from codit.provenance import file_sha256, provenance, write_json
from codit.report import alpha_selection, write_verdicts
from codit.settings import Settings, option

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


def read_main_tables(paths: tuple[Path, ...]) -> pd.DataFrame:
    """The runs' main tables, one after the other; a world found in two of them is an error."""
    frames, owner = [], {}
    for path in paths:
        frame = pd.read_csv(path)
        for column in TEXT_COLUMNS:
            frame[column] = frame[column].fillna("").astype(str)
        for world in sorted(set(frame["teacher_pair"]) - {""}):
            if world in owner:
                raise ValueError(
                    f"world {world!r} is in both {owner[world]} and {path}: pooled runs need "
                    "worlds of their own (other seeds, other teacher pair names)"
                )
            owner[world] = path
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def pooled_verdicts(run: PooledRun) -> list[verdicts.Verdict]:
    """Every claim's verdicts over the worlds of all the runs (alpha selected and checked as
    the report does; main.csv has no metric directions, so higher is better)."""
    table = read_main_tables(run.main)
    selected = alpha_selection(tables.summary_table(table), run.select_alpha_on, {})
    return verdicts.claim_verdicts(table, selected, {}, run.select_alpha_on)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    PooledRun.add_arguments(parser)


def run(args: argparse.Namespace) -> None:
    pooled = PooledRun.from_args(args)
    claims = pooled_verdicts(pooled)
    out = pooled.out_dir
    write_verdicts(
        claims,
        out / OUTPUTS["csv"],
        out / OUTPUTS["markdown"],
        out / OUTPUTS["figure"],
        pooled.select_alpha_on,
    )
    record = provenance({**pooled.record(), "confidence": tables.CONFIDENCE})
    record["inputs"] = {str(path): file_sha256(path) for path in pooled.main}
    record["verdicts"] = verdicts.verdict_records(claims)
    write_json(out / "verdicts_provenance.json", record)
    worlds = max((claim.n_worlds for claim in claims), default=0)
    print(f"codit verdicts: {len(claims)} verdicts over {worlds} worlds -> {out}")
