# The paper's tables and figures, from every evaluation and every dataset card.


rule report:
    input:
        evaluations=student_evaluations()
        + reference_evaluations()
        + judged_outputs("scores.json"),
        cards=dataset_cards(),
        # per-item scores, for the paired bootstrap of CoDIT against direct
        samples=student_sample_dirs() + judged_outputs("samples.jsonl"),
    output:
        table=report(
            report_path("table"),
            caption="../report/main_table.rst",
            category="Tables",
            labels={"table": "main (tidy CSV)"},
        ),
        markdown=report(
            report_path("markdown"),
            caption="../report/main_table.rst",
            category="Tables",
            labels={"table": "main (Markdown)"},
        ),
        latex=report_path("latex"),
        summary=report(
            report_path("summary"),
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "mean and 95% interval across seeds"},
        ),
        paired=report(
            report_path("paired"),
            caption="../report/paired.rst",
            category="Tables",
            labels={"table": "CoDIT - direct, paired"},
        ),
        paired_csv=report_path("paired_csv"),
        verdicts=report(
            report_path("verdicts"),
            caption="../report/verdicts.rst",
            category="Tables",
            labels={"table": "verdicts across worlds"},
        ),
        verdicts_csv=report_path("verdicts_csv"),
        datasets=report(
            report_path("datasets"),
            caption="../report/datasets.rst",
            category="Tables",
            labels={"table": "datasets"},
        ),
        metric_figure=report(
            report_path("metric_figure"),
            caption="../report/metric_vs_alpha.rst",
            category="Figures",
            labels={"figure": "metric vs alpha"},
        ),
        length_figure=report(
            report_path("length_figure"),
            caption="../report/length_vs_alpha.rst",
            category="Figures",
            labels={"figure": "length vs alpha"},
        ),
        heatmap_figure=report(
            report_path("heatmap_figure"),
            caption="../report/paired_heatmap.rst",
            category="Figures",
            labels={"figure": "CoDIT - direct heat map"},
        ),
        judged_figure=report(
            report_path("judged_figure"),
            caption="../report/judged_vs_alpha.rst",
            category="Figures",
            labels={"figure": "judged benchmarks vs alpha"},
        ),
        verdicts_figure=report(
            report_path("verdicts_figure"),
            caption="../report/verdicts.rst",
            category="Figures",
            labels={"figure": "verdicts across worlds"},
        ),
        provenance=report_path("provenance"),
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv"
    localrule: True
    conda:
        ENV
    shell:
        "codit report --evals {input.evaluations} --cards {input.cards} --out-dir "
        + REPORT_DIR
        + " > {log} 2>&1"
