# CoDIT and direct generation over the (pair, arm, seed) grid, sharded; shards are gathered in
# order. Direct samples 1..N-1 (Best-of-N's further candidates) are generated the same way.


rule generate_shard:
    input:
        unpack(pair_models),
        pool="results/instructions/pool.jsonl",
    output:
        shard="results/datasets/{pair}/{arm}/seed{seed}/shards/{shard}.jsonl",
        card="results/datasets/{pair}/{arm}/seed{seed}/shards/{shard}.card.json",
    log:
        "logs/generate/{pair}/{arm}/seed{seed}/{shard}.log",
    benchmark:
        "benchmarks/generate/{pair}/{arm}/seed{seed}/{shard}.tsv"
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
        temperature=GEN["temperature"],
        top_p=GEN["top_p"],
        max_new_tokens=GEN["max_new_tokens"],
        seed=generation_seed,
        sample=sample_index,
        chat_template_kwargs=chat_template_kwargs,
        # dtype, batch composition and kernels change floating-point results: recorded too
        engine=generation_engine_flags(),
        placement=generation_placement,
        trust_remote_code=pair_trust_remote_code,
    shell:
        OFFLINE_ENV
        + "codit generate --mode {params.mode} --pair {wildcards.pair} {params.contrast}"
        " --post {input.post} {params.shard} --instructions {input.pool}"
        " --temperature {params.temperature} --top-p {params.top_p}"
        " --max-new-tokens {params.max_new_tokens} --seed {params.seed}"
        " --sample-index {params.sample}"
        " --chat-template-kwargs '{params.chat_template_kwargs}'"
        " {params.engine} --placement {params.placement} {params.trust_remote_code}"
        " --threads {threads}"
        " --out {output.shard} --card {output.card} >> {log} 2>&1"


rule gather_dataset:
    input:
        shards=expand(
            "results/datasets/{{pair}}/{{arm}}/seed{{seed}}/shards/{shard}.jsonl",
            shard=SHARDS,
        ),
        cards=expand(
            "results/datasets/{{pair}}/{{arm}}/seed{{seed}}/shards/{shard}.card.json",
            shard=SHARDS,
        ),
    output:
        data="results/datasets/{pair}/{arm}/seed{seed}/data.jsonl",
        card="results/datasets/{pair}/{arm}/seed{seed}/card.json",
    log:
        "logs/gather/{pair}/{arm}/seed{seed}.log",
    benchmark:
        "benchmarks/gather/{pair}/{arm}/seed{seed}.tsv"
    wildcard_constraints:
        arm=SAMPLED_ARMS,
    localrule: True
    conda:
        ENV
    params:
        drop_truncated="--drop-truncated" if GEN["drop_truncated"] else "",
    shell:
        "codit gather --shards {input.shards} --cards {input.cards} --out {output.data}"
        " --card {output.card} {params.drop_truncated} > {log} 2>&1"
