"""What a generation job is told: the decoding rule's settings, sampling, the engine, and the
whole `codit generate` run.

Kept free of torch so that the workflow reads these classes when it parses the Snakefile
(`EngineSettings.from_config(...).command_line()` in workflow/rules/generate.smk) without
importing torch; codit.generation.decoding, codit.generation.engine and codit.generation.generate
compute with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from codit.workflow.jobs import shard_bounds
from codit.workflow.runtime import DEVICES, DTYPE_HELP, DTYPE_NAMES, THREADS_HELP
from codit.workflow.settings import Settings, group, json_object, json_text, option

CODIT_MODE = "codit"
DIRECT_MODE = "direct"
MODES = (CODIT_MODE, DIRECT_MODE)


@dataclass(frozen=True)
class DecodingSettings:
    """Every setting of the next-token rule; nothing is taken from a model's generation_config.

    alpha and beta are None in direct mode (they do not apply there).
    """

    mode: str = CODIT_MODE
    alpha: float | None = 0.01
    beta: float | None = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    greedy: bool = False

    def __post_init__(self) -> None:
        validate_decoding_settings(self.mode, self.alpha, self.beta, self.temperature, self.top_p)


def validate_decoding_settings(
    mode: str, alpha: float | None, beta: float | None, temperature: float, top_p: float
) -> None:
    """Raise ValueError naming the option when a setting is outside its domain."""
    if mode not in MODES:
        raise ValueError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == CODIT_MODE:
        if alpha is None or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"--alpha must lie in [0, 1], got {alpha}")
        if beta is None or not (beta >= 0.0 and math.isfinite(beta)):
            raise ValueError(f"--beta must be a finite number >= 0, got {beta}")
    if not (temperature > 0.0 and math.isfinite(temperature)):
        raise ValueError(f"--temperature must be > 0, got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"--top-p must lie in (0, 1], got {top_p}")


# KV caches the engine keeps: grown per step, or pre-allocated (for torch.compile).
CACHE_KINDS = ("dynamic", "static")
# Planned batches per continuous-batching window, the checkpoint unit of a shard
# (codit.generation.engine): about 64 mean responses per row, so a window's drain (one long
# response) costs a few percent.
WINDOW_BATCHES = 64
# Where the two models go: both on --device; post there and pre on the next GPU; or the
# visible GPUs halved between them, each model spread over its half by accelerate.
PLACEMENTS = ("same", "split", "auto")


# `--chat-template-kwargs` text: a JSON object (also read by `codit explain`).
parse_chat_template_kwargs = json_object("--chat-template-kwargs")


@dataclass(frozen=True, kw_only=True)
class SamplingSettings(Settings):
    """How every response is sampled: the config's generation temperature, top_p and
    max_new_tokens (the same for every arm)."""

    temperature: float = option(1.0)
    top_p: float = option(1.0)
    max_new_tokens: int = option(1024)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("--max-new-tokens must be >= 1")


# Engines: ours (transformers, codit.generation.engine), or vLLM in its own environment
# (codit.generation.vllm_backend).
HF_BACKEND = "hf"
VLLM_BACKEND = "vllm"
BACKENDS = (HF_BACKEND, VLLM_BACKEND)
# Where the Makefile (`make vllm`) and envs/vllm.yaml put vLLM's environment.
VLLM_PYTHON = "envs/.vllm/bin/python"


@dataclass(frozen=True, kw_only=True)
class VllmSettings(Settings):
    """Where vLLM runs and how much of the machine it takes (`--backend vllm` only); the
    config's `vllm` section, keys without the `vllm_` prefix."""

    vllm_python: str = option(
        VLLM_PYTHON, "python of vLLM's environment (with vllm_engine/)", elide_default=True
    )
    vllm_tensor_parallel_size: int = option(
        1, "GPUs the model (a pair: both stacks) is split over", elide_default=True
    )
    vllm_gpu_memory_utilization: float = option(
        0.9,
        "share of each GPU's memory vLLM may take (weights, activations, KV cache)",
        elide_default=True,
    )
    vllm_cpu_kvcache_gib: float = option(
        1.0, "on CPU: GiB of memory for the KV cache", elide_default=True
    )

    def __post_init__(self) -> None:
        if self.vllm_tensor_parallel_size < 1:
            raise ValueError("--vllm-tensor-parallel-size must be >= 1")
        if not 0.0 < self.vllm_gpu_memory_utilization <= 1.0:
            raise ValueError("--vllm-gpu-memory-utilization must lie in (0, 1]")
        if not self.vllm_cpu_kvcache_gib > 0:
            raise ValueError("--vllm-cpu-kvcache-gib must be > 0")

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> VllmSettings:
        """The settings of the config's `vllm` section (`python`, `gpu_memory_utilization`...)."""
        return cls.from_config({f"vllm_{key}": value for key, value in section.items()})


