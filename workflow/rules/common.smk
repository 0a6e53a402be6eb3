# Config validation, the experiment grid, input functions and target lists. No rules here.

import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from codit.workflow.benchmarks import benchmarks, fetch_flags
from codit.workflow.benchmarks import by_task as benchmarks_by_task
from codit.workflow.config import (
    SCHEMA_FILE,
    ConfigError,
    TINYWORLD_DIR,
    build_grid,
    hub_cache,
    hub_environment,
    instruction_source,
    judged_bench_folder,
    task_include_path,
    tinyworld_model_dir,
    validate_config,
)
from codit.data.datasets import GatherSettings
from codit.evaluation.lmeval import EvaluationSettings
from codit.generation.settings import EngineSettings, SamplingSettings, VllmSettings
from codit.data.instructions import InstructionSource
from codit.workflow.jobs import (
    CHAT_VECTOR_DIR,
    CHAT_VECTOR_ID,
    DATASET_DIR,
    DATASET_ID,
    EVAL_CHAT_VECTOR,
    EVAL_REFERENCE,
    EVAL_TRAINED,
    JUDGED_BENCHMARKS,
    JUDGED_DIR,
    INSTRUCTION_CARD,
    INSTRUCTION_POOL,
    PUBLIC_DATASET_DIR,
    REFERENCE_ID,
    REPORT_DIR,
    REPORT_OUTPUTS,
    SFT_DIR,
    SHARD_ID,
    SHARD_PATH,
    TASKS_MANIFEST,
    TRAINED_ID,
    dataset_dir,
    config_jobs,
    of_rule,
    parse_shard,
    shard_names,
    judged_tasks,
    trained_datasets,
)
from codit.judged.judge import JudgeEndpoint
from codit.evaluation.tasks import TaskSelection
from codit.judged.answering import AnsweringSettings
from codit.workflow.naming import (
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
)
from codit.baselines.public import PublicSource
from codit.training.sft import TrainingSettings

validate_config(config, schema=Path(workflow.basedir) / SCHEMA_FILE)
try:
    GRID = build_grid(config)
    INSTRUCTIONS_KIND, INSTRUCTIONS_LOCATION = instruction_source(config)
    TASK_INCLUDE_PATH = task_include_path(config)
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None

GEN = config["generation"]
HUB_CACHE = hub_cache(config)
SHARDS = shard_names(GEN["num_shards"])
# The judged benchmarks the config turns on (tasks: mt_bench, alpaca_eval, wildbench) and each
# one's bench folder: its published data, fetched into the hub cache; the tiny world's, built
# with its data; or the config's own folder.
JUDGED_TASKS = judged_tasks(config)
JUDGED_FOLDERS = {task: judged_bench_folder(config, task) for task in JUDGED_TASKS}
# Every job of the grid (codit.workflow.jobs); the targets below, and `codit cost`, read this list.
JOBS = config_jobs(config, GRID)
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
    world=r"\d+",
    shard=r"\d{3}-of-\d{3}",


# ---- inputs -------------------------------------------------------------------------------


def tinyworld_model_inputs(wildcards):
    """An instruct model is fine-tuned from its own base model (its world's, in a world)."""
    inputs = {"card": f"{TINYWORLD_DIR}/data_card.json"}
    if wildcards.tinymodel.endswith("-instruct"):
        base = wildcards.tinymodel.replace("-instruct", "-base")
        inputs["base"] = tinyworld_model_dir(base, getattr(wildcards, "world", None))
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
    return f"--scorer judge {JUDGE_FLAGS}"


# The judge's flags, the same for every judging job (Best-of-N's, MT-Bench's).
JUDGE_FLAGS = JudgeEndpoint.from_config(config["judge"]).command_line()
# Said by every run and dry run (not by its jobs): when a judging job stops.
if JUDGED_TASKS and not (workflow.remote_exec or workflow.subprocess_exec):
    print(
        "codit: a judging job fails, before writing scores, when more than "
        f"{config['judge']['max_unparsable_share'] * 100:g}% of its judge's replies carry no "
        "readable verdict (judge.max_unparsable_share; docs/failures.md)",
        file=sys.stderr,
    )


def judge_gpus(wildcards):
    """A judge a judging job serves itself runs on the job's GPUs."""
    return config["judge"]["gpus"] if config["judge"]["serve"] else 0


