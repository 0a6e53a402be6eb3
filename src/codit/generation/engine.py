"""The decoding engine: a post and a pre causal LM, each with its own KV cache, one token a step.

A batch is left-padded and prefilled with explicit position ids; then every step the post model
scores the prefix, the next token is chosen by the rule in codit.generation.decoding, and the
post model is fed it. Four things make this faster than lock-step decoding without changing a
single token:

- Skipping the pre model. When every unfinished row's plausibility set holds a single token,
  that token does not depend on lp_pre (`decoding.single_token_heads`), so the pre model's
  forward is skipped. The pre model keeps the tokens it has not seen (the same number for every
  row) and catches up on them in one chunked forward, the next time some row needs lp_pre.
  The decision is per row, the forward is per batch: decoding is memory-bound, and a forward
  over a subset of rows costs about as much as one over all of them.
- Continuous batching (dynamic caches, the default): a batch keeps its rows busy. Once a
  sixteenth of the rows have stopped (REFILL_FRACTION) and prompts are waiting, the next ones
  take those rows' places in both caches: all but their last token are prefilled apart (their
  own positions from 0), the keys and values are written into the freed rows right-aligned to
  the cache width (masked on the left), and the last token is fed with the other rows' next
  tokens. The pre model, k tokens behind every row, gets the newcomer's prompt but its last
  k + 1 tokens, and those k join the tokens it will catch up on, so every live row stays
  equally far behind (a prompt too short for that makes it catch up first). Columns no row
  attends to are cut on the left, and a newcomer longer than the cache pads every row on the
  left: a cache never holds more than the batch size x the longest context. The price is
  padding: rows of different ages share one width (`EngineStats.padding_waste`). Static
  caches, and caches with sliding-window layers, keep fixed batches: no refill.
- Compaction. Rows that have stopped are dropped from the batch (and from both caches) once
  a quarter of the rows are done and no prompt waits, so a few long responses do not drag a
  full batch along.
- Length-sorted batches and windows (`plan_batches`, `plan_windows`): prompts of similar length
  share a batch, the longest first. Continuous batching runs inside a window of consecutive
  planned batches; windows run one after the other, and a window is the checkpoint unit of
  codit.generation.generate. The plan depends only on the prompts, so a resumed shard re-creates
  exactly the windows (and therefore exactly the floating-point results) of the first run.
  Trade-off: a window ends with a drain (its last long responses run with fewer rows), so longer
  windows fill batches better and a kill loses more.

Randomness is per row (one CPU generator per prompt, one draw per token), so a response
depends only on its prompt, its seed and the rows it shared steps with.
"""

from __future__ import annotations

import inspect
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from codit.data.datasets import FINISH_LENGTH, FINISH_STOP  # the record schema
from codit.generation.decoding import (
    contrast_scores,
    direct_scores,
    head_only_scores,
    plausibility_mask,
    select_next_tokens,
    single_token_heads,
)
from codit.generation.settings import CACHE_KINDS, CODIT_MODE, WINDOW_BATCHES, DecodingSettings

# Drop finished rows once this share of the batch is done: each drop copies both caches.
COMPACT_FRACTION = 0.25
# Refill once this share of the rows is free (or every waiting prompt fits): each refill is a
# prefill forward per model, which on a GPU reads all the weights as a decoding step does; at
# batch 64, 4 rows at a time keeps about 97 % of the rows busy for a forward every ~30 steps.
REFILL_FRACTION = 1 / 16


@dataclass(frozen=True)
class GenerationResult:
    token_ids: list[int]  # generated tokens, stop token excluded
    finish_reason: str  # FINISH_STOP or FINISH_LENGTH


