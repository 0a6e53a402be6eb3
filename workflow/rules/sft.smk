# LoRA SFT of every student on every dataset (generated or public) and seed, with one set of
# hyper-parameters; seed s trains with sft.seed + s.


rule sft:
    input:
        data=sft_data,
        student=student_model,
    output:
        adapter=directory("results/sft/{pair}/{arm}/seed{seed}/{student}/adapter"),
        merged=directory("results/sft/{pair}/{arm}/seed{seed}/{student}/merged"),
        record="results/sft/{pair}/{arm}/seed{seed}/{student}/train_record.json",
    log:
        "logs/sft/{pair}/{arm}/seed{seed}/{student}.log",
    benchmark:
        "benchmarks/sft/{pair}/{arm}/seed{seed}/{student}.tsv"
    wildcard_constraints:
        arm=DATASET_ARMS,
    conda:
        ENV
    threads: stage_threads("sft")
    resources:
        gpu=student_gpus,
        mem_mb=stage_mem_mb("sft"),
        runtime=stage_runtime("sft"),
    params:
        hyperparameters=sft_flags(),
        seed=sft_seed,
        trust_remote_code=student_trust_remote_code,
        # The interval does not change results. A function of `threads` is a derived param,
        # which Snakemake leaves out of its params rerun trigger: changing it reruns nothing.
        checkpoint_steps=lambda wildcards, threads: config["sft"]["checkpoint_steps"],
    shell:
        OFFLINE_ENV
        + "codit sft --student {input.student} --data {input.data} --out $(dirname {output.record})"
        " {params.hyperparameters} --seed {params.seed} {params.trust_remote_code}"
        " --threads {threads}"
        " --checkpoint-steps {params.checkpoint_steps} > {log} 2>&1"
