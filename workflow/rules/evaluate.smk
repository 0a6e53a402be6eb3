# lm-evaluation-harness on every trained student and on the untouched reference models: one
# definition (evaluate_student); the chat-vector models and the references reuse it with their
# own paths, labels and model flags.


rule evaluate_student:
    input:
        task_folder_inputs,
        tasks=TASKS_MANIFEST,
        model=f"{SFT_DIR}/merged",
        teacher=teacher_model,
    output:
        results=f"{EVAL_TRAINED}.json",
        samples=directory(f"{EVAL_TRAINED}.samples"),
    log:
        f"logs/eval/{TRAINED_ID}.log",
    benchmark:
        f"benchmarks/eval/{TRAINED_ID}.tsv"
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
        settings=evaluation_settings().command_line(),
        labels=student_labels,
        model_flags=student_model_flags,
    shell:
        OFFLINE_ENV
        + "codit evaluate --model {input.model} {params.settings} {params.labels}"
        " {params.model_flags} --samples-dir {output.samples} --threads {threads}"
        " --out {output.results} > {log} 2>&1"


use rule evaluate_student as evaluate_chatvector with:
    input:
        task_folder_inputs,
        tasks=TASKS_MANIFEST,
        model=CHAT_VECTOR_DIR,
        teacher=teacher_model,
    output:
        results=f"{EVAL_CHAT_VECTOR}.json",
        samples=directory(f"{EVAL_CHAT_VECTOR}.samples"),
    log:
        f"logs/eval/{CHAT_VECTOR_ID}.log",
    benchmark:
        f"benchmarks/eval/{CHAT_VECTOR_ID}.tsv"
    wildcard_constraints:
        arm=CHAT_VECTOR_ARMS,


use rule evaluate_student as evaluate_reference with:
    input:
        task_folder_inputs,
        tasks=TASKS_MANIFEST,
        model=reference_model,
    output:
        results=f"{EVAL_REFERENCE}.json",
        samples=directory(f"{EVAL_REFERENCE}.samples"),
    log:
        f"logs/eval/{REFERENCE_ID}.log",
    benchmark:
        f"benchmarks/eval/{REFERENCE_ID}.tsv"
    resources:
        gpu=reference_gpus,
        mem_mb=stage_mem_mb("evaluate"),
        runtime=stage_runtime("evaluate"),
    params:
        settings=evaluation_settings().command_line(),
        labels=reference_labels,
        model_flags=lambda wildcards: trust_flag(GRID.references[wildcards.model]),
