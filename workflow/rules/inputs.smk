# What every job reads, fetched once on the login node (local rules, the only ones with network
# access): the instruction pool, Hub models and the data of the lm-eval tasks.


rule prepare_instructions:
    input:
        instruction_inputs,
    output:
        pool=INSTRUCTION_POOL,
        card=INSTRUCTION_CARD,
    log:
        "logs/instructions.log",
    benchmark:
        "benchmarks/instructions.tsv"
    localrule: True
    conda:
        ENV
    params:
        settings=instruction_source_settings().command_line(),
    shell:
        FETCH_ENV
        + "codit instructions {params.settings} --out {output.pool} --card {output.card}"
        " > {log} 2>&1"


rule download_model:
    output:
        directory(f"{HUB_CACHE}/models/{{hubmodel}}"),
    log:
        "logs/download/{hubmodel}.log",
    benchmark:
        "benchmarks/download/{hubmodel}.tsv"
    localrule: True
    conda:
        ENV
    params:
        hub_id=hub_model_id,
        revision=hub_model_revision,
    shell:
        FETCH_ENV
        + "codit download --model {params.hub_id} --revision {params.revision} --out {output}"
        " > {log} 2>&1"


rule prefetch_eval_tasks:
    input:
        task_folder_inputs,
    output:
        TASKS_MANIFEST,
    log:
        "logs/eval/prefetch.log",
    benchmark:
        "benchmarks/eval/prefetch.tsv"
    localrule: True
    conda:
        ENV
    params:
        tasks=task_selection().command_line(),
    shell:
        FETCH_ENV + "codit prefetch {params.tasks} --out {output} > {log} 2>&1"
