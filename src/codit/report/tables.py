"""The tidy tables of a run: evaluation results (`main.csv`), their replicate summary
(`summary.csv`) and the dataset cards (`datasets.csv`); codit.report.pivots arranges them for
reading and codit.report.render writes them as Markdown and LaTeX.

The tidy evaluation table (`main.csv`) has one row per (evaluation, task, metric):
teacher_pair, student, student_architecture, teacher_architecture, arm, arm_name, alpha, beta,
seed, task, metric, value, stderr. `arm` holds the kind (`direct`, `bestofn`, `public`, `codit`,
`chatvector`, `reference`) and `arm_name` the full arm name (`bestof4_oracle`); alpha and beta
are numbers for CoDIT rows and empty otherwise; seed is the replicate seed (empty for chat-vector
students, references and older files). Public rows belong to no teacher pair (teacher_pair "").
Reference rows are untouched models (bases and instructs); the model name is in `student`.

The replicate summary (`summary.csv`) has one row per (teacher_pair, student, arm, arm_name,
alpha, beta, task, metric): n_seeds, mean, sd, a 95% Student-t interval across seeds (low, high;
empty for one seed) and lm-eval's stderr (one seed only). Public rows are copied to every teacher
pair there, so each pair's table row has a column for each public dataset.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from codit.report.stats import NO_FILTER, seed_interval
from codit.workflow.benchmarks import ALPACA_EVAL as ALPACA_EVAL_BENCHMARK
from codit.workflow.benchmarks import benchmarks
from codit.workflow.naming import (
    BEST_OF_N,
    CHAT_VECTOR,
    CODIT,
    DIRECT_ARM,
    PUBLIC,
    REFERENCE,
    Arm,
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
    # judged benchmarks: the items with a readable verdict, of the benchmark's items (a cell
    # scored on part of its benchmark is visible); empty for lm-eval tasks
    "n_scored",
    "n_items",
]
# The replicates of one model (one arm of one student) differ only in their seed.
SUMMARY_KEYS = ["teacher_pair", "student", "arm", "arm_name", "alpha", "beta", "task", "metric"]
SUMMARY_COLUMNS = [
    *(
        column
        for column in MAIN_COLUMNS
        if column not in {"seed", "value", "stderr", "n_scored", "n_items"}
    ),
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
# The judged benchmarks' task names (codit.workflow.benchmarks): their metrics carry their own
# units (not fractions shown in percent); AlpacaEval 2's scores count its kinds of verdicts.
JUDGED_TASKS = tuple(benchmark.task for benchmark in benchmarks())
ALPACA_EVAL = ALPACA_EVAL_BENCHMARK.task


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
    scored = payload.get("scored") if isinstance(payload.get("scored"), Mapping) else {}
    counts = {"n_scored": scored.get("items", math.nan), "n_items": scored.get("of", math.nan)}
    rows = []
    for task, entries in payload["results"].items():
        if isinstance(entries, Mapping):
            rows += [{**identity, **row, **counts} for row in task_metric_rows(task, entries)]
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


def partially_scored(table: pd.DataFrame) -> list[str]:
    """One line per judged result scored on fewer items than its benchmark has (the judge left
    some replies unreadable, within judge.max_unparsable_share)."""
    partial = table[table["n_scored"] < table["n_items"]].drop_duplicates(
        ["teacher_pair", "student", "arm_name", "seed", "task"]
    )
    return [
        f"{row.task} of {row.teacher_pair or '-'} / {row.student} / {row.arm_name}"
        + ("" if pd.isna(row.seed) else f" seed {int(row.seed)}")
        + f": {int(row.n_scored)} of {int(row.n_items)} items scored"
        for row in partial.itertuples()
    ]


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
