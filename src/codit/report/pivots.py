"""The tables of a run arranged for reading: one table per metric (a row per teacher pair and
student, a column per arm, the cells formatted with their intervals, the best arm marked), the
CoDIT alpha a selection metric chooses per row, and the paper's table.

The paper's table (`PaperTable`) regroups the judged benchmarks' headline metrics
(PAPER_COLUMNS: AlpacaEval 2 LC and WR, MT-Bench, WB-Score) as the paper prints them: a block per
(teacher pair, student), its arms and reference models as rows, one column per metric, each
column being that metric's MetricTable (same cells, intervals and best arm).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from codit.report.tables import (
    ARM_ORDER,
    JUDGED_TASKS,
    MISSING_CELL,
    REFERENCE_ARM,
    SELECTED_ARM,
    metric_direction,
    verdict_note,
)
from codit.workflow.benchmarks import paper_headlines
from codit.workflow.naming import (
    BEST_OF_N,
    CHAT_VECTOR,
    CODIT,
    PUBLIC,
    SCORERS,
    Arm,
    format_number,
    parse_arm,
)

# --------------------------------------------------------------------------- formatting


def is_fraction_metric(values: pd.Series) -> bool:
    """Accuracies and rates live in [0, 1]; they are shown as percentages, the rest as is."""
    finite = values.dropna()
    return bool(len(finite)) and bool(((finite >= 0) & (finite <= 1)).all())


def shown_in_percent(task: str, metric: str, values: pd.Series) -> bool:
    """Whether a metric is drawn and tabled in %: judged benchmarks have fixed units (a win
    rate already in %, a 1-10 score), so only lm-eval metrics go by `is_fraction_metric`."""
    return task not in JUDGED_TASKS and is_fraction_metric(values)


def _scaled(percent: bool, digits: int | None = None) -> tuple[float, int]:
    """(scale, decimals): percentages with one decimal, raw values with three (or `digits`)."""
    scale, default = (100.0, 1) if percent else (1.0, 3)
    return scale, default if digits is None else digits


def format_value(
    value: float, stderr: float, percent: bool, plus_minus: str, digits: int | None = None
) -> str:
    """`62.0 ± 3.4` for percentages, `1.234 ± 0.056` otherwise; stderr only when known."""
    if pd.isna(value):
        return MISSING_CELL
    scale, digits = _scaled(percent, digits)
    text = f"{value * scale:.{digits}f}"
    if not pd.isna(stderr):
        text += f"{plus_minus}{stderr * scale:.{digits}f}"
    return text


def format_interval(
    mean: float, low: float, high: float, percent: bool, digits: int | None = None
) -> str:
    """`62.0 [58.1, 65.9]`: the mean across seeds and its t interval."""
    if pd.isna(mean):
        return MISSING_CELL
    scale, digits = _scaled(percent, digits)
    return f"{mean * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def format_cell(
    cell: Mapping[str, Any], percent: bool, plus_minus: str, digits: int | None = None
) -> str:
    """An interval across seeds when there are several, else lm-eval's value ± stderr;
    `digits` overrides the decimals of the unit (percent: 1, raw: 3)."""
    if cell["n_seeds"] > 1 and not pd.isna(cell["low"]):
        return format_interval(cell["mean"], cell["low"], cell["high"], percent, digits)
    return format_value(cell["mean"], cell["stderr"], percent, plus_minus, digits)


def architecture_text(teacher: str, student: str, arrow: str = "→") -> str:
    """`llama → gpt2 (cross)` or `llama → llama (same)`; `–` when either is unknown."""
    if not teacher or not student:
        return MISSING_CELL
    relation = "same" if teacher == student else "cross"
    return f"{teacher} {arrow} {student} ({relation})"


@dataclass(frozen=True)
class ArmName:
    """One arm (by its full name) as a table column or plot series: sort order and labels."""

    name: str

    @cached_property
    def parsed(self) -> Arm:
        """The parsed name; reference models get an Arm of kind `reference`."""
        if self.name in {REFERENCE_ARM, SELECTED_ARM}:
            return Arm(self.name, CODIT if self.name == SELECTED_ARM else REFERENCE_ARM)
        return parse_arm(self.name)

    @property
    def kind(self) -> str:
        return self.parsed.kind

    def sort_key(self) -> tuple:
        """Kind order, then N and scorer, dataset, alpha, beta, ratio, and the name."""
        arm = self.parsed
        if self.name == SELECTED_ARM:  # after every alpha
            return (ARM_ORDER.index(CODIT), 0.0, -1, "", math.inf, math.inf, 0.0, arm.name)
        scorer = SCORERS.index(arm.scorer) if arm.scorer in SCORERS else -1
        numbers = [value or 0.0 for value in (arm.n, arm.alpha, arm.beta, arm.ratio)]
        return (ARM_ORDER.index(arm.kind), numbers[0], scorer, arm.dataset or "", *numbers[1:],
                arm.name)  # fmt: skip

    def label(self, show_beta: bool = False, latex: bool = False) -> str:
        """`direct`, `best-of-4 (oracle)`, `public: x`, `α=0.1` (β when several), `chat vector
        r=0.5`; `latex` gives the same text escaped, with α and β in math mode."""
        arm = self.parsed
        if self.name == SELECTED_ARM:
            return r"CoDIT (selected $\alpha$)" if latex else "CoDIT (selected α)"
        if arm.kind == CODIT:
            alpha, beta = (r"\alpha", r"\,\beta") if latex else ("α", "β")
            text = f"{alpha}={format_number(arm.alpha)}"
            text += f" {beta}={format_number(arm.beta)}" if show_beta else ""
            return f"${text}$" if latex else text
        text = {
            BEST_OF_N: f"best-of-{arm.n} ({arm.scorer})",
            PUBLIC: f"public: {arm.dataset}",
            CHAT_VECTOR: f"chat vector r={format_number(arm.ratio or 0.0)}",
        }.get(arm.kind, arm.name)
        return latex_escape(text) if latex else text

    def short_label(self) -> str:
        """The label next to a chat-vector marker in a plot (`r=0.5`); other kinds as label."""
        if self.kind == CHAT_VECTOR:
            return f"r={format_number(self.parsed.ratio or 0.0)}"
        return self.label()


def arm_names(names: Iterable[str]) -> list[ArmName]:
    """Distinct arm names in column order: direct, best-of-N, public, CoDIT, chat vector."""
    return sorted({ArmName(name) for name in names}, key=ArmName.sort_key)


STATISTICS = ("mean", "low", "high", "stderr", "n_seeds")


@dataclass
class MetricTable:
    """The comparison of dataset arms for one task/metric, ready to render."""

    task: str
    metric: str
    percent: bool
    higher_is_better: bool
    arms: list[ArmName]
    show_beta: bool
    architectures: dict[tuple[str, str], str]  # (teacher_pair, student) -> teacher → student
    statistics: dict[str, pd.DataFrame]  # STATISTICS -> index (pair, student), arm columns
    references: pd.DataFrame  # columns teacher_pair, student, value, stderr
    selected_alpha: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.task}/{self.metric}"

    @property
    def values(self) -> pd.DataFrame:
        """The mean across seeds (the value itself for one seed), per row and arm."""
        return self.statistics["mean"]

    def cell(self, row: tuple[str, str], arm: ArmName) -> dict[str, Any]:
        """The statistics of one cell, for `format_cell`."""
        return {name: frame.at[row, arm] for name, frame in self.statistics.items()}

    def best_mask(self) -> pd.DataFrame:
        """True where a cell holds its row's best mean (ties all count as best). Oracle arms
        compete for nothing: they know the truth, so they are an upper bound, never the best."""
        fair = [arm for arm in self.values.columns if arm.parsed.scorer != "oracle"]
        values = self.values[fair]
        best = values.max(axis=1) if self.higher_is_better else values.min(axis=1)
        close = self.values.sub(best, axis=0).abs() <= 1e-12
        return close & self.values.notna() & self.values.columns.isin(fair)

    def has_intervals(self) -> bool:
        return bool((self.statistics["n_seeds"] > 1).any().any())


def metric_table(
    rows: pd.DataFrame, higher: bool, selected: Mapping[tuple[str, str], str] | None = None
) -> MetricTable:
    """Pivot one task/metric's summary rows into pair x student rows and arm columns;
    `selected` ((pair, student) -> CoDIT arm name) adds the selected-alpha column."""
    trained = rows[rows["arm"] != REFERENCE_ARM]
    arms = arm_names(trained["arm_name"])
    show_beta = trained.loc[trained["arm"] == CODIT, "beta"].nunique() > 1
    keyed = trained.assign(_arm=trained["arm_name"].map(ArmName))
    index = ["teacher_pair", "student"]
    statistics = {
        name: keyed.pivot(index=index, columns="_arm", values=name).reindex(columns=arms)
        for name in STATISTICS
    }
    selected_alpha = {}
    if selected:
        column = ArmName(SELECTED_ARM)
        arms = arm_names([*(arm.name for arm in arms), SELECTED_ARM])
        for name, frame in statistics.items():
            # The arm selected on one benchmark may be missing from another's results.
            frame[column] = [
                frame.at[row, ArmName(selected[row])]
                if row in selected and ArmName(selected[row]) in frame.columns
                else math.nan
                for row in frame.index
            ]
            statistics[name] = frame.reindex(columns=arms)
        selected_alpha = {row: ArmName(arm).parsed.alpha for row, arm in selected.items()}
    statistics["n_seeds"] = statistics["n_seeds"].fillna(0)
    first = trained.drop_duplicates(index)
    architectures = {
        (row.teacher_pair, row.student): (row.teacher_architecture, row.student_architecture)
        for row in first.itertuples(index=False)
    }
    references = rows.loc[
        rows["arm"] == REFERENCE_ARM, ["teacher_pair", "student", "mean", "stderr"]
    ]
    task, metric = rows["task"].iloc[0], rows["metric"].iloc[0]
    return MetricTable(
        task=task,
        metric=metric,
        percent=shown_in_percent(task, metric, rows["mean"]),
        higher_is_better=higher,
        arms=arms,
        show_beta=show_beta,
        architectures=architectures,
        statistics=statistics,
        references=references.rename(columns={"mean": "value"})
        .sort_values(["teacher_pair", "student"])
        .reset_index(drop=True),
        selected_alpha=selected_alpha,
    )


def select_alpha(
    summary: pd.DataFrame, on: str, directions: Mapping[str, bool]
) -> dict[tuple[str, str], str]:
    """(pair, student) -> the CoDIT arm with the best mean on `on` (TASK/METRIC) across seeds;
    a tie goes to the first arm in column order (the smallest alpha)."""
    task, _, metric = on.partition("/")
    rows = summary[
        (summary["task"] == task) & (summary["metric"] == metric) & (summary["arm"] == CODIT)
    ]
    rows = rows[rows["mean"].notna()]
    higher = metric_direction(directions, task, metric)
    selected = {}
    for row, group in rows.groupby(["teacher_pair", "student"], sort=True):
        ordered = group.assign(_key=group["arm_name"].map(lambda n: ArmName(n).sort_key()))
        ordered = ordered.sort_values("_key", kind="stable")
        best = ordered["mean"].max() if higher else ordered["mean"].min()
        selected[row] = str(ordered.loc[ordered["mean"] == best, "arm_name"].iloc[0])
    return selected


def metric_tables(
    summary: pd.DataFrame,
    directions: Mapping[str, bool],
    selected: Mapping[tuple[str, str], str] | None = None,
) -> list[MetricTable]:
    """One MetricTable per task/metric of the summary table, in sorted order."""
    tables = []
    for (task, metric), rows in summary.groupby(["task", "metric"], sort=True):
        tables.append(metric_table(rows, metric_direction(directions, task, metric), selected))
    return tables


# --------------------------------------------------------------------------- the paper's table


@dataclass(frozen=True)
class PaperColumn:
    """A judged benchmark's headline metric as a column of the paper's table."""

    task: str
    metric: str
    label: str
    description: str
    digits: int  # decimals, as the paper prints them


# The paper's columns: the judged benchmarks' headline metrics (codit.workflow.benchmarks).
PAPER_COLUMNS = tuple(
    PaperColumn(benchmark.task, headline.metric, headline.column, headline.description,
                headline.digits)
    for benchmark, headline in paper_headlines()
)  # fmt: skip
Block = tuple[str, str]  # (teacher pair, student): one block of the paper's table


@dataclass
class PaperTable:
    """The paper's layout: a block per (teacher pair, student), arms as rows, the judged
    headline metrics present as columns; each column is that metric's MetricTable."""

    columns: list[PaperColumn]
    tables: list[MetricTable]  # one per column, in the same order
    verdicts: str = ""  # which AlpacaEval 2 verdicts the AE2 columns rest on ("" without)
    partial: str = ""  # the judged results scored on part of their benchmark ("" without)

    @property
    def blocks(self) -> list[Block]:
        return sorted({block for table in self.tables for block in table.values.index})

    @property
    def show_beta(self) -> bool:
        return any(table.show_beta for table in self.tables)

    def arms(self, block: Block) -> list[ArmName]:
        """The block's arms that have a value in some column, in column order."""
        present = {
            arm
            for table in self.tables
            if block in table.values.index
            for arm in table.arms
            if not pd.isna(table.values.at[block, arm])
        }
        return sorted(present, key=ArmName.sort_key)

    def architecture(self, block: Block) -> tuple[str, str]:
        """(teacher, student) architectures of the block, from the first column that has it."""
        return next(t.architectures[block] for t in self.tables if block in t.architectures)

    def selected_alpha(self, block: Block) -> float | None:
        return next((t.selected_alpha[block] for t in self.tables if block in t.selected_alpha),
                    None)  # fmt: skip


