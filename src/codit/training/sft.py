"""`codit sft`: LoRA SFT of a student on a generated dataset, with identical settings for every arm.

The dataset is TRL's conversational prompt-completion format, so SFTTrainer renders each record
with the student's chat template and puts the loss on the completion only (the prompt is masked
to -100 in `SFTTrainer._prepare_dataset`). Outputs, under --out DIR, appear all at once:

    DIR/adapter/            peft adapter (save_pretrained) + tokenizer
    DIR/merged/             merged model, tokenizer with chat template, clean generation_config
    DIR/train_record.json   provenance, data counts, loss curve, merge check, runtime

With --checkpoint-steps N > 0, the trainer saves a checkpoint every N optimizer steps into
DIR.checkpoints/ (a sibling of DIR, so it outlives a killed process and its staging folder) and
a rerun resumes from the newest complete one, to the same loss curve and byte-identical adapter
weights as an unbroken run. The folder is removed once DIR is in place.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codit.workflow.faults import fault_point
from codit.workflow.provenance import (
    file_sha256,
    iter_jsonl,
    package_versions,
    provenance,
    write_json,
)
from codit.workflow.runtime import (
    DEVICES,
    DTYPE_HELP,
    THREADS_HELP,
    resolve_device,
    resolve_dtype,
    set_threads,
    sigterm_exits,
)
from codit.workflow.settings import Settings, group, option

if TYPE_CHECKING:
    import torch

# A marker that no chat template produces on its own, used to find what follows an assistant turn.
_TURN_PROBE = "CODIT_TURN_PROBE"

# Beside the checkpoints: what they were written for (a rerun with other settings starts over).
RUN_FILE = "codit_run.json"
# Checkpoints kept: a kill while one is being saved leaves the previous one to resume from.
CHECKPOINTS_KEPT = 2
# transformers 5.23 Trainer._save_checkpoint writes these, then trainer_state.json last (then
# prunes older checkpoints), so a checkpoint is complete iff these exist and its state parses.
CHECKPOINT_FILES = ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth")
# Versions a checkpoint must have been written with (of provenance.package_versions()).
TRAINING_PACKAGES = ("codit-workflow", "python", "torch", "transformers", "tokenizers")
TRAINING_PACKAGES += ("peft", "trl", "accelerate", "datasets")


@dataclass(frozen=True, kw_only=True)
class TrainingSettings(Settings):
    """The hyper-parameters every arm is trained with: the config's `sft:` section."""

    lora_r: int = option(16, "LoRA rank")
    lora_alpha: int = option(32, "LoRA scale numerator (the update is scaled by alpha / r)")
    lora_dropout: float = option(0.05)
    target_modules: str = option(
        "all-linear", "'all-linear' or a comma list of module names (e.g. q_proj,v_proj)"
    )
    learning_rate: float = option(2e-4)
    lr_scheduler: str = option("cosine")
    warmup_ratio: float = option(0.03)
    epochs: float = option(2.0)
    batch_size: int = option(8, "per-device micro-batch size")
    grad_accum: int = option(1, "gradient accumulation steps")
    max_length: int = option(2048, "tokens per example (cut)")
    dtype: str = option("auto", DTYPE_HELP, choices=("auto", "float32", "bfloat16"))
    device: str = option("auto", choices=DEVICES)


@dataclass(frozen=True, kw_only=True)
class SftRun(Settings):
    """One `codit sft` run: what is trained on what, where it goes, and how."""

    student: str = option(help="base model: local dir or Hub id")
    data: str = option(help="generated dataset (JSONL, prompt/completion)")
    out: str = option(help="output dir: adapter/, merged/, train_record.json")
    chat_template_from: str | None = option(
        None,
        "dir or Hub id of a tokenizer whose chat template the student adopts "
        "(needed when the student's tokenizer has none; overrides the student's own)",
    )
    eos_token: str | None = option(
        None,
        "end-of-turn token the student learns to stop on (default: the token the chat "
        "template puts after an assistant turn, else the tokenizer's eos)",
    )
    trust_remote_code: bool = option(False, "run the student repository's own model code")
    training: TrainingSettings = group(TrainingSettings, "LoRA and optimisation")
    logging_steps: int = option(10)
    seed: int = option(42)
    checkpoint_steps: int = option(
        0,
        "save a checkpoint every N optimizer steps into OUT.checkpoints/ and resume from "
        "the newest complete one on a rerun (0: no checkpoints); does not change the results",
    )
    threads: int | None = option(None, THREADS_HELP)

    def __post_init__(self) -> None:
        if self.checkpoint_steps < 0:
            raise ValueError(f"--checkpoint-steps must be >= 0, got {self.checkpoint_steps}")


