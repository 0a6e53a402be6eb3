"""Figures of the report: metrics and dataset statistics against CoDIT's alpha, and a heat map
of CoDIT minus direct per teacher pair and student.

metric_vs_alpha.png draws, per task/metric and per (teacher pair, student) colour, the CoDIT
mean across seeds against alpha with bars of the 95% Student-t interval across seeds (lm-eval's
stderr for one seed), and the other arms as horizontal lines or markers of the same colour:
direct dashed with a faint band, Best-of-N dash-dot, public datasets dotted (drawn for every
teacher pair), chat-vector students as `<` markers at the right edge labelled r=..., and the
teacher instruct references dotted grey. judged_vs_alpha.png draws the judged benchmarks'
headline metrics (the paper's table's columns) the same way, CoDIT and direct only.
verdicts.png draws each verdict of codit.report.verdicts: one panel per metric, a row per claim, the
estimate with its interval across worlds and each world's own effect as a dot.
length_vs_alpha.png draws the seed means of dataset statistics (tokens, truncation, repeated
4-grams) the same way.

Figures are built with matplotlib's object API (`Figure`, Agg canvas), never pyplot, so no
display or global state is involved.

The alpha axis is logarithmic when every alpha is positive (the paper's grid spans decades). When
alpha = 0 is in the grid it is `symlog`: linear between 0 and the smallest positive alpha, log
beyond, so 0 is drawn at the left edge and the positive alphas keep their log spacing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator
from matplotlib.transforms import blended_transform_factory

from codit.report.pivots import PAPER_COLUMNS, ArmName, PaperColumn, shown_in_percent
from codit.report.tables import REFERENCE_ARM, broadcast_public
from codit.report.verdicts import CLAIM_ALPHA, Verdict, baseline_label
from codit.workflow.naming import BEST_OF_N, CHAT_VECTOR, CODIT, DIRECT_ARM, PUBLIC, format_number
from codit.workflow.provenance import atomic_path

DPI = 100
PANEL_SIZE = (4.4, 3.3)  # inches per panel
MAX_COLUMNS = 3
BETA_MARKERS = ["o", "s", "^", "D", "v", "P"]
REFERENCE_COLOUR = "0.45"
ALPHA_LABEL = "CoDIT α (plausibility threshold)"
# Line style of each arm kind drawn as a horizontal line (CoDIT is the curve against alpha).
LINE_STYLES = {DIRECT_ARM: "--", BEST_OF_N: "-.", PUBLIC: ":"}
STYLE_NAMES = {
    DIRECT_ARM: "direct generation",
    BEST_OF_N: "best-of-N",
    PUBLIC: "public dataset",
}
CHAT_VECTOR_MARKER = "<"
DATASET_STATISTICS = ("tokens_mean", "length_share", "repeated_4gram_share")


# --------------------------------------------------------------------------- shared helpers


def panel_grid(count: int, columns: int = MAX_COLUMNS) -> tuple[Figure, list[Axes]]:
    """A figure with `count` panels in rows of at most `columns`; unused cells are hidden."""
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    figure = Figure(
        figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + 0.8), layout="constrained"
    )
    axes = figure.subplots(rows, columns, squeeze=False)
    flat = list(axes.flat)
    for unused in flat[count:]:
        unused.set_visible(False)
    return figure, flat[:count]


def configure_alpha_axis(ax: Axes, alphas: Iterable[float]) -> None:
    """Log axis for positive alphas, symlog when 0 is present, ticks exactly at the alphas."""
    values = sorted({float(a) for a in alphas if not pd.isna(a)})
    ax.set_xlabel(ALPHA_LABEL)
    if not values:
        ax.set_xticks([])
        ax.text(0.5, 0.5, "no CoDIT arm", transform=ax.transAxes, ha="center", color="0.5")
        return
    positive = [a for a in values if a > 0]
    if positive and len(positive) == len(values):
        ax.set_xscale("log")
        ax.set_xlim(positive[0] / 2, positive[-1] * 2)
    elif positive:
        ax.set_xscale("symlog", linthresh=positive[0], linscale=0.6)
        ax.set_xlim(-positive[0] * 0.3, positive[-1] * 2)
    ax.set_xticks(values, [format_number(a) for a in values])
    ax.xaxis.set_minor_locator(NullLocator())


def series_colours(keys: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """A stable colour per series, from the tab10 cycle in sorted key order."""
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return {key: cycle[i % len(cycle)] for i, key in enumerate(sorted(keys))}


def save_figure(figure: Figure, path: str | os.PathLike) -> None:
    """Write the PNG atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)


