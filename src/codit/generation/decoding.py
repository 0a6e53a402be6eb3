"""The CoDIT next-token rule, as small pieces that each state their formula.

One decoding step, for a batch of rows (B rows, V = the tokenizer's real vocabulary):

    lp_post = log_softmax(logits_post)                     lp_pre = log_softmax(logits_pre)
    V_head  = { v : p_post(v) >= alpha * max_w p_post(w) }                 plausibility_mask
    s(v)    = lp_post(v) - beta * lp_pre(v) on V_head, -inf elsewhere       contrast_scores
    y       ~ softmax(top_p(s / temperature))  (argmax of s when greedy)    select_next_tokens

When |V_head| = 1 the token is fixed before lp_pre is known (`single_token_heads`); the engine
uses that to skip the pre model's forward pass.

The direct baseline uses s = lp_post with no plausibility set (`direct_scores`).
All functions work on float tensors of shape (B, V); they never read generation_config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from codit.generation.settings import DIRECT_MODE, DecodingSettings


def plausibility_mask(logprobs_post: torch.Tensor, alpha: float) -> torch.Tensor:
    """V_head = { v : p_post(v) >= alpha * max_w p_post(w) }, as a boolean mask of shape (B, V).

    Computed in log space: lp_post(v) >= log(alpha) + max_w lp_post(w). With alpha = 0 the
    threshold is -inf and every token is kept; with alpha = 1 only the arg-max tokens are.
    The arg-max token always belongs to V_head, so the set is never empty.
    """
    if alpha <= 0.0:
        return torch.ones_like(logprobs_post, dtype=torch.bool)
    threshold = math.log(alpha) + logprobs_post.max(dim=-1, keepdim=True).values
    return logprobs_post >= threshold


def finite_floor(logprobs: torch.Tensor) -> torch.Tensor:
    """Replace -inf entries by the smallest finite value of their row.

    Used on lp_pre so that a token the pre model calls impossible counts as its least likely
    finite token rather than giving s = +inf. A row holding NaN or +inf, or no finite value,
    becomes all NaN: log_softmax of finite logits never gives one, so it means the model's
    logits were NaN/inf, and the NaN scores it leads to are refused before sampling
    (`check_scores_are_sampleable`) instead of silently sampling without the pre model.
    """
    finite = torch.isfinite(logprobs)
    row_floor = (
        torch.where(finite, logprobs, torch.full_like(logprobs, math.inf))
        .min(dim=-1, keepdim=True)
        .values
    )
    broken = (torch.isnan(logprobs) | (logprobs == math.inf)).any(dim=-1, keepdim=True)
    row_floor = torch.where(
        torch.isfinite(row_floor) & ~broken, row_floor, torch.full_like(row_floor, math.nan)
    )
    return torch.where(finite & ~broken, logprobs, row_floor.expand_as(logprobs))


def contrast_scores(
    logprobs_post: torch.Tensor,
    logprobs_pre: torch.Tensor,
    alpha: float,
    beta: float,
    head: torch.Tensor | None = None,
) -> torch.Tensor:
    """s(v) = lp_post(v) - beta * lp_pre(v) for v in V_head(alpha), -inf elsewhere.

    lp_pre = -inf inside V_head (a token the pre model rules out) would make s = +inf and
    sampling degenerate (or NaN after softmax). Such entries are clamped to the row's smallest
    finite lp_pre (`finite_floor`): the token gets the largest finite bonus the row can give.
    A row of lp_pre from NaN/inf logits gives NaN on V_head, which sampling refuses.
    beta = 0 returns exactly lp_post on V_head, whatever lp_pre holds. `head` may pass in an
    already computed `plausibility_mask(logprobs_post, alpha)`.
    """
    if head is None:
        head = plausibility_mask(logprobs_post, alpha)
    # beta = 0 skips the pre term: 0 * lp_pre would still turn -inf into NaN.
    scores = logprobs_post if beta == 0.0 else logprobs_post - beta * finite_floor(logprobs_pre)
    return scores.masked_fill(~head, -math.inf)


def single_token_heads(head: torch.Tensor) -> torch.Tensor:
    """Rows (B,) whose plausibility set holds exactly one token.

    For such a row s is finite at that token only, so softmax puts all mass on it whatever
    lp_pre, beta, temperature or top_p are, and inverse-CDF sampling returns it for every
    uniform: the next token does not depend on the pre model.
    """
    return head.sum(dim=-1) == 1


def head_only_scores(logprobs_post: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    """lp_post on V_head, -inf elsewhere: the scores of rows whose token ignores the pre model.

    Only valid for `single_token_heads` rows; the token it yields equals contrast_scores'.
    """
    return logprobs_post.masked_fill(~head, -math.inf)


def direct_scores(logprobs_post: torch.Tensor) -> torch.Tensor:
    """s(v) = lp_post(v) for every v: the direct-generation baseline (beta = 0, no V_head)."""
    return logprobs_post


def apply_temperature(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """s / temperature; -inf stays -inf. temperature = 1 returns the scores unchanged."""
    return scores if temperature == 1.0 else scores / temperature


def top_p_filter(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of best tokens whose softmax mass reaches top_p.

    A token is dropped (set to -inf) when the mass of the tokens ranked above it is already
    >= top_p; the best token is always kept. top_p = 1 is a no-op (the tensor is returned).
    Same rule as transformers' TopPLogitsWarper with min_tokens_to_keep = 1.
    """
    if top_p >= 1.0:
        return scores
    sorted_scores, order = scores.sort(dim=-1, descending=True)
    sorted_probs = sorted_scores.softmax(dim=-1)
    mass_above = sorted_probs.cumsum(dim=-1) - sorted_probs
    drop_sorted = mass_above >= top_p
    drop_sorted[..., 0] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return scores.masked_fill(drop, -math.inf)


