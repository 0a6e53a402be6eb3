"""`codit power`: the smallest difference a study of n items and k seeds can decide.

A paired CoDIT - direct difference averaged over k training seeds and n benchmark items has
two noise sources that a run measures (`results/tables/paired.csv`, codit.report.paired):

- the items: the bootstrap interval [low, high] over the n items of the seed-averaged
  difference gives the per-item standard deviation sigma_item = (high - low) / (2 z) x sqrt(n);
- the seeds: the t interval [seed_low, seed_high] over the k per-seed differences gives the
  per-seed standard deviation sigma_seed = (seed_high - seed_low) / (2 t_{k-1}) x sqrt(k).

The per-seed differences are computed on the same items, so sigma_seed holds the training-seed
noise (and its interaction with items), which more items do not shrink. The variance of a
study's mean difference is then taken as sigma_seed^2 / k + sigma_item^2 / n (items shared by
all seeds), and a true difference delta is detected by a two-sided test at level alpha with
power 1 - beta when delta >= (z_{1-alpha/2} + z_{1-beta}) x sqrt(variance) (the normal
approximation of a paired design; scipy's normal and t quantiles). `codit power` prints that
smallest delta for each plan (items x seeds) and each metric of a report.

Worlds (the deciding study's teacher pairs, codit.report.verdicts): a verdict averages K students
and S seeds within each of W worlds and takes a t interval across the W per-world effects.
One world's effect varies by sigma_world^2 (the teacher's own effect, which no run of one
world measures: `--sigma-world`, assumed) + sigma_seed^2 / (S K) + sigma_item^2 / (n K), and
a plan of W >= 2 worlds detects delta >= (t_{W-1, 1-alpha/2} + t_{W-1, power}) x
sqrt(that / W): few worlds pay twice, in the spread and in the t quantiles.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.workflow.settings import Settings, option

CONFIDENCE = 0.95  # the intervals of paired.csv


@dataclass(frozen=True)
class NoiseEstimate:
    """One comparison's measured noise: per-item and per-seed standard deviations."""

    task: str
    metric: str
    sigma_item: float
    sigma_seed: float | None  # None with one seed: no seed spread measured


def noise_of_row(row: Mapping[str, Any]) -> NoiseEstimate:
    """The noise of one paired.csv row (see the module docstring)."""
    from scipy import stats

    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    items, seeds = int(row["n_items"]), int(row["n_seeds"])
    sigma_item = (float(row["high"]) - float(row["low"])) / (2 * z) * math.sqrt(items)
    sigma_seed = None
    if seeds > 1 and row.get("seed_low") not in (None, ""):
        t = stats.t.ppf(0.5 + CONFIDENCE / 2, seeds - 1)
        spread = float(row["seed_high"]) - float(row["seed_low"])
        sigma_seed = spread / (2 * t) * math.sqrt(seeds)
    return NoiseEstimate(row["task"], row["metric"], sigma_item, sigma_seed)


def pooled_noise(rows: Iterable[Mapping[str, Any]]) -> list[NoiseEstimate]:
    """Per (task, metric): the root mean square of its rows' standard deviations (every
    student and CoDIT arm of the run measures the same benchmark's noise)."""
    groups: dict[tuple[str, str], list[NoiseEstimate]] = {}
    for row in rows:
        estimate = noise_of_row(row)
        groups.setdefault((estimate.task, estimate.metric), []).append(estimate)
    pooled = []
    for (task, metric), estimates in sorted(groups.items()):
        seeds = [e.sigma_seed for e in estimates if e.sigma_seed is not None]
        pooled.append(
            NoiseEstimate(
                task, metric, rms([e.sigma_item for e in estimates]), rms(seeds) if seeds else None
            )
        )
    return pooled


def rms(values: list[float]) -> float:
    return math.sqrt(sum(value * value for value in values) / len(values))


def z_sum(alpha: float, power: float) -> float:
    """z_{1-alpha/2} + z_{power}: a true difference this many standard errors away from 0 is
    detected with probability `power` by a two-sided test at level `alpha`."""
    from scipy import stats

    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


def detectable_effect(
    noise: NoiseEstimate,
    items: int,
    seeds: int,
    alpha: float,
    power: float,
    worlds: int = 1,
    sigma_world: float = 0.0,
    students: int = 1,
) -> float:
    """The smallest true difference a study of `items` items and `seeds` seeds detects; with
    `worlds` >= 2, averaged over `students` per world and tested across worlds."""
    from scipy import stats

    per_world = (
        sigma_world**2
        + (noise.sigma_seed or 0.0) ** 2 / (seeds * students)
        + noise.sigma_item**2 / (items * students)
    )
    if worlds < 2:
        return z_sum(alpha, power) * math.sqrt(per_world)
    quantiles = stats.t.ppf(1 - alpha / 2, worlds - 1) + stats.t.ppf(power, worlds - 1)
    return float(quantiles) * math.sqrt(per_world / worlds)


