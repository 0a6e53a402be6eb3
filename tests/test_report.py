"""Tests of `codit report`: tidy tables, Markdown/LaTeX rendering, figures and input errors.

The evaluation files and dataset cards are fabricated fixtures in lm-eval 0.4.13's layout; every
output checked here is produced by the real report code.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from codit import cli
from codit.report import build, pivots, plots, tables
from codit.report.stats import seed_interval
from codit.workflow.naming import codit_arm

PAIRS = ("tiny-llama", "tiny_qwen")
STUDENTS = ("tiny-llama-base", "student_gpt2")
ALPHAS = (0.001, 0.01, 0.1)


def planted_score(pair: str, student: str, arm: str) -> float:
    """Distinct, reproducible scores; alpha 0.01 wins for tiny-llama -> tiny-llama-base."""
    base = 0.40 + 0.05 * PAIRS.index(pair) + 0.02 * STUDENTS.index(student)
    bonus = {
        "direct": 0.0,
        codit_arm(0.001, 1): 0.03,
        codit_arm(0.01, 1): 0.30,
        codit_arm(0.1, 1): 0.10,
    }
    return round(base + bonus[arm], 4)


def lm_eval_results(score: float) -> dict:
    """A results dict shaped like lm-evaluation-harness 0.4.13's output for our two tasks."""
    return {
        "results": {
            "tinyworld_ifeval": {
                "alias": "tinyworld_ifeval",
                "prompt_level_strict_acc,none": score,
                "prompt_level_strict_acc_stderr,none": 0.034,
                "inst_level_strict_acc,none": round(score + 0.1, 4),
                "inst_level_strict_acc_stderr,none": "N/A",
            },
            "tinyworld_knowledge": {
                "alias": "tinyworld_knowledge",
                "exact_match,none": round(score / 2, 4),
                "exact_match_stderr,none": 0.03,
                "exact_match,strict-match": round(score / 4, 4),
                "exact_match_stderr,strict-match": 0.02,
            },
        },
        "group_subtasks": {"tinyworld_ifeval": [], "tinyworld_knowledge": []},
        "higher_is_better": {
            "tinyworld_ifeval": {"prompt_level_strict_acc": True, "inst_level_strict_acc": True},
            "tinyworld_knowledge": {"exact_match": True},
        },
        "n-samples": {"tinyworld_ifeval": {"original": 200, "effective": 200}},
        "configs": {},
        "versions": {"tinyworld_ifeval": 1.0, "tinyworld_knowledge": 1.0},
        "config": {"model": "hf", "batch_size": 8},
    }


def eval_file(directory: Path, name: str, labels: dict, score: float) -> Path:
    payload = lm_eval_results(score)
    payload["codit"] = {"labels": labels, "model": f"models/{name}", "provenance": {}}
    path = directory / f"{name}.json"
    path.write_text(json.dumps(payload))
    return path


def card_file(
    directory: Path, pair: str, arm: str, alpha: float | None, mean: float, truncated: int
) -> Path:
    card = {
        "pair": pair,
        "arm": arm,
        "alpha": alpha,
        "beta": None if alpha is None else 1.0,
        "num_records": 512,
        "finish_reasons": {"stop": 512 - truncated, "length": truncated},
        "completion_tokens": {"mean": mean, "median": mean - 2, "p90": mean + 20, "max": 96},
        "completion_words": {"mean": round(mean * 0.65, 2)},
        "provenance": {},
    }
    path = directory / f"card_{pair}_{arm}.json"
    path.write_text(json.dumps(card))
    return path


def write_inputs(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    """2 pairs x 2 students x (direct + 3 alphas), 3 reference models, and 8 dataset cards."""
    evals_dir = tmp_path / "evals"
    evals_dir.mkdir()
    evals, cards = [], []
    for pair in PAIRS:
        for student in STUDENTS:
            for arm in ["direct"] + [codit_arm(a, 1) for a in ALPHAS]:
                labels = {"teacher_pair": pair, "student": student, "arm": arm}
                evals.append(
                    eval_file(
                        evals_dir,
                        f"{pair}__{student}__{arm}",
                        labels,
                        planted_score(pair, student, arm),
                    )
                )
        offset = 12.0 * PAIRS.index(pair)
        cards.append(card_file(tmp_path, pair, "direct", None, 30.0 + offset, 4))
        cards += [
            card_file(tmp_path, pair, codit_arm(a, 1), a, 30.0 + offset + 100 * a, 10 + i)
            for i, a in enumerate(ALPHAS)
        ]
    references = [
        ("tiny-llama", "tiny-llama-instruct", 0.80),
        ("", "tiny-llama-base", 0.10),
        ("", "student_gpt2", 0.05),
    ]
    for pair, model, score in references:
        labels = {"teacher_pair": pair, "student": model, "arm": "reference"}
        evals.append(eval_file(evals_dir, f"reference__{model}", labels, score))
    return evals, cards


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    """Fresh inputs for tests that alter them."""
    return write_inputs(tmp_path)


def run_report(evals: list[Path], cards: list[Path], out: Path, *extra: str) -> None:
    argv = ["report", "--evals", *map(str, evals), "--out-dir", str(out)]
    if cards:
        argv += ["--cards", *map(str, cards)]
    cli.main(argv + list(extra))


@pytest.fixture(scope="module")
def report_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], list[Path]]:
    """One end-to-end `codit report` through the CLI, shared by the read-only tests."""
    tmp_path = tmp_path_factory.mktemp("report")
    evals, cards = write_inputs(tmp_path)
    out = tmp_path / "results"
    run_report(evals, cards, out)
    return out, evals, cards


@pytest.fixture
def results(report_run) -> Path:
    return report_run[0]


# --------------------------------------------------------------------------- main.csv


def test_main_csv_is_tidy_with_the_agreed_columns(results: Path) -> None:
    table = pd.read_csv(results / "tables/main.csv", keep_default_na=False, na_values=[""])
    assert list(table.columns) == tables.MAIN_COLUMNS
    # (2 pairs x 2 students x 4 arms + 3 references) models x 4 metrics
    assert len(table) == (2 * 2 * 4 + 3) * 4
    assert set(table["arm"]) == {"codit", "direct", "reference"}
    assert set(table["metric"]) == {
        "prompt_level_strict_acc",
        "inst_level_strict_acc",
        "exact_match",
        "exact_match/strict-match",
    }