add_arguments = SftRun.add_arguments


# ----------------------------------------------------------------------------- data


def load_training_records(path: str) -> list[dict]:
    """Read and check the dataset; return its prompt/completion records.

    The dataset is `codit generate`'s output, so a bad record is an error naming the file and
    line (not UTF-8 or JSON, not an object, no prompt/completion, wrong roles), never dropped.
    Responses cut at the generation token limit are kept or dropped when the dataset is
    gathered (`codit gather --drop-truncated`), not here.
    """
    kept = []
    for number, (line, record) in enumerate(iter_jsonl(path), start=1):
        check_record(record, f"{path}:{line}", number)
        check_prompt_roles(record["prompt"], f"{path}:{line}: record {number}")
        kept.append({key: chat_messages(record[key]) for key in ("prompt", "completion")})
    if not kept:
        raise ValueError(f"{path}: no training records (the file is empty or has only blank lines)")
    return kept


# Roles a prompt may hold; it ends on the user turn the completion answers.
PROMPT_ROLES = ("system", "user", "assistant")


def check_prompt_roles(prompt: list[dict], where: str) -> None:
    """A prompt is a chat of PROMPT_ROLES messages ending on a user turn."""
    roles = [message["role"] for message in prompt]
    unknown = sorted(set(roles) - set(PROMPT_ROLES))
    if unknown:
        raise ValueError(
            f"{where}: 'prompt' holds role(s) {', '.join(map(repr, unknown))}; "
            f"expected {', '.join(PROMPT_ROLES)}"
        )
    if roles[-1] != "user":
        raise ValueError(f"{where}: 'prompt' must end with a user message, not {roles[-1]!r}")


def tokenized_lengths(records: list[dict], tokenizer) -> list[int]:
    """Tokens of each prompt + completion as SFTTrainer tokenizes it (TRL 1.16 `_tokenize`:
    the tokenizer's chat template over the whole conversation, tokenize=True)."""
    return [
        len(
            tokenizer.apply_chat_template(
                record["prompt"] + record["completion"], tokenize=True, return_dict=True
            )["input_ids"]
        )
        for record in records
    ]


def training_data_report(run: SftRun, tokenizer) -> dict[str, Any]:
    """Train-record entries about the data: `truncated_to_max_length` (records longer than
    --max-length, which TRL cuts to it) and `warnings` (also printed)."""
    records = load_training_records(run.data)
    lengths = tokenized_lengths(records, tokenizer)
    max_length = run.training.max_length
    truncated = sum(length > max_length for length in lengths)
    warnings = []
    if truncated:
        warnings.append(
            f"{run.data}: {truncated} of {len(records)} records are longer than --max-length "
            f"{max_length} tokens (longest {max(lengths)}) and are cut to it"
        )
    batch_size, grad_accum = run.training.batch_size, run.training.grad_accum
    batch = batch_size * grad_accum
    # A warning, not an error: Trainer keeps a partial batch (drop_last=False) and trains on it.
    if len(records) < batch:
        warnings.append(
            f"{run.data}: {len(records)} records, fewer than one batch (--batch-size "
            f"{batch_size} x --grad-accum {grad_accum} = {batch}); "
            "each epoch is one optimizer step on a partial batch"
        )
    for warning in warnings:
        print(f"codit sft: warning: {warning}", file=sys.stderr)
    return {"truncated_to_max_length": truncated, "warnings": warnings}


def check_examples_left(run: SftRun, trainer) -> None:
    """Refuse to train when TRL dropped every record: a prompt that fills --max-length leaves no
    completion token to put loss on (TRL's own error is about a sampler's num_samples=0)."""
    if len(trainer.train_dataset) == 0:
        raise ValueError(
            f"{run.data}: no training records left: TRL dropped all of them because each "
            f"prompt fills --max-length {run.training.max_length} (raise --max-length)"
        )


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
    from codit.generation.loading import load_tokenizer as load_tokenizer_of

    tokenizer = load_tokenizer_of(student, trust_remote_code)
    added: list[str] = []
    if template_source:
        source = load_tokenizer_of(template_source, trust_remote_code)
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
    """The student as loaded for training: the Trainer places it and switches its modes."""
    import torch

    from codit.generation.loading import load_causal_lm

    return load_causal_lm(student, getattr(torch, dtype), trust_remote_code)


