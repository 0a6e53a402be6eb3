"""The decoding engine: a post and a pre causal LM, each with its own KV cache, one token a step.

A batch is left-padded and prefilled with explicit position ids; then every step the post model
scores the prefix, the next token is chosen by the rule in codit.decoding, and the post model is
fed it. Three things make this faster than lock-step decoding without changing a single token:

- Skipping the pre model. When every unfinished row's plausibility set holds a single token,
  that token does not depend on lp_pre (`decoding.single_token_heads`), so the pre model's
  forward is skipped. The pre model keeps its own count of the tokens it has seen and catches
  up on everything it missed in one chunked forward, the next time some row needs lp_pre.
  The decision is per row, the forward is per batch: decoding is memory-bound, and a forward
  over a subset of rows costs about as much as one over all of them.
- Compaction. Rows that have stopped are dropped from the batch (and from both caches) once
  a quarter of the rows are done, so a few long responses do not drag a full batch along.
- Length-sorted batches (`plan_batches`): prompts of similar length share a batch, which
  keeps padding small; the plan depends only on the prompts, so a resumed shard re-creates
  exactly the batches (and therefore exactly the floating-point results) of the first run.

Randomness is per row (one CPU generator per prompt, one draw per token), so a response
depends only on its prompt, its seed and the batch it was planned into.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from codit.datasets import FINISH_LENGTH, FINISH_STOP  # the record schema
from codit.decoding import (
    contrast_scores,
    direct_scores,
    head_only_scores,
    plausibility_mask,
    select_next_tokens,
    single_token_heads,
)
from codit.generation_settings import CACHE_KINDS, CODIT_MODE, DecodingSettings

# Drop finished rows once this share of the batch is done: each drop copies both caches.
COMPACT_FRACTION = 0.25


@dataclass(frozen=True)
class GenerationResult:
    token_ids: list[int]  # generated tokens, stop token excluded
    finish_reason: str  # FINISH_STOP or FINISH_LENGTH


@dataclass
class EngineStats:
    """Counters of the work done, summed over `generate` calls (see `reset_stats`)."""

    batches: int = 0
    steps: int = 0  # tokens chosen per row (the first from the prefill's logits)
    post_forwards: int = 0  # prefills included
    pre_forwards: int = 0  # prefills and catch-up chunks
    pre_skipped_steps: int = 0  # steps whose token needed no lp_pre
    pre_catch_up_tokens: int = 0  # tokens fed to the pre model after its prefill
    row_tokens: int = 0  # tokens chosen for unfinished rows
    single_head_row_tokens: int = 0  # ... of which had |V_head| = 1
    compactions: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def result_from_tokens(generated: Sequence[int], stop_ids: Sequence[int]) -> GenerationResult:
    """A row's tokens up to its first stop id (excluded), finished by that stop or by length."""
    for index, token_id in enumerate(generated):
        if token_id in stop_ids:
            return GenerationResult(list(generated[:index]), FINISH_STOP)
    return GenerationResult(list(generated), FINISH_LENGTH)