def verdict_chances(
    effect: float, low: float, high: float, worlds: int, confidence: float = CONFIDENCE
) -> dict[str, float]:
    """The chances that a run deciding with a t interval across `worlds` worlds says better
    (interval above 0), worse (below) or undecided, if the true effect were `effect` and the
    run's standard error that of its interval [low, high] (W - 1 degrees of freedom: for the
    public arm's Welch-Satterthwaite intervals an approximation); noncentral t."""
    from scipy import stats

    freedom = worlds - 1
    quantile = float(stats.t.ppf(0.5 + confidence / 2, freedom))
    shift = effect / ((high - low) / (2 * quantile))
    # both tails as upper tails (T < -q given shift = T > q given -shift): scipy's nct.cdf
    # gives NaN far out in the lower tail
    better, worse = (float(stats.nct.sf(quantile, freedom, sign * shift)) for sign in (1, -1))
    return {"better": better, "worse": worse, "undecided": 1.0 - better - worse}


@dataclass(frozen=True, kw_only=True)
class PowerRun(Settings):
    """One `codit power` run over a report's paired comparisons."""

    paired: Path = option(help="paired.csv of `codit report` (results/tables/paired.csv)")
    items: tuple[int, ...] = option((50, 200, 800), "benchmark items of the plans", nargs="+")
    seeds: tuple[int, ...] = option((3, 10), "training seeds of the plans", nargs="+")
    worlds: tuple[int, ...] = option((1,), "worlds (teacher pairs) of the plans", nargs="+")
    sigma_world: float = option(
        0.0, "assumed teacher-to-teacher sd of the effect (points for accuracies)"
    )
    students: int = option(1, "students averaged within each world")
    alpha: float = option(0.05, "two-sided test level (0.05: a 95%% interval excludes 0)")
    power: float = option(0.8, "the chance of detecting the effect")
    metric: tuple[str, ...] = option((), "only these TASK/METRIC (repeat); default: all")


def is_fraction(rows: list[Mapping[str, Any]]) -> bool:
    """lm-eval's accuracies are fractions in paired.csv; the tables show them in points."""
    values = [abs(float(r[key])) for r in rows for key in ("direct", "codit")]
    return max(values) <= 1.0


def power_table(run: PowerRun) -> str:
    """A Markdown table: per metric, the measured noise and the detectable difference of each
    plan (items x seeds), in points for fractions."""
    import pandas as pd

    from codit.report.render import markdown_grid

    rows = pd.read_csv(run.paired, keep_default_na=False).to_dict("records")
    if run.metric:
        rows = [r for r in rows if f"{r['task']}/{r['metric']}" in run.metric]
    if not rows:
        raise ValueError(f"{run.paired}: no paired comparison (of {list(run.metric) or 'any'})")
    plans = [(n, k, w) for w in run.worlds for k in run.seeds for n in run.items]
    header = ["task/metric", "unit", "sigma item", "sigma seed"]
    header += [f"{n} items x {k} seeds" + (f" x {w} worlds" if w > 1 else "") for n, k, w in plans]
    body = []
    for noise in pooled_noise(rows):
        own = [r for r in rows if (r["task"], r["metric"]) == (noise.task, noise.metric)]
        scale, unit = (100.0, "points") if is_fraction(own) else (1.0, "raw")
        seed = "–" if noise.sigma_seed is None else f"{noise.sigma_seed * scale:.2f}"
        cells = [f"{noise.task}/{noise.metric}", unit, f"{noise.sigma_item * scale:.2f}", seed]
        sigma_world = run.sigma_world / scale  # given in the table's unit
        for n, k, w in plans:
            effect = detectable_effect(
                noise, n, k, run.alpha, run.power, w, sigma_world, run.students
            )
            cells.append(f"{effect * scale:.2f}")
        body.append(cells)
    return markdown_grid(header, body, numeric_from=2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    PowerRun.add_arguments(parser)


def run(args: argparse.Namespace) -> None:
    power_run = PowerRun.from_args(args)
    print(
        f"Smallest CoDIT - direct difference each plan detects (two-sided level "
        f"{power_run.alpha:g}, power {power_run.power:g}), from the noise measured in "
        f"{power_run.paired}:\n"
    )
    print(power_table(power_run))