def save_text_figure(text: str, path: str | os.PathLike) -> None:
    """A one-panel figure that only says `text`: a declared output with nothing to draw."""
    figure, (ax,) = panel_grid(1)
    ax.text(0.5, 0.5, text, ha="center", transform=ax.transAxes)
    ax.set_axis_off()
    save_figure(figure, path)


def beta_markers(codit_betas: pd.Series) -> dict[float, str]:
    """A marker per CoDIT beta (the paper's grid has one beta, so usually just circles)."""
    betas = sorted(codit_betas.dropna().unique())
    return {beta: BETA_MARKERS[i % len(BETA_MARKERS)] for i, beta in enumerate(betas)}


def style_handles(markers: dict[float, str], kinds: Iterable[str]) -> list[Line2D]:
    """Legend entries saying what markers and line styles mean, independent of colour."""
    kinds = set(kinds)
    handles = []
    if CODIT in kinds and len(markers) > 1:
        handles += [
            Line2D([], [], color="k", marker=marker, label=f"CoDIT β={beta:g}")
            for beta, marker in markers.items()
        ]
    elif CODIT in kinds:
        handles.append(Line2D([], [], color="k", marker="o", label="CoDIT"))
    handles += [
        Line2D([], [], color="k", linestyle=LINE_STYLES[kind], label=STYLE_NAMES[kind])
        for kind in LINE_STYLES
        if kind in kinds
    ]
    if CHAT_VECTOR in kinds:
        handles.append(
            Line2D([], [], color="k", marker=CHAT_VECTOR_MARKER, linestyle="",
                   label="chat vector (r = ratio, right edge)")
        )  # fmt: skip
    return handles


def error_bars(rows: pd.DataFrame) -> np.ndarray:
    """(2, n) distances below and above the mean: t interval across seeds, else the stderr."""
    mean, low, high = (rows[key].to_numpy(dtype=float) for key in ("mean", "low", "high"))
    stderr = np.nan_to_num(rows["stderr"].to_numpy(dtype=float))
    interval = (rows["n_seeds"].to_numpy(dtype=float) > 1) & ~np.isnan(low)
    below = np.where(interval, mean - np.nan_to_num(low), stderr)
    above = np.where(interval, np.nan_to_num(high) - mean, stderr)
    return np.vstack([below, above])


def level_line(ax: Axes, kind: str, value: float, spread: Sequence[float], colour: str) -> None:
    """A non-CoDIT arm as a horizontal line in its kind's style; direct gets a faint band."""
    if pd.isna(value):
        return  # e.g. public datasets have no token counts
    ax.axhline(value, color=colour, linestyle=LINE_STYLES[kind], linewidth=1.3)
    if kind == DIRECT_ARM and any(spread):
        ax.axhspan(value - spread[0], value + spread[1], color=colour, alpha=0.08, linewidth=0)


def codit_line(ax: Axes, rows: pd.DataFrame, colour: str, marker: str, column: str) -> None:
    """One CoDIT series against alpha, with error bars when the rows carry them."""
    rows = rows.sort_values("alpha")
    ax.errorbar(
        rows["alpha"],
        rows[column],
        yerr=error_bars(rows) if "n_seeds" in rows.columns else None,
        color=colour,
        marker=marker,
        markersize=5,
        linewidth=1.5,
        capsize=3,
    )


