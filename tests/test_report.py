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

from codit import cli, report, tables
from codit.naming import codit_arm

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
                if arm != "direct":
                    labels |= {"alpha": arm.split("alpha")[1].split("_")[0], "beta": "1"}
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
    assert cells[2:] == ["40.0 ± 3.4", "43.0 ± 3.4", "**70.0 ± 3.4**", "50.0 ± 3.4"]
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
    assert tables.is_fraction_metric(pd.Series([0.0, 0.5, 1.0, math.nan]))
    assert not tables.is_fraction_metric(pd.Series([0.5, 12.3]))
    assert tables.format_value(0.625, 0.0341, True, " ± ") == "62.5 ± 3.4"
    assert tables.format_value(12.3456, math.nan, False, " ± ") == "12.346"
    assert tables.format_value(math.nan, 0.1, True, " ± ") == tables.MISSING_CELL


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
    assert record["counts"] == {"main_rows": 76, "metrics": 4, "models": 19, "datasets": 8}
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
        tables.main_table(report.read_inputs([str(path)]))


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


def test_bad_arm_and_disagreeing_alpha_label_are_reported(tmp_path: Path) -> None:
    bad = eval_file(tmp_path, "bad", {"teacher_pair": "p", "student": "s", "arm": "codit"}, 0.5)
    assert "neither 'direct'" in run_expecting_error([bad], [], tmp_path)
    labels = {"teacher_pair": "p", "student": "s", "arm": "codit_alpha0.1_beta1", "alpha": "0.2"}
    wrong = eval_file(tmp_path, "wrong", labels, 0.5)
    assert "alpha=0.2 disagrees" in run_expecting_error([wrong], [], tmp_path)
    labels["alpha"] = "high"
    text = eval_file(tmp_path, "text", labels, 0.5)
    assert "text.json: label alpha='high' is not a number" in run_expecting_error(
        [text], [], tmp_path
    )


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
