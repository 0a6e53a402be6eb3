"""Continuous batching: a finished row takes the next waiting prompt, in both models' caches,
and no token changes (CPU float32, tiny Llama and GPT-2)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch
from tiny_models import EOS_BIAS, tiny_model, tiny_tokenizer

from codit.generation.engine import (
    ContrastiveGenerator,
    IncrementalLM,
    generate_in_batches,
    plan_windows,
    refillable_cache,
)
from codit.generation.generate import render_prompts
from codit.generation.settings import DecodingSettings, EngineSettings

MAX_NEW_TOKENS = 24
ROWS = 3
INSTRUCTIONS = [
    "w1 w2 w3", "w5", "w7 w8 w9 w10", "w40 w41", "w60 w61 w62 w63", "w11", "w2 w3",
    "w9 w8 w7 w6 w5 w4 w3 w2", "w33", "w70 w71 w72 w73 w74 w75 w76 w77 w78 w79 w80 w81",
]  # fmt: skip
SEEDS = [201 + index for index in range(len(INSTRUCTIONS))]
# Peaked post distributions (as in test_engine): one-token plausibility sets, so the pre model
# is skipped and caught up across refills.
SHARPNESS = 60.0

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def pair(request):
    architecture = request.param
    tokenizer = tiny_tokenizer()
    post = tiny_model(architecture, 1, len(tokenizer), eos_bias=EOS_BIAS[architecture])
    with torch.no_grad():
        post.get_output_embeddings().weight.mul_(SHARPNESS)
    pre = tiny_model(architecture, 2, len(tokenizer) + 14)
    return tokenizer, post, pre, render_prompts(tokenizer, INSTRUCTIONS)


def settings_of(mode: str, greedy: bool) -> DecodingSettings:
    codit = mode == "codit"
    return DecodingSettings(
        mode=mode, alpha=0.3 if codit else None, beta=1.0 if codit else None, greedy=greedy
    )


def engine(pair, settings, stop_ids=None, **options) -> ContrastiveGenerator:
    tokenizer, post, pre, _ = pair
    return ContrastiveGenerator(
        post,
        pre if settings.mode == "codit" else None,
        settings,
        len(tokenizer),
        [tokenizer.eos_token_id] if stop_ids is None else stop_ids,
        tokenizer.pad_token_id,
        MAX_NEW_TOKENS,
        **options,
    )


def one_at_a_time(pair, settings, prompts, seeds, token_limits=None):
    single = engine(pair, settings, continuous=False)
    limits = token_limits or [None] * len(prompts)
    return [
        single.generate([prompt], [seed], None if limit is None else [limit])[0]
        for prompt, seed, limit in zip(prompts, seeds, limits, strict=True)
    ]


@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
@pytest.mark.parametrize("mode", ["codit", "direct"])
def test_continuous_batching_gives_one_prompt_at_a_time_tokens(pair, mode, greedy):
    settings = settings_of(mode, greedy)
    prompts = pair[3]
    expected = one_at_a_time(pair, settings, prompts, SEEDS)
    continuous = engine(pair, settings)
    assert continuous.continuous
    # Longest prompts first (the plan), then shortest first: newcomers wider than the cache.
    assert generate_in_batches(continuous, prompts, SEEDS, ROWS) == expected
    by_length = sorted(range(len(prompts)), key=lambda index: len(prompts[index]))
    shortest_first = continuous.generate_window(
        [prompts[i] for i in by_length], [SEEDS[i] for i in by_length], ROWS
    )
    assert shortest_first == [expected[i] for i in by_length]
    stats = continuous.stats
    assert stats.refills == 2 * (len(prompts) - ROWS)  # every waiting prompt took a freed row
    assert stats.batches == 2 and stats.compactions > 0  # the drain still drops finished rows
    if mode == "codit":
        # The skip and its catch-up ran across refills, newcomers joined a pre model that was
        # behind, and every step but a window's first either skipped the pre model or caught
        # it up (plus prefills, and catch-ups forced by prompts too short to join it behind).
        assert stats.pre_skipped_steps > 0 and stats.refills_behind_pre + stats.refill_catch_ups
        if pair[1].config.model_type == "llama":  # gpt2 skips nearly every step: prompts too short
            assert stats.refills_behind_pre > 0
        assert stats.pre_forwards == (
            stats.steps
            - stats.pre_skipped_steps
            + stats.refill_catch_ups
            + stats.refill_pre_prefills
        )


@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "fixed"])
def test_token_limits_cut_each_response_where_asked(pair, continuous):
    settings = settings_of("codit", greedy=False)
    prompts = pair[3]
    limits = [1 + (7 * index) % MAX_NEW_TOKENS for index in range(len(prompts))]
    expected = one_at_a_time(pair, settings, prompts, SEEDS, limits)
    full = one_at_a_time(pair, settings, prompts, SEEDS)
    generator = engine(pair, settings, continuous=continuous)
    results = generate_in_batches(generator, prompts, SEEDS, ROWS, token_limits=limits)
    assert results == expected
    for result, unlimited, limit in zip(results, full, limits, strict=True):
        assert result.token_ids == unlimited.token_ids[:limit]


def length_mix(count: int, seed: int = 0) -> list[int]:
    """Forced response lengths: mostly short, one in eight runs to the limit."""
    draw = random.Random(seed)
    return [
        MAX_NEW_TOKENS if draw.random() < 0.125 else draw.randint(1, MAX_NEW_TOKENS // 4)
        for _ in range(count)
    ]


def test_continuous_batching_keeps_the_batch_full(pair):
    """Forced lengths and no stop id: occupancy is the schedule's, whatever the model says."""
    settings = settings_of("direct", greedy=True)
    prompts = [pair[3][index % len(pair[3])] for index in range(64)]
    seeds, limits = list(range(64)), length_mix(64)
    occupancy = {}
    for continuous in (True, False):
        generator = engine(pair, settings, stop_ids=[], continuous=continuous)
        results = generate_in_batches(generator, prompts, seeds, 4, token_limits=limits)
        assert [len(result.token_ids) for result in results] == limits
        occupancy[continuous] = generator.stats.occupancy()
        assert 0.0 <= generator.stats.padding_waste() < 1.0
    assert occupancy[True] >= 0.9 > 0.6 > occupancy[False]


