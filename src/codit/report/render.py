"""The report's tables as Markdown (main.md) and LaTeX (main.tex): the metric tables, the alpha
selection and the paper's table of codit.report.pivots."""

from __future__ import annotations

from codit.report.pivots import (
    ArmName,
    MetricTable,
    PaperStyle,
    PaperTable,
    caption_note,
    format_cell,
    format_value,
    latex_escape,
    paper_block_rows,
    paper_block_title,
    row_cells,
)
from codit.report.tables import MISSING_CELL, SELECTED_ARM
from codit.workflow.naming import (
    format_number,
)

# --------------------------------------------------------------------------- Markdown


def markdown_grid(header: list[str], body: list[list[str]], numeric_from: int) -> str:
    """A pipe table with columns padded to equal width; numeric columns right-aligned."""
    # A "|" inside a name would end the cell early.
    header, *body = [[cell.replace("|", r"\|") for cell in row] for row in [header, *body]]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(width) if i >= numeric_from else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    # Each rule segment spans the cell and its two padding spaces; ":" marks right alignment.
    rule = [
        "-" * (width + 1) + ":" if i >= numeric_from else "-" * (width + 2)
        for i, width in enumerate(widths)
    ]
    return "\n".join([line(header), "|" + "|".join(rule) + "|", *map(line, body)])


def markdown_reference_table(table: MetricTable) -> str:
    body = [
        [
            row.student,
            row.teacher_pair or MISSING_CELL,
            format_value(row.value, row.stderr, table.percent, " ± "),
        ]
        for row in table.references.itertuples(index=False)
    ]
    return markdown_grid(["reference model", "teacher pair", table.metric], body, numeric_from=2)


ROW_HEADER = ["teacher pair", "student", "architecture"]


def markdown_metric_section(table: MetricTable) -> str:
    """Heading, arm comparison and reference models of one metric."""
    parts = [f"## {table.title} ({caption_note(table)})", ""]
    if table.arms:
        header = ROW_HEADER + [arm.label(table.show_beta) for arm in table.arms]
        body = row_cells(table, " ± ", "→", "**{}**")
        parts += [markdown_grid(header, body, numeric_from=len(ROW_HEADER)), ""]
    if len(table.references):
        parts += [
            "Reference models (untouched checkpoints):",
            "",
            markdown_reference_table(table),
            "",
        ]
    return "\n".join(parts)


MARKDOWN_LEGEND = [
    "Rows: teacher pair and student, with their architectures (teacher → student; `cross` when",
    "they differ). Columns: how the student was obtained: `direct` = fine-tuned on plain samples",
    "of the teacher's instruct model; `best-of-N (judge)` = on the best of N direct samples by an",
    "LLM judge; `best-of-N (oracle)` = by an oracle that knows the benchmark's truth (an upper",
    "bound, not a fair baseline); `public: <name>` = on a public instruction dataset (the same",
    "students for every teacher pair); `α` = on CoDIT data with that plausibility threshold;",
    "`chat vector r` = no training, the student plus r × (post − pre) of the teacher (same",
    "architecture only).",
    "Cells: with several training seeds, `mean [low, high]` = the mean across seeds and its 95%",
    "Student-t interval; with one seed, value ± standard error from lm-evaluation-harness (no ±",
    "when it is unknown). – : arm not available for that student. The best arm per row (by the",
    "mean, oracle arms left out) is in **bold**.",
]
SELECTION_LEGEND = [
    "`CoDIT (selected α)` = the row's CoDIT arm whose α has the best mean on the selection",
    "metric (MT-Bench, as in the paper; see the selection table), shown on every metric; its α",
    "is in brackets.",
]


