"""Figures of the report: metrics and response length against CoDIT's alpha, and a heat map of
CoDIT minus direct per teacher pair and student.

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

from codit.naming import format_number
from codit.provenance import atomic_path
from codit.tables import REFERENCE_ARM, is_fraction_metric

DPI = 100
PANEL_SIZE = (4.4, 3.3)  # inches per panel
MAX_COLUMNS = 3
BETA_MARKERS = ["o", "s", "^", "D", "v", "P"]
REFERENCE_COLOUR = "0.45"
ALPHA_LABEL = "CoDIT α (plausibility threshold)"


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


def beta_markers(codit_betas: pd.Series) -> dict[float, str]:
    """A marker per CoDIT beta (the paper's grid has one beta, so usually just circles)."""
    betas = sorted(codit_betas.dropna().unique())
    return {beta: BETA_MARKERS[i % len(BETA_MARKERS)] for i, beta in enumerate(betas)}


def style_handles(markers: dict[float, str], has_direct: bool) -> list[Line2D]:
    """Legend entries saying what markers and dashes mean, independent of colour."""
    if len(markers) > 1:
        handles = [
            Line2D([], [], color="k", marker=marker, label=f"CoDIT β={beta:g}")
            for beta, marker in markers.items()
        ]
    else:
        handles = [Line2D([], [], color="k", marker="o", label="CoDIT")]
    if has_direct:
        handles.append(Line2D([], [], color="k", linestyle="--", label="direct generation"))
    return handles


def baseline_line(ax: Axes, value: float, stderr: float, colour: str) -> None:
    """The direct-generation baseline: dashed line, a faint band of one stderr around it."""
    ax.axhline(value, color=colour, linestyle="--", linewidth=1.3)
    if not pd.isna(stderr):
        ax.axhspan(value - stderr, value + stderr, color=colour, alpha=0.08, linewidth=0)


def codit_line(ax: Axes, rows: pd.DataFrame, colour: str, marker: str) -> None:
    """One CoDIT series: value against alpha with stderr bars where lm-eval gave one."""
    rows = rows.sort_values("alpha")
    errors = rows["stderr"].to_numpy(dtype=float)
    ax.errorbar(
        rows["alpha"],
        rows["value"],
        yerr=np.where(np.isnan(errors), 0.0, errors),
        color=colour,
        marker=marker,
        markersize=5,
        linewidth=1.5,
        capsize=3,
    )


# --------------------------------------------------------------------------- metric vs alpha


def reference_instruct_lines(ax: Axes, rows: pd.DataFrame) -> bool:
    """Dotted grey line per reference model that belongs to a teacher pair (its instruct model)."""
    instructs = rows[(rows["arm"] == REFERENCE_ARM) & (rows["teacher_pair"] != "")]
    to_text = blended_transform_factory(ax.transAxes, ax.transData)
    for row in instructs.itertuples(index=False):
        ax.axhline(row.value, color=REFERENCE_COLOUR, linestyle=":", linewidth=1.5)
        ax.text(
            0.99,
            row.value,
            row.student,
            transform=to_text,
            ha="right",
            va="bottom",
            fontsize=7,
            color=REFERENCE_COLOUR,
        )
    return len(instructs) > 0


def metric_panel(ax: Axes, rows: pd.DataFrame, colours: dict, markers: dict) -> None:
    """One task/metric: CoDIT lines, direct baselines and reference instruct models."""
    percent = is_fraction_metric(rows["value"])
    scaled = rows.assign(
        value=rows["value"] * (100 if percent else 1),
        stderr=rows["stderr"] * (100 if percent else 1),
    )
    for (pair, student), series in scaled.groupby(["teacher_pair", "student"], sort=True):
        if (pair, student) not in colours:
            continue
        colour = colours[(pair, student)]
        for beta, codit in series[series["arm"] == "codit"].groupby("beta", sort=True):
            codit_line(ax, codit, colour, markers[beta])
        for direct in series[series["arm"] == "direct"].itertuples(index=False):
            baseline_line(ax, direct.value, direct.stderr, colour)
    reference_instruct_lines(ax, scaled)
    configure_alpha_axis(ax, scaled.loc[scaled["arm"] == "codit", "alpha"])
    task, metric = rows["task"].iloc[0], rows["metric"].iloc[0]
    ax.set_title(f"{task}\n{metric}", fontsize=10)
    ax.set_ylabel(f"{metric} (%)" if percent else metric, fontsize=9)
    ax.grid(alpha=0.3)


def metric_legend(
    colours: dict, markers: dict, has_direct: bool, has_reference: bool
) -> list[Line2D]:
    """Legend handles: one colour per teacher pair / student, then what the line styles mean."""
    handles = [
        Line2D([], [], color=colour, linewidth=2, label=f"{pair} → {student}")
        for (pair, student), colour in colours.items()
    ]
    handles += style_handles(markers, has_direct)
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


def plot_metric_vs_alpha(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """metric_vs_alpha.png: one panel per task/metric of the tidy table."""
    trained = table[table["arm"] != REFERENCE_ARM]
    colours = series_colours(list(trained.groupby(["teacher_pair", "student"]).groups))
    markers = beta_markers(trained.loc[trained["arm"] == "codit", "beta"])
    groups = list(table.groupby(["task", "metric"], sort=True))
    figure, axes = panel_grid(len(groups))
    for ax, (_, rows) in zip(axes, groups, strict=True):
        metric_panel(ax, rows, colours, markers)
    has_reference = bool(((table["arm"] == REFERENCE_ARM) & (table["teacher_pair"] != "")).any())
    has_direct = bool((table["arm"] == "direct").any())
    figure.legend(
        handles=metric_legend(colours, markers, has_direct, has_reference),
        loc="outside lower center",
        ncol=min(4, len(colours) + 3),
        fontsize=8,
    )
    figure.suptitle("Student scores against CoDIT's α (dashed: students of direct generation)")
    save_figure(figure, path)


# --------------------------------------------------------------------------- length vs alpha


def length_panel(
    ax: Axes, datasets: pd.DataFrame, column: str, colours: dict, markers: dict
) -> None:
    """One dataset statistic against alpha per teacher pair; direct as a dashed line."""
    for pair, rows in datasets.groupby("pair", sort=True):
        colour = colours[(pair,)]
        for beta, codit in rows[rows["arm"] == "codit"].groupby("beta", sort=True):
            codit = codit.sort_values("alpha")
            ax.plot(
                codit["alpha"],
                codit[column],
                color=colour,
                marker=markers[beta],
                linewidth=1.5,
                markersize=5,
            )
        for value in rows.loc[rows["arm"] == "direct", column]:
            ax.axhline(value, color=colour, linestyle="--", linewidth=1.3)
    configure_alpha_axis(ax, datasets.loc[datasets["arm"] == "codit", "alpha"])
    ax.grid(alpha=0.3)


def plot_length_vs_alpha(datasets: pd.DataFrame, path: str | os.PathLike) -> None:
    """length_vs_alpha.png: mean completion tokens and share of length-truncated responses."""
    figure, (tokens_ax, truncated_ax) = panel_grid(2)
    if datasets.empty:
        for ax in (tokens_ax, truncated_ax):
            ax.text(0.5, 0.5, "no dataset cards", transform=ax.transAxes, ha="center")
            ax.set_xticks([])
    else:
        shown = datasets.assign(length_share=datasets["length_share"] * 100)
        colours = series_colours([(pair,) for pair in shown["pair"].unique()])
        markers = beta_markers(shown.loc[shown["arm"] == "codit", "beta"])
        length_panel(tokens_ax, shown, "tokens_mean", colours, markers)
        length_panel(truncated_ax, shown, "length_share", colours, markers)
        truncated_ax.set_ylim(bottom=0)
        handles = [
            Line2D([], [], color=c, linewidth=2, label=pair) for (pair,), c in colours.items()
        ]
        handles += style_handles(markers, bool((shown["arm"] == "direct").any()))
        figure.legend(
            handles=handles, loc="outside lower center", ncol=min(5, len(handles)), fontsize=8
        )
    tokens_ax.set_title("response length", fontsize=10)
    tokens_ax.set_ylabel("mean completion tokens")
    truncated_ax.set_title("responses cut at max new tokens", fontsize=10)
    truncated_ax.set_ylabel("finish reason 'length' (%)")
    figure.suptitle("Generated datasets against CoDIT's α")
    save_figure(figure, path)


# --------------------------------------------------------------------------- paired heat map


def heatmap_panel(ax: Axes, rows: pd.DataFrame, scale: float, limit: float) -> object:
    """Teacher pairs x students, coloured by CoDIT minus direct; * where 0 is outside the CI."""
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
        figure, (ax,) = panel_grid(1)
        ax.text(0.5, 0.5, "no CoDIT arm paired with a direct arm", ha="center",
                transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        save_figure(figure, path)
        return
    figure, axes = panel_grid(len(groups) * len(arms), columns=len(arms))
    limit = 1e-9
    scales = {}
    for key, rows in groups:
        scales[key] = (
            100.0 if is_fraction_metric(pd.concat([rows["direct"], rows["codit"]])) else 1.0
        )
        limit = max(limit, float((scales[key] * rows["difference"]).abs().max()))
    image = None
    panels = iter(axes)
    for (task, metric), rows in groups:
        for arm in arms.itertuples(index=False):
            ax = next(panels)
            image = heatmap_panel(ax, rows[rows["arm"] == arm.arm], scales[(task, metric)], limit)
            setting = f"α={format_number(arm.alpha)}"
            if arms["beta"].nunique() > 1:
                setting += f" β={format_number(arm.beta)}"
            ax.set_title(f"{task}/{metric}\n{setting}", fontsize=9)
    figure.colorbar(image, ax=axes, shrink=0.6, label="CoDIT − direct (pp for fractions)")
    figure.suptitle(
        "CoDIT minus direct generation per teacher pair and student (* : 95% CI excludes 0)"
    )
    save_figure(figure, path)
