# What every job reads: the instruction pool, and Hub models downloaded once on the login node.


rule prepare_instructions:
    input:
        instruction_inputs,
    output:
        pool="results/instructions/pool.jsonl",
        card="results/instructions/card.json",
    log:
        "logs/instructions.log",
    benchmark:
        "benchmarks/instructions.tsv"
    localrule: True
    conda:
        ENV
    params:
        source=(
            INSTRUCTIONS_LOCATION
            if INSTRUCTIONS_KIND != "hub"
            else f"hub:{INSTRUCTIONS_LOCATION}"
        ),
        split=config["instructions"]["split"],
        fields=instruction_field_flags(),
        max_chars=config["instructions"]["max_chars"],
        limit=limit_flag(config["instructions"]["limit"]),
    shell:
        "codit instructions --source {params.source} --split {params.split} {params.fields}"
        " --max-chars {params.max_chars} {params.limit} --out {output.pool} --card {output.card}"
        " > {log} 2>&1"


rule download_model:
    output:
        directory(f"{HUB_MODELS_DIR}/{{hubmodel}}"),
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
        "codit download --model {params.hub_id} --revision {params.revision} --out {output}"
        " > {log} 2>&1"
