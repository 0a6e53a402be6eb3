"""`codit sft`: LoRA SFT of a student on a generated dataset, with identical settings for every arm.

The dataset is TRL's conversational prompt-completion format, so SFTTrainer renders each record
with the student's chat template and puts the loss on the completion only (the prompt is masked
to -100 in `SFTTrainer._prepare_dataset`). Outputs, under --out DIR, appear all at once:

    DIR/adapter/            peft adapter (save_pretrained) + tokenizer
    DIR/merged/             merged model, tokenizer with chat template, clean generation_config
    DIR/train_record.json   provenance, data counts, loss curve, merge check, runtime
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codit.provenance import provenance, read_jsonl, write_json
from codit.runtime import add_runtime_arguments, resolve_device, resolve_dtype, set_threads

# A marker that no chat template produces on its own, used to find what follows an assistant turn.
_TURN_PROBE = "CODIT_TURN_PROBE"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--student", required=True, help="base model: local dir or Hub id")
    io.add_argument("--data", required=True, help="generated dataset (JSONL, prompt/completion)")
    io.add_argument("--out", required=True, help="output dir: adapter/, merged/, train_record.json")
    io.add_argument(
        "--chat-template-from",
        help="dir or Hub id of a tokenizer whose chat template the student adopts "
        "(needed when the student's tokenizer has none; overrides the student's own)",
    )
    io.add_argument(
        "--eos-token",
        help="end-of-turn token the student learns to stop on (default: the token the chat "
        "template puts after an assistant turn, else the tokenizer's eos)",
    )
    io.add_argument("--trust-remote-code", action="store_true")

    lora = parser.add_argument_group("LoRA")
    lora.add_argument("--lora-r", type=int, default=16)
    lora.add_argument("--lora-alpha", type=int, default=32)
    lora.add_argument("--lora-dropout", type=float, default=0.05)
    lora.add_argument(
        "--target-modules",
        default="all-linear",
        help="'all-linear' or a comma list of module names (e.g. q_proj,v_proj)",
    )

    train = parser.add_argument_group("optimisation")
    train.add_argument("--learning-rate", type=float, default=2e-4)
    train.add_argument("--lr-scheduler", default="cosine")
    train.add_argument("--warmup-ratio", type=float, default=0.03)
    train.add_argument("--epochs", type=float, default=2.0)
    train.add_argument("--batch-size", type=int, default=8, help="per-device micro-batch size")
    train.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    train.add_argument("--max-length", type=int, default=2048, help="tokens per example (cut)")
    train.add_argument("--logging-steps", type=int, default=10)
    train.add_argument("--seed", type=int, default=42)

    runtime = parser.add_argument_group("runtime")
    add_runtime_arguments(runtime, dtypes=("float32", "bfloat16"))


# ----------------------------------------------------------------------------- data


def load_training_records(path: str) -> list[dict]:
    """Read and check the dataset; return its prompt/completion records.

    Responses cut at the generation token limit are kept or dropped when the dataset is
    gathered (`codit generate --gather --drop-truncated`), not here.
    """
    records = read_jsonl(path)
    kept = []
    for number, record in enumerate(records, start=1):
        check_record(record, path, number)
        kept.append({key: chat_messages(record[key]) for key in ("prompt", "completion")})
    if not kept:
        raise ValueError(f"{path}: no training records")
    return kept


def check_record(record: Any, path: str, number: int) -> None:
    """A record must hold a conversational prompt and a single assistant completion."""
    where = f"{path}: record {number}"
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object")
    for key, roles in (("prompt", None), ("completion", {"assistant"})):
        messages = record.get(key)
        if not isinstance(messages, list) or not messages:
            raise ValueError(f"{where}: {key!r} must be a non-empty list of chat messages")
        for message in messages:
            if not isinstance(message, dict) or not all(
                isinstance(message.get(field), str) for field in ("role", "content")
            ):
                raise ValueError(f"{where}: {key!r} holds a message without string role/content")
            if roles is not None and message.get("role") not in roles:
                raise ValueError(f"{where}: {key!r} must hold assistant messages only")


def chat_messages(messages: list[dict]) -> list[dict[str, str]]:
    """Role and content only: extra message keys would give the Arrow table a ragged schema."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


# ----------------------------------------------------------------------------- tokenizer


