# Judged benchmarks beside the lm-eval tasks: MT-Bench for every evaluated model (its two turns
# answered with the model, graded by the config's `judge`). On only with evaluation.mt_bench.
# The judging job writes an evaluation-shaped scores file, which the report reads beside the
# lm-eval results (labels from the answers' card, per-question samples for the bootstrap).


rule fetch_mtbench:
    output:
        directory(f"{HUB_CACHE}/mt_bench"),
    log:
        "logs/mtbench/fetch.log",
    benchmark:
        "benchmarks/mtbench/fetch.tsv"
    localrule: True  # FastChat's data is downloaded here, on the login node
    conda:
        ENV
    shell:
        f"{FETCH_ENV}codit mtbench fetch --out {{output}} > {{log}} 2>&1"


rule mtbench_answer_student:
    input:
        model=f"{SFT_DIR}/merged",
        bench=MT_BENCH_FOLDER,
        teacher=teacher_model,
    output:
        answers=f"{EVAL_TRAINED}.mt_bench/answers.jsonl",
        card=f"{EVAL_TRAINED}.mt_bench/answers.card.json",
    log:
        f"logs/mtbench/{TRAINED_ID}.answer.log",
    benchmark:
        f"benchmarks/mtbench/{TRAINED_ID}.answer.tsv"
    wildcard_constraints:
        arm=DATASET_ARMS,
    conda:
        ENV
    threads: stage_threads("evaluate")
    resources:
        gpu=student_gpus,
        mem_mb=stage_mem_mb("evaluate"),
        runtime=stage_runtime("evaluate"),
    params:
        settings=mt_bench_answer_settings(),
        labels=student_labels,
        model_flags=student_model_flags,
    shell:
        OFFLINE_ENV
        + "codit mtbench answer --model {input.model} --bench {input.bench} {params.settings}"
        " {params.labels} {params.model_flags} --threads {threads}"
        " --out {output.answers} --card {output.card} > {log} 2>&1"


use rule mtbench_answer_student as mtbench_answer_chatvector with:
    input:
        model=CHAT_VECTOR_DIR,
        bench=MT_BENCH_FOLDER,
        teacher=teacher_model,
    output:
        answers=f"{EVAL_CHAT_VECTOR}.mt_bench/answers.jsonl",
        card=f"{EVAL_CHAT_VECTOR}.mt_bench/answers.card.json",
    log:
        f"logs/mtbench/{CHAT_VECTOR_ID}.answer.log",
    benchmark:
        f"benchmarks/mtbench/{CHAT_VECTOR_ID}.answer.tsv"
    wildcard_constraints:
        arm=CHAT_VECTOR_ARMS,


use rule mtbench_answer_student as mtbench_answer_reference with:
    input:
        model=reference_model,
        bench=MT_BENCH_FOLDER,
    output:
        answers=f"{EVAL_REFERENCE}.mt_bench/answers.jsonl",
        card=f"{EVAL_REFERENCE}.mt_bench/answers.card.json",
    log:
        f"logs/mtbench/{REFERENCE_ID}.answer.log",
    benchmark:
        f"benchmarks/mtbench/{REFERENCE_ID}.answer.tsv"
    resources:
        gpu=reference_gpus,
        mem_mb=stage_mem_mb("evaluate"),
        runtime=stage_runtime("evaluate"),
    params:
        settings=mt_bench_answer_settings(),
        labels=reference_labels,
        model_flags=lambda wildcards: trust_flag(GRID.references[wildcards.model]),


rule mtbench_judge:
    input:
        answers=f"{MT_BENCH}/answers.jsonl",
        card=f"{MT_BENCH}/answers.card.json",
        bench=MT_BENCH_FOLDER,
    output:
        judgments=f"{MT_BENCH}/judgments.jsonl",
        samples=f"{MT_BENCH}/samples.jsonl",
        scores=f"{MT_BENCH}/scores.json",
    log:
        main="logs/mtbench/{evaluated}.judge.log",
        server="logs/mtbench/{evaluated}.judge-server.log",
    benchmark:
        "benchmarks/mtbench/{evaluated}.judge.tsv"
    conda:
        ENV
    resources:
        gpu=judge_gpus,
        mem_mb=stage_mem_mb("judge"),
        runtime=stage_runtime("judge"),
    params:
        reference=MT_BENCH_SETTINGS["reference"],
        # a function: a plain string param would be formatted, and `serve` holds "{port}"
        judge=lambda wildcards: JUDGE_FLAGS,
    shell:
        "codit mtbench judge --bench {input.bench} --reference {params.reference}"
        " --answers {input.answers} --answers-card {input.card} {params.judge}"
        " --server-log {log.server} --out {output.judgments} --samples {output.samples}"
        " --scores {output.scores} > {log.main} 2>&1"
