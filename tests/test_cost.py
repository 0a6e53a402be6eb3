"""`codit cost`: GPU-hours arithmetic on a synthetic config; the CLI on config/paper.yaml."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from codit.cli import main
from codit.cost import (
    estimate,
    format_sig,
    load_config,
    parse_assumptions,
    read_bench_ratio,
    round_sig,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
PAPER = REPO / "config/paper.yaml"
ASSUMPTIONS = REPO / "config/cost.yaml"

# Made-up numbers that are easy to follow by hand.
GB = 1e9
ASSUMED = {
    "gpu": {
        "name": "test GPU",
        "memory_bandwidth_gb_s": 1000,
        "bf16_dense_tflops": 500,
        "decode_bandwidth_efficiency": 0.5,
        "training_mfu": 0.25,
        "prefill_mfu": 0.5,
        "bytes_per_param": 2,
    },
    "workload": {"prompt_tokens": 100, "response_tokens": 400},
    "sft": {"flops_per_param_token": 6},
    "codit_vs_direct_throughput": 0.5,
    "models": {
        "org/post": {"params_b": 10, "kv_bytes_per_token": 100_000},
        "org/pre": {"params_b": 10, "kv_bytes_per_token": 100_000},
        "org/student": {"params_b": 2, "kv_bytes_per_token": 50_000},
    },
    "evaluation": {"taskA": {"items": 100, "prompt_tokens": 50, "generated_tokens": 20}},
}


def synthetic_config(limit: int = 1000) -> dict:
    """One pair (post on 2 GPUs, pre on 1), direct + one CoDIT arm, one student."""
    return {
        "models": {
            "post": {"hub": "org/post", "gpus": 2},
            "pre": {"hub": "org/pre", "gpus": 1},
            "student": {"hub": "org/student", "gpus": 1},
        },
        "teacher_pairs": {"pair": {"post": "post", "pre": "pre"}},
        "instructions": {"source": "hub:org/data", "limit": limit},
        "generation": {"alphas": [0.01], "batch_size": 8, "num_shards": 4, "max_new_tokens": 1024},
        "students": ["student"],
        "sft": {"epochs": 2, "max_length": 2048},
        "evaluation": {"tasks": ["taskA"], "references": ["post"], "batch_size": 10},
    }


def validated(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return config


def test_direct_and_codit_arithmetic_by_hand():
    result = estimate(validated(synthetic_config()), parse_assumptions(ASSUMED))
    pair = result["pairs"]["pair"]

    # One decode step of 8 rows at context 100 + 400/2 = 300 tokens: 20 GB of weights plus
    # 8 x 300 x 100 kB of KV, at 1000 GB/s x 0.5.
    step = (10e9 * 2 + 8 * 300 * 100_000) / (1000 * GB * 0.5)
    assert pair["direct_decode_tokens_per_s"] == pytest.approx(8 / step, rel=1e-12)

    # Whole arm: 1000 x 400 tokens at that speed, plus prefill 2 x 10e9 x 1000 x 100 FLOPs at
    # 500 TFLOP/s x 0.5; the post model holds 2 GPUs.
    seconds = 1000 * 400 * step / 8 + 2 * 10e9 * 1000 * 100 / (500e12 * 0.5)
    assert pair["gpu_hours_direct_arm"] == pytest.approx(seconds * 2 / 3600, rel=1e-12)

    # CoDIT: the direct time over the ratio 0.5, on post + pre = 3 GPUs.
    assert pair["gpu_hours_codit_arm"] == pytest.approx(
        pair["gpu_hours_direct_arm"] * (3 / 2) / 0.5, rel=1e-12
    )
    assert pair["codit_tokens_per_s"] == pytest.approx(pair["direct_tokens_per_s"] * 0.5)

    stages = result["stages"]
    assert stages["generate_direct"] == {"jobs": 4, "gpu_hours": pair["gpu_hours_direct_arm"]}
    assert stages["generate_codit"]["jobs"] == 4
    # SFT per arm: 6 x 2e9 x 1000 x (100 + 400) x 2 epochs at 500 TFLOP/s x 0.25, one GPU.
    sft_job = 6 * 2e9 * 1000 * 500 * 2 / (500e12 * 0.25) / 3600
    assert stages["sft"]["jobs"] == 2
    assert stages["sft"]["gpu_hours"] == pytest.approx(2 * sft_job, rel=1e-12)
    # Evaluation of the student: 10 batches x 20 steps of 10 rows at context 60, plus prefill.
    eval_step = (2e9 * 2 + 10 * 60 * 50_000) / (1000 * GB * 0.5)
    eval_job = (10 * 20 * eval_step + 2 * 2e9 * 100 * 50 / (500e12 * 0.5)) / 3600
    assert result["evaluate_gpu_hours_per_job"]["student"] == pytest.approx(eval_job, rel=1e-12)
    assert stages["evaluate"]["jobs"] == 3  # 2 arms x 1 student + 1 reference
    assert stages["total"]["gpu_hours"] == pytest.approx(
        sum(stages[key]["gpu_hours"] for key in ("generate_direct", "generate_codit", "sft"))
        + stages["evaluate"]["gpu_hours"]
    )


def test_sft_examples_are_capped_at_max_length():
    config = synthetic_config()
    config["sft"]["max_length"] = 250  # below 100 + 400 tokens
    result = estimate(validated(config), parse_assumptions(ASSUMED))
    sft_job = 6 * 2e9 * 1000 * 250 * 2 / (500e12 * 0.25) / 3600
    assert result["sft_gpu_hours_per_job"]["student"]["direct"] == pytest.approx(sft_job)


def test_doubling_instructions_doubles_every_stage():
    assumptions = parse_assumptions(ASSUMED)
    once = estimate(validated(synthetic_config(1000)), assumptions)["stages"]
    twice = estimate(validated(synthetic_config(2000)), assumptions)["stages"]
    for stage in ("generate_direct", "generate_codit", "sft"):
        assert twice[stage]["gpu_hours"] == pytest.approx(2 * once[stage]["gpu_hours"])
        assert twice[stage]["jobs"] == once[stage]["jobs"]
    # lm-eval items do not depend on the instructions.
    assert twice["evaluate"]["gpu_hours"] == pytest.approx(once["evaluate"]["gpu_hours"])


def test_instructions_override_and_null_limit():
    config = synthetic_config()
    config["instructions"]["limit"] = None
    assumptions = parse_assumptions(ASSUMED)
    with pytest.raises(ValueError, match=r"instructions\.limit"):
        estimate(validated(config), assumptions)
    by_flag = estimate(validated(config), assumptions, instructions=1000)
    by_limit = estimate(validated(synthetic_config(1000)), assumptions)
    assert by_flag["stages"] == by_limit["stages"]


def test_model_missing_from_assumptions_is_named():
    assumed = copy.deepcopy(ASSUMED)
    del assumed["models"]["org/student"]
    with pytest.raises(ValueError, match=r"'student'.*org/student"):
        estimate(validated(synthetic_config()), parse_assumptions(assumed, "my-cost.yaml"))
    config = synthetic_config()
    config["models"]["student"] = {"path": str(REPO), "gpus": 1}  # a local model, no Hub id
    with pytest.raises(ValueError, match=r"'student' \(path .*my-cost\.yaml"):
        estimate(validated(config), parse_assumptions(ASSUMED, "my-cost.yaml"))


def test_bad_assumption_names_its_key():
    assumed = copy.deepcopy(ASSUMED)
    assumed["gpu"]["decode_bandwidth_efficiency"] = 1.5
    with pytest.raises(ValueError, match="decode_bandwidth_efficiency"):
        parse_assumptions(assumed)


def test_round_and_format_significant_figures():
    assert round_sig(1437.2) == 1440
    assert round_sig(0.045678) == 0.0457
    assert format_sig(1437.2) == "1,440"
    assert format_sig(20.46) == "20.5"
    assert format_sig(0.045678) == "0.0457"


def paper_json(capsys, *extra: str) -> dict:
    main(["cost", "--configfile", str(PAPER), "--assumptions", str(ASSUMPTIONS), "--json", *extra])
    return json.loads(capsys.readouterr().out)


def test_paper_config_end_to_end(capsys):
    result = paper_json(capsys)
    stages = result["stages"]
    assert stages["generate_direct"]["jobs"] + stages["generate_codit"]["jobs"] == 3 * 6 * 32
    assert stages["generate_codit"]["jobs"] == 3 * 5 * 32
    assert stages["sft"]["jobs"] == 54
    assert stages["evaluate"]["jobs"] == 54 + 9
    assert stages["total"]["jobs"] == 3 * 6 * 32 + 54 + 63
    for stage in stages.values():
        assert stage["gpu_hours"] > 0
    assert result["instructions"] == yaml.safe_load(PAPER.read_text())["instructions"]["limit"]
    assert result["assumptions"]["codit_vs_direct_throughput"] == 0.57
    # The paper pairs need two GPUs per model for the 27B and 30B teachers, one for Qwen3-8B.
    assert result["pairs"]["qwen3-8b"]["gpus_codit"] == 2
    assert result["pairs"]["gemma-3-27b"]["gpus_codit"] == 4

    main(["cost", "--configfile", str(PAPER), "--assumptions", str(ASSUMPTIONS)])
    table = capsys.readouterr().out
    assert "| generate (CoDIT) | 480 |" in table
    assert "| total | 693 |" in table


def test_bench_file_changes_codit_rows(capsys, tmp_path):
    before = paper_json(capsys)
    bench = tmp_path / "bench.jsonl"
    line = {
        "ratio_codit_vs_direct": 0.9,
        "ratio_codit_vs_engine_direct": 0.76,
        "skip_fraction": 0.3,
        "pairs": {"tinyworld": {"ratio_codit_vs_engine_direct": 0.76}},
    }
    bench.write_text("codit bench: tinyworld / engine_codit ...\n" + json.dumps(line) + "\n")
    assert read_bench_ratio(bench) == 0.76
    after = paper_json(capsys, "--bench", str(bench))

    assert after["codit_vs_direct_throughput"] == 0.76
    assert after["assumptions"]["codit_vs_direct_throughput"] == 0.76
    assert after["stages"]["generate_direct"] == before["stages"]["generate_direct"]
    assert after["stages"]["sft"] == before["stages"]["sft"]
    old, new = before["stages"]["generate_codit"], after["stages"]["generate_codit"]
    # GPU-hours scale with 1 / ratio (up to the 3 significant figures of the output).
    assert new["gpu_hours"] == pytest.approx(old["gpu_hours"] * 0.57 / 0.76, rel=5e-3)
    for pair in before["pairs"]:
        assert (
            after["pairs"][pair]["codit_tokens_per_s"] > before["pairs"][pair]["codit_tokens_per_s"]
        )
        assert math.isclose(
            after["pairs"][pair]["direct_tokens_per_s"],
            before["pairs"][pair]["direct_tokens_per_s"],
        )


def test_bench_file_without_ratio_is_an_error(tmp_path):
    bench = tmp_path / "bench.txt"
    bench.write_text(json.dumps({"ratio_codit_vs_engine_direct": None, "pairs": {}}) + "\n")
    with pytest.raises(ValueError, match="ratio_codit_vs_engine_direct"):
        read_bench_ratio(bench)
    bench.write_text("no json here\n")
    with pytest.raises(ValueError, match="codit bench --json"):
        read_bench_ratio(bench)


def test_load_config_fills_schema_defaults():
    config = load_config(PAPER, SCHEMA)
    assert config["generation"]["cache"] == "dynamic"  # a schema default, not in paper.yaml
