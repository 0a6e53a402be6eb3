"""Tidy tables of evaluation results and dataset cards, and their Markdown and LaTeX renderings.

The tidy evaluation table (`main.csv`) has one row per (evaluation, task, metric):
teacher_pair, student, student_architecture, teacher_architecture, arm, arm_name, alpha, beta,
seed, task, metric, value, stderr. `arm` holds the kind (`direct`, `bestofn`, `public`, `codit`,
`chatvector`, `reference`) and `arm_name` the full arm name (`bestof4_oracle`); alpha and beta
are numbers for CoDIT rows and empty otherwise; seed is the replicate seed (empty for chat-vector
students, references and older files). Public arms belong to no teacher pair (teacher_pair "").
Reference rows are untouched models (bases and instructs); the model name is in `student`.

The replicate summary (`summary.csv`) has one row per (teacher_pair, student, arm, arm_name,
alpha, beta, task, metric): n_seeds, mean, sd, a 95% Student-t interval across seeds (low, high;
empty for one seed) and lm-eval's stderr (one seed only). Public rows are copied to every teacher
pair there, so each pair's table row has a column for each public dataset.

The paper's table (`PaperTable`) regroups the judged benchmarks' headline metrics
(PAPER_COLUMNS: AlpacaEval 2 LC and WR, MT-Bench, WB-Score) as the paper prints them: a block per
(teacher pair, student), its arms and reference models as rows, one column per metric, each
column being that metric's MetricTable (same cells, intervals and best arm).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from codit.report.stats import NO_FILTER, seed_interval
from codit.workflow.naming import (
    BEST_OF_N,
    CHAT_VECTOR,
    CODIT,
    DIRECT_ARM,
    PUBLIC,
    REFERENCE,
    SCORERS,
    Arm,
    format_number,
    parse_arm,
)

MAIN_COLUMNS = [
    "teacher_pair",
    "student",
    "student_architecture",
    "teacher_architecture",
    "arm",
    "arm_name",
    "alpha",
    "beta",
    "seed",
    "task",
    "metric",
    "value",
    "stderr",
]
# The replicates of one model (one arm of one student) differ only in their seed.
SUMMARY_KEYS = ["teacher_pair", "student", "arm", "arm_name", "alpha", "beta", "task", "metric"]
SUMMARY_COLUMNS = [
    *(column for column in MAIN_COLUMNS if column not in {"seed", "value", "stderr"}),
    "n_seeds",
    "mean",
    "sd",
    "low",
    "high",
    "stderr",
]
DATASET_COLUMNS = [
    "pair",
    "arm",
    "arm_name",
    "alpha",
    "beta",
    "seed",
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
REFERENCE_ARM = REFERENCE
ARM_ORDER = [DIRECT_ARM, BEST_OF_N, PUBLIC, CODIT, CHAT_VECTOR, REFERENCE_ARM]
CARD_KEYS = (
    "pair",
    "arm",
    "num_records",
    "finish_reasons",
    "completion_tokens",
    "completion_words",
)
CARD_TOKEN_KEYS = ("mean", "median", "p90", "max")
MISSING_CELL = "–"
# The column of each row's CoDIT arm whose alpha a selection metric chose (MT-Bench, as in
# the paper); not an arm of its own, so never a name the parser accepts.
SELECTED_ARM = "codit_selected"
CONFIDENCE = 0.95
ARCHITECTURE_KEYS = ("student_architecture", "teacher_architecture")
# Task names of the judged benchmarks' scores files (codit.judged.mtbench, codit.judged.alpacaeval,
# codit.judged.wildbench): their metrics carry their own units.
MT_BENCH, ALPACA_EVAL, WILDBENCH = "mt_bench", "alpaca_eval", "wildbench"
JUDGED_TASKS = (ALPACA_EVAL, MT_BENCH, WILDBENCH)


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


def seed_label(labels: Mapping[str, Any], source: str) -> float:
    """The replicate seed as a float (NaN when absent: chat vectors, references, older files)."""
    text = str(labels.get("seed") if labels.get("seed") is not None else "").strip()
    if not text:
        return math.nan
    try:
        return float(int(text))
    except ValueError:
        raise ValueError(f"{source}: label seed={text!r} is not an integer") from None


def parse_trained_arm(name: str, source: str, alternative: str = "") -> Arm:
    """The parsed arm of an evaluated student or a trained-on dataset; Best-of-N candidates are
    neither. `alternative` names what else the field may hold, for the error message."""
    try:
        arm = parse_arm(name)
    except ValueError as error:
        raise ValueError(f"{source}: {error}{alternative}") from None
    if arm.kind not in ARM_ORDER:
        raise ValueError(f"{source}: arm {name!r} is a Best-of-N candidate, never a trained arm")
    return arm


def model_identity(labels: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Who was evaluated: pair, student, architectures, arm kind and name, alpha, beta, seed."""
    name = _label(labels, "arm", source, required=True)
    identity = {
        "student": _label(labels, "student", source, required=True),
        **{key: _label(labels, key, source, required=False) for key in ARCHITECTURE_KEYS},
        "arm_name": name,
        "alpha": math.nan,
        "beta": math.nan,
        "seed": seed_label(labels, source),
    }
    if name == REFERENCE_ARM:
        pair = _label(labels, "teacher_pair", source, required=False)
        return {"teacher_pair": pair, "arm": REFERENCE_ARM, **identity}
    arm = parse_trained_arm(name, source, " (or 'reference')")
    # A public dataset is trained once per student and belongs to no teacher pair.
    pair = _label(labels, "teacher_pair", source, required=arm.kind != PUBLIC)
    if arm.kind == PUBLIC and pair:
        raise ValueError(f"{source}: public arm {name!r} has teacher_pair {pair!r}; expected ''")
    if arm.kind == CODIT:  # alpha and beta have one source: the arm name
        identity |= {"alpha": arm.alpha, "beta": arm.beta}
    return {"teacher_pair": pair, "arm": arm.kind, **identity}


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