def paper_table(
    summary: pd.DataFrame,
    directions: Mapping[str, bool],
    selected: Mapping[tuple[str, str], str] | None = None,
    verdicts: Mapping[str, Any] | None = None,
    partial: Sequence[str] = (),
) -> PaperTable | None:
    """The paper's table of the judged headline metrics in the summary; None without any
    (or without a trained student to show). `partial`: tables.partially_scored's lines."""
    columns, column_tables = [], []
    for column in PAPER_COLUMNS:
        rows = summary[(summary["task"] == column.task) & (summary["metric"] == column.metric)]
        if rows.empty:
            continue
        higher = metric_direction(directions, column.task, column.metric)
        columns.append(column)
        column_tables.append(metric_table(rows, higher, selected))
    note = (
        "Scored on part of their benchmark (replies the judge left unreadable): "
        + "; ".join(partial) + "."
    ) if partial else ""  # fmt: skip
    paper = PaperTable(columns, column_tables, verdict_note(verdicts) if verdicts else "", note)
    return paper if paper.blocks else None


@dataclass(frozen=True)
class PaperStyle:
    """How the paper's cells are written in one output format."""

    plus_minus: str
    bold: str  # a format with one field
    missing: str
    latex: bool


def paper_arm_label(paper: PaperTable, block: Block, arm: ArmName, latex: bool) -> str:
    """The arm's label; the selected column names the block's alpha."""
    alpha = paper.selected_alpha(block)
    if arm.name != SELECTED_ARM or alpha is None:
        return arm.label(paper.show_beta, latex)
    symbol = r"$\alpha$" if latex else "α"
    return f"CoDIT (selected {symbol}={format_number(alpha)})"


