"""The CoDIT next-token rule against hand computations (codit.decoding)."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import tiny_tokenizer
from transformers import TopPLogitsWarper

from codit.decoding import (
    DecodingSettings,
    check_shared_vocabulary,
    contrast_scores,
    finite_floor,
    plausibility_mask,
    sample_from_scores,
    select_next_tokens,
    top_p_filter,
)

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
    assert finite_floor(torch.tensor([[-math.inf, -math.inf]])).tolist() == [[0.0, 0.0]]


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
