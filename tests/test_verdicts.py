"""Tests of codit.report.verdicts: one verdict per claim of the paper, with a t interval across
worlds.

The main tables are built here, with planted per-world effects; expected estimates and intervals
are computed by hand (scipy's t quantile) from the planted numbers, not by the module.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
import scipy.stats
from test_report import read_table, run_report, write_grid
from workflow_runs import REPO

from codit.cli import main
from codit.report import verdicts
from codit.report.tables import MAIN_COLUMNS
from codit.workflow.naming import codit_arm, parse_arm

WORLDS = ("w1", "w2", "w3", "w4")  # teacher pairs, all of a llama teacher
STUDENTS = {"s_llama": "llama", "s_gpt2": "gpt2"}  # s_gpt2 is the cross-architecture student
SEEDS = (0, 1, 2)
# Seed noise, opposite for CoDIT and the baselines: it averages out over the three seeds.
SEED_NOISE = (-0.01, 0.0, 0.01)
ALPHA_LOW, ALPHA_BEST, ALPHA_HIGH = codit_arm(0.01, 1), codit_arm(0.1, 1), codit_arm(0.3, 1)
BEST_OF_4, PUBLIC = "bestof4_oracle", "public_rules"
DECIDE = REPO / "docs" / "decide"  # the deciding runs' main tables, as their reports wrote them
FORMAT = ("tinyworld_ifeval", "prompt_level_strict_acc")
KNOWLEDGE = ("tinyworld_knowledge", "exact_match")
MT_BENCH = ("mt_bench", "score")

# Format following: CoDIT at the selected alpha (0.1) minus direct, per student and world.
FORMAT_GAIN = {"s_llama": (0.10, 0.06, 0.08, 0.12), "s_gpt2": (0.04, 0.02, 0.06, 0.00)}
BEST_OF_4_GAIN = 0.05  # over direct, every world and student
PUBLIC_LEVEL = {"s_llama": 0.28, "s_gpt2": 0.38}  # one per student, no world
KNOWLEDGE_GAIN = (-0.02, -0.04, -0.03, -0.05)  # CoDIT minus direct per world, both students
# MT-Bench gain over direct of each alpha per world; alpha 0.1 is best.
MT_GAIN = {
    ALPHA_LOW: (0.0, 0.1, 0.05, 0.1),
    ALPHA_BEST: (0.6, 0.4, 0.7, 0.5),
    ALPHA_HIGH: (0.2, 0.1, 0.15, 0.05),
}
MT_HIGH_CLOSE = (0.65, 0.3, 0.6, 0.6)  # alpha 0.3 within the noise of 0.1: undecided


def direct_level(task: str, world: int, student: str) -> float:
    scale = 1.0 if task == MT_BENCH[0] else 0.1
    return (3.0 if task == MT_BENCH[0] else 0.30) + scale * (
        0.5 * world + list(STUDENTS).index(student)
    )


def planted(
    task: str, world: int, student: str, arm: str, mt_high: tuple = MT_GAIN[ALPHA_HIGH]
) -> float:
    """A model's level (mean over seeds) on one metric."""
    level = direct_level(task, world, student)
    if task == FORMAT[0]:
        gain = {ALPHA_BEST: FORMAT_GAIN[student][world], ALPHA_LOW: -0.05, ALPHA_HIGH: 0.01,
                BEST_OF_4: BEST_OF_4_GAIN}  # fmt: skip
        return level + gain.get(arm, 0.0)
    if task == KNOWLEDGE[0]:
        return level + (KNOWLEDGE_GAIN[world] if arm.startswith("codit") else 0.0)
    gains = {**MT_GAIN, ALPHA_HIGH: mt_high}
    return level + (gains[arm][world] if arm in gains else 0.0)


