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
from codit.naming import (
    ARM_PATTERN,
    BEST_OF_N,
    CHAT_VECTOR,
    CODIT,
    DIRECT_ARM,
    DIRECT_SAMPLE,
    PUBLIC,
    arm_pattern,
    direct_sample_arm,
    parse_arm,
    seed_dir,
)

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
# What each kind of job makes: arms sampled from a teacher, picked among samples, written
# by people, edited in weight space; students are fine-tuned on the dataset arms.
SAMPLED_ARMS = arm_pattern(DIRECT_ARM, DIRECT_SAMPLE, CODIT)
BEST_OF_N_ARMS = arm_pattern(BEST_OF_N)
PUBLIC_ARMS = arm_pattern(PUBLIC)
CHAT_VECTOR_ARMS = arm_pattern(CHAT_VECTOR)
DATASET_ARMS = arm_pattern(DIRECT_ARM, CODIT, BEST_OF_N, PUBLIC)


def env_prefix(variables):
    return "".join(f"{name}={shlex.quote(value)} " for name, value in variables.items())


# Local rules (login node) fetch into the hub cache; compute jobs only read it, offline.
FETCH_ENV = env_prefix(hub_environment(HUB_CACHE, offline=False))
OFFLINE_ENV = env_prefix(hub_environment(HUB_CACHE, offline=True))


def alternation(names):
    """A wildcard constraint that matches exactly one of `names`."""
    return "|".join(re.escape(name) for name in sorted(names)) or "(?!)"


wildcard_constraints:
    # `public` holds what is trained on a public dataset, which belongs to no teacher pair.
    pair=alternation([*GRID.pairs, PUBLIC]),
    arm=ARM_PATTERN,
    seed=r"\d+",
    student=alternation(
        [*GRID.students, *(vector.student.slug for vector in GRID.chat_vectors)]
    ),
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
    if uses_pre_model(wildcards):
        models["pre"] = pre.location
    return models


def uses_pre_model(wildcards):
    """Only CoDIT runs the pre-trained model; direct samples never load it."""
    return parse_arm(wildcards.arm).kind == CODIT


def student_spec(wildcards):
    """A fine-tuned student, or the student a chat vector is added to."""
    if wildcards.student in GRID.students:
        return GRID.students[wildcards.student]
    return next(
        v.student for v in GRID.chat_vectors if v.student.slug == wildcards.student
    )


def student_model(wildcards):
    return student_spec(wildcards).location


def dataset_dir(pair, arm, seed):
    """Where one dataset lives: per teacher pair and replicate seed, or once for a public one."""
    if pair == PUBLIC:
        return f"results/datasets/{PUBLIC}/{arm}"
    return f"results/datasets/{pair}/{arm}/{seed_dir(seed)}"


def sft_data(wildcards):
    return f"{dataset_dir(wildcards.pair, wildcards.arm, wildcards.seed)}/data.jsonl"


def best_of_n_inputs(wildcards):
    """The N candidates (direct samples 0..N-1 of this seed) and what the scorer reads."""
    arm = parse_arm(wildcards.arm)
    inputs = {
        "candidates": [
            f"{dataset_dir(wildcards.pair, direct_sample_arm(j), wildcards.seed)}/data.jsonl"
            for j in range(arm.n)
        ]
    }
    if arm.scorer == "oracle":
        inputs["world"] = f"{TINYWORLD_DIR}/data_card.json"
    return inputs


def best_of_n_scorer_flags(wildcards):
    """Scorer options (they change which candidate wins, hence params)."""
    arm = parse_arm(wildcards.arm)
    if arm.scorer == "oracle":
        return f"--scorer oracle --world {TINYWORLD_DIR}"
    judge = config["best_of_n"]["judge"]
    return (
        f"--scorer judge --judge-url {judge['url']} --judge-model {shlex.quote(judge['model'])}"
        f" --judge-api-key-env {judge['api_key_env']} --judge-max-tokens {judge['max_tokens']}"
        f" --judge-workers {judge['workers']}"
    )


def public_spec(wildcards):
    return GRID.public[wildcards.arm]


def public_inputs(wildcards):
    """The source file (none for a Hub dataset) and, for the size, the first seed's CoDIT cards."""
    spec = public_spec(wildcards)
    inputs = {"source": [] if spec.kind == "hub" else [spec.location]}
    if spec.settings["size"] is None:
        inputs["match"] = codit_cards_to_match()
    return inputs


def codit_cards_to_match():
    codit_arms = [arm for arm in GRID.arms if parse_arm(arm).kind == CODIT]
    if not codit_arms:
        raise WorkflowError(
            "public_datasets: `size: null` matches the CoDIT datasets' size, but the grid has "
            "no CoDIT arm; give each public dataset a `size`"
        )
    return [
        f"{dataset_dir(pair, arm, GRID.seeds[0])}/card.json"
        for pair in GRID.pairs
        for arm in codit_arms
    ]


def public_flags(wildcards):
    spec = public_spec(wildcards)
    settings = spec.settings
    source = f"hub:{spec.location}" if spec.kind == "hub" else spec.location
    flags = [
        f"--name {spec.name} --source {shlex.quote(source)} --split {settings['split']}"
    ]
    if settings["messages_field"]:
        flags.append(f"--messages-field {settings['messages_field']}")
    else:
        flags.append(
            f"--instruction-field {settings['instruction_field']}"
            f" --response-field {settings['response_field']}"
        )
    for option in ("context_field", "id_field"):
        if settings[option]:
            flags.append(f"--{option.replace('_', '-')} {settings[option]}")
    if settings["size"] is not None:
        flags.append(f"--size {settings['size']}")
    else:
        flags.append(f"--match-cards {' '.join(codit_cards_to_match())}")
    flags.append(f"--seed {settings['seed']}")
    return " ".join(flags)


