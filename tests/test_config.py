"""Config validation: the JSON schema (types, ranges, defaults) and the cross-field checks."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from codit.config import ConfigError, build_grid, instruction_source, resolve_model
from codit.naming import codit_arm, format_number, model_slug, parse_arm

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def validated(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate(config, SCHEMA)
    return config


def test_tiny_world_config_validates_and_fills_defaults():
    config = validated(load("config.yaml"))
    assert config["sft"]["target_modules"] == "all-linear"  # default from the schema
    assert config["models"]["tiny-llama-base"]["trust_remote_code"] is False
    grid = build_grid(config)
    assert list(grid.pairs) == ["tiny-llama"]
    assert grid.arms == [
        "direct",
        "codit_alpha0.001_beta1",
        "codit_alpha0.01_beta1",
        "codit_alpha0.1_beta1",
        "codit_alpha0.3_beta1",
    ]
    assert set(grid.students) == {"tiny-llama-base", "tiny-gpt2-base"}
    assert grid.uses_tinyworld


def test_paper_config_validates():
    config = validated(load("paper.yaml"))
    grid = build_grid(config)
    assert len(grid.pairs) == 3 and len(grid.students) == 3 and len(grid.arms) == 6
    post, pre = grid.pairs["qwen3-8b"]
    assert post.hub_id == "Qwen/Qwen3-8B" and pre.hub_id == "Qwen/Qwen3-8B-Base"
    assert post.chat_template_kwargs == {"enable_thinking": False}
    assert instruction_source(config) == ("hub", "lmsys/lmsys-chat-1m")


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        (("generation", "alphas"), [0.01, 1.5], "1.5 is greater than the maximum of 1"),
        (("generation", "betas"), [-1.0], "-1.0 is less than the minimum of 0"),
        (("generation", "temperature"), 0, "less than or equal to the minimum of 0"),
        (("generation", "top_p"), 1.5, "1.5 is greater than the maximum of 1"),
        (("generation", "alphas"), [], "should be non-empty"),
        (("generation", "alpha"), 0.1, "Additional properties are not allowed ('alpha'"),
        (("students",), ["tiny-llama-base", "tiny-llama-base"], "has non-unique elements"),
        (("sft", "epochs"), "two", "'two' is not of type 'number'"),
        (("teacher_pairs",), {}, "should be non-empty"),
        (("models", "mine"), {"hub": "not a hub id"}, "'not a hub id' does not match"),
        (("teacher_pairs", "../../etc"), {"post": "a", "pre": "b"}, "'../../etc' does not match"),
    ],
)
def test_schema_refuses_bad_values_naming_the_key(key, value, fragment):
    config = load("config.yaml")
    target = config
    for part in key[:-1]:
        target = target[part]
    target[key[-1]] = value
    with pytest.raises(WorkflowError) as error:
        validated(config)
    message = str(error.value)
    assert fragment in message
    assert "".join(f"['{part}']" for part in key[:-1]) in message


def test_unknown_model_name_is_refused_with_its_key():
    config = load("config.yaml")
    config["teacher_pairs"]["tiny-llama"]["pre"] = "tiny-llama-bse"
    with pytest.raises(
        ConfigError, match=r"teacher_pairs\.tiny-llama\.pre: model 'tiny-llama-bse'"
    ):
        build_grid(validated(config))


def test_two_models_with_one_path_name_are_refused():
    config = load("config.yaml")
    config["models"]["Qwen--Qwen3-8B"] = {"tinyworld": "gpt2-base"}
    config["students"] = ["Qwen--Qwen3-8B", "Qwen/Qwen3-8B"]
    with pytest.raises(
        ConfigError, match=r"students\[1\].*both map to the path name 'Qwen--Qwen3-8B'"
    ):
        build_grid(validated(config))


def test_missing_local_model_path_is_refused(tmp_path):
    config = load("config.yaml")
    config["models"]["local-student"] = {"path": str(tmp_path / "nowhere")}
    config["students"] = ["local-student"]
    with pytest.raises(ConfigError, match=r"models\.local-student: .*does not exist"):
        build_grid(validated(config))


def test_pair_of_one_model_is_refused():
    config = load("config.yaml")
    config["teacher_pairs"]["tiny-llama"]["pre"] = "tiny-llama-instruct"
    with pytest.raises(ConfigError, match="post and pre are the same model"):
        build_grid(validated(config))


def test_hub_ids_become_path_safe_slugs():
    spec = resolve_model({"models": {}}, "Qwen/Qwen3-8B", "students[0]")
    assert spec.kind == "hub" and spec.slug == "Qwen--Qwen3-8B"
    assert spec.location == "resources/hub/models/Qwen--Qwen3-8B"
    elsewhere = {"models": {}, "hub_cache": "/scratch/shared/hub/"}
    moved = resolve_model(elsewhere, "Qwen/Qwen3-8B", "students[0]")
    assert moved.location == "/scratch/shared/hub/models/Qwen--Qwen3-8B"
    assert model_slug("org/name with space") == "org--name-with-space"
    with pytest.raises(ValueError):
        model_slug("../")


def test_arm_names_round_trip():
    assert codit_arm(0.01, 1.0) == "codit_alpha0.01_beta1"
    assert parse_arm("codit_alpha0.01_beta1") == ("codit", 0.01, 1.0)
    assert parse_arm("codit_alpha1e-05_beta0.5") == ("codit", 1e-05, 0.5)
    assert parse_arm("direct") == ("direct", None, None)
    assert format_number(0.3) == "0.3"
    with pytest.raises(ValueError, match="neither 'direct'"):
        parse_arm("codit_alpha_beta")


@pytest.mark.parametrize(
    "name", ["x/../../etc", "../up", "a/./b", "owner/name..", "spaces and/slashes//", "..."]
)
def test_model_names_never_escape_their_folder(name):
    """Output paths are built from slugs: one path component, never `.` or `..`."""
    try:
        slug = model_slug(name)
    except ValueError as error:
        assert "gives no usable path name" in str(error)
        return
    assert "/" not in slug and slug not in {".", ".."} and not slug.startswith(".")
    assert (Path("results") / slug).resolve().parent == Path("results").resolve()
