"""The CoDIT next-token rule against hand computations (codit.generation.decoding)."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import tiny_model, tiny_tokenizer
from transformers import TopPLogitsWarper

from codit.generation.decoding import (
    check_shared_vocabulary,
    contrast_scores,
    finite_floor,
    next_token_scores,
    plausibility_mask,
    sample_from_scores,
    select_next_tokens,
    top_p_filter,
)
from codit.generation.engine import ContrastiveGenerator
from codit.generation.settings import DecodingSettings

POST_LOGITS = [[2.0, 1.0, 0.0, -3.0, -6.0], [0.5, 3.0, 2.8, -2.0, 1.2]]
PRE_LOGITS = [[0.0, 2.0, -1.0, 1.0, 0.0], [1.0, 2.5, -2.0, 0.0, 3.0]]


def python_logprobs(logits: list[float]) -> list[float]:
    normaliser = math.log(sum(math.exp(value) for value in logits))
    return [value - normaliser for value in logits]


def python_head(logits: list[float], alpha: float) -> list[bool]:
    probs = [math.exp(value) for value in python_logprobs(logits)]
    return [p >= alpha * max(probs) for p in probs]


def as_logprobs(rows: list[list[float]]) -> torch.Tensor:
    return torch.log_softmax(torch.tensor(rows, dtype=torch.float64), dim=-1)


@pytest.mark.parametrize(
    "alpha, expected",
    [
        (0.0, [[True] * 5, [True] * 5]),
        (0.01, [[True, True, True, False, False], [True, True, True, False, True]]),
        (0.5, [[True, False, False, False, False], [False, True, True, False, False]]),
    ],
)
def test_plausibility_mask_matches_hand_computation(alpha, expected):
    # `expected` is written out by hand; python_head re-derives it from the definition.
    assert [python_head(row, alpha) for row in POST_LOGITS] == expected
    assert plausibility_mask(as_logprobs(POST_LOGITS), alpha).tolist() == expected


@pytest.mark.parametrize("alpha", [0.0, 0.01, 0.5])
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_contrast_scores_match_hand_computation(alpha, beta):
    scores = contrast_scores(as_logprobs(POST_LOGITS), as_logprobs(PRE_LOGITS), alpha, beta)
    for row, (post, pre) in enumerate(zip(POST_LOGITS, PRE_LOGITS, strict=True)):
        lp_post, lp_pre = python_logprobs(post), python_logprobs(pre)
        head = python_head(post, alpha)
        for v in range(5):
            if head[v]:
                expected = lp_post[v] - beta * lp_pre[v]
                assert scores[row, v].item() == pytest.approx(expected, abs=1e-12)
            else:
                assert scores[row, v].item() == -math.inf


def test_beta_zero_is_exactly_post_logprobs_on_the_head_even_with_infinite_pre():
    lp_post = as_logprobs(POST_LOGITS)
    lp_pre = torch.full_like(lp_post, -math.inf)
    scores = contrast_scores(lp_post, lp_pre, 0.01, 0.0)
    head = plausibility_mask(lp_post, 0.01)
    assert torch.equal(scores[head], lp_post[head])
    assert not torch.isnan(scores).any()


def test_minus_infinite_pre_logprob_inside_head_is_clamped_to_row_floor():
    lp_post = as_logprobs([[1.0, 0.9, 0.8, -9.0]])
    lp_pre = torch.tensor([[-math.inf, -1.0, -0.5, -3.0]], dtype=torch.float64)
    scores = contrast_scores(lp_post, lp_pre, 0.01, 1.0)
    lp = python_logprobs([1.0, 0.9, 0.8, -9.0])
    # Token 0 is ruled out by the pre model: it counts as the row's least likely finite token (-3).
    assert scores[0, 0].item() == pytest.approx(lp[0] + 3.0, abs=1e-12)
    assert scores[0, 1].item() == pytest.approx(lp[1] + 1.0, abs=1e-12)
    assert scores[0, 3].item() == -math.inf
    assert torch.isfinite(scores[0, :3]).all()
    # No finite value at all is not a distribution: NaN, refused before sampling (see below).
    assert torch.isnan(finite_floor(torch.tensor([[-math.inf, -math.inf]]))).all()


def test_sampling_with_minus_infinite_pre_logprobs_stays_in_the_head_and_nan_free():
    lp_post = as_logprobs([[1.0, 0.9, 0.8, -9.0, -9.5]] * 4)
    lp_pre = torch.tensor([[-math.inf, -1.0, -math.inf, -3.0, -math.inf]] * 4, dtype=torch.float64)
    scores = contrast_scores(lp_post, lp_pre, 0.01, 1.0)
    settings = DecodingSettings(alpha=0.01, beta=1.0, temperature=0.7, top_p=0.95)
    seen = set()
    for seed in range(50):
        generators = [torch.Generator().manual_seed(seed * 4 + row) for row in range(4)]
        seen.update(select_next_tokens(scores, settings, generators).tolist())
    assert seen <= {0, 1, 2} and len(seen) >= 2


def test_nan_scores_are_refused_before_sampling():
    scores = torch.tensor([[0.0, float("nan")]])
    with pytest.raises(FloatingPointError):
        select_next_tokens(scores, DecodingSettings(greedy=True))


def test_inverse_cdf_sampling_skips_zero_probability_tokens():
    scores = torch.log(torch.tensor([[0.5, 0.0, 0.3, 0.2]] * 4, dtype=torch.float64))
    # CDF = 0.5, 0.5, 0.8, 1.0: the first token whose CDF exceeds u is chosen.
    chosen = sample_from_scores(scores, torch.tensor([0.1, 0.5, 0.6, 0.95], dtype=torch.float64))
    assert chosen.tolist() == [0, 2, 2, 3]


def test_top_p_filter_hand_example_and_no_op_at_one():
    scores = torch.log(torch.tensor([[0.3, 0.5, 0.05, 0.15]]))
    assert top_p_filter(scores, 1.0) is scores
    keep = lambda top_p: torch.isfinite(top_p_filter(scores, top_p)).tolist()  # noqa: E731
    assert keep(0.4) == [[False, True, False, False]]
    assert keep(0.75) == [[True, True, False, False]]
    assert keep(0.85) == [[True, True, False, True]]


@pytest.mark.parametrize("top_p", [0.3, 0.7, 0.9])
def test_top_p_filter_agrees_with_transformers_warper(top_p):
    scores = torch.randn(6, 50, generator=torch.Generator().manual_seed(0)) * 3
    ours = torch.isfinite(top_p_filter(scores, top_p))
    theirs = torch.isfinite(TopPLogitsWarper(top_p)(None, scores.clone()))
    assert torch.equal(ours, theirs)


def test_greedy_picks_the_argmax_and_sampling_needs_a_generator_per_row():
    # Row 2: the post model prefers token 1 over token 2 by 0.2 nats, the pre model prefers it
    # by 4.5, so the contrast picks token 2.
    scores = contrast_scores(as_logprobs(POST_LOGITS), as_logprobs(PRE_LOGITS), 0.5, 1.0)
    assert select_next_tokens(scores, DecodingSettings(greedy=True)).tolist() == [0, 2]
    with pytest.raises(ValueError, match="one torch.Generator per row"):
        select_next_tokens(scores, DecodingSettings(), [torch.Generator()])


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"alpha": 1.5}, "--alpha"),
        ({"alpha": -0.1}, "--alpha"),
        ({"beta": -1.0}, "--beta"),
        ({"temperature": 0.0}, "--temperature"),
        ({"top_p": 0.0}, "--top-p"),
        ({"top_p": 1.2}, "--top-p"),
        ({"mode": "mix"}, "--mode"),
    ],
)
def test_invalid_settings_name_the_option(kwargs, option):
    with pytest.raises(ValueError, match=option):
        DecodingSettings(**kwargs)


def test_shared_vocabulary_accepted_and_size_returned():
    assert check_shared_vocabulary(tiny_tokenizer(), tiny_tokenizer()) == len(tiny_tokenizer())


def test_vocabulary_mismatch_is_refused_naming_token_ids_and_models():
    post, pre = tiny_tokenizer(), tiny_tokenizer(swap=("w3", "w7"))
    with pytest.raises(ValueError) as error:
        check_shared_vocabulary(post, pre, "org/post-it", "org/post-base")
    message = str(error.value)
    w3 = post.convert_tokens_to_ids("w3")
    w7 = post.convert_tokens_to_ids("w7")
    assert "'w3'" in message and f"id {w3} in org/post-it" in message
    assert f"id {w7} in org/post-base" in message


def test_special_token_id_mismatch_is_refused():
    post, pre = tiny_tokenizer(), tiny_tokenizer(swap=("<eos>", "w0"))
    with pytest.raises(ValueError, match="<eos>"):
        check_shared_vocabulary(post, pre, "post", "pre")


# ----------------------------------------------------------------------------------------------
# Numerics: -inf, NaN and inf from either model


def row_generators(rows: int, seed: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * rows + row) for row in range(rows)]


def test_pre_ruled_out_token_is_sampled_as_the_pre_models_least_likely_finite_token():
    lp_post = as_logprobs([[1.0, 0.9, 0.8, 0.7, -9.0]] * 3)
    lp_pre = torch.tensor([[-math.inf, -1.0, -0.5, -3.0, -math.inf]] * 3, dtype=torch.float64)
    floored = lp_pre.clone()
    floored[~torch.isfinite(floored)] = -3.0  # the row's least likely finite pre log-prob
    scores = contrast_scores(lp_post, lp_pre, 0.01, 1.0)
    assert torch.equal(scores, contrast_scores(lp_post, floored, 0.01, 1.0))
    assert torch.isfinite(scores[:, :4]).all() and (scores[:, 4] == -math.inf).all()
    # Token 0: best post log-prob and the largest finite pre bonus, so the greedy choice.
    assert select_next_tokens(scores, DecodingSettings(greedy=True)).tolist() == [0, 0, 0]
    settings = DecodingSettings(alpha=0.01, beta=1.0, temperature=1.3, top_p=0.9)
    for seed in range(20):
        expected = select_next_tokens(
            contrast_scores(lp_post, floored, 0.01, 1.0), settings, row_generators(3, seed)
        )
        assert torch.equal(select_next_tokens(scores, settings, row_generators(3, seed)), expected)


BAD_LOGITS = {"nan": math.nan, "inf": math.inf}


@pytest.mark.parametrize("model", ["post", "pre"])
@pytest.mark.parametrize("bad", sorted(BAD_LOGITS))
@pytest.mark.parametrize("alpha", [0.0, 0.01, 1.0])
@pytest.mark.parametrize("greedy", [True, False])
def test_nan_or_inf_logits_of_either_model_are_refused_before_sampling(model, bad, alpha, greedy):
    """As the engine computes them: log_softmax over the logits, then the rule."""
    logits = {"post": torch.tensor(POST_LOGITS), "pre": torch.tensor(PRE_LOGITS)}
    # Token 3 of row 1 is outside V_head for alpha > 0: the bad value is caught even there.
    logits[model][1, 3] = BAD_LOGITS[bad]
    lp_post, lp_pre = (torch.log_softmax(logits[name], dim=-1) for name in ("post", "pre"))
    settings = DecodingSettings(alpha=alpha, beta=1.0, greedy=greedy)
    scores = next_token_scores(lp_post, lp_pre, settings)
    with pytest.raises(FloatingPointError):
        select_next_tokens(scores, settings, None if greedy else row_generators(2, 0))


@pytest.mark.parametrize("bad", sorted(BAD_LOGITS))
def test_nan_or_inf_logits_are_refused_in_direct_mode(bad):
    logits = torch.tensor(POST_LOGITS)
    logits[0, 4] = BAD_LOGITS[bad]
    settings = DecodingSettings(mode="direct", alpha=None, beta=None)
    scores = next_token_scores(torch.log_softmax(logits, dim=-1), None, settings)
    with pytest.raises(FloatingPointError):
        select_next_tokens(scores, settings, row_generators(2, 0))


def test_a_broken_pre_row_is_nan_not_silently_ignored():
    rows = torch.tensor(
        [[-1.0, math.nan, -2.0], [-1.0, math.inf, -2.0], [-math.inf] * 3, [-1.0, -math.inf, -2.0]]
    )
    floored = finite_floor(rows)
    assert torch.isnan(floored[:3]).all()
    assert floored[3].tolist() == [-1.0, -2.0, -2.0]


def test_engine_refuses_a_model_with_nan_logits():
    vocab = len(tiny_tokenizer())
    prompts, stop = [[2, 4, 10, 11, 3, 5], [2, 4, 12, 3, 5]], [3]
    for broken in ("post", "pre"):
        models = {"post": tiny_model("llama", 1, vocab), "pre": tiny_model("llama", 2, vocab)}
        with torch.no_grad():
            models[broken].get_output_embeddings().weight[20] = math.nan
        engine = ContrastiveGenerator(
            models["post"], models["pre"], DecodingSettings(alpha=0.1), vocab, stop, 0, 4
        )
        with pytest.raises(FloatingPointError, match="NaN"):
            engine.generate(prompts, [1, 2])


def test_plausibility_set_is_never_empty():
    # alpha = 1 keeps every arg-max token, ties included.
    lp_post = as_logprobs([[2.0, 2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0], [5.0, -50.0, -50.0, -50.0]])
    head = plausibility_mask(lp_post, 1.0)
    assert head.tolist() == [
        [True, True, False, False],
        [True, True, True, True],
        [True, False, False, False],
    ]
    for alpha in (1e-12, 0.01, 0.5, 1.0):
        head = plausibility_mask(lp_post, alpha)
        assert head.any(dim=-1).all()
        assert head.gather(-1, lp_post.argmax(dim=-1, keepdim=True)).all()
    # A row with no finite post log-prob has no usable head: refused, never sampled.
    dead = torch.full((1, 4), -math.inf, dtype=torch.float64)
    for alpha in (0.0, 0.01, 1.0):
        scores = contrast_scores(dead, as_logprobs([[0.0, 1.0, 2.0, 3.0]]), alpha, 1.0)
        with pytest.raises(FloatingPointError, match="no finite maximum"):
            select_next_tokens(scores, DecodingSettings(alpha=alpha), row_generators(1, 0))


def test_no_nan_reaches_the_sampler_even_with_a_tiny_temperature():
    scores = contrast_scores(as_logprobs(POST_LOGITS), as_logprobs(PRE_LOGITS), 0.01, 1.0)
    # Finite scores over 1e-38 overflow float32 to +-inf: softmax would give NaN.
    tiny = DecodingSettings(temperature=1e-38)
    with pytest.raises(FloatingPointError, match="temperature"):
        select_next_tokens(scores.float(), tiny, row_generators(2, 0))
    # A small but sane temperature samples the arg-max, as greedy does.
    cold = DecodingSettings(temperature=1e-3)
    greedy = select_next_tokens(scores, DecodingSettings(greedy=True))
    assert torch.equal(select_next_tokens(scores, cold, row_generators(2, 0)), greedy)