def chat_vector_spec(wildcards):
    ratio = parse_arm(wildcards.arm).ratio
    return next(
        vector
        for vector in GRID.chat_vectors
        if (vector.pair, vector.student.slug, vector.ratio)
        == (wildcards.pair, wildcards.student, ratio)
    )


def chat_vector_models(wildcards):
    post, pre = GRID.pairs[wildcards.pair]
    return {
        "post": post.location,
        "pre": pre.location,
        "student": chat_vector_spec(wildcards).student.location,
    }


def chat_vector_trust_remote_code(wildcards):
    post, pre = GRID.pairs[wildcards.pair]
    student = chat_vector_spec(wildcards).student
    # One flag for all three: the command loads each with the same setting.
    trusted = any(spec.trust_remote_code for spec in (post, pre, student))
    return "--trust-remote-code" if trusted else ""


def teacher_model(wildcards):
    """The teacher's post model, read for its architecture label (none for a public arm)."""
    if wildcards.pair == PUBLIC:
        return []
    return [GRID.pairs[wildcards.pair][0].location]


def student_model_flags(wildcards):
    """An evaluated student's teacher (read for the architecture label) and, if its config
    entry allows it, --trust-remote-code."""
    teacher = [f"--teacher {path}" for path in teacher_model(wildcards)]
    return " ".join(filter(None, [*teacher, student_trust_remote_code(wildcards)]))


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
    return "codit" if uses_pre_model(wildcards) else "direct"


def sample_index(wildcards):
    """Best-of-N's further direct samples get their own per-prompt seeds."""
    return parse_arm(wildcards.arm).sample or 0


def generation_seed(wildcards):
    return GEN["seed"] + int(wildcards.seed)


def sft_seed(wildcards):
    return config["sft"]["seed"] + int(wildcards.seed)


def pair_member(role):
    """The Hub id or path of the post (role 0) or pre (role 1) model of a pair, as recorded;
    the direct arm never runs the pre model, so changing it must not rerun that arm."""

    def name(wildcards):
        if role == 1 and not uses_pre_model(wildcards):
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
    if uses_pre_model(wildcards) and pre.trust_remote_code:
        flags.append("--trust-remote-code-pre")
    return " ".join(flag for flag in flags if flag)


def contrast_flags(wildcards):
    arm = parse_arm(wildcards.arm)
    if arm.kind != CODIT:
        return ""
    return f"--pre {pair_models(wildcards)['pre']} --alpha {arm.alpha!r} --beta {arm.beta!r}"


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
        f"--max-length {sft['max_length']}",
        f"--dtype {sft['dtype']} --device {sft['device']}",
    ]
    return " ".join(flags)


def student_trust_remote_code(wildcards):
    return trust_remote_code_flag(student_spec(wildcards))


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
    """What the report needs to place an evaluated student; a public arm has no teacher pair,
    a chat-vector model no seed."""
    arm = parse_arm(wildcards.arm)
    labels = {
        "teacher_pair": "" if wildcards.pair == PUBLIC else wildcards.pair,
        "student": wildcards.student,
        "arm": wildcards.arm,
        "seed": wildcards.get("seed", ""),
        "alpha": "" if arm.alpha is None else repr(arm.alpha),
        "beta": "" if arm.beta is None else repr(arm.beta),
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
    return post.gpus + (pre.gpus if uses_pre_model(wildcards) else 0)


def generation_placement(wildcards):
    """Where the engine puts the models, from their `gpus`: one GPU each -> split; more than
    one for a model -> accelerate's device_map auto; otherwise both on the job's device.
    """
    post, pre = GRID.pairs[wildcards.pair]
    gpus = [post.gpus, pre.gpus] if uses_pre_model(wildcards) else [post.gpus]
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
    return student_spec(wildcards).gpus


def reference_gpus(wildcards):
    return GRID.references[wildcards.model].gpus


# ---- targets ------------------------------------------------------------------------------


def trained_datasets():
    """(pair, arm, seed) of every dataset a student is fine-tuned on; a public dataset is
    trained once per seed under the `public` folder."""
    runs = [(p, a, s) for p in GRID.pairs for a in GRID.arms for s in GRID.seeds]
    return runs + [(PUBLIC, arm, s) for arm in GRID.public for s in GRID.seeds]


def dataset_cards():
    cards = {
        f"{dataset_dir(pair, arm, seed)}/card.json"
        for pair, arm, seed in trained_datasets()
    }
    return sorted(cards)


def student_evaluations():
    trained = [
        f"results/eval/{pair}/{arm}/{seed_dir(seed)}/{student}.json"
        for pair, arm, seed in trained_datasets()
        for student in GRID.students
    ]
    edited = [
        f"results/eval/{v.pair}/{v.arm}/{v.student.slug}.json"
        for v in GRID.chat_vectors
    ]
    return trained + edited


def student_sample_dirs():
    return [path.removesuffix(".json") + ".samples" for path in student_evaluations()]


def reference_evaluations():
    return expand("results/eval/reference/{model}.json", model=list(GRID.references))


def final_targets():
    return [
        "results/tables/main.csv",
        "results/tables/main.md",
        "results/tables/main.tex",
        "results/tables/summary.csv",
        "results/tables/paired.md",
        "results/figures/metric_vs_alpha.png",
        "results/figures/length_vs_alpha.png",
        "results/figures/paired_heatmap.png",
    ]