def grow_embeddings(model, tokenizer, seed: int = 0) -> None:
    """Make room for tokens added to the tokenizer; never shrink a padded embedding matrix."""
    import torch

    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        # The new rows are drawn from torch's global RNG (mean_resizing), not yet seeded by the
        # trainer here: seed it, or every run (and every resumed one) starts from other rows.
        torch.manual_seed(seed)
        model.resize_token_embeddings(len(tokenizer))


def lora_config(settings: TrainingSettings, new_token_ids: list[int], tied: bool):
    from peft import LoraConfig

    targets = settings.target_modules
    if targets != "all-linear":
        targets = [name.strip() for name in targets.split(",") if name.strip()]
    config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    if new_token_ids:
        # New template tokens start untrained: train their embedding rows (and an untied head).
        config.trainable_token_indices = list(new_token_ids)
        if not tied:
            config.modules_to_save = ["lm_head"]
    return config


def sft_config(run: SftRun, output_dir: Path, device: str, dtype: str, eos: str):
    from trl import SFTConfig

    on_gpu = device == "cuda"
    settings, checkpoint_steps = run.training, run.checkpoint_steps
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        # transformers 5 dropped warmup_ratio: a float below 1 in warmup_steps is a ratio.
        warmup_steps=settings.warmup_ratio,
        max_length=settings.max_length,
        seed=run.seed,
        data_seed=run.seed,
        eos_token=eos,
        completion_only_loss=True,
        packing=False,
        bf16=dtype == "bfloat16",
        fp16=False,
        use_cpu=not on_gpu,
        # transformers 5 renamed gradient_checkpointing (TRL defaults it on); tiny CPU runs skip it.
        activation_checkpointing=on_gpu,
        dataloader_num_workers=0,
        logging_steps=run.logging_steps,
        logging_first_step=True,
        save_strategy="steps" if checkpoint_steps else "no",
        save_steps=checkpoint_steps or 500,
        save_total_limit=CHECKPOINTS_KEPT,
        report_to="none",
        disable_tqdm=True,
    )


def score_loss_positions_only() -> None:
    """Have TRL's fused LM head score only the positions that carry loss on CPU too.

    TRL 1.16 (`add_fused_lm_head`) projects only the positions with a label through the LM head
    when Triton runs its kernel, and every position elsewhere (fixed tile shapes, for compiled
    backends), zeroing the prompt and padding ones afterwards: in eager CPU training, wasted work
    (in the tiny world 78% of the padded positions carry no loss). Only its `compact` switch
    changes: the log-probabilities, loss and gradients are those of the same positions, computed
    by the same kernel on fewer rows. Idempotent; if TRL drops `_use_triton`, this fails loudly.
    """
    import trl.trainer.utils as trl_utils

    original = trl_utils._use_triton
    if getattr(original, "codit_compact_on_cpu", False):
        return

    def compact(device: torch.device) -> bool:
        return device.type == "cpu" or original(device)

    compact.codit_compact_on_cpu = True  # type: ignore[attr-defined]
    trl_utils._use_triton = compact


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
    # A killed earlier attempt (SIGKILL runs no cleanup) left its staging folder: this run
    # replaces that attempt, and only one job writes an output at a time.
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
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


def run_settings(run: SftRun, device: str, dtype: str, eos: str, new_tokens: list[str]) -> dict:
    """The run's settings as recorded, with what `auto` and the template resolved to."""
    settings = run.record()
    settings.update(device=device, dtype=dtype, eos_token=eos, added_template_tokens=new_tokens)
    return settings


# ----------------------------------------------------------------------------- checkpoints


def checkpoint_dir(out: Path) -> Path:
    """`results/sft/x` -> `results/sft/x.checkpoints` (outside the per-process staging folder)."""
    return out.with_name(out.name + ".checkpoints")


def resume_key(settings: dict[str, Any], data: str | Path) -> dict[str, Any]:
    """What checkpoints must have been written with to be resumed: every setting that changes
    the result (not --out, --threads or the checkpoint interval; the data by its content) and
    the versions of the packages that train."""
    ignored = {"out", "threads", "checkpoint_steps", "data"}
    key = {k: v for k, v in settings.items() if k not in ignored}
    versions = package_versions()
    key.update(
        data_sha256=file_sha256(data),
        versions={name: versions.get(name) for name in TRAINING_PACKAGES},
    )
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def checkpoint_step(folder: Path) -> int | None:
    prefix, _, step = folder.name.partition("-")
    return int(step) if prefix == "checkpoint" and step.isdigit() else None