def check_scores_are_sampleable(scores: torch.Tensor) -> None:
    """Refuse rows that would make sampling undefined: any NaN, or no finite maximum (every
    entry -inf, or one +inf).

    Raised when a model produced NaN/inf logits (e.g. fp16 overflow), or when dividing by a tiny
    temperature overflowed the scores; the caller reports it.
    """
    if torch.isnan(scores).any():
        raise FloatingPointError(
            "next-token scores contain NaN (the post or pre model gave NaN/inf logits?)"
        )
    if not torch.isfinite(scores.max(dim=-1).values).all():
        raise FloatingPointError(
            "a row of next-token scores has no finite maximum (NaN/inf logits, "
            "or a --temperature so small that the scores overflow)"
        )


def uniforms_from_generators(generators: Sequence[torch.Generator]) -> torch.Tensor:
    """One U[0, 1) draw per row, each from that row's own CPU generator (float64, shape (B,)).

    Each row consumes exactly one draw per sampled token, so its sample sequence depends only
    on its own seed, never on batch composition, and is the same on CPU and GPU.
    """
    return torch.stack(
        [torch.rand((), generator=generator, dtype=torch.float64) for generator in generators]
    )


def sample_from_scores(scores: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling from softmax(scores), one uniform per row; returns ids of shape (B,).

    The chosen token is the first v (in vocabulary order) with CDF(v) > u * total mass; tokens
    with zero probability have a flat CDF and can never be chosen.
    """
    probs = scores.double().softmax(dim=-1)
    cdf = probs.cumsum(dim=-1)
    targets = uniforms.to(cdf.device, torch.float64).unsqueeze(-1) * cdf[..., -1:]
    chosen = (cdf <= targets).sum(dim=-1)
    # Rounding can put the target on the final plateau: fall back to the last positive token.
    last_positive = probs.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(dim=-1)
    return torch.minimum(chosen, last_positive)


def select_next_tokens(
    scores: torch.Tensor,
    settings: DecodingSettings,
    generators: Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """Turn (B, V) scores into next token ids: argmax when greedy, else temperature, top-p and
    one sample per row from that row's generator. Scores that would make either undefined
    are refused first (`check_scores_are_sampleable`, after the temperature when sampling)."""
    if settings.greedy:
        check_scores_are_sampleable(scores)
        return scores.argmax(dim=-1)
    if generators is None or len(generators) != scores.shape[0]:
        raise ValueError("sampling needs one torch.Generator per row")
    scaled = apply_temperature(scores, settings.temperature)
    check_scores_are_sampleable(scaled)
    filtered = top_p_filter(scaled, settings.top_p)
    return sample_from_scores(filtered, uniforms_from_generators(generators))


def next_token_scores(
    logprobs_post: torch.Tensor, logprobs_pre: torch.Tensor | None, settings: DecodingSettings
) -> torch.Tensor:
    """The scores of one step: contrast_scores in CoDIT mode, direct_scores in direct mode."""
    if settings.mode == DIRECT_MODE:
        return direct_scores(logprobs_post)
    if logprobs_pre is None:
        raise ValueError("CoDIT mode needs the pre model's log-probabilities")
    return contrast_scores(logprobs_post, logprobs_pre, settings.alpha, settings.beta)


def _special_tokens(tokenizer: Any) -> list[str]:
    tokens = list(getattr(tokenizer, "all_special_tokens", []))
    for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
        token = getattr(tokenizer, name, None)
        if isinstance(token, str) and token not in tokens:
            tokens.append(token)
    return tokens


def check_shared_vocabulary(
    post_tokenizer: Any,
    pre_tokenizer: Any,
    post_name: str | None = None,
    pre_name: str | None = None,
) -> int:
    """Refuse a post/pre pair unless both tokenizers map every token to the same id.

    Compares get_vocab() (the real vocabulary, added tokens included) and the ids of every
    special token of either tokenizer. Which token each model calls eos may differ (base and
    instruct checkpoints often differ there); only the token -> id map must agree, because the
    pre model is fed the post model's ids. Returns the shared vocabulary size, len(tokenizer),
    to which both models' logits are sliced (embedding matrices are often padded past it).
    """
    post_name = post_name or getattr(post_tokenizer, "name_or_path", "post model")
    pre_name = pre_name or getattr(pre_tokenizer, "name_or_path", "pre model")
    post_vocab: Mapping[str, int] = post_tokenizer.get_vocab()
    pre_vocab: Mapping[str, int] = pre_tokenizer.get_vocab()

    def refuse(token: str, post_id: int | None, pre_id: int | None) -> ValueError:
        return ValueError(
            f"post model {post_name} and pre model {pre_name} do not share a vocabulary: "
            f"token {token!r} has id {post_id} in {post_name} and id {pre_id} in {pre_name}"
        )

    for token, post_id in sorted(post_vocab.items(), key=lambda item: (item[1], item[0])):
        if pre_vocab.get(token) != post_id:
            raise refuse(token, post_id, pre_vocab.get(token))
    for token, pre_id in sorted(pre_vocab.items(), key=lambda item: (item[1], item[0])):
        if token not in post_vocab:
            raise refuse(token, None, pre_id)
    for token in _special_tokens(post_tokenizer) + _special_tokens(pre_tokenizer):
        post_id = post_tokenizer.convert_tokens_to_ids(token)
        pre_id = pre_tokenizer.convert_tokens_to_ids(token)
        if post_id != pre_id:
            raise refuse(token, post_id, pre_id)
    if len(post_tokenizer) != len(pre_tokenizer):
        raise ValueError(
            f"post model {post_name} has {len(post_tokenizer)} tokens and pre model "
            f"{pre_name} has {len(pre_tokenizer)}"
        )
    return len(post_tokenizer)