@dataclass
class EngineStats:
    """Counters of the work done, summed over `generate` calls (see `reset_stats`)."""

    batches: int = 0  # batches prefilled (a continuous window is one)
    steps: int = 0  # decoding steps (each chooses one token per row)
    slot_steps: int = 0  # rows the batch was planned with, summed over steps
    post_forwards: int = 0  # prefills and refills included
    pre_forwards: int = 0  # prefills, refills and catch-up chunks
    pre_skipped_steps: int = 0  # steps whose token needed no lp_pre
    pre_catch_up_tokens: int = 0  # tokens fed to the pre model after its prefill
    row_tokens: int = 0  # tokens chosen for unfinished rows
    single_head_row_tokens: int = 0  # ... of which had |V_head| = 1
    compactions: int = 0
    refills: int = 0  # prompts that took a finished row's place
    refill_prefills: int = 0  # post-model forwards that prefilled such prompts
    refill_pre_prefills: int = 0  # ... pre-model forwards
    refill_catch_ups: int = 0  # pre-model catch-ups forced by a refill (a prompt too short)
    refills_behind_pre: int = 0  # refills done while the pre model was behind (no catch-up)
    cache_cells: int = 0  # rows x KV columns of the post model's decoding forwards
    padding_cells: int = 0  # ... of which masked (padding)

    def occupancy(self) -> float | None:
        """Mean share of the planned rows still decoding, over decoding steps."""
        return self.row_tokens / self.slot_steps if self.slot_steps else None

    def padding_waste(self) -> float | None:
        """Share of the post model's cache cells read at decoding steps that are padding."""
        return self.padding_cells / self.cache_cells if self.cache_cells else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "occupancy": self.occupancy(),
            "padding_waste": self.padding_waste(),
        }


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


def plan_windows(
    prompt_lengths: Sequence[int], batch_size: int, window_batches: int
) -> list[list[int]]:
    """Indices of each window: `window_batches` consecutive `plan_batches` batches, in order."""
    if window_batches < 1:
        raise ValueError(f"--window-batches must be >= 1, got {window_batches}")
    plan = plan_batches(prompt_lengths, batch_size)
    return [
        [index for batch in plan[start : start + window_batches] for index in batch]
        for start in range(0, len(plan), window_batches)
    ]


def model_input_device(model: Any) -> torch.device:
    """Where a model's input ids must live (its embedding's device, also under device_map)."""
    return model.get_input_embeddings().weight.device


