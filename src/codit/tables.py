"""Tidy tables of evaluation results and dataset cards, and their Markdown and LaTeX renderings.

The tidy evaluation table (`main.csv`) has one row per (model, task, metric):
teacher_pair, student, arm, alpha, beta, task, metric, value, stderr. `arm` holds the kind
(`codit`, `direct`, `reference`); alpha and beta are numbers for CoDIT rows and empty otherwise.
Reference rows are untouched models (bases and instructs); the model name is in `student`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from codit.naming import format_number, parse_arm

MAIN_COLUMNS = [
    "teacher_pair",
    "student",
    "arm",
    "alpha",
    "beta",
    "task",
    "metric",
    "value",
    "stderr",
]
DATASET_COLUMNS = [
    "pair",
    "arm",
    "alpha",
    "beta",
    "num_records",
    "finish_stop",
    "finish_length",
    "finish_other",
    "length_share",
    "tokens_mean",
    "tokens_median",
    "tokens_p90",
    "tokens_max",
    "words_mean",
    "repeated_4gram_share",
    "degenerate_share",
]
REFERENCE_ARM = "reference"
ARM_ORDER = ["direct", "codit", REFERENCE_ARM]
CARD_KEYS = (
    "pair",
    "arm",
    "alpha",
    "beta",
    "num_records",
    "finish_reasons",
    "completion_tokens",
    "completion_words",
)
CARD_TOKEN_KEYS = ("mean", "median", "p90", "max")
NO_FILTER = "none"
MISSING_CELL = "–"


# --------------------------------------------------------------------------- evaluation results


def metric_name(metric: str, filter_name: str) -> str:
    """`exact_match` for the default filter, `exact_match/strict-match` for any other."""
    return metric if filter_name == NO_FILTER else f"{metric}/{filter_name}"


def as_number(raw: Any) -> float | None:
    """A finite-or-NaN float for numeric entries; None for text, booleans and nested values."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw)