def chat_vector_markers(ax: Axes, rows: pd.DataFrame, colour: str) -> None:
    """Chat-vector students as markers at the right edge, labelled with their ratio."""
    to_edge = blended_transform_factory(ax.transAxes, ax.transData)
    for row in rows.itertuples(index=False):
        if pd.isna(row.mean):
            continue
        ax.plot([0.985], [row.mean], marker=CHAT_VECTOR_MARKER, color=colour, markersize=7,
                linestyle="", transform=to_edge, clip_on=False)  # fmt: skip
        ax.text(0.96, row.mean, ArmName(row.arm_name).short_label(), transform=to_edge,
                ha="right", va="center", fontsize=7, color=colour)  # fmt: skip


# --------------------------------------------------------------------------- metric vs alpha


def reference_instruct_lines(ax: Axes, rows: pd.DataFrame) -> bool:
    """Dotted grey line per reference model that belongs to a teacher pair (its instruct model)."""
    instructs = rows[(rows["arm"] == REFERENCE_ARM) & (rows["teacher_pair"] != "")]
    to_text = blended_transform_factory(ax.transAxes, ax.transData)
    for row in instructs.itertuples(index=False):
        ax.axhline(row.mean, color=REFERENCE_COLOUR, linestyle=":", linewidth=1.5)
        ax.text(
            0.99,
            row.mean,
            row.student,
            transform=to_text,
            ha="right",
            va="bottom",
            fontsize=7,
            color=REFERENCE_COLOUR,
        )
    return len(instructs) > 0


def scale_summary(rows: pd.DataFrame, percent: bool) -> pd.DataFrame:
    """Summary rows with mean, interval and stderr in percent for fraction metrics."""
    factor = 100.0 if percent else 1.0
    return rows.assign(**{key: rows[key] * factor for key in ("mean", "low", "high", "stderr")})


def student_series(ax: Axes, series: pd.DataFrame, colour: str, markers: dict) -> None:
    """Every arm of one (teacher pair, student): CoDIT curves, level lines, chat vectors."""
    for beta, codit in series[series["arm"] == CODIT].groupby("beta", sort=True):
        codit_line(ax, codit, colour, markers[beta], "mean")
    for kind in LINE_STYLES:
        level = series[series["arm"] == kind]
        for row, spread in zip(level.itertuples(index=False), error_bars(level).T, strict=True):
            level_line(ax, kind, row.mean, spread, colour)
    chat_vector_markers(ax, series[series["arm"] == CHAT_VECTOR], colour)


def metric_panel(ax: Axes, rows: pd.DataFrame, colours: dict, markers: dict) -> None:
    """One task/metric: every arm of every student, and the reference instruct models."""
    task, metric = rows["task"].iloc[0], rows["metric"].iloc[0]
    percent = shown_in_percent(task, metric, rows["mean"])
    scaled = scale_summary(rows, percent)
    for (pair, student), series in scaled.groupby(["teacher_pair", "student"], sort=True):
        if (pair, student) in colours:
            student_series(ax, series, colours[(pair, student)], markers)
    reference_instruct_lines(ax, scaled)
    configure_alpha_axis(ax, scaled.loc[scaled["arm"] == CODIT, "alpha"])
    ax.set_title(f"{task}\n{metric}", fontsize=10)
    ax.set_ylabel(f"{metric} (%)" if percent else metric, fontsize=9)
    ax.grid(alpha=0.3)


def metric_legend(
    colours: dict, markers: dict, kinds: Iterable[str], has_reference: bool
) -> list[Line2D]:
    """Legend handles: one colour per teacher pair / student, then what the line styles mean."""
    handles = [
        Line2D([], [], color=colour, linewidth=2, label=f"{pair or 'public'} → {student}")
        for (pair, student), colour in colours.items()
    ]
    handles += style_handles(markers, kinds)
    if has_reference:
        handles.append(
            Line2D(
                [],
                [],
                color=REFERENCE_COLOUR,
                linestyle=":",
                label="teacher instruct model (reference)",
            )
        )
    return handles


