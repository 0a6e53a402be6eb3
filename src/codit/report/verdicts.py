"""One verdict per claim of the paper, with an interval across worlds (teacher pairs).

Each teacher pair is a *world*: an independently seeded teacher (base and instruct model), whose
data every student is trained on. The world is the unit of replication, so every claim is
decided on one effect per world:

    d_w = mean over the claim's students s of [mean over seeds of CoDIT(w, s)
                                               - mean over seeds of baseline(w, s)],

oriented by the metric's direction (lm-eval's `higher_is_better`) so that a positive d_w means
CoDIT is better (for a lower-is-better metric, baseline minus CoDIT). CoDIT(w, s) is the arm whose
alpha the report selected for (w, s) (on MT-Bench, as in the paper); a (world, student) without
a selected alpha is left out, and the row's note says how many (with no selection at all, e.g.
MT-Bench off, claims 1 to 5 give no row, and the Markdown says why). A student without both arms in
a world is left out of that world. The public baseline belongs to no world: it is matched on the
student alone, so every world compares against the same public students, whose own training
noise the spread of d_w cannot show (it shifts every world alike). Its interval therefore adds
the variance of the public arm's mean over its seeds: se^2 = sd(d_w)^2 / W + sd_P^2 / n_P, with
sd_P the spread across the n_P public seeds of their mean over the claim's students, and
Welch-Satterthwaite's degrees of freedom; with one public seed that noise is unknown and the
row stays undecided (ONE_PUBLIC_SEED).

Over W worlds: estimate = mean of d_w, interval = estimate +- t_{W-1,(1+confidence)/2} x
sd(d_w, ddof=1) / sqrt(W) (`codit.report.stats.seed_interval` over worlds). Since each d_w averages
its own trained models and seeds, the interval carries the world-to-world (teacher) variance, the
training-seed noise and the model-by-item noise. The benchmark items themselves are the same in
every world, so item sampling is not in it: that is paired.csv's item bootstrap. Verdict: `CoDIT
better` when low > 0, `CoDIT worse` when high < 0, else `undecided`; one world gives no interval
(`undecided (one world)`), no world at all `no data`.

The claims (rows of verdicts.csv, in this order), on the metrics of METRIC_LABELS present:
1. CoDIT beats direct generation: format following and the judged metrics, all students;
2. CoDIT keeps knowledge: knowledge, all students;
3. CoDIT beats the public dataset: one row per public arm and metric of claim 1;
4. CoDIT beats Best-of-N: one row per Best-of-N arm and metric of claim 1;
5. cross-architecture students: as claim 1, only the (world, student) whose student
   architecture differs from the world's teacher architecture;
6. the best alpha on the selection metric: for each CoDIT alpha the per-world mean over students
   and seeds; the best alpha has the best mean over worlds. One row per alpha, in grid order,
   gives it minus the best other alpha (the best for every alpha but the best, the runner-up
   for the best itself; oriented, with the interval above), as in multiple comparisons with the
   best: `alpha=X worse` when the interval lies below 0; `alpha=X best` on the best's row when
   every other alpha is worse; else undecided. Rows are keyed by their own alpha, so two runs
   whose point estimates rank tied alphas differently still set the same alphas side by side.
   One row gives the overall verdict: `alpha=X best`, else `undecided between alpha=X, Y, ...`
   (the alphas not found worse).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from codit.report.pivots import PAPER_COLUMNS, ArmName, shown_in_percent
from codit.report.render import markdown_grid
from codit.report.stats import seed_interval
from codit.report.tables import CONFIDENCE, MISSING_CELL, metric_direction
from codit.workflow.benchmarks import SELECTION_METRIC, paper_headlines
from codit.workflow.naming import BEST_OF_N, CODIT, DIRECT_ARM, PUBLIC, format_number, parse_arm

# The metrics the claims are decided on: label -> candidate TASK/METRIC names, the first present
# in the main table wins (the tiny world's IFEval, else the real one); a label with none present
# gives no row.
METRIC_LABELS: dict[str, tuple[str, ...]] = {
    "format following": (
        "tinyworld_ifeval/prompt_level_strict_acc",
        "ifeval/prompt_level_strict_acc",
    ),
    "knowledge": ("tinyworld_knowledge/exact_match",),
    # the judged benchmarks' headline metrics (codit.workflow.benchmarks)
    **{
        headline.verdict_label: (f"{benchmark.task}/{headline.metric}",)
        for benchmark, headline in paper_headlines()
    },
}
# The paper's headline metrics: format following and the judged benchmarks'.
HEADLINE_LABELS = (
    "format following",
    *(headline.verdict_label for _, headline in paper_headlines()),
)

CLAIM_DIRECT = "CoDIT beats direct generation"
CLAIM_KNOWLEDGE = "CoDIT keeps knowledge"
CLAIM_PUBLIC = "CoDIT beats the public dataset"
CLAIM_BEST_OF_N = "CoDIT beats Best-of-N"
CLAIM_CROSS = "Cross-architecture students"
CLAIM_ALPHA = "Best alpha"

COLUMNS = [
    "claim", "metric", "task", "metric_name", "baseline", "n_worlds", "n_students",
    "estimate", "low", "high", "sd_world", "worlds_favouring", "per_world", "verdict", "note",
]  # fmt: skip
ONE_WORLD = "undecided (one world)"
ONE_PUBLIC_SEED = "undecided (one seed of the public arm)"
NO_DATA = "no data"
# The baseline of the best-alpha summary row.
EVERY_OTHER_ALPHA = "every other alpha"

# (world, student) -> mean over seeds of one arm on one metric
Means = pd.Series


@dataclass(frozen=True)
class Verdict:
    """One row of the verdict table. `per_world`: world -> oriented effect d_w (empty on the
    best-alpha summary row); estimate, low, high, sd_world: over worlds, NaN when undefined."""

    claim: str
    label: str
    task: str
    metric: str
    baseline: str
    n_worlds: int
    n_students: int
    estimate: float
    low: float
    high: float
    sd_world: float
    verdict: str
    percent: bool = False
    per_world: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def worlds_favouring(self) -> str:
        """`3/4`: worlds whose effect favours CoDIT (or the row's alpha); empty without effects."""
        if not self.per_world:
            return ""
        return f"{sum(value > 0 for value in self.per_world.values())}/{len(self.per_world)}"

    def record(self) -> dict[str, Any]:
        """The row as verdicts.csv holds it; per_world as `world=value; ...` in metric units."""
        per_world = "; ".join(f"{world}={value:.6g}" for world, value in self.per_world.items())
        return {
            "claim": self.claim, "metric": self.label, "task": self.task,
            "metric_name": self.metric, "baseline": self.baseline, "n_worlds": self.n_worlds,
            "n_students": self.n_students, "estimate": self.estimate, "low": self.low,
            "high": self.high, "sd_world": self.sd_world,
            "worlds_favouring": self.worlds_favouring, "per_world": per_world,
            "verdict": self.verdict, "note": self.note,
        }  # fmt: skip


# --------------------------------------------------------------------------- statistics


def world_interval(effects: Iterable[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """estimate, low, high and sd of per-world effects: the mean and its Student-t interval
    (W - 1 degrees of freedom); low, high and sd are NaN for fewer than two worlds."""
    values = list(effects)
    if not values:
        return dict.fromkeys(("estimate", "low", "high", "sd"), math.nan)
    interval = seed_interval(values, confidence)  # the same t interval, here across worlds
    low, high, sd = (math.nan if interval[key] is None else interval[key]
                     for key in ("low", "high", "sd"))  # fmt: skip
    return {"estimate": interval["mean"], "low": low, "high": high, "sd": sd}


def decide(
    low: float, high: float, n_worlds: int, better: str = "CoDIT better", worse: str = "CoDIT worse"
) -> str:
    """The verdict of one interval: better when it lies above 0, worse below, else undecided."""
    if n_worlds == 0:
        return NO_DATA
    if n_worlds == 1:
        return ONE_WORLD
    if low > 0:
        return better
    if high < 0:
        return worse
    return "undecided"


def world_effects(codit: Means, baseline: Means, higher: bool) -> tuple[dict[str, float], int]:
    """(world -> d_w, number of students that took part) from two arms' seed means, both
    indexed by (world, student); only the (world, student) with both arms count."""
    joined = pd.concat({"codit": codit, "baseline": baseline}, axis=1).dropna()
    if joined.empty:
        return {}, 0
    sign = 1.0 if higher else -1.0
    differences = sign * (joined["codit"] - joined["baseline"])
    effects = differences.groupby(level=0, sort=True).mean()
    students = joined.index.get_level_values(1).nunique()
    return {str(world): float(value) for world, value in effects.items()}, int(students)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Metric:
    """A label's metric in the main table: its name, direction, unit and seed means."""

    label: str
    task: str
    metric: str
    higher: bool
    percent: bool
    means: pd.DataFrame  # world, student, arm, arm_name, value (mean over seeds)
    seeds: pd.DataFrame  # world, student, arm, arm_name, seed, value (every replicate)

    def arm(self, arm_name: str) -> Means:
        """One arm's seed means indexed by (world, student)."""
        rows = self.means[self.means["arm_name"] == arm_name]
        return rows.set_index(["world", "student"])["value"]

    def arm_names(self, kind: str) -> list[str]:
        """The arms of one kind present on this metric, in the report's column order."""
        names = self.means.loc[self.means["arm"] == kind, "arm_name"].unique()
        return [arm.name for arm in sorted(map(ArmName, names), key=ArmName.sort_key)]


def seed_values(table: pd.DataFrame, task: str, metric: str) -> pd.DataFrame:
    """Every replicate (finite values only) of one metric, with its world."""
    rows = table[(table["task"] == task) & (table["metric"] == metric)]
    rows = rows[pd.to_numeric(rows["value"], errors="coerce").notna()]
    rows = rows.assign(world=rows["teacher_pair"].fillna("").astype(str), value=rows["value"])
    return rows[["world", "student", "arm", "arm_name", "seed", "value"]].astype({"value": float})


def seed_means(values: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per world, student and arm of one metric's replicates (seed_values)."""
    keys = ["world", "student", "arm", "arm_name"]
    return values.groupby(keys, sort=True)["value"].mean().reset_index()


def find_metric(
    table: pd.DataFrame, label: str, directions: Mapping[str, bool], candidates: Iterable[str]
) -> Metric | None:
    """The first candidate TASK/METRIC with rows in the table, as a Metric; None when absent."""
    for name in candidates:
        task, _, metric = name.partition("/")
        rows = table[(table["task"] == task) & (table["metric"] == metric)]
        if len(rows):
            values = seed_values(table, task, metric)
            return Metric(
                label=label,
                task=task,
                metric=metric,
                higher=metric_direction(directions, task, metric),
                percent=shown_in_percent(task, metric, rows["value"].astype(float)),
                means=seed_means(values),
                seeds=values,
            )
    return None


def selected_codit(metric: Metric, selected: Mapping[tuple[str, str], str]) -> tuple[Means, int]:
    """(the selected CoDIT arm's seed means per (world, student), how many (world, student)
    with CoDIT results have no selected alpha and are left out)."""
    codit = metric.means[metric.means["arm"] == CODIT]
    values, unselected = {}, set()
    for row in codit.itertuples(index=False):
        arm = selected.get((row.world, row.student))
        if arm is None:
            unselected.add((row.world, row.student))
        elif arm == row.arm_name:
            values[(row.world, row.student)] = float(row.value)
    index = pd.MultiIndex.from_tuples(list(values), names=["world", "student"])
    return pd.Series(list(values.values()), index=index, dtype=float), len(unselected)


@dataclass(frozen=True)
class SharedNoise:
    """A baseline shared by every world: the variance of its mean over its seeds (of the
    per-seed means over the claim's students) and how many seeds it has."""

    variance_of_mean: float
    seeds: int


def shared_noise(metric: Metric, arm_name: str, students: Iterable[str]) -> SharedNoise:
    """The public arm's own training noise: sd^2 / n over its seeds, NaN for one seed."""
    rows = metric.seeds[metric.seeds["arm_name"] == arm_name]
    rows = rows[rows["student"].isin(set(students))]
    per_seed = rows.groupby("seed")["value"].mean()
    count = len(per_seed)
    variance = float(per_seed.var(ddof=1)) / count if count > 1 else math.nan
    return SharedNoise(variance, count)


def shared_interval(
    effects: Iterable[float], noise: SharedNoise, confidence: float
) -> dict[str, float]:
    """world_interval widened by a shared baseline's noise (Welch-Satterthwaite df)."""
    from scipy import stats

    values = list(effects)
    interval = world_interval(values, confidence)
    if len(values) < 2 or noise.seeds < 2:
        return {**interval, "low": math.nan, "high": math.nan}
    worlds_part = interval["sd"] ** 2 / len(values)
    variance = worlds_part + noise.variance_of_mean
    if variance == 0:
        return interval
    df = variance**2 / (
        worlds_part**2 / (len(values) - 1) + noise.variance_of_mean**2 / (noise.seeds - 1)
    )
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(variance)
    estimate = interval["estimate"]
    return {**interval, "low": estimate - half, "high": estimate + half}


def public_by_world(metric: Metric, arm_name: str, worlds: Iterable[str]) -> Means:
    """A public arm's seed means copied to every world: it is matched on the student alone."""
    public = metric.arm(arm_name).droplevel(0)
    pairs = [(world, student) for world in worlds for student in public.index]
    index = pd.MultiIndex.from_tuples(pairs, names=["world", "student"])
    return pd.Series([public[student] for _, student in pairs], index=index, dtype=float)


def cross_architecture(table: pd.DataFrame) -> set[tuple[str, str]]:
    """(world, student) whose student architecture is known and differs from the world's
    teacher architecture (read from any row that names it)."""
    named = table.assign(world=table["teacher_pair"].fillna("").astype(str))
    students = named[named["student_architecture"].fillna("") != ""]
    student_arch = students.groupby("student")["student_architecture"].first().to_dict()
    teachers = named[(named["world"] != "") & (named["teacher_architecture"].fillna("") != "")]
    teacher_arch = teachers.groupby("world")["teacher_architecture"].first().to_dict()
    return {
        (world, student)
        for world, teacher in teacher_arch.items()
        for student, architecture in student_arch.items()
        if architecture != teacher
    }


# --------------------------------------------------------------------------- claims


def comparison(
    claim: str,
    metric: Metric,
    codit: Means,
    baseline: Means,
    baseline_name: str,
    confidence: float,
    note: str = "",
    shared: SharedNoise | None = None,
) -> Verdict:
    """One claim on one metric: CoDIT against a baseline, decided across worlds (and over the
    seeds of a baseline shared by every world)."""
    effects, students = world_effects(codit, baseline, metric.higher)
    if shared is None:
        interval = world_interval(effects.values(), confidence)
    else:
        interval = shared_interval(effects.values(), shared, confidence)
    verdict = decide(interval["low"], interval["high"], len(effects))
    if shared is not None and len(effects) > 1 and shared.seeds < 2:
        verdict = ONE_PUBLIC_SEED
    return Verdict(
        claim=claim,
        label=metric.label,
        task=metric.task,
        metric=metric.metric,
        baseline=baseline_name,
        n_worlds=len(effects),
        n_students=students,
        estimate=interval["estimate"],
        low=interval["low"],
        high=interval["high"],
        sd_world=interval["sd"],
        verdict=verdict,
        percent=metric.percent,
        per_world=effects,
        note=note,
    )


def unselected_note(count: int) -> str:
    if not count:
        return ""
    rows = "row" if count == 1 else "rows"
    return f"{count} (world, student) {rows} without a selected alpha left out"


def baseline_verdicts(
    metrics: Mapping[str, Metric],
    selected: Mapping[tuple[str, str], str],
    cross: set[tuple[str, str]],
    confidence: float,
) -> list[Verdict]:
    """Claims 1 to 5: the selected CoDIT arm against direct, public, Best-of-N, and direct for
    cross-architecture students."""
    headline = [metrics[label] for label in HEADLINE_LABELS if label in metrics]
    verdicts = []
    chosen = {label: selected_codit(metric, selected) for label, metric in metrics.items()}

    def compare(
        claim: str, metric: Metric, baseline: Means, name: str, shared: bool = False
    ) -> Verdict:
        codit, unselected = chosen[metric.label]
        note = unselected_note(unselected)
        noise = shared_noise(metric, name, codit.index.get_level_values(1)) if shared else None
        if noise is not None and noise.seeds > 1:
            note = "; ".join(n for n in (note, f"public arm over {noise.seeds} seeds") if n)
        return comparison(claim, metric, codit, baseline, name, confidence, note, noise)

    verdicts += [compare(CLAIM_DIRECT, m, m.arm(DIRECT_ARM), DIRECT_ARM) for m in headline]
    if "knowledge" in metrics:
        knowledge = metrics["knowledge"]
        verdicts.append(compare(CLAIM_KNOWLEDGE, knowledge, knowledge.arm(DIRECT_ARM), DIRECT_ARM))
    for metric in headline:
        worlds = sorted(set(metric.means.loc[metric.means["arm"] == CODIT, "world"]))
        for name in metric.arm_names(PUBLIC):
            public = public_by_world(metric, name, worlds)
            verdicts.append(compare(CLAIM_PUBLIC, metric, public, name, shared=True))
    for metric in headline:
        for name in metric.arm_names(BEST_OF_N):
            verdicts.append(compare(CLAIM_BEST_OF_N, metric, metric.arm(name), name))
    for metric in headline:
        direct = metric.arm(DIRECT_ARM)
        direct = direct[[pair in cross for pair in direct.index]]
        verdict = compare(CLAIM_CROSS, metric, direct, DIRECT_ARM)
        if not cross:
            notes = [verdict.note, "no student of another architecture than its teacher"]
            verdict = replace(verdict, note="; ".join(note for note in notes if note))
        verdicts.append(verdict)
    return verdicts


def alpha_text(arm_name: str, show_beta: bool) -> str:
    """`alpha=0.1` (with `beta=2` when the CoDIT arms differ in beta)."""
    arm = parse_arm(arm_name)
    text = f"alpha={format_number(arm.alpha or 0.0)}"
    return text + f" beta={format_number(arm.beta or 0.0)}" if show_beta else text


def best_alpha_verdicts(metric: Metric, confidence: float) -> list[Verdict]:
    """Claim 6: the summary row (the overall verdict), then each alpha minus the best other."""
    arms = metric.arm_names(CODIT)
    if len(arms) < 2:
        return []
    show_beta = len({parse_arm(name).beta for name in arms}) > 1
    sign = 1.0 if metric.higher else -1.0
    # Per world, each alpha's mean over students (each a mean over seeds); then over worlds.
    world_means = {name: metric.arm(name).groupby(level=0).mean() for name in arms}
    overall = {name: float(means.mean()) for name, means in world_means.items()}
    ranked = sorted(arms, key=lambda name: -sign * overall[name])  # stable: ties, smallest alpha
    best, runner_up = ranked[0], ranked[1]
    compared = {}
    for name in arms:
        reference = runner_up if name == best else best
        row = comparison(CLAIM_ALPHA, metric, metric.arm(name), metric.arm(reference), name,
                         confidence)  # fmt: skip
        # Only the best's own row can lie above 0; whether it is best needs every other row.
        worse = f"{alpha_text(name, show_beta)} worse"
        compared[name] = replace(
            row,
            verdict=decide(row.low, row.high, row.n_worlds, "undecided", worse),
            note=f"this alpha minus {alpha_text(reference, show_beta)}, the best other",
        )
    best_verdict = f"{alpha_text(best, show_beta)} best"
    if compared[best].n_worlds > 1 and all(
        row.high < 0 for name, row in compared.items() if name != best
    ):
        compared[best] = replace(compared[best], verdict=best_verdict)
    rows = list(compared.values())
    worlds = sorted(set(metric.means.loc[metric.means["arm"] == CODIT, "world"]))
    students = metric.means.loc[metric.means["arm"] == CODIT, "student"].nunique()
    means = ", ".join(
        f"{alpha_text(name, show_beta)} {format_effect(overall[name], metric, signed=False)}"
        for name in arms
    )
    if len(worlds) < 2:
        verdict = ONE_WORLD
    elif compared[best].verdict == best_verdict:
        verdict = best_verdict
    else:
        # in the alphas' own order, so runs that leave the same alphas tied read the same
        tied = [name for name in arms if not compared[name].high < 0]
        tied_text = ", ".join(alpha_text(name, show_beta).removeprefix("alpha=") for name in tied)
        verdict = f"undecided between alpha={tied_text}"
    summary = Verdict(
        claim=CLAIM_ALPHA,
        label=metric.label,
        task=metric.task,
        metric=metric.metric,
        baseline=EVERY_OTHER_ALPHA,
        n_worlds=len(worlds),
        n_students=int(students),
        estimate=math.nan,
        low=math.nan,
        high=math.nan,
        sd_world=math.nan,
        verdict=verdict,
        percent=metric.percent,
        note=f"mean over worlds: {means}",
    )
    return [summary, *rows]


def claim_verdicts(
    table: pd.DataFrame,
    selected: Mapping[tuple[str, str], str],
    directions: Mapping[str, bool],
    selection_metric: str = SELECTION_METRIC,
    confidence: float = CONFIDENCE,
) -> list[Verdict]:
    """Every claim's verdicts from the report's main table (teacher_pair empty or NaN for the
    public arms), its alpha selection ((world, student) -> CoDIT arm name) and directions."""
    metrics = {}
    for label, candidates in METRIC_LABELS.items():
        metric = find_metric(table, label, directions, candidates)
        if metric is not None:
            metrics[label] = metric
    # Claims 1 to 5 compare the selected alpha: without any selection there is nothing to say.
    verdicts = []
    if selected:
        verdicts += baseline_verdicts(metrics, selected, cross_architecture(table), confidence)
    selection_label = next(
        (label for label, names in METRIC_LABELS.items() if selection_metric in names),
        selection_metric,
    )
    selection = find_metric(table, selection_label, directions, [selection_metric])
    if selection is not None:
        verdicts += best_alpha_verdicts(selection, confidence)
    return verdicts


# --------------------------------------------------------------------------- outputs


def verdict_table(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    """verdicts.csv: one row per verdict, values in the metric's own units."""
    return pd.DataFrame([verdict.record() for verdict in verdicts], columns=COLUMNS)


def verdict_records(verdicts: Iterable[Verdict]) -> list[dict[str, Any]]:
    """The rows for report_provenance.json (NaN as null)."""
    return [
        {key: None if isinstance(value, float) and math.isnan(value) else value
         for key, value in verdict.record().items()}
        for verdict in verdicts
    ]  # fmt: skip


def digits_of(metric: Metric | Verdict) -> tuple[float, int]:
    """(scale, decimals) as main.md shows the metric: % with one decimal for fractions, the
    paper's decimals for judged metrics, three decimals otherwise."""
    if metric.percent:
        return 100.0, 1
    for column in PAPER_COLUMNS:
        if (column.task, column.metric) == (metric.task, metric.metric):
            return 1.0, column.digits
    return 1.0, 3


def format_effect(value: float, metric: Metric | Verdict, signed: bool = True) -> str:
    if math.isnan(value):
        return MISSING_CELL
    scale, digits = digits_of(metric)
    return f"{scale * value:{'+' if signed else ''}.{digits}f}"


def effect_cell(verdict: Verdict) -> str:
    """`+4.5 [+2.0, +7.2]`; the estimate alone for one world; – for none."""
    estimate = format_effect(verdict.estimate, verdict)
    if math.isnan(verdict.low):
        return estimate
    low, high = (format_effect(bound, verdict) for bound in (verdict.low, verdict.high))
    return f"{estimate} [{low}, {high}]"


def summary_cell(verdict: Verdict) -> str:
    """`+2.4 [+1.1, +3.7] 10/12: CoDIT better`: a run's verdict in one cell (the best-alpha
    summary row has no effect of its own: its verdict alone)."""
    if verdict.baseline == EVERY_OTHER_ALPHA:
        return verdict.verdict
    return f"{effect_cell(verdict)} {verdict.worlds_favouring}: {verdict.verdict}"


def baseline_label(verdict: Verdict) -> str:
    """The baseline as main.md's columns name it (`best-of-4 (oracle)`); a best-alpha row names
    its own alpha and what it is compared with (`α=0.1 minus the best other`)."""
    if verdict.baseline == EVERY_OTHER_ALPHA:
        return verdict.baseline
    if verdict.claim == CLAIM_ALPHA:
        return f"{ArmName(verdict.baseline).label()} minus the best other"
    return ArmName(verdict.baseline).label()


def interval_line(confidence: float) -> str:
    """The paragraph under the heading: what the effect and its interval are."""
    return textwrap.fill(
        "Effect per world (teacher pair) = CoDIT (selected α) minus the baseline, averaged over "
        "the claim's students after averaging seeds, signed so that + favours CoDIT; shown: the "
        f"mean over worlds [{confidence:.0%} Student-t interval across worlds], which carries "
        "teacher, training-seed and model noise but not item sampling (the benchmark items are "
        "shared by every world: see paired.md). In % points for accuracies. Best alpha: each α "
        "minus the best other α (the runner-up for the best), the same way; an α is worse when "
        "its interval lies below 0, best when every other α is worse. Verdict: better or worse "
        "when the interval excludes 0, else undecided.",
        width=96,
        break_on_hyphens=False,
    )


def markdown_table(verdicts: list[Verdict]) -> str:
    header = ["claim", "metric", "baseline", "worlds", "students",
              "effect [interval]", "worlds favouring", "per world", "verdict"]  # fmt: skip
    body = [
        [
            verdict.claim, verdict.label, baseline_label(verdict), str(verdict.n_worlds),
            str(verdict.n_students), effect_cell(verdict), verdict.worlds_favouring or MISSING_CELL,
            "; ".join(f"{world}={format_effect(value, verdict)}"
                      for world, value in verdict.per_world.items()) or MISSING_CELL,
            verdict.verdict + (f" ({verdict.note})" if verdict.note else ""),
        ]
        for verdict in verdicts
    ]  # fmt: skip
    return markdown_grid(header, body, numeric_from=len(header))


def verdicts_text(verdicts: list[Verdict], confidence: float, selection_metric: str) -> str:
    """The line on the interval, then the table (or why there is none)."""
    if not verdicts:
        return (
            "No claim could be decided: each compares the CoDIT alpha chosen per teacher pair "
            f"and student on {selection_metric} (or compares alphas on it), and the results "
            "have no such choice.\n"
        )
    return f"{interval_line(confidence)}\n\n{markdown_table(verdicts)}\n"


def markdown_section(
    verdicts: list[Verdict],
    confidence: float = CONFIDENCE,
    selection_metric: str = SELECTION_METRIC,
) -> str:
    """main.md's `## Verdicts` section: one line on the interval, then the table."""
    text = verdicts_text(verdicts, confidence, selection_metric)
    return f"## Verdicts: the paper's claims across worlds\n\n{text}"


def render_markdown(
    verdicts: list[Verdict],
    confidence: float = CONFIDENCE,
    selection_metric: str = SELECTION_METRIC,
) -> str:
    """verdicts.md: a title, the metric each label stands for, then the line and the table."""
    # The labels in METRIC_LABELS' order, each with the metric it stood for.
    named = {verdict.label: f"{verdict.task}/{verdict.metric}" for verdict in verdicts}
    order = list(METRIC_LABELS)
    metrics = sorted(
        named.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99
    )
    lines = ["# CoDIT reproduction: one verdict per claim of the paper", ""]
    if metrics:
        legend = "; ".join(f"{label} = {name}" for label, name in metrics)
        lines += [f"Metrics: {legend}.", ""]
    return "\n".join(lines) + "\n" + verdicts_text(verdicts, confidence, selection_metric)