def task_metric_rows(task: str, entries: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every numeric metric of one task in an lm-eval results dict, paired with its stderr.

    Metrics are the "<metric>,<filter>" keys; bookkeeping such as `sample_len` has no filter.
    """
    rows = []
    for key, raw in entries.items():
        metric, comma, filter_name = key.partition(",")
        value = as_number(raw)
        if not comma or metric.endswith("_stderr") or value is None:
            continue
        stderr_key = f"{metric}_stderr,{filter_name}"
        # lm-eval writes "N/A" when it cannot bootstrap a stderr; that is a missing value.
        stderr = as_number(entries.get(stderr_key))
        rows.append(
            {
                "task": task,
                "metric": metric_name(metric, filter_name),
                "value": value,
                "stderr": math.nan if stderr is None else stderr,
            }
        )
    return rows


def _label(labels: Mapping[str, Any], key: str, source: str, required: bool) -> str:
    text = str(labels.get(key) or "").strip()
    if required and not text:
        raise ValueError(f"{source}: codit.labels has no {key!r} (needed for its arm)")
    return text


def _check_label_number(labels: Mapping[str, Any], key: str, parsed: float, source: str) -> None:
    """The alpha/beta labels, when given, must agree with the numbers in the arm name."""
    text = str(labels.get(key) or "").strip()
    try:
        labelled = float(text) if text else parsed
    except ValueError:
        raise ValueError(f"{source}: label {key}={text!r} is not a number") from None
    if not math.isclose(labelled, parsed, rel_tol=1e-12, abs_tol=0.0):
        raise ValueError(f"{source}: label {key}={text} disagrees with arm {labels['arm']!r}")


def model_identity(labels: Mapping[str, Any], source: str) -> dict[str, Any]:
    """teacher_pair, student, arm kind, alpha and beta of one evaluated model, from its labels."""
    arm = _label(labels, "arm", source, required=True)
    student = _label(labels, "student", source, required=True)
    if arm == REFERENCE_ARM:
        pair = _label(labels, "teacher_pair", source, required=False)
        return {
            "teacher_pair": pair,
            "student": student,
            "arm": arm,
            "alpha": math.nan,
            "beta": math.nan,
        }
    pair = _label(labels, "teacher_pair", source, required=True)
    try:
        kind, alpha, beta = parse_arm(arm)
    except ValueError as error:
        raise ValueError(f"{source}: {error} (or 'reference')") from None
    if kind == "codit":
        _check_label_number(labels, "alpha", alpha, source)
        _check_label_number(labels, "beta", beta, source)
    return {
        "teacher_pair": pair,
        "student": student,
        "arm": kind,
        "alpha": math.nan if alpha is None else alpha,
        "beta": math.nan if beta is None else beta,
    }


def eval_labels(payload: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """The `codit.labels` block of an evaluation file; a clear error when it is missing."""
    if not isinstance(payload, Mapping):
        raise ValueError(f"{source}: evaluation file is not a JSON object")
    if "results" not in payload or not isinstance(payload["results"], Mapping):
        raise ValueError(f"{source}: no 'results' block (not an lm-evaluation-harness result?)")
    codit = payload.get("codit")
    if not isinstance(codit, Mapping):
        raise ValueError(f"{source}: no 'codit' block (evaluate with `codit evaluate --label`)")
    labels = codit.get("labels")
    if not isinstance(labels, Mapping):
        raise ValueError(f"{source}: the 'codit' block has no 'labels' object")
    return labels


def eval_rows(payload: Mapping[str, Any], source: str) -> list[dict[str, Any]]:
    """Tidy rows of one evaluation file: the model's identity joined to each task metric."""
    identity = model_identity(eval_labels(payload, source), source)
    rows = []
    for task, entries in payload["results"].items():
        if isinstance(entries, Mapping):
            rows += [{**identity, **row} for row in task_metric_rows(task, entries)]
    if not rows:
        raise ValueError(f"{source}: 'results' holds no numeric metric")
    return rows


def sort_main_table(table: pd.DataFrame) -> pd.DataFrame:
    """Deterministic order: pair, student, arm (direct, codit, reference), alpha, beta, task."""
    order = table.assign(_arm=table["arm"].map(ARM_ORDER.index))
    keys = ["teacher_pair", "student", "_arm", "alpha", "beta", "task", "metric"]
    order = order.sort_values(keys, na_position="first", kind="mergesort")
    return order.drop(columns="_arm").reset_index(drop=True)


def check_unique_rows(table: pd.DataFrame, sources: pd.Series) -> None:
    """Two files for the same model would silently overwrite each other in every pivot."""
    keys = ["teacher_pair", "student", "arm", "alpha", "beta", "task", "metric"]
    duplicated = table.duplicated(subset=keys, keep=False)
    if duplicated.any():
        files = sorted(set(sources[duplicated]))
        first = table[duplicated].iloc[0]
        raise ValueError(
            f"evaluation files {', '.join(files)} report the same model "
            f"({first['teacher_pair'] or '-'} / {first['student']} / {first['arm']} "
            f"alpha={first['alpha']} beta={first['beta']}) twice"
        )


def main_table(evaluations: Iterable[tuple[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """The tidy table of all evaluation files, given as (source name, parsed JSON) pairs."""
    rows, sources = [], []
    for source, payload in evaluations:
        file_rows = eval_rows(payload, source)
        rows += file_rows
        sources += [source] * len(file_rows)
    if not rows:
        raise ValueError("no evaluation results given")
    table = pd.DataFrame(rows, columns=MAIN_COLUMNS)
    check_unique_rows(table, pd.Series(sources))
    return sort_main_table(table)


def higher_is_better(evaluations: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, bool]:
    """`task/metric` -> direction, from lm-eval's own `higher_is_better` block (default: higher)."""
    directions: dict[str, bool] = {}
    for _, payload in evaluations:
        for task, metrics in (payload.get("higher_is_better") or {}).items():
            for metric, higher in (metrics or {}).items():
                if isinstance(higher, bool):
                    directions[f"{task}/{metric}"] = higher
    return directions


def metric_direction(directions: Mapping[str, bool], task: str, metric: str) -> bool:
    """lm-eval keys directions by the metric without its filter, so drop the filter to look up."""
    return directions.get(f"{task}/{metric.split('/', 1)[0]}", True)


# --------------------------------------------------------------------------- dataset cards


def _card_number(card: Mapping[str, Any], section: str, key: str, source: str) -> float:
    block = card[section]
    if not isinstance(block, Mapping) or key not in block:
        raise ValueError(f"{source}: dataset card has no {section}.{key}")
    # `codit generate` writes null statistics for an empty dataset.
    if block[key] is None:
        return math.nan
    number = as_number(block[key])
    if number is None:
        raise ValueError(f"{source}: dataset card's {section}.{key} is not a number")
    return number


def card_row(card: Mapping[str, Any], source: str) -> dict[str, Any]:
    """One datasets.csv row: the arm, its size, finish reasons and response lengths."""
    missing = [key for key in CARD_KEYS if key not in card]
    if missing:
        raise ValueError(f"{source}: dataset card misses key(s) {', '.join(missing)}")
    try:
        kind, alpha, beta = parse_arm(str(card["arm"]))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    reasons = card["finish_reasons"] or {}
    records = int(card["num_records"])
    stop, length = int(reasons.get("stop", 0)), int(reasons.get("length", 0))
    other = sum(int(count) for reason, count in reasons.items() if reason not in {"stop", "length"})
    tokens = {key: _card_number(card, "completion_tokens", key, source) for key in CARD_TOKEN_KEYS}
    return {
        "pair": str(card["pair"]),
        "arm": kind,
        "alpha": math.nan if alpha is None else alpha,
        "beta": math.nan if beta is None else beta,
        "num_records": records,
        "finish_stop": stop,
        "finish_length": length,
        "finish_other": other,
        "length_share": length / records if records else math.nan,
        **{f"tokens_{key}": value for key, value in tokens.items()},
        "words_mean": _card_number(card, "completion_words", "mean", source),
        # Cards written before the repetition measure existed have no such block.
        "repeated_4gram_share": _card_number(card, "repetition", "mean_repeated_share", source)
        if "repetition" in card
        else math.nan,
        "degenerate_share": _card_number(card, "repetition", "degenerate_share", source)
        if "repetition" in card
        else math.nan,
    }


def datasets_table(cards: Iterable[tuple[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per dataset card, sorted by pair, arm (direct first) and alpha."""
    rows = [card_row(card, source) for source, card in cards]
    table = pd.DataFrame(rows, columns=DATASET_COLUMNS)
    order = table.assign(_arm=table["arm"].map(ARM_ORDER.index))
    order = order.sort_values(["pair", "_arm", "alpha", "beta"], na_position="first")
    return order.drop(columns="_arm").reset_index(drop=True)


# --------------------------------------------------------------------------- formatting


def is_fraction_metric(values: pd.Series) -> bool:
    """Accuracies and rates live in [0, 1]; they are shown as percentages, the rest as is."""
    finite = values.dropna()
    return bool(len(finite)) and bool(((finite >= 0) & (finite <= 1)).all())


def format_value(value: float, stderr: float, percent: bool, plus_minus: str) -> str:
    """`62.0 ± 3.4` for percentages, `1.234 ± 0.056` otherwise; stderr only when known."""
    if pd.isna(value):
        return MISSING_CELL
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    text = f"{value * scale:.{digits}f}"
    if not pd.isna(stderr):
        text += f"{plus_minus}{stderr * scale:.{digits}f}"
    return text


@dataclass(frozen=True)
class ArmColumn:
    """One dataset arm as a column of the comparison table (None, not NaN, for direct: hashable)."""

    kind: str
    alpha: float | None
    beta: float | None

    @classmethod
    def of(cls, kind: str, alpha: float, beta: float) -> ArmColumn:
        return cls(
            kind, None if pd.isna(alpha) else float(alpha), None if pd.isna(beta) else float(beta)
        )

    def sort_key(self) -> tuple[bool, float, float]:
        return (self.kind != "direct", self.alpha or 0.0, self.beta or 0.0)

    def label(self, show_beta: bool, alpha_symbol: str = "α", beta_symbol: str = "β") -> str:
        if self.kind == "direct":
            return "direct"
        text = f"{alpha_symbol}={format_number(self.alpha)}"
        return f"{text} {beta_symbol}={format_number(self.beta)}" if show_beta else text


def arm_columns(rows: pd.DataFrame) -> list[ArmColumn]:
    """direct first, then CoDIT arms by alpha, then beta."""
    arms = rows[["arm", "alpha", "beta"]].drop_duplicates()
    columns = {ArmColumn.of(*key) for key in arms.itertuples(index=False)}
    return sorted(columns, key=ArmColumn.sort_key)


@dataclass
class MetricTable:
    """The comparison of dataset arms for one task/metric, ready to render."""

    task: str
    metric: str
    percent: bool
    higher_is_better: bool
    arms: list[ArmColumn]
    show_beta: bool
    values: pd.DataFrame  # index (teacher_pair, student), one column per arm
    stderrs: pd.DataFrame
    references: pd.DataFrame  # columns teacher_pair, student, value, stderr

    @property
    def title(self) -> str:
        return f"{self.task}/{self.metric}"

    def best_mask(self) -> pd.DataFrame:
        """True where a cell holds its row's best value (ties all count as best)."""
        best = self.values.max(axis=1) if self.higher_is_better else self.values.min(axis=1)
        close = self.values.sub(best, axis=0).abs() <= 1e-12
        return close & self.values.notna()


def metric_table(rows: pd.DataFrame, higher: bool) -> MetricTable:
    """Pivot one task/metric's tidy rows into pair x student rows and arm columns."""
    trained = rows[rows["arm"] != REFERENCE_ARM]
    arms = arm_columns(trained)
    show_beta = trained.loc[trained["arm"] == "codit", "beta"].nunique() > 1
    keyed = trained.assign(
        _arm=[
            ArmColumn.of(*key) for key in trained[["arm", "alpha", "beta"]].itertuples(index=False)
        ]
    )
    index = ["teacher_pair", "student"]
    values = keyed.pivot(index=index, columns="_arm", values="value").reindex(columns=arms)
    stderrs = keyed.pivot(index=index, columns="_arm", values="stderr").reindex(columns=arms)
    references = rows.loc[
        rows["arm"] == REFERENCE_ARM, ["teacher_pair", "student", "value", "stderr"]
    ]
    return MetricTable(
        task=rows["task"].iloc[0],
        metric=rows["metric"].iloc[0],
        percent=is_fraction_metric(rows["value"]),
        higher_is_better=higher,
        arms=arms,
        show_beta=show_beta,
        values=values,
        stderrs=stderrs,
        references=references.sort_values(["teacher_pair", "student"]).reset_index(drop=True),
    )


def metric_tables(table: pd.DataFrame, directions: Mapping[str, bool]) -> list[MetricTable]:
    """One MetricTable per task/metric of the tidy table, in sorted order."""
    tables = []
    for (task, metric), rows in table.groupby(["task", "metric"], sort=True):
        tables.append(metric_table(rows, metric_direction(directions, task, metric)))
    return tables


def _caption_note(table: MetricTable) -> str:
    unit = "in %" if table.percent else "raw value"
    direction = "higher is better" if table.higher_is_better else "lower is better"
    return f"{unit}, {direction}"


# --------------------------------------------------------------------------- Markdown


def _markdown_cells(table: MetricTable) -> list[list[str]]:
    best = table.best_mask()
    body = []
    for (pair, student), values in table.values.iterrows():
        row = [pair, student]
        for arm in table.arms:
            cell = format_value(
                values[arm], table.stderrs.at[(pair, student), arm], table.percent, " ± "
            )
            row.append(f"**{cell}**" if best.at[(pair, student), arm] else cell)
        body.append(row)
    return body


def markdown_grid(header: list[str], body: list[list[str]], numeric_from: int) -> str:
    """A pipe table with columns padded to equal width; numeric columns right-aligned."""
    # A "|" inside a name would end the cell early.
    header, *body = [[cell.replace("|", r"\|") for cell in row] for row in [header, *body]]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(width) if i >= numeric_from else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    # Each rule segment spans the cell and its two padding spaces; ":" marks right alignment.
    rule = [
        "-" * (width + 1) + ":" if i >= numeric_from else "-" * (width + 2)
        for i, width in enumerate(widths)
    ]
    return "\n".join([line(header), "|" + "|".join(rule) + "|", *map(line, body)])


def markdown_reference_table(table: MetricTable) -> str:
    body = [
        [
            row.student,
            row.teacher_pair or MISSING_CELL,
            format_value(row.value, row.stderr, table.percent, " ± "),
        ]
        for row in table.references.itertuples(index=False)
    ]
    return markdown_grid(["reference model", "teacher pair", table.metric], body, numeric_from=2)


def markdown_metric_section(table: MetricTable) -> str:
    """Heading, arm comparison and reference models of one metric."""
    parts = [f"## {table.title} ({_caption_note(table)})", ""]
    if table.arms:
        header = ["teacher pair", "student"] + [arm.label(table.show_beta) for arm in table.arms]
        parts += [markdown_grid(header, _markdown_cells(table), numeric_from=2), ""]
    if len(table.references):
        parts += [
            "Reference models (untouched checkpoints):",
            "",
            markdown_reference_table(table),
            "",
        ]
    return "\n".join(parts)


def render_markdown(tables: list[MetricTable]) -> str:
    """The whole main.md: a short legend, then one section per metric."""
    intro = [
        "# CoDIT reproduction: evaluation results",
        "",
        "Rows: teacher pair and student; columns: the dataset the student was fine-tuned on",
        "(`direct` = plain sampling from the teacher's instruct model, `α` = CoDIT plausibility",
        "threshold). Cells: value ± standard error from lm-evaluation-harness (no ± when it is",
        "unknown); the best arm per row is in **bold**.",
        "",
    ]
    return "\n".join(intro + [markdown_metric_section(table) for table in tables]).rstrip() + "\n"


# --------------------------------------------------------------------------- LaTeX

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


def _latex_arm_label(arm: ArmColumn, show_beta: bool) -> str:
    if arm.kind == "direct":
        return "direct"
    return "$" + arm.label(show_beta, r"\alpha", r"\,\beta") + "$"


def _latex_cells(table: MetricTable) -> list[list[str]]:
    best = table.best_mask()
    body = []
    for (pair, student), values in table.values.iterrows():
        row = [latex_escape(pair), latex_escape(student)]
        for arm in table.arms:
            cell = format_value(
                values[arm], table.stderrs.at[(pair, student), arm], table.percent, r" $\pm$ "
            )
            cell = "--" if cell == MISSING_CELL else cell
            row.append(rf"\textbf{{{cell}}}" if best.at[(pair, student), arm] else cell)
        body.append(row)
    return body


def latex_tabular(header: list[str], body: list[list[str]], text_columns: int) -> list[str]:
    """A booktabs tabular: text columns left-aligned, numbers right-aligned."""
    spec = "l" * text_columns + "r" * (len(header) - text_columns)
    # Shrink a tabular wider than the text (many alphas and betas), never enlarge a narrow one.
    lines = [
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}}"]
    return lines


def latex_metric_table(table: MetricTable) -> str:
    """One table float per metric: the arm comparison, then the reference models."""
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small"]
    if table.arms:
        header = ["teacher pair", "student"] + [
            _latex_arm_label(arm, table.show_beta) for arm in table.arms
        ]
        lines += latex_tabular(header, _latex_cells(table), text_columns=2)
    if len(table.references):
        body = [
            [
                latex_escape(row.student),
                latex_escape(row.teacher_pair) or "--",
                format_value(row.value, row.stderr, table.percent, r" $\pm$ ").replace(
                    MISSING_CELL, "--"
                ),
            ]
            for row in table.references.itertuples(index=False)
        ]
        header = ["reference model", "teacher pair", latex_escape(table.metric)]
        lines += [r"\par\medskip"] + latex_tabular(header, body, text_columns=2)
    note = latex_escape(_caption_note(table))
    caption = (
        f"{latex_escape(table.title)} ({note}); "
        r"best arm per row in bold, $\pm$ one standard error."
    )
    lines += [rf"\caption{{{caption}}}", r"\end{table}"]
    return "\n".join(lines)


def render_latex(tables: list[MetricTable]) -> str:
    """A standalone document (article, booktabs, graphicx) holding one table float per metric."""
    preamble = [
        "% Generated by `codit report`; compiles on its own (pdflatex main.tex).",
        r"\documentclass{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage[margin=2cm]{geometry}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\begin{document}",
        "",
    ]
    body = [latex_metric_table(table) + "\n" for table in tables]
    return "\n".join(preamble + body + [r"\end{document}", ""])