def complete_checkpoint(folder: Path) -> bool:
    """Trainer._save_checkpoint's files are all there, and the last it writes parses."""
    if not all((folder / name).is_file() for name in CHECKPOINT_FILES):
        return False
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("global_step") == checkpoint_step(folder)


def resume_point(folder: Path, key: dict[str, Any]) -> Path | None:
    """The newest complete checkpoint in `folder` written for this very run, else None.

    A folder written for other settings is deleted; so are torn checkpoints (killed mid-save).
    The folder is left ready for this run's checkpoints, with its RUN_FILE.
    """
    if folder.exists():
        try:
            written = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            written = None
        if written != key:
            if isinstance(written, dict):
                changed = sorted(k for k in key | written if key.get(k) != written.get(k))
                reason = f"were written with other settings ({', '.join(changed)})"
            else:
                reason = f"have no readable {RUN_FILE}"
            # (The Trainer creates its output folder: an empty one is no news.)
            if any(checkpoint_step(path) is not None for path in folder.iterdir()):
                log(f"checkpoints in {folder} {reason}; discarding them, starting over")
            shutil.rmtree(folder)
    if not folder.exists():
        folder.mkdir(parents=True)
        # Atomic, without write_json's fault point (its hits count the stage's result files).
        partial = folder / f".{RUN_FILE}.tmp"
        partial.write_text(json.dumps(key, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(partial, folder / RUN_FILE)
        return None
    found = sorted(
        (p for p in folder.iterdir() if p.is_dir() and checkpoint_step(p) is not None),
        key=checkpoint_step,
    )
    while found and not complete_checkpoint(found[-1]):
        torn = found.pop()
        log(f"checkpoint {torn} is incomplete (killed while saving); removing it")
        shutil.rmtree(torn)
    return found[-1] if found else None


def log(message: str) -> None:
    print(f"codit sft: {message}", file=sys.stderr, flush=True)


def add_checkpoint_callbacks(trainer) -> None:
    """Fault points at step ends and after checkpoints, and the loss accounting a resume needs."""
    import torch
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState

    class FaultPoints(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            fault_point("sft.step")  # tests kill here: between checkpoints

        def on_save(self, args, state, control, **kwargs):
            fault_point("sft.after_checkpoint")  # tests kill here: checkpoint fully saved

    class LossAccounting(TrainerCallback, ExportableState):
        """Carries the trainer's running loss sums through a checkpoint.

        The Trainer keeps the loss summed since the last log, the step of that log and the sum
        over all logs in memory only, so a run resumed between two logs would log the mean of
        the resumed steps only, and report the mean loss of the resumed steps as its training
        loss. `state()` is stored in trainer_state.json (stateful_callbacks) at every save; on
        resume, on_train_begin puts it back (after the trainer has reset these values).
        """

        def state(self) -> dict:
            tr_loss = getattr(trainer, "_tr_loss", None)
            metrics = getattr(trainer, "_metrics", {}).get("train", {})
            return {
                "args": {},
                "attributes": {
                    "tr_loss": None if tr_loss is None else float(tr_loss.item()),
                    "total_loss": getattr(trainer, "_total_loss_scalar", 0.0),
                    "last_logged_step": getattr(trainer, "_globalstep_last_logged", 0),
                    "total_train_tokens": getattr(trainer, "_total_train_tokens", 0),
                    "metrics": {name: list(values) for name, values in metrics.items()},
                },
            }

        def on_train_begin(self, args, state, control, **kwargs):
            saved = state.stateful_callbacks.get(type(self).__name__)
            if not state.global_step or not saved or saved["attributes"]["tr_loss"] is None:
                return
            saved = saved["attributes"]
            trainer._tr_loss = torch.tensor(
                saved["tr_loss"], dtype=trainer._tr_loss.dtype, device=trainer._tr_loss.device
            )
            trainer._total_loss_scalar = saved["total_loss"]
            trainer._globalstep_last_logged = saved["last_logged_step"]
            # The training loss TrainOutput reports is then the mean over the whole run.
            trainer._initial_global_step = 0
            if hasattr(trainer, "_total_train_tokens"):
                trainer._total_train_tokens = saved["total_train_tokens"]
                trainer._metrics["train"].clear()
                trainer._metrics["train"].update(saved["metrics"])

    trainer.add_callback(FaultPoints())
    trainer.add_callback(LossAccounting())


# ----------------------------------------------------------------------------- entry point


@dataclass
class SftJob:
    """A trainer ready to run, with what the train record needs to know about how it was set up."""

    trainer: Any
    tokenizer: Any
    eos: str
    device: str
    dtype: str
    added_tokens: list[str]
    num_records: int


def build_job(run: SftRun, output_dir: Path) -> SftJob:
    """Check the data, load student and tokenizer, build the SFTTrainer (nothing trained yet)."""
    from datasets import Dataset
    from trl import SFTTrainer

    records = load_training_records(run.data)
    device = resolve_device(run.training.device)
    dtype = resolve_dtype(run.training.dtype, device)
    if dtype == "bfloat16" and device == "cpu":
        raise ValueError("--dtype bfloat16 is not supported with --device cpu; use float32")
    tokenizer, added = load_tokenizer(run.student, run.chat_template_from, run.trust_remote_code)
    eos = run.eos_token or end_of_turn_token(tokenizer)
    if eos not in tokenizer.get_vocab():
        raise ValueError(f"--eos-token {eos!r} is not in the student's vocabulary")

    model = load_student(run.student, dtype, run.trust_remote_code)
    grow_embeddings(model, tokenizer, run.seed)
    tied = bool(model.config.get_text_config().tie_word_embeddings)
    score_loss_positions_only()
    trainer = SFTTrainer(
        model=model,
        args=sft_config(run, output_dir, device, dtype, eos),
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=lora_config(run.training, tokenizer.convert_tokens_to_ids(added), tied),
    )
    return SftJob(trainer, tokenizer, eos, device, dtype, added, len(records))


def train(run: SftRun) -> dict[str, Any]:
    """Train, merge and save everything under --out at once; returns the train record."""
    from transformers.utils import logging as hf_logging

    started = time.monotonic()
    set_threads(run.threads)
    hf_logging.set_verbosity_warning()
    out = Path(run.out)
    checkpoints = checkpoint_dir(out)
    checkpoint_steps = run.checkpoint_steps
    resume_note = "a rerun resumes from the last checkpoint"
    with sigterm_exits(resume_note), staging_dir(out) as staging:
        job = build_job(run, checkpoints if checkpoint_steps else staging / "trainer")
        check_examples_left(run, job.trainer)
        data_report = training_data_report(run, job.tokenizer)  # warns before training
        settings = run_settings(run, job.device, job.dtype, job.eos, job.added_tokens)
        resume = None
        if checkpoint_steps:
            add_checkpoint_callbacks(job.trainer)
            resume = resume_point(checkpoints, resume_key(settings, run.data))
            if resume is not None:
                log(f"resuming from {resume}")
        result = job.trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        job.trainer.model.save_pretrained(staging / "adapter")
        job.tokenizer.save_pretrained(staging / "adapter")
        merged, merge_diff = merge_adapter(job.trainer.model, sample_input(job.trainer))
        if not math.isfinite(merge_diff):
            raise ValueError(f"merged model gives non-finite logits (student {run.student})")
        save_merged(merged, job.tokenizer, job.eos, staging / "merged")
        shutil.rmtree(staging / "trainer", ignore_errors=True)
        record = {
            "provenance": provenance(settings),
            "num_records": job.num_records,
            "num_train_examples": len(job.trainer.train_dataset),
            "dropped_by_trainer": job.num_records - len(job.trainer.train_dataset),
            **data_report,
            "loss_curve": loss_curve(job.trainer.state.log_history),
            "final_loss": result.training_loss,
            "global_steps": result.global_step,
            "checkpoint_steps": checkpoint_steps,
            "resumed_from_step": checkpoint_step(resume) if resume else None,
            "merge_max_abs_logit_diff": merge_diff,
            "runtime_s": round(time.monotonic() - started, 3),
        }
        write_json(staging / "train_record.json", record)
    # The outputs are in place: the checkpoints (also any left by an earlier run) are spent.
    shutil.rmtree(checkpoints, ignore_errors=True)
    return record


def run(args: argparse.Namespace) -> None:
    sft_run = SftRun.from_args(args)
    record = train(sft_run)
    print(
        f"codit sft: {record['num_train_examples']} examples, "
        f"final loss {record['final_loss']:.4f}, {record['runtime_s']:.1f}s -> {sft_run.out}"
    )