def left_pad(
    prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (B, L) input ids and their attention mask (0 on padding)."""
    width = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[row, width - len(prompt) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def plan_batches(prompt_lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of each batch: longest prompts first, ties in input order, `batch_size` a batch.

    Similar lengths share a batch (little padding), and the longest batch runs first, so a
    memory problem shows at once. Depends only on the lengths, so it is reproducible.
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    order = sorted(range(len(prompt_lengths)), key=lambda index: (-prompt_lengths[index], index))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def model_input_device(model: Any) -> torch.device:
    """Where a model's input ids must live (its embedding's device, also under device_map)."""
    return model.get_input_embeddings().weight.device


class IncrementalLM:
    """One causal LM with its own KV cache, fed a left-padded prompt batch and then chunks.

    Keeps the batch's attention mask (prompt mask, then ones) and each row's next position, so
    callers only pass token ids. Returns float32 log-probabilities of the last position, sliced
    to the real vocabulary (`vocab_size`; checkpoints pad their embedding matrices differently)
    and moved to `output_device`.
    """

    def __init__(
        self,
        model: Any,
        vocab_size: int,
        cache: str = "dynamic",
        output_device: torch.device | None = None,
    ) -> None:
        output_size = model.get_output_embeddings().weight.shape[0]
        if output_size < vocab_size:
            raise ValueError(
                f"{model.name_or_path} scores {output_size} tokens, "
                f"but its tokenizer has {vocab_size}"
            )
        if cache not in CACHE_KINDS:
            raise ValueError(f"--cache must be one of {', '.join(CACHE_KINDS)}, got {cache!r}")
        self.model = model
        self.vocab_size = vocab_size
        self.cache_kind = cache
        self.device = model_input_device(model)
        self.output_device = output_device or self.device
        parameters = inspect.signature(model.forward).parameters
        self._keep_last_only = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
        self.cache: Any = None
        self._mask: torch.Tensor | None = None  # (B, prompt width + max new tokens)
        self._next_position: torch.Tensor | None = None  # (B, 1)
        self.length = 0  # columns of the mask seen so far
        self.prompt_width = 0

    @property
    def fed_tokens(self) -> int:
        """Tokens fed after the prompt (the same for every row)."""
        return self.length - self.prompt_width

    def prefill(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int
    ) -> torch.Tensor:
        """Start a batch: run the left-padded prompt; positions = (cumsum(mask) - 1).clamp(0)."""
        from transformers import DynamicCache, StaticCache

        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        batch, width = input_ids.shape
        if self.cache_kind == "static":
            self.cache = StaticCache(config=self.model.config, max_cache_len=width + max_new_tokens)
        else:
            self.cache = DynamicCache(config=self.model.config)
        new_columns = attention_mask.new_ones((batch, max_new_tokens))
        self._mask = torch.cat([attention_mask, new_columns], dim=1)
        self.prompt_width = self.length = width
        position_ids = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)
        self._next_position = attention_mask.sum(dim=-1, keepdim=True)
        return self._forward(input_ids, position_ids)

    def feed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Append (B, K) tokens to every row; returns lp of the token after the last one."""
        token_ids = token_ids.to(self.device)
        chunk = token_ids.shape[1]
        position_ids = self._next_position + torch.arange(chunk, device=self.device)
        self._next_position = self._next_position + chunk
        self.length += chunk
        return self._forward(token_ids, position_ids)

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Drop every row not in `rows` (indices into the current batch) from cache and mask."""
        if self.cache_kind == "static":
            raise ValueError("a static cache has a fixed batch size; rows cannot be dropped")
        rows = rows.to(self.device)
        self.cache.batch_select_indices(rows)
        self._mask = self._mask[rows]
        self._next_position = self._next_position[rows]

    def _forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        output = self.model(
            input_ids=input_ids,
            attention_mask=self._mask[:, : self.length],
            position_ids=position_ids,
            past_key_values=self.cache,
            use_cache=True,
            **self._keep_last_only,
        )
        logits = output.logits[:, -1, : self.vocab_size]
        return torch.log_softmax(logits.float(), dim=-1).to(self.output_device)


class ContrastiveGenerator:
    """Generates one response per prompt with the CoDIT rule (or directly from the post model).

    In direct mode `pre_model` is None and only the post model runs. `skip_pre_forward` and
    `compact_finished` change the work done, never the tokens (see the module docstring);
    `cache="static"` pre-allocates both caches (for torch.compile on GPU) and disables
    compaction, whose point is to shrink them.
    """

    def __init__(
        self,
        post_model: Any,
        pre_model: Any | None,
        settings: DecodingSettings,
        vocab_size: int,
        stop_ids: Sequence[int],
        pad_id: int,
        max_new_tokens: int,
        *,
        skip_pre_forward: bool = True,
        compact_finished: bool = True,
        cache: str = "dynamic",
    ) -> None:
        if settings.mode == CODIT_MODE and pre_model is None:
            raise ValueError("CoDIT mode needs a pre model")
        if max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
        self.post = IncrementalLM(post_model, vocab_size, cache)
        self.device = self.post.device
        self.pre = (
            IncrementalLM(pre_model, vocab_size, cache, output_device=self.device)
            if settings.mode == CODIT_MODE
            else None
        )
        self.settings = settings
        self.stop_ids = list(stop_ids)
        self.pad_id = pad_id
        self.max_new_tokens = max_new_tokens
        self.skip_pre_forward = skip_pre_forward
        self.compact_finished = compact_finished and cache == "dynamic"
        self.stats = EngineStats()

    def reset_stats(self) -> None:
        self.stats = EngineStats()

    @torch.inference_mode()
    def generate(
        self, prompts: Sequence[Sequence[int]], seeds: Sequence[int] | None = None
    ) -> list[GenerationResult]:
        """One batch: prompt token ids (any lengths) and one seed per prompt (unused if greedy)."""
        generators = None
        if not self.settings.greedy:
            if seeds is None or len(seeds) != len(prompts):
                raise ValueError("sampling needs one seed per prompt")
            generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        batch = _Batch(len(prompts), self.max_new_tokens, self.pad_id, self.device, generators)
        input_ids, attention_mask = left_pad(prompts, self.pad_id, self.device)
        self.stats.batches += 1

        logprobs_post = self.post.prefill(input_ids, attention_mask, self.max_new_tokens)
        logprobs_pre = None
        if self.pre is not None:
            logprobs_pre = self.pre.prefill(input_ids, attention_mask, self.max_new_tokens)
            self.stats.pre_forwards += 1
        self.stats.post_forwards += 1
        stop_ids = torch.tensor(self.stop_ids, device=self.device)

        for step in range(self.max_new_tokens):
            self.stats.steps += 1
            scores, logprobs_pre = self._scores(logprobs_post, logprobs_pre, batch, step)
            next_ids = select_next_tokens(scores, self.settings, batch.generators)
            next_ids = next_ids.masked_fill(batch.finished, self.pad_id)
            self.stats.row_tokens += int((~batch.finished).sum())
            batch.tokens[:, step] = next_ids
            batch.finished |= torch.isin(next_ids, stop_ids)
            if step == self.max_new_tokens - 1 or bool(batch.finished.all()):
                break
            if self.compact_finished and batch.should_compact():
                kept = batch.compact()
                self.post.keep_rows(kept)
                if self.pre is not None:
                    self.pre.keep_rows(kept)
                    logprobs_pre = logprobs_pre[kept]
                next_ids = next_ids[kept]
                self.stats.compactions += 1
            logprobs_post = self.post.feed(next_ids.view(-1, 1))
            self.stats.post_forwards += 1
        batch.retire_all()
        return [result_from_tokens(row, self.stop_ids) for row in batch.outputs]

    def _scores(
        self,
        logprobs_post: torch.Tensor,
        logprobs_pre: torch.Tensor | None,
        batch: _Batch,
        step: int,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This step's scores, feeding the pre model its missed tokens first if a row needs it."""
        if self.pre is None:
            return direct_scores(logprobs_post), None
        head = plausibility_mask(logprobs_post, self.settings.alpha)
        single = single_token_heads(head)
        self.stats.single_head_row_tokens += int((single & ~batch.finished).sum())
        pre_is_current = self.pre.fed_tokens == step
        if not pre_is_current and self.skip_pre_forward and bool((single | batch.finished).all()):
            self.stats.pre_skipped_steps += 1
            return head_only_scores(logprobs_post, head), logprobs_pre
        if not pre_is_current:
            # Every row missed the same tokens: one chunked forward catches them all up.
            missed = batch.tokens[:, self.pre.fed_tokens : step]
            logprobs_pre = self.pre.feed(missed)
            self.stats.pre_forwards += 1
            self.stats.pre_catch_up_tokens += missed.shape[1]
        scores = contrast_scores(
            logprobs_post, logprobs_pre, self.settings.alpha, self.settings.beta, head=head
        )
        return scores, logprobs_pre


