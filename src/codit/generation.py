"""`codit generate`: CoDIT (post vs pre contrast) or direct responses for an instruction file.

The engine is an explicit decoding loop over two causal LMs, each with its own DynamicCache:
prefill the left-padded prompt batch with explicit position ids, then feed one token per step to
both models (the pre model gets exactly the post model's ids). The next-token rule itself lives
in codit.decoding. Every generation setting is an explicit argument and is recorded in the
dataset card; nothing is read from the checkpoints' generation_config except the EOS ids.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from codit.decoding import (
    CODIT_MODE,
    MODES,
    DecodingSettings,
    check_shared_vocabulary,
    next_token_scores,
    select_next_tokens,
)
from codit.naming import DIRECT_ARM, codit_arm
from codit.provenance import provenance, read_jsonl, write_json, write_jsonl
from codit.runtime import (
    add_runtime_arguments,
    resolve_device,
    resolve_dtype,
    set_threads,
    torch_dtype,
)

FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_REASONS = (FINISH_STOP, FINISH_LENGTH)


# --------------------------------------------------------------------------------------------
# Instructions, shards and per-prompt seeds


@dataclass(frozen=True)
class Instruction:
    id: Any
    text: str


def load_instructions(
    path: str | Path,
    id_field: str = "id",
    instruction_field: str = "instruction",
    limit: int | None = None,
) -> list[Instruction]:
    """Read the instruction JSONL (first `limit` records); ids must be present and unique."""
    instructions: list[Instruction] = []
    seen: set[str] = set()
    for number, record in enumerate(read_jsonl(path), start=1):
        if limit is not None and len(instructions) >= limit:
            break
        if not isinstance(record, dict):
            raise ValueError(f"{path}: record {number} is not a JSON object")
        for field in (id_field, instruction_field):
            if field not in record:
                raise ValueError(f"{path}: record {number} has no field {field!r}")
        text = record[instruction_field]
        if not isinstance(text, str) or not text.strip():
            raise ValueError(
                f"{path}: record {number}: field {instruction_field!r} must be a non-empty string"
            )
        key = str(record[id_field])
        if key in seen:
            raise ValueError(f"{path}: record {number}: duplicate id {record[id_field]!r}")
        seen.add(key)
        instructions.append(Instruction(record[id_field], text))
    return instructions


def shard_bounds(num_items: int, num_shards: int, shard_index: int) -> tuple[int, int]:
    """[start, end) of shard `shard_index`: contiguous, order preserving, sizes differ by <= 1."""
    if num_shards < 1:
        raise ValueError(f"--num-shards must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index must lie in [0, {num_shards - 1}], got {shard_index}")
    return num_items * shard_index // num_shards, num_items * (shard_index + 1) // num_shards


def prompt_seed(global_seed: int, instruction_id: Any) -> int:
    """Seed of one instruction: the first 63 bits of sha256("<global seed>:<id>").

    Stable across processes and Python versions (unlike hash()), so a response depends only on
    (global seed, instruction id), never on batch composition, batch size or sharding.
    """
    digest = hashlib.sha256(f"{global_seed}:{instruction_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


# --------------------------------------------------------------------------------------------
# Models, tokenizers, prompts and stop ids


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)


def load_model(
    name_or_path: str, device: torch.device, dtype: torch.dtype, trust_remote_code: bool = False
) -> Any:
    """A causal LM in eval mode on `device`; local directories and Hub ids load the same way."""
    from transformers import AutoModelForCausalLM

    # On CUDA, load straight onto the device instead of staging the weights in CPU memory.
    device_map = str(device) if device.type == "cuda" else None
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, dtype=dtype, trust_remote_code=trust_remote_code, device_map=device_map
    )
    return model.to(device).eval()


def render_prompts(
    tokenizer: Any,
    instructions: Sequence[str],
    chat_template_kwargs: dict[str, Any] | None = None,
    model_name: str = "post model",
) -> list[list[int]]:
    """Token ids of each instruction as a single user turn in the post model's chat template.

    add_generation_prompt=True, no system prompt; the template supplies any BOS itself, so the
    rendered text is encoded without adding special tokens.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{model_name} has no chat template; CoDIT prompts need one")
    prompts = []
    for text in instructions:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}],
            add_generation_prompt=True,
            tokenize=False,
            **(chat_template_kwargs or {}),
        )
        prompts.append(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    return prompts


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The post model's EOS ids: generation_config.eos_token_id (int or list) + tokenizer's eos.

    Nothing else is taken from generation_config.
    """
    ids: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        configured = [configured]
    for token_id in [*(configured or []), tokenizer.eos_token_id]:
        if token_id is not None and int(token_id) not in ids:
            ids.append(int(token_id))
    if not ids:
        raise ValueError(f"{tokenizer.name_or_path} defines no EOS token id to stop at")
    return ids


# --------------------------------------------------------------------------------------------
# The decoding engine


@dataclass(frozen=True)
class GenerationResult:
    token_ids: list[int]  # generated tokens, stop token excluded
    finish_reason: str  # FINISH_STOP or FINISH_LENGTH


def left_pad(
    prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device
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


class IncrementalLM:
    """One causal LM and its own DynamicCache: prefill a prompt batch, then one token per step.

    Returns float32 log-probabilities of the last position, sliced to the real vocabulary
    (`vocab_size`), because checkpoints pad their embedding matrices differently.
    """

    def __init__(self, model: Any, vocab_size: int) -> None:
        output_size = model.get_output_embeddings().weight.shape[0]
        if output_size < vocab_size:
            raise ValueError(
                f"{model.name_or_path} scores {output_size} tokens, "
                f"but its tokenizer has {vocab_size}"
            )
        self.model = model
        self.vocab_size = vocab_size
        parameters = inspect.signature(model.forward).parameters
        self._keep_last_only = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
        self.cache: Any = None

    def _forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
    ) -> torch.Tensor:
        output = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=self.cache,
            use_cache=True,
            **self._keep_last_only,
        )
        logits = output.logits[:, -1, : self.vocab_size]
        return torch.log_softmax(logits.float(), dim=-1)

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Run the whole left-padded prompt; positions = (cumsum(mask) - 1).clamp(min=0)."""
        from transformers import DynamicCache

        self.cache = DynamicCache(config=self.model.config)
        position_ids = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)
        return self._forward(input_ids, attention_mask, position_ids)

    def step(self, token_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Feed one new token per row; `attention_mask` already includes it (B, past + 1)."""
        position_ids = attention_mask.sum(dim=-1, keepdim=True) - 1
        return self._forward(token_ids.view(-1, 1), attention_mask, position_ids)


class ContrastiveGenerator:
    """Generates one response per prompt with the CoDIT rule (or directly from the post model).

    In direct mode `pre_model` is None and only the post model runs. Rows that have stopped are
    fed `pad_id` (their outputs are ignored) so the batch keeps its shape until all rows stop.
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
    ) -> None:
        if settings.mode == CODIT_MODE and pre_model is None:
            raise ValueError("CoDIT mode needs a pre model")
        if max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
        self.post = IncrementalLM(post_model, vocab_size)
        self.pre = IncrementalLM(pre_model, vocab_size) if settings.mode == CODIT_MODE else None
        self.settings = settings
        self.stop_ids = list(stop_ids)
        self.pad_id = pad_id
        self.max_new_tokens = max_new_tokens
        self.device = next(post_model.parameters()).device

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
        input_ids, attention_mask = left_pad(prompts, self.pad_id, self.device)
        stop_ids = torch.tensor(self.stop_ids, device=self.device)
        finished = torch.zeros(len(prompts), dtype=torch.bool, device=self.device)

        logprobs_post = self.post.prefill(input_ids, attention_mask)
        logprobs_pre = self.pre.prefill(input_ids, attention_mask) if self.pre else None
        steps: list[torch.Tensor] = []
        for step in range(self.max_new_tokens):
            scores = next_token_scores(logprobs_post, logprobs_pre, self.settings)
            next_ids = select_next_tokens(scores, self.settings, generators)
            next_ids = next_ids.masked_fill(finished, self.pad_id)
            steps.append(next_ids)
            finished |= torch.isin(next_ids, stop_ids)
            if step == self.max_new_tokens - 1 or bool(finished.all()):
                break
            new_column = attention_mask.new_ones((len(prompts), 1))
            attention_mask = torch.cat([attention_mask, new_column], dim=1)
            logprobs_post = self.post.step(next_ids, attention_mask)
            if self.pre is not None:
                logprobs_pre = self.pre.step(next_ids, attention_mask)
        return [self._result(row) for row in torch.stack(steps, dim=1).tolist()]

    def _result(self, generated: list[int]) -> GenerationResult:
        for index, token_id in enumerate(generated):
            if token_id in self.stop_ids:
                return GenerationResult(generated[:index], FINISH_STOP)
        return GenerationResult(generated, FINISH_LENGTH)


