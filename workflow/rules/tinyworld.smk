# The built-in tiny world: synthetic facts and instructions, a tokenizer, lm-eval tasks, and
# small base/instruct models. Only built when the config refers to it.


rule tinyworld_data:
    output:
        pool=f"{TINYWORLD_DIR}/instructions/pool.jsonl",
        public=f"{TINYWORLD_DIR}/instructions/public.jsonl",
        tasks=directory(f"{TINYWORLD_DIR}/tasks"),
        tokenizer=directory(f"{TINYWORLD_DIR}/tokenizer"),
        mt_bench=directory(f"{TINYWORLD_DIR}/mt_bench"),
        wildbench=directory(f"{TINYWORLD_DIR}/wildbench"),
        card=f"{TINYWORLD_DIR}/data_card.json",
    log:
        "logs/tinyworld/data.log",
    benchmark:
        "benchmarks/tinyworld/data.tsv"
    conda:
        ENV
    threads: 1  # one thread: the tiny world's bytes must not depend on the machine
    resources:
        mem_mb=stage_mem_mb("tinyworld"),
        runtime=stage_runtime("tinyworld"),
    params:
        seed=config["tinyworld"]["seed"],
        pool_size=config["tinyworld"]["pool_size"],
    shell:
        OFFLINE_ENV
        + "codit tinyworld data --out $(dirname {output.card}) --seed {params.seed}"
        " --pool-size {params.pool_size} --threads {threads} > {log} 2>&1"


rule tinyworld_model:
    input:
        unpack(tinyworld_model_inputs),
    output:
        directory(f"{TINYWORLD_DIR}/models/{{tinymodel}}"),
    log:
        "logs/tinyworld/{tinymodel}.log",
    benchmark:
        "benchmarks/tinyworld/{tinymodel}.tsv"
    conda:
        ENV
    threads: 1  # one thread: the tiny world's bytes must not depend on the machine
    resources:
        mem_mb=stage_mem_mb("tinyworld"),
        runtime=stage_runtime("tinyworld"),
    params:
        seed=config["tinyworld"]["seed"],
    shell:
        OFFLINE_ENV
        + "codit tinyworld train --out $(dirname $(dirname {output})) --model {wildcards.tinymodel}"
        " --seed {params.seed} --threads {threads} > {log} 2>&1"


# A world of the deciding study: a teacher of its own, trained with the world's seed from the
# shared data (facts, tokenizer, corpora, benchmarks stay those of the tiny world).
rule tinyworld_world_model:
    input:
        unpack(tinyworld_model_inputs),
    output:
        directory(f"{TINYWORLD_DIR}/worlds/{{world}}/{{tinymodel}}"),
    log:
        "logs/tinyworld/worlds/{world}/{tinymodel}.log",
    benchmark:
        "benchmarks/tinyworld/worlds/{world}/{tinymodel}.tsv"
    conda:
        ENV
    threads: 1  # one thread: the tiny world's bytes must not depend on the machine
    resources:
        mem_mb=stage_mem_mb("tinyworld"),
        runtime=stage_runtime("tinyworld"),
    shell:
        OFFLINE_ENV
        + "codit tinyworld train --out $(dirname {input.card}) --model {wildcards.tinymodel}"
        " --models-dir $(dirname {output}) --seed {wildcards.world} --threads {threads}"
        " > {log} 2>&1"


rule tinyworld_alpacaeval:
    input:
        card=f"{TINYWORLD_DIR}/data_card.json",
        reference=f"{TINYWORLD_DIR}/models/llama-instruct",
    output:
        directory(f"{TINYWORLD_DIR}/alpaca_eval"),
    log:
        "logs/tinyworld/alpaca_eval.log",
    benchmark:
        "benchmarks/tinyworld/alpaca_eval.tsv"
    conda:
        ENV
    threads: 1  # one thread: the tiny world's bytes must not depend on the machine
    resources:
        mem_mb=stage_mem_mb("tinyworld"),
        runtime=stage_runtime("tinyworld"),
    shell:
        OFFLINE_ENV
        + "codit tinyworld alpacaeval --world $(dirname {input.card}) --threads {threads}"
        " > {log} 2>&1"
