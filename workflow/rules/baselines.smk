# The baselines CoDIT is compared with, besides direct generation: Best-of-N over direct
# samples, public instruction datasets and the chat vector (no training: weight arithmetic).


rule best_of_n:
    input:
        unpack(best_of_n_inputs),
    output:
        data=f"{DATASET_DIR}/data.jsonl",
        card=f"{DATASET_DIR}/card.json",
        scores=f"{DATASET_DIR}/scores.jsonl",
    log:
        main=f"logs/bestofn/{DATASET_ID}.log",
        # the output of the judge server a job with `judge.serve` starts
        server=f"logs/bestofn/{DATASET_ID}.judge-server.log",
    benchmark:
        f"benchmarks/bestofn/{DATASET_ID}.tsv"
    wildcard_constraints:
        arm=BEST_OF_N_ARMS,
    conda:
        ENV
    resources:
        gpu=best_of_n_gpus,
        mem_mb=stage_mem_mb("bestofn"),
        runtime=stage_runtime("bestofn"),
    params:
        scorer=best_of_n_scorer_flags,
        seed=generation_seed,
    shell:
        "codit bestofn --candidates {input.candidates} {params.scorer} --pair {wildcards.pair}"
        " --seed {params.seed} --server-log {log.server}"
        " --out {output.data} --card {output.card} --scores {output.scores} > {log.main} 2>&1"


rule public_dataset:
    input:
        unpack(public_inputs),
    output:
        data=f"{PUBLIC_DATASET_DIR}/data.jsonl",
        card=f"{PUBLIC_DATASET_DIR}/card.json",
    log:
        "logs/public/{arm}.log",
    benchmark:
        "benchmarks/public/{arm}.tsv"
    wildcard_constraints:
        arm=PUBLIC_ARMS,
    localrule: True  # a Hub source is downloaded here, on the login node
    conda:
        ENV
    params:
        settings=lambda wildcards: public_source(wildcards).command_line(),
    shell:
        FETCH_ENV
        + "codit public {params.settings} --out {output.data} --card {output.card}"
        " > {log} 2>&1"


rule chat_vector:
    input:
        unpack(chat_vector_models),
    output:
        directory(CHAT_VECTOR_DIR),
    log:
        f"logs/chatvector/{CHAT_VECTOR_ID}.log",
    benchmark:
        f"benchmarks/chatvector/{CHAT_VECTOR_ID}.tsv"
    wildcard_constraints:
        arm=CHAT_VECTOR_ARMS,
    conda:
        ENV
    threads: stage_threads("sft")
    resources:
        # on CPU, three whole models in memory: the student in float32, post and pre as stored
        mem_mb=stage_mem_mb("sft"),
        runtime=stage_runtime("sft"),
    params:
        ratio=lambda wildcards: parse_arm(wildcards.arm).ratio,
        trust_remote_code=lambda wildcards: trust_flag(*chat_vector_specs(wildcards)),
    shell:
        OFFLINE_ENV
        + "codit chatvector --student {input.student} --post {input.post} --pre {input.pre}"
        " --ratio {params.ratio} {params.trust_remote_code} --threads {threads} --out {output}"
        " > {log} 2>&1"
