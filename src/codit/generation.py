"""`codit generate`: CoDIT (post vs pre contrast) or direct responses for an instruction file.

This module is the stage around the engine (codit.engine): it reads and shards instructions,
renders prompts with the post model's chat template, loads the models, runs the planned
batches with a checkpoint after each one (a killed shard resumes where it stopped, with
byte-identical output), and writes records and a dataset card. An instruction whose prompt and
a full-length response do not fit the context of the models is skipped, never generated, and
counted in the card (`skipped`, `skipped_ids`). Records, cards and gathering the shards of a
dataset are in codit.datasets (`codit gather`). Every generation
setting is an explicit argument and is recorded in the card; nothing is read from the
checkpoints' generation_config except the EOS ids.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from codit.checkpoint import ShardCheckpoint, checkpoint_path
from codit.datasets import (
    SKIP_TOO_LONG,
    SKIPPED_IDS_SHOWN,
    dataset_card,
    dataset_record,
    throughput_summary,
)
from codit.decoding import CODIT_MODE, MODES, DecodingSettings, check_shared_vocabulary
from codit.engine import (
    CACHE_KINDS,
    ContrastiveGenerator,
    GenerationResult,
    model_input_device,
    plan_batches,
)
from codit.faults import fault_point
from codit.instructions import Instruction, load_instructions
from codit.loading import PLACEMENTS, load_model, load_tokenizer, model_placements
from codit.naming import codit_arm, direct_sample_arm
from codit.provenance import (
    file_sha256,
    write_json,
    write_jsonl,
)
from codit.runtime import (
    add_runtime_arguments,
    resolve_device,
    resolve_dtype,
    set_threads,
    torch_dtype,
)

# A tokenizer's model_max_length at or above this is a placeholder (transformers uses 1e30).
SANE_MODEL_MAX_LENGTH = 10**8


# --------------------------------------------------------------------------------------------
# Shards and per-prompt seeds (the pool is read by codit.instructions.load_instructions)


def shard_bounds(num_items: int, num_shards: int, shard_index: int) -> tuple[int, int]:
    """[start, end) of shard `shard_index`: contiguous, order preserving, sizes differ by <= 1."""
    if num_shards < 1:
        raise ValueError(f"--num-shards must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index must lie in [0, {num_shards - 1}], got {shard_index}")
    return num_items * shard_index // num_shards, num_items * (shard_index + 1) // num_shards


def prompt_seed(global_seed: int, instruction_id: Any, sample: int = 0) -> int:
    """Seed of one instruction: the first 63 bits of sha256("<global seed>:<id>"), or of
    sha256("<global seed>:<id>:<sample>") for the further samples Best-of-N draws (sample >= 1).

    Stable across processes and Python versions (unlike hash()), so a response depends only on
    (global seed, instruction id, sample), never on batch composition, batch size or sharding;
    sample 0 is the direct arm's own response.
    """
    key = f"{global_seed}:{instruction_id}" + (f":{sample}" if sample else "")
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


# --------------------------------------------------------------------------------------------
# Prompts, stop ids and context limits (models load in codit.loading)


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


def context_limit(model: Any, tokenizer: Any) -> int | None:
    """The tokens one sequence may hold: the (text) config's max_position_embeddings, else the
    tokenizer's model_max_length when it is a real limit, else None (no known limit)."""
    config = model.config
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        return positions
    length = getattr(tokenizer, "model_max_length", None)
    if isinstance(length, int | float) and 0 < length < SANE_MODEL_MAX_LENGTH:
        return int(length)
    return None


def too_long_for_context(
    prompts: Sequence[Sequence[int]], max_new_tokens: int, limit: int | None
) -> list[bool]:
    """Per prompt: True when the prompt plus a full-length response exceeds `limit` tokens.

    Such a prompt is skipped rather than generated: position ids past the limit index out of
    learned position tables (an error that would kill the shard) or leave the trained range.
    """
    if limit is None:
        return [False] * len(prompts)
    return [len(prompt) + max_new_tokens > limit for prompt in prompts]


# --------------------------------------------------------------------------------------------
# Records of this stage (the record schema and cards are in codit.datasets)


def make_record(
    instruction: Instruction,
    response: str,
    result: GenerationResult,
    pair: str,
    settings: DecodingSettings,
    seed: int,
    sample: int = 0,
) -> dict[str, Any]:
    """One generated record: the response to `instruction` with its arm, seed and finish reason."""
    is_codit = settings.mode == CODIT_MODE
    return dataset_record(
        instruction.id,
        instruction.text,
        response,
        pair=pair,
        arm=arm_name(settings, sample),
        alpha=float(settings.alpha) if is_codit else None,
        beta=float(settings.beta) if is_codit else None,
        seed=seed,
        num_tokens=len(result.token_ids),
        finish_reason=result.finish_reason,
    )