def main_row(
    world: str, student: str, arm: str, seed: int, task: str, metric: str, value: float
) -> dict:
    parsed = parse_arm(arm)
    return {
        "teacher_pair": world, "student": student, "student_architecture": STUDENTS[student],
        "teacher_architecture": "llama" if world else "", "arm": parsed.kind, "arm_name": arm,
        "alpha": parsed.alpha, "beta": parsed.beta, "seed": seed, "task": task,
        "metric": metric, "value": value, "stderr": math.nan,
    }  # fmt: skip


def main_table(
    metrics: tuple = (FORMAT, KNOWLEDGE, MT_BENCH), mt_high: tuple = MT_GAIN[ALPHA_HIGH]
) -> pd.DataFrame:
    """4 worlds x 2 students x (direct, best-of-4, 3 alphas) x 3 seeds, and the public arm."""
    rows = []
    arms = ("direct", BEST_OF_4, ALPHA_LOW, ALPHA_BEST, ALPHA_HIGH)
    for task, metric in metrics:
        for w, world in enumerate(WORLDS):
            for student in STUDENTS:
                for arm in arms:
                    sign = 1.0 if arm.startswith("codit") else -1.0
                    level = planted(task, w, student, arm, mt_high)
                    values = [level + sign * noise for noise in SEED_NOISE]
                    rows += [
                        main_row(world, student, arm, seed, task, metric, value)
                        for seed, value in zip(SEEDS, values, strict=True)
                    ]
        for student in STUDENTS:
            level = PUBLIC_LEVEL[student] if task == FORMAT[0] else direct_level(task, 0, student)
            rows += [main_row("", student, PUBLIC, seed, task, metric, level + SEED_NOISE[seed])
                     for seed in SEEDS]  # fmt: skip
    return pd.DataFrame(rows, columns=MAIN_COLUMNS)


SELECTED = {(world, student): ALPHA_BEST for world in WORLDS for student in STUDENTS}


def by_hand(effects: list[float]) -> tuple[float, float, float]:
    """Mean over worlds and its 95% t interval, t with W - 1 degrees of freedom."""
    mean = statistics.fmean(effects)
    half = scipy.stats.t.ppf(0.975, len(effects) - 1) * statistics.stdev(effects)
    half /= math.sqrt(len(effects))
    return mean, mean - half, mean + half


def find(rows: list[verdicts.Verdict], claim: str, label: str, baseline: str) -> verdicts.Verdict:
    found = [v for v in rows if (v.claim, v.label, v.baseline) == (claim, label, baseline)]
    assert len(found) == 1, (claim, label, baseline, [(v.claim, v.label, v.baseline) for v in rows])
    return found[0]


def check(verdict: verdicts.Verdict, effects: list[float], text: str, students: int = 2) -> None:
    mean, low, high = by_hand(effects)
    assert list(verdict.per_world) == list(WORLDS)
    assert list(verdict.per_world.values()) == pytest.approx(effects)
    assert (verdict.estimate, verdict.low, verdict.high) == pytest.approx((mean, low, high))
    assert verdict.sd_world == pytest.approx(statistics.stdev(effects))
    assert (verdict.n_worlds, verdict.n_students, verdict.verdict) == (len(effects), students, text)


@pytest.fixture(scope="module")
def rows() -> list[verdicts.Verdict]:
    return verdicts.claim_verdicts(main_table(), SELECTED, {})


def test_codit_against_direct_averages_students_per_world(rows) -> None:
    effects = [statistics.fmean(FORMAT_GAIN[s][w] for s in STUDENTS) for w in range(4)]
    verdict = find(rows, verdicts.CLAIM_DIRECT, "format following", "direct")
    check(verdict, effects, "CoDIT better")
    assert (verdict.task, verdict.metric, verdict.worlds_favouring) == (*FORMAT, "4/4")
    record = verdict.record()
    assert record["per_world"] == "; ".join(
        f"{w}={e:.6g}" for w, e in zip(WORLDS, effects, strict=True)
    )
    assert list(record) == verdicts.COLUMNS


def test_knowledge_loss_is_a_worse_verdict(rows) -> None:
    verdict = find(rows, verdicts.CLAIM_KNOWLEDGE, "knowledge", "direct")
    check(verdict, list(KNOWLEDGE_GAIN), "CoDIT worse")
    assert verdict.worlds_favouring == "0/4"