def load_tokenizer(student: str, template_source: str | None, trust_remote_code: bool):
    """The student's tokenizer with a chat template (its own, or adopted from `template_source`).

    Returns the tokenizer and the template tokens that had to be added to its vocabulary.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(student, trust_remote_code=trust_remote_code)
    added: list[str] = []
    if template_source:
        source = AutoTokenizer.from_pretrained(template_source, trust_remote_code=trust_remote_code)
        if not source.chat_template:
            raise ValueError(f"--chat-template-from {template_source}: no chat template there")
        tokenizer.chat_template = source.chat_template
        added = add_template_tokens(tokenizer, source)
    if not tokenizer.chat_template:
        raise ValueError(
            f"student {student}: its tokenizer has no chat template; "
            "pass --chat-template-from DIR_OR_ID (typically the teacher)"
        )
    return tokenizer, added


def add_template_tokens(tokenizer, source) -> list[str]:
    """Add the source's added tokens the student lacks (as TRL's clone_chat_template does).

    All of them, not only those spelled out in the template: templates may build names such as
    `<|{{ role }}|>` at render time.
    """
    vocab = tokenizer.get_vocab()
    missing = [t for t in source.added_tokens_decoder.values() if t.content not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    return [token.content for token in missing]


def end_of_turn_token(tokenizer) -> str:
    """The token a chat template writes right after an assistant message, else the eos token."""
    conversation = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": _TURN_PROBE},
    ]
    rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
    if _TURN_PROBE in rendered:
        after = rendered.rsplit(_TURN_PROBE, 1)[1].lstrip()
        candidates = [t.content for t in tokenizer.added_tokens_decoder.values()]
        matches = [token for token in candidates if token and after.startswith(token)]
        if matches:
            return max(matches, key=len)
    if tokenizer.eos_token is None:
        raise ValueError("cannot tell the end-of-turn token from the template; pass --eos-token")
    return tokenizer.eos_token


# ----------------------------------------------------------------------------- model


def load_student(student: str, dtype: str, trust_remote_code: bool):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        student, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code
    )


def grow_embeddings(model, tokenizer) -> None:
    """Make room for tokens added to the tokenizer; never shrink a padded embedding matrix."""
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))


def lora_config(args: argparse.Namespace, new_token_ids: list[int], tied: bool):
    from peft import LoraConfig

    targets = args.target_modules
    if targets != "all-linear":
        targets = [name.strip() for name in targets.split(",") if name.strip()]
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    if new_token_ids:
        # New template tokens start untrained: train their embedding rows (and an untied head).
        config.trainable_token_indices = list(new_token_ids)
        if not tied:
            config.modules_to_save = ["lm_head"]
    return config


def sft_config(args: argparse.Namespace, output_dir: Path, device: str, dtype: str, eos: str):
    from trl import SFTConfig

    on_gpu = device == "cuda"
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.learning_rate,
        lr_scheduler_type=args.lr_scheduler,
        # transformers 5 dropped warmup_ratio: a float below 1 in warmup_steps is a ratio.
        warmup_steps=args.warmup_ratio,
        max_length=args.max_length,
        seed=args.seed,
        data_seed=args.seed,
        eos_token=eos,
        completion_only_loss=True,
        packing=False,
        bf16=dtype == "bfloat16",
        fp16=False,
        use_cpu=not on_gpu,
        # transformers 5 renamed gradient_checkpointing (TRL defaults it on); tiny CPU runs skip it.
        activation_checkpointing=on_gpu,
        dataloader_num_workers=0,
        logging_steps=args.logging_steps,
        logging_first_step=True,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )


# ----------------------------------------------------------------------------- merge


def sample_input(trainer, limit: int = 64):
    """The first training example's ids as a batch of one, on the model's device."""
    import torch

    ids = trainer.train_dataset[0]["input_ids"][:limit]
    return torch.tensor([ids], device=trainer.model.device)


def logits(model, input_ids):
    import torch

    with torch.no_grad():
        return model(input_ids=input_ids).logits.float()


def merge_adapter(peft_model, input_ids) -> tuple[Any, float]:
    """Merge LoRA into the base weights; return the model and the max |logit change| it caused."""
    peft_model.eval()
    before = logits(peft_model, input_ids)
    merged = peft_model.merge_and_unload(safe_merge=True)
    after = logits(merged, input_ids)
    return merged, float((before - after).abs().max())


def clean_generation_config(model, tokenizer, eos: str):
    """Stop on the end-of-turn token and the base eos ids; no sampling defaults."""
    from transformers import GenerationConfig

    eos_ids = [tokenizer.convert_tokens_to_ids(eos)]
    previous = model.generation_config.eos_token_id if model.generation_config else None
    for token_id in previous if isinstance(previous, list) else [previous]:
        if token_id is not None and token_id not in eos_ids:
            eos_ids.append(token_id)
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
    )


def save_merged(model, tokenizer, eos: str, directory: Path) -> None:
    model.generation_config = clean_generation_config(model, tokenizer, eos)
    # Training switches the KV cache off; evaluation needs it back.
    model.config.use_cache = True
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


# ----------------------------------------------------------------------------- output


@contextlib.contextmanager
def staging_dir(out: Path) -> Iterator[Path]:
    """A temporary sibling of `out`, renamed onto it only on success (no half-finished DIR)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # Not mkdtemp: its 0700 mode would make the finished result private.
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def loss_curve(log_history: list[dict]) -> list[dict]:
    """The per-logging-step entries of the trainer's log (the summary entry is reported apart)."""
    keys = ("step", "epoch", "loss", "learning_rate", "grad_norm")
    return [{k: e[k] for k in keys if k in e} for e in log_history if "loss" in e]