def markdown_selection_section(table: MetricTable) -> str:
    """Which alpha each row's selection metric (`table`) chose, with the metric's cell."""
    selected_on, column = table.title, ArmName(SELECTED_ARM)
    body = [
        [pair, student, format_number(alpha),
         format_cell(table.cell((pair, student), column), table.percent, " ± ")]
        for (pair, student), alpha in sorted(table.selected_alpha.items())
    ]  # fmt: skip
    grid = markdown_grid(["teacher pair", "student", "selected α", selected_on], body, 2)
    return f"## CoDIT α selected on {selected_on} (per row, best mean across seeds)\n\n{grid}\n"


MARKDOWN_PAPER = PaperStyle(plus_minus=" ± ", bold="**{}**", missing=MISSING_CELL, latex=False)
PAPER_LEGEND = [
    "As in the paper: one table per teacher pair and student; rows are how the student was",
    "obtained (the arms of the sections below), then the untouched reference models; cells as",
    "below (mean [95% t interval] across seeds, or value ± standard error for one seed), the",
    "best arm per table and column (oracle arms aside) in **bold**. Columns:",
]


def markdown_paper_section(paper: PaperTable) -> str:
    """The paper's table: legend, AlpacaEval's verdict note, then one table per block."""
    parts = ["## Paper table: judged benchmarks per teacher pair and student", "", *PAPER_LEGEND]
    parts += [f"`{column.label}` = {column.description};" for column in paper.columns]
    parts[-1] = parts[-1].removesuffix(";") + "."
    parts += ["", paper.verdicts, ""] if paper.verdicts else [""]
    parts += [paper.partial, ""] if paper.partial else []
    header = ["arm", *(column.label for column in paper.columns)]
    for block in paper.blocks:
        body = paper_block_rows(paper, block, MARKDOWN_PAPER)
        parts += [f"### {paper_block_title(paper, block, '→')}", "",
                  markdown_grid(header, body, numeric_from=1), ""]  # fmt: skip
    return "\n".join(parts)


def render_markdown(
    tables: list[MetricTable],
    selection: MetricTable | None = None,
    paper: PaperTable | None = None,
    verdicts: str | None = None,
) -> str:
    """The whole main.md: a short legend, the claims' verdicts (`verdicts`, a rendered section of
    codit.report.verdicts, if any), the alpha selection (the selection metric's table, if any), the
    paper's table of the judged benchmarks (if any), then one section per metric."""
    intro = ["# CoDIT reproduction: evaluation results", "", *MARKDOWN_LEGEND, ""]
    if selection is not None:
        intro[-1:] = [*SELECTION_LEGEND, ""]
    if verdicts:
        intro.append(verdicts)
    if selection is not None:
        intro.append(markdown_selection_section(selection))
    if paper is not None:
        intro.append(markdown_paper_section(paper))
    return "\n".join(intro + [markdown_metric_section(table) for table in tables]).rstrip() + "\n"


# --------------------------------------------------------------------------- LaTeX


def _latex_cells(table: MetricTable) -> list[list[str]]:
    body = []
    for row in row_cells(table, r" $\pm$ ", r"$\rightarrow$", r"\textbf{{{}}}"):
        escaped = [latex_escape(text) for text in row[:2]]
        # The architecture's arrow is already LaTeX; names inside it are plain words.
        escaped.append(row[2].replace("_", r"\_").replace(MISSING_CELL, "--"))
        escaped += [cell.replace(MISSING_CELL, "--").replace("α", r"$\alpha$") for cell in row[3:]]
        body.append(escaped)
    return body


def latex_tabular(header: list[str], body: list[list[str]], text_columns: int) -> list[str]:
    """A booktabs tabular: text columns left-aligned, numbers right-aligned."""
    return latex_tabular_lines(header, [latex_row(row) for row in body], text_columns)


def latex_row(cells: list[str]) -> str:
    return " & ".join(cells) + r" \\"