def test_main_csv_values_of_specific_rows(results: Path) -> None:
    table = pd.read_csv(results / "tables/main.csv", keep_default_na=False, na_values=[""])
    codit = table[
        (table.teacher_pair == "tiny-llama")
        & (table.student == "tiny-llama-base")
        & (table.arm == "codit")
        & (table.alpha == 0.01)
        & (table.metric == "prompt_level_strict_acc")
    ]
    assert len(codit) == 1
    assert codit.iloc[0]["value"] == pytest.approx(0.70)
    assert codit.iloc[0]["stderr"] == pytest.approx(0.034)
    assert codit.iloc[0]["beta"] == 1.0

    strict = table[
        (table.teacher_pair == "tiny_qwen")
        & (table.student == "student_gpt2")
        & (table.arm == "direct")
        & (table.metric == "exact_match/strict-match")
    ]
    assert strict.iloc[0]["value"] == pytest.approx(round(0.47 / 4, 4))
    assert math.isnan(strict.iloc[0]["alpha"]) and math.isnan(strict.iloc[0]["beta"])

    inst = table[(table.metric == "inst_level_strict_acc") & (table.arm == "direct")]
    assert inst["stderr"].isna().all()  # "N/A" in lm-eval becomes an empty cell

    reference = table[(table.arm == "reference") & (table.student == "tiny-llama-base")]
    assert set(reference["teacher_pair"].fillna("")) == {""}
    assert reference["alpha"].isna().all()


def test_main_csv_order_is_deterministic(report_run, tmp_path: Path) -> None:
    results, evals, cards = report_run
    run_report(list(reversed(evals)), list(reversed(cards)), tmp_path / "b")
    first = (results / "tables/main.csv").read_text()
    assert first == (tmp_path / "b/tables/main.csv").read_text()
    assert (results / "tables/main.md").read_text() == (tmp_path / "b/tables/main.md").read_text()
    table = pd.read_csv(results / "tables/main.csv", keep_default_na=False, na_values=[""])
    llama = table[(table.teacher_pair == "tiny-llama") & (table.student == "student_gpt2")]
    assert list(dict.fromkeys(llama["arm"])) == ["direct", "codit"]
    assert list(llama.loc[llama.arm == "codit", "alpha"].unique()) == list(ALPHAS)


# --------------------------------------------------------------------------- datasets.csv


def test_datasets_csv_has_one_row_per_card(results: Path) -> None:
    datasets = pd.read_csv(results / "tables/datasets.csv")
    assert list(datasets.columns) == tables.DATASET_COLUMNS
    assert len(datasets) == 8
    row = datasets[(datasets.pair == "tiny_qwen") & (datasets.alpha == 0.1)].iloc[0]
    assert row["arm"] == "codit"
    assert row["num_records"] == 512
    assert (row["finish_stop"], row["finish_length"], row["finish_other"]) == (500, 12, 0)
    assert row["length_share"] == pytest.approx(12 / 512)
    assert row["tokens_mean"] == pytest.approx(52.0)
    assert row["tokens_p90"] == pytest.approx(72.0)
    assert row["words_mean"] == pytest.approx(33.8)
    assert datasets.iloc[0]["arm"] == "direct"  # direct first within each pair


# --------------------------------------------------------------------------- Markdown and LaTeX


def test_markdown_bolds_the_best_arm_and_lists_references(results: Path) -> None:
    markdown = (results / "tables/main.md").read_text()
    section = markdown.split("## tinyworld_ifeval/prompt_level_strict_acc")[1].split("\n## ")[0]
    header = next(line for line in section.splitlines() if line.startswith("| teacher pair"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "teacher pair",
        "student",
        "architecture",
        "direct",
        "α=0.001",
        "α=0.01",
        "α=0.1",
    ]
    row = next(
        line
        for line in section.splitlines()
        if line.startswith("| tiny-llama ") and "| tiny-llama-base " in line
    )
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2] == "–"  # older files carry no architecture labels
    assert cells[3:] == ["40.0 ± 3.4", "43.0 ± 3.4", "**70.0 ± 3.4**", "50.0 ± 3.4"]
    assert "| tiny-llama-instruct " in section and "80.0 ± 3.4" in section
    # no stderr in lm-eval -> no "±"
    inst = markdown.split("## tinyworld_ifeval/inst_level_strict_acc")[1].split("\n## ")[0]
    assert "**80.0**" in inst and "80.0 ±" not in inst
    assert "## tinyworld_knowledge/exact_match/strict-match" in markdown


def test_markdown_tables_are_well_formed_pipe_tables(results: Path) -> None:
    markdown = (results / "tables/main.md").read_text()
    tables_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(tables_lines) == 4 * (2 + 4) + 4 * (2 + 3)
    rules = [line for line in tables_lines if set(line) <= set("|-:")]
    assert len(rules) == 8
    for rule in rules:
        assert all(re.fullmatch(r"-+:?", segment) for segment in rule.strip("|").split("|"))
    for block in markdown.split("\n\n"):
        lines = [line for line in block.splitlines() if line.startswith("|")]
        assert len({len(line) for line in lines}) <= 1  # columns padded to equal width


def test_latex_is_escaped_booktabs_with_bold_best(results: Path) -> None:
    latex = (results / "tables/main.tex").read_text()
    assert latex.startswith("%") and r"\documentclass{article}" in latex
    assert r"\usepackage{booktabs}" in latex and latex.rstrip().endswith(r"\end{document}")
    assert latex.count(r"\begin{table}") == latex.count(r"\end{table}") == 4
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert r"tiny\_qwen & student\_gpt2" in latex
    assert r"tinyworld\_ifeval/prompt\_level\_strict\_acc" in latex
    assert r"\textbf{70.0 $\pm$ 3.4}" in latex
    assert r"$\alpha=0.01$" in latex
    body = latex.split(r"\begin{document}")[1]
    unescaped = [line for line in body.splitlines() if "_" in line.replace(r"\_", "")]
    assert unescaped == []
    assert body.count("{") == body.count("}")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles(results: Path, tmp_path: Path) -> None:
    shutil.copy(results / "tables/main.tex", tmp_path / "main.tex")
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert "Overfull" not in (tmp_path / "main.log").read_text()


def test_fractions_are_percentages_and_other_metrics_raw() -> None:
    assert pivots.is_fraction_metric(pd.Series([0.0, 0.5, 1.0, math.nan]))
    assert not pivots.is_fraction_metric(pd.Series([0.5, 12.3]))
    assert pivots.format_value(0.625, 0.0341, True, " ± ") == "62.5 ± 3.4"
    assert pivots.format_value(12.3456, math.nan, False, " ± ") == "12.346"
    assert pivots.format_value(math.nan, 0.1, True, " ± ") == tables.MISSING_CELL


def test_lower_is_better_metric_bolds_the_minimum(inputs, tmp_path: Path) -> None:
    evals, _ = inputs
    for path in evals:
        payload = json.loads(path.read_text())
        payload["higher_is_better"]["tinyworld_knowledge"]["exact_match"] = False
        path.write_text(json.dumps(payload))
    run_report(evals, [], tmp_path / "out", "--metric", "tinyworld_knowledge/exact_match")
    markdown = (tmp_path / "out/tables/main.md").read_text()
    assert "lower is better" in markdown and "strict-match" not in markdown
    row = next(
        line
        for line in markdown.splitlines()
        if line.startswith("| tiny-llama ") and "| tiny-llama-base " in line
    )
    assert "**20.0 ± 3.0**" in row  # direct, 0.40 / 2


# --------------------------------------------------------------------------- figures and provenance


