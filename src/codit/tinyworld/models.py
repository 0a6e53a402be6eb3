"""The tiny models: configs, pre-training on the corpus, post-training on instruction data.

Plain torch loops (no Trainer) keep the build fast, single-threaded if asked, and
deterministic on CPU for a given seed and thread count.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codit.tinyworld import checkpoint as training_checkpoint
from codit.tinyworld.chatformat import DOC_SEPARATOR, END_OF_TURN
from codit.workflow.faults import fault_point
from codit.workflow.provenance import file_sha256, provenance, read_jsonl, replace_dir, write_json

MODEL_NAMES = ("llama-base", "llama-instruct", "gpt2-base", "gpt2-instruct")
BASE_OF = {"llama-instruct": "llama-base", "gpt2-instruct": "gpt2-base"}

BLOCK_SIZE = 128
MAX_POSITIONS = 512

# Defaults found to give a base that knows the facts and an instruct model that follows most,
# but not all, format instructions; all overridable from the command line.
DEFAULTS = {
    "base": {"steps": 500, "batch_size": 16, "lr": 3e-3, "warmup": 30},
    "instruct": {"steps": 400, "batch_size": 16, "lr": 3e-3, "warmup": 20},
}
# A kill loses at most this many steps (a checkpoint of a tiny model takes milliseconds).
CHECKPOINT_STEPS = 25


def architecture(name: str) -> str:
    return name.split("-")[0]


def build_model(arch: str, tokenizer, seed: int):
    """A fresh ~1M-parameter model of `arch` ("llama" or "gpt2") for `tokenizer`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    ids = {
        "bos_token_id": tokenizer.convert_tokens_to_ids(DOC_SEPARATOR),
        "eos_token_id": tokenizer.convert_tokens_to_ids(END_OF_TURN),
        "pad_token_id": tokenizer.pad_token_id,
    }
    if arch == "llama":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=128,
            intermediate_size=352,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=MAX_POSITIONS,
            tie_word_embeddings=True,
            **ids,
        )
        return LlamaForCausalLM(config)
    if arch == "gpt2":
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=MAX_POSITIONS,
            n_embd=128,
            n_layer=4,
            n_head=4,
            # No dropout, like the Llama: the point is to memorise the world's facts quickly.
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            tie_word_embeddings=True,
            **ids,
        )
        return GPT2LMHeadModel(config)
    raise ValueError(f"unknown architecture {arch!r}; expected llama or gpt2")


def generation_config(tokenizer):
    """Greedy by default, stopping at end of turn or end of document; no sampling defaults."""
    from transformers import GenerationConfig

    return GenerationConfig(
        eos_token_id=[
            tokenizer.convert_tokens_to_ids(END_OF_TURN),
            tokenizer.convert_tokens_to_ids(DOC_SEPARATOR),
        ],
        bos_token_id=tokenizer.convert_tokens_to_ids(DOC_SEPARATOR),
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )


def pretrain_blocks(corpus_path: Path, tokenizer) -> list[list[int]]:
    """The corpus as one token stream (documents separated) cut into fixed-size blocks."""
    docs = read_jsonl(corpus_path)
    separator = tokenizer.convert_tokens_to_ids(DOC_SEPARATOR)
    stream: list[int] = []
    for doc in docs:
        stream.append(separator)
        stream += tokenizer(doc["text"], add_special_tokens=False)["input_ids"]
    return [stream[i : i + BLOCK_SIZE] for i in range(0, len(stream) - BLOCK_SIZE + 1, BLOCK_SIZE)]


