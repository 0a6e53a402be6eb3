# Config validation, the experiment grid, input functions and target lists. No rules here.

import json
import re
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from codit.config import (
    ConfigError,
    TINYWORLD_DIR,
    build_grid,
    hub_cache,
    hub_environment,
    instruction_source,
    task_include_path,
)
from codit.naming import ARM_PATTERN, DIRECT_ARM, parse_arm

validate(config, schema="../schemas/config.schema.yaml")
try:
    GRID = build_grid(config)
    INSTRUCTIONS_KIND, INSTRUCTIONS_LOCATION = instruction_source(config)
    TASK_INCLUDE_PATH = task_include_path(config)
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None

GEN = config["generation"]
HUB_CACHE = hub_cache(config)
TASKS_MANIFEST = "results/eval/tasks.json"
SHARDS = [
    f"{index:03d}-of-{GEN['num_shards']:03d}" for index in range(GEN["num_shards"])
]
ENV = "../../envs/codit.yaml"


def env_prefix(variables):
    return "".join(f"{name}={shlex.quote(value)} " for name, value in variables.items())


# Local rules (login node) fetch into the hub cache; compute jobs only read it, offline.
FETCH_ENV = env_prefix(hub_environment(HUB_CACHE, offline=False))
OFFLINE_ENV = env_prefix(hub_environment(HUB_CACHE, offline=True))


def alternation(names):
    """A wildcard constraint that matches exactly one of `names`."""
    return "|".join(re.escape(name) for name in sorted(names)) or "(?!)"


wildcard_constraints:
    pair=alternation(GRID.pairs),
    arm=ARM_PATTERN,
    student=alternation(GRID.students),
    model=alternation(GRID.references),
    hubmodel=alternation(s.slug for s in GRID.models.values() if s.kind == "hub"),
    tinymodel="llama-base|llama-instruct|gpt2-base|gpt2-instruct",
    shard=r"\d{3}-of-\d{3}",


# ---- inputs -------------------------------------------------------------------------------


def tinyworld_model_inputs(wildcards):
    """An instruct model is fine-tuned from its own base model."""
    inputs = {"card": f"{TINYWORLD_DIR}/data_card.json"}
    if wildcards.tinymodel.endswith("-instruct"):
        base = wildcards.tinymodel.replace("-instruct", "-base")
        inputs["base"] = f"{TINYWORLD_DIR}/models/{base}"
    return inputs


def pair_models(wildcards):
    """Model folders (spec.location) are built or downloaded by rules, so they are inputs."""
    post, pre = GRID.pairs[wildcards.pair]
    models = {"post": post.location}
    if wildcards.arm != DIRECT_ARM:
        models["pre"] = pre.location
    return models


def student_model(wildcards):
    return GRID.students[wildcards.student].location


def reference_model(wildcards):
    return GRID.references[wildcards.model].location


def task_folder_inputs(wildcards):
    """The tiny world's task folder must exist before lm-eval indexes it."""
    return (
        [TASK_INCLUDE_PATH]
        if config["evaluation"]["include_path"] == "tinyworld"
        else []
    )


def instruction_inputs(wildcards):
    return [] if INSTRUCTIONS_KIND == "hub" else [INSTRUCTIONS_LOCATION]


# ---- parameters (values that change results) ----------------------------------------------


def generation_mode(wildcards):
    return parse_arm(wildcards.arm)[0]


def pair_member(role):
    """The Hub id or path of the post (role 0) or pre (role 1) model of a pair, as recorded;
    the direct arm never runs the pre model, so changing it must not rerun that arm."""

    def name(wildcards):
        if role == 1 and wildcards.arm == DIRECT_ARM:
            return ""
        spec = GRID.pairs[wildcards.pair][role]
        return spec.hub_id or spec.location

    return name


def chat_template_kwargs(wildcards):
    return json.dumps(
        GRID.pairs[wildcards.pair][0].chat_template_kwargs, sort_keys=True
    )


def trust_remote_code_flag(spec):
    return "--trust-remote-code" if spec.trust_remote_code else ""


def pair_trust_remote_code(wildcards):
    """Each model of a pair runs its repository's code only if its own entry allows it."""
    post, pre = GRID.pairs[wildcards.pair]
    flags = [trust_remote_code_flag(post)]
    if wildcards.arm != DIRECT_ARM and pre.trust_remote_code:
        flags.append("--trust-remote-code-pre")
    return " ".join(flag for flag in flags if flag)


def contrast_flags(wildcards):
    kind, alpha, beta = parse_arm(wildcards.arm)
    if kind == DIRECT_ARM:
        return ""
    return f"--pre {pair_models(wildcards)['pre']} --alpha {alpha!r} --beta {beta!r}"


def shard_flags(wildcards):
    index, total = (int(part) for part in wildcards.shard.split("-of-"))
    return f"--shard-index {index} --num-shards {total}"


def instruction_field_flags():
    settings = config["instructions"]
    flags = f"--instruction-field {settings['instruction_field']}"
    if settings["id_field"]:
        flags += f" --id-field {settings['id_field']}"
    if settings["conversation_field"]:
        flags += f" --conversation-field {settings['conversation_field']}"
    if settings["keep_if"]:
        flags += f" --keep-if '{json.dumps(settings['keep_if'], sort_keys=True)}'"
    return flags


def limit_flag(limit):
    return "" if limit is None else f"--limit {limit}"


def hub_model_id(wildcards):
    return GRID.models[wildcards.hubmodel].hub_id


