"""Cross-field checks of a validated workflow config, and where each model and file comes from.

The JSON schema (workflow/schemas/config.schema.yaml) checks types, ranges and unknown keys and
fills defaults; this module checks what a schema cannot: that every name refers to a model, that
two models never share a path name, that local paths exist. Errors name the config key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codit.workflow.benchmarks import URL_SCHEMES, Benchmark, benchmarks, by_task
from codit.workflow.naming import (
    DIRECT_ARM,
    PUBLIC,
    best_of_n_arm,
    chat_vector_arm,
    codit_arm,
    direct_sample_arm,
    model_slug,
    public_arm,
)

TINYWORLD_DIR = "resources/tinyworld"
DEFAULT_HUB_CACHE = "resources/hub"
# Set in every compute job: clusters' compute nodes often have no network.
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key path and the value."""


@dataclass(frozen=True)
class ModelSpec:
    """One model as the workflow sees it: its path name, where it comes from, how to load it."""

    name: str
    slug: str
    kind: str  # "tinyworld", "path" or "hub"
    location: str  # the directory jobs load from
    hub_id: str | None = None
    revision: str = "main"
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    trust_remote_code: bool = False
    gpus: int = 0


def hub_cache(config: dict[str, Any]) -> str:
    """The folder that holds downloaded models, the HF cache (datasets) and NLTK data."""
    return config.get("hub_cache", DEFAULT_HUB_CACHE).rstrip("/")


def hub_environment(cache_dir: str, offline: bool) -> dict[str, str]:
    """Environment variables that point the HF libraries and NLTK at `cache_dir`."""
    environment = {
        "HF_HOME": f"{cache_dir}/huggingface",
        "NLTK_DATA": f"{cache_dir}/nltk_data",
    }
    if offline:
        environment.update(dict.fromkeys(OFFLINE_VARIABLES, "1"))
    return environment


def tinyworld_model_dir(model: str, world: int | None = None) -> str:
    """Where a tiny-world model is built: the world's own models, or those of world `world`
    (a teacher trained with that seed from the same data)."""
    if world is None:
        return f"{TINYWORLD_DIR}/models/{model}"
    return f"{TINYWORLD_DIR}/worlds/{world}/{model}"


def resolve_model(config: dict[str, Any], name: str, key: str) -> ModelSpec:
    """Resolve a model name used at config key `key` to its spec."""
    entry = config.get("models", {}).get(name)
    if entry is None:
        if not HUB_ID.match(name):
            raise ConfigError(
                f"{key}: model {name!r} is neither defined under `models` nor a Hub id (owner/name)"
            )
        entry = {"hub": name}
    slug = model_slug(name)
    options = {
        "chat_template_kwargs": dict(entry.get("chat_template_kwargs", {})),
        "trust_remote_code": bool(entry.get("trust_remote_code", False)),
        "gpus": int(entry.get("gpus", 0)),
    }
    if "world" in entry and "tinyworld" not in entry:
        raise ConfigError(f"models.{name}.world: a world seed needs `tinyworld` (a tiny model)")
    if "tinyworld" in entry:
        location = tinyworld_model_dir(entry["tinyworld"], entry.get("world"))
        return ModelSpec(name, slug, "tinyworld", location, **options)
    if "path" in entry:
        return ModelSpec(name, slug, "path", entry["path"], **options)
    return ModelSpec(
        name,
        slug,
        "hub",
        f"{hub_cache(config)}/models/{slug}",
        hub_id=entry["hub"],
        revision=entry.get("revision", "main"),
        **options,
    )


@dataclass(frozen=True)
class PublicSpec:
    """A public instruction dataset arm: where it comes from and how its fields map."""

    name: str
    arm: str
    kind: str  # "tinyworld", "file" or "hub"
    location: str  # path, or Hub dataset id
    settings: dict[str, Any]  # the config entry, defaults filled


@dataclass(frozen=True)
class ChatVectorSpec:
    """One chat-vector model: student + ratio x (post - pre) of a teacher pair."""

    pair: str
    student: ModelSpec
    ratio: float

    @property
    def arm(self) -> str:
        return chat_vector_arm(self.ratio)