def arm_name(settings: DecodingSettings, sample: int = 0) -> str:
    """`codit_alpha<A>_beta<B>`, `direct`, or `direct_sample<j>` for Best-of-N's sample j."""
    if settings.mode == CODIT_MODE:
        return codit_arm(settings.alpha, settings.beta)
    return direct_sample_arm(sample)


# --------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_argument_group("models")
    models.add_argument("--post", help="post-trained (instruct) model: local dir or Hub id")
    models.add_argument("--pre", help="pre-trained (base) model; required with --mode codit")
    models.add_argument("--pair", help="name of the teacher pair, stored in every record")
    models.add_argument("--mode", choices=MODES, default=CODIT_MODE)
    models.add_argument(
        "--trust-remote-code", action="store_true", help="run the post model's repository code"
    )
    models.add_argument(
        "--trust-remote-code-pre", action="store_true", help="run the pre model's repository code"
    )
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
    decoding.add_argument(
        "--sample-index",
        type=int,
        default=0,
        help="direct mode: draw sample j of each instruction (0 = the direct arm; Best-of-N's "
        "further candidates are 1..N-1, each with its own per-prompt seed)",
    )
    decoding.add_argument("--batch-size", type=int, default=16)
    decoding.add_argument(
        "--chat-template-kwargs",
        default="{}",
        help="JSON object, e.g. '{\"enable_thinking\": false}'",
    )

    engine = parser.add_argument_group("engine (same tokens, different speed and memory)")
    engine.add_argument(
        "--placement",
        choices=PLACEMENTS,
        default="same",
        help="same: both models on --device; split: pre model on the next GPU; "
        "auto: the visible GPUs are halved between the two models, each spread over its half "
        "(accelerate device_map)",
    )
    engine.add_argument(
        "--cache",
        choices=CACHE_KINDS,
        default="dynamic",
        help="static pre-allocates both KV caches (use with --compile on GPU)",
    )
    engine.add_argument(
        "--compile", action="store_true", help="torch.compile both forwards (needs --cache static)"
    )
    engine.add_argument(
        "--no-skip-pre",
        dest="skip_pre",
        action="store_false",
        help="run the pre model every step even when no row needs it (lock-step, for checks)",
    )
    engine.add_argument(
        "--checkpoint",
        help="append-only checkpoint of finished batches (default: OUT.checkpoint); "
        "a rerun resumes from it and deletes it when the shard is complete",
    )


def parse_chat_template_kwargs(text: str) -> dict[str, Any]:
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
    if args.sample_index < 0 or (args.sample_index and args.mode == CODIT_MODE):
        raise ValueError("--sample-index must be >= 0, and 0 with --mode codit")
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
    if args.compile and args.cache != "static":
        raise ValueError("--compile needs --cache static (dynamic caches recompile every step)")
    return settings, parse_chat_template_kwargs(args.chat_template_kwargs)


def compile_forward(model: Any) -> None:
    """torch.compile the model's forward in place (static shapes: one graph per chunk width)."""
    mode = "reduce-overhead" if model_input_device(model).type == "cuda" else None
    model.forward = torch.compile(model.forward, mode=mode, fullgraph=False)


