"""The report's paired table: CoDIT minus direct over the items both evaluations share."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from codit.report.build import OUTPUTS, ReportRun, write_report
from codit.report.paired import paired_comparisons, render_paired_markdown
from codit.report.stats import seed_interval
from codit.report.tables import main_table

N_ITEMS = 20


def samples_file(path: Path, passed: list[bool], task: str = "t") -> Path:
    """A samples file in lm-eval's logged layout, with per-item accuracy and a corpus F1."""
    rows = [
        {"doc_id": i, "doc_hash": f"h{i}", "filter": "none", "metrics": ["acc", "f1"],
         "acc": ok, "f1": [int(ok), 1]}
        for i, ok in enumerate(passed)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def evaluation(path: Path, arm: str, passed: list[bool], seed: int | None = None) -> Path:
    """An evaluation file with its samples file; `seed` None writes the older, unseeded labels."""
    labels = {"teacher_pair": "p", "student": "s", "arm": arm}
    if seed is not None:
        labels.update(seed=str(seed), student_architecture="llama", teacher_architecture="llama")
    samples = samples_file(path.with_suffix(".t.jsonl"), passed)
    accuracy = sum(passed) / len(passed)
    payload = {
        "results": {"t": {"acc,none": accuracy, "acc_stderr,none": 0.1, "f1,none": accuracy}},
        "codit": {"labels": labels, "sample_files": {"t": str(samples)}},
    }
    path.write_text(json.dumps(payload))
    return path


def test_differences_are_paired_per_item_and_unpairable_metrics_are_listed(tmp_path):
    direct = [i % 2 == 0 for i in range(N_ITEMS)]  # 10 of 20
    better = [ok or i % 4 == 1 for i, ok in enumerate(direct)]  # 5 more items pass
    files = [
        evaluation(tmp_path / "direct.json", "direct", direct),
        evaluation(tmp_path / "codit.json", "codit_alpha0.1_beta1", better),
        evaluation(tmp_path / "same.json", "codit_alpha0.3_beta1", direct),
    ]
    evaluations = [(str(path), json.loads(path.read_text())) for path in files]
    table, skipped = paired_comparisons(evaluations, main_table(evaluations))

    assert list(table["arm"]) == ["codit_alpha0.1_beta1", "codit_alpha0.3_beta1"]
    gain, same = table.iloc[0], table.iloc[1]
    assert (gain["n_items"], gain["direct"], gain["codit"]) == (N_ITEMS, 0.5, 0.75)
    assert gain["difference"] == 0.25 and 0 < gain["low"] <= 0.25 <= gain["high"]
    assert (same["difference"], same["low"], same["high"], same["p_value"]) == (0, 0, 0, 1)
    # f1 keeps (gold, prediction) pairs per item: no per-item score, so it is listed, not paired
    assert {(entry["arm"], entry["metric"]) for entry in skipped} == {
        ("codit_alpha0.1_beta1", "f1"),
        ("codit_alpha0.3_beta1", "f1"),
    }
    assert all(entry["reason"] for entry in skipped)
    # One seed: the seed-level difference has no interval.
    assert gain["seed_difference"] == 0.25 and pd.isna(gain["seed_low"])

    markdown = render_paired_markdown(table)
    assert "## p: t / acc" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| s "))
    assert row.split("|")[2].strip().startswith("+25.0 [")  # percentage points
    assert row.split("|")[3].strip() == "+0.0 [+0.0, +0.0]"
    assert "α=0.1" in markdown and "α=0.3" in markdown


def test_report_writes_the_paired_tables(tmp_path):
    direct = [i % 3 == 0 for i in range(N_ITEMS)]
    files = [
        evaluation(tmp_path / "direct.json", "direct", direct),
        evaluation(tmp_path / "codit.json", "codit_alpha0.1_beta1", direct[::-1]),
    ]
    write_report(ReportRun(evals=tuple(map(str, files)), out_dir=tmp_path / "out"))
    paired = pd.read_csv(tmp_path / "out" / OUTPUTS["paired_csv"])
    assert len(paired) == 1 and paired["metric"].tolist() == ["acc"]
    assert (tmp_path / "out" / OUTPUTS["paired"]).read_text().startswith("# CoDIT minus direct")
    heatmap = (tmp_path / "out" / OUTPUTS["heatmap_figure"]).read_bytes()
    assert heatmap.startswith(b"\x89PNG\r\n\x1a\n") and len(heatmap) > 5000
    provenance = json.loads((tmp_path / "out/report_provenance.json").read_text())
    assert [entry["metric"] for entry in provenance["paired_skipped"]] == ["f1"]


def test_replicates_are_averaged_per_item_over_the_shared_seeds(tmp_path):
    direct = {0: [i % 2 == 0 for i in range(N_ITEMS)], 1: [i % 4 == 0 for i in range(N_ITEMS)]}
    codit = {0: [i % 2 == 1 for i in range(N_ITEMS)], 1: [True] * N_ITEMS,
             2: [False] * N_ITEMS}  # fmt: skip
    files = [
        evaluation(tmp_path / f"direct{seed}.json", "direct", passed, seed=seed)
        for seed, passed in direct.items()
    ]
    files += [
        evaluation(tmp_path / f"codit{seed}.json", "codit_alpha0.1_beta1", passed, seed=seed)
        for seed, passed in codit.items()
    ]
    # Only CoDIT is paired with direct: a Best-of-N arm of the same student is left alone.
    files.append(evaluation(tmp_path / "best.json", "bestof4_oracle", [True] * N_ITEMS, seed=0))
    evaluations = [(str(path), json.loads(path.read_text())) for path in files]
    main = main_table(evaluations)
    table, _ = paired_comparisons(evaluations, main[main["metric"] == "acc"])

    assert list(table["arm"]) == ["codit_alpha0.1_beta1"]
    row = table.iloc[0]
    # seed 2 has no direct twin, so only seeds 0 and 1 count: per item, mean over the 2 seeds
    direct_mean = sum(direct[0][i] + direct[1][i] for i in range(N_ITEMS)) / (2 * N_ITEMS)
    codit_mean = sum(codit[0][i] + codit[1][i] for i in range(N_ITEMS)) / (2 * N_ITEMS)
    assert row["n_seeds"] == 2 and row["n_items"] == N_ITEMS
    assert row["direct"] == direct_mean == 0.375 and row["codit"] == codit_mean == 0.75
    assert row["difference"] == 0.375
    assert "averaged over 2 seeds" in render_paired_markdown(table)
    # Across seeds: seed 0 gives 0.5 - 0.5, seed 1 gives 1.0 - 0.25; t interval of the two.
    across = seed_interval([0.0, 0.75])
    assert row["seed_difference"] == across["mean"] == 0.375
    assert (row["seed_low"], row["seed_high"]) == (across["low"], across["high"])
    assert "Across seeds" in render_paired_markdown(table)