@dataclass(frozen=True, kw_only=True)
class EngineSettings(Settings):
    """How the engine batches and computes: the same tokens, different speed and memory (dtype
    and batch composition can change floating-point results, so they are recorded)."""

    backend: str = option(
        HF_BACKEND,
        "hf: the workflow's own engine (transformers); vllm: vLLM, in its own environment",
        choices=BACKENDS,
        elide_default=True,
    )
    batch_size: int = option(16, "sequences decoded together (vLLM: its max_num_seqs)")
    dtype: str = option("auto", DTYPE_HELP, choices=("auto", *DTYPE_NAMES))
    device: str = option("auto", choices=DEVICES)
    cache: str = option(
        "dynamic",
        "static pre-allocates both KV caches (use with --compile on GPU)",
        choices=CACHE_KINDS,
    )
    compile: bool = option(False, "torch.compile both forwards (needs --cache static)")
    continuous: bool = option(
        True,
        "--no-continuous: fixed batches (finished rows are dropped, not refilled with waiting "
        "prompts); static caches always run fixed batches",
    )
    window_batches: int | None = option(
        None,
        f"continuous batching: planned batches scheduled, and checkpointed, together (default "
        f"{WINDOW_BATCHES}); more fill batches better at a window's end, a kill loses more",
    )

    vllm: VllmSettings = group(VllmSettings, "vLLM (--backend vllm)")

    def record(self) -> dict[str, Any]:
        """The settings (provenance); vLLM's only when it runs."""
        record = super().record()
        if self.backend != VLLM_BACKEND:
            for key in self.vllm.record():
                del record[key]
        return record

    @property
    def batches_per_window(self) -> int:
        """Planned batches per continuous-batching window: the flag, else WINDOW_BATCHES."""
        return self.window_batches or WINDOW_BATCHES

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("--batch-size must be >= 1")
        if self.window_batches is not None and self.window_batches < 1:
            raise ValueError("--window-batches must be >= 1")
        if self.compile and self.cache != "static":
            raise ValueError("--compile needs --cache static (dynamic caches recompile every step)")
        if self.backend == VLLM_BACKEND and (self.compile or self.cache != "dynamic"):
            raise ValueError("--compile and --cache static are our engine's; vLLM has its own")


@dataclass(frozen=True, kw_only=True)
class GenerationRun(Settings):
    """One `codit generate` run: one shard of one arm of one teacher pair."""

    pair: str = option(help="name of the teacher pair, stored in every record")
    mode: str = option(CODIT_MODE, choices=MODES)
    post: str = option(help="post-trained (instruct) model: local dir or Hub id")
    pre: str | None = option(None, "pre-trained (base) model; required with --mode codit")
    trust_remote_code: bool = option(False, "run the post model's repository code")
    trust_remote_code_pre: bool = option(False, "run the pre model's repository code")
    placement: str = option(
        "same",
        "same: both models on --device; split: pre model on the next GPU; auto: the visible "
        "GPUs are halved between the two models, each spread over its half (accelerate "
        "device_map)",
        choices=PLACEMENTS,
    )
    instructions: str = option(help="instruction JSONL")
    id_field: str = option("id")
    instruction_field: str = option("instruction")
    limit: int | None = option(None, "use only the first N instructions (applied before sharding)")
    num_shards: int = option(1)
    shard_index: int = option(0)
    alpha: float = option(0.01, "plausibility threshold")
    beta: float = option(1.0, "weight of the pre model")
    greedy: bool = option(False, "argmax instead of sampling")
    sampling: SamplingSettings = group(SamplingSettings, "sampling")
    seed: int = option(0, "global seed of per-prompt seeds")
    sample_index: int = option(
        0,
        "direct mode: draw sample j of each instruction (0 = the direct arm; Best-of-N's further "
        "candidates are 1..N-1, each with its own per-prompt seed)",
    )
    chat_template_kwargs: dict[str, Any] | None = option(
        None,
        "JSON object, e.g. '{\"enable_thinking\": false}'",
        parse=parse_chat_template_kwargs,
        render=json_text,
    )
    engine: EngineSettings = group(
        EngineSettings, "engine (same tokens, different speed and memory)"
    )
    skip_pre: bool = option(
        True,
        "--no-skip-pre: run the pre model every step even when no row needs it (lock-step, for "
        "checks)",
    )
    checkpoint: str | None = option(
        None,
        "append-only checkpoint of finished batches (default: OUT.checkpoint); a rerun resumes "
        "from it and deletes it when the shard is complete",
    )
    threads: int | None = option(None, THREADS_HELP)
    out: str = option(help="output JSONL (prompt/completion records)")
    card: str = option(help="output dataset card JSON")

    def __post_init__(self) -> None:
        """Check every option before any model is loaded; errors name the option."""
        if self.mode == CODIT_MODE and not self.pre:
            raise ValueError("--pre is required with --mode codit")
        if self.sample_index < 0 or (self.sample_index and self.mode == CODIT_MODE):
            raise ValueError("--sample-index must be >= 0, and 0 with --mode codit")
        if self.limit is not None and self.limit < 0:
            raise ValueError("--limit must be >= 0")
        if self.threads is not None and self.threads < 1:
            raise ValueError("--threads must be >= 1")
        shard_bounds(0, self.num_shards, self.shard_index)
        self.decoding()  # its own checks (alpha, beta, temperature, top_p)

    def decoding(self) -> DecodingSettings:
        """The decoding rule; alpha and beta apply to CoDIT only."""
        is_codit = self.mode == CODIT_MODE
        return DecodingSettings(
            mode=self.mode,
            alpha=self.alpha if is_codit else None,
            beta=self.beta if is_codit else None,
            temperature=self.sampling.temperature,
            top_p=self.sampling.top_p,
            greedy=self.greedy,
        )

    def recorded(self) -> dict[str, Any]:
        """What the card records and the checkpoint is keyed on: every setting that can change
        the shard's records (not where they go, the threads, the lock-step check, or which
        shard: that is the card's `shard` block)."""
        decoding = self.decoding()
        recorded = self.record()
        for key in (
            "out",
            "card",
            "checkpoint",
            "threads",
            "skip_pre",
            "num_shards",
            "shard_index",
            "vllm_python",  # where vLLM is installed (only with --backend vllm)
        ):
            recorded.pop(key, None)
        recorded["sample"] = recorded.pop("sample_index")
        recorded.update(
            pre=self.pre if decoding.mode == CODIT_MODE else None,
            alpha=decoding.alpha,
            beta=decoding.beta,
            chat_template_kwargs=self.chat_template_kwargs or {},
        )
        return recorded
