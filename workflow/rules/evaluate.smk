# lm-evaluation-harness on every trained student and on the untouched reference models: one
# definition (evaluate_student); the chat-vector models and the references reuse it with their
# own paths, labels and model flags.


rule evaluate_student:
    input:
        task_folder_inputs,
        tasks=TASKS_MANIFEST,
        model="results/sft/{pair}/{arm}/seed{seed}/{student}/merged",
        teacher=teacher_model,
    output:
        results="results/eval/{pair}/{arm}/seed{seed}/{student}.json",
        samples=directory("results/eval/{pair}/{arm}/seed{seed}/{student}.samples"),
    log:
        "logs/eval/{pair}/{arm}/seed{seed}/{student}.log",
    benchmark:
        "benchmarks/eval/{pair}/{arm}/seed{seed}/{student}.tsv"
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
        settings=evaluation_flags(),
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
        model="results/chatvector/{pair}/{arm}/{student}",
        teacher=teacher_model,
    output:
        results="results/eval/{pair}/{arm}/{student}.json",
        samples=directory("results/eval/{pair}/{arm}/{student}.samples"),
    log:
        "logs/eval/{pair}/{arm}/{student}.log",
    benchmark:
        "benchmarks/eval/{pair}/{arm}/{student}.tsv"
    wildcard_constraints:
        arm=CHAT_VECTOR_ARMS,


use rule evaluate_student as evaluate_reference with:
    input:
        task_folder_inputs,
        tasks=TASKS_MANIFEST,
        model=reference_model,
    output:
        results="results/eval/reference/{model}.json",
        samples=directory("results/eval/reference/{model}.samples"),
    log:
        "logs/eval/reference/{model}.log",
    benchmark:
        "benchmarks/eval/reference/{model}.tsv"
    resources:
        gpu=reference_gpus,
        mem_mb=stage_mem_mb("evaluate"),
        runtime=stage_runtime("evaluate"),
    params:
        settings=evaluation_flags(),
        labels=reference_labels,
        model_flags=reference_trust_remote_code,
