# CoDIT and direct generation over the (pair, arm, seed) grid, sharded; shards are gathered in
# order. Direct samples 1..N-1 (Best-of-N's further candidates) are generated the same way.


rule generate_shard:
    input:
        unpack(pair_models),
        pool=INSTRUCTION_POOL,
    output:
        shard=f"{SHARD_PATH}.jsonl",
        card=f"{SHARD_PATH}.card.json",
    log:
        f"logs/generate/{SHARD_ID}.log",
    benchmark:
        f"benchmarks/generate/{SHARD_ID}.tsv"
    wildcard_constraints:
        arm=SAMPLED_ARMS,
    conda:
        ENV
    threads: stage_threads("generate")
    resources:
        gpu=generation_gpus,
        mem_mb=stage_mem_mb("generate"),
        runtime=stage_runtime("generate"),
    params:
        post=pair_member(0),
        pre=pair_member(1),
        mode=generation_mode,
        contrast=contrast_flags,
        shard=shard_flags,
        sampling=SamplingSettings.from_config(GEN).command_line(),
        seed=generation_seed,
        sample=sample_index,
        chat_template_kwargs=chat_template_kwargs,
        engine=generation_engine,
        placement=generation_placement,
        trust_remote_code=pair_trust_remote_code,
    shell:
        OFFLINE_ENV
        + "codit generate --mode {params.mode} --pair {wildcards.pair} {params.contrast}"
        " --post {input.post} {params.shard} --instructions {input.pool}"
        " {params.sampling} --seed {params.seed}"
        " --sample-index {params.sample}"
        " --chat-template-kwargs '{params.chat_template_kwargs}'"
        " {params.engine} --placement {params.placement} {params.trust_remote_code}"
        " --threads {threads}"
        " --out {output.shard} --card {output.card} >> {log} 2>&1"


rule gather_dataset:
    input:
        shards=expand(f"{SHARD_PATH}.jsonl", shard=SHARDS, allow_missing=True),
        cards=expand(f"{SHARD_PATH}.card.json", shard=SHARDS, allow_missing=True),
    output:
        data=f"{DATASET_DIR}/data.jsonl",
        card=f"{DATASET_DIR}/card.json",
    log:
        f"logs/gather/{DATASET_ID}.log",
    benchmark:
        f"benchmarks/gather/{DATASET_ID}.tsv"
    wildcard_constraints:
        arm=SAMPLED_ARMS,
    localrule: True
    conda:
        ENV
    params:
        drop_truncated=GatherSettings.from_config(GEN).command_line(),
    shell:
        "codit gather --shards {input.shards} --cards {input.cards} --out {output.data}"
        " --card {output.card} {params.drop_truncated} > {log} 2>&1"