def refillable_cache(model: Any) -> bool:
    """Whether the model's dynamic cache is plain full-attention layers, whose rows can be
    rewritten in place (sliding-window layers keep a count of their own)."""
    from transformers import DynamicCache, DynamicLayer

    try:
        layers = getattr(DynamicCache(config=model.config), "layers", [])
    except (AttributeError, TypeError, ValueError):  # a config transformers cannot cache from
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class IncrementalLM:
    """One causal LM with its own KV cache, fed a left-padded prompt batch and then chunks.

    Keeps the batch's attention mask (one column per cache column) and each row's next
    position, so callers only pass token ids. Returns float32 log-probabilities of the last
    position, sliced to the real vocabulary (`vocab_size`; checkpoints pad their embedding
    matrices differently) and moved to `output_device`.
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
        self._mask: torch.Tensor | None = None  # (B, cache columns)
        self._next_position: torch.Tensor | None = None  # (B, 1)
        self.can_refill = cache == "dynamic" and refillable_cache(model)

    def prefill(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int
    ) -> torch.Tensor:
        """Start a batch: run the left-padded prompt; positions = (cumsum(mask) - 1).clamp(0)."""
        from transformers import DynamicCache, StaticCache

        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        width = input_ids.shape[1]
        if self.cache_kind == "static":
            self.cache = StaticCache(config=self.model.config, max_cache_len=width + max_new_tokens)
        else:
            self.cache = DynamicCache(config=self.model.config)
        self._mask = attention_mask.clone()  # rows are rewritten in place by refills
        position_ids = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)
        self._next_position = attention_mask.sum(dim=-1, keepdim=True)
        return self._forward(input_ids, position_ids)

    def feed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Append (B, K) tokens to every row; returns lp of the token after the last one."""
        token_ids = token_ids.to(self.device)
        chunk = token_ids.shape[1]
        position_ids = self._next_position + torch.arange(chunk, device=self.device)
        self._next_position = self._next_position + chunk
        self._mask = torch.cat([self._mask, self._mask.new_ones((token_ids.shape[0], chunk))], 1)
        return self._forward(token_ids, position_ids)

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Drop every row not in `rows` (indices into the current batch) from cache and mask."""
        if self.cache_kind == "static":
            raise ValueError("a static cache has a fixed batch size; rows cannot be dropped")
        rows = rows.to(self.device)
        self.cache.batch_select_indices(rows)
        self._mask = self._mask[rows]
        self._next_position = self._next_position[rows]
        if self.can_refill:
            self._trim_left()

    def replace_rows(self, rows: Sequence[int], prompts: Sequence[Sequence[int]]) -> int:
        """Make row `rows[i]` hold `prompts[i]` alone (positions from 0), dropping what it held.

        The prompts are prefilled together in a cache of their own, and each one's keys and
        values are copied right-aligned into its row. Returns the forwards run (0 or 1).
        """
        if not self.can_refill:
            raise ValueError("only a dynamic cache of full-attention layers can refill rows")
        longest = max(len(prompt) for prompt in prompts)
        if longest > self.width:
            self._pad_left(longest - self.width)
        fresh = self._prefill_alone(prompts).layers if longest else None
        width = self.width
        for index, (row, prompt) in enumerate(zip(rows, prompts, strict=True)):
            tokens = len(prompt)
            for number, layer in enumerate(self.cache.layers):
                for name in ("keys", "values"):
                    old = getattr(layer, name)
                    old[row].zero_()  # masked, but 0 x a stale inf would still be NaN
                    if tokens:
                        new = getattr(fresh[number], name)
                        old[row, :, width - tokens :] = new[index, :, -tokens:]
            self._mask[row] = 0
            if tokens:
                self._mask[row, width - tokens :] = 1
            self._next_position[row] = tokens
        self._trim_left()
        return int(fresh is not None)

    @property
    def width(self) -> int:
        """Columns of the cache (and of the mask)."""
        return self._mask.shape[1]

    def padding(self) -> tuple[int, int]:
        """(cells, masked cells) of the cache the next forward reads, one new column included."""
        rows, width = self._mask.shape
        cells = rows * (width + 1)
        return cells, cells - rows - int(self._mask.sum())

    def _prefill_alone(self, prompts: Sequence[Sequence[int]]) -> Any:
        """A fresh cache holding `prompts`, left-padded, each with positions from 0."""
        from transformers import DynamicCache

        input_ids, attention_mask = left_pad(prompts, 0, self.device)
        cache = DynamicCache(config=self.model.config)
        position_ids = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)
        self._run(input_ids, attention_mask, position_ids, cache)
        return cache

    def _pad_left(self, columns: int) -> None:
        """Add `columns` masked columns on the left of every row (a newcomer is wider)."""
        for layer in self.cache.layers:
            layer.keys = _pad_columns(layer.keys, columns)
            layer.values = _pad_columns(layer.values, columns)
        self._mask = torch.cat(
            [self._mask.new_zeros((self._mask.shape[0], columns)), self._mask], 1
        )

    def _trim_left(self) -> None:
        """Cut the columns on the left that every row masks."""
        attended = self._mask.any(dim=0)
        first = int(attended.int().argmax()) if bool(attended.any()) else self.width
        if first <= 0:
            return
        for layer in self.cache.layers:
            layer.keys = layer.keys[:, :, first:]
            layer.values = layer.values[:, :, first:]
        self._mask = self._mask[:, first:]

    def _forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        logits = self._run(input_ids, self._mask, position_ids, self.cache)
        return torch.log_softmax(logits.float(), dim=-1).to(self.output_device)

    def _run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: Any,
    ) -> torch.Tensor:
        """Logits of the last position (real vocabulary) of one forward that fills `cache`."""
        output = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
            **self._keep_last_only,
        )
        return output.logits[:, -1, : self.vocab_size]


def _pad_columns(states: torch.Tensor, columns: int) -> torch.Tensor:
    """(B, heads, L, dim) keys or values with `columns` zero columns added on the left."""
    batch, heads, _, dim = states.shape
    return torch.cat([states.new_zeros((batch, heads, columns, dim)), states], dim=2)


class ContrastiveGenerator:
    """Generates one response per prompt with the CoDIT rule (or directly from the post model).

    In direct mode `pre_model` is None and only the post model runs. `skip_pre_forward`,
    `compact_finished` and `continuous` change the work done, never the tokens (see the module
    docstring); `cache="static"` pre-allocates both caches (for torch.compile on GPU) and
    disables compaction and continuous batching, whose point is to reshape them.
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
        continuous: bool = True,
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
        models = [self.post] if self.pre is None else [self.post, self.pre]
        self.continuous = continuous and all(model.can_refill for model in models)
        self.stats = EngineStats()

    def reset_stats(self) -> None:
        self.stats = EngineStats()

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        seeds: Sequence[int] | None = None,
        token_limits: Sequence[int] | None = None,
    ) -> list[GenerationResult]:
        """One batch: prompt token ids (any lengths) and one seed per prompt (unused if greedy);
        `token_limits` caps each prompt's response below max_new_tokens (a forced length)."""
        return self._decode(prompts, seeds, token_limits, rows=len(prompts))

    def generate_window(
        self,
        prompts: Sequence[Sequence[int]],
        seeds: Sequence[int] | None,
        batch_size: int,
        token_limits: Sequence[int] | None = None,
    ) -> list[GenerationResult]:
        """`prompts` in the order given, `batch_size` rows at a time: with continuous batching
        a finished row takes the next waiting prompt; without, consecutive batches."""
        if self.continuous:
            return self._decode(prompts, seeds, token_limits, rows=batch_size)
        results = []
        for start in range(0, len(prompts), batch_size):
            part = slice(start, start + batch_size)
            results += self._decode(
                prompts[part],
                None if seeds is None else seeds[part],
                None if token_limits is None else token_limits[part],
                rows=batch_size,
            )
        return results

    @torch.inference_mode()
    def _decode(
        self,
        prompts: Sequence[Sequence[int]],
        seeds: Sequence[int] | None,
        token_limits: Sequence[int] | None,
        rows: int,
    ) -> list[GenerationResult]:
        """Decode every prompt with at most `rows` in the batch, refilling freed rows in order."""
        if not prompts:
            return []
        generators = self._generators(prompts, seeds)
        limits = [self.max_new_tokens] * len(prompts) if token_limits is None else token_limits
        limits = [min(int(limit), self.max_new_tokens) for limit in limits]
        if min(limits) < 1:
            raise ValueError("every token limit must be >= 1")
        waiting = deque(range(min(rows, len(prompts)), len(prompts)))
        if waiting and not self.continuous:
            raise ValueError("more prompts than rows needs continuous batching")
        if waiting and min(len(prompt) for prompt in prompts) < 1:
            raise ValueError("continuous batching needs non-empty prompts")
        batch = _Batch(self.max_new_tokens, self.pad_id, self.device)
        first = range(min(rows, len(prompts)))
        batch.start(list(first), generators, limits)
        logprobs_post, logprobs_pre = self._prefill([prompts[index] for index in first])
        stop_ids = torch.tensor(self.stop_ids, dtype=torch.long, device=self.device)
        unfed: list[torch.Tensor] = []  # tokens the post model has seen and the pre model not
        refill_at = math.ceil(REFILL_FRACTION * rows)
        while True:
            self._count_step(rows)
            scores, logprobs_pre, unfed = self._scores(logprobs_post, logprobs_pre, batch, unfed)
            next_ids = select_next_tokens(scores, self.settings, batch.generators)
            next_ids = next_ids.masked_fill(batch.finished, self.pad_id)
            self.stats.row_tokens += int((~batch.finished).sum())
            finished = batch.record(next_ids, stop_ids)
            if all(finished) and not waiting:
                break
            freed = [row for row, done in enumerate(finished) if done][: len(waiting)]
            if freed and len(freed) >= min(refill_at, len(waiting)):
                newcomers = [waiting.popleft() for _ in freed]
                next_ids, unfed = self._refill(
                    batch, freed, newcomers, prompts, generators, limits, next_ids, unfed
                )
            elif not waiting and self.compact_finished and batch.should_compact():
                kept = batch.compact()
                self.post.keep_rows(kept)
                if self.pre is not None:
                    self.pre.keep_rows(kept)
                    logprobs_pre = logprobs_pre[kept]
                    unfed = [tokens[kept] for tokens in unfed]
                next_ids = next_ids[kept]
                self.stats.compactions += 1
            logprobs_post = self.post.feed(next_ids.view(-1, 1))
            self.stats.post_forwards += 1
            if self.pre is not None:
                unfed.append(next_ids)
        batch.retire_all()
        return [
            result_from_tokens(batch.outputs[index], self.stop_ids) for index in range(len(prompts))
        ]

    def _generators(
        self, prompts: Sequence[Sequence[int]], seeds: Sequence[int] | None
    ) -> list[torch.Generator] | None:
        """One CPU generator per prompt, seeded with its seed (None when greedy)."""
        if self.settings.greedy:
            return None
        if seeds is None or len(seeds) != len(prompts):
            raise ValueError("sampling needs one seed per prompt")
        return [torch.Generator().manual_seed(int(seed)) for seed in seeds]

    def _prefill(
        self, prompts: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Start a batch in both models: lp_post and lp_pre of each row's first token."""
        input_ids, attention_mask = left_pad(prompts, self.pad_id, self.device)
        self.stats.batches += 1
        self.stats.post_forwards += 1
        logprobs_post = self.post.prefill(input_ids, attention_mask, self.max_new_tokens)
        if self.pre is None:
            return logprobs_post, None
        self.stats.pre_forwards += 1
        return logprobs_post, self.pre.prefill(input_ids, attention_mask, self.max_new_tokens)

    def _count_step(self, rows: int) -> None:
        """Count one decoding step against `rows` planned rows, and its cache's padding."""
        self.stats.steps += 1
        self.stats.slot_steps += rows
        cells, padding = self.post.padding()
        self.stats.cache_cells += cells
        self.stats.padding_cells += padding

    def _refill(
        self,
        batch: _Batch,
        freed: list[int],
        newcomers: list[int],
        prompts: Sequence[Sequence[int]],
        generators: list[torch.Generator] | None,
        limits: list[int],
        next_ids: torch.Tensor,
        unfed: list[torch.Tensor],
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Put waiting prompts into finished rows. The post model gets all but their last token
        now and the last with the other rows' next tokens. The pre model, `lag` tokens behind
        every row, gets all but their last lag + 1 tokens now and the lag before the last as the
        rows' unfed tokens, so it stays equally behind for every row (it catches up first only
        when a prompt is too short for that). Returns the next tokens and the unfed tokens."""
        for row, index in zip(freed, newcomers, strict=True):
            batch.retire(row)
            batch.restart(row, index, generators, limits[index])
        newcomer_prompts = [list(prompts[index]) for index in newcomers]
        forwards = self.post.replace_rows(freed, [prompt[:-1] for prompt in newcomer_prompts])
        self.stats.post_forwards += forwards
        self.stats.refill_prefills += forwards
        self.stats.refills += len(newcomers)
        if self.pre is not None:
            unfed = self._refill_pre(freed, newcomer_prompts, unfed)
        rows = torch.tensor(freed, device=self.device)
        next_ids = next_ids.clone()
        next_ids[rows] = torch.tensor([prompt[-1] for prompt in newcomer_prompts]).to(next_ids)
        return next_ids, unfed

    def _refill_pre(
        self, rows: list[int], prompts: list[list[int]], unfed: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """The pre model's side of `_refill`; returns the unfed tokens with the newcomers'."""
        lag = len(unfed)
        if lag and min(len(prompt) for prompt in prompts) <= lag:
            self._catch_up(unfed)  # its lp is not needed: the next step brings new tokens
            self.stats.refill_catch_ups += 1
            unfed, lag = [], 0
        forwards = self.pre.replace_rows(
            rows, [prompt[: len(prompt) - 1 - lag] for prompt in prompts]
        )
        self.stats.pre_forwards += forwards
        self.stats.refill_pre_prefills += forwards
        if not lag:
            return unfed
        self.stats.refills_behind_pre += len(rows)
        tails = torch.tensor([prompt[len(prompt) - 1 - lag : -1] for prompt in prompts])
        missed = torch.stack(unfed, dim=1)
        missed[torch.tensor(rows, device=missed.device)] = tails.to(missed)
        return list(missed.unbind(dim=1))

    def _catch_up(self, unfed: list[torch.Tensor]) -> torch.Tensor:
        """Feed the pre model every token it missed, in one chunk; returns its lp."""
        missed = torch.stack(unfed, dim=1)
        self.stats.pre_forwards += 1
        self.stats.pre_catch_up_tokens += missed.shape[1]
        return self.pre.feed(missed)

    def _scores(
        self,
        logprobs_post: torch.Tensor,
        logprobs_pre: torch.Tensor | None,
        batch: _Batch,
        unfed: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        """This step's scores, feeding the pre model its missed tokens first if a row needs it."""
        if self.pre is None:
            return direct_scores(logprobs_post), None, unfed
        head = plausibility_mask(logprobs_post, self.settings.alpha)
        single = single_token_heads(head)
        self.stats.single_head_row_tokens += int((single & ~batch.finished).sum())
        if unfed and self.skip_pre_forward and bool((single | batch.finished).all()):
            self.stats.pre_skipped_steps += 1
            return head_only_scores(logprobs_post, head), logprobs_pre, unfed
        if unfed:
            # Every row missed the same tokens: one chunked forward catches them all up.
            logprobs_pre = self._catch_up(unfed)
            unfed = []
        scores = contrast_scores(
            logprobs_post, logprobs_pre, self.settings.alpha, self.settings.beta, head=head
        )
        return scores, logprobs_pre, unfed


class _Batch:
    """The rows of a batch: the prompt each answers, its tokens so far, its token limit,
    whether it is finished, and its generator."""

    def __init__(self, max_new_tokens: int, pad_id: int, device: torch.device) -> None:
        self.max_new_tokens = max_new_tokens
        self.pad_id = pad_id
        self.device = device
        self.outputs: dict[int, list[int]] = {}  # by prompt index, once retired

    def start(
        self, origins: list[int], generators: list[torch.Generator] | None, limits: list[int]
    ) -> None:
        size = len(origins)
        self.origin = list(origins)  # prompt index that each row answers
        self.tokens = torch.full(
            (size, self.max_new_tokens), self.pad_id, dtype=torch.long, device=self.device
        )
        self.length = torch.zeros(size, dtype=torch.long, device=self.device)
        self.limit = torch.tensor([limits[i] for i in origins], device=self.device)
        self.finished = torch.zeros(size, dtype=torch.bool, device=self.device)
        self.generators = None if generators is None else [generators[i] for i in origins]

    def record(self, next_ids: torch.Tensor, stop_ids: torch.Tensor) -> list[bool]:
        """Append each unfinished row's token; returns which rows are now finished."""
        active = ~self.finished
        rows = torch.arange(len(self.origin), device=self.device)
        column = self.length.clamp(max=self.max_new_tokens - 1)
        self.tokens[rows, column] = torch.where(active, next_ids, self.tokens[rows, column])
        self.length += active.long()
        stopped = torch.isin(next_ids, stop_ids) | (self.length >= self.limit)
        self.finished |= active & stopped
        return self.finished.tolist()

    def retire(self, row: int) -> None:
        """Keep a finished row's tokens as its prompt's output."""
        length = int(self.length[row])
        self.outputs[self.origin[row]] = self.tokens[row, :length].tolist()

    def restart(
        self, row: int, origin: int, generators: list[torch.Generator] | None, limit: int
    ) -> None:
        """Give `row` to prompt `origin`, with no tokens yet."""
        self.origin[row] = origin
        self.tokens[row] = self.pad_id
        self.length[row] = 0
        self.limit[row] = limit
        self.finished[row] = False
        if self.generators is not None:
            self.generators[row] = generators[origin]

    def should_compact(self) -> bool:
        done = int(self.finished.sum())
        return done > 0 and done >= math.ceil(COMPACT_FRACTION * len(self.origin))

    def compact(self) -> torch.Tensor:
        """Retire finished rows; returns the indices of the rows kept."""
        finished = self.finished.tolist()
        for row, done in enumerate(finished):
            if done:
                self.retire(row)
        kept = [row for row, done in enumerate(finished) if not done]
        kept_index = torch.tensor(kept, dtype=torch.long, device=self.device)
        for name in ("tokens", "length", "limit", "finished"):
            setattr(self, name, getattr(self, name)[kept_index])
        self.origin = [self.origin[row] for row in kept]
        if self.generators is not None:
            self.generators = [self.generators[row] for row in kept]
        return kept_index

    def retire_all(self) -> None:
        for row in range(len(self.origin)):
            self.retire(row)


def run_planned_batches(
    batch_fn: Callable[[list[list[int]], list[int]], list[Any]],
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    batch_size: int,
) -> list[Any]:
    """Call `batch_fn(prompts, seeds)` on each `plan_batches` batch; results in input order."""
    return in_input_order(
        plan_batches([len(prompt) for prompt in prompts], batch_size),
        lambda batch: batch_fn([list(prompts[i]) for i in batch], [seeds[i] for i in batch]),
        len(prompts),
    )


def in_input_order(
    groups: Sequence[Sequence[int]], run_group: Callable[[Sequence[int]], Sequence[Any]], count: int
) -> list[Any]:
    """Run each group of prompt indices (a planned batch or window) and put every output back
    at its prompt's index."""
    results: list[Any] = [None] * count
    for group in groups:
        for index, output in zip(group, run_group(group), strict=True):
            results[index] = output
    return results


def generate_in_batches(
    generator: ContrastiveGenerator,
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    batch_size: int,
    window_batches: int = WINDOW_BATCHES,
    token_limits: Sequence[int] | None = None,
) -> list[GenerationResult]:
    """Generate for all prompts window by window (`plan_windows`); results in input order.

    `token_limits` (one per prompt) cap responses below max_new_tokens (a forced length mix).
    """
    return in_input_order(
        plan_windows([len(prompt) for prompt in prompts], batch_size, window_batches),
        lambda window: generator.generate_window(
            [list(prompts[i]) for i in window],
            [seeds[i] for i in window],
            batch_size,
            None if token_limits is None else [token_limits[i] for i in window],
        ),
        len(prompts),
    )