def test_public_arm_is_matched_on_the_student_alone(rows) -> None:
    effects = [
        statistics.fmean(
            direct_level(FORMAT[0], w, s) + FORMAT_GAIN[s][w] - PUBLIC_LEVEL[s] for s in STUDENTS
        )
        for w in range(4)
    ]
    public = find(rows, verdicts.CLAIM_PUBLIC, "format following", PUBLIC)
    assert list(public.per_world.values()) == pytest.approx(effects)
    # The public students are shared by every world: their own seed noise (per seed, the mean
    # over students: SEED_NOISE) is added to the worlds' and the df are Welch-Satterthwaite's.
    worlds_part = statistics.variance(effects) / len(effects)
    public_part = statistics.variance(SEED_NOISE) / len(SEED_NOISE)
    df = (worlds_part + public_part) ** 2 / (
        worlds_part**2 / (len(effects) - 1) + public_part**2 / (len(SEED_NOISE) - 1)
    )
    half = scipy.stats.t.ppf(0.975, df) * math.sqrt(worlds_part + public_part)
    mean = statistics.fmean(effects)
    assert (public.low, public.high) == pytest.approx((mean - half, mean + half))
    assert public.verdict == "CoDIT better" and "public arm over 3 seeds" in public.note
    # One public seed: its noise is unknown, so the claim stays undecided (estimate kept).
    one_seed = main_table()
    one_seed = one_seed[(one_seed["arm"] != "public") | (one_seed["seed"] == 0)]
    single = find(verdicts.claim_verdicts(one_seed, SELECTED, {}), verdicts.CLAIM_PUBLIC,
                  "format following", PUBLIC)  # fmt: skip
    assert single.verdict == verdicts.ONE_PUBLIC_SEED and math.isnan(single.low)
    assert not math.isnan(single.estimate)
    # A public teacher_pair read back from a CSV is NaN, not "": the same verdicts.
    table = main_table()
    table.loc[table["arm"] == "public", "teacher_pair"] = math.nan
    again = verdicts.claim_verdicts(table, SELECTED, {})
    assert find(again, verdicts.CLAIM_PUBLIC, "MT-Bench", PUBLIC) == find(
        rows, verdicts.CLAIM_PUBLIC, "MT-Bench", PUBLIC
    )


def test_best_of_n_and_cross_architecture_subset(rows) -> None:
    effects = [
        statistics.fmean(FORMAT_GAIN[s][w] for s in STUDENTS) - BEST_OF_4_GAIN for w in range(4)
    ]
    verdict = find(rows, verdicts.CLAIM_BEST_OF_N, "format following", BEST_OF_4)
    check(verdict, effects, "undecided")
    assert verdict.worlds_favouring == "3/4"
    # Only s_gpt2 differs from its llama teacher.
    cross = find(rows, verdicts.CLAIM_CROSS, "format following", "direct")
    check(cross, list(FORMAT_GAIN["s_gpt2"]), "undecided", students=1)


def test_a_lower_is_better_metric_is_flipped() -> None:
    flipped = verdicts.claim_verdicts(main_table(), SELECTED, {"/".join(KNOWLEDGE): False})
    verdict = find(flipped, verdicts.CLAIM_KNOWLEDGE, "knowledge", "direct")
    check(verdict, [-gain for gain in KNOWLEDGE_GAIN], "CoDIT better")


