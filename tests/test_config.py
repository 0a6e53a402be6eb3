"""Config validation: the JSON schema (types, ranges, defaults) and the cross-field checks."""

import copy
import re
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError

from codit.workflow.benchmarks import by_task, fetch_flags
from codit.workflow.config import (
    ConfigError,
    build_grid,
    instruction_source,
    resolve_model,
    validate_config,
)
from codit.workflow.jobs import trained_datasets
from codit.workflow.naming import (
    ARM_PATTERN,
    PUBLIC,
    best_of_n_arm,
    chat_vector_arm,
    codit_arm,
    direct_sample_arm,
    format_number,
    model_slug,
    parse_arm,
    public_arm,
)

REPO = Path(__file__).resolve().parents[1]


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def validated(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate_config(config)
    return config


def test_tiny_world_config_validates_and_fills_defaults():
    config = validated(load("config.yaml"))
    assert config["sft"]["target_modules"] == "all-linear"  # default from the schema
    assert config["models"]["tiny-llama-base"]["trust_remote_code"] is False
    assert config["teacher_pairs"]["tiny-llama"]["seed_offset"] == 0  # pairs share seeds
    grid = build_grid(config)
    assert list(grid.pairs) == ["tiny-llama"]
    assert grid.arms == [
        "direct",
        "bestof4_oracle",
        "codit_alpha0.001_beta1",
        "codit_alpha0.01_beta1",
        "codit_alpha0.1_beta1",
        "codit_alpha0.3_beta1",
    ]
    assert set(grid.students) == {"tiny-llama-base", "tiny-gpt2-base"}
    assert grid.uses_tinyworld
    assert grid.seeds == [0, 1, 2]
    assert grid.generated_arms[:4] == [
        "direct",
        "direct_sample1",
        "direct_sample2",
        "direct_sample3",
    ]
    assert list(grid.public) == ["public_tinyworld-rules"]
    assert (
        grid.public["public_tinyworld-rules"].location
        == "resources/tinyworld/instructions/public.jsonl"
    )
    assert [(v.pair, v.student.slug, v.arm) for v in grid.chat_vectors] == [
        ("tiny-llama", "tiny-llama-base", "chatvector_r0.5"),
        ("tiny-llama", "tiny-llama-base", "chatvector_r1"),
    ]


def test_paper_config_validates():
    config = validated(load("paper.yaml"))
    grid = build_grid(config)
    assert len(grid.pairs) == 3 and len(grid.students) == 3 and len(grid.arms) == 7
    assert "bestof4_judge" in grid.arms and grid.seeds == [0, 1, 2]
    assert grid.public["public_alpaca"].location == "tatsu-lab/alpaca"
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


def test_a_world_is_a_teacher_of_its_own_seed_and_needs_the_tiny_world():
    config = load("decide.yaml")
    grid = build_grid(validated(config))
    post, pre = grid.pairs["world3"]
    assert (post.location, pre.location) == (
        "resources/tinyworld/worlds/3/llama-instruct",
        "resources/tinyworld/worlds/3/llama-base",
    )
    # the students are the tiny world's own models, shared by every world
    assert grid.models["tiny-llama-base"].location == "resources/tinyworld/models/llama-base"
    assert len(grid.pairs) == 12 and list(grid.students) == ["tiny-llama-base", "tiny-gpt2-base"]
    config["models"]["elsewhere"] = {"path": "/models/x", "world": 2}
    with pytest.raises(ConfigError, match=r"models\.elsewhere\.world: a world seed needs"):
        resolve_model(config, "elsewhere", "students[0]")


def test_public_arms_train_with_their_own_seeds_defaulting_to_the_grids():
    grid = build_grid(validated(load("config.yaml")))
    assert grid.public_seeds == grid.seeds == [0, 1, 2]
    grid = build_grid(validated(load("decide.yaml")))
    assert (grid.seeds, grid.public_seeds) == ([0], [0, 1, 2, 3])
    trained = trained_datasets(grid)
    assert [seed for pair, _, seed in trained if pair == PUBLIC] == [0, 1, 2, 3]
    assert {seed for pair, _, seed in trained if pair != PUBLIC} == {0}
    with pytest.raises(WorkflowError, match="non-unique"):
        validated({**load("decide.yaml"), "public_seeds": [1, 1]})


def test_arm_names_round_trip():
    assert codit_arm(0.01, 1.0) == "codit_alpha0.01_beta1"
    arm = parse_arm("codit_alpha0.01_beta1")
    assert (arm.kind, arm.alpha, arm.beta) == ("codit", 0.01, 1.0)
    arm = parse_arm("codit_alpha1e-05_beta0.5")
    assert (arm.kind, arm.alpha, arm.beta) == ("codit", 1e-05, 0.5)
    assert parse_arm("direct").kind == "direct" and parse_arm("direct").alpha is None
    assert parse_arm(direct_sample_arm(2)).sample == 2 and direct_sample_arm(0) == "direct"
    arm = parse_arm(best_of_n_arm(4, "judge"))
    assert (arm.name, arm.kind, arm.n, arm.scorer) == ("bestof4_judge", "bestofn", 4, "judge")
    assert parse_arm(public_arm("alpaca")).dataset == "alpaca"
    arm = parse_arm(chat_vector_arm(0.5))
    assert (arm.name, arm.kind, arm.ratio) == ("chatvector_r0.5", "chatvector", 0.5)
    assert format_number(0.3) == "0.3"
    for bad in ("codit_alpha_beta", "direct_sample0", "bestof4_gpt", "public_a_b"):
        with pytest.raises(ValueError, match="is none of"):
            parse_arm(bad)
        assert not re.fullmatch(ARM_PATTERN, bad)


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


def with_mt_bench(bench: str = "fastchat") -> dict:
    """The tiny world's `evaluation:` with MT-Bench on."""
    mt_bench = {"enabled": True, "bench": bench, "reference": "gpt-4", "max_new_tokens": 64}
    return {**validated(load("config.yaml"))["evaluation"], "mt_bench": mt_bench}


def without_judge() -> dict:
    """The tiny world's `judge:` with neither a url nor a served judge."""
    return {**validated(load("config.yaml"))["judge"], "serve": None}


def tiny_world_with(**changes) -> dict:
    config = validated(load("config.yaml"))
    config.update(copy.deepcopy(changes))
    return config


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        (
            {"chat_vector": {"ratios": [0.5], "students": {"tiny-llama": ["tiny-gpt2-base"]}}},
            r"chat_vector\.students\.tiny-llama\[0\]: student 'tiny-gpt2-base' is a gpt2 model "
            r"but teacher pair 'tiny-llama' is llama",
        ),
        (
            {"chat_vector": {"ratios": [0.5], "students": {"tiny-gpt2": ["tiny-llama-base"]}}},
            r"chat_vector\.students\.tiny-gpt2: no such teacher pair",
        ),
        (
            {"chat_vector": {"ratios": [], "students": {"tiny-llama": ["tiny-llama-base"]}}},
            "'students' given but no 'ratios'",
        ),
        (
            {"best_of_n": {"n": [4], "scorers": ["judge"]}, "judge": {"model": "m"}},
            r"judge: best_of_n\.scorers: 'judge' needs a judge: give 'url' \(a running endpoint\)",
        ),
        (
            {"best_of_n": {"n": [4], "scorers": ["judge"]}, "judge": {"url": "http://j/v1"}},
            r"judge: best_of_n\.scorers: 'judge' needs the judge's 'model'",
        ),
        (
            {
                "best_of_n": {"n": [4], "scorers": ["judge"]},
                "judge": {"url": "http://j/v1", "serve": "vllm serve m", "model": "m"},
            },
            r"judge: give 'url' or 'serve', not both",
        ),
        (
            {"best_of_n": {"n": [4], "scorers": ["oracle"], "judge": {"url": "http://j/v1"}}},
            r"best_of_n\.judge: moved to the top-level `judge:` section",
        ),
        (
            {"evaluation": with_mt_bench(), "judge": without_judge()},
            r"judge: evaluation\.mt_bench needs a judge: give 'url'",
        ),
        (
            {
                "evaluation": with_mt_bench(bench="no/such/folder"),
                "judge": {"url": "http://j/v1", "model": "m"},
            },
            r"evaluation\.mt_bench\.bench: 'no/such/folder' is neither 'fastchat', 'tinyworld'",
        ),
        (
            {
                "evaluation": {
                    **with_mt_bench(),
                    "alpaca_eval": {"enabled": True, "bench": "no/folder"},
                },
                "judge": {"url": "http://j/v1", "model": "m"},
            },
            r"evaluation\.alpaca_eval\.bench: 'no/folder' is neither 'alpaca_eval', 'tinyworld' "
            r"nor a folder with reference_outputs\.json",
        ),
        (
            {
                "evaluation": {**with_mt_bench(), "wildbench": {"enabled": True, "bench": "x"}},
                "judge": {"url": "http://j/v1", "model": "m"},
            },
            r"evaluation\.wildbench\.bench: 'x' is neither 'wildbench', 'tinyworld' nor a "
            r"folder with tasks\.jsonl",
        ),
        (
            {
                "evaluation": {
                    **with_mt_bench(),
                    "mt_bench": {"enabled": False},
                    "alpaca_eval": {"enabled": True, "bench": "alpaca_eval"},
                },
                "judge": without_judge(),
            },
            r"judge: evaluation\.alpaca_eval needs a judge: give 'url'",
        ),
        (
            {
                "evaluation": {
                    **with_mt_bench(),
                    "mt_bench": {**with_mt_bench()["mt_bench"], "source": "no/such/mirror"},
                },
                "judge": {"url": "http://j/v1", "model": "m"},
            },
            r"evaluation\.mt_bench\.source: 'no/such/mirror' is neither an http\(s\):// or "
            r"file:// URL nor a folder that exists",
        ),
        (
            {
                "evaluation": {
                    **with_mt_bench(bench="tinyworld"),
                    "wildbench": {
                        "enabled": True,
                        "bench": "tinyworld",
                        "template_source": "https://example.org/WildBench",
                    },
                },
                "judge": {"url": "http://j/v1", "model": "m"},
            },
            r"evaluation\.wildbench\.template_source: only read when evaluation\.wildbench\.bench "
            r"is 'wildbench' \(the fetched data\), not 'tinyworld'",
        ),
        ({"best_of_n": {"n": [4], "scorers": []}}, "give both 'n' and 'scorers'"),
        (
            {"public_datasets": {"mine": {"source": "no/such/file.jsonl"}}},
            r"public_datasets\.mine\.source: file 'no/such/file.jsonl' does not exist",
        ),
        (
            {"public_datasets": {"mine": {"source": "hub:not a dataset"}}},
            r"public_datasets\.mine\.source: 'hub:not a dataset' is not hub:<owner>/<name>",
        ),
    ],
)
def test_baseline_arms_are_checked_naming_the_key(changes, fragment):
    with pytest.raises(ConfigError, match=fragment):
        build_grid(tiny_world_with(**changes))


