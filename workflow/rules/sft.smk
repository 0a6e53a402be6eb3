# LoRA SFT of every student on every dataset (generated or public) and seed, with one set of
# hyper-parameters; seed s trains with sft.seed + s.


rule sft:
    input:
        data=sft_data,
        student=student_model,
    output:
        adapter=directory(f"{SFT_DIR}/adapter"),
        merged=directory(f"{SFT_DIR}/merged"),
        record=f"{SFT_DIR}/train_record.json",
    log:
        f"logs/sft/{TRAINED_ID}.log",
    benchmark:
        f"benchmarks/sft/{TRAINED_ID}.tsv"
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
        hyperparameters=TrainingSettings.from_config(config["sft"]).command_line(),
        seed=sft_seed,
        trust_remote_code=lambda wildcards: trust_flag(student_spec(wildcards)),
        # The interval does not change results. A function of `threads` is a derived param,
        # which Snakemake leaves out of its params rerun trigger: changing it reruns nothing.
        checkpoint_steps=lambda wildcards, threads: config["sft"]["checkpoint_steps"],
    shell:
        OFFLINE_ENV
        + "codit sft --student {input.student} --data {input.data} --out $(dirname {output.record})"
        " {params.hyperparameters} --seed {params.seed} {params.trust_remote_code}"
        " --threads {threads}"
        " --checkpoint-steps {params.checkpoint_steps} > {log} 2>&1"