def kind_rank(kinds: pd.Series) -> pd.Series:
    """Position of each arm kind in ARM_ORDER (direct first, reference last), for sorting."""
    return kinds.map(ARM_ORDER.index)


def sort_rows(table: pd.DataFrame, pair: str, keys: list[str]) -> pd.DataFrame:
    """Stable order: pair, then student where present, arm kind, then the given keys."""
    leading = [pair] + (["student"] if "student" in table.columns else [])
    order = table.assign(_arm=kind_rank(table["arm"]))
    order = order.sort_values(leading + ["_arm", *keys], na_position="first", kind="mergesort")
    return order.drop(columns="_arm").reset_index(drop=True)


def sort_main_table(table: pd.DataFrame) -> pd.DataFrame:
    """Pair, student, kind (direct, bestofn, public, codit, chatvector, reference), alpha..."""
    keys = ["alpha", "beta", "arm_name", "seed", "task", "metric"]
    return sort_rows(table, "teacher_pair", keys)


def check_unique_rows(table: pd.DataFrame, sources: pd.Series) -> None:
    """Two files for the same model would silently overwrite each other in every pivot."""
    keys = ["teacher_pair", "student", "arm_name", "seed", "task", "metric"]
    duplicated = table.duplicated(subset=keys, keep=False)
    if duplicated.any():
        files = sorted(set(sources[duplicated]))
        first = table[duplicated].iloc[0]
        raise ValueError(
            f"evaluation files {', '.join(files)} report the same model "
            f"({first['teacher_pair'] or '-'} / {first['student']} / {first['arm_name']} "
            f"seed={first['seed']}) twice"
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


# codit.judged.alpacaeval's verdict kinds: first-token log-probabilities, the reply's text, neither.
VERDICT_KINDS = ("weighted", "plain", "identical", "unparsable")


def verdict_kind(counts: Mapping[str, int]) -> str:
    """`weighted`, `plain`, `mixed` (both) or `none`: which verdicts the win rates rest on."""
    used = [kind for kind in ("weighted", "plain") if counts[kind]]
    return "mixed" if len(used) == 2 else (used[0] if used else "none")


def alpaca_eval_verdicts(
    evaluations: Iterable[tuple[str, Mapping[str, Any]]],
) -> dict[str, Any] | None:
    """AlpacaEval 2's verdicts summed over its scores files (files, counts per kind, files
    without counts, the length-controlled GLMs, the kind); None without such a file."""
    files = [payload for _, payload in evaluations if ALPACA_EVAL in (payload.get("results") or {})]
    if not files:
        return None
    counts = dict.fromkeys(VERDICT_KINDS, 0)
    unrecorded = 0
    for payload in files:
        verdicts = payload.get("verdicts")
        if not isinstance(verdicts, Mapping):
            unrecorded += 1  # scores files written before the counts existed
            continue
        for kind in VERDICT_KINDS:
            counts[kind] += int(verdicts.get(kind) or 0)
    return {
        "files": len(files),
        "files_without_verdicts": unrecorded,
        **counts,
        "glm": sorted({str(payload["glm"]) for payload in files if payload.get("glm")}),
        "kind": verdict_kind(counts),
    }


VERDICT_TEXTS = {
    "weighted": "weighted (the judge's first-token log-probabilities)",
    "plain": "plain (the judge's reply text)",
    "mixed": "mixed weighted and plain",
    "none": "none recorded",
}


def verdict_note(summary: Mapping[str, Any]) -> str:
    """One line saying which AlpacaEval 2 verdicts and GLM the AE2 columns rest on."""
    counts = ", ".join(f"{summary[kind]} {kind}" for kind in VERDICT_KINDS)
    text = (
        f"AlpacaEval 2 verdicts: {VERDICT_TEXTS[summary['kind']]}; {counts} judgments over "
        f"{summary['files']} models"
    )
    if summary["files_without_verdicts"]:
        text += f" ({summary['files_without_verdicts']} scores files without counts)"
    glm = ", ".join(summary["glm"]) or "not recorded"
    return f"{text}; length-controlled GLM: {glm}."


# --------------------------------------------------------------------------- replicates


def replicate_statistics(rows: pd.DataFrame, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """n_seeds, mean, sd, low, high (t interval across seeds) and stderr (one seed only)."""
    values = [float(value) for value in rows["value"] if math.isfinite(value)]
    if not values:
        nothing = dict.fromkeys(("mean", "sd", "low", "high", "stderr"), math.nan)
        return {"n_seeds": 0, **nothing}
    interval = seed_interval(values, confidence)
    one = len(values) == 1
    return {
        "n_seeds": interval["n"],
        "mean": interval["mean"],
        **{
            key: math.nan if interval[key] is None else interval[key]
            for key in ("sd", "low", "high")
        },
        # lm-eval's stderr describes one model; across seeds the interval replaces it.
        "stderr": float(rows["stderr"].iloc[0]) if one and len(rows) == 1 else math.nan,
    }


def trained_pairs(table: pd.DataFrame, pair: str = "teacher_pair") -> list[str]:
    """Teacher pairs that trained students (public and reference rows do not count)."""
    trained = table[~table["arm"].isin([PUBLIC, REFERENCE_ARM]) & (table[pair] != "")]
    return sorted(trained[pair].unique())


def broadcast_public(table: pd.DataFrame, pair: str = "teacher_pair") -> pd.DataFrame:
    """Copy each public row to every trained teacher pair (kept as is when there is none).

    `pair` names the pair column: `teacher_pair` in evaluations, `pair` in datasets.csv.
    """
    pairs = trained_pairs(table, pair)
    public = table["arm"] == PUBLIC
    if not pairs or not public.any():
        return table
    copies = [table[public].assign(**{pair: name}) for name in pairs]
    return pd.concat([table[~public], *copies], ignore_index=True)


def _first_label(table: pd.DataFrame, key: str, column: str) -> dict[str, str]:
    """key value -> the first non-empty label of `column` among its rows (files may omit it)."""
    known = table[table[column].fillna("") != ""].sort_values([key, column])
    return known.drop_duplicates(key).set_index(key)[column].to_dict()


def attach_architectures(summary: pd.DataFrame, main: pd.DataFrame) -> pd.DataFrame:
    """Student architecture per student, teacher architecture per pair, from any labelled row."""
    students = _first_label(main, "student", "student_architecture")
    teachers = _first_label(
        main[main["teacher_pair"] != ""], "teacher_pair", "teacher_architecture"
    )
    return summary.assign(
        student_architecture=[students.get(name, "") for name in summary["student"]],
        teacher_architecture=[teachers.get(pair, "") for pair in summary["teacher_pair"]],
    )


def summary_table(main: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per model and metric across its seeds; public rows broadcast to every pair."""
    rows = [
        {**dict(zip(SUMMARY_KEYS, key, strict=True)), **replicate_statistics(group, confidence)}
        for key, group in main.groupby(SUMMARY_KEYS, dropna=False, sort=False)
    ]
    summary = pd.DataFrame(rows, columns=[c for c in SUMMARY_COLUMNS if "architecture" not in c])
    summary = attach_architectures(broadcast_public(summary), main)
    keys = ["alpha", "beta", "arm_name", "task", "metric"]
    return sort_rows(summary[SUMMARY_COLUMNS], "teacher_pair", keys)


# --------------------------------------------------------------------------- dataset cards


def _card_number(card: Mapping[str, Any], section: str, key: str, source: str) -> float:
    block = card[section]
    # Written (public) datasets may carry a null block: no teacher token counts.
    if block is None:
        return math.nan
    if not isinstance(block, Mapping) or key not in block:
        raise ValueError(f"{source}: dataset card has no {section}.{key}")
    # `codit generate` writes null statistics for an empty dataset.
    if block[key] is None:
        return math.nan
    number = as_number(block[key])
    if number is None:
        raise ValueError(f"{source}: dataset card's {section}.{key} is not a number")
    return number


def card_seed(card: Mapping[str, Any]) -> float:
    """The seed in the card's provenance settings (NaN when absent, e.g. older cards)."""
    settings = (card.get("provenance") or {}).get("settings") or {}
    seed = as_number(settings.get("seed"))
    return math.nan if seed is None else seed


def card_row(card: Mapping[str, Any], source: str) -> dict[str, Any]:
    """One datasets.csv row: the arm, its seed, size, finish reasons and response lengths."""
    missing = [key for key in CARD_KEYS if key not in card]
    if missing:
        raise ValueError(f"{source}: dataset card misses key(s) {', '.join(missing)}")
    arm = parse_trained_arm(str(card["arm"]), source)
    reasons = card["finish_reasons"] or {}
    records = int(card["num_records"])
    stop, length = int(reasons.get("stop", 0)), int(reasons.get("length", 0))
    other = sum(int(count) for reason, count in reasons.items() if reason not in {"stop", "length"})
    tokens = {key: _card_number(card, "completion_tokens", key, source) for key in CARD_TOKEN_KEYS}
    # Cards written before the repetition measure existed have no such block.
    repetition = "repetition" in card
    return {
        "pair": str(card["pair"] or ""),
        "arm": arm.kind,
        "arm_name": arm.name,
        "alpha": math.nan if arm.alpha is None else arm.alpha,
        "beta": math.nan if arm.beta is None else arm.beta,
        "seed": card_seed(card),
        "num_records": records,
        "finish_stop": stop,
        "finish_length": length,
        "finish_other": other,
        "length_share": length / records if records else math.nan,
        **{f"tokens_{key}": value for key, value in tokens.items()},
        "words_mean": _card_number(card, "completion_words", "mean", source),
        "repeated_4gram_share": _card_number(card, "repetition", "mean_repeated_share", source)
        if repetition
        else math.nan,
        "degenerate_share": _card_number(card, "repetition", "degenerate_share", source)
        if repetition
        else math.nan,
    }


def datasets_table(cards: Iterable[tuple[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per dataset card, sorted by pair, arm kind, alpha, beta, arm name and seed."""
    rows = [card_row(card, source) for source, card in cards]
    table = pd.DataFrame(rows, columns=DATASET_COLUMNS)
    return sort_rows(table, "pair", ["alpha", "beta", "arm_name", "seed"])


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


PAPER_COLUMNS = (
    PaperColumn(ALPACA_EVAL, "length_controlled_winrate", "AE2 LC",
                "AlpacaEval 2 length-controlled win rate against the reference (%)", 1),
    PaperColumn(ALPACA_EVAL, "win_rate", "AE2 WR", "AlpacaEval 2 win rate (%)", 1),
    PaperColumn(MT_BENCH, "score", "MT-Bench", "MT-Bench mean judge score (1-10)", 2),
    PaperColumn(WILDBENCH, "wb_score", "WB-Score",
                "WildBench v2 WB-Score, (mean score - 5) x 20", 1),
)  # fmt: skip
Block = tuple[str, str]  # (teacher pair, student): one block of the paper's table


@dataclass
class PaperTable:
    """The paper's layout: a block per (teacher pair, student), arms as rows, the judged
    headline metrics present as columns; each column is that metric's MetricTable."""

    columns: list[PaperColumn]
    tables: list[MetricTable]  # one per column, in the same order
    verdicts: str = ""  # which AlpacaEval 2 verdicts the AE2 columns rest on ("" without)

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
) -> PaperTable | None:
    """The paper's table of the judged headline metrics in the summary; None without any
    (or without a trained student to show)."""
    columns, column_tables = [], []
    for column in PAPER_COLUMNS:
        rows = summary[(summary["task"] == column.task) & (summary["metric"] == column.metric)]
        if rows.empty:
            continue
        higher = metric_direction(directions, column.task, column.metric)
        columns.append(column)
        column_tables.append(metric_table(rows, higher, selected))
    paper = PaperTable(columns, column_tables, verdict_note(verdicts) if verdicts else "")
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


def _caption_note(table: MetricTable) -> str:
    unit = "in %" if table.percent else "raw value"
    direction = "higher is better" if table.higher_is_better else "lower is better"
    return f"{unit}, {direction}"


def _row_cells(table: MetricTable, plus_minus: str, arrow: str, bold: str) -> list[list[str]]:
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


# --------------------------------------------------------------------------- Markdown


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


ROW_HEADER = ["teacher pair", "student", "architecture"]


def markdown_metric_section(table: MetricTable) -> str:
    """Heading, arm comparison and reference models of one metric."""
    parts = [f"## {table.title} ({_caption_note(table)})", ""]
    if table.arms:
        header = ROW_HEADER + [arm.label(table.show_beta) for arm in table.arms]
        body = _row_cells(table, " ± ", "→", "**{}**")
        parts += [markdown_grid(header, body, numeric_from=len(ROW_HEADER)), ""]
    if len(table.references):
        parts += [
            "Reference models (untouched checkpoints):",
            "",
            markdown_reference_table(table),
            "",
        ]
    return "\n".join(parts)


MARKDOWN_LEGEND = [
    "Rows: teacher pair and student, with their architectures (teacher → student; `cross` when",
    "they differ). Columns: how the student was obtained: `direct` = fine-tuned on plain samples",
    "of the teacher's instruct model; `best-of-N (judge)` = on the best of N direct samples by an",
    "LLM judge; `best-of-N (oracle)` = by an oracle that knows the benchmark's truth (an upper",
    "bound, not a fair baseline); `public: <name>` = on a public instruction dataset (the same",
    "students for every teacher pair); `α` = on CoDIT data with that plausibility threshold;",
    "`chat vector r` = no training, the student plus r × (post − pre) of the teacher (same",
    "architecture only).",
    "Cells: with several training seeds, `mean [low, high]` = the mean across seeds and its 95%",
    "Student-t interval; with one seed, value ± standard error from lm-evaluation-harness (no ±",
    "when it is unknown). – : arm not available for that student. The best arm per row (by the",
    "mean, oracle arms left out) is in **bold**.",
]
SELECTION_LEGEND = [
    "`CoDIT (selected α)` = the row's CoDIT arm whose α has the best mean on the selection",
    "metric (MT-Bench, as in the paper; see the selection table), shown on every metric; its α",
    "is in brackets.",
]


def markdown_selection_section(table: MetricTable) -> str:
    """Which alpha each row's selection metric (`table`) chose, with the metric's cell."""
    selected_on, column = table.title, ArmName(SELECTED_ARM)
    body = [
        [pair, student, format_number(alpha),
         format_cell(table.cell((pair, student), column), table.percent, " ± ")]
        for (pair, student), alpha in sorted(table.selected_alpha.items())
    ]  # fmt: skip
    grid = markdown_grid(["teacher pair", "student", "selected α", selected_on], body, 2)
    return f"## CoDIT α selected on {selected_on} (per row, best mean across seeds)\n\n{grid}\n"


MARKDOWN_PAPER = PaperStyle(plus_minus=" ± ", bold="**{}**", missing=MISSING_CELL, latex=False)
PAPER_LEGEND = [
    "As in the paper: one table per teacher pair and student; rows are how the student was",
    "obtained (the arms of the sections below), then the untouched reference models; cells as",
    "below (mean [95% t interval] across seeds, or value ± standard error for one seed), the",
    "best arm per table and column (oracle arms aside) in **bold**. Columns:",
]


def markdown_paper_section(paper: PaperTable) -> str:
    """The paper's table: legend, AlpacaEval's verdict note, then one table per block."""
    parts = ["## Paper table: judged benchmarks per teacher pair and student", "", *PAPER_LEGEND]
    parts += [f"`{column.label}` = {column.description};" for column in paper.columns]
    parts[-1] = parts[-1].removesuffix(";") + "."
    parts += ["", paper.verdicts, ""] if paper.verdicts else [""]
    header = ["arm", *(column.label for column in paper.columns)]
    for block in paper.blocks:
        body = paper_block_rows(paper, block, MARKDOWN_PAPER)
        parts += [f"### {paper_block_title(paper, block, '→')}", "",
                  markdown_grid(header, body, numeric_from=1), ""]  # fmt: skip
    return "\n".join(parts)


def render_markdown(
    tables: list[MetricTable],
    selection: MetricTable | None = None,
    paper: PaperTable | None = None,
    verdicts: str | None = None,
) -> str:
    """The whole main.md: a short legend, the claims' verdicts (`verdicts`, a rendered section of
    codit.report.verdicts, if any), the alpha selection (the selection metric's table, if any), the
    paper's table of the judged benchmarks (if any), then one section per metric."""
    intro = ["# CoDIT reproduction: evaluation results", "", *MARKDOWN_LEGEND, ""]
    if selection is not None:
        intro[-1:] = [*SELECTION_LEGEND, ""]
    if verdicts:
        intro.append(verdicts)
    if selection is not None:
        intro.append(markdown_selection_section(selection))
    if paper is not None:
        intro.append(markdown_paper_section(paper))
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


def _latex_cells(table: MetricTable) -> list[list[str]]:
    body = []
    for row in _row_cells(table, r" $\pm$ ", r"$\rightarrow$", r"\textbf{{{}}}"):
        escaped = [latex_escape(text) for text in row[:2]]
        # The architecture's arrow is already LaTeX; names inside it are plain words.
        escaped.append(row[2].replace("_", r"\_").replace(MISSING_CELL, "--"))
        escaped += [cell.replace(MISSING_CELL, "--").replace("α", r"$\alpha$") for cell in row[3:]]
        body.append(escaped)
    return body


def latex_tabular(header: list[str], body: list[list[str]], text_columns: int) -> list[str]:
    """A booktabs tabular: text columns left-aligned, numbers right-aligned."""
    return latex_tabular_lines(header, [latex_row(row) for row in body], text_columns)


def latex_row(cells: list[str]) -> str:
    return " & ".join(cells) + r" \\"


def latex_tabular_lines(header: list[str], lines: list[str], text_columns: int) -> list[str]:
    """A booktabs tabular around body lines already written (rows, rules, block headings)."""
    spec = "l" * text_columns + "r" * (len(header) - text_columns)
    # Shrink a tabular wider than the text (many alphas and betas), never enlarge a narrow one.
    return [
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        latex_row(header),
        r"\midrule",
        *lines,
        r"\bottomrule",
        r"\end{tabular}}",
    ]


def latex_metric_table(table: MetricTable) -> str:
    """One table float per metric: the arm comparison, then the reference models."""
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small"]
    if table.arms:
        header = ROW_HEADER + [arm.label(table.show_beta, latex=True) for arm in table.arms]
        lines += latex_tabular(header, _latex_cells(table), text_columns=len(ROW_HEADER))
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
    spread = r"$\pm$ one standard error"
    if table.has_intervals():
        spread = r"mean [95\% t interval] across seeds, or " + spread + " for one seed"
    caption = (
        f"{latex_escape(table.title)} ({note}); best arm per row (oracle arms aside) in bold, "
        f"{spread}."
    )
    lines += [rf"\caption{{{caption}}}", r"\end{table}"]
    return "\n".join(lines)


LATEX_PAPER = PaperStyle(plus_minus=r" $\pm$ ", bold=r"\textbf{{{}}}", missing="--", latex=True)


def latex_paper_table(paper: PaperTable, pair: str) -> str:
    """One teacher pair's part of the paper's table: a float with a block per student."""
    header = ["arm", *(latex_escape(column.label) for column in paper.columns)]
    lines: list[str] = []
    for block in (block for block in paper.blocks if block[0] == pair):
        title = latex_escape(paper_block_title(paper, block, "→")).replace("→", r"$\rightarrow$")
        if lines:
            lines.append(r"\midrule")
        heading = rf"\multicolumn{{{len(header)}}}{{l}}{{\textit{{{title}}}}}"
        lines += [latex_row([heading])]
        lines += [latex_row(row) for row in paper_block_rows(paper, block, LATEX_PAPER)]
    columns = "; ".join(f"{column.label}: {column.description}" for column in paper.columns)
    caption = (
        f"Judged benchmarks as in the paper, teacher pair {pair or 'none'} ({columns}); "
        "mean [95% t interval] across seeds, or value ± one standard error for one seed; best "
        f"arm per student and column (oracle arms aside) in bold. {paper.verdicts}"
    )
    caption = latex_escape(caption.strip()).replace("±", r"$\pm$")
    return "\n".join([
        r"\begin{table}[htbp]", r"\centering", r"\small",
        *latex_tabular_lines(header, lines, text_columns=1),
        rf"\caption{{{caption}}}", r"\end{table}",
    ])  # fmt: skip


def render_latex(tables: list[MetricTable], paper: PaperTable | None = None) -> str:
    """A standalone document (article, booktabs, graphicx) holding the paper's table (one float
    per teacher pair, if any judged benchmark ran), then one table float per metric."""
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
    pairs = sorted({pair for pair, _ in paper.blocks}) if paper is not None else []
    body = [latex_paper_table(paper, pair) + "\n" for pair in pairs if paper is not None]
    body += [latex_metric_table(table) + "\n" for table in tables]
    return "\n".join(preamble + body + [r"\end{document}", ""])
