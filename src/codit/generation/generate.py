"""`codit generate`: CoDIT (post vs pre contrast) or direct responses for an instruction file.

This module is the stage around the engine (codit.generation.engine): it reads and shards
instructions, renders prompts with the post model's chat template, loads the models, runs the
planned windows (continuous batching) or batches with a checkpoint after each one (a killed shard
resumes where it stopped, with byte-identical output), and writes records and a dataset card.
An instruction whose prompt and a full-length response do not fit the context of the models is
skipped, never generated, and counted in the card (`skipped`, `skipped_ids`). Records, cards
and gathering the shards of a dataset are in codit.data.datasets (`codit gather`). Every generation
setting is an explicit argument and is recorded in the card; nothing is read from the
checkpoints' generation_config except the EOS ids.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from codit.data.datasets import (
    SKIP_TOO_LONG,
    SKIPPED_IDS_SHOWN,
    dataset_card,
    dataset_record,
    throughput_summary,
)
from codit.data.instructions import Instruction, load_instructions
from codit.generation.checkpoint import ShardCheckpoint, checkpoint_path
from codit.generation.decoding import check_shared_vocabulary
from codit.generation.engine import (
    ContrastiveGenerator,
    GenerationResult,
    model_input_device,
    plan_batches,
    plan_windows,
)
from codit.generation.loading import (
    load_model,
    load_model_metadata,
    load_tokenizer,
    model_placements,
)
from codit.generation.settings import CODIT_MODE, VLLM_BACKEND, DecodingSettings, GenerationRun
from codit.generation.vllm_backend import vllm_generator
from codit.workflow.faults import fault_point
from codit.workflow.jobs import shard_bounds
from codit.workflow.naming import codit_arm, direct_sample_arm
from codit.workflow.provenance import (
    file_sha256,
    write_json,
    write_jsonl,
)
from codit.workflow.runtime import (
    resolve_device,
    resolve_dtype,
    set_threads,
    torch_dtype,
)

# A tokenizer's model_max_length at or above this is a placeholder (transformers uses 1e30).
SANE_MODEL_MAX_LENGTH = 10**8


# --------------------------------------------------------------------------------------------
# Shards and per-prompt seeds (the pool is read by codit.data.instructions.load_instructions)


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
# Prompts, stop ids and context limits (models load in codit.generation.loading)


def render_prompts(
    tokenizer: Any,
    instructions: Sequence[str],
    chat_template_kwargs: dict[str, Any] | None = None,
    model_name: str = "post model",
) -> list[list[int]]:
    """Token ids of each instruction as a single user turn in the post model's chat template."""
    conversations = [[{"role": "user", "content": text}] for text in instructions]
    return render_conversations(tokenizer, conversations, chat_template_kwargs, model_name)


def render_conversations(
    tokenizer: Any,
    conversations: Sequence[Sequence[dict[str, str]]],
    chat_template_kwargs: dict[str, Any] | None = None,
    model_name: str = "post model",
) -> list[list[int]]:
    """Token ids of each conversation (user and assistant turns, the last a user turn) in the
    model's chat template, ready for the next assistant turn.

    add_generation_prompt=True, no system prompt; the template supplies any BOS itself, so the
    rendered text is encoded without adding special tokens.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{model_name} has no chat template; CoDIT prompts need one")
    prompts = []
    for messages in conversations:
        rendered = tokenizer.apply_chat_template(
            list(messages),
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
# Records of this stage (the record schema and cards are in codit.data.datasets)


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


add_arguments = GenerationRun.add_arguments


def compile_forward(model: Any) -> None:
    """torch.compile the model's forward in place (static shapes: one graph per chunk width)."""
    mode = "reduce-overhead" if model_input_device(model).type == "cuda" else None
    model.forward = torch.compile(model.forward, mode=mode, fullgraph=False)


def run(args: argparse.Namespace) -> None:
    generate(GenerationRun.from_args(args))