def best_of_n_gpus(wildcards):
    """Only the `judge` scorer asks the judge."""
    return judge_gpus(wildcards) if parse_arm(wildcards.arm).scorer == "judge" else 0


def vllm_settings(gpus=0):
    """The config's `vllm` section, its python relative to the workflow's folder; a job's GPUs
    are its tensor-parallel size."""
    section = dict(config["vllm"])
    section["python"] = os.path.join(workflow.basedir, section["python"])
    return VllmSettings.from_section(section | {"tensor_parallel_size": max(1, gpus)})


def engine_settings(section, gpus=0):
    """How a sampling stage's engine runs: `section`'s batch size, dtype and device, on
    `generation.backend` (vLLM's settings only when it runs)."""
    backend = config["generation"]["backend"]
    vllm = vllm_settings(gpus) if backend == "vllm" else VllmSettings()
    return EngineSettings.from_config(section, backend=backend, vllm=vllm)


def generation_engine(wildcards):
    """The flags of a generation job's engine (dtype, batch composition and kernels change
    floating-point results: recorded too)."""
    return engine_settings(GEN, generation_gpus(wildcards)).command_line()


def judged_answer_settings(task, gpus):
    """Length of a judged benchmark's answers, on the evaluation's batch size, dtype and
    device; on vLLM split over the evaluated model's GPUs (`gpus`: a function of the
    job's wildcards)."""
    section = config["evaluation"][task]

    def settings(wildcards):
        engine = engine_settings(config["evaluation"], gpus(wildcards))
        return AnsweringSettings.from_config(section, engine=engine).command_line()

    return settings


def judging_flags():
    """`codit judged`'s benchmark flags: each enabled benchmark's folder, then its grading
    settings from its config section (codit.workflow.benchmarks: `options`)."""
    evaluation, registered = config["evaluation"], benchmarks_by_task()
    flags = [
        f"{registered[task].flag} {shlex.quote(folder)}"
        for task, folder in JUDGED_FOLDERS.items()
    ]
    for task in JUDGED_FOLDERS:
        benchmark = registered[task]
        flags += [
            f"{benchmark.option_flag(key)} {shlex.quote(str(evaluation[task][key]))}"
            for key in benchmark.options
        ]
    return " ".join(flags)


def judged_files(name, evaluated="{evaluated}"):
    """One file of every enabled benchmark's folder of an evaluated model, by task."""
    folders = {
        task: JUDGED_DIR.format(evaluated=evaluated, task=task) for task in JUDGED_TASKS
    }
    return {task: os.path.join(folder, name) for task, folder in folders.items()}


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


def public_source(wildcards):
    """A `public_datasets:` entry as the settings of `codit public`."""
    spec = public_spec(wildcards)
    settings = spec.settings
    chat = (
        settings["messages_field"] is not None
    )  # instead of instruction/response fields
    return PublicSource.from_config(
        settings,
        name=spec.name,
        source=f"hub:{spec.location}" if spec.kind == "hub" else spec.location,
        instruction_field=None if chat else settings["instruction_field"],
        response_field=None if chat else settings["response_field"],
        match_cards=(
            () if settings["size"] is not None else tuple(codit_cards_to_match())
        ),
    )


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


def chat_vector_specs(wildcards):
    """The three models a chat vector reads (the command loads all three alike)."""
    post, pre = GRID.pairs[wildcards.pair]
    return [post, pre, chat_vector_spec(wildcards).student]


def teacher_model(wildcards):
    """The teacher's post model, read for its architecture label (none for a public arm)."""
    if wildcards.pair == PUBLIC:
        return []
    return [GRID.pairs[wildcards.pair][0].location]


def student_model_flags(wildcards):
    """An evaluated student's teacher (read for the architecture label) and, if its config
    entry allows it, --trust-remote-code."""
    teacher = [f"--teacher {path}" for path in teacher_model(wildcards)]
    return " ".join(filter(None, [*teacher, trust_flag(student_spec(wildcards))]))


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


def pair_seed_offset(pair):
    """A teacher pair's `seed_offset` (none for the public arms, which belong to no pair)."""
    return 0 if pair == PUBLIC else config["teacher_pairs"][pair]["seed_offset"]


def generation_seed(wildcards):
    return GEN["seed"] + int(wildcards.seed) + pair_seed_offset(wildcards.pair)