@dataclass(frozen=True)
class Grid:
    """Every axis of the experiment, resolved from the config."""

    pairs: dict[str, tuple[ModelSpec, ModelSpec]]  # pair -> (post, pre)
    arms: list[str]  # arms every student is fine-tuned on, per teacher pair
    students: dict[str, ModelSpec]  # slug -> spec
    references: dict[str, ModelSpec]  # slug -> spec
    models: dict[str, ModelSpec]  # slug -> spec, every model the run touches
    seeds: list[int] = field(default_factory=lambda: [0])
    # Public arms belong to no teacher pair, so every pair shares their training noise.
    public_seeds: list[int] = field(default_factory=lambda: [0])
    generated_arms: list[str] = field(default_factory=list)  # arms sampled from a teacher
    public: dict[str, PublicSpec] = field(default_factory=dict)  # arm -> spec
    chat_vectors: list[ChatVectorSpec] = field(default_factory=list)

    @property
    def uses_tinyworld(self) -> bool:
        return any(spec.kind == "tinyworld" for spec in self.models.values())


def arms_of(config: dict[str, Any]) -> list[str]:
    """Arms trained per teacher pair: direct (if on), Best-of-N, then CoDIT per (alpha, beta)."""
    generation = config["generation"]
    arms = [DIRECT_ARM] if generation["direct_baseline"] else []
    best = config.get("best_of_n", {})
    arms += [
        best_of_n_arm(n, scorer) for n in best.get("n", []) for scorer in best.get("scorers", [])
    ]
    arms += [codit_arm(a, b) for a in generation["alphas"] for b in generation["betas"]]
    return arms


def generated_arms_of(config: dict[str, Any]) -> list[str]:
    """Arms sampled from a teacher: direct (also when only Best-of-N needs it), the further
    direct samples Best-of-N scores, and CoDIT."""
    generation = config["generation"]
    largest_n = max(config.get("best_of_n", {}).get("n", []) or [0])
    arms = [DIRECT_ARM] if generation["direct_baseline"] or largest_n else []
    arms += [direct_sample_arm(j) for j in range(1, largest_n)]
    arms += [codit_arm(a, b) for a in generation["alphas"] for b in generation["betas"]]
    return arms


def check_best_of_n(config: dict[str, Any]) -> None:
    """Scorers need what they score with: the oracle the tiny world, the judge an endpoint."""
    best = config.get("best_of_n", {})
    if bool(best.get("n")) != bool(best.get("scorers")):
        raise ConfigError(
            "best_of_n: give both 'n' and 'scorers' (or neither); got "
            f"n={best.get('n', [])} scorers={best.get('scorers', [])}"
        )
    scorers = best.get("scorers", [])
    if "oracle" in scorers and config["instructions"]["source"] != "tinyworld":
        raise ConfigError(
            "best_of_n.scorers: 'oracle' scores with the tiny world's own rules and needs "
            "instructions.source: tinyworld "
            f"(got {config['instructions']['source']!r}); use 'judge'"
        )
    if "judge" in best:
        raise ConfigError(
            "best_of_n.judge: moved to the top-level `judge:` section (shared by Best-of-N and "
            "the judged benchmarks)"
        )
    if "judge" in scorers:
        check_judge(config, "best_of_n.scorers: 'judge'")


# The config's JSON schema, but for the judged benchmarks' sections (config_schema adds them).
SCHEMA_FILE = Path("workflow/schemas/config.schema.yaml")


def schema_file() -> Path:
    """The schema file: the working directory's, else this source tree's (`codit cost` run
    from elsewhere)."""
    if SCHEMA_FILE.is_file():
        return SCHEMA_FILE
    return Path(__file__).resolve().parents[3] / SCHEMA_FILE


def config_schema(path: str | Path | None = None) -> dict[str, Any]:
    """The workflow config's JSON schema: the schema file with a section evaluation.<task> for
    every registered judged benchmark (codit.workflow.benchmarks)."""
    import yaml

    schema = yaml.safe_load(Path(path or schema_file()).read_text())
    evaluation = schema["properties"]["evaluation"]["properties"]
    for benchmark in benchmarks():
        evaluation[benchmark.task] = benchmark.schema()
    return schema


def validate_config(config: dict[str, Any], schema: str | Path | None = None) -> None:
    """Snakemake's validation (which fills the defaults) against `config_schema`; a
    WorkflowError names the offending key."""
    import tempfile

    import yaml
    from snakemake.utils import validate

    with tempfile.TemporaryDirectory(prefix="codit-schema-") as folder:
        path = Path(folder) / "config.schema.yaml"
        path.write_text(yaml.safe_dump(config_schema(schema), sort_keys=False))
        validate(config, str(path))