def test_a_refill_pads_a_narrow_cache_and_trims_a_wide_one(pair):
    """The cache is never wider than its widest row, and a refilled row scores as if alone."""
    tokenizer, post, _, _ = pair
    model = IncrementalLM(post, len(tokenizer))
    short, longer = [5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15, 16]
    ids = torch.tensor([[0, 5, 6, 7], [20, 21, 22, 23]])
    model.prefill(ids, torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]), MAX_NEW_TOKENS)
    model.feed(torch.tensor([[30], [31]]))
    assert model.width == 5
    model.replace_rows([0], [longer[:-1]])  # wider than the cache: every row padded left
    assert model.width == len(longer) - 1
    batched = model.feed(torch.tensor([[longer[-1]], [32]]))
    alone = IncrementalLM(post, len(tokenizer))
    mask = torch.ones((1, len(longer)), dtype=torch.long)
    expected = alone.prefill(torch.tensor([longer]), mask, 1)
    torch.testing.assert_close(batched[0], expected[0], rtol=1e-5, atol=1e-5)
    model.replace_rows([0], [short])  # the long row leaves: its columns are cut
    assert model.width == 6  # row 1: four prompt tokens and two fed
    for layer in model.cache.layers:
        assert layer.keys.shape[2] == layer.values.shape[2] == model.width


def test_static_caches_keep_fixed_batches(pair):
    settings = settings_of("codit", greedy=True)
    prompts = pair[3]
    generator = engine(pair, settings, cache="static")
    assert not generator.continuous
    results = generate_in_batches(generator, prompts, SEEDS, ROWS)
    assert results == one_at_a_time(pair, settings, prompts, SEEDS)
    assert generator.stats.refills == 0 and generator.stats.batches == 4


def test_only_full_attention_caches_are_refilled():
    """Sliding-window layers (Gemma 3, OLMo 3) keep a count of their own: fixed batches."""
    from transformers import Gemma3TextConfig, Qwen3Config

    def shaped(config):
        return SimpleNamespace(config=config)

    assert refillable_cache(shaped(Qwen3Config(num_hidden_layers=2)))
    assert not refillable_cache(shaped(Gemma3TextConfig(num_hidden_layers=6)))


def test_windows_are_consecutive_planned_batches():
    lengths = [3, 7, 3, 9, 7, 1, 3]
    assert plan_windows(lengths, batch_size=2, window_batches=2) == [[3, 1, 4, 0], [2, 6, 5]]
    assert plan_windows(lengths, batch_size=3, window_batches=1) == [[3, 1, 4], [0, 2, 6], [5]]
    with pytest.raises(ValueError, match="--window-batches"):
        plan_windows(lengths, batch_size=2, window_batches=0)


def test_continuous_is_the_default_and_can_be_switched_off():
    default = EngineSettings().command_line()
    assert EngineSettings().continuous and "continuous" not in default and "window" not in default
    assert EngineSettings(continuous=False).command_line() == default + " --no-continuous"
    assert EngineSettings(window_batches=4).command_line() == default + " --window-batches 4"
    with pytest.raises(ValueError, match="--window-batches"):
        EngineSettings(window_batches=0)