def plot_metric_vs_alpha(summary: pd.DataFrame, path: str | os.PathLike) -> None:
    """metric_vs_alpha.png: one panel per task/metric of the summary table (summary.csv)."""
    trained = summary[summary["arm"] != REFERENCE_ARM]
    colours = series_colours(list(trained.groupby(["teacher_pair", "student"]).groups))
    markers = beta_markers(trained.loc[trained["arm"] == CODIT, "beta"])
    groups = list(summary.groupby(["task", "metric"], sort=True))
    figure, axes = panel_grid(len(groups))
    for ax, (_, rows) in zip(axes, groups, strict=True):
        metric_panel(ax, rows, colours, markers)
    instructs = (summary["arm"] == REFERENCE_ARM) & (summary["teacher_pair"] != "")
    handles = metric_legend(colours, markers, set(trained["arm"]), bool(instructs.any()))
    finish_alpha_figure(figure, handles, "Student scores", path)


def finish_alpha_figure(
    figure: Figure, handles: list[Line2D], what: str, path: str | os.PathLike
) -> None:
    """The legend and title every figure against alpha shares; then save it."""
    figure.legend(
        handles=handles, loc="outside lower center", ncol=min(4, len(handles)), fontsize=8
    )
    figure.suptitle(
        f"{what} against CoDIT's α (same colour: same teacher pair and student)\n"
        "bars and bands: 95% t interval across seeds, or ± 1 stderr for a single seed",
        fontsize=11,
    )
    save_figure(figure, path)


# --------------------------------------------------------------------------- judged vs alpha

# The paper's comparison against alpha: CoDIT's curve and the direct baseline it must beat.
JUDGED_ARMS = (DIRECT_ARM, CODIT)
NO_JUDGED = "no judged benchmark in this run"


def judged_panels(summary: pd.DataFrame) -> list[tuple[PaperColumn, pd.DataFrame]]:
    """(column, its CoDIT and direct summary rows) of each judged headline metric present."""
    arms = summary[summary["arm"].isin(JUDGED_ARMS)]
    panels = []
    for column in PAPER_COLUMNS:
        rows = arms[(arms["task"] == column.task) & (arms["metric"] == column.metric)]
        if not rows.empty:
            panels.append((column, rows))
    return panels


def plot_judged_vs_alpha(summary: pd.DataFrame, path: str | os.PathLike) -> None:
    """judged_vs_alpha.png: each judged headline metric (AE2 LC and WR, MT-Bench, WB-Score)
    against alpha, a colour per (teacher pair, student), direct as its dashed level; a figure
    that says so when no judged benchmark ran (the report always declares this output)."""
    panels = judged_panels(summary)
    if not panels:
        save_text_figure(NO_JUDGED, path)
        return
    shown = pd.concat([rows for _, rows in panels])
    colours = series_colours(list(shown.groupby(["teacher_pair", "student"]).groups))
    markers = beta_markers(shown.loc[shown["arm"] == CODIT, "beta"])
    figure, axes = panel_grid(len(panels), columns=len(panels))
    for ax, (column, rows) in zip(axes, panels, strict=True):
        metric_panel(ax, rows, colours, markers)
        ax.set_title(f"{column.label}\n{column.task}/{column.metric}", fontsize=10)
        ax.set_ylabel(column.label, fontsize=9)
    handles = metric_legend(colours, markers, set(shown["arm"]), has_reference=False)
    finish_alpha_figure(figure, handles, "Judged benchmarks", path)


# --------------------------------------------------------------------------- length vs alpha


def seed_means(datasets: pd.DataFrame) -> pd.DataFrame:
    """Each dataset statistic averaged over seeds; public datasets copied to every pair."""
    keys = ["pair", "arm", "arm_name", "alpha", "beta"]
    shown = datasets.assign(
        length_share=datasets["length_share"] * 100,
        repeated_4gram_share=datasets["repeated_4gram_share"] * 100,
    )
    means = shown.groupby(keys, dropna=False, sort=True)[list(DATASET_STATISTICS)].mean()
    return broadcast_public(means.reset_index(), pair="pair")


def length_panel(
    ax: Axes, datasets: pd.DataFrame, column: str, colours: dict, markers: dict
) -> None:
    """One dataset statistic against alpha per teacher pair; other arms as level lines."""
    for pair, rows in datasets.groupby("pair", sort=True):
        colour = colours[(pair,)]
        for beta, codit in rows[rows["arm"] == CODIT].groupby("beta", sort=True):
            codit_line(ax, codit, colour, markers[beta], column)
        for kind in LINE_STYLES:
            for value in rows.loc[rows["arm"] == kind, column]:
                level_line(ax, kind, value, (0.0, 0.0), colour)
    configure_alpha_axis(ax, datasets.loc[datasets["arm"] == CODIT, "alpha"])
    ax.grid(alpha=0.3)


