"""`codit bench`: the naive re-encoding reference, the random 0.5B-shaped pair, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_models import EOS_BIAS, save_tiny_pair, tiny_model, tiny_tokenizer

from codit.cli import main as codit_main
from codit.generation.engine import ContrastiveGenerator
from codit.generation.generate import render_prompts, stop_token_ids
from codit.generation.settings import DecodingSettings
from codit.tools.bench import (
    DEFAULT_METHODS,
    ENGINE_METHODS,
    build_random_model,
    format_table,
    naive_contrastive_generate,
    paper_length_mix,
    random_pair_config,
)

CPU = torch.device("cpu")
MAX_NEW_TOKENS = 16
INSTRUCTIONS = [
    "w1 w2 w3",
    "w5",
    "w7 w8 w9 w10 w11 w12 w13",
    "w40 w41",
    "w60 w61 w62 w63",
    "w20 w21 w22 w23 w24 w25",
]
# Shrinks the random pair to test size (same architecture, Qwen2, tied embeddings).
TINY_SHAPE = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 64,
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def llama_pair(tmp_path_factory) -> tuple[Path, Path]:
    return save_tiny_pair(tmp_path_factory.mktemp("bench_pair"), "llama", EOS_BIAS["llama"])


@pytest.fixture(scope="module")
def instruction_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench_instructions") / "pool.jsonl"
    lines = [
        json.dumps({"id": f"i{n}", "instruction": text}) for n, text in enumerate(INSTRUCTIONS)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def sharp_pair():
    """A post model with peaked next-token distributions and a pre model close to it.

    The pair saved by save_tiny_pair is nearly uniform and its greedy CoDIT output repeats one
    token; here the contrast picks varied tokens, some rows stop early, some plausibility sets
    hold a single token (so the engine skips pre forwards) and finished rows get compacted.
    """
    vocab_size = len(tiny_tokenizer())
    post = tiny_model("llama", seed=1, vocab_size=vocab_size, eos_bias=EOS_BIAS["llama"])
    pre = tiny_model("llama", seed=1, vocab_size=vocab_size, eos_bias=EOS_BIAS["llama"])
    noise = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in pre.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=noise))
        post.lm_head.weight.mul_(24.0)
        pre.lm_head.weight.mul_(24.0)
    return post, pre


def engine_and_naive(pair, settings, seeds=None):
    """(engine results, naive results, engine stats) for INSTRUCTIONS in one batch."""
    post, pre = pair
    tokenizer = tiny_tokenizer()
    prompts = render_prompts(tokenizer, INSTRUCTIONS)
    stop_ids = stop_token_ids(post, tokenizer)
    pad_id, vocab_size = tokenizer.pad_token_id, len(tokenizer)
    pre = None if settings.mode == "direct" else pre
    engine = ContrastiveGenerator(post, pre, settings, vocab_size, stop_ids, pad_id, MAX_NEW_TOKENS)
    expected = [(r.token_ids, r.finish_reason) for r in engine.generate(prompts, seeds)]
    naive = naive_contrastive_generate(
        post, pre, prompts, settings, vocab_size, stop_ids, pad_id, MAX_NEW_TOKENS, seeds
    )
    return expected, [(r.token_ids, r.finish_reason) for r in naive], engine.stats.as_dict()


@pytest.mark.parametrize(
    "settings",
    [
        DecodingSettings(alpha=0.1, beta=1.0, greedy=True),
        DecodingSettings(alpha=0.5, beta=1.0, greedy=True),
        DecodingSettings(mode="direct", alpha=None, beta=None, greedy=True),
    ],
    ids=["codit-0.1", "codit-0.5", "direct"],
)
def test_naive_greedy_equals_engine(sharp_pair, settings):
    expected, naive, stats = engine_and_naive(sharp_pair, settings)
    # Rows that stop early and rows cut at the limit both occur.
    assert {reason for _, reason in expected} == {"stop", "length"}
    assert naive == expected
    if settings.alpha == 0.5:
        assert stats["pre_skipped_steps"] > 0 and stats["compactions"] > 0


def test_naive_sampling_follows_the_same_per_row_seeds_as_the_engine(sharp_pair):
    settings = DecodingSettings(alpha=0.01, beta=1.0)
    seeds = [11, 12, 13, 14, 15, 16]
    expected, naive, _ = engine_and_naive(sharp_pair, settings, seeds)
    assert naive == expected


def test_random_pair_has_qwen_0_5b_shapes_and_seeded_weights():
    config = random_pair_config(1000, 2, 3, 0)
    with torch.device("meta"):
        from transformers import Qwen2ForCausalLM

        full = Qwen2ForCausalLM(config)
    # Qwen2.5-0.5B: 494,032,768 parameters with its 151,936-token vocabulary.
    assert sum(p.numel() for p in full.parameters()) == 494_032_768 - (151_936 - 1000) * 896
    small = random_pair_config(len(tiny_tokenizer()), 2, 3, 0, **TINY_SHAPE)
    post = build_random_model(small, 1, CPU, torch.float32)
    again = build_random_model(small, 1, CPU, torch.float32)
    pre = build_random_model(small, 2, CPU, torch.float32)
    assert post.lm_head.weight.data_ptr() == post.model.embed_tokens.weight.data_ptr()
    for (name, tensor), (_, same) in zip(
        post.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert torch.equal(tensor, same), name
    assert not torch.equal(post.lm_head.weight, pre.lm_head.weight)


def bench_args(llama_pair, instruction_file, *extra):
    post_dir, pre_dir = llama_pair
    return [
        "bench", "--post", str(post_dir), "--pre", str(pre_dir),
        "--instructions", str(instruction_file), "--num-prompts", "5", "--batch-size", "2",
        "--max-new-tokens", "12", "--large-num-prompts", "3", "--large-batch-size", "2",
        "--large-max-new-tokens", "6", "--warmup-tokens", "2", "--threads", "1",
        "--mix-num-prompts", "12", "--mix-batch-size", "3", "--mix-max-new-tokens", "12",
        "--window-batches", "2", "--random-config", json.dumps(TINY_SHAPE), *extra,
    ]  # fmt: skip


def test_cli_json_reports_every_method_of_every_pair(llama_pair, instruction_file, capsys):
    codit_main(bench_args(llama_pair, instruction_file, "--json", "--in-process"))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["ratio_codit_vs_direct"] > 0
    assert summary["ratio_codit_vs_engine_direct"] > 0
    assert 0.0 <= summary["skip_fraction"] <= 1.0
    assert summary["package_versions"]["torch"]
    for pair, prompts in (("tinyworld", 5), ("random-0.5b", 3)):
        results = {r["method"]: r for r in summary["results"] if r["pair"] == pair}
        assert list(results) == list(DEFAULT_METHODS)  # vLLM's: tests/test_vllm.py
        for method, result in results.items():
            assert result["prompts"] == prompts
            assert result["tokens"] > 0 and result["tokens_per_second"] > 0, method
            assert result["ratio_vs_hf_generate"] > 0
            assert result["peak_mem_mib"] is not None
        assert results["hf_generate_direct"]["ratio_vs_hf_generate"] == 1.0
        for method in ("engine_codit", "engine_codit_lockstep"):
            assert 0.0 <= results[method]["single_head_fraction"] <= 1.0
        assert results["engine_codit_lockstep"]["pre_skipped_fraction"] == 0.0
        assert results["engine_direct"]["pre_skipped_fraction"] is None
        # Same seeds, same rule: the lock-step engine and the naive reference agree in length.
        assert results["engine_codit_lockstep"]["tokens"] == results["naive_codit"]["tokens"]
        # Continuous batching and fixed batches: the same tokens (CPU float32).
        assert results["engine_codit"]["tokens"] == results["engine_codit_fixed"]["tokens"]
        assert results["engine_direct"]["tokens"] == results["engine_direct_fixed"]["tokens"]
    # The paper-like mix: engine methods only, each response forced to its drawn length.
    mix = {r["method"]: r for r in summary["results"] if r["pair"] == "paper-mix"}
    assert list(mix) == list(ENGINE_METHODS)
    assert {r["tokens"] for r in mix.values()} == {sum(paper_length_mix(12, 12, 0))}
    occupancy = summary["pairs"]["paper-mix"]["occupancy"]
    assert occupancy["engine_codit"] == mix["engine_codit"]["occupancy"]
    assert 0 < occupancy["engine_codit_fixed"] < occupancy["engine_codit"] <= 1
    assert summary["batch_occupancy"] == occupancy["engine_codit"]
    assert summary["batch_occupancy_fixed"] == occupancy["engine_codit_fixed"]
    assert mix["engine_codit"]["engine_stats"]["refills"] > 0
    assert all(0 <= r["padding_waste"] < 1 for r in mix.values())
    table = format_table(summary)
    assert all(method in table for method in DEFAULT_METHODS) and "random-0.5b" in table
    assert "paper-mix" in table and "occupancy" in table


def test_cli_measures_in_a_fresh_process(llama_pair, instruction_file, capsys):
    codit_main(
        bench_args(
            llama_pair, instruction_file, "--pairs", "tinyworld", "--methods", "engine_codit"
        )
    )
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert "engine_codit" in rows and "method" in rows and "hf_generate_direct" not in rows


def test_missing_tiny_world_is_one_line_error_with_the_build_command(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        codit_main(["bench", "--tinyworld", str(tmp_path / "nowhere")])
    message = str(exit_info.value.code)
    assert "llama-instruct" in message and "snakemake" in message and "\n" not in message


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--pairs", "tinyworld,gpt"], "--pairs"),
        (["--methods", "fast"], "--methods"),
        (["--batch-size", "0"], "--batch-size"),
        (["--alpha", "2"], "--alpha"),
        (["--random-config", "[1]"], "--random-config"),
    ],
)
def test_bad_options_are_refused_before_any_model_loads(
    llama_pair, instruction_file, extra, message
):
    with pytest.raises(SystemExit) as exit_info:
        codit_main(bench_args(llama_pair, instruction_file, *extra))
    assert message in str(exit_info.value.code)
