"""Cross-field checks of a validated workflow config, and where each model and file comes from.

The JSON schema (workflow/schemas/config.schema.yaml) checks types, ranges and unknown keys and
fills defaults; this module checks what a schema cannot: that every name refers to a model, that
two models never share a path name, that local paths exist. Errors name the config key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codit.naming import DIRECT_ARM, codit_arm, model_slug

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
    if "tinyworld" in entry:
        location = f"{TINYWORLD_DIR}/models/{entry['tinyworld']}"
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
class Grid:
    """Every axis of the experiment, resolved from the config."""

    pairs: dict[str, tuple[ModelSpec, ModelSpec]]  # pair -> (post, pre)
    arms: list[str]
    students: dict[str, ModelSpec]  # slug -> spec
    references: dict[str, ModelSpec]  # slug -> spec
    models: dict[str, ModelSpec]  # slug -> spec, every model the run touches

    @property
    def uses_tinyworld(self) -> bool:
        return any(spec.kind == "tinyworld" for spec in self.models.values())


def arms_of(config: dict[str, Any]) -> list[str]:
    """Dataset arms: the direct baseline (if on), then CoDIT for every (alpha, beta)."""
    generation = config["generation"]
    arms = [DIRECT_ARM] if generation["direct_baseline"] else []
    arms += [codit_arm(a, b) for a in generation["alphas"] for b in generation["betas"]]
    return arms


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

    # Only models some job touches are part of the run; unused `models` entries are fine.
    used = {s.slug for pair in pairs.values() for s in pair} | set(students) | set(references)
    return Grid(
        pairs, arms_of(config), students, references, {k: v for k, v in models.items() if k in used}
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