def check_fetch_sources(config: dict[str, Any], benchmark: Benchmark) -> None:
    """A fetch source is a URL or a folder that exists, and only read for the published bench."""
    task = benchmark.task
    section = config["evaluation"][task]
    for key in benchmark.fetch_sources:
        source = section.get(key)
        if source is None:
            continue
        if section["bench"] != benchmark.published:
            raise ConfigError(
                f"evaluation.{task}.{key}: only read when evaluation.{task}.bench is "
                f"{benchmark.published!r} (the fetched data), not {section['bench']!r}"
            )
        if not source.startswith(URL_SCHEMES) and not Path(source).is_dir():
            raise ConfigError(
                f"evaluation.{task}.{key}: {source!r} is neither an http(s):// or file:// URL "
                "nor a folder that exists"
            )


def judged_bench_folder(config: dict[str, Any], task: str) -> str:
    """A judged benchmark's bench folder: its published data in the hub cache, the tiny
    world's, or the config's own folder."""
    bench = config["evaluation"][task]["bench"]
    if bench == by_task()[task].published:
        return f"{hub_cache(config)}/{task}"
    return f"{TINYWORLD_DIR}/{task}" if bench == "tinyworld" else bench


def check_judged_benchmarks(config: dict[str, Any]) -> None:
    """A judged benchmark needs a judge, and its bench: the published one (fetched), the tiny
    world's, or a folder that exists with the benchmark's data file."""
    for benchmark in benchmarks():
        section = config["evaluation"].get(benchmark.task, {})
        if not section.get("enabled"):
            continue
        key = f"evaluation.{benchmark.task}"
        check_judge(config, key)
        check_fetch_sources(config, benchmark)
        bench, published = section["bench"], benchmark.published
        if bench == "tinyworld":
            if not benchmark.tinyworld:
                raise ConfigError(f"{key}.bench: the tiny world has no {benchmark.name}")
            if config["instructions"]["source"] != "tinyworld":
                raise ConfigError(f"{key}.bench: 'tinyworld' needs the tiny world")
        elif bench != published and not Path(bench, benchmark.data_file).is_file():
            raise ConfigError(
                f"{key}.bench: {bench!r} is neither {published!r}, 'tinyworld' nor a folder "
                f"with {benchmark.data_file}"
            )


def check_judge(config: dict[str, Any], needed_by: str) -> None:
    """A judge that some stage (`needed_by`) asks: where it is and what it is."""
    judge = config.get("judge", {})
    if not (judge.get("url") or judge.get("serve")):
        raise ConfigError(
            f"judge: {needed_by} needs a judge: give 'url' (a running endpoint) or 'serve' "
            "(the command that serves it)"
        )
    if judge.get("url") and judge.get("serve"):
        raise ConfigError("judge: give 'url' or 'serve', not both")
    if not judge.get("model"):
        raise ConfigError(f"judge: {needed_by} needs the judge's 'model'")


def public_datasets(config: dict[str, Any]) -> dict[str, PublicSpec]:
    """arm -> PublicSpec for every entry of `public_datasets`."""
    specs = {}
    for name, entry in config.get("public_datasets", {}).items():
        key, source = f"public_datasets.{name}.source", entry["source"]
        if source == "tinyworld":
            kind, location = "tinyworld", f"{TINYWORLD_DIR}/instructions/public.jsonl"
        elif source.startswith("hub:"):
            kind, location = "hub", source.removeprefix("hub:")
            if not HUB_ID.match(location):
                raise ConfigError(f"{key}: {source!r} is not hub:<owner>/<name>")
        elif Path(source).is_file():
            kind, location = "file", source
        else:
            raise ConfigError(f"{key}: file {source!r} does not exist")
        arm = public_arm(name)
        specs[arm] = PublicSpec(name, arm, kind, location, dict(entry))
    return specs


def known_architecture(spec: ModelSpec) -> str | None:
    """A model's architecture (config.json model_type) when it can be known before any job
    runs: tiny-world models by name, local checkpoints from their config.json."""
    if spec.kind == "tinyworld":
        return Path(spec.location).name.split("-")[0]
    config_file = Path(spec.location) / "config.json"
    if spec.kind == "path" and config_file.is_file():
        return json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    return None  # a Hub model not downloaded yet: `codit chatvector` checks it when it runs