def sft_seed(wildcards):
    return (
        config["sft"]["seed"] + int(wildcards.seed) + pair_seed_offset(wildcards.pair)
    )


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


def trust_flag(*models, flag="--trust-remote-code"):
    """The one way a command is allowed to run model repositories' own code: `flag` when a
    config entry of `models` says trust_remote_code, else nothing."""
    return flag if any(spec.trust_remote_code for spec in models) else ""


def pair_trust_remote_code(wildcards):
    """Each model of a pair runs its repository's code only if its own entry allows it."""
    post, pre = GRID.pairs[wildcards.pair]
    pre_flag = (
        trust_flag(pre, flag="--trust-remote-code-pre")
        if uses_pre_model(wildcards)
        else ""
    )
    return " ".join(filter(None, [trust_flag(post), pre_flag]))


def contrast_flags(wildcards):
    arm = parse_arm(wildcards.arm)
    if arm.kind != CODIT:
        return ""
    return f"--pre {pair_models(wildcards)['pre']} --alpha {arm.alpha!r} --beta {arm.beta!r}"


def shard_flags(wildcards):
    index, total = parse_shard(wildcards.shard)
    return f"--shard-index {index} --num-shards {total}"


def instruction_source_settings():
    """The config's `instructions:` as the settings of `codit instructions`."""
    settings = config["instructions"]
    source = INSTRUCTIONS_LOCATION
    return InstructionSource.from_config(
        settings,
        source=f"hub:{source}" if INSTRUCTIONS_KIND == "hub" else source,
        keep_if=settings["keep_if"] or None,
    )


def hub_model_id(wildcards):
    return GRID.models[wildcards.hubmodel].hub_id


def hub_model_revision(wildcards):
    return GRID.models[wildcards.hubmodel].revision


def task_selection():
    """Which lm-eval tasks, and where their YAMLs are: shared by prefetch and evaluation."""
    evaluation = config["evaluation"]
    return TaskSelection(
        tasks=",".join(evaluation["tasks"]),
        include_path=(TASK_INCLUDE_PATH,) if TASK_INCLUDE_PATH else (),
        default_tasks=evaluation["builtin_tasks"],
    )


def evaluation_settings():
    return EvaluationSettings.from_config(
        config["evaluation"], selection=task_selection()
    )


def student_labels(wildcards):
    """What the report needs to place an evaluated student (alpha and beta are read from the
    arm name); a public arm has no teacher pair, a chat-vector model no seed."""
    labels = {
        "teacher_pair": "" if wildcards.pair == PUBLIC else wildcards.pair,
        "student": wildcards.student,
        "arm": wildcards.arm,
        "seed": wildcards.get("seed", ""),
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


def student_gpus(wildcards):
    return student_spec(wildcards).gpus


def reference_gpus(wildcards):
    return GRID.references[wildcards.model].gpus


# ---- targets ------------------------------------------------------------------------------


def dataset_cards():
    """The card of every dataset a student is trained on (the report's datasets table)."""
    cards = {
        f"{dataset_dir(pair, arm, seed)}/card.json"
        for pair, arm, seed in trained_datasets(GRID)
    }
    return sorted(cards)


def student_evaluations():
    trained = [
        job.fill(f"{EVAL_TRAINED}.json") for job in of_rule(JOBS, "evaluate_student")
    ]
    edited = [
        job.fill(f"{EVAL_CHAT_VECTOR}.json")
        for job in of_rule(JOBS, "evaluate_chatvector")
    ]
    return trained + edited


def student_sample_dirs():
    return [path.removesuffix(".json") + ".samples" for path in student_evaluations()]


def reference_evaluations():
    return [
        job.fill(f"{EVAL_REFERENCE}.json")
        for job in of_rule(JOBS, "evaluate_reference")
    ]


def report_path(name):
    """One output of `codit report`, by its name in codit.workflow.jobs.REPORT_OUTPUTS."""
    return f"{REPORT_DIR}/{REPORT_OUTPUTS[name]}"


def judged_outputs(name):
    """One file of every judging job for every benchmark: its scores or per-item samples."""
    return [
        path
        for job in of_rule(JOBS, "judge_answers")
        for path in judged_files(name, job.get("evaluated")).values()
    ]


def final_targets():
    return [report_path(name) for name in REPORT_OUTPUTS]