def run_settings(args, device: str, dtype: str, eos: str, new_tokens: list[str]) -> dict:
    settings = dict(vars(args))
    settings.update(device=device, dtype=dtype, eos_token=eos, added_template_tokens=new_tokens)
    return settings


# ----------------------------------------------------------------------------- entry point


@dataclasses.dataclass
class SftJob:
    """A trainer ready to run, with what the train record needs to know about how it was set up."""

    trainer: Any
    tokenizer: Any
    eos: str
    device: str
    dtype: str
    added_tokens: list[str]
    num_records: int


def build_job(args: argparse.Namespace, output_dir: Path) -> SftJob:
    """Check the data, load student and tokenizer, build the SFTTrainer (nothing trained yet)."""
    from datasets import Dataset
    from trl import SFTTrainer

    records = load_training_records(args.data)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    if dtype == "bfloat16" and device == "cpu":
        raise ValueError("--dtype bfloat16 is not supported with --device cpu; use float32")
    tokenizer, added = load_tokenizer(args.student, args.chat_template_from, args.trust_remote_code)
    eos = args.eos_token or end_of_turn_token(tokenizer)
    if eos not in tokenizer.get_vocab():
        raise ValueError(f"--eos-token {eos!r} is not in the student's vocabulary")

    model = load_student(args.student, dtype, args.trust_remote_code)
    grow_embeddings(model, tokenizer)
    tied = bool(model.config.get_text_config().tie_word_embeddings)
    trainer = SFTTrainer(
        model=model,
        args=sft_config(args, output_dir, device, dtype, eos),
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=lora_config(args, tokenizer.convert_tokens_to_ids(added), tied),
    )
    return SftJob(trainer, tokenizer, eos, device, dtype, added, len(records))


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train, merge and save everything under --out at once; returns the train record."""
    from transformers.utils import logging as hf_logging

    started = time.monotonic()
    set_threads(args.threads)
    hf_logging.set_verbosity_warning()
    with staging_dir(Path(args.out)) as staging:
        job = build_job(args, staging / "trainer")
        result = job.trainer.train()
        job.trainer.model.save_pretrained(staging / "adapter")
        job.tokenizer.save_pretrained(staging / "adapter")
        merged, merge_diff = merge_adapter(job.trainer.model, sample_input(job.trainer))
        if not math.isfinite(merge_diff):
            raise ValueError(f"merged model gives non-finite logits (student {args.student})")
        save_merged(merged, job.tokenizer, job.eos, staging / "merged")
        shutil.rmtree(staging / "trainer", ignore_errors=True)
        settings = run_settings(args, job.device, job.dtype, job.eos, job.added_tokens)
        record = {
            "provenance": provenance(settings),
            "num_records": job.num_records,
            "num_train_examples": len(job.trainer.train_dataset),
            "dropped_by_trainer": job.num_records - len(job.trainer.train_dataset),
            "loss_curve": loss_curve(job.trainer.state.log_history),
            "final_loss": result.training_loss,
            "global_steps": result.global_step,
            "merge_max_abs_logit_diff": merge_diff,
            "runtime_s": round(time.monotonic() - started, 3),
        }
        write_json(staging / "train_record.json", record)
    return record


def run(args: argparse.Namespace) -> None:
    record = train(args)
    print(
        f"codit sft: {record['num_train_examples']} examples, "
        f"final loss {record['final_loss']:.4f}, {record['runtime_s']:.1f}s -> {args.out}"
    )