def generate_in_batches(
    generator: ContrastiveGenerator,
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    batch_size: int,
    progress: bool = False,
) -> list[GenerationResult]:
    """Generate for all prompts, batching them longest first; results come back in input order."""
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    # Similar lengths share a batch (little padding); the longest batch runs first, so a memory
    # problem shows at once.
    order = sorted(range(len(prompts)), key=lambda index: (-len(prompts[index]), index))
    results: list[GenerationResult | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        outputs = generator.generate([prompts[i] for i in batch], [seeds[i] for i in batch])
        for index, output in zip(batch, outputs, strict=True):
            results[index] = output
        if progress:
            print(f"codit generate: {start + len(batch)}/{len(order)} prompts", file=sys.stderr)
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Records and the dataset card


def make_record(
    instruction: Instruction,
    response: str,
    result: GenerationResult,
    pair: str,
    settings: DecodingSettings,
    seed: int,
) -> dict[str, Any]:
    """One TRL conversational prompt/completion record with its arm, seed and finish reason."""
    is_codit = settings.mode == CODIT_MODE
    return {
        "id": instruction.id,
        "prompt": [{"role": "user", "content": instruction.text}],
        "completion": [{"role": "assistant", "content": response}],
        "pair": pair,
        "arm": arm_name(settings),
        "alpha": float(settings.alpha) if is_codit else None,
        "beta": float(settings.beta) if is_codit else None,
        "seed": seed,
        "num_tokens": len(result.token_ids),
        "finish_reason": result.finish_reason,
    }


def arm_name(settings: DecodingSettings) -> str:
    return codit_arm(settings.alpha, settings.beta) if settings.mode == CODIT_MODE else DIRECT_ARM


def _percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolation percentile (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def dataset_card(
    records: Sequence[dict[str, Any]],
    settings: dict[str, Any],
    throughput: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Summary of a generated dataset plus the provenance of the settings that made it.

    `throughput` (tokens, seconds, tokens/s) is measured, not a setting, so it sits beside the
    provenance block rather than inside it.
    """
    tokens = [record["num_tokens"] for record in records]
    words = [len(record["completion"][0]["content"].split()) for record in records]
    reasons = [record["finish_reason"] for record in records]
    card = {
        "pair": settings.get("pair"),
        "arm": settings.get("arm"),
        "alpha": settings.get("alpha"),
        "beta": settings.get("beta"),
        "num_records": len(records),
        "finish_reasons": {reason: reasons.count(reason) for reason in FINISH_REASONS},
        "completion_tokens": {
            "mean": statistics.fmean(tokens) if tokens else None,
            "median": statistics.median(tokens) if tokens else None,
            "p90": _percentile(tokens, 0.9) if tokens else None,
            "max": max(tokens) if tokens else None,
        },
        "completion_words": {"mean": statistics.fmean(words) if words else None},
        "provenance": provenance(settings),
    }
    if throughput is not None:
        card["throughput"] = throughput
    return card


def throughput_summary(generated_tokens: int, seconds: float) -> dict[str, Any]:
    return {
        "generated_tokens": generated_tokens,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(generated_tokens / seconds, 2) if seconds > 0 else None,
    }


def _sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_shard_card(card_path: str | Path, index: int, num_shards: int) -> dict[str, Any]:
    """Shard card `card_path`, checked to be the card of shard `index` of `num_shards`."""
    card = json.loads(Path(card_path).read_text())
    shard = card.get("provenance", {}).get("settings", {}).get("shard") or {}
    if not {"num_shards", "shard_index", "start", "end"} <= shard.keys():
        raise ValueError(f"{card_path}: not the card of a `codit generate` shard")
    if (shard["shard_index"], shard["num_shards"]) != (index, num_shards):
        raise ValueError(
            f"{card_path}: shard {shard['shard_index']} of {shard['num_shards']}, "
            f"expected shard {index} of {num_shards} (give shards in index order)"
        )
    return card


def default_card_path(dataset_path: str | Path) -> Path:
    """The card beside a dataset: `shards/000-of-004.jsonl` -> `shards/000-of-004.card.json`."""
    return Path(dataset_path).with_suffix(".card.json")


def gather_shards(
    shard_paths: Sequence[str | Path],
    shard_card_paths: Sequence[str | Path] | None,
    out: str | Path,
    card: str | Path,
) -> list[dict[str, Any]]:
    """Concatenate shard datasets (in shard-index order) into one dataset and card.

    The shard cards (default: `default_card_path` of each shard) must come from one run split
    into len(shard_paths) shards: identical settings apart from the shard block, and shard i
    given at position i. Returns the records.
    """
    if shard_card_paths is None:
        shard_card_paths = [default_card_path(path) for path in shard_paths]
    if not shard_paths or len(shard_paths) != len(shard_card_paths):
        raise ValueError("--gather needs one card per shard (--gather-cards), in the same order")
    records: list[dict[str, Any]] = []
    first_settings: dict[str, Any] = {}
    tokens, seconds = 0, 0.0
    shards = zip(shard_paths, shard_card_paths, strict=True)
    for index, (shard_path, card_path) in enumerate(shards):
        shard_card = _read_shard_card(card_path, index, len(shard_paths))
        settings = dict(shard_card["provenance"]["settings"])
        shard = settings.pop("shard")
        if index == 0:
            first_settings = settings
        elif settings != first_settings:
            differing = sorted(
                key
                for key in settings.keys() | first_settings.keys()
                if settings.get(key) != first_settings.get(key)
            )
            raise ValueError(f"{card_path}: settings differ from shard 0 in {', '.join(differing)}")
        shard_records = read_jsonl(shard_path)
        if len(shard_records) != shard["end"] - shard["start"]:
            raise ValueError(
                f"{shard_path}: {len(shard_records)} records, but its card "
                f"{card_path} covers {shard['end'] - shard['start']}"
            )
        records.extend(shard_records)
        shard_throughput = shard_card.get("throughput") or {}
        tokens += shard_throughput.get("generated_tokens", 0)
        seconds += shard_throughput.get("seconds", 0.0)
    ids = [str(record["id"]) for record in records]
    if len(set(ids)) != len(ids):
        raise ValueError("the gathered shards contain duplicate instruction ids")
    gathered = {
        **first_settings,
        "shard": {"num_shards": len(shard_paths), "gathered_from": list(map(str, shard_paths))},
    }
    write_jsonl(out, records)
    write_json(card, dataset_card(records, gathered, throughput_summary(tokens, seconds)))
    return records


# --------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_argument_group("models")
    models.add_argument("--post", help="post-trained (instruct) model: local dir or Hub id")
    models.add_argument("--pre", help="pre-trained (base) model; required with --mode codit")
    models.add_argument("--pair", help="name of the teacher pair, stored in every record")
    models.add_argument("--mode", choices=MODES, default=CODIT_MODE)
    models.add_argument("--trust-remote-code", action="store_true")
    add_runtime_arguments(models)

    data = parser.add_argument_group("data")
    data.add_argument("--instructions", help="instruction JSONL")
    data.add_argument("--id-field", default="id")
    data.add_argument("--instruction-field", default="instruction")
    data.add_argument(
        "--limit", type=int, help="use only the first N instructions (applied before sharding)"
    )
    data.add_argument("--num-shards", type=int, default=1)
    data.add_argument("--shard-index", type=int, default=0)
    data.add_argument("--out", required=True, help="output JSONL (prompt/completion records)")
    data.add_argument("--card", required=True, help="output dataset card JSON")

    decoding = parser.add_argument_group("decoding")
    decoding.add_argument("--alpha", type=float, default=0.01, help="plausibility threshold")
    decoding.add_argument("--beta", type=float, default=1.0, help="weight of the pre model")
    decoding.add_argument("--temperature", type=float, default=1.0)
    decoding.add_argument("--top-p", type=float, default=1.0)
    decoding.add_argument("--greedy", action="store_true", help="argmax instead of sampling")
    decoding.add_argument("--max-new-tokens", type=int, default=1024)
    decoding.add_argument("--seed", type=int, default=0, help="global seed of per-prompt seeds")
    decoding.add_argument("--batch-size", type=int, default=16)
    decoding.add_argument(
        "--chat-template-kwargs",
        default="{}",
        help="JSON object, e.g. '{\"enable_thinking\": false}'",
    )

    gather = parser.add_argument_group("gather (instead of generating)")
    gather.add_argument(
        "--gather",
        nargs="+",
        metavar="SHARD_JSONL",
        help="concatenate these shard outputs (in shard order) into --out/--card",
    )
    gather.add_argument(
        "--gather-cards",
        nargs="+",
        metavar="SHARD_CARD",
        help="the shards' cards, same order as --gather (default: SHARD.card.json beside "
        "each SHARD.jsonl)",
    )


def _parse_chat_template_kwargs(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--chat-template-kwargs is not valid JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise ValueError("--chat-template-kwargs must be a JSON object")
    return value


def _validate_args(args: argparse.Namespace) -> tuple[DecodingSettings, dict[str, Any]]:
    """Check every option before any model is loaded; errors name the option."""
    for option in ("post", "instructions", "pair"):
        if not getattr(args, option):
            raise ValueError(f"--{option} is required")
    if args.mode == CODIT_MODE and not args.pre:
        raise ValueError("--pre is required with --mode codit")
    is_codit = args.mode == CODIT_MODE
    settings = DecodingSettings(
        mode=args.mode,
        alpha=args.alpha if is_codit else None,
        beta=args.beta if is_codit else None,
        temperature=args.temperature,
        top_p=args.top_p,
        greedy=args.greedy,
    )
    for option in ("max_new_tokens", "batch_size"):
        if getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be >= 1")
    if args.limit is not None and args.limit < 0:
        raise ValueError("--limit must be >= 0")
    if args.threads is not None and args.threads < 1:
        raise ValueError("--threads must be >= 1")
    resolve_dtype(args.dtype, "cpu")  # a bad name fails before any model loads
    shard_bounds(0, args.num_shards, args.shard_index)
    return settings, _parse_chat_template_kwargs(args.chat_template_kwargs)


def run(args: argparse.Namespace) -> None:
    if args.gather:
        gather_shards(args.gather, args.gather_cards, args.out, args.card)
        return
    settings, chat_template_kwargs = _validate_args(args)
    set_threads(args.threads)
    instructions = load_instructions(
        args.instructions, args.id_field, args.instruction_field, args.limit
    )
    start, end = shard_bounds(len(instructions), args.num_shards, args.shard_index)
    instructions = instructions[start:end]
    device = torch.device(resolve_device(args.device))
    dtype = torch_dtype(resolve_dtype(args.dtype, device.type))
    is_codit = settings.mode == CODIT_MODE

    post_tokenizer = load_tokenizer(args.post, args.trust_remote_code)
    prompts = render_prompts(
        post_tokenizer,
        [item.text for item in instructions],
        chat_template_kwargs,
        model_name=f"post model {args.post}",
    )
    vocab_size = len(post_tokenizer)
    if is_codit:
        pre_tokenizer = load_tokenizer(args.pre, args.trust_remote_code)
        vocab_size = check_shared_vocabulary(post_tokenizer, pre_tokenizer, args.post, args.pre)
    post_model = load_model(args.post, device, dtype, args.trust_remote_code)
    pre_model = load_model(args.pre, device, dtype, args.trust_remote_code) if is_codit else None
    stop_ids = stop_token_ids(post_model, post_tokenizer)
    pad_id = post_tokenizer.pad_token_id if post_tokenizer.pad_token_id is not None else stop_ids[0]

    generator = ContrastiveGenerator(
        post_model, pre_model, settings, vocab_size, stop_ids, pad_id, args.max_new_tokens
    )
    seeds = [prompt_seed(args.seed, item.id) for item in instructions]
    began = time.perf_counter()
    results = generate_in_batches(generator, prompts, seeds, args.batch_size, progress=True)
    seconds = time.perf_counter() - began

    records = [
        make_record(
            item,
            post_tokenizer.decode(result.token_ids, skip_special_tokens=True),
            result,
            args.pair,
            settings,
            seed,
        )
        for item, result, seed in zip(instructions, results, seeds, strict=True)
    ]
    run_settings = {
        "pair": args.pair,
        "arm": arm_name(settings),
        "mode": settings.mode,
        "post": args.post,
        "pre": args.pre if is_codit else None,
        "post_commit": getattr(post_model.config, "_commit_hash", None),
        "pre_commit": getattr(pre_model.config, "_commit_hash", None) if pre_model else None,
        "alpha": settings.alpha,
        "beta": settings.beta,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "greedy": settings.greedy,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
        "seed_rule": "sha256(f'{seed}:{id}')[:8] & (2**63 - 1)",
        "batch_size": args.batch_size,
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(device),
        "trust_remote_code": args.trust_remote_code,
        "chat_template_kwargs": chat_template_kwargs,
        "eos_token_ids": stop_ids,
        "pad_token_id": pad_id,
        "vocab_size": vocab_size,
        "instructions": str(args.instructions),
        "instructions_sha256": _sha256(args.instructions),
        "id_field": args.id_field,
        "instruction_field": args.instruction_field,
        "limit": args.limit,
        "shard": {
            "num_shards": args.num_shards,
            "shard_index": args.shard_index,
            "start": start,
            "end": end,
        },
    }
    throughput = throughput_summary(sum(len(result.token_ids) for result in results), seconds)
    write_jsonl(args.out, records)
    write_json(args.card, dataset_card(records, run_settings, throughput))
    print(
        f"codit generate: {len(records)} responses, {throughput['generated_tokens']} tokens in "
        f"{throughput['seconds']} s ({throughput['tokens_per_second']} tokens/s) -> {args.out}",
        file=sys.stderr,
    )