def latex_tabular_lines(header: list[str], lines: list[str], text_columns: int) -> list[str]:
    """A booktabs tabular around body lines already written (rows, rules, block headings)."""
    spec = "l" * text_columns + "r" * (len(header) - text_columns)
    # Shrink a tabular wider than the text (many alphas and betas), never enlarge a narrow one.
    return [
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        latex_row(header),
        r"\midrule",
        *lines,
        r"\bottomrule",
        r"\end{tabular}}",
    ]


def latex_metric_table(table: MetricTable) -> str:
    """One table float per metric: the arm comparison, then the reference models."""
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small"]
    if table.arms:
        header = ROW_HEADER + [arm.label(table.show_beta, latex=True) for arm in table.arms]
        lines += latex_tabular(header, _latex_cells(table), text_columns=len(ROW_HEADER))
    if len(table.references):
        body = [
            [
                latex_escape(row.student),
                latex_escape(row.teacher_pair) or "--",
                format_value(row.value, row.stderr, table.percent, r" $\pm$ ").replace(
                    MISSING_CELL, "--"
                ),
            ]
            for row in table.references.itertuples(index=False)
        ]
        header = ["reference model", "teacher pair", latex_escape(table.metric)]
        lines += [r"\par\medskip"] + latex_tabular(header, body, text_columns=2)
    note = latex_escape(caption_note(table))
    spread = r"$\pm$ one standard error"
    if table.has_intervals():
        spread = r"mean [95\% t interval] across seeds, or " + spread + " for one seed"
    caption = (
        f"{latex_escape(table.title)} ({note}); best arm per row (oracle arms aside) in bold, "
        f"{spread}."
    )
    lines += [rf"\caption{{{caption}}}", r"\end{table}"]
    return "\n".join(lines)


LATEX_PAPER = PaperStyle(plus_minus=r" $\pm$ ", bold=r"\textbf{{{}}}", missing="--", latex=True)


def latex_paper_table(paper: PaperTable, pair: str) -> str:
    """One teacher pair's part of the paper's table: a float with a block per student."""
    header = ["arm", *(latex_escape(column.label) for column in paper.columns)]
    lines: list[str] = []
    for block in (block for block in paper.blocks if block[0] == pair):
        title = latex_escape(paper_block_title(paper, block, "→")).replace("→", r"$\rightarrow$")
        if lines:
            lines.append(r"\midrule")
        heading = rf"\multicolumn{{{len(header)}}}{{l}}{{\textit{{{title}}}}}"
        lines += [latex_row([heading])]
        lines += [latex_row(row) for row in paper_block_rows(paper, block, LATEX_PAPER)]
    columns = "; ".join(f"{column.label}: {column.description}" for column in paper.columns)
    caption = (
        f"Judged benchmarks as in the paper, teacher pair {pair or 'none'} ({columns}); "
        "mean [95% t interval] across seeds, or value ± one standard error for one seed; best "
        f"arm per student and column (oracle arms aside) in bold. {paper.verdicts} {paper.partial}"
    )
    caption = latex_escape(caption.strip()).replace("±", r"$\pm$")
    return "\n".join([
        r"\begin{table}[htbp]", r"\centering", r"\small",
        *latex_tabular_lines(header, lines, text_columns=1),
        rf"\caption{{{caption}}}", r"\end{table}",
    ])  # fmt: skip


def render_latex(tables: list[MetricTable], paper: PaperTable | None = None) -> str:
    """A standalone document (article, booktabs, graphicx) holding the paper's table (one float
    per teacher pair, if any judged benchmark ran), then one table float per metric."""
    preamble = [
        "% Generated by `codit report`; compiles on its own (pdflatex main.tex).",
        r"\documentclass{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage[margin=2cm]{geometry}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\begin{document}",
        "",
    ]
    pairs = sorted({pair for pair, _ in paper.blocks}) if paper is not None else []
    body = [latex_paper_table(paper, pair) + "\n" for pair in pairs if paper is not None]
    body += [latex_metric_table(table) + "\n" for table in tables]
    return "\n".join(preamble + body + [r"\end{document}", ""])