PANEL_TEXTS = {
    "tokens_mean": ("response length", "mean completion tokens"),
    "length_share": ("responses cut at max new tokens", "finish reason 'length' (%)"),
    "repeated_4gram_share": ("repetition", "repeated 4-gram share (%)"),
}


def plot_length_vs_alpha(datasets: pd.DataFrame, path: str | os.PathLike) -> None:
    """length_vs_alpha.png: mean completion tokens, truncated share and repeated 4-gram share
    of the generated datasets (mean over seeds) against alpha."""
    figure, axes = panel_grid(len(DATASET_STATISTICS))
    if datasets.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "no dataset cards", transform=ax.transAxes, ha="center")
            ax.set_xticks([])
    else:
        shown = seed_means(datasets)
        colours = series_colours([(pair,) for pair in shown["pair"].unique()])
        markers = beta_markers(shown.loc[shown["arm"] == CODIT, "beta"])
        for ax, column in zip(axes, DATASET_STATISTICS, strict=True):
            length_panel(ax, shown, column, colours, markers)
        for ax in axes[1:]:
            ax.set_ylim(bottom=0)
        handles = [
            Line2D([], [], color=c, linewidth=2, label=pair or "public")
            for (pair,), c in colours.items()
        ]
        handles += style_handles(markers, set(shown["arm"]))
        figure.legend(
            handles=handles, loc="outside lower center", ncol=min(5, len(handles)), fontsize=8
        )
    for ax, column in zip(axes, DATASET_STATISTICS, strict=True):
        title, label = PANEL_TEXTS[column]
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(label)
    figure.suptitle("Generated datasets against CoDIT's α (mean over seeds)")
    save_figure(figure, path)


# --------------------------------------------------------------------------- paired heat map


def heatmap_panel(ax: Axes, rows: pd.DataFrame, scale: float, limit: float) -> object | None:
    """Teacher pairs x students, coloured by CoDIT minus direct; * where 0 is outside the CI.
    None (and a note) when this arm was not paired on this metric (e.g. never judged on it)."""
    if rows.empty:
        ax.text(0.5, 0.5, "not paired", ha="center", transform=ax.transAxes, color="0.5")
        ax.set_xticks([])
        ax.set_yticks([])
        return None
    pairs = sorted(rows["teacher_pair"].unique())
    students = sorted(rows["student"].unique())
    grid = np.full((len(pairs), len(students)), np.nan)
    for row in rows.itertuples(index=False):
        i, j = pairs.index(row.teacher_pair), students.index(row.student)
        grid[i, j] = scale * row.difference
        mark = "*" if row.low > 0 or row.high < 0 else ""
        dark = abs(scale * row.difference) > 0.6 * limit  # white text on the strongest colours
        ax.text(j, i, f"{scale * row.difference:+.1f}{mark}", ha="center", va="center",
                fontsize=9, color="white" if dark else "black")  # fmt: skip
    image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(students)), students, rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(len(pairs)), pairs, fontsize=8)
    return image