class _Batch:
    """The rows still decoding: their tokens so far, finished flags, generators and origins."""

    def __init__(
        self,
        size: int,
        max_new_tokens: int,
        pad_id: int,
        device: torch.device,
        generators: list[torch.Generator] | None,
    ) -> None:
        self.tokens = torch.full((size, max_new_tokens), pad_id, dtype=torch.long, device=device)
        self.finished = torch.zeros(size, dtype=torch.bool, device=device)
        self.generators = generators
        self.origin = list(range(size))  # row of the caller's batch that each row answers
        self.outputs: list[list[int]] = [[] for _ in range(size)]

    def should_compact(self) -> bool:
        done = int(self.finished.sum())
        return done > 0 and done >= math.ceil(COMPACT_FRACTION * len(self.origin))

    def compact(self) -> torch.Tensor:
        """Retire finished rows; returns the indices of the rows kept."""
        finished = self.finished.tolist()
        kept = [row for row, done in enumerate(finished) if not done]
        for row, done in enumerate(finished):
            if done:
                self.outputs[self.origin[row]] = self.tokens[row].tolist()
        kept_index = torch.tensor(kept, dtype=torch.long, device=self.tokens.device)
        self.tokens = self.tokens[kept_index]
        self.finished = self.finished[kept_index]
        self.origin = [self.origin[row] for row in kept]
        if self.generators is not None:
            self.generators = [self.generators[row] for row in kept]
        return kept_index

    def retire_all(self) -> None:
        for row, tokens in enumerate(self.tokens.tolist()):
            self.outputs[self.origin[row]] = tokens


def run_planned_batches(
    batch_fn: Callable[[list[list[int]], list[int]], list[Any]],
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    batch_size: int,
) -> list[Any]:
    """Call `batch_fn(prompts, seeds)` on each `plan_batches` batch; results in input order."""
    results: list[Any] = [None] * len(prompts)
    for batch in plan_batches([len(prompt) for prompt in prompts], batch_size):
        outputs = batch_fn([list(prompts[i]) for i in batch], [seeds[i] for i in batch])
        for index, output in zip(batch, outputs, strict=True):
            results[index] = output
    return results


def generate_in_batches(
    generator: ContrastiveGenerator,
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    batch_size: int,
) -> list[GenerationResult]:
    """Generate for all prompts in `plan_batches` order; results come back in input order."""
    return run_planned_batches(generator.generate, prompts, seeds, batch_size)