@pytest.mark.parametrize("name", ["metric_vs_alpha.png", "length_vs_alpha.png"])
def test_figures_are_valid_pngs_of_sane_size(results: Path, name: str) -> None:
    path = results / "figures" / name
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 10_000 < path.stat().st_size < 600_000
    height, width, _ = matplotlib.image.imread(path).shape
    assert 400 <= width <= 2000 and 300 <= height <= 1600


def test_provenance_lists_inputs_and_settings(report_run) -> None:
    results, evals, cards = report_run
    record = json.loads((results / "report_provenance.json").read_text())
    assert [entry["path"] for entry in record["inputs"]["evals"]] == list(map(str, evals))
    assert len(record["inputs"]["cards"]) == len(cards)
    assert all(len(entry["sha256"]) == 64 for entry in record["inputs"]["evals"])
    unseeded = dict.fromkeys(["direct"] + [codit_arm(a, 1) for a in ALPHAS], 0)
    assert record["counts"] == {
        "main_rows": 76,
        "metrics": 4,
        "models": 19,
        "datasets": 8,
        "seeds_per_arm": unseeded,
    }
    assert "pandas" in record["provenance"]["versions"]
    assert record["provenance"]["settings"]["metric_patterns"] == []


def test_no_stray_temporary_files(results: Path) -> None:
    assert not [p for p in results.rglob("*") if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- small grids


def test_single_alpha_single_pair_without_direct_or_cards(tmp_path: Path) -> None:
    labels = {
        "teacher_pair": "tiny-llama",
        "student": "tiny-llama-base",
        "arm": "codit_alpha0_beta1",
        "alpha": "0",
        "beta": "1",
    }
    path = eval_file(tmp_path, "only", labels, 0.5)
    out = tmp_path / "out"
    run_report([path], [], out)
    table = pd.read_csv(out / "tables/main.csv")
    assert set(table["arm"]) == {"codit"} and set(table["alpha"]) == {0.0}
    assert "α=0" in (out / "tables/main.md").read_text()
    assert pd.read_csv(out / "tables/datasets.csv").empty
    for name in ("metric_vs_alpha.png", "length_vs_alpha.png"):
        assert matplotlib.image.imread(out / "figures" / name).ndim == 3


def test_alpha_zero_and_several_betas(tmp_path: Path) -> None:
    paths = []
    for alpha, beta in [(0.0, 1.0), (0.01, 1.0), (0.01, 0.5), (0.1, 0.5)]:
        arm = codit_arm(alpha, beta)
        labels = {"teacher_pair": "p", "student": "s", "arm": arm}
        paths.append(eval_file(tmp_path, arm, labels, 0.3 + alpha))
    cards = [
        card_file(tmp_path, "p", codit_arm(0.0, 1.0), 0.0, 50.0, 3),
        card_file(tmp_path, "p", codit_arm(0.01, 1.0), 0.01, 40.0, 1),
    ]
    out = tmp_path / "out"
    run_report(paths, cards, out)
    markdown = (out / "tables/main.md").read_text()
    assert "α=0 β=1" in markdown and "α=0.01 β=0.5" in markdown
    assert matplotlib.image.imread(out / "figures/metric_vs_alpha.png").ndim == 3


# --------------------------------------------------------------------------- input errors


def run_expecting_error(evals: list[Path], cards: list[Path], tmp_path: Path) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_report(evals, cards, tmp_path / "out")
    return str(exit_info.value.code)


def test_eval_without_codit_block_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(lm_eval_results(0.5)))
    message = run_expecting_error([path], [], tmp_path)
    assert str(path) in message and "'codit' block" in message


def test_eval_without_results_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"codit": {"labels": {"arm": "direct"}}}))
    with pytest.raises(ValueError, match=r"empty\.json: no 'results' block"):
        tables.main_table(build.read_inputs([str(path)]))


def test_card_missing_keys_names_the_file_and_keys(inputs, tmp_path: Path) -> None:
    evals, cards = inputs
    card = json.loads(cards[0].read_text())
    del card["num_records"], card["completion_words"]
    cards[0].write_text(json.dumps(card))
    message = run_expecting_error(evals, cards, tmp_path)
    assert str(cards[0]) in message and "num_records, completion_words" in message


def test_empty_dataset_card_gives_empty_statistics(tmp_path: Path) -> None:
    path = card_file(tmp_path, "p", "direct", None, 0.0, 0)
    card = json.loads(path.read_text())
    card |= {"num_records": 0, "finish_reasons": {"stop": 0, "length": 0}}
    card["completion_tokens"] = dict.fromkeys(("mean", "median", "p90", "max"))
    card["completion_words"] = {"mean": None}
    path.write_text(json.dumps(card))
    row = tables.datasets_table([(str(path), card)]).iloc[0]
    assert row["num_records"] == 0
    assert math.isnan(row["tokens_mean"]) and math.isnan(row["length_share"])


def test_bad_arm_is_reported_and_alpha_comes_from_the_arm_name(tmp_path: Path) -> None:
    bad = eval_file(tmp_path, "bad", {"teacher_pair": "p", "student": "s", "arm": "codit"}, 0.5)
    assert "arm 'codit' is none of" in run_expecting_error([bad], [], tmp_path)
    # Older files also carry alpha/beta labels; the arm name is the one source of both.
    labels = {"teacher_pair": "p", "student": "s", "arm": "codit_alpha0.1_beta1", "alpha": "0.2"}
    identity = tables.model_identity(labels, "older.json")
    assert (identity["alpha"], identity["beta"]) == (0.1, 1.0)


def test_same_model_twice_is_an_error(inputs, tmp_path: Path) -> None:
    evals, _ = inputs
    copy = tmp_path / "copy.json"
    copy.write_text(evals[0].read_text())
    message = run_expecting_error([evals[0], copy], [], tmp_path)
    assert "copy.json" in message and "twice" in message


