# The paper's tables and figures, from every evaluation and every dataset card.


rule report:
    input:
        evaluations=student_evaluations() + reference_evaluations(),
        cards=dataset_cards(),
        # per-item scores, for the paired bootstrap of CoDIT against direct
        samples=student_sample_dirs(),
    output:
        table=report(
            "results/tables/main.csv",
            caption="../report/main_table.rst",
            category="Tables",
            labels={"table": "main (tidy CSV)"},
        ),
        markdown=report(
            "results/tables/main.md",
            caption="../report/main_table.rst",
            category="Tables",
            labels={"table": "main (Markdown)"},
        ),
        latex="results/tables/main.tex",
        summary=report(
            "results/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "mean and 95% interval across seeds"},
        ),
        paired=report(
            "results/tables/paired.md",
            caption="../report/paired.rst",
            category="Tables",
            labels={"table": "CoDIT - direct, paired"},
        ),
        paired_csv="results/tables/paired.csv",
        datasets=report(
            "results/tables/datasets.csv",
            caption="../report/datasets.rst",
            category="Tables",
            labels={"table": "datasets"},
        ),
        metric_figure=report(
            "results/figures/metric_vs_alpha.png",
            caption="../report/metric_vs_alpha.rst",
            category="Figures",
            labels={"figure": "metric vs alpha"},
        ),
        length_figure=report(
            "results/figures/length_vs_alpha.png",
            caption="../report/length_vs_alpha.rst",
            category="Figures",
            labels={"figure": "length vs alpha"},
        ),
        heatmap_figure=report(
            "results/figures/paired_heatmap.png",
            caption="../report/paired_heatmap.rst",
            category="Figures",
            labels={"figure": "CoDIT - direct heat map"},
        ),
        provenance="results/report_provenance.json",
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv"
    localrule: True
    conda:
        ENV
    shell:
        "codit report --evals {input.evaluations} --cards {input.cards} --out-dir results"
        " > {log} 2>&1"