def build_grid(config: dict[str, Any]) -> Grid:
    """Resolve and cross-check every model the config names; raise ConfigError on a problem."""
    models: dict[str, ModelSpec] = {}

    def register(spec: ModelSpec, key: str) -> ModelSpec:
        known = models.get(spec.slug)
        if known is not None and known != spec:
            raise ConfigError(
                f"{key}: model {spec.name!r} and model {known.name!r} both map to the path name "
                f"{spec.slug!r}; rename one of them"
            )
        if spec.kind == "path" and not Path(spec.location).exists():
            raise ConfigError(
                f"{key}: model {spec.name!r}: local path {spec.location!r} does not exist"
            )
        models[spec.slug] = spec
        return spec

    for name in config.get("models", {}):
        register(resolve_model(config, name, f"models.{name}"), f"models.{name}")

    pairs = {}
    for pair, members in config["teacher_pairs"].items():
        post = register(
            resolve_model(config, members["post"], f"teacher_pairs.{pair}.post"),
            f"teacher_pairs.{pair}.post",
        )
        pre = register(
            resolve_model(config, members["pre"], f"teacher_pairs.{pair}.pre"),
            f"teacher_pairs.{pair}.pre",
        )
        if post.slug == pre.slug:
            raise ConfigError(
                f"teacher_pairs.{pair}: post and pre are the same model {post.name!r}"
            )
        pairs[pair] = (post, pre)

    students = {}
    for index, name in enumerate(config["students"]):
        spec = register(resolve_model(config, name, f"students[{index}]"), f"students[{index}]")
        if spec.slug in students:
            raise ConfigError(f"students[{index}]: student {name!r} is listed twice")
        students[spec.slug] = spec

    references = {}
    for index, name in enumerate(config["evaluation"]["references"]):
        key = f"evaluation.references[{index}]"
        spec = register(resolve_model(config, name, key), key)
        references[spec.slug] = spec

    if PUBLIC in pairs:
        raise ConfigError(
            f"teacher_pairs.{PUBLIC}: the name is reserved for public datasets' results; rename it"
        )
    check_best_of_n(config)
    check_judged_benchmarks(config)
    chat_vectors = []
    settings = config.get("chat_vector", {})
    for pair, names in settings.get("students", {}).items():
        if pair not in pairs:
            raise ConfigError(
                f"chat_vector.students.{pair}: no such teacher pair (known: {', '.join(pairs)})"
            )
        post = pairs[pair][0]
        for index, name in enumerate(names):
            key = f"chat_vector.students.{pair}[{index}]"
            student = register(resolve_model(config, name, key), key)
            mine, theirs = known_architecture(student), known_architecture(post)
            if mine and theirs and mine != theirs:
                raise ConfigError(
                    f"{key}: student {name!r} is a {mine} model but teacher pair {pair!r} is "
                    f"{theirs}: theta_post - theta_pre only adds to a model of the same "
                    "architecture and shapes (train it on the pair's data instead)"
                )
            chat_vectors += [ChatVectorSpec(pair, student, r) for r in settings.get("ratios", [])]
    if settings.get("students") and not settings.get("ratios"):
        raise ConfigError("chat_vector: 'students' given but no 'ratios'")

    # Only models some job touches are part of the run; unused `models` entries are fine.
    used = {s.slug for pair in pairs.values() for s in pair} | set(students) | set(references)
    used |= {vector.student.slug for vector in chat_vectors}
    return Grid(
        pairs,
        arms_of(config),
        students,
        references,
        {k: v for k, v in models.items() if k in used},
        seeds=list(config.get("seeds", [0])),
        public_seeds=list(config.get("public_seeds") or config.get("seeds", [0])),
        generated_arms=generated_arms_of(config),
        public=public_datasets(config),
        chat_vectors=chat_vectors,
    )


def instruction_source(config: dict[str, Any]) -> tuple[str, str]:
    """(kind, location) of the instruction pool: ("tinyworld"|"file"|"hub", path or dataset id)."""
    source = config["instructions"]["source"]
    if source == "tinyworld":
        return "tinyworld", f"{TINYWORLD_DIR}/instructions/pool.jsonl"
    if source.startswith("hub:"):
        dataset = source.removeprefix("hub:")
        if not HUB_ID.match(dataset):
            raise ConfigError(f"instructions.source: {source!r} is not hub:<owner>/<name>")
        return "hub", dataset
    if not Path(source).is_file():
        raise ConfigError(f"instructions.source: file {source!r} does not exist")
    return "file", source


def task_include_path(config: dict[str, Any]) -> str | None:
    """The lm-eval include path (the tiny world's tasks folder for `tinyworld`)."""
    include = config["evaluation"]["include_path"]
    if include == "tinyworld":
        return f"{TINYWORLD_DIR}/tasks"
    if include is not None and not Path(include).is_dir():
        raise ConfigError(f"evaluation.include_path: folder {include!r} does not exist")
    return include