def paper_arm_cells(
    paper: PaperTable, block: Block, arm: ArmName, style: PaperStyle, best: list[pd.DataFrame]
) -> list[str]:
    """One cell per column: mean [interval] (or value ± stderr), in bold where `best` (each
    column's best_mask) says so."""
    cells = []
    for column, table, mask in zip(paper.columns, paper.tables, best, strict=True):
        if block not in table.values.index or arm not in table.values.columns:
            cells.append(style.missing)
            continue
        text = format_cell(table.cell(block, arm), table.percent, style.plus_minus, column.digits)
        if text == MISSING_CELL:
            text = style.missing
        elif mask.at[block, arm]:
            text = style.bold.format(text)
        cells.append(text)
    return cells


def block_references(table: MetricTable, block: Block) -> list[tuple[str, str]]:
    """(teacher pair, model) of the block's reference models in one column: the pair's
    instruct model(s), then the student before training (a reference without teacher pair)."""
    pair, student = block
    refs = table.references
    teacher = refs["teacher_pair"].eq(pair) & (pair != "")
    untrained = refs["teacher_pair"].eq("") & refs["student"].eq(student)
    found = pd.concat([refs[teacher], refs[untrained]])
    return list(zip(found["teacher_pair"], found["student"], strict=True))


def reference_cell(
    table: MetricTable, column: PaperColumn, model: tuple[str, str], style: PaperStyle
) -> str:
    """A reference model's value ± stderr in one column ("missing" when not evaluated)."""
    refs = table.references
    found = refs[refs["teacher_pair"].eq(model[0]) & refs["student"].eq(model[1])]
    if found.empty:
        return style.missing
    value, stderr = found["value"].iloc[0], found["stderr"].iloc[0]
    text = format_value(value, stderr, table.percent, style.plus_minus, column.digits)
    return text.replace(MISSING_CELL, style.missing)


