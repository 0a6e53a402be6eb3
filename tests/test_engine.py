"""The engine's speed-ups (skipping the pre model, compaction, static caches, batch plans,
continuous batching: more in test_continuous.py) change the work done, never a token."""

from __future__ import annotations

import pytest
import torch
from tiny_models import EOS_BIAS, tiny_model, tiny_tokenizer

from codit.generation.engine import ContrastiveGenerator, generate_in_batches, plan_batches
from codit.generation.generate import render_prompts
from codit.generation.settings import DecodingSettings

MAX_NEW_TOKENS = 24
INSTRUCTIONS = ["w1 w2 w3", "w5", "w7 w8 w9 w10", "w40 w41", "w60 w61 w62 w63", "w11", "w2 w3"]
SEEDS = [101, 102, 103, 104, 105, 106, 107]
# The post model's output rows are scaled so its distributions are peaked: many steps then
# have a one-token plausibility set, as a real instruct model's do, and the skip path runs.
SHARPNESS = 60.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def peaked_pair():
    tokenizer = tiny_tokenizer()
    post = tiny_model("llama", seed=1, vocab_size=len(tokenizer), eos_bias=EOS_BIAS["llama"])
    with torch.no_grad():
        post.get_output_embeddings().weight.mul_(SHARPNESS)
    pre = tiny_model("llama", seed=2, vocab_size=len(tokenizer) + 14)
    return tokenizer, post, pre, render_prompts(tokenizer, INSTRUCTIONS)


def generate(pair, settings, **engine_options):
    tokenizer, post, pre, prompts = pair
    engine = ContrastiveGenerator(
        post,
        pre if settings.mode == "codit" else None,
        settings,
        len(tokenizer),
        [tokenizer.eos_token_id],
        tokenizer.pad_token_id,
        MAX_NEW_TOKENS,
        **engine_options,
    )
    outputs = engine.generate(prompts, SEEDS)
    return [(output.token_ids, output.finish_reason) for output in outputs], engine.stats


LOCK_STEP = {"skip_pre_forward": False, "compact_finished": False}


@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
@pytest.mark.parametrize("alpha", [0.3, 0.5])
def test_skipping_the_pre_model_gives_the_lock_step_tokens(peaked_pair, greedy, alpha):
    settings = DecodingSettings(alpha=alpha, beta=1.0, greedy=greedy)
    expected, lock_step = generate(peaked_pair, settings, **LOCK_STEP)
    tokens, stats = generate(peaked_pair, settings, skip_pre_forward=True, compact_finished=False)
    assert tokens == expected
    assert lock_step.pre_skipped_steps == 0 and lock_step.pre_forwards == lock_step.steps
    # The skip happened, and the pre model later caught up on several tokens in one forward.
    assert stats.pre_skipped_steps > 0
    assert stats.pre_forwards + stats.pre_skipped_steps == stats.steps
    assert stats.pre_catch_up_tokens > stats.pre_forwards - stats.batches
    assert stats.single_head_row_tokens > stats.pre_skipped_steps


@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
@pytest.mark.parametrize("mode", ["codit", "direct"])
def test_dropping_finished_rows_gives_the_same_tokens(peaked_pair, greedy, mode):
    codit = mode == "codit"
    settings = DecodingSettings(
        mode=mode, alpha=0.1 if codit else None, beta=1.0 if codit else None, greedy=greedy
    )
    expected, _ = generate(peaked_pair, settings, **LOCK_STEP)
    tokens, stats = generate(peaked_pair, settings)
    assert tokens == expected
    assert stats.compactions > 0
    assert {reason for _, reason in tokens} == {"stop", "length"}


@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
def test_static_cache_gives_the_dynamic_cache_tokens(peaked_pair, greedy):
    settings = DecodingSettings(alpha=0.3, beta=1.0, greedy=greedy)
    expected, _ = generate(peaked_pair, settings, **LOCK_STEP)
    tokens, stats = generate(peaked_pair, settings, cache="static")
    assert tokens == expected
    assert stats.compactions == 0 and stats.pre_skipped_steps > 0


def test_batch_plan_is_longest_first_stable_and_complete():
    lengths = [3, 7, 3, 9, 7, 1, 3]
    plan = plan_batches(lengths, batch_size=3)
    assert plan == [[3, 1, 4], [0, 2, 6], [5]]
    assert plan == plan_batches(list(lengths), batch_size=3)
    with pytest.raises(ValueError, match="--batch-size"):
        plan_batches(lengths, batch_size=0)


def test_batched_results_come_back_in_input_order(peaked_pair):
    tokenizer, post, pre, prompts = peaked_pair
    settings = DecodingSettings(alpha=0.1, beta=1.0)
    engine = ContrastiveGenerator(
        post, pre, settings, len(tokenizer), [tokenizer.eos_token_id], 0, MAX_NEW_TOKENS
    )
    batched = generate_in_batches(engine, prompts, SEEDS, batch_size=3)
    one_by_one = [
        engine.generate([prompt], [seed])[0] for prompt, seed in zip(prompts, SEEDS, strict=True)
    ]
    # Per-row generators: a response depends on its own seed, not on its batch neighbours
    # (equal here because the tiny fp32 models are insensitive to padding width).
    assert batched == one_by_one
    assert engine.stats.refills == len(prompts) - 3  # continuous batching, the default


@pytest.mark.slow
def test_compiled_static_cache_gives_the_same_tokens(peaked_pair):
    """torch.compile (inductor, CPU here; ~1 min of compilation) changes no token."""
    from codit.generation.generate import compile_forward

    tokenizer, post, pre, prompts = peaked_pair
    settings = DecodingSettings(alpha=0.3, beta=1.0, greedy=True)
    expected, _ = generate(peaked_pair, settings, **LOCK_STEP)
    compiled_post = tiny_model("llama", seed=1, vocab_size=len(tokenizer))
    compiled_post.load_state_dict(post.state_dict())
    compiled_pre = tiny_model("llama", seed=2, vocab_size=len(tokenizer) + 14)
    compiled_pre.load_state_dict(pre.state_dict())
    for model in (compiled_post, compiled_pre):
        compile_forward(model)
    compiled = (tokenizer, compiled_post, compiled_pre, prompts)
    tokens, _ = generate(compiled, settings, cache="static")
    assert tokens == expected