def test_best_alpha_decided() -> None:
    rows = verdicts.claim_verdicts(main_table(), SELECTED, {})
    alpha = [v for v in rows if v.claim == verdicts.CLAIM_ALPHA]
    # the summary, then one row per alpha in grid order: it minus the best other alpha
    assert [v.baseline for v in alpha] == [
        verdicts.EVERY_OTHER_ALPHA,
        ALPHA_LOW,
        ALPHA_BEST,
        ALPHA_HIGH,
    ]
    assert alpha[0].verdict == "alpha=0.1 best" and alpha[0].n_worlds == 4
    assert math.isnan(alpha[0].estimate) and alpha[0].label == "MT-Bench"
    by_alpha = {v.baseline: v for v in alpha[1:]}
    for name, verdict in by_alpha.items():
        # the best's own row: minus the runner-up (0.3: mean 0.125 against 0.0625 for 0.01)
        reference = ALPHA_HIGH if name == ALPHA_BEST else ALPHA_BEST
        effects = [a - b for a, b in zip(MT_GAIN[name], MT_GAIN[reference], strict=True)]
        expected = "alpha=0.1 best" if name == ALPHA_BEST else f"{alpha_label(name)} worse"
        check(verdict, effects, expected)
    assert verdicts.baseline_label(by_alpha[ALPHA_LOW]) == "α=0.01 minus the best other"
    assert by_alpha[ALPHA_LOW].note == "this alpha minus alpha=0.1, the best other"


def alpha_label(arm_name: str) -> str:
    return verdicts.alpha_text(arm_name, show_beta=False)


def test_best_alpha_undecided_names_the_alphas_not_excluded() -> None:
    rows = verdicts.claim_verdicts(main_table(mt_high=MT_HIGH_CLOSE), SELECTED, {})
    alpha = {v.baseline: v for v in rows if v.claim == verdicts.CLAIM_ALPHA}
    assert alpha[verdicts.EVERY_OTHER_ALPHA].verdict == "undecided between alpha=0.1, 0.3"
    effects = [o - b for b, o in zip(MT_GAIN[ALPHA_BEST], MT_HIGH_CLOSE, strict=True)]
    check(alpha[ALPHA_HIGH], effects, "undecided")
    check(alpha[ALPHA_BEST], [-effect for effect in effects], "undecided")
    assert alpha[ALPHA_LOW].verdict == "alpha=0.01 worse"
    # alpha 0.3 ahead this time, still within the noise: every alpha's row reads as before,
    # though the point estimates rank 0.1 and 0.3 the other way round
    ahead = (0.7, 0.35, 0.75, 0.55)
    rows = verdicts.claim_verdicts(main_table(mt_high=ahead), SELECTED, {})
    ahead_rows = {v.baseline: v for v in rows if v.claim == verdicts.CLAIM_ALPHA}
    assert ahead_rows[ALPHA_HIGH].estimate > 0 > ahead_rows[ALPHA_BEST].estimate
    assert {name: v.verdict for name, v in ahead_rows.items()} == {
        name: v.verdict for name, v in alpha.items()
    }


def test_one_world_has_no_interval() -> None:
    table = main_table()
    table = table[table["teacher_pair"].isin(["w2", ""])]
    rows = verdicts.claim_verdicts(table, SELECTED, {})
    direct = find(rows, verdicts.CLAIM_DIRECT, "format following", "direct")
    assert direct.verdict == verdicts.ONE_WORLD and direct.n_worlds == 1
    assert direct.estimate == pytest.approx(statistics.fmean(FORMAT_GAIN[s][1] for s in STUDENTS))
    assert all(math.isnan(x) for x in (direct.low, direct.high, direct.sd_world))
    assert all(v.verdict == verdicts.ONE_WORLD for v in rows)
    assert "+" in verdicts.effect_cell(direct) and "[" not in verdicts.effect_cell(direct)


def test_missing_metrics_give_no_rows_and_ifeval_stands_in() -> None:
    table = main_table(metrics=(("ifeval", "prompt_level_strict_acc"),))
    rows = verdicts.claim_verdicts(table, SELECTED, {})
    assert {v.label for v in rows} == {"format following"}  # no knowledge, judged, best alpha
    assert {v.task for v in rows} == {"ifeval"}
    assert [v.claim for v in rows] == [
        verdicts.CLAIM_DIRECT, verdicts.CLAIM_PUBLIC, verdicts.CLAIM_BEST_OF_N, verdicts.CLAIM_CROSS
    ]  # fmt: skip
    assert verdicts.claim_verdicts(table.iloc[:0], {}, {}) == []