def hub_model_revision(wildcards):
    return GRID.models[wildcards.hubmodel].revision


def sft_flags():
    sft = config["sft"]
    flags = [
        f"--lora-r {sft['lora_r']} --lora-alpha {sft['lora_alpha']}",
        f"--lora-dropout {sft['lora_dropout']} --target-modules {sft['target_modules']}",
        f"--learning-rate {sft['learning_rate']} --lr-scheduler {sft['lr_scheduler']}",
        f"--warmup-ratio {sft['warmup_ratio']} --epochs {sft['epochs']}",
        f"--batch-size {sft['batch_size']} --grad-accum {sft['grad_accum']}",
        f"--max-length {sft['max_length']} --seed {sft['seed']}",
        f"--dtype {sft['dtype']} --device {sft['device']}",
    ]
    return " ".join(flags)


def student_trust_remote_code(wildcards):
    return trust_remote_code_flag(GRID.students[wildcards.student])


def reference_trust_remote_code(wildcards):
    return trust_remote_code_flag(GRID.references[wildcards.model])


def task_flags():
    """Which lm-eval tasks, and where their YAMLs are: shared by prefetch and evaluation."""
    flags = [f"--tasks {','.join(config['evaluation']['tasks'])}"]
    if TASK_INCLUDE_PATH:
        flags.append(f"--include-path {TASK_INCLUDE_PATH}")
    if not config["evaluation"]["builtin_tasks"]:
        flags.append("--no-default-tasks")
    return " ".join(flags)


def evaluation_flags():
    evaluation = config["evaluation"]
    flags = [
        task_flags(),
        f"--batch-size {evaluation['batch_size']}",
        f"--dtype {evaluation['dtype']} --device {evaluation['device']}",
        (
            "--apply-chat-template"
            if evaluation["apply_chat_template"]
            else "--no-apply-chat-template"
        ),
        limit_flag(evaluation["limit"]),
    ]
    return " ".join(flag for flag in flags if flag)


def student_labels(wildcards):
    kind, alpha, beta = parse_arm(wildcards.arm)
    labels = {
        "teacher_pair": wildcards.pair,
        "student": wildcards.student,
        "arm": wildcards.arm,
        "alpha": "" if alpha is None else repr(alpha),
        "beta": "" if beta is None else repr(beta),
    }
    return " ".join(f"--label {key}={value}" for key, value in labels.items())


def reference_labels(wildcards):
    """A reference that is some pair's post model is labelled with that pair (the teacher line)."""
    labels = f"--label student={wildcards.model} --label arm=reference"
    for pair, (post, _) in GRID.pairs.items():
        if post.slug == wildcards.model:
            return f"{labels} --label teacher_pair={pair}"
    return labels


# ---- resources (grow with each retry) -----------------------------------------------------


def stage_threads(stage):
    """CPUs of one job of `stage` (SLURM's cpus_per_task, torch's intra-op threads)."""
    return config["resources"][stage]["cpus"] or config["threads"]


def stage_mem_mb(stage):
    def mem_mb(wildcards, attempt):
        return config["resources"][stage]["mem_mb"] * attempt

    return mem_mb


def stage_runtime(stage):
    def runtime(wildcards, attempt):
        return f"{config['resources'][stage]['runtime_minutes'] * attempt}m"

    return runtime


def generation_gpus(wildcards):
    """CoDIT runs two models side by side, so it needs the GPUs of both."""
    post, pre = GRID.pairs[wildcards.pair]
    return post.gpus + (0 if wildcards.arm == DIRECT_ARM else pre.gpus)


def generation_placement(wildcards):
    """Where the engine puts the models, from their `gpus`: one GPU each -> split; more than
    one for a model -> accelerate's device_map auto; otherwise both on the job's device.
    """
    post, pre = GRID.pairs[wildcards.pair]
    gpus = [post.gpus] if wildcards.arm == DIRECT_ARM else [post.gpus, pre.gpus]
    if max(gpus) > 1:
        return "auto"
    return "split" if gpus == [1, 1] else "same"


def generation_engine_flags():
    """Engine options that can change floating-point results, hence recorded as params."""
    flags = [
        f"--batch-size {GEN['batch_size']} --dtype {GEN['dtype']} --device {GEN['device']}",
        f"--cache {GEN['cache']}",
    ]
    if GEN["compile"]:
        flags.append("--compile")
    return " ".join(flags)


def student_gpus(wildcards):
    return GRID.students[wildcards.student].gpus


def reference_gpus(wildcards):
    return GRID.references[wildcards.model].gpus


# ---- targets ------------------------------------------------------------------------------


def dataset_cards():
    return expand(
        "results/datasets/{pair}/{arm}/card.json", pair=list(GRID.pairs), arm=GRID.arms
    )


def student_evaluations():
    return expand(
        "results/eval/{pair}/{arm}/{student}.json",
        pair=list(GRID.pairs),
        arm=GRID.arms,
        student=list(GRID.students),
    )


def student_sample_dirs():
    return [path.removesuffix(".json") + ".samples" for path in student_evaluations()]


def reference_evaluations():
    return expand("results/eval/reference/{model}.json", model=list(GRID.references))


def final_targets():
    return [
        "results/tables/main.csv",
        "results/tables/main.md",
        "results/tables/main.tex",
        "results/tables/paired.md",
        "results/figures/metric_vs_alpha.png",
        "results/figures/length_vs_alpha.png",
        "results/figures/paired_heatmap.png",
    ]