def generate(run: GenerationRun) -> None:
    """Generate one shard: its records and its card."""
    settings, engine = run.decoding(), run.engine
    resolve_dtype(engine.dtype, "cpu")  # a bad name fails before any model loads
    set_threads(run.threads)
    instructions = load_instructions(
        run.instructions, run.id_field, run.instruction_field, run.limit
    )
    start, end = shard_bounds(len(instructions), run.num_shards, run.shard_index)
    instructions = instructions[start:end]
    device = torch.device(resolve_device(engine.device))
    dtype = torch_dtype(resolve_dtype(engine.dtype, device.type))
    is_codit = settings.mode == CODIT_MODE
    chat_template_kwargs = run.chat_template_kwargs or {}
    max_new_tokens = run.sampling.max_new_tokens

    post_tokenizer = load_tokenizer(run.post, run.trust_remote_code)
    prompts = render_prompts(
        post_tokenizer,
        [item.text for item in instructions],
        chat_template_kwargs,
        model_name=f"post model {run.post}",
    )
    vocab_size = len(post_tokenizer)
    pre_tokenizer = None
    if is_codit:
        pre_tokenizer = load_tokenizer(run.pre, run.trust_remote_code_pre)
        vocab_size = check_shared_vocabulary(post_tokenizer, pre_tokenizer, run.post, run.pre)
    with contextlib.ExitStack() as stack:
        if engine.backend == VLLM_BACKEND:
            post_model = load_model_metadata(run.post, run.trust_remote_code)
            pre_model = (
                load_model_metadata(run.pre, run.trust_remote_code_pre) if is_codit else None
            )
        else:
            post_placement, pre_placement = model_placements(device, run.placement, is_codit)
            post_model = load_model(run.post, post_placement, dtype, run.trust_remote_code)
            pre_model = (
                load_model(run.pre, pre_placement, dtype, run.trust_remote_code_pre)
                if is_codit
                else None
            )
        limits = [context_limit(post_model, post_tokenizer)]
        if pre_model is not None:
            limits.append(context_limit(pre_model, pre_tokenizer))
        limit = min((tokens for tokens in limits if tokens is not None), default=None)
        too_long = too_long_for_context(prompts, max_new_tokens, limit)
        skipped_ids = {
            SKIP_TOO_LONG: [
                item.id for item, cut in zip(instructions, too_long, strict=True) if cut
            ]
        }
        if any(too_long):
            print(
                f"codit generate: skipping {sum(too_long)} instruction(s) whose prompt + "
                f"--max-new-tokens {max_new_tokens} exceeds the {limit}-token context: "
                f"ids {skipped_ids[SKIP_TOO_LONG][:SKIPPED_IDS_SHOWN]}",
                file=sys.stderr,
            )
            instructions = [
                item for item, cut in zip(instructions, too_long, strict=True) if not cut
            ]
            prompts = [prompt for prompt, cut in zip(prompts, too_long, strict=True) if not cut]
        stop_ids = stop_token_ids(post_model, post_tokenizer)
        pad_id = (
            post_tokenizer.pad_token_id if post_tokenizer.pad_token_id is not None else stop_ids[0]
        )
        if engine.backend == VLLM_BACKEND:
            generator = vllm_generator(
                run, stack, post_model.config, vocab_size, stop_ids, prompts, limit,
                device.type, str(dtype).removeprefix("torch."),
            )  # fmt: skip
            engine_record = {"vllm": generator.versions}
        else:
            if engine.compile:
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
                max_new_tokens,
                skip_pre_forward=run.skip_pre,
                continuous=engine.continuous,
                cache=engine.cache,
            )
            engine_record = {}
        window_batches = engine.batches_per_window
        seeds = [prompt_seed(run.seed, item.id, run.sample_index) for item in instructions]
        run_settings = {
            **run.recorded(),
            "arm": arm_name(settings, run.sample_index),
            "post_commit": getattr(post_model.config, "_commit_hash", None),
            "pre_commit": getattr(pre_model.config, "_commit_hash", None) if pre_model else None,
            "seed_rule": "sha256(f'{seed}:{id}')[:8] & (2**63 - 1)"
            if not run.sample_index
            else "sha256(f'{seed}:{id}:{sample}')[:8] & (2**63 - 1)",
            "batch_plan": "longest prompt first, ties in file order",
            # What ran (a static cache keeps fixed batches), and the checkpoint unit it implies.
            "continuous": generator.continuous,
            "window_batches": window_batches if generator.continuous else None,
            **engine_record,
            "dtype": str(dtype).removeprefix("torch."),
            "device": str(device),
            "eos_token_ids": stop_ids,
            "pad_token_id": pad_id,
            "vocab_size": vocab_size,
            "context_limit": limit,
            "instructions_sha256": file_sha256(run.instructions),
            "shard": {
                "num_shards": run.num_shards,
                "shard_index": run.shard_index,
                "start": start,
                "end": end,
            },
        }
        checkpoint = ShardCheckpoint(run.checkpoint or checkpoint_path(run.out), run_settings)
        records, resumed, seconds = _generate_with_checkpoint(
            generator, checkpoint, post_tokenizer, instructions, prompts, seeds, run,
            window_batches,
        )  # fmt: skip
    generated_tokens = sum(record["num_tokens"] for record in records) - resumed["tokens"]
    throughput = {
        **throughput_summary(generated_tokens, seconds),
        "resumed_records": resumed["records"],
        "engine": generator.stats.as_dict(),
    }
    write_jsonl(run.out, records)
    skipped = {reason: len(ids) for reason, ids in skipped_ids.items()}
    write_json(run.card, dataset_card(records, run_settings, throughput, skipped, skipped_ids))
    fault_point("generate.before_checkpoint_removal")
    checkpoint.remove()
    print(
        f"codit generate: {len(records)} responses ({resumed['records']} resumed, "
        f"{sum(skipped.values())} skipped), "
        f"{throughput['generated_tokens']} tokens in {throughput['seconds']} s "
        f"({throughput['tokens_per_second']} tokens/s) -> {run.out}",
        file=sys.stderr,
    )


