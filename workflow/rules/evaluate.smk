# lm-evaluation-harness on every trained student and on the untouched reference models.


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
        teacher=teacher_flag,
    shell:
        OFFLINE_ENV
        + "codit evaluate --model {input.model} {params.settings} {params.labels}"
        " {params.teacher}"
        " --samples-dir {output.samples} --threads {threads} --out {output.results} > {log} 2>&1"


rule evaluate_chatvector:
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
        trust_remote_code=student_trust_remote_code,
    shell:
        OFFLINE_ENV
        + "codit evaluate --model {input.model} {params.settings} {params.labels}"
        " --teacher {input.teacher} {params.trust_remote_code} --samples-dir {output.samples}"
        " --threads {threads} --out {output.results} > {log} 2>&1"


rule evaluate_reference:
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
    conda:
        ENV
    threads: stage_threads("evaluate")
    resources:
        gpu=reference_gpus,
        mem_mb=stage_mem_mb("evaluate"),
        runtime=stage_runtime("evaluate"),
    params:
        settings=evaluation_flags(),
        labels=reference_labels,
        trust_remote_code=reference_trust_remote_code,
    shell:
        OFFLINE_ENV
        + "codit evaluate --model {input.model} {params.settings} {params.labels}"
        " {params.trust_remote_code} --samples-dir {output.samples} --threads {threads}"
        " --out {output.results} > {log} 2>&1"
