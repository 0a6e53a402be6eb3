"""`codit power`: the noise read back from paired.csv and the detectable difference by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from codit.report.power import (
    NoiseEstimate,
    PowerRun,
    detectable_effect,
    noise_of_row,
    pooled_noise,
    power_table,
    verdict_chances,
    z_sum,
)

ROW = {
    "task": "mt_bench", "metric": "score", "n_items": 16, "n_seeds": 3, "direct": 5.0,
    "codit": 5.5, "low": -0.2, "high": 1.0, "seed_low": -0.4, "seed_high": 1.4,
}  # fmt: skip


def cells(line: str) -> list[str]:
    """A Markdown table line's cells, padding stripped."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_the_noise_is_read_back_from_both_intervals_by_hand():
    noise = noise_of_row(ROW)
    z, t = stats.norm.ppf(0.975), stats.t.ppf(0.975, 2)
    assert noise.sigma_item == pytest.approx(1.2 / (2 * z) * 4)  # sqrt(16 items)
    assert noise.sigma_seed == pytest.approx(1.8 / (2 * t) * math.sqrt(3))
    assert noise_of_row({**ROW, "n_seeds": 1, "seed_low": "", "seed_high": ""}).sigma_seed is None


def test_the_detectable_difference_by_hand_and_seeds_that_items_cannot_replace():
    noise = NoiseEstimate("t", "m", sigma_item=2.0, sigma_seed=1.0)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)  # 2.80
    assert detectable_effect(noise, 100, 4, 0.05, 0.8) == pytest.approx(
        z * math.sqrt(4 / 100 + 1 / 4)
    )
    # more items never beat the seed noise: the limit is z x sigma_seed / sqrt(seeds)
    assert detectable_effect(noise, 10**9, 4, 0.05, 0.8) == pytest.approx(z * 0.5, rel=1e-6)


def test_rows_of_one_metric_pool_and_the_table_shows_fractions_in_points(tmp_path):
    fraction = {**ROW, "task": "ifeval", "metric": "acc", "direct": 0.5, "codit": 0.55,
                "low": -0.01, "high": 0.11, "seed_low": -0.02, "seed_high": 0.12}  # fmt: skip
    rows = [ROW, {**ROW, "low": -0.6, "high": 1.4}, fraction]
    pooled = {(n.task, n.metric): n for n in pooled_noise(rows)}
    items = [noise_of_row(r).sigma_item for r in rows[:2]]
    assert pooled["mt_bench", "score"].sigma_item == pytest.approx(
        math.sqrt((items[0] ** 2 + items[1] ** 2) / 2)
    )
    paired = tmp_path / "paired.csv"
    pd.DataFrame(rows).to_csv(paired, index=False)
    table = power_table(PowerRun(paired=paired, items=(16,), seeds=(3,)))
    header, rule, *body = [cells(line) for line in table.splitlines()]
    assert header == ["task/metric", "unit", "sigma item", "sigma seed", "16 items x 3 seeds"]
    assert [r.endswith(":") for r in rule] == [False, False, True, True, True]  # numbers right
    ifeval = next(row for row in body if row[0] == "ifeval/acc")
    noise = noise_of_row(fraction)
    expected = detectable_effect(noise, 16, 3, 0.05, 0.8) * 100
    assert ifeval == [
        "ifeval/acc",
        "points",
        f"{noise.sigma_item * 100:.2f}",
        f"{noise.sigma_seed * 100:.2f}",
        f"{expected:.2f}",
    ]
    with pytest.raises(ValueError, match="no paired comparison"):
        power_table(PowerRun(paired=paired, metric=("nope/x",)))


def test_worlds_test_across_teachers_with_t_quantiles_by_hand(tmp_path):
    noise = NoiseEstimate("ifeval", "acc", sigma_item=0.27, sigma_seed=0.0285)
    # four worlds, two students, one seed, 200 items, a teacher sd of 2 points
    per_world = 0.02**2 + 0.0285**2 / 2 + 0.27**2 / (200 * 2)
    quantiles = stats.t.ppf(0.975, 3) + stats.t.ppf(0.8, 3)
    expected = quantiles * math.sqrt(per_world / 4)
    assert detectable_effect(noise, 200, 1, 0.05, 0.8, 4, 0.02, 2) == pytest.approx(expected)
    # one world is the plan of items and seeds as before (normal quantiles, no teacher term)
    assert detectable_effect(noise, 200, 3, 0.05, 0.8, 1, 0.0, 1) == pytest.approx(
        z_sum(0.05, 0.8) * math.sqrt(0.27**2 / 200 + 0.0285**2 / 3)
    )
    fraction = {**ROW, "task": "ifeval", "metric": "acc", "direct": 0.5, "codit": 0.55,
                "low": -0.01, "high": 0.11, "seed_low": -0.02, "seed_high": 0.12}  # fmt: skip
    paired = tmp_path / "paired.csv"
    pd.DataFrame([fraction]).to_csv(paired, index=False)
    run = PowerRun(paired=paired, items=(200,), seeds=(1,), worlds=(4,), sigma_world=2.0,
                   students=2)  # fmt: skip
    header, _, row = [cells(line) for line in power_table(run).splitlines()]
    assert header[-1] == "200 items x 1 seeds x 4 worlds"
    measured = noise_of_row(fraction)
    effect = detectable_effect(measured, 200, 1, 0.05, 0.8, 4, 0.02, 2) * 100
    assert row[-1] == f"{effect:.2f}"


def test_verdict_chances_follow_the_noncentral_t() -> None:
    # no effect: each tail holds (1 - confidence) / 2, whatever the interval's width
    for low, high in ((-1.0, 1.0), (-0.1, 0.3)):
        chances = verdict_chances(0.0, low, high, worlds=12)
        assert chances["better"] == pytest.approx(0.025) == chances["worse"]
        assert chances["undecided"] == pytest.approx(0.95)
    # an effect at the decision threshold (the interval's half width) is decided about half
    # the time (a little more: the noncentral t leans right), and only ever as better
    quantile = stats.t.ppf(0.975, 11)
    at_threshold = verdict_chances(1.0, 0.0, 2.0, worlds=12)
    assert 0.5 < at_threshold["better"] < 0.55 and at_threshold["worse"] < 1e-4
    # by hand: the standard error is the half width over the t quantile
    se = 1.0 / quantile
    assert at_threshold["better"] == pytest.approx(stats.nct.sf(quantile, 11, 1.0 / se))
    # a large negative effect: worse almost surely; the three chances always sum to 1
    far = verdict_chances(-5.0, -6.0, -4.0, worlds=12)
    assert far["worse"] > 0.999 and sum(far.values()) == pytest.approx(1.0)
    # two worlds, an effect 40 standard errors out: a number, not NaN
    assert verdict_chances(40.0, -11.7, 13.7, worlds=2)["worse"] == pytest.approx(0.0, abs=1e-12)