def test_rows_without_a_selected_alpha_are_left_out_and_said_so() -> None:
    selected = {key: arm for key, arm in SELECTED.items() if key != ("w4", "s_gpt2")}
    rows = verdicts.claim_verdicts(main_table(), selected, {})
    verdict = find(rows, verdicts.CLAIM_DIRECT, "format following", "direct")
    effects = [statistics.fmean(FORMAT_GAIN[s][w] for s in STUDENTS) for w in range(3)]
    effects.append(FORMAT_GAIN["s_llama"][3])  # w4: s_llama alone
    check(verdict, effects, "CoDIT better")
    assert verdict.note == "1 (world, student) row without a selected alpha left out"
    only_w1 = {key: arm for key, arm in SELECTED.items() if key[0] == "w1"}
    rows = verdicts.claim_verdicts(main_table(), only_w1, {})
    one = find(rows, verdicts.CLAIM_DIRECT, "MT-Bench", "direct")
    assert (one.n_worlds, one.verdict) == (1, verdicts.ONE_WORLD)
    assert one.note == "6 (world, student) rows without a selected alpha left out"
    # No selection at all (MT-Bench off): only the best-alpha claim is left, and it is said.
    nothing = verdicts.claim_verdicts(main_table(), {}, {})
    assert {v.claim for v in nothing} == {verdicts.CLAIM_ALPHA}
    text = verdicts.render_markdown([], selection_metric="mt_bench/score")
    assert "No claim could be decided" in text and "mt_bench/score" in text


def test_markdown_shows_percent_points_and_judged_units(rows) -> None:
    markdown = verdicts.render_markdown(rows)
    assert markdown.startswith("# CoDIT reproduction: one verdict per claim")
    assert "format following = tinyworld_ifeval/prompt_level_strict_acc" in markdown
    mean, low, high = by_hand(
        [statistics.fmean(FORMAT_GAIN[s][w] for s in STUDENTS) for w in range(4)]
    )
    assert f"+{100 * mean:.1f} [+{100 * low:.1f}, +{100 * high:.1f}]" in markdown
    mt = find(rows, verdicts.CLAIM_DIRECT, "MT-Bench", "direct")
    assert f"{mt.estimate:+.2f} [{mt.low:+.2f}, {mt.high:+.2f}]" in markdown
    assert "95% Student-t interval across worlds" in " ".join(markdown.split())
    assert "| Best alpha" in markdown and "alpha=0.1 best" in markdown
    frame = verdicts.verdict_table(rows)
    assert list(frame.columns) == verdicts.COLUMNS and len(frame) == len(rows)


def test_report_writes_verdicts_and_the_main_md_section(tmp_path: Path) -> None:
    """The report's grid (test_report.write_grid): 2 worlds, alpha selected on IFEval."""
    evals, cards = write_grid(tmp_path)
    out = tmp_path / "results"
    run_report(evals, cards, out, "--select-alpha-on", "tinyworld_ifeval/prompt_level_strict_acc")
    table = read_table(out / "tables/verdicts.csv")
    assert list(table.columns) == verdicts.COLUMNS
    first = table.iloc[0]
    assert (first["claim"], first["metric"], first["baseline"]) == (
        verdicts.CLAIM_DIRECT, "format following", "direct"
    )  # fmt: skip
    # alpha 0.1 is 0.15 above direct in both worlds (pa, pb) and for both students.
    assert (first["n_worlds"], first["n_students"], first["verdict"]) == (2, 2, "CoDIT better")
    assert first["estimate"] == pytest.approx(0.15) and first["worlds_favouring"] == "2/2"
    by_claim = table.set_index(["claim", "metric", "baseline"])["verdict"]
    assert (
        by_claim[(verdicts.CLAIM_BEST_OF_N, "format following", "bestof4_oracle")] == "CoDIT worse"
    )
    assert by_claim[(verdicts.CLAIM_ALPHA, "format following", verdicts.EVERY_OTHER_ALPHA)] == (
        "alpha=0.1 best"
    )
    markdown = (out / "tables/main.md").read_text()
    assert (
        markdown.index("## Verdicts")
        < markdown.index("## CoDIT α selected on")
        < markdown.index("## tinyworld_ifeval/")
    )
    section = markdown.split("## Verdicts")[1].split("\n## ")[0]
    assert "Student-t interval across worlds" in " ".join(section.split())
    assert (out / "tables/verdicts.md").read_text().count(
        "| CoDIT beats"
    ) == 3  # direct, public, best-of-4
    record = json.loads((out / "report_provenance.json").read_text())
    assert len(record["verdicts"]) == len(table) and record["verdict_confidence"] == 0.95
    assert record["verdicts"][0]["verdict"] == "CoDIT better"
    assert str(out / "tables/verdicts.csv") in record["outputs"]


