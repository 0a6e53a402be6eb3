"""`codit cost`: GPU-hours arithmetic on a synthetic config; the CLI on config/paper.yaml."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest
import yaml

from codit.cli import main
from codit.tools.cost import estimate, load_config
from codit.tools.cost_assumptions import parse_assumptions, read_bench_occupancy, read_bench_ratio
from codit.tools.cost_report import format_markdown, format_sig, round_sig
from codit.workflow.config import validate_config
from codit.workflow.jobs import config_jobs, job_counts

REPO = Path(__file__).resolve().parents[1]
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
    "judge": {"prompt_tokens": 500, "reply_tokens": 2000, "tokens_per_s_per_gpu": 1000},
    "public_datasets": {"org/pub": {"rows": 600, "prompt_tokens": 30, "response_tokens": 70}},
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
    validate_config(config)
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
    for absent in ("generate_samples", "best_of_n", "sft_public", "evaluate_public"):
        assert stages[absent] == {"jobs": 0, "gpu_hours": 0}
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


def stage_hours(result: dict, stage: str) -> float:
    return result["stages"][stage]["gpu_hours"]


def test_seeds_multiply_sampled_generation_sft_and_student_evaluation():
    assumptions = parse_assumptions(ASSUMED)
    once = estimate(validated(synthetic_config()), assumptions)
    config = synthetic_config()
    config["seeds"] = [0, 1, 2]
    thrice = estimate(validated(config), assumptions)
    pair = once["pairs"]["pair"]

    # Direct and CoDIT are generated once per seed: 3 x 4 shards each.
    assert thrice["stages"]["generate_direct"]["jobs"] == 12
    assert stage_hours(thrice, "generate_direct") == pytest.approx(3 * pair["gpu_hours_direct_arm"])
    assert thrice["stages"]["generate_codit"]["jobs"] == 12
    assert stage_hours(thrice, "generate_codit") == pytest.approx(3 * pair["gpu_hours_codit_arm"])
    # Two arms x 3 seeds x 1 student of SFT; the same jobs evaluated, the reference once.
    sft_job = 6 * 2e9 * 1000 * 500 * 2 / (500e12 * 0.25) / 3600
    assert thrice["stages"]["sft"] == {"jobs": 6, "gpu_hours": pytest.approx(6 * sft_job)}
    student, reference = (once["evaluate_gpu_hours_per_job"][m] for m in ("student", "post"))
    assert thrice["stages"]["evaluate"]["jobs"] == 6 + 1
    assert stage_hours(thrice, "evaluate") == pytest.approx(6 * student + reference)
    assert stage_hours(thrice, "total") == pytest.approx(
        3 * (stage_hours(once, "total") - reference) + reference
    )


def test_best_of_n_candidates_and_judge_hours_by_hand():
    config = synthetic_config()
    config["seeds"] = [0, 1]
    config["best_of_n"] = {"n": [3], "scorers": ["judge"]}
    config["judge"] = {"url": "http://judge:8000/v1", "model": "org/judge"}
    result = estimate(validated(config), parse_assumptions(ASSUMED))
    stages, pair = result["stages"], result["pairs"]["pair"]
    assert result["generated_arms"][:3] == ["direct", "direct_sample1", "direct_sample2"]

    # Candidates 1 and 2 (candidate 0 is the direct arm) cost a direct arm each, per seed.
    assert stages["generate_samples"]["jobs"] == 2 * 2 * 4  # samples x seeds x shards
    assert stage_hours(result, "generate_samples") == pytest.approx(
        2 * 2 * pair["gpu_hours_direct_arm"]
    )
    assert stage_hours(result, "generate_direct") == pytest.approx(2 * pair["gpu_hours_direct_arm"])
    # The judge: 3 calls per instruction, per seed; each reads the instruction (100), a direct
    # response (400) and the judging prompt (500) and writes 2000 tokens, capped at max_tokens
    # (1024 by default); 1000 tokens/s per GPU.
    calls = 3 * 1000 * 2
    tokens = 100 + 400 + 500 + 1024
    assert result["best_of_n"]["judge_calls"] == calls
    assert stages["best_of_n"] == {
        "jobs": 2,
        "gpu_hours": pytest.approx(calls * tokens / 1000 / 3600),
    }
    # The Best-of-N dataset is direct responses: SFT and evaluation like the direct arm.
    sft_job = 6 * 2e9 * 1000 * 500 * 2 / (500e12 * 0.25) / 3600
    assert stages["sft"]["jobs"] == 3 * 2  # direct, bestof3_judge, CoDIT x 2 seeds
    assert stage_hours(result, "sft") == pytest.approx(6 * sft_job)
    assert stages["evaluate"]["jobs"] == 6 + 1

    # A smaller reply than max_tokens is taken as is.
    config["judge"]["max_tokens"] = 4096
    longer = estimate(validated(config), parse_assumptions(ASSUMED))
    assert stage_hours(longer, "best_of_n") == pytest.approx(calls * 3000 / 1000 / 3600)


def test_best_of_n_oracle_costs_no_gpu_and_judge_needs_assumptions():
    config = synthetic_config()
    config["instructions"]["source"] = "tinyworld"
    config["best_of_n"] = {"n": [2], "scorers": ["oracle"]}
    result = estimate(validated(config), parse_assumptions(ASSUMED))
    assert result["stages"]["best_of_n"] == {"jobs": 1, "gpu_hours": 0.0}
    assert result["stages"]["generate_samples"]["jobs"] == 4

    config = synthetic_config()
    config["best_of_n"] = {"n": [2], "scorers": ["judge"]}
    config["judge"] = {"url": "http://judge:8000/v1", "model": "org/judge"}
    assumed = copy.deepcopy(ASSUMED)
    del assumed["judge"]
    with pytest.raises(ValueError, match="judge"):
        estimate(validated(config), parse_assumptions(assumed))


def public_config(pairs: int) -> dict:
    config = synthetic_config()
    config["seeds"] = [0, 1, 2]
    config["teacher_pairs"] = {f"pair{i}": {"post": "post", "pre": "pre"} for i in range(pairs)}
    config["public_datasets"] = {
        "pub": {"source": "hub:org/pub"},  # size null: the CoDIT size, capped at 600 rows
        "small": {"source": "hub:org/pub", "size": 300},
    }
    return config


def test_public_datasets_per_student_and_seed_not_per_pair():
    assumptions = parse_assumptions(ASSUMED)
    one, two = (estimate(validated(public_config(n)), assumptions) for n in (1, 2))
    # 600 rows (fewer than the 1000 instructions) and 300 of 30 + 70 tokens, 2 epochs.
    job = {size: 6 * 2e9 * size * 100 * 2 / (500e12 * 0.25) / 3600 for size in (600, 300)}
    assert one["sft_public_gpu_hours_per_job"]["student"] == {
        "public_pub": pytest.approx(job[600]),
        "public_small": pytest.approx(job[300]),
    }
    for result in (one, two):
        stages = result["stages"]
        assert stages["sft_public"]["jobs"] == 2 * 3  # datasets x seeds x 1 student
        assert stage_hours(result, "sft_public") == pytest.approx(3 * (job[600] + job[300]))
        assert stages["evaluate_public"]["jobs"] == 6
        student = result["evaluate_gpu_hours_per_job"]["student"]
        assert stage_hours(result, "evaluate_public") == pytest.approx(6 * student)
    # Teacher arms double with the pairs; public ones do not.
    assert two["stages"]["sft"]["jobs"] == 2 * one["stages"]["sft"]["jobs"]
    assert stage_hours(two, "sft_public") == pytest.approx(stage_hours(one, "sft_public"))

    assumed = copy.deepcopy(ASSUMED)
    del assumed["public_datasets"]
    with pytest.raises(ValueError, match=r"'pub'.*org/pub"):
        estimate(validated(public_config(1)), parse_assumptions(assumed))


def test_chat_vectors_cost_one_evaluation_each_and_no_seeds():
    config = synthetic_config()
    config["seeds"] = [0, 1, 2]
    config["models"]["base"] = {"hub": "org/pre", "gpus": 2}
    config["chat_vector"] = {"ratios": [0.5, 1.0], "students": {"pair": ["base"]}}
    result = estimate(validated(config), parse_assumptions(ASSUMED))
    stages = result["stages"]
    assert stages["chat_vector"] == {"jobs": 2, "gpu_hours": 0.0}
    # The edited model has the shape of `base` (org/pre, 10B) and its 2 GPUs: 10 batches x 20
    # steps of 10 rows at context 60, plus prefill.
    step = (10e9 * 2 + 10 * 60 * 100_000) / (1000 * GB * 0.5)
    job = (10 * 20 * step + 2 * 10e9 * 100 * 50 / (500e12 * 0.5)) * 2 / 3600
    assert result["evaluate_gpu_hours_per_job"]["base"] == pytest.approx(job, rel=1e-12)
    assert stages["evaluate_chat_vector"] == {"jobs": 2, "gpu_hours": pytest.approx(2 * job)}
    assert result["chat_vectors"][0] == {
        "pair": "pair",
        "student": "base",
        "ratio": 0.5,
        "arm": "chatvector_r0.5",
    }


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


MT_BENCH = {
    # Three answering temperatures: 0.0 (math: 5 questions, graded against the reference), 0.1
    # (stem: 2) and 0.7 (writing: 3).
    "questions_per_category": {"writing": 3, "math": 5, "stem": 2},
    "turn1_question_tokens": 40,
    "turn2_question_tokens": 20,
    "chat_template_tokens": 10,
    "answer_tokens": 200,
    "reference_tokens": 30,
    "judge_template_tokens": 100,
    "judge_reply_tokens": 300,
}


def mt_bench_assumptions(**judge: float):
    assumed = copy.deepcopy(ASSUMED)
    assumed["workload"]["batch_occupancy"] = 0.5
    assumed["mt_bench"] = copy.deepcopy(MT_BENCH)
    assumed["judge"] |= judge
    return parse_assumptions(assumed)


def mt_bench_config(**judge) -> dict:
    config = synthetic_config()
    config["evaluation"] |= {"batch_size": 4, "mt_bench": {"enabled": True}}
    config["judge"] = {"model": "org/judge", **judge}
    return config


def test_mt_bench_answer_job_by_hand():
    result = estimate(
        validated(mt_bench_config(url="http://judge:8000/v1")), mt_bench_assumptions()
    )
    mt, stages = result["mt_bench"], result["stages"]
    # Batches of 4 per temperature: 5 math questions in 4 + 1, 2 stem, 3 writing: 4 per turn.
    assert mt["answer_batches_per_round"] == 4 and mt["rounds"] == 2

    # A batch decodes until its longest answer: 200 / 0.5 = 400 steps (under max_new_tokens
    # 1024), with b x 0.5 rows still decoding: 2 + 0.5 + 1 + 1.5 = 5 rows over the 4 batches.
    # Turn 1: prompt 40 + 10 = 50, context 50 + 100; turn 2: prompt 40 + 200 + 20 + 10 = 270,
    # context 370. The student: 2e9 params (4 GB of weights), 50 kB of KV per token, 1 GPU.
    def answer_hours(params: float, kv: float, gpus: int) -> float:
        seconds = 0.0
        for prompt in (50, 270):
            context = prompt + 200 / 2
            decode = 400 * (4 * params * 2 + 5 * context * kv) / (1000 * GB * 0.5)
            seconds += decode + 2 * params * 10 * prompt / (500e12 * 0.5)
        return seconds * gpus / 3600

    student = mt["answer_gpu_hours_per_job"]["student"]
    assert student == pytest.approx(answer_hours(2e9, 50_000, 1), rel=1e-12)
    assert mt["answer_prompt_tokens"] == [50, 270]
    # One answering job per evaluation: 2 trained arms x 1 student + the reference (post: 10B,
    # 100 kB of KV per token, on 2 GPUs).
    assert stages["mt_bench_answer"]["jobs"] == stages["evaluate"]["jobs"] == 3
    reference = mt["answer_gpu_hours_per_job"]["post"]
    assert reference == pytest.approx(answer_hours(10e9, 100_000, 2), rel=1e-12)
    assert stages["mt_bench_answer"]["gpu_hours"] == pytest.approx(2 * student + reference)
    assert (
        mt["answer_jobs"] == 3 and mt["answer_gpu_hours"] == stages["mt_bench_answer"]["gpu_hours"]
    )

    # max_new_tokens 300 caps the longest answer: 300 steps at b x 200 / 300 rows.
    config = mt_bench_config(url="http://judge:8000/v1")
    config["evaluation"]["mt_bench"]["max_new_tokens"] = 300
    capped = estimate(validated(config), mt_bench_assumptions())["mt_bench"]
    seconds = 0.0
    for prompt in (50, 270):
        context = prompt + 100
        rows = 10 * 200 / 300
        decode = 300 * (4 * 4e9 + rows * context * 50_000) / (1000 * GB * 0.5)
        seconds += decode + 2 * 2e9 * 10 * prompt / (500e12 * 0.5)
    assert capped["answer_gpu_hours_per_job"]["student"] == pytest.approx(seconds / 3600)


def test_mt_bench_judge_at_url_and_served():
    # 2 x 10 calls per job. Turn 1: template 100 + question 40 + answer 200 for 10 questions,
    # plus the reference 30 for the 5 math ones; turn 2: 100 + 40 + 200 + 20 + 200, plus the
    # reference conversation 40 + 30 + 20 + 30 for the math ones. Reply 300 (under
    # judge.max_tokens 1024); 1000 tokens/s per GPU.
    prompt = 10 * (100 + 40 + 200) + 5 * 30 + 10 * (100 + 40 + 200 + 20 + 200) + 5 * 120
    job_seconds = (prompt + 20 * 300) / 1000
    assumptions = mt_bench_assumptions(serve_startup_s=120)

    by_url = estimate(validated(mt_bench_config(url="http://judge:8000/v1")), assumptions)
    mt, stages = by_url["mt_bench"], by_url["stages"]
    assert mt["judge_calls_per_job"] == 20 and mt["judge_calls"] == 3 * 20
    assert mt["judge_prompt_tokens_per_call"] == pytest.approx(prompt / 20)
    assert mt["judge_reply_tokens_per_call"] == 300
    # At judge.url: no start-up, and the jobs hold no GPU; the hours are the endpoint's.
    assert mt["judge_gpu_seconds_per_job"] == pytest.approx(job_seconds)
    assert by_url["judged"]["judge_gpu_hours_per_job"] == pytest.approx(job_seconds / 3600)
    assert stages["judged_judge"] == {
        "jobs": 3,
        "gpu_hours": pytest.approx(3 * job_seconds / 3600),
    }
    assert mt["judge_gpu_hours"] == pytest.approx(3 * job_seconds / 3600)
    assert by_url["judge_endpoint"] == "url"
    assert by_url["judge_external_gpu_hours"] == stages["judged_judge"]["gpu_hours"]
    text = format_markdown(by_url, "c.yaml")
    assert "| judging of MT-Bench (judge server) | 3 |" in text
    assert "at judge.url, an external endpoint (the judging jobs hold no GPU)" in text
    assert "not GPUs the workflow's jobs hold" in text

    # Served per job on 2 GPUs: the same calls plus 2 x 120 s of start-up per job, all ours.
    served = estimate(validated(mt_bench_config(serve="vllm serve m", gpus=2)), assumptions)
    assert served["judged"]["judge_gpu_hours_per_job"] == pytest.approx(
        (job_seconds + 2 * 120) / 3600
    )
    assert served["judge_endpoint"] == "serve" and served["judge_external_gpu_hours"] == 0
    assert served["stages"]["mt_bench_answer"] == stages["mt_bench_answer"]
    text = format_markdown(served, "c.yaml")
    assert "served by each judging job on 2 GPUs, 120 s start-up per job included" in text
    assert "external" not in text

    # A served judge needs GPUs and a start-up time; MT-Bench needs its assumptions.
    with pytest.raises(ValueError, match="judge.gpus"):
        estimate(validated(mt_bench_config(serve="vllm serve m")), assumptions)
    with pytest.raises(ValueError, match="serve_startup_s"):
        estimate(validated(mt_bench_config(serve="vllm serve m", gpus=2)), mt_bench_assumptions())
    assumed = copy.deepcopy(ASSUMED)
    with pytest.raises(ValueError, match="mt_bench"):
        estimate(validated(mt_bench_config(url="http://judge:8000/v1")), parse_assumptions(assumed))


def test_mt_bench_off_costs_nothing():
    result = estimate(validated(synthetic_config()), mt_bench_assumptions())
    for stage in ("mt_bench_answer", "judged_judge"):
        assert result["stages"][stage] == {"jobs": 0, "gpu_hours": 0}
    assert result["mt_bench"] == {"enabled": False}
    assert "MT-Bench" not in format_markdown(result, "c.yaml")


ALPACA_EVAL = {
    "instructions": 6,
    "instruction_tokens": 30,
    "chat_template_tokens": 10,
    "answer_tokens": 200,
    "reference_tokens": 150,
    "judge_template_tokens": 100,
    "judge_reply_tokens": 1,
}
WILDBENCH = {
    "tasks": 5,
    "conversation_tokens": 90,
    "chat_template_tokens": 10,
    "answer_tokens": 200,
    "checklist_tokens": 40,
    "judge_template_tokens": 200,
    "judge_reply_tokens": 300,
}


def judged_assumptions(**judge: float):
    assumed = copy.deepcopy(ASSUMED)
    assumed["workload"]["batch_occupancy"] = 0.5
    assumed["mt_bench"] = copy.deepcopy(MT_BENCH)
    assumed["alpaca_eval"] = copy.deepcopy(ALPACA_EVAL)
    assumed["wildbench"] = copy.deepcopy(WILDBENCH)
    assumed["judge"] |= judge
    return parse_assumptions(assumed)


def judged_config(*enabled: str, **judge) -> dict:
    """The synthetic config (3 evaluated models: 2 trained arms x 1 student, the reference
    `post`), validated, with the judged benchmarks `enabled` set in the loaded dict (as a
    schema without their sections would not validate them)."""
    config = validated(mt_bench_config(**judge))
    config["evaluation"]["mt_bench"]["enabled"] = "mt_bench" in enabled
    for key in ("alpaca_eval", "wildbench"):
        if key in enabled:  # the published bench (the schema's default), enabled
            section = config["evaluation"].get(key) or {"bench": key}
            config["evaluation"][key] = {**section, "enabled": True}
    return config


def greedy_answer_hours(items: int, prompt: float, params: float, kv: float, gpus: int) -> float:
    """One answering job of `items` greedy answers of 200 tokens in batches of 4 at occupancy
    0.5: 400 steps per batch, b x 0.5 rows still decoding, context prompt + 100; plus prefill."""
    rows = sum(min(4, items - start) * 0.5 for start in range(0, items, 4))
    batches = math.ceil(items / 4)
    context = prompt + 100
    decode = 400 * (batches * params * 2 + rows * context * kv) / (1000 * GB * 0.5)
    prefill = 2 * params * items * prompt / (500e12 * 0.5)
    return (decode + prefill) * gpus / 3600


def test_alpaca_eval_and_wildbench_by_hand():
    assumptions = judged_assumptions(serve_startup_s=120)
    result = estimate(
        judged_config("alpaca_eval", "wildbench", url="http://judge:8000/v1"), assumptions
    )
    stages, alpaca, wild = result["stages"], result["alpaca_eval"], result["wildbench"]
    evaluated = 3  # 2 trained arms x 1 student + the reference
    assert result["mt_bench"] == {"enabled": False} and stages["mt_bench_answer"]["jobs"] == 0

    # AlpacaEval answering: 6 instructions in batches 4 + 2, prompt 30 + 10; the student (2e9
    # params, 50 kB of KV per token, 1 GPU) twice, the reference post (10e9, 100 kB, 2 GPUs).
    student = greedy_answer_hours(6, 40, 2e9, 50_000, 1)
    reference = greedy_answer_hours(6, 40, 10e9, 100_000, 2)
    assert alpaca["answer_gpu_hours_per_job"]["student"] == pytest.approx(student, rel=1e-12)
    assert alpaca["answer_gpu_hours_per_job"]["post"] == pytest.approx(reference, rel=1e-12)
    assert alpaca["answer_batches_per_round"] == 2 and alpaca["answer_prompt_tokens"] == [40]
    assert stages["alpaca_eval_answer"] == {
        "jobs": evaluated,
        "gpu_hours": pytest.approx(2 * student + reference),
    }
    # AlpacaEval judging: one call per instruction and evaluated model; prompt template 100 +
    # instruction 30 + answer 200 + reference 150, reply 1 token; 1000 tokens/s per GPU.
    alpaca_seconds = 6 * (100 + 30 + 200 + 150 + 1) / 1000
    assert alpaca["judge_calls_per_job"] == 6 and alpaca["judge_calls"] == 6 * evaluated
    assert alpaca["judge_prompt_tokens_per_call"] == 480
    assert alpaca["judge_reply_tokens_per_call"] == 1
    assert alpaca["judge_gpu_seconds_per_job"] == pytest.approx(alpaca_seconds)
    assert alpaca["judge_gpu_hours"] == pytest.approx(evaluated * alpaca_seconds / 3600)

    # WildBench answering: 5 tasks in batches 4 + 1, prompt: conversation 90 + template 10.
    student = greedy_answer_hours(5, 100, 2e9, 50_000, 1)
    reference = greedy_answer_hours(5, 100, 10e9, 100_000, 2)
    assert wild["answer_gpu_hours_per_job"]["student"] == pytest.approx(student, rel=1e-12)
    assert stages["wildbench_answer"] == {
        "jobs": evaluated,
        "gpu_hours": pytest.approx(2 * student + reference),
    }
    # WildBench judging: template 200 + conversation 90 + answer 200 + checklist 40, reply 300.
    wild_seconds = 5 * (200 + 90 + 200 + 40 + 300) / 1000
    assert wild["judge_calls_per_job"] == 5 and wild["judge_calls"] == 5 * evaluated
    assert wild["judge_gpu_seconds_per_job"] == pytest.approx(wild_seconds)

    # One judging job per evaluated model grades both; at judge.url no start-up, no GPU held.
    judged = result["judged"]
    assert stages["judged_judge"] == {
        "jobs": evaluated,
        "gpu_hours": pytest.approx(evaluated * (alpaca_seconds + wild_seconds) / 3600),
    }
    assert judged["judge_gpus_per_job"] == 0 and judged["startup_gpu_hours"] == 0
    assert judged["judge_calls_per_job"] == 6 + 5
    assert judged["per_benchmark"]["alpaca_eval"] == {
        "label": "AlpacaEval 2",
        "answer_jobs": evaluated,
        "answer_gpu_hours": pytest.approx(stages["alpaca_eval_answer"]["gpu_hours"]),
        "judge_calls": 18,
        "judge_gpu_hours": pytest.approx(evaluated * alpaca_seconds / 3600),
    }
    assert judged["total"] == {
        "answer_jobs": 2 * evaluated,
        "answer_gpu_hours": pytest.approx(
            stages["alpaca_eval_answer"]["gpu_hours"] + stages["wildbench_answer"]["gpu_hours"]
        ),
        "judge_calls": 11 * evaluated,
        "judge_gpu_hours": pytest.approx(stages["judged_judge"]["gpu_hours"]),
    }
    assert result["judge_external_gpu_hours"] == pytest.approx(stages["judged_judge"]["gpu_hours"])
    text = format_markdown(result, "c.yaml")
    assert "| AlpacaEval 2 answers | 3 |" in text and "| WildBench answers | 3 |" in text
    assert "| judging of AlpacaEval 2, WildBench (judge server) | 3 |" in text
    assert "| AlpacaEval 2 | 3 |" in text and "| WildBench | 3 | " in text
    assert "| total | 6 |" in text  # the judged benchmarks' table: answering jobs
    assert "start-up" not in text

    # Served on 2 GPUs: all three benchmarks' calls, and one start-up of 2 x 120 s per judging
    # job (not one per benchmark).
    served = estimate(
        judged_config("mt_bench", "alpaca_eval", "wildbench", serve="vllm serve m", gpus=2),
        assumptions,
    )
    mt_seconds = served["mt_bench"]["judge_gpu_seconds_per_job"]
    assert served["mt_bench"]["judge_calls"] == 20 * evaluated
    job_seconds = mt_seconds + alpaca_seconds + wild_seconds + 2 * 120
    assert served["judged"]["judge_gpu_hours_per_job"] == pytest.approx(job_seconds / 3600)
    assert served["judged"]["startup_gpu_hours"] == pytest.approx(evaluated * 2 * 120 / 3600)
    assert served["stages"]["judged_judge"] == {
        "jobs": evaluated,
        "gpu_hours": pytest.approx(evaluated * job_seconds / 3600),
    }
    assert served["judge_endpoint"] == "serve" and served["judge_external_gpu_hours"] == 0
    for key in ("alpaca_eval_answer", "wildbench_answer"):
        assert served["stages"][key] == stages[key]
    text = format_markdown(served, "c.yaml")
    assert "| judging of MT-Bench, AlpacaEval 2, WildBench (judge server) | 3 |" in text
    assert "| judge start-up (once per judging job: 3 x 2 GPUs x 120 s) |" in text


def test_judged_max_new_tokens_caps_answers():
    config = judged_config("alpaca_eval", "wildbench", url="http://judge:8000/v1")
    config["evaluation"]["wildbench"]["max_new_tokens"] = 100
    result = estimate(config, judged_assumptions())
    wild = result["wildbench"]
    assert wild["max_new_tokens"] == 100 and wild["answer_tokens"] == 100
    # 100 steps per batch at b x 100 / 100 rows: 5 rows; context 100 + 50; the judge sees the
    # 100-token answers.
    seconds = 100 * (2 * 4e9 + 5 * 150 * 50_000) / (1000 * GB * 0.5)
    seconds += 2 * 2e9 * 5 * 100 / (500e12 * 0.5)
    assert wild["answer_gpu_hours_per_job"]["student"] == pytest.approx(seconds / 3600)
    assert wild["judge_prompt_tokens_per_call"] == 200 + 90 + 100 + 40
    # Without max_new_tokens in the section, the workflow's defaults apply.
    assert result["alpaca_eval"]["max_new_tokens"] == 2048


def test_judged_sections_missing_or_disabled_give_no_stages():
    assumptions = judged_assumptions()
    for config in (
        validated(synthetic_config()),  # no judged section at all
        judged_config(url="http://judge:8000/v1"),  # mt_bench disabled, no others
    ):
        for key in ("alpaca_eval", "wildbench"):
            config["evaluation"][key] = {"enabled": False}
        result = estimate(config, assumptions)
        for stage in ("mt_bench_answer", "alpaca_eval_answer", "wildbench_answer", "judged_judge"):
            assert result["stages"][stage] == {"jobs": 0, "gpu_hours": 0}
        for key in ("mt_bench", "alpaca_eval", "wildbench"):
            assert result[key] == {"enabled": False}
        assert result["judged"]["benchmarks"] == [] and result["judged"]["jobs"] == 0
        text = format_markdown(result, "c.yaml")
        for name in ("MT-Bench", "AlpacaEval", "WildBench", "judged benchmark"):
            assert name not in text
    # A config without the sections (loaded before the schema had them) keeps working.
    bare = validated(synthetic_config())
    bare["evaluation"].pop("mt_bench")
    assert estimate(bare, assumptions)["stages"]["judged_judge"]["jobs"] == 0


def test_judged_benchmark_needs_its_assumptions():
    for key in ("alpaca_eval", "wildbench"):
        assumed = copy.deepcopy(ASSUMED)
        assumed["alpaca_eval"] = copy.deepcopy(ALPACA_EVAL)
        assumed["wildbench"] = copy.deepcopy(WILDBENCH)
        del assumed[key]
        with pytest.raises(ValueError, match=f"evaluation.{key}.*`{key}:`"):
            estimate(judged_config(key, url="http://judge:8000/v1"), parse_assumptions(assumed))
    assumed = copy.deepcopy(ASSUMED)
    assumed["alpaca_eval"] = copy.deepcopy(ALPACA_EVAL) | {"judge_reply_tokens": 0}
    with pytest.raises(ValueError, match=r"alpaca_eval\.judge_reply_tokens"):
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


def judged_enabled(config: dict) -> list[str]:
    """The judged benchmarks a (loaded or raw) config enables; a missing section is off."""
    evaluation = config.get("evaluation") or {}
    return [
        key
        for key in ("mt_bench", "alpaca_eval", "wildbench")
        if (evaluation.get(key) or {}).get("enabled")
    ]


def rules_starting(listed: dict[str, int], *prefixes: str) -> int:
    return sum(n for rule, n in listed.items() if rule.startswith(prefixes))


def test_paper_config_end_to_end(capsys):
    result = paper_json(capsys)
    stages = result["stages"]
    paper = yaml.safe_load(PAPER.read_text())
    seeds = len(paper["seeds"])
    assert seeds == 3
    # The stages split the workflow's own jobs (codit.workflow.jobs, whose counts test_workflow
    # checks against `snakemake -n`) by what they cost. The judged benchmarks' answering rules go by
    # prefix, and the judging rule is `mtbench_judge` or, once it grades every judged benchmark,
    # `judge_answers`: the estimate counts them per evaluated model, whatever their names.
    listed = job_counts(config_jobs(load_config(PAPER)))
    split = {  # cost stages: the workflow rules whose jobs they are
        ("generate_direct", "generate_samples", "generate_codit"): ["generate_shard"],
        ("best_of_n",): ["best_of_n"],
        ("sft", "sft_public"): ["sft"],
        ("evaluate", "evaluate_public"): ["evaluate_student", "evaluate_reference"],
        ("chat_vector",): ["chat_vector"],
        ("evaluate_chat_vector",): ["evaluate_chatvector"],
    }
    for keys, rules in split.items():
        assert sum(stages[key]["jobs"] for key in keys) == sum(listed[r] for r in rules), keys
    judged = {  # judged stages: the prefixes of their rules
        "mt_bench_answer": ("mtbench_answer_",),
        "alpaca_eval_answer": ("alpacaeval_answer_",),
        "wildbench_answer": ("wildbench_answer_",),
        "judged_judge": ("mtbench_judge", "judge_answers"),
    }
    for key, prefixes in judged.items():
        assert stages[key]["jobs"] == rules_starting(listed, *prefixes), key
    assert stages["evaluate_public"]["jobs"] == stages["sft_public"]["jobs"] == 2 * seeds * 3
    assert stages["total"]["jobs"] == sum(
        listed[r] for rules in split.values() for r in rules
    ) + sum(rules_starting(listed, *prefixes) for prefixes in judged.values())
    for key, stage in stages.items():
        assert stage["gpu_hours"] > 0 or key == "chat_vector" or stage["jobs"] == 0
    # The public datasets are smaller than the CoDIT datasets (size null asks for 250,333).
    assert result["public"]["public_alpaca"]["examples"] == 52002
    assert result["public"]["public_dolly"]["examples"] == 15011
    assert result["best_of_n"]["judge_calls"] == 3 * seeds * 4 * paper["instructions"]["limit"]
    assert result["instructions"] == yaml.safe_load(PAPER.read_text())["instructions"]["limit"]
    assert result["assumptions"]["codit_vs_direct_throughput"] == 0.57
    # The paper pairs need two GPUs per model for the 27B and 30B teachers, one for Qwen3-8B.
    assert result["pairs"]["qwen3-8b"]["gpus_codit"] == 2
    assert result["pairs"]["gemma-3-27b"]["gpus_codit"] == 4

    main(["cost", "--configfile", str(PAPER), "--assumptions", str(ASSUMPTIONS)])
    table = capsys.readouterr().out
    assert "| generate (CoDIT) | 1,440 |" in table
    assert "| Best-of-N scoring (judge server) | 9 |" in table
    assert "| MT-Bench answers | 218 |" in table
    assert re.search(r"\| judging of MT-Bench[^|]* \(judge server\) \| 218 \|", table)
    # 3,028 jobs without the judged benchmarks, 218 more per judged benchmark and 218 judging.
    enabled = judged_enabled(paper)
    assert "mt_bench" in enabled
    assert f"| total | {3028 + 218 * (len(enabled) + 1):,} |" in table
    assert "| judged benchmark | answer jobs | answer GPU-hours | judge calls |" in table
    assert "is served by each judging job on 2 GPUs, 300 s start-up per job included" in table


def paper_with_all_judged() -> dict:
    """config/paper.yaml, loaded, with AlpacaEval 2 and WildBench enabled in a copy."""
    config = copy.deepcopy(load_config(PAPER))
    for key in ("alpaca_eval", "wildbench"):
        section = config["evaluation"].get(key) or {"bench": key}
        config["evaluation"][key] = {**section, "enabled": True}
    return config


def test_paper_config_mt_bench_stages(capsys):
    result = paper_json(capsys)
    stages, mt = result["stages"], result["mt_bench"]
    listed = job_counts(config_jobs(load_config(PAPER)))
    # One answering and one judging job per evaluated model: 207 trained students (63 teacher
    # datasets and 6 public ones x 3 students), 2 chat vectors, 9 references.
    evaluations = sum(
        listed[rule] for rule in ("evaluate_student", "evaluate_chatvector", "evaluate_reference")
    )
    assert evaluations == 207 + 2 + 9 == 218
    assert stages["mt_bench_answer"]["jobs"] == stages["judged_judge"]["jobs"] == 218
    assert rules_starting(listed, "mtbench_judge", "judge_answers") == 218
    # FastChat's 80 questions, batched per answering temperature at evaluation.batch_size 16:
    # 40 greedy (math, coding, reasoning, extraction) in 3 batches, 20 at 0.1 (stem,
    # humanities) and 20 at 0.7 (writing, roleplay) in 2 each.
    assert mt["items"] == 80 and mt["rounds"] == 2
    assert mt["answer_batches_per_round"] == 3 + 2 + 2
    assert mt["judge_calls_per_job"] == 160 and mt["judge_calls"] == 218 * 160
    assert mt["max_new_tokens"] == 1024 and mt["answer_tokens"] == 450
    # judge.serve: every judging job serves the judge on its own 2 GPUs, start-up included.
    judged = result["judged"]
    assert result["judge_endpoint"] == "serve" and judged["judge_served"]
    assert judged["judge_gpus_per_job"] == 2 and judged["judge_startup_s_per_job"] == 300
    assert result["judge_external_gpu_hours"] == 0
    assert stages["judged_judge"]["gpu_hours"] == pytest.approx(
        218 * judged["judge_gpu_hours_per_job"], rel=5e-3
    )
    assert judged["per_benchmark"]["mt_bench"]["judge_calls"] == 218 * 160
    # A student (Llama-3.1-8B, one GPU) costs less than the 27B reference on two GPUs.
    per_job = mt["answer_gpu_hours_per_job"]
    assert 0 < per_job["llama-3.1-8b"] < per_job["gemma-3-27b-it"]
    assert result["assumptions"]["mt_bench"]["answer_tokens"] == 450


def test_paper_config_with_a_served_judge():
    config = load_config(PAPER)
    assumptions = parse_assumptions(yaml.safe_load(ASSUMPTIONS.read_text()))
    served = estimate(config, assumptions)  # paper.yaml serves gpt-oss-120b on 2 GPUs
    config["judge"] |= {"url": "http://judge-host:8000/v1", "serve": None, "gpus": 0}
    by_url = estimate(config, assumptions)
    # Each of the 218 judging jobs starts the server on its 2 GPUs (serve_startup_s: 300).
    startup = assumptions.judge.serve_startup_s
    assert startup == 300
    assert served["stages"]["judged_judge"]["gpu_hours"] == pytest.approx(
        by_url["stages"]["judged_judge"]["gpu_hours"] + 218 * 2 * startup / 3600
    )
    assert served["judge_external_gpu_hours"] == 0 and served["judge_endpoint"] == "serve"
    assert served["stages"]["mt_bench_answer"] == by_url["stages"]["mt_bench_answer"]


def test_paper_config_prices_all_three_judged_benchmarks():
    config = paper_with_all_judged()
    # An external judge first (no start-up); served on 2 GPUs, as paper.yaml does, below.
    config["judge"] |= {"url": "http://judge-host:8000/v1", "serve": None, "gpus": 0}
    assumptions = parse_assumptions(yaml.safe_load(ASSUMPTIONS.read_text()))
    result = estimate(config, assumptions)
    stages, judged = result["stages"], result["judged"]
    assert judged["benchmarks"] == ["mt_bench", "alpaca_eval", "wildbench"]
    items = {"mt_bench": 80, "alpaca_eval": 805, "wildbench": 1024}
    calls = {"mt_bench": 2 * 80, "alpaca_eval": 805, "wildbench": 1024}
    for key in items:
        detail = result[key]
        # One answering job per evaluated model and benchmark; every benchmark's calls in each
        # of the 218 judging jobs.
        assert stages[f"{key}_answer"]["jobs"] == detail["answer_jobs"] == 218
        assert stages[f"{key}_answer"]["gpu_hours"] == detail["answer_gpu_hours"] > 0
        assert detail["items"] == items[key]
        assert detail["judge_calls_per_job"] == calls[key]
        assert detail["judge_calls"] == 218 * calls[key]
        assert detail["judge_gpu_hours"] == pytest.approx(
            218 * detail["judge_gpu_seconds_per_job"] / 3600
        )
    # The workflow's defaults: AlpacaEval 2 answers up to 2,048 new tokens, WildBench 4,096;
    # AlpacaEval's judge replies with one token.
    assert result["alpaca_eval"]["max_new_tokens"] == 2048
    assert result["wildbench"]["max_new_tokens"] == 4096
    assert result["alpaca_eval"]["judge_reply_tokens_per_call"] == 400
    # 218 judging jobs for the three, not 3 x 218; the judge stage adds up their calls.
    assert stages["judged_judge"]["jobs"] == judged["jobs"] == 218
    assert judged["judge_calls_per_job"] == 160 + 805 + 1024
    assert stages["judged_judge"]["gpu_hours"] == pytest.approx(
        sum(result[key]["judge_gpu_hours"] for key in items)
    )
    assert judged["total"]["answer_jobs"] == 3 * 218
    assert judged["total"]["judge_calls"] == 218 * (160 + 805 + 1024)
    # Only MT-Bench enabled: the same MT-Bench figures, two answering stages fewer.
    only_mt = copy.deepcopy(config)
    for key in ("alpaca_eval", "wildbench"):
        only_mt["evaluation"][key]["enabled"] = False
    alone = estimate(only_mt, assumptions)
    assert alone["mt_bench"] == result["mt_bench"]
    assert alone["stages"]["total"]["jobs"] == stages["total"]["jobs"] - 2 * 218
    text = format_markdown(result, "paper.yaml")
    assert "| judging of MT-Bench, AlpacaEval 2, WildBench (judge server) | 218 |" in text
    for label in ("MT-Bench", "AlpacaEval 2", "WildBench"):
        assert f"| {label} | 218 |" in text

    # Served on 2 GPUs: one start-up per judging job, not per benchmark.
    config["judge"] |= {"url": None, "serve": "vllm serve openai/gpt-oss-120b", "gpus": 2}
    served = estimate(config, assumptions)
    assert served["judged"]["startup_gpu_hours"] == pytest.approx(218 * 2 * 300 / 3600)
    assert served["stages"]["judged_judge"]["gpu_hours"] == pytest.approx(
        stages["judged_judge"]["gpu_hours"] + 218 * 2 * 300 / 3600
    )
    assert "| judge start-up (once per judging job: 218 x 2 GPUs x 300 s) |" in format_markdown(
        served, "paper.yaml"
    )


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


def test_bench_file_occupancy_replaces_the_assumed_one(capsys, tmp_path):
    """`batch_occupancy` of `codit bench --json` (continuous batching, paper-like mix) drives
    every generation row; a bench line without it keeps config/cost.yaml's."""
    assumed = yaml.safe_load(ASSUMPTIONS.read_text())
    ratio = assumed["codit_vs_direct_throughput"]
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"ratio_codit_vs_engine_direct": ratio}) + "\n")
    assert read_bench_occupancy(bench) is None
    before = paper_json(capsys, "--bench", str(bench))
    assert (
        before["assumptions"]["workload"]["batch_occupancy"]
        == (assumed["workload"]["batch_occupancy"])
    )
    bench.write_text(
        json.dumps({"ratio_codit_vs_engine_direct": ratio, "batch_occupancy": 0.96}) + "\n"
    )
    assert read_bench_occupancy(bench) == 0.96
    after = paper_json(capsys, "--bench", str(bench))
    assert after["assumptions"]["workload"]["batch_occupancy"] == 0.96
    for stage in ("generate_direct", "generate_codit"):
        assert after["stages"][stage]["gpu_hours"] < before["stages"][stage]["gpu_hours"]
    assert after["stages"]["sft"] == before["stages"]["sft"]
    for bad in (0, 1.5, "high", True):
        line = {"ratio_codit_vs_engine_direct": ratio, "batch_occupancy": bad}
        bench.write_text(json.dumps(line) + "\n")
        with pytest.raises(ValueError, match="batch_occupancy"):
            read_bench_occupancy(bench)