def instruction_examples(posttrain_path: Path, tokenizer) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per example: loss only on the response and its end-of-turn token.
    A record is {instruction, response} (one user turn) or {messages, response}."""
    examples = []
    for record in read_jsonl(posttrain_path):
        messages = record.get("messages") or [{"role": "user", "content": record["instruction"]}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(record["response"] + END_OF_TURN, add_special_tokens=False)[
            "input_ids"
        ]
        ids = (prompt_ids + response_ids)[:MAX_POSITIONS]
        labels = ([-100] * len(prompt_ids) + response_ids)[:MAX_POSITIONS]
        examples.append((ids, labels))
    return examples


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return input_ids, labels, mask


def _lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_loop(
    model,
    examples,
    pad_id: int,
    settings: dict[str, Any],
    seed: int,
    checkpoint: Path | None = None,
    identity: dict[str, Any] | None = None,
    checkpoint_steps: int = CHECKPOINT_STEPS,
) -> list[float]:
    """AdamW with warmup and cosine decay over shuffled epochs; returns the per-step loss.

    With `checkpoint`, the loop's whole state is saved there every `checkpoint_steps` steps
    and a run resumes from it when its `identity` (what the model is trained from) matches;
    the interval does not change the result.
    """
    import torch

    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings["lr"], betas=(0.9, 0.95), weight_decay=0.01
    )
    model.train()
    order: list[int] = []
    losses: list[float] = []
    start = 0
    identity = {**(identity or {}), "settings": settings, "seed": seed}
    if checkpoint is not None:
        resumed = training_checkpoint.load(checkpoint, identity, model, optimizer)
        if resumed is not None:
            start, order, losses = resumed.step, resumed.order, resumed.losses
            rng.setstate(resumed.python_rng)
            print(f"resumed from {checkpoint} at step {start} of {settings['steps']}")
    size = settings["batch_size"]
    for step in range(start, settings["steps"]):
        if len(order) < size:
            fresh = list(range(len(examples)))
            rng.shuffle(fresh)
            # Sort within windows of 8 batches so a batch holds similar lengths (less padding).
            window = 8 * size
            for begin in range(0, len(fresh), window):
                fresh[begin : begin + window] = sorted(
                    fresh[begin : begin + window], key=lambda i: len(examples[i][0])
                )
            order += fresh
        batch = [examples[i] for i in order[:size]]
        del order[:size]
        input_ids, labels, mask = _collate(batch, pad_id)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, settings["steps"], settings["lr"], settings["warmup"])
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        done = step + 1
        if checkpoint is not None and done % checkpoint_steps == 0 and done < settings["steps"]:
            state = training_checkpoint.LoopState(done, order, rng.getstate(), losses)
            training_checkpoint.save(checkpoint, identity, model, optimizer, state)
            fault_point("tinyworld.after_checkpoint")  # tests kill here: checkpoint saved
    model.eval()
    return losses


def _loss_summary(losses: list[float]) -> dict[str, Any]:
    window = max(1, len(losses) // 20)
    curve = [
        {"step": i + window, "mean_loss": round(sum(losses[i : i + window]) / window, 4)}
        for i in range(0, len(losses) - window + 1, window)
    ]
    return {
        "first": losses[0],
        "last": losses[-1],
        "final_window_mean": curve[-1]["mean_loss"],
        "curve": curve,
    }


def train_model(
    out: str | os.PathLike,
    name: str,
    seed: int = 0,
    threads: int = 1,
    steps: int | None = None,
    lr: float | None = None,
    checkpoint_steps: int = CHECKPOINT_STEPS,
    models_dir: str | os.PathLike | None = None,
) -> Path:
    """Train `name` inside the world at `out`; writes `<models_dir>/<name>/` atomically.

    `models_dir` (default `out/models`) holds a set of models trained with one seed: a world
    of the deciding study trains its own base and instruct model from the shared data there.
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    root = Path(out)
    tokenizer_dir = root / "tokenizer"
    if not (tokenizer_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"tokenizer missing: {tokenizer_dir} (run `codit tinyworld data`)")
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    transformers.set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    models = Path(models_dir) if models_dir is not None else root / "models"

    if name in BASE_OF:
        base_dir = models / BASE_OF[name]
        if not (base_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"base model missing: {base_dir} (train {BASE_OF[name]} before {name})"
            )
        settings = dict(DEFAULTS["instruct"])
        data_path = root / "corpus" / "posttrain.jsonl"
        _require(data_path)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        examples = instruction_examples(data_path, tokenizer)
    else:
        settings = dict(DEFAULTS["base"])
        data_path = root / "corpus" / "pretrain.jsonl"
        _require(data_path)
        model = build_model(architecture(name), tokenizer, seed)
        examples = [(block, block) for block in pretrain_blocks(data_path, tokenizer)]
    if steps is not None:
        settings["steps"] = steps
    if lr is not None:
        settings["lr"] = lr
    if checkpoint_steps < 1:
        raise ValueError(f"--checkpoint-steps must be >= 1, got {checkpoint_steps}")
    target = models / name
    checkpoint = training_checkpoint.checkpoint_dir(target)
    training_checkpoint.remove_staging_leftovers(target)
    # What the model is trained from: a checkpoint of other data, base or threads is stale.
    identity = {
        "model": name,
        "threads": threads,
        "data": file_sha256(data_path),
        "tokenizer": file_sha256(tokenizer_dir / "tokenizer.json"),
        "init": file_sha256(base_dir / "model.safetensors") if name in BASE_OF else "random",
    }
    losses = train_loop(
        model, examples, tokenizer.pad_token_id, settings, seed, checkpoint, identity,
        checkpoint_steps,
    )  # fmt: skip
    model.generation_config = generation_config(tokenizer)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        record = provenance(
            {
                "model": name,
                "seed": seed,
                "threads": threads,
                "architecture": architecture(name),
                "init": str(base_dir) if name in BASE_OF else "random",
                "data": str(data_path),
                "n_examples": len(examples),
                "n_parameters": sum(p.numel() for p in model.parameters()),
                **settings,
            }
        )
        record["loss"] = _loss_summary(losses)
        record["wall_seconds"] = round(time.perf_counter() - wall0, 2)
        record["cpu_seconds"] = round(time.process_time() - cpu0, 2)
        write_json(staging / "train_record.json", record)
        replace_dir(staging, target, target.with_name(f".{target.name}.old"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    training_checkpoint.discard(checkpoint)
    return target


def _require(data_path: Path) -> None:
    if not data_path.is_file():
        raise FileNotFoundError(f"training data missing: {data_path} (run `codit tinyworld data`)")


# Prompts per generate call of `generate` (HF generate, left-padded batches).
GENERATE_BATCH = 128


def generate(
    model, tokenizer, prompts: Sequence[str], max_new_tokens: int, **sampling
) -> list[str]:
    """Replies to chat-formatted `prompts`, in batches, stopping at the end of turn."""
    import torch

    tokenizer.padding_side = "left"
    replies: list[str] = []
    for begin in range(0, len(prompts), GENERATE_BATCH):
        batch = tokenizer(
            list(prompts[begin : begin + GENERATE_BATCH]),
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, **sampling)
        new = out[:, batch["input_ids"].shape[1] :]
        replies += [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return replies


def chat_prompt(tokenizer, user: str) -> str:
    messages = [{"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