def test_verdict_figure_has_a_panel_per_metric_with_an_interval(rows, tmp_path: Path) -> None:
    from test_report import png_size

    from codit.report import plots

    path = tmp_path / "verdicts.png"
    plots.plot_verdicts(rows, path)
    labels = {v.label for v in rows if v.per_world and not math.isnan(v.low)}
    width, height = png_size(path)
    assert width == round(5.2 * min(3, len(labels)) * plots.DPI) and height > 0
    # one world: nothing has an interval, and the figure says so in one text panel
    table = main_table()
    one_world = verdicts.claim_verdicts(table[table["teacher_pair"].isin(["w2", ""])], SELECTED, {})
    plots.plot_verdicts(one_world, tmp_path / "none.png")
    assert png_size(tmp_path / "none.png")[0] == round(plots.PANEL_SIZE[0] * plots.DPI)


def test_codit_verdicts_pools_the_worlds_of_several_runs(rows, tmp_path: Path) -> None:
    from codit.report import pooled

    table = main_table()
    first = table[table["teacher_pair"].isin(["w1", "w2", ""])]
    second = table[table["teacher_pair"].isin(["w3", "w4", ""])]  # public again: same values
    paths = (tmp_path / "a.csv", tmp_path / "b.csv")
    for part, path in zip((first, second), paths, strict=True):
        part.to_csv(path, index=False)
    run = pooled.PooledRun(main=paths, out_dir=tmp_path / "pooled")
    # MT-Bench selects alpha 0.1 in every world, as SELECTED says: the pooled runs decide as
    # the whole table does
    together = [
        verdict.record()
        for verdict in pooled.decided(pooled.read_main_tables(run.main), run.select_alpha_on)
    ]
    assert together == [verdict.record() for verdict in rows]
    main(["verdicts", "--main", *map(str, paths), "--out-dir", str(tmp_path / "pooled")])
    written = read_table(tmp_path / "pooled/verdicts.csv")
    assert list(written["verdict"]) == [verdict.verdict for verdict in rows]
    assert (tmp_path / "pooled/verdicts.png").is_file()
    record = json.loads((tmp_path / "pooled/verdicts_provenance.json").read_text())
    assert set(record["inputs"]) == set(map(str, paths)) and record["verdicts"]
    # the selection metric is checked as the report checks it
    with pytest.raises(ValueError, match=r"--select-alpha-on 'mt_bench/scor' is none of"):
        pooled.decided(pooled.read_main_tables(run.main), "mt_bench/scor")
    with pytest.raises(ValueError, match=r"world 'w1' is in both .*a\.csv and .*a\.csv"):
        pooled.read_main_tables((paths[0], paths[0]))