def paper_reference_rows(paper: PaperTable, block: Block, style: PaperStyle) -> list[list[str]]:
    """A row per reference model of the block, labelled by its role."""
    models = dict.fromkeys(model for t in paper.tables for model in block_references(t, block))
    body = []
    for pair, name in models:
        label = f"teacher instruct: {name}" if pair else "student before training"
        cells = [
            reference_cell(table, column, (pair, name), style)
            for column, table in zip(paper.columns, paper.tables, strict=True)
        ]
        body.append([latex_escape(label) if style.latex else label, *cells])
    return body


def paper_block_rows(paper: PaperTable, block: Block, style: PaperStyle) -> list[list[str]]:
    """Arm label and cells of every arm of the block, then its reference models."""
    best = [table.best_mask() for table in paper.tables]
    body = [
        [paper_arm_label(paper, block, arm, style.latex),
         *paper_arm_cells(paper, block, arm, style, best)]
        for arm in paper.arms(block)
    ]  # fmt: skip
    return body + paper_reference_rows(paper, block, style)


def paper_block_title(paper: PaperTable, block: Block, arrow: str) -> str:
    """`pa / s_gpt2: llama → gpt2 (cross)` (no architectures: just pair / student)."""
    pair, student = block
    architectures = architecture_text(*paper.architecture(block), arrow)
    title = f"{pair or 'no teacher pair'} / {student}"
    return title if architectures == MISSING_CELL else f"{title}: {architectures}"


def caption_note(table: MetricTable) -> str:
    unit = "in %" if table.percent else "raw value"
    direction = "higher is better" if table.higher_is_better else "lower is better"
    return f"{unit}, {direction}"


def row_cells(table: MetricTable, plus_minus: str, arrow: str, bold: str) -> list[list[str]]:
    """Pair, student, architecture and one formatted cell per arm, best in `bold` (a format)."""
    best = table.best_mask()
    body = []
    for pair, student in table.values.index:
        row = [pair, student, architecture_text(*table.architectures[(pair, student)], arrow)]
        for arm in table.arms:
            cell = format_cell(table.cell((pair, student), arm), table.percent, plus_minus)
            alpha = table.selected_alpha.get((pair, student))
            if arm.name == SELECTED_ARM and alpha is not None:
                cell += f" (α={format_number(alpha)})"
            row.append(bold.format(cell) if best.at[(pair, student), arm] else cell)
        body.append(row)
    return body


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text (model names, task names)."""
    return "".join(_LATEX_SPECIALS.get(char, char) for char in str(text))