def run(args: argparse.Namespace) -> None:
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
    post_placement, pre_placement = model_placements(device, args.placement, is_codit)

    post_tokenizer = load_tokenizer(args.post, args.trust_remote_code)
    prompts = render_prompts(
        post_tokenizer,
        [item.text for item in instructions],
        chat_template_kwargs,
        model_name=f"post model {args.post}",
    )
    vocab_size = len(post_tokenizer)
    if is_codit:
        pre_tokenizer = load_tokenizer(args.pre, args.trust_remote_code_pre)
        vocab_size = check_shared_vocabulary(post_tokenizer, pre_tokenizer, args.post, args.pre)
    post_model = load_model(args.post, post_placement, dtype, args.trust_remote_code)
    pre_model = (
        load_model(args.pre, pre_placement, dtype, args.trust_remote_code_pre) if is_codit else None
    )
    limits = [context_limit(post_model, post_tokenizer)]
    if pre_model is not None:
        limits.append(context_limit(pre_model, pre_tokenizer))
    limit = min((tokens for tokens in limits if tokens is not None), default=None)
    too_long = too_long_for_context(prompts, args.max_new_tokens, limit)
    skipped_ids = {
        SKIP_TOO_LONG: [item.id for item, cut in zip(instructions, too_long, strict=True) if cut]
    }
    if any(too_long):
        print(
            f"codit generate: skipping {sum(too_long)} instruction(s) whose prompt + "
            f"--max-new-tokens {args.max_new_tokens} exceeds the {limit}-token context: "
            f"ids {skipped_ids[SKIP_TOO_LONG][:SKIPPED_IDS_SHOWN]}",
            file=sys.stderr,
        )
        instructions = [item for item, cut in zip(instructions, too_long, strict=True) if not cut]
        prompts = [prompt for prompt, cut in zip(prompts, too_long, strict=True) if not cut]
    stop_ids = stop_token_ids(post_model, post_tokenizer)
    pad_id = post_tokenizer.pad_token_id if post_tokenizer.pad_token_id is not None else stop_ids[0]
    if args.compile:
        for model in (post_model, pre_model):
            if model is not None:
                compile_forward(model)
    generator = ContrastiveGenerator(
        post_model,
        pre_model,
        settings,
        vocab_size,
        stop_ids,
        pad_id,
        args.max_new_tokens,
        skip_pre_forward=args.skip_pre,
        cache=args.cache,
    )
    seeds = [prompt_seed(args.seed, item.id, args.sample_index) for item in instructions]
    run_settings = {
        "pair": args.pair,
        "arm": arm_name(settings, args.sample_index),
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
        "seed_rule": "sha256(f'{seed}:{id}')[:8] & (2**63 - 1)"
        if not args.sample_index
        else "sha256(f'{seed}:{id}:{sample}')[:8] & (2**63 - 1)",
        "sample": args.sample_index,
        "batch_size": args.batch_size,
        "batch_plan": "longest prompt first, ties in file order",
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(device),
        "placement": args.placement,
        "cache": args.cache,
        "compile": args.compile,
        "trust_remote_code": args.trust_remote_code,
        "trust_remote_code_pre": args.trust_remote_code_pre,
        "chat_template_kwargs": chat_template_kwargs,
        "eos_token_ids": stop_ids,
        "pad_token_id": pad_id,
        "vocab_size": vocab_size,
        "context_limit": limit,
        "instructions": str(args.instructions),
        "instructions_sha256": file_sha256(args.instructions),
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
    checkpoint = ShardCheckpoint(args.checkpoint or checkpoint_path(args.out), run_settings)
    records, resumed, seconds = _generate_with_checkpoint(
        generator, checkpoint, post_tokenizer, instructions, prompts, seeds, args
    )
    generated_tokens = sum(record["num_tokens"] for record in records) - resumed["tokens"]
    throughput = {
        **throughput_summary(generated_tokens, seconds),
        "resumed_records": resumed["records"],
        "engine": generator.stats.as_dict(),
    }
    write_jsonl(args.out, records)
    skipped = {reason: len(ids) for reason, ids in skipped_ids.items()}
    write_json(args.card, dataset_card(records, run_settings, throughput, skipped, skipped_ids))
    fault_point("generate.before_checkpoint_removal")
    checkpoint.remove()
    print(
        f"codit generate: {len(records)} responses ({resumed['records']} resumed, "
        f"{sum(skipped.values())} skipped), "
        f"{throughput['generated_tokens']} tokens in {throughput['seconds']} s "
        f"({throughput['tokens_per_second']} tokens/s) -> {args.out}",
        file=sys.stderr,
    )


def _generate_with_checkpoint(
    generator: ContrastiveGenerator,
    checkpoint: ShardCheckpoint,
    tokenizer: Any,
    instructions: Sequence[Instruction],
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    args: argparse.Namespace,
) -> tuple[list[dict[str, Any]], dict[str, int], float]:
    """Run the planned batches not yet in the checkpoint, appending each as it finishes.

    Returns the records in instruction order, what was resumed (records, tokens) and the
    seconds spent generating in this run.
    """
    plan = plan_batches([len(prompt) for prompt in prompts], args.batch_size)
    finished = checkpoint.load()
    by_index: dict[int, dict[str, Any]] = {}
    resumed = {"records": 0, "tokens": 0}
    for number, batch in enumerate(plan):
        saved = finished.get(number)
        if saved is not None and [r["id"] for r in saved] == [instructions[i].id for i in batch]:
            by_index.update(zip(batch, saved, strict=True))
            resumed["records"] += len(saved)
            resumed["tokens"] += sum(record["num_tokens"] for record in saved)
    if resumed["records"]:
        print(f"codit generate: resuming, {resumed['records']} records done", file=sys.stderr)
    began = time.perf_counter()
    for number, batch in enumerate(plan):
        if batch[0] in by_index:
            continue
        outputs = generator.generate([prompts[i] for i in batch], [seeds[i] for i in batch])
        records = [
            make_record(
                instructions[index],
                tokenizer.decode(output.token_ids, skip_special_tokens=True),
                output,
                args.pair,
                generator.settings,
                seeds[index],
                args.sample_index,
            )
            for index, output in zip(batch, outputs, strict=True)
        ]
        checkpoint.append(number, records)
        by_index.update(zip(batch, records, strict=True))
        print(f"codit generate: {len(by_index)}/{len(prompts)} prompts", file=sys.stderr)
        fault_point("generate.after_batch")
    seconds = time.perf_counter() - began
    return [by_index[index] for index in range(len(prompts))], resumed, seconds