def _generate_with_checkpoint(
    generator: ContrastiveGenerator,
    checkpoint: ShardCheckpoint,
    tokenizer: Any,
    instructions: Sequence[Instruction],
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    run: GenerationRun,
    window_batches: int,
) -> tuple[list[dict[str, Any]], dict[str, int], float]:
    """Run the planned windows (batches without continuous batching) not yet in the checkpoint,
    appending each as it finishes.

    A window always starts from empty caches, so a resumed shard re-creates the batch
    composition, and therefore the floating-point results, of an unbroken run. Returns the
    records in instruction order, what was resumed (records, tokens) and the seconds spent
    generating in this run.
    """
    lengths, batch_size = [len(prompt) for prompt in prompts], run.engine.batch_size
    plan = (
        plan_windows(lengths, batch_size, window_batches)
        if generator.continuous
        else plan_batches(lengths, batch_size)
    )
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
        outputs = generator.generate_window(
            [prompts[i] for i in batch], [seeds[i] for i in batch], batch_size
        )
        records = [
            make_record(
                instructions[index],
                tokenizer.decode(output.token_ids, skip_special_tokens=True),
                output,
                run.pair,
                generator.settings,
                seeds[index],
                run.sample_index,
            )
            for index, output in zip(batch, outputs, strict=True)
        ]
        checkpoint.append(number, records)
        by_index.update(zip(batch, records, strict=True))
        print(f"codit generate: {len(by_index)}/{len(prompts)} prompts", file=sys.stderr)
        fault_point("generate.after_batch")
    seconds = time.perf_counter() - began
    return [by_index[index] for index in range(len(prompts))], resumed, seconds