def test_fetch_sources_become_the_fetch_commands_flags(tmp_path):
    config = validated(load("paper.yaml"))
    evaluation, registered = config["evaluation"], by_task()
    assert [fetch_flags(evaluation[task], registered[task]) for task in registered] == [[], [], []]
    mirror = tmp_path / "fastchat-data"
    mirror.mkdir()
    config["evaluation"]["mt_bench"]["source"] = str(mirror)
    config["evaluation"]["alpaca_eval"]["template_source"] = "https://mirror.example/alpaca_eval"
    build_grid(config)  # accepted
    assert fetch_flags(evaluation["mt_bench"], registered["mt_bench"]) == [
        "--source", mirror.resolve().as_uri()
    ]  # fmt: skip
    assert fetch_flags(evaluation["alpaca_eval"], registered["alpaca_eval"]) == [
        "--template-source", "https://mirror.example/alpaca_eval"
    ]  # fmt: skip


def test_oracle_scorer_needs_the_tiny_world(tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"instruction": "Say hi."}\n')
    config = tiny_world_with(
        instructions={**load("config.yaml")["instructions"], "source": str(pool)}
    )
    with pytest.raises(ConfigError, match="'oracle' scores with the tiny world's own rules"):
        build_grid(config)


def test_public_is_not_a_teacher_pair_name():
    config = tiny_world_with(
        teacher_pairs={"public": {"post": "tiny-llama-instruct", "pre": "tiny-llama-base"}},
        chat_vector={},
    )
    with pytest.raises(ConfigError, match=r"teacher_pairs\.public: the name is reserved"):
        build_grid(config)