def test_codit_verdicts_sets_a_replication_beside_the_study(tmp_path: Path) -> None:
    from codit.report import pooled

    table = main_table()
    study = table[table["teacher_pair"].isin(["w1", "w2", ""])]
    # The replication: the study's numbers under other world names (every verdict the same),
    # except format following, where CoDIT gains 20 points more in both worlds.
    replication = study.assign(teacher_pair=study["teacher_pair"].replace({"w1": "w3", "w2": "w4"}))
    lifted = (replication["task"] == FORMAT[0]) & (replication["arm"] == "codit")
    replication.loc[lifted, "value"] += 0.2
    paths = {"study": tmp_path / "study.csv", "replication": tmp_path / "replication.csv"}
    study.to_csv(paths["study"], index=False)
    replication.to_csv(paths["replication"], index=False)
    out = tmp_path / "pooled"
    main(["verdicts", "--main", str(paths["study"]), "--replication", str(paths["replication"]),
          "--out-dir", str(out)])  # fmt: skip

    written = pd.read_csv(out / "replication.csv", keep_default_na=False)
    alone = {name: pooled.decided(pooled.read_main_tables((path,)), verdicts.SELECTION_METRIC)
             for name, path in paths.items()}  # fmt: skip
    both = pooled.decided(pooled.read_main_tables(tuple(paths.values())), verdicts.SELECTION_METRIC)
    assert list(written["claim"]) == [v.claim for v in both]
    for name, claims in {**alone, "pooled": both}.items():
        assert list(written[f"{name}_verdict"]) == [v.verdict for v in claims]
        assert list(written[f"{name}_n_worlds"]) == [v.n_worlds for v in claims]
    # study: +7 and +4 points (undecided over two worlds); replication: +27 and +24 (better)
    direct_format = written[(written["claim"] == verdicts.CLAIM_DIRECT)
                            & (written["metric"] == "format following")].iloc[0]  # fmt: skip
    assert (direct_format["study_verdict"], direct_format["replication_verdict"]) == (
        "undecided",
        "CoDIT better",
    )
    assert not direct_format["agree"]
    assert written.loc[written["metric"] != "format following", "agree"].all()
    disagreeing = int((~written["agree"]).sum())
    markdown = (out / "replication.md").read_text()
    assert markdown.startswith(
        f"{len(written) - disagreeing} of {len(written)} verdicts agree between the study"
    )
    header = [cell.strip() for cell in markdown.splitlines()[2].strip("|").split("|")]
    assert header[3:] == [
        "study (2 worlds)",
        "replication (2 worlds)",
        "pooled (4 worlds)",
        "agree",
    ]
    assert markdown.count("**no**") == disagreeing
    # each row with intervals: the chance of agreeing if the pooled estimate were true
    chances = written.loc[written["study_low"] != "", "agree_chance"].astype(float)
    assert len(chances) > 0 and chances.between(0.0, 1.0).all()
    assert (written.loc[written["study_low"] == "", "agree_chance"] == "").all()
    assert f"{chances.sum():.1f} of the {len(chances)} rows with intervals" in markdown
    record = json.loads((out / "verdicts_provenance.json").read_text())
    assert set(record["inputs"]) == {str(path) for path in paths.values()}
    # a replication must bring worlds of its own, checked across the two sets of runs
    with pytest.raises(SystemExit, match=r"error: world 'w1' is in both .*study\.csv and"):
        main(["verdicts", "--main", str(paths["study"]), "--replication", str(paths["study"]),
              "--out-dir", str(tmp_path / "again")])  # fmt: skip


def test_the_published_verdicts_are_codit_verdicts_on_the_committed_runs(tmp_path: Path) -> None:
    """The verdict tables of docs/results/deciding-study.md come from the deciding runs' own
    main tables, committed in docs/decide/, so the verdicts can be checked without hours of
    runs."""
    readme = (REPO / "docs/results/deciding-study.md").read_text()
    study = DECIDE / "study/main.csv"
    for replication in ("replication", "replication-2"):
        out = tmp_path / replication
        main(["verdicts", "--main", str(study), "--replication",
              str(DECIDE / replication / "main.csv"), "--out-dir", str(out)])  # fmt: skip
        markdown = (out / "replication.md").read_text()
        assert markdown[markdown.index("| claim") :] in readme, replication
        if replication == "replication-2":  # shown with its agreement line
            assert markdown.splitlines()[0] in readme