def test_load_config_fills_schema_defaults():
    config = load_config(PAPER)
    assert config["generation"]["cache"] == "dynamic"  # a schema default, not in paper.yaml


def test_a_bench_file_prices_generation_with_the_named_engines_figures(capsys, tmp_path):
    """--engine vllm takes vLLM's CoDIT/direct ratio and leaves the assumed occupancy; hf (the
    default) takes our engine's ratio and occupancy."""
    bench = tmp_path / "bench.jsonl"
    line = {
        "ratio_codit_vs_engine_direct": 0.76,
        "ratio_vllm_codit_vs_direct": 0.5,
        "batch_occupancy": 0.8,
        "pairs": {},
    }
    bench.write_text(json.dumps(line) + "\n")
    assert read_bench_ratio(bench, "vllm") == 0.5
    before = paper_json(capsys)
    ours = paper_json(capsys, "--bench", str(bench))
    vllm = paper_json(capsys, "--bench", str(bench), "--engine", "vllm")
    assert ours["codit_vs_direct_throughput"] == 0.76
    assert ours["assumptions"]["workload"]["batch_occupancy"] == 0.8
    assert vllm["codit_vs_direct_throughput"] == 0.5
    assert vllm["codit_vs_direct_throughput_source"] == f"{bench} (vllm engine)"
    occupancy = before["assumptions"]["workload"]["batch_occupancy"]
    assert vllm["assumptions"]["workload"]["batch_occupancy"] == occupancy
    bench.write_text(json.dumps({**line, "ratio_vllm_codit_vs_direct": None}) + "\n")
    with pytest.raises(ValueError, match="ratio_vllm_codit_vs_direct is None.*vllm engine"):
        read_bench_ratio(bench, "vllm")