def plot_paired_heatmap(paired: pd.DataFrame, path: str | os.PathLike) -> None:
    """paired_heatmap.png: CoDIT minus direct (paired bootstrap) per teacher pair and student,
    one panel per metric (rows) and CoDIT arm (columns); percentage points for fractions."""
    groups = list(paired.groupby(["task", "metric"], sort=True))
    arms = paired.drop_duplicates("arm").sort_values(["alpha", "beta"])
    if not groups:
        save_text_figure("no CoDIT arm paired with a direct arm", path)
        return
    figure, axes = panel_grid(len(groups) * len(arms), columns=len(arms))
    limit = 1e-9
    scales = {}
    for key, rows in groups:
        both = pd.concat([rows["direct"], rows["codit"]])
        scales[key] = 100.0 if shown_in_percent(*key, both) else 1.0
        limit = max(limit, float((scales[key] * rows["difference"]).abs().max()))
    image = None
    panels = iter(axes)
    for (task, metric), rows in groups:
        for arm in arms.itertuples(index=False):
            ax = next(panels)
            drawn = heatmap_panel(ax, rows[rows["arm"] == arm.arm], scales[(task, metric)], limit)
            image = drawn or image
            setting = f"α={format_number(arm.alpha)}"
            if arms["beta"].nunique() > 1:
                setting += f" β={format_number(arm.beta)}"
            ax.set_title(f"{task}/{metric}\n{setting}", fontsize=9)
    figure.colorbar(image, ax=axes, shrink=0.6, label="CoDIT − direct (pp for fractions)")
    figure.suptitle(
        "CoDIT minus direct generation per teacher pair and student (* : 95% CI excludes 0)"
    )
    save_figure(figure, path)


# --------------------------------------------------------------------------- verdicts

# A best-alpha row reads `alpha=X best` or `alpha=X worse` (the row's own alpha).
VERDICT_COLOURS = {"better": "tab:green", "best": "tab:green", "worse": "tab:red"}
NO_VERDICT = "no verdict with an interval in this run (one world, or no data)"


def verdict_colour(verdict: str) -> str:
    """Green for a decided gain, red for a decided loss, grey for undecided."""
    return next((c for word, c in VERDICT_COLOURS.items() if word in verdict), "0.45")


def verdict_title(row: Verdict) -> str:
    """A verdict row's tick label: the claim, then what it compares."""
    compared = baseline_label(row)
    return f"{row.claim}\n{compared if row.claim == CLAIM_ALPHA else 'vs ' + compared}"


def verdict_panel(ax: Axes, rows: Sequence) -> None:
    """One metric: per verdict row its interval across worlds, estimate and per-world dots."""
    scale = 100.0 if rows[0].percent else 1.0
    for y, row in enumerate(rows):
        colour = verdict_colour(row.verdict)
        ax.plot([row.low * scale, row.high * scale], [y, y], color=colour, linewidth=2.5)
        ax.plot(row.estimate * scale, y, "o", color=colour, markersize=7)
        worlds = [value * scale for value in row.per_world.values()]
        ax.plot(worlds, [y + 0.22] * len(worlds), "|", color="0.2", markersize=7)
    ax.axvline(0.0, color="0.3", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [verdict_title(row) for row in rows])
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylim(len(rows) - 0.4, -0.6)  # first claim on top, room for the world ticks
    ax.set_title(rows[0].label, fontsize=10)
    alphas = any(row.claim == CLAIM_ALPHA for row in rows)
    direction = "better for CoDIT" + (" (best alpha: for the row's α)" if alphas else "")
    ax.set_xlabel(direction + " →" + (" (points)" if rows[0].percent else ""), fontsize=8)
    ax.grid(alpha=0.3, axis="x")


def plot_verdicts(verdicts: Iterable, path: str | os.PathLike) -> None:
    """verdicts.png: a panel per metric of the verdicts with an interval
    (codit.report.verdicts.Verdict rows), in the order the claims come; a figure that says so
    when there is none."""
    by_label: dict[str, list] = {}
    for verdict in verdicts:
        if verdict.per_world and not math.isnan(verdict.low):
            by_label.setdefault(verdict.label, []).append(verdict)
    if not by_label:
        save_text_figure(NO_VERDICT, path)
        return
    columns = min(3, len(by_label))
    rows_needed = max(len(rows) for rows in by_label.values())
    figure, axes = panel_grid(len(by_label), columns=columns)
    figure.set_size_inches(
        5.2 * columns, (0.45 * rows_needed + 1.4) * math.ceil(len(by_label) / columns)
    )
    for ax, rows in zip(axes, by_label.values(), strict=False):
        verdict_panel(ax, rows)
    figure.suptitle(
        "Verdicts: mean effect across worlds (dot), its 95% t interval across worlds (bar) and "
        "each world's effect (ticks)\ngreen: CoDIT better, red: worse, grey: undecided",
        fontsize=10,
    )
    save_figure(figure, path)