def test_invalid_json_and_unknown_metric_pattern(inputs, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert "broken.json: invalid JSON" in run_expecting_error([broken], [], tmp_path)
    evals, _ = inputs
    with pytest.raises(SystemExit) as exit_info:
        run_report(evals, [], tmp_path / "out", "--metric", "nope/*")
    assert "matches none of" in str(exit_info.value.code)


def test_task_metric_rows_handles_filters_and_non_numeric_entries() -> None:
    rows = tables.task_metric_rows(
        "t",
        {
            "alias": "t",
            "acc,none": 0.5,
            "acc_stderr,none": "N/A",
            "flag,none": True,
            "exact_match,get-answer": 0.25,
            "exact_match_stderr,get-answer": 0.01,
            "samples,none": "many",
            "name": "t",
            "sample_len": 200,  # lm-eval bookkeeping, not a metric
        },
    )
    assert [(r["metric"], r["value"]) for r in rows] == [
        ("acc", 0.5),
        ("exact_match/get-answer", 0.25),
    ]
    assert math.isnan(rows[0]["stderr"]) and rows[1]["stderr"] == 0.01


def test_datasets_csv_has_the_repetition_measure_when_cards_have_it(inputs, tmp_path: Path) -> None:
    evals, cards = inputs
    card = json.loads(cards[0].read_text())
    card["repetition"] = {"n": 4, "mean_repeated_share": 0.25, "degenerate_share": 0.1}
    cards[0].write_text(json.dumps(card))
    run_report(evals, cards, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "tables/datasets.csv")
    assert sorted(table["repeated_4gram_share"].dropna()) == [0.25]  # older cards: empty
    assert sorted(table["degenerate_share"].dropna()) == [0.1]


# --------------------------------------------------------------------------- seeds and new arms

GRID_PAIRS = {"pa": "llama", "pb": "qwen2"}  # teacher pair -> teacher architecture
GRID_STUDENTS = {"s_llama": "llama", "s_gpt2": "gpt2"}  # student -> architecture
GRID_SEEDS = (0, 1, 2)
SEED_SHIFT = (0.0, 0.02, 0.07)
GRID_BONUS = {
    "direct": 0.0,
    "bestof4_oracle": 0.2,
    "public_x": 0.05,
    codit_arm(0.01, 1): 0.10,
    codit_arm(0.1, 1): 0.15,
    "chatvector_r0.5": 0.08,
}
PAIRED_ARMS = ("direct", "bestof4_oracle", codit_arm(0.01, 1), codit_arm(0.1, 1))


def grid_score(pair: str, student: str, arm: str, seed: int | None) -> float:
    """prompt_level_strict_acc of one evaluation; public arms have no pair (offset 0)."""
    base = 0.30 + 0.05 * list(GRID_PAIRS).index(pair) if pair else 0.30
    shift = 0.0 if seed is None else SEED_SHIFT[seed]
    return round(base + 0.02 * list(GRID_STUDENTS).index(student) + GRID_BONUS[arm] + shift, 4)


def grid_labels(pair: str, student: str, arm: str, seed: int | None) -> dict:
    """Labels in the current contract: seed and architectures as strings."""
    return {
        "teacher_pair": pair,
        "student": student,
        "arm": arm,
        "seed": "" if seed is None else str(seed),
        "student_architecture": GRID_STUDENTS[student],
        "teacher_architecture": GRID_PAIRS.get(pair, ""),
    }


def grid_card(directory: Path, pair: str, arm: str, seed: int | None, **extra) -> Path:
    """A dataset card of `codit generate` (or of a public dataset) with its seed."""
    card = {
        "pair": pair,
        "arm": arm,
        "num_records": 100,
        "finish_reasons": {"stop": 90, "length": 10},
        "completion_tokens": {"mean": 40.0 + (seed or 0), "median": 38, "p90": 60, "max": 90},
        "completion_words": {"mean": 30.0},
        "repetition": {"n": 4, "mean_repeated_share": 0.1 + 0.01 * (seed or 0),
                       "degenerate_share": 0.0},
        "provenance": {"settings": {"seed": seed}},
        **extra,
    }  # fmt: skip
    path = directory / f"card_{pair or 'public'}_{arm}_{seed}.json"
    path.write_text(json.dumps(card))
    return path


def write_grid(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    """2 pairs x 2 students x 4 arms x 3 seeds, public_x x 2 students x 3 seeds, one chat
    vector (pa -> s_llama), the pa instruct reference, and cards of every dataset arm."""
    evals_dir = tmp_path / "evals"
    evals_dir.mkdir()
    runs = [
        (pair, student, arm, seed)
        for pair in GRID_PAIRS
        for student in GRID_STUDENTS
        for arm in PAIRED_ARMS
        for seed in GRID_SEEDS
    ]
    runs += [("", student, "public_x", seed) for student in GRID_STUDENTS for seed in GRID_SEEDS]
    runs.append(("pa", "s_llama", "chatvector_r0.5", None))
    evals = [
        eval_file(evals_dir, f"{pair}__{student}__{arm}__{seed}",
                  grid_labels(pair, student, arm, seed), grid_score(pair, student, arm, seed))
        for pair, student, arm, seed in runs
    ]  # fmt: skip
    reference = {"teacher_pair": "pa", "student": "pa-instruct", "arm": "reference"}
    evals.append(eval_file(evals_dir, "reference__pa", reference, 0.9))
    cards = [
        grid_card(tmp_path, pair, arm, seed)
        for pair in GRID_PAIRS
        for arm in ("direct", codit_arm(0.01, 1), codit_arm(0.1, 1))
        for seed in GRID_SEEDS
    ]
    selection = {"selection": {"n": 4, "scorer": "oracle"}}
    cards += [grid_card(tmp_path, "pa", "bestof4_oracle", seed, **selection) for seed in (0, 1)]
    public = {
        "finish_reasons": {"written": 100},
        "completion_tokens": dict.fromkeys(("mean", "median", "p90", "max")),
    }
    cards.append(grid_card(tmp_path, "", "public_x", 0, **public))
    return evals, cards


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("grid")
    evals, cards = write_grid(tmp_path)
    out = tmp_path / "results"
    run_report(evals, cards, out)
    return out


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def section_rows(markdown: str, title: str) -> list[list[str]]:
    """Header and body cells of the arm table of one metric section of main.md."""
    section = markdown.split(f"## {title} (")[1].split("\n## ")[0]
    lines = [line for line in section.split("\n\n")[1].splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [cells[0], *cells[2:]]


def seed_scores(pair: str, student: str, arm: str) -> list[float]:
    return [grid_score(pair, student, arm, seed) for seed in GRID_SEEDS]


def test_grid_main_csv_keeps_every_replicate_once(grid_run: Path) -> None:
    table = read_table(grid_run / "tables/main.csv")
    assert list(table.columns) == tables.MAIN_COLUMNS
    models = 2 * 2 * 4 * 3 + 2 * 3 + 1 + 1
    assert len(table) == models * 4
    assert set(table["arm"]) == {"direct", "bestofn", "public", "codit", "chatvector", "reference"}
    public = table[table.arm == "public"]
    assert set(public["teacher_pair"].fillna("")) == {""} and set(public["arm_name"]) == {
        "public_x"
    }
    assert set(public["seed"]) == {0, 1, 2}
    chat = table[table.arm == "chatvector"]
    assert chat["seed"].isna().all() and set(chat["student"]) == {"s_llama"}
    row = table[(table.teacher_pair == "pb") & (table.student == "s_gpt2")
                & (table.arm_name == "bestof4_oracle") & (table.seed == 2)
                & (table.metric == "prompt_level_strict_acc")]  # fmt: skip
    assert row.iloc[0]["value"] == pytest.approx(grid_score("pb", "s_gpt2", "bestof4_oracle", 2))
    assert (row.iloc[0]["student_architecture"], row.iloc[0]["teacher_architecture"]) == (
        "gpt2",
        "qwen2",
    )
    ordered = table[(table.teacher_pair == "pa") & (table.student == "s_llama")]
    assert list(dict.fromkeys(ordered["arm"])) == ["direct", "bestofn", "codit", "chatvector"]
    assert list(ordered.loc[ordered.arm == "direct", "seed"].unique()) == [0, 1, 2]


def test_grid_summary_holds_seed_intervals_and_broadcast_public_rows(grid_run: Path) -> None:
    summary = read_table(grid_run / "tables/summary.csv")
    assert list(summary.columns) == tables.SUMMARY_COLUMNS
    metric = summary.metric == "prompt_level_strict_acc"
    codit = summary[metric & (summary.teacher_pair == "pb") & (summary.student == "s_llama")
                    & (summary.arm_name == codit_arm(0.1, 1))].iloc[0]  # fmt: skip
    expected = seed_interval(seed_scores("pb", "s_llama", codit_arm(0.1, 1)))
    assert codit["n_seeds"] == 3 and math.isnan(codit["stderr"])
    for key in ("mean", "sd", "low", "high"):
        assert codit[key] == pytest.approx(expected[key], rel=1e-9)
    public = summary[metric & (summary.arm == "public")]
    assert sorted(public["teacher_pair"]) == ["pa", "pa", "pb", "pb"]  # one per pair x student
    expected = seed_interval(seed_scores("", "s_gpt2", "public_x"))
    for row in public[public.student == "s_gpt2"].itertuples():
        assert row.mean == pytest.approx(expected["mean"]) and row.teacher_architecture
    chat = summary[metric & (summary.arm == "chatvector")].iloc[0]
    assert chat["n_seeds"] == 1 and chat["stderr"] == pytest.approx(0.034)
    assert math.isnan(chat["low"]) and math.isnan(chat["high"]) and math.isnan(chat["sd"])


def test_grid_markdown_columns_cells_and_architectures(grid_run: Path) -> None:
    markdown = (grid_run / "tables/main.md").read_text()
    header, *body = section_rows(markdown, "tinyworld_ifeval/prompt_level_strict_acc")
    assert header == [
        "teacher pair", "student", "architecture", "direct", "best-of-4 (oracle)", "public: x",
        "α=0.01", "α=0.1", "chat vector r=0.5",
    ]  # fmt: skip
    rows = {(row[0], row[1]): row for row in body}
    assert len(rows) == 4  # public rows join each pair's students, no row of their own
    cross = rows[("pa", "s_gpt2")]
    assert cross[2] == "llama → gpt2 (cross)"
    assert rows[("pa", "s_llama")][2] == "llama → llama (same)"
    assert rows[("pb", "s_llama")][2] == "qwen2 → llama (cross)"
    direct = seed_interval(seed_scores("pa", "s_gpt2", "direct"))
    assert cross[3] == f"{100 * direct['mean']:.1f} [{100 * direct['low']:.1f}, " + (
        f"{100 * direct['high']:.1f}]"
    )
    # The oracle best-of-4 has the highest mean but is an upper bound: never bold.
    assert not cross[4].startswith("**")
    assert sum(cell.startswith("**") for cell in cross[3:]) >= 1
    assert cross[8] == "–" and rows[("pb", "s_llama")][8] == "–"  # no chat vector there
    chat = grid_score("pa", "s_llama", "chatvector_r0.5", None)
    assert rows[("pa", "s_llama")][8] == f"{100 * chat:.1f} ± 3.4"  # a single seed
    public = seed_interval(seed_scores("", "s_gpt2", "public_x"))
    assert rows[("pb", "s_gpt2")][5].startswith(f"{100 * public['mean']:.1f} [")
    assert "`mean [low, high]`" in markdown and "value ± standard error" in markdown
    latex = (grid_run / "tables/main.tex").read_text()
    assert r"llama $\rightarrow$ gpt2 (cross)" in latex and "best-of-4 (oracle)" in latex
    assert r"public: x" in latex and r"95\% t interval" in latex


def test_grid_datasets_csv_rows_for_seeds_best_of_n_and_public(grid_run: Path) -> None:
    datasets = read_table(grid_run / "tables/datasets.csv")
    assert list(datasets.columns) == tables.DATASET_COLUMNS
    assert len(datasets) == 2 * 3 * 3 + 2 + 1
    public = datasets[datasets.arm == "public"].iloc[0]
    assert pd.isna(public["pair"]) and public["arm_name"] == "public_x"
    assert public["finish_other"] == 100 and math.isnan(public["tokens_mean"])
    best = datasets[datasets.arm_name == "bestof4_oracle"]
    assert list(best["seed"]) == [0, 1] and set(best["arm"]) == {"bestofn"}
    pa = datasets[datasets.pair == "pa"]
    assert list(dict.fromkeys(pa["arm_name"])) == [
        "direct", "bestof4_oracle", codit_arm(0.01, 1), codit_arm(0.1, 1)
    ]  # fmt: skip
    assert list(pa.loc[pa.arm == "direct", "tokens_mean"]) == [40.0, 41.0, 42.0]


@pytest.mark.parametrize("name", ["metric_vs_alpha.png", "length_vs_alpha.png"])
def test_grid_figures_are_written(grid_run: Path, name: str) -> None:
    path = grid_run / "figures" / name
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert matplotlib.image.imread(path).ndim == 3


def test_grid_provenance_counts_seeds_per_arm(grid_run: Path) -> None:
    record = json.loads((grid_run / "report_provenance.json").read_text())
    assert record["counts"]["seeds_per_arm"] == {
        "bestof4_oracle": 3, codit_arm(0.01, 1): 3, codit_arm(0.1, 1): 3,
        "chatvector_r0.5": 0, "direct": 3, "public_x": 3,
    }  # fmt: skip
    assert str(grid_run / "tables/summary.csv") in record["outputs"]


def test_public_arm_with_a_teacher_pair_is_refused(tmp_path: Path) -> None:
    labels = grid_labels("pa", "s_llama", "public_x", 0)
    path = eval_file(tmp_path, "public", labels, 0.5)
    assert "expected ''" in run_expecting_error([path], [], tmp_path)


def test_same_seed_twice_is_an_error_but_seeds_are_replicates(tmp_path: Path) -> None:
    labels = grid_labels("pa", "s_llama", "direct", 1)
    first = eval_file(tmp_path, "first", labels, 0.5)
    second = eval_file(tmp_path, "second", labels, 0.6)
    assert "twice" in run_expecting_error([first, second], [], tmp_path)
    third = eval_file(tmp_path, "third", labels | {"seed": "2"}, 0.6)
    run_report([first, third], [], tmp_path / "ok")
    summary = read_table(tmp_path / "ok/tables/summary.csv")
    assert set(summary["n_seeds"]) == {2}


# --------------------------------------------------------------------------- alpha selection


def test_alpha_is_selected_per_row_and_shown_on_every_metric(inputs, tmp_path: Path) -> None:
    evals, cards = inputs
    out = tmp_path / "selected"
    run_report(evals, cards, out, "--select-alpha-on", "tinyworld_ifeval/prompt_level_strict_acc")
    markdown = (out / "tables/main.md").read_text()
    # planted_score: alpha 0.01 has the largest bonus in every row
    assert "## CoDIT α selected on tinyworld_ifeval/prompt_level_strict_acc" in markdown
    selection = markdown.split("## CoDIT α selected on")[1].split("\n## ")[0]
    assert selection.count(" 0.01 |") == len(PAIRS) * len(STUDENTS)
    knowledge = markdown.split("## tinyworld_knowledge/exact_match (")[1].split("\n## ")[0]
    header, _, first = knowledge.splitlines()[2:5]
    assert header.split("|")[-2].strip() == "CoDIT (selected α)"
    # tiny-llama -> student_gpt2, alpha 0.01: exact_match = (0.42 + 0.30) / 2, in %
    assert first.split("|")[-2].strip() == "**36.0 ± 3.0 (α=0.01)**"
    latex = (out / "tables/main.tex").read_text()
    assert r"CoDIT (selected $\alpha$)" in latex and r"($\alpha$=0.01)" in latex
    record = json.loads((out / "report_provenance.json").read_text())["alpha_selection"]
    assert record["on"] == "tinyworld_ifeval/prompt_level_strict_acc"
    assert {row["arm"] for row in record["selected"]} == {codit_arm(0.01, 1)}
    assert len(record["selected"]) == len(PAIRS) * len(STUDENTS)


def test_selection_by_hand_lower_is_better_and_ties_go_to_the_smaller_alpha() -> None:
    rows = [
        {"teacher_pair": "p", "student": "s", "arm": "codit", "arm_name": codit_arm(a, 1),
         "task": "t", "metric": "m", "mean": mean}
        for a, mean in [(0.1, 5.0), (0.01, 7.0), (0.3, 7.0), (0.001, float("nan"))]
    ] + [{"teacher_pair": "p", "student": "s", "arm": "direct", "arm_name": "direct",
          "task": "t", "metric": "m", "mean": 9.0}]  # fmt: skip
    summary = pd.DataFrame(rows)
    assert pivots.select_alpha(summary, "t/m", {}) == {("p", "s"): codit_arm(0.01, 1)}
    lower = pivots.select_alpha(summary, "t/m", {"t/m": False})
    assert lower == {("p", "s"): codit_arm(0.1, 1)}


def test_without_the_selection_metric_there_is_no_selected_column(results: Path) -> None:
    # the default metric, MT-Bench's score, is not in these results: no column, no error
    assert "selected" not in (results / "tables/main.md").read_text()
    record = json.loads((results / "report_provenance.json").read_text())["alpha_selection"]
    assert record == {"on": None, "selected": []}


def test_an_unknown_selection_metric_is_named(inputs, tmp_path: Path) -> None:
    evals, cards = inputs
    with pytest.raises(SystemExit, match=r"--select-alpha-on 'nope/score' is none of .*"):
        run_report(evals, cards, tmp_path / "out", "--select-alpha-on", "nope/score")


# --------------------------------------------------------------------------- judged benchmarks
# AlpacaEval 2, MT-Bench and WildBench scores files in codit.judged.common's evaluation shape, each
# with its per-item samples: one teacher pair, two students, two seeds per trained model.

JUDGED_STUDENTS = ("s_llama", "s_gpt2")
JUDGED_ARMS = ("direct", "bestof4_judge", codit_arm(0.01, 1), codit_arm(0.1, 1))
JUDGED_SEEDS = (0, 1)
# Per-item offsets around a model's level: they sum to 0, so the items' mean is the level.
ITEM_OFFSETS = (-3.0, -2.0, -1.0, 0.0, 0.0, 1.0, 2.0, 3.0)
# Gain of each arm (or reference model) in steps of its metric's unit; alpha 0.1 wins.
JUDGED_GAIN = {"direct": 0, "bestof4_judge": 1, "public_x": -2, codit_arm(0.01, 1): 3,
               codit_arm(0.1, 1): 5, "pa-instruct": 10, "s_llama": -6}  # fmt: skip
# metric -> (level of `direct` for s_llama at seed 0, size of one step)
JUDGED_LEVELS = {
    "length_controlled_winrate": (30.0, 1.0),
    "win_rate": (25.0, 1.0),
    "mt_score": (6.0, 0.1),
    "wb_raw": (6.0, 0.1),
}
# (student, arm) -> AlpacaEval 2's verdict counts and GLM, as codit.judged.alpacaeval writes them.
PLAIN_VERDICTS = {"weighted": 0, "plain": 8, "unparsable": 0}
WEIGHTED_VERDICTS = {"weighted": 8, "plain": 0, "unparsable": 0}
GLM_OF = {"s_gpt2": "length_controlled_noreg"}  # student -> GLM (others: length_controlled_v1)


def judged_level(metric: str, student: str, gain_of: str, seed: int | None) -> float:
    """A model's planted mean on a judged metric: s_gpt2 is 4 steps below s_llama, seed 1 two
    steps above seed 0."""
    base, step = JUDGED_LEVELS[metric]
    below = 4 * JUDGED_STUDENTS.index(student) if student in JUDGED_STUDENTS else 0
    return base + step * (JUDGED_GAIN[gain_of] - below + 2 * (seed or 0))


def judged_metrics(student: str, gain_of: str, seed: int | None) -> dict[str, dict[str, float]]:
    """task -> metric -> the model's level on it (WB-Score from the raw 1-10 score)."""
    level = {name: judged_level(name, student, gain_of, seed) for name in JUDGED_LEVELS}
    wildbench = level["wb_raw"]
    return {
        "alpaca_eval": {key: level[key] for key in ("length_controlled_winrate", "win_rate")},
        "mt_bench": {"score": level["mt_score"], "turn_1": level["mt_score"] + 0.2,
                     "turn_2": level["mt_score"] - 0.2},
        "wildbench": {"score": wildbench, "wb_score": (wildbench - 5) * 20,
                      "task_macro": (wildbench - 5) * 20},
    }  # fmt: skip


def item_step(task: str) -> float:
    return 1.0 if task == "alpaca_eval" else 0.1


def judged_samples(path: Path, task: str, levels: dict[str, float]) -> Path:
    """Per-item samples whose mean per metric is the level (codit.judged.common's layout)."""
    records = [
        {"doc_id": i, "doc_hash": f"{task}-{i}", "filter": "none", "metrics": list(levels),
         **{metric: level + offset * item_step(task) for metric, level in levels.items()}}
        for i, offset in enumerate(ITEM_OFFSETS)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def judged_file(directory: Path, name: str, labels: dict, task: str, levels: dict) -> Path:
    """One scores.json of a judged benchmark, its samples beside it."""
    samples = judged_samples(directory / f"{name}.{task}.samples.jsonl", task, levels)
    block = {}
    for metric, level in levels.items():
        block |= {f"{metric},none": level, f"{metric}_stderr,none": 0.5}
    payload = {
        "results": {task: block},
        "higher_is_better": {task: dict.fromkeys(levels, True)},
        "codit": {"labels": labels, "sample_files": {task: str(samples)}, "provenance": {}},
    }
    if task == "alpaca_eval":  # length and verdicts: no per-item sample, no stderr
        block["avg_length,none"] = 900.0
        plain = labels["arm"] == "reference"
        payload["verdicts"] = PLAIN_VERDICTS if plain else WEIGHTED_VERDICTS
        payload["glm"] = GLM_OF.get(labels["student"], "length_controlled_v1")
    path = directory / f"{name}.{task}.json"
    path.write_text(json.dumps(payload))
    return path


def judged_model(
    directory: Path, labels: dict, gain_of: str, seed: int | None, tasks: tuple[str, ...]
) -> list[Path]:
    """The scores files of one evaluated model on the given judged benchmarks."""
    name = "__".join([labels["teacher_pair"] or "public", labels["student"], labels["arm"],
                      str(seed)])  # fmt: skip
    metrics = judged_metrics(labels["student"], gain_of, seed)
    return [judged_file(directory, name, labels, task, metrics[task]) for task in tasks]


JUDGED_TASKS = ("alpaca_eval", "mt_bench", "wildbench")


def write_judged(directory: Path, tasks: tuple[str, ...] = JUDGED_TASKS) -> list[Path]:
    """Scores files of pa x 2 students x 4 arms x 2 seeds, public_x x 2 students x 2 seeds, the
    pa instruct reference and s_llama before training."""
    directory.mkdir()
    files = []
    runs = [("pa", s, arm, seed) for s in JUDGED_STUDENTS for arm in JUDGED_ARMS
            for seed in JUDGED_SEEDS]  # fmt: skip
    runs += [("", student, "public_x", seed) for student in JUDGED_STUDENTS for seed in (0, 1)]
    for pair, student, arm, seed in runs:
        labels = grid_labels(pair, student, arm, seed)
        files += judged_model(directory, labels, arm, seed, tasks)
    for pair, model in (("pa", "pa-instruct"), ("", "s_llama")):
        labels = {"teacher_pair": pair, "student": model, "arm": "reference"}
        files += judged_model(directory, labels, model, None, tasks)
    return files


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`codit report` of the three judged benchmarks (no lm-eval task, no dataset card)."""
    tmp_path = tmp_path_factory.mktemp("judged")
    out = tmp_path / "results"
    run_report(write_judged(tmp_path / "evals"), [], out)
    return out


def paper_block(markdown: str, title: str) -> list[list[str]]:
    """Header and body cells of one block of main.md's paper table."""
    section = markdown.split(f"\n### {title}\n\n")[1]
    lines = [line for line in section.split("\n\n")[0].splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [cells[0], *cells[2:]]


def interval_text(metric: str, student: str, arm: str, digits: int, wb: bool = False) -> str:
    """The expected `mean [low, high]` cell of a trained arm across JUDGED_SEEDS."""
    values = [judged_level(metric, student, arm, seed) for seed in JUDGED_SEEDS]
    if wb:
        values = [(value - 5) * 20 for value in values]
    interval = seed_interval(values)
    mean, low, high = (interval[key] for key in ("mean", "low", "high"))
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def test_paper_table_blocks_arms_and_cells(judged_run: Path) -> None:
    markdown = (judged_run / "tables/main.md").read_text()
    # After the alpha selection (on MT-Bench, the default), before the per-metric sections.
    assert (
        markdown.index("## CoDIT α selected on mt_bench/score")
        < markdown.index("## Paper table")
        < markdown.index("## alpaca_eval/")
    )
    header, *body = paper_block(markdown, "pa / s_llama: llama → llama (same)")
    assert header == ["arm", "AE2 LC", "AE2 WR", "MT-Bench", "WB-Score"]
    rows = {row[0]: row[1:] for row in body}
    assert list(rows) == [
        "direct", "best-of-4 (judge)", "public: x", "α=0.01", "α=0.1",
        "CoDIT (selected α=0.1)", "teacher instruct: pa-instruct", "student before training",
    ]  # fmt: skip
    # Seeds 30 and 32: mean 31, t(0.975, 1) x sd / sqrt(2) = 12.706 either side.
    assert rows["direct"][0] == "31.0 [18.3, 43.7]"
    assert rows["direct"][2] == "6.10 [4.83, 7.37]"
    assert rows["direct"][3] == "22.0 [-3.4, 47.4]"  # (6.1 - 5) x 20, 12.706 x 2 either side
    alpha = codit_arm(0.1, 1)
    best = [
        interval_text("length_controlled_winrate", "s_llama", alpha, 1),
        interval_text("win_rate", "s_llama", alpha, 1),
        interval_text("mt_score", "s_llama", alpha, 2),
        interval_text("wb_raw", "s_llama", alpha, 1, wb=True),
    ]
    assert rows["α=0.1"] == [f"**{cell}**" for cell in best]
    assert rows["CoDIT (selected α=0.1)"] == rows["α=0.1"]
    assert rows["α=0.01"][1] == interval_text("win_rate", "s_llama", codit_arm(0.01, 1), 1)
    assert rows["public: x"][0] == interval_text("length_controlled_winrate", "s_llama",
                                                 "public_x", 1)  # fmt: skip
    # Reference models: one evaluation each, so value ± stderr.
    assert rows["teacher instruct: pa-instruct"] == ["40.0 ± 0.5", "35.0 ± 0.5", "7.00 ± 0.50",
                                                     "40.0 ± 0.5"]  # fmt: skip
    assert rows["student before training"][0] == "24.0 ± 0.5"
    _, *gpt2 = paper_block(markdown, "pa / s_gpt2: llama → gpt2 (cross)")
    gpt2_rows = {row[0]: row[1:] for row in gpt2}
    assert "student before training" not in gpt2_rows  # no reference of s_gpt2
    assert gpt2_rows["direct"][0] == "27.0 [14.3, 39.7]"  # four steps below s_llama


def test_paper_table_notes_alpaca_eval_verdicts_and_records_them(judged_run: Path) -> None:
    markdown = (judged_run / "tables/main.md").read_text()
    paper = markdown.split("## Paper table")[1].split("\n### ")[0]
    note = (
        "AlpacaEval 2 verdicts: mixed weighted and plain; 160 weighted, 16 plain, 0 identical, "
        "0 unparsable judgments over 22 models; length-controlled GLM: length_controlled_noreg, "
        "length_controlled_v1."
    )
    assert note in paper
    assert "`AE2 LC` = AlpacaEval 2 length-controlled win rate" in paper
    record = json.loads((judged_run / "report_provenance.json").read_text())
    assert record["alpaca_eval_verdicts"] == {
        "files": 22, "files_without_verdicts": 0, "weighted": 160, "plain": 16, "identical": 0,
        "unparsable": 0, "glm": ["length_controlled_noreg", "length_controlled_v1"],
        "kind": "mixed",
    }  # fmt: skip
    assert str(judged_run / "figures/judged_vs_alpha.png") in record["outputs"]


def test_judged_metrics_keep_their_units_in_the_metric_sections(judged_run: Path) -> None:
    markdown = (judged_run / "tables/main.md").read_text()
    header, *body = section_rows(markdown, "alpaca_eval/win_rate")
    assert "## alpaca_eval/win_rate (raw value, higher is better)" in markdown
    row = next(row for row in body if row[1] == "s_llama")
    assert row[header.index("direct")] == "26.000 [13.294, 38.706]"  # in %, not x 100


def test_paper_table_in_latex(judged_run: Path) -> None:
    latex = (judged_run / "tables/main.tex").read_text()
    paper = latex.split(r"\begin{table}")[1]  # the first float: the paper's table
    assert r"arm & AE2 LC & AE2 WR & MT-Bench & WB-Score \\" in paper
    assert r"\multicolumn{5}{l}{\textit{pa / s\_gpt2: llama $\rightarrow$ gpt2 (cross)}}" in paper
    assert r"CoDIT (selected $\alpha$=0.1) & \textbf{" in paper
    assert r"direct & 31.0 [18.3, 43.7] &" in paper
    assert r"teacher instruct: pa-instruct & 40.0 $\pm$ 0.5 &" in paper
    assert r"length\_controlled\_v1" in paper and r"95\% t interval" in paper
    body = latex.split(r"\begin{document}")[1]
    assert [line for line in body.splitlines() if "_" in line.replace(r"\_", "")] == []
    assert body.count("{") == body.count("}")
    assert latex.count(r"\begin{table}") == 1 + 9  # one pair; 3 + 3 + 3 judged metrics


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_paper_table_latex_compiles(judged_run: Path, tmp_path: Path) -> None:
    shutil.copy(judged_run / "tables/main.tex", tmp_path / "main.tex")
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:]


def test_paired_rows_cover_every_judged_metric_with_samples(judged_run: Path) -> None:
    paired = read_table(judged_run / "tables/paired.csv")
    metrics = set(zip(paired["task"], paired["metric"], strict=True))
    assert metrics == {
        ("alpaca_eval", "length_controlled_winrate"), ("alpaca_eval", "win_rate"),
        ("mt_bench", "score"), ("mt_bench", "turn_1"), ("mt_bench", "turn_2"),
        ("wildbench", "score"), ("wildbench", "wb_score"), ("wildbench", "task_macro"),
    }  # fmt: skip
    rows = paired[(paired.task == "alpaca_eval") & (paired.metric == "win_rate")]
    assert len(rows) == len(JUDGED_STUDENTS) * 2  # two alphas per student
    row = rows[(rows.student == "s_gpt2") & (rows.alpha == 0.01)].iloc[0]
    assert (row["n_items"], row["n_items_direct"], row["n_items_codit"]) == (8, 8, 8)
    assert row["n_seeds"] == 2
    assert row["direct"] == pytest.approx(22.0) and row["codit"] == pytest.approx(25.0)
    assert row["difference"] == pytest.approx(3.0)
    # AlpacaEval's mean length has no per-item sample: listed as skipped, per CoDIT arm.
    skipped = json.loads((judged_run / "report_provenance.json").read_text())["paired_skipped"]
    assert {(entry["task"], entry["metric"]) for entry in skipped} == {
        ("alpaca_eval", "avg_length")
    }
    markdown = (judged_run / "tables/paired.md").read_text()
    assert "## pa: alpaca_eval / length_controlled_winrate" in markdown


def test_an_arm_selected_on_mt_bench_but_missing_elsewhere_leaves_its_cell_empty(
    tmp_path: Path,
) -> None:
    files = write_judged(tmp_path / "evals", ("alpaca_eval", "mt_bench"))
    missing = codit_arm(0.1, 1)  # the arm MT-Bench selects, never judged on AlpacaEval 2
    files = [f for f in files if not (missing in f.name and ".alpaca_eval." in f.name)]
    run_report(files, [], tmp_path / "out")
    markdown = (tmp_path / "out/tables/main.md").read_text()
    header, *body = paper_block(markdown, "pa / s_llama: llama → llama (same)")
    rows = {row[0]: row[1:] for row in body}
    assert rows["CoDIT (selected α=0.1)"][:2] == [tables.MISSING_CELL] * 2
    assert rows["CoDIT (selected α=0.1)"][2] == rows["α=0.1"][2] == "**6.60 [5.33, 7.87]**"


def test_paired_comparison_runs_on_the_items_both_arms_scored(tmp_path: Path) -> None:
    files = write_judged(tmp_path / "evals", ("alpaca_eval",))
    # Seed 0 of one CoDIT arm got no verdict on item 0 (offset -3): its win_rate is left out.
    name = f"pa__s_llama__{codit_arm(0.01, 1)}__0.alpaca_eval.samples.jsonl"
    path = tmp_path / "evals" / name
    records = [json.loads(line) for line in path.read_text().splitlines()]
    del records[0]["win_rate"]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    run_report(files, [], tmp_path / "out")
    paired = read_table(tmp_path / "out/tables/paired.csv")
    arm = paired[(paired.student == "s_llama") & (paired.alpha == 0.01)]
    row = arm[arm.metric == "win_rate"].iloc[0]
    assert (row["n_items"], row["n_items_direct"], row["n_items_codit"]) == (7, 8, 7)
    # The 7 shared items' offsets sum to +3: both means move by 3/7, the difference stays.
    assert row["direct"] == pytest.approx(26 + 3 / 7) and row["difference"] == pytest.approx(3)
    lc = arm[arm.metric == "length_controlled_winrate"].iloc[0]
    assert (lc["n_items"], lc["n_items_codit"]) == (8, 8)
    markdown = (tmp_path / "out/tables/paired.md").read_text()
    section = markdown.split("## pa: alpaca_eval / win_rate")[1].split("\n## ")[0]
    assert "Compared on 7–8 items: the items that both arms scored" in section
    skipped = json.loads((tmp_path / "out/report_provenance.json").read_text())["paired_skipped"]
    assert {entry["metric"] for entry in skipped} == {"avg_length"}


def png_size(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(path).shape
    return width, height


def test_judged_figure_has_a_panel_per_headline_metric(judged_run: Path) -> None:
    width, _ = png_size(judged_run / "figures/judged_vs_alpha.png")
    assert width == round(4 * plots.PANEL_SIZE[0] * plots.DPI)  # four panels in one row


def test_without_judged_benchmarks_no_paper_table_and_a_text_figure(results: Path) -> None:
    assert "Paper table" not in (results / "tables/main.md").read_text()
    assert r"Judged benchmarks" not in (results / "tables/main.tex").read_text()
    width, _ = png_size(results / "figures/judged_vs_alpha.png")
    assert width == round(plots.PANEL_SIZE[0] * plots.DPI)  # the one text panel
    record = json.loads((results / "report_provenance.json").read_text())
    assert record["alpaca_eval_verdicts"] is None


def test_only_mt_bench_gives_its_column_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_report(write_judged(tmp_path / "evals", ("mt_bench",)), [], out)
    markdown = (out / "tables/main.md").read_text()
    header, *body = paper_block(markdown, "pa / s_llama: llama → llama (same)")
    assert header == ["arm", "MT-Bench"] and body[0] == ["direct", "6.10 [4.83, 7.37]"]
    assert "AlpacaEval 2 verdicts" not in markdown
    width, _ = png_size(out / "figures/judged_vs_alpha.png")
    assert width == round(plots.PANEL_SIZE[0] * plots.DPI)
