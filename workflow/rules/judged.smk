# Judged benchmarks beside the lm-eval tasks: MT-Bench, AlpacaEval 2.0 and WildBench v2, each
# on only with its `evaluation.<task>.enabled`. Every evaluated model answers each benchmark in
# a job of its own (`<benchmark>_answer_{student,chatvector,reference}`: generation, the GPU
# work); one judging job per evaluated model grades all its answers with one judge
# (`judge_answers`), so a judge the job serves itself starts once per model, not per benchmark.
# The judging job writes, per benchmark, an evaluation-shaped scores file that the report reads
# beside the lm-eval results (labels from the answers' card, per-item samples for the bootstrap).


# One fetch rule per judged benchmark (`fetch_<command>`): its published data into the hub
# cache, from the config's sources where it names any.
for judged_benchmark in benchmarks():

    rule:
        name:
            f"fetch_{judged_benchmark.command}"
        output:
            directory(f"{HUB_CACHE}/{judged_benchmark.task}"),
        log:
            f"logs/judged/fetch_{judged_benchmark.task}.log",
        benchmark:
            f"benchmarks/judged/fetch_{judged_benchmark.task}.tsv"
        localrule: True  # the benchmarks' data is downloaded here, on the login node
        conda:
            ENV
        params:
            # params, not names in the shell string: a rule's shell command is formatted when
            # its job runs, after the loop has moved on
            command=judged_benchmark.command,
            sources=shlex.join(
                fetch_flags(
                    config["evaluation"].get(judged_benchmark.task, {}),
                    judged_benchmark,
                )
            ),
        shell:
            f"{FETCH_ENV}codit {{params.command}} fetch --out {{output}} {{params.sources}}"
            " > {log} 2>&1"


ANSWER_COMMAND = (
    OFFLINE_ENV
    + "codit {params.benchmark} answer --model {input.model} --bench {input.bench}"
    " {params.settings} {params.labels} {params.model_flags} --threads {threads}"
    " --out {output.answers} --card {output.card} > {log} 2>&1"
)

# One answering rule per enabled benchmark and kind of evaluated model (named like
# codit.workflow.jobs.answer_rule: `alpacaeval_answer_student` ...).
for task in JUDGED_TASKS:
    command = JUDGED_BENCHMARKS[task]

    rule:
        name:
            f"{command}_answer_student"
        input:
            model=f"{SFT_DIR}/merged",
            bench=JUDGED_FOLDERS[task],
            teacher=teacher_model,
        output:
            answers=f"{EVAL_TRAINED}.{task}/answers.jsonl",
            card=f"{EVAL_TRAINED}.{task}/answers.card.json",
        log:
            f"logs/judged/{TRAINED_ID}.{task}.answer.log",
        benchmark:
            f"benchmarks/judged/{TRAINED_ID}.{task}.answer.tsv"
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
            benchmark=command,
            settings=judged_answer_settings(task, student_gpus),
            labels=student_labels,
            model_flags=student_model_flags,
        shell:
            ANSWER_COMMAND

    rule:
        name:
            f"{command}_answer_chatvector"
        input:
            model=CHAT_VECTOR_DIR,
            bench=JUDGED_FOLDERS[task],
            teacher=teacher_model,
        output:
            answers=f"{EVAL_CHAT_VECTOR}.{task}/answers.jsonl",
            card=f"{EVAL_CHAT_VECTOR}.{task}/answers.card.json",
        log:
            f"logs/judged/{CHAT_VECTOR_ID}.{task}.answer.log",
        benchmark:
            f"benchmarks/judged/{CHAT_VECTOR_ID}.{task}.answer.tsv"
        wildcard_constraints:
            arm=CHAT_VECTOR_ARMS,
        conda:
            ENV
        threads: stage_threads("evaluate")
        resources:
            gpu=student_gpus,
            mem_mb=stage_mem_mb("evaluate"),
            runtime=stage_runtime("evaluate"),
        params:
            benchmark=command,
            settings=judged_answer_settings(task, student_gpus),
            labels=student_labels,
            model_flags=student_model_flags,
        shell:
            ANSWER_COMMAND

    rule:
        name:
            f"{command}_answer_reference"
        input:
            model=reference_model,
            bench=JUDGED_FOLDERS[task],
        output:
            answers=f"{EVAL_REFERENCE}.{task}/answers.jsonl",
            card=f"{EVAL_REFERENCE}.{task}/answers.card.json",
        log:
            f"logs/judged/{REFERENCE_ID}.{task}.answer.log",
        benchmark:
            f"benchmarks/judged/{REFERENCE_ID}.{task}.answer.tsv"
        conda:
            ENV
        threads: stage_threads("evaluate")
        resources:
            gpu=reference_gpus,
            mem_mb=stage_mem_mb("evaluate"),
            runtime=stage_runtime("evaluate"),
        params:
            benchmark=command,
            settings=judged_answer_settings(task, reference_gpus),
            labels=reference_labels,
            model_flags=lambda wildcards: trust_flag(GRID.references[wildcards.model]),
        shell:
            ANSWER_COMMAND


rule judge_answers:
    input:
        **{
            f"{task}_answers": path
            for task, path in judged_files("answers.jsonl").items()
        },
        **{
            f"{task}_card": path
            for task, path in judged_files("answers.card.json").items()
        },
        **{f"{task}_bench": folder for task, folder in JUDGED_FOLDERS.items()},
    output:
        **{
            f"{task}_judgments": path
            for task, path in judged_files("judgments.jsonl").items()
        },
        **{
            f"{task}_samples": path
            for task, path in judged_files("samples.jsonl").items()
        },
        **{f"{task}_scores": path for task, path in judged_files("scores.json").items()},
    log:
        main="logs/judged/{evaluated}.judge.log",
        server="logs/judged/{evaluated}.judge-server.log",
    benchmark:
        "benchmarks/judged/{evaluated}.judge.tsv"
    conda:
        ENV
    resources:
        gpu=judge_gpus,
        mem_mb=stage_mem_mb("judge"),
        runtime=stage_runtime("judge"),
    params:
        # the benchmarks' folders and grading settings (reference, order seed, log-probabilities)
        benchmarks=judging_flags(),
        # a function: a plain string param would be formatted, and `serve` holds "{port}"
        judge=lambda wildcards: JUDGE_FLAGS,
    shell:
        "codit judged --evaluated results/eval/{wildcards.evaluated} {params.benchmarks}"
        " {params.judge} --server-log {log.server} > {log.main} 2>&1"
