"""`codit bench`: generation speed and peak memory of the engine against `model.generate`.

For each model pair, the same prompts, batch size and sampling settings (temperature 1, top_p 1,
per-prompt seeds) go through seven methods:

    hf_generate_direct     post_model.generate (sampling, explicit GenerationConfig)
    engine_direct          the engine (codit.generation.engine), direct mode, continuous batching
    engine_direct_fixed    the same with fixed batches (finished rows dropped, not refilled)
    engine_codit_lockstep  the engine, CoDIT, continuous, pre model run at every step
    engine_codit           the engine, CoDIT, every optimisation (continuous, skipping)
    engine_codit_fixed     the same with fixed batches (the engine before continuous batching)
    naive_codit            CoDIT that re-encodes the whole prefix with both models every step
    vllm_direct            vLLM (`--backend vllm`, its own environment), the post model alone
    vllm_codit             vLLM, the teacher pair as one model whose logits are CoDIT's scores

Pairs: `tinyworld` (the tiny world's llama-instruct / llama-base), `paper-mix` (the same models
and prompts with the response lengths forced to a paper-like mix, engine methods only: see
`paper_length_mix`) and `random-0.5b` (two randomly initialised models with the shapes of
Qwen2.5-0.5B and the tiny world's vocabulary, so the same prompts work; `random-8b`, for a GPU,
has Qwen3-8B's shapes and vocabulary size, its prompts still the tiny world's). Every (pair, method)
runs in a fresh process: it loads or builds its models, runs one untimed warm-up batch, then
times generation of all prompts (models already loaded). Tokens are generated tokens up to the
first stop id (excluded); tokens/s = tokens / wall time. Engine methods also report occupancy
(mean share of the batch's rows still decoding, over steps) and padding waste (share of the
cache cells read at decoding steps that are masked). Peak memory is the growth over the
generation (warm-up included) of the process's RSS on CPU, sampled every few ms, or of torch's
allocated CUDA memory on a GPU. vLLM's methods run in vLLM's own process: their engine starts
before the warm-up (its start is load time, not generation time), its peak memory is that
process's peak RSS on CPU and not measured on a GPU (vLLM takes --vllm-gpu-memory-utilization of
it), and random pairs are saved to a temporary folder for it to load.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from codit.data.instructions import load_instructions
from codit.generation.decoding import check_shared_vocabulary, next_token_scores, select_next_tokens
from codit.generation.engine import (
    FINISH_LENGTH,
    FINISH_STOP,
    ContrastiveGenerator,
    GenerationResult,
    generate_in_batches,
    left_pad,
    model_input_device,
    plan_batches,
    result_from_tokens,
    run_planned_batches,
)
from codit.generation.generate import prompt_seed, render_prompts, stop_token_ids
from codit.generation.loading import load_model, load_tokenizer
from codit.generation.settings import (
    CODIT_MODE,
    VLLM_PYTHON,
    WINDOW_BATCHES,
    DecodingSettings,
    VllmSettings,
)
from codit.workflow.provenance import package_versions
from codit.workflow.runtime import (
    add_runtime_arguments,
    resolve_device,
    resolve_dtype,
    set_threads,
    torch_dtype,
)

HF_GENERATE = "hf_generate_direct"
ENGINE_DIRECT = "engine_direct"
ENGINE_DIRECT_FIXED = "engine_direct_fixed"
ENGINE_LOCKSTEP = "engine_codit_lockstep"
ENGINE_CODIT = "engine_codit"
ENGINE_CODIT_FIXED = "engine_codit_fixed"
NAIVE_CODIT = "naive_codit"
VLLM_DIRECT = "vllm_direct"
VLLM_CODIT = "vllm_codit"
VLLM_METHODS = (VLLM_DIRECT, VLLM_CODIT)
METHODS = (
    HF_GENERATE, ENGINE_DIRECT, ENGINE_DIRECT_FIXED, ENGINE_LOCKSTEP, ENGINE_CODIT,
    ENGINE_CODIT_FIXED, NAIVE_CODIT, VLLM_DIRECT, VLLM_CODIT,
)  # fmt: skip
ENGINE_METHODS = (
    ENGINE_DIRECT,
    ENGINE_DIRECT_FIXED,
    ENGINE_LOCKSTEP,
    ENGINE_CODIT,
    ENGINE_CODIT_FIXED,
)
CODIT_METHODS = (ENGINE_LOCKSTEP, ENGINE_CODIT, ENGINE_CODIT_FIXED, NAIVE_CODIT, VLLM_CODIT)
FIXED_METHODS = (ENGINE_DIRECT_FIXED, ENGINE_CODIT_FIXED)

TINYWORLD_PAIR = "tinyworld"
PAPER_MIX_PAIR = "paper-mix"
RANDOM_PAIR = "random-0.5b"
RANDOM_8B_PAIR = "random-8b"
PAIRS = (TINYWORLD_PAIR, PAPER_MIX_PAIR, RANDOM_PAIR, RANDOM_8B_PAIR)
# What runs without --pairs and --methods: no GPU-sized pair, nothing that needs vLLM's
# environment.
DEFAULT_PAIRS = (TINYWORLD_PAIR, PAPER_MIX_PAIR, RANDOM_PAIR)
DEFAULT_METHODS = tuple(method for method in METHODS if method not in VLLM_METHODS)
TINYWORLD_MODELS = (TINYWORLD_PAIR, PAPER_MIX_PAIR)  # pairs that load the tiny world's models

# The paper-like length mix: mean response over the token limit as config/cost.yaml's
# workload.response_tokens (450) over config/paper.yaml's generation.max_new_tokens (4096), of
# which an assumed 2 % of responses run to the limit (finish_reason "length").
PAPER_MEAN_SHARE = 450 / 4096
RUNAWAY_SHARE = 0.02

# Qwen2.5-0.5B's shapes (the vocabulary is the tiny world's, so its prompts work unchanged).
QWEN_0_5B_SHAPE: dict[str, Any] = {
    "hidden_size": 896,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "intermediate_size": 4864,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
    "use_sliding_window": False,
}
# Qwen3-8B's shapes on Qwen2's architecture (no q/k norm; close in cost) and vocabulary size.
QWEN3_8B_SHAPE: dict[str, Any] = {
    "hidden_size": 4096,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 12288,
    "tie_word_embeddings": False,
    "max_position_embeddings": 40960,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
    "use_sliding_window": False,
    "vocab_size": 151936,
}
RANDOM_SHAPES = {RANDOM_PAIR: QWEN_0_5B_SHAPE, RANDOM_8B_PAIR: QWEN3_8B_SHAPE}
RANDOM_POST_SEED, RANDOM_PRE_SEED = 1, 2
MEMORY_SAMPLE_SECONDS = 0.002
MIB = 1 << 20
BUILD_HINT = (
    "build it with `snakemake --cores all resources/tinyworld/models/llama-instruct "
    "resources/tinyworld/models/llama-base` or `codit tinyworld all --out resources/tinyworld`"
)


# --------------------------------------------------------------------------------------------
# The naive reference: no KV cache, the whole prefix re-encoded by both models at every step


def _last_logprobs(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab_size: int
) -> torch.Tensor:
    """float32 log-probabilities of the token after each left-padded row, real vocabulary only."""
    device = model_input_device(model)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    position_ids = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)
    output = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
    )
    return torch.log_softmax(output.logits[:, -1, :vocab_size].float(), dim=-1)


@torch.inference_mode()
def naive_contrastive_generate(
    post: Any,
    pre: Any | None,
    prompts: Sequence[Sequence[int]],
    settings: DecodingSettings,
    vocab_size: int,
    stop_ids: Sequence[int],
    pad_id: int,
    max_new_tokens: int,
    seeds: Sequence[int] | None = None,
) -> list[GenerationResult]:
    """CoDIT (or direct, with `pre` None) for one batch, re-encoding prompt + generated tokens
    with both models at every step: no KV cache, no skipping.

    Each step left-pads the unfinished rows (positions = (cumsum(mask) - 1).clamp(0)), scores
    them with codit.generation.decoding and draws one token per row from that row's generator
    (seeded with its prompt seed), so it follows the same rule as the engine with none of its
    machinery.
    """
    generators = None
    if not settings.greedy:
        if seeds is None or len(seeds) != len(prompts):
            raise ValueError("sampling needs one seed per prompt")
        generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    output_device = model_input_device(post)
    sequences = [list(prompt) for prompt in prompts]
    generated: list[list[int]] = [[] for _ in prompts]
    reasons = [FINISH_LENGTH] * len(prompts)
    active = list(range(len(prompts)))
    for _ in range(max_new_tokens):
        if not active:
            break
        input_ids, attention_mask = left_pad([sequences[row] for row in active], pad_id, "cpu")
        logprobs_post = _last_logprobs(post, input_ids, attention_mask, vocab_size)
        logprobs_pre = None
        if settings.mode == CODIT_MODE:
            logprobs_pre = _last_logprobs(pre, input_ids, attention_mask, vocab_size)
            logprobs_pre = logprobs_pre.to(output_device)
        scores = next_token_scores(logprobs_post, logprobs_pre, settings)
        row_generators = None if generators is None else [generators[row] for row in active]
        next_ids = select_next_tokens(scores, settings, row_generators).tolist()
        still_active = []
        for row, token_id in zip(active, next_ids, strict=True):
            if token_id in stop_ids:
                reasons[row] = FINISH_STOP
                continue
            generated[row].append(token_id)
            sequences[row].append(token_id)
            still_active.append(row)
        active = still_active
    return [
        GenerationResult(tokens, reason) for tokens, reason in zip(generated, reasons, strict=True)
    ]


# --------------------------------------------------------------------------------------------
# `model.generate`, the reference for speed


def hf_generate(
    model: Any,
    prompts: Sequence[Sequence[int]],
    stop_ids: Sequence[int],
    pad_id: int,
    max_new_tokens: int,
    seed: int,
) -> list[list[int]]:
    """One left-padded batch through `model.generate` with sampling at temperature 1, top_p 1,
    no top-k; returns each row's tokens before its first stop id.

    transformers fills every unset field of a passed GenerationConfig from the model's own
    generation_config (repetition penalty, top-k, ...), so the model's is blanked for the call.
    `generate` samples from torch's global generator, seeded here once per batch.
    """
    from transformers import GenerationConfig

    input_ids, attention_mask = left_pad(prompts, pad_id, model_input_device(model))
    config = GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        max_new_tokens=max_new_tokens,
        eos_token_id=list(stop_ids),
        pad_token_id=pad_id,
    )
    torch.manual_seed(seed)
    saved, model.generation_config = model.generation_config, GenerationConfig()
    try:
        output = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, generation_config=config
        )
    finally:
        model.generation_config = saved
    new_tokens = output[:, input_ids.shape[1] :].tolist()
    return [result_from_tokens(row, stop_ids).token_ids for row in new_tokens]


# --------------------------------------------------------------------------------------------
# The paper-like length mix


def paper_length_mix(count: int, max_new_tokens: int, seed: int) -> list[int]:
    """Forced response lengths drawn like the paper's: RUNAWAY_SHARE of them run to the limit,
    the rest are geometric (1 + floor of an exponential) with the mean that makes the overall
    mean about PAPER_MEAN_SHARE x the limit, cut at the limit. Most are short, a few long.

    The bench forces them per prompt (`token_limits`, no stop id), so occupancy depends on the
    schedule and the mix, not on what a random model happens to say.
    """
    draw = random.Random(seed)
    rest_mean = (PAPER_MEAN_SHARE - RUNAWAY_SHARE) / (1 - RUNAWAY_SHARE) * max_new_tokens
    lengths = []
    for _ in range(count):
        runaway = draw.random() < RUNAWAY_SHARE
        length = max_new_tokens if runaway else 1 + int(draw.expovariate(1 / rest_mean))
        lengths.append(min(length, max_new_tokens))
    return lengths


# --------------------------------------------------------------------------------------------
# The random 0.5B-shaped pair


def random_pair_config(
    vocab_size: int,
    bos_id: int | None,
    eos_id: int | None,
    pad_id: int | None,
    shape: dict[str, Any] = QWEN_0_5B_SHAPE,
    **overrides: Any,
) -> Any:
    """A Qwen2Config with `shape` (Qwen2.5-0.5B's by default), then `overrides`; the vocabulary
    is `vocab_size` unless the shape names one (a larger embedding: the tokenizer's ids fit)."""
    from transformers import Qwen2Config

    shape = {"vocab_size": vocab_size, **shape, **overrides}
    return Qwen2Config(bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id, **shape)


def build_random_model(config: Any, seed: int, device: torch.device, dtype: torch.dtype) -> Any:
    """A randomly initialised Qwen2ForCausalLM in eval mode; the same seed gives the same weights
    in every process (built on CPU, then moved)."""
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    return model.to(device=device, dtype=dtype).eval()


# --------------------------------------------------------------------------------------------
# One measurement: a pair, a method, a fresh process


@dataclass
class Workload:
    """Everything one measurement generates from: models, prompts, seeds and stop/pad ids."""

    post: Any
    pre: Any | None
    prompts: list[list[int]]
    seeds: list[int]
    vocab_size: int
    stop_ids: list[int]
    pad_id: int
    token_limits: list[int] | None = None  # forced response lengths (the paper-like mix)


def _prompts_and_seeds(spec: dict[str, Any], tokenizer: Any) -> tuple[list[list[int]], list[int]]:
    """The first num_prompts instructions; the paper-like mix cycles through the whole pool
    (each pass with seeds of its own) until it has num_prompts."""
    if spec["pair"] != PAPER_MIX_PAIR:
        instructions = load_instructions(spec["instructions"], limit=spec["num_prompts"])
        prompts = render_prompts(tokenizer, [item.text for item in instructions])
        return prompts, [prompt_seed(spec["seed"], item.id) for item in instructions]
    pool = load_instructions(spec["instructions"])
    rendered = render_prompts(tokenizer, [item.text for item in pool])
    chosen = range(spec["num_prompts"])
    prompts = [rendered[n % len(pool)] for n in chosen]
    seeds = [
        prompt_seed(spec["seed"], f"{pool[n % len(pool)].id}:{n // len(pool)}") for n in chosen
    ]
    return prompts, seeds


def _load_workload(spec: dict[str, Any], need_pre: bool) -> Workload:
    """Load (tiny world) or build (random pair) the models of spec["pair"], and the prompts."""
    device, dtype = torch.device(spec["device"]), torch_dtype(spec["dtype"])
    tokenizer = load_tokenizer(spec["post"])
    vocab_size = len(tokenizer)
    prompts, seeds = _prompts_and_seeds(spec, tokenizer)
    if spec["pair"] in TINYWORLD_MODELS:
        if need_pre:
            pre_tokenizer = load_tokenizer(spec["pre"])
            vocab_size = check_shared_vocabulary(
                tokenizer, pre_tokenizer, spec["post"], spec["pre"]
            )
        post = load_model(spec["post"], device, dtype)
        pre = load_model(spec["pre"], device, dtype) if need_pre else None
    else:
        config = random_pair_config(
            vocab_size,
            tokenizer.bos_token_id,
            tokenizer.eos_token_id,
            tokenizer.pad_token_id,
            RANDOM_SHAPES[spec["pair"]],
            **spec["random_overrides"],
        )
        post = build_random_model(config, RANDOM_POST_SEED, device, dtype)
        pre = build_random_model(config, RANDOM_PRE_SEED, device, dtype) if need_pre else None
    stop_ids = stop_token_ids(post, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    if spec["pair"] == PAPER_MIX_PAIR:
        limits = paper_length_mix(len(prompts), spec["max_new_tokens"], spec["seed"])
        return Workload(post, pre, prompts, seeds, vocab_size, [], pad_id, limits)
    return Workload(post, pre, prompts, seeds, vocab_size, stop_ids, pad_id)


@dataclass
class Method:
    """A way to generate: all prompts at once (planned into batches, with their forced lengths
    or None), plus optional engine stats."""

    generate: Callable[[list[list[int]], list[int], int, list[int] | None], list[list[int]]]
    stats: Callable[[], dict[str, Any]] | None = None
    reset: Callable[[], None] | None = None


def codit_settings(alpha: float) -> DecodingSettings:
    """CoDIT sampling at temperature 1, top_p 1, beta 1."""
    return DecodingSettings(alpha=alpha, beta=1.0, temperature=1.0, top_p=1.0)


def direct_settings() -> DecodingSettings:
    """Direct sampling from the post model at temperature 1, top_p 1."""
    return DecodingSettings(mode="direct", alpha=None, beta=None, temperature=1.0, top_p=1.0)


def make_method(
    name: str,
    work: Workload,
    alpha: float,
    max_new_tokens: int,
    window_batches: int = WINDOW_BATCHES,
) -> Method:
    """The generate function of method `name` on `work`, producing `max_new_tokens` at most."""
    w = work
    if name == HF_GENERATE:

        def hf_batch(prompts: list[list[int]], seeds: list[int]) -> list[list[int]]:
            return hf_generate(w.post, prompts, w.stop_ids, w.pad_id, max_new_tokens, seeds[0])

        return Method(lambda p, s, b, _: run_planned_batches(hf_batch, p, s, b))
    if name == NAIVE_CODIT:
        settings = codit_settings(alpha)

        def naive_batch(prompts: list[list[int]], seeds: list[int]) -> list[list[int]]:
            results = naive_contrastive_generate(
                w.post, w.pre, prompts, settings, w.vocab_size, w.stop_ids, w.pad_id,
                max_new_tokens, seeds,
            )  # fmt: skip
            return [result.token_ids for result in results]

        return Method(lambda p, s, b, _: run_planned_batches(naive_batch, p, s, b))
    if name not in ENGINE_METHODS:
        raise ValueError(f"unknown bench method {name!r}; choose from {', '.join(METHODS)}")
    is_direct = name in (ENGINE_DIRECT, ENGINE_DIRECT_FIXED)
    generator = ContrastiveGenerator(
        w.post,
        None if is_direct else w.pre,
        direct_settings() if is_direct else codit_settings(alpha),
        w.vocab_size,
        w.stop_ids,
        w.pad_id,
        max_new_tokens,
        skip_pre_forward=name != ENGINE_LOCKSTEP,
        compact_finished=True,
        continuous=name not in FIXED_METHODS,
    )

    def engine_all(
        prompts: list[list[int]], seeds: list[int], batch: int, limits: list[int] | None
    ) -> list[list[int]]:
        results = generate_in_batches(generator, prompts, seeds, batch, window_batches, limits)
        return [result.token_ids for result in results]

    return Method(engine_all, lambda: generator.stats.as_dict(), generator.reset_stats)


class PeakMemory:
    """Peak memory growth (MiB) over a `with` block: CUDA allocated bytes on a GPU, else the
    process's RSS sampled every MEMORY_SAMPLE_SECONDS by a background thread (peak minus the
    RSS on entry). `peak_mib` is None where neither can be read."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mib: float | None = None
        self._stop = threading.Event()
        self._peak = 0
        self._thread: threading.Thread | None = None

    @staticmethod
    def rss_bytes() -> int | None:
        """Resident set size of this process, from /proc/self/statm (None where absent)."""
        try:
            with open("/proc/self/statm") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    def _sample(self) -> None:
        while not self._stop.wait(MEMORY_SAMPLE_SECONDS):
            self._peak = max(self._peak, self.rss_bytes() or 0)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._baseline = torch.cuda.memory_allocated(self.device)
            return self
        self._baseline = self.rss_bytes()
        if self._baseline is not None:
            self._peak = self._baseline
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.peak_mib = (peak - self._baseline) / MIB
            return
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, self.rss_bytes() or 0)
            self.peak_mib = (self._peak - self._baseline) / MIB


def _fraction(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """One (pair, method) measurement; meant to run in a fresh process (see `run_isolated`).

    Loads the workload, runs the first planned batch cut to spec["warmup_tokens"] untimed, then
    times generation of every prompt spec["repeats"] times and keeps the median (runs of about
    a second vary by 10 % or more on a shared CPU). Peak memory covers warm-up and timed runs.
    """
    set_threads(spec["threads"])
    method_name = spec["method"]
    if method_name in VLLM_METHODS:
        return measure_vllm(spec)
    started = time.perf_counter()
    work = _load_workload(spec, need_pre=method_name in CODIT_METHODS)
    load_seconds = time.perf_counter() - started
    device = model_input_device(work.post)
    window = spec["window_batches"]
    warmup = make_method(method_name, work, spec["alpha"], spec["warmup_tokens"], window)
    method = make_method(method_name, work, spec["alpha"], spec["max_new_tokens"], window)
    first = plan_batches([len(prompt) for prompt in work.prompts], spec["batch_size"])[0]
    with PeakMemory(device) as memory:
        warm_prompts = [work.prompts[i] for i in first]
        warm_seeds = [work.seeds[i] for i in first]
        warmup.generate(warm_prompts, warm_seeds, spec["batch_size"], None)
        timings = []
        for _ in range(spec["repeats"]):
            if method.reset is not None:
                method.reset()
            _synchronize(device)
            began = time.perf_counter()
            outputs = method.generate(
                work.prompts, work.seeds, spec["batch_size"], work.token_limits
            )
            _synchronize(device)
            timings.append(time.perf_counter() - began)
    seconds = statistics.median(timings)
    tokens = sum(len(output) for output in outputs)
    stats = method.stats() if method.stats is not None else None
    is_codit = method_name in CODIT_METHODS and stats is not None
    return {
        "pair": spec["pair"],
        "method": method_name,
        "prompts": len(work.prompts),
        "tokens": tokens,
        "seconds": seconds,
        "seconds_per_repeat": timings,
        "tokens_per_second": tokens / seconds if seconds > 0 else None,
        "ratio_vs_hf_generate": None,  # filled in once every method of the pair has run
        "peak_mem_mib": memory.peak_mib,
        "pre_skipped_fraction": (
            _fraction(stats["pre_skipped_steps"], stats["steps"]) if is_codit else None
        ),
        "single_head_fraction": (
            _fraction(stats["single_head_row_tokens"], stats["row_tokens"]) if is_codit else None
        ),
        "occupancy": stats["occupancy"] if stats is not None else None,
        "padding_waste": stats["padding_waste"] if stats is not None else None,
        "engine_stats": stats,
        "load_seconds": load_seconds,
    }


def _model_folders(spec: dict[str, Any], folder: Path) -> tuple[str, str]:
    """(post, pre) folders vLLM loads: the tiny world's, or the random pair saved in `folder`."""
    if spec["pair"] in TINYWORLD_MODELS:
        return spec["post"], spec["pre"]
    work = _load_workload(spec, need_pre=True)
    paths = []
    for name, model in (("post", work.post), ("pre", work.pre)):
        model.save_pretrained(folder / name)
        paths.append(str(folder / name))
    return paths[0], paths[1]


def _peak_rss_mib(pid: int) -> float | None:
    """A live process's peak resident memory (VmHWM), MiB; None where /proc cannot tell."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure_vllm(spec: dict[str, Any]) -> dict[str, Any]:
    """One (pair, vLLM method) measurement: `measure`'s, with the engine in vLLM's process."""
    import tempfile

    from codit.generation.loading import load_model_metadata
    from codit.generation.vllm_backend import (
        LazyVllmEngine,
        VllmEngine,
        VllmGenerator,
        write_pair_folder,
    )

    method_name, is_codit = spec["method"], spec["method"] == VLLM_CODIT
    settings = VllmSettings(vllm_python=spec["vllm_python"])
    tokenizer = load_tokenizer(spec["post"])
    prompts, seeds = _prompts_and_seeds(spec, tokenizer)
    vocab_size = len(tokenizer)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="codit-bench-") as scratch:
        post, pre = _model_folders(spec, Path(scratch))
        metadata = load_model_metadata(post)
        stop_ids = stop_token_ids(metadata, tokenizer)
        model: str | Path = post
        if is_codit:
            model = write_pair_folder(
                spec["pair"], post, pre, spec["alpha"], 1.0, vocab_size, Path(scratch) / "pair"
            )
        decoding = codit_settings(spec["alpha"]) if is_codit else direct_settings()
        longest = max(len(prompt) for prompt in prompts)
        with VllmEngine(
            model, settings, device=spec["device"], dtype=spec["dtype"],
            max_num_seqs=spec["batch_size"], max_model_len=longest + spec["max_new_tokens"],
            name=f"{spec['pair']} {method_name}",
        ) as engine:  # fmt: skip
            load_seconds = time.perf_counter() - started

            def generator(max_new_tokens: int) -> VllmGenerator:
                return VllmGenerator(
                    LazyVllmEngine(lambda: engine), decoding, stop_ids, max_new_tokens,
                    vocab_size, int(metadata.config.vocab_size), {},
                )  # fmt: skip

            first = plan_batches([len(prompt) for prompt in prompts], spec["batch_size"])[0]
            generator(spec["warmup_tokens"]).generate_window(
                [prompts[i] for i in first], [seeds[i] for i in first]
            )
            timings = []
            for _ in range(spec["repeats"]):
                timed = generator(spec["max_new_tokens"])
                began = time.perf_counter()
                outputs = timed.generate_window(prompts, seeds)
                timings.append(time.perf_counter() - began)
            peak = _peak_rss_mib(engine.process.pid) if spec["device"] == "cpu" else None
    seconds = statistics.median(timings)
    tokens = sum(len(output.token_ids) for output in outputs)
    return {
        "pair": spec["pair"], "method": method_name, "prompts": len(prompts), "tokens": tokens,
        "seconds": seconds, "seconds_per_repeat": timings,
        "tokens_per_second": tokens / seconds if seconds > 0 else None,
        "ratio_vs_hf_generate": None, "peak_mem_mib": peak, "pre_skipped_fraction": None,
        "single_head_fraction": None, "occupancy": None, "padding_waste": None,
        "engine_stats": None, "load_seconds": load_seconds,
    }  # fmt: skip


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_isolated(spec: dict[str, Any]) -> dict[str, Any]:
    """`measure(spec)` in a fresh spawned process, so peak memory and warm state are its own."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure, spec).result()


# --------------------------------------------------------------------------------------------
# Summary, table and CLI


def add_ratios(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Fill each result's ratio_vs_hf_generate (tokens/s over hf_generate_direct's, same pair);
    return per pair: ratio_codit_vs_direct, ratio_codit_vs_engine_direct, skip_fraction, the
    continuous engine's tokens/s over the fixed-batch one's (CoDIT and direct) and each engine
    method's occupancy and padding waste."""
    by_pair: dict[str, dict[str, dict[str, Any]]] = {}
    for result in results:
        by_pair.setdefault(result["pair"], {})[result["method"]] = result

    def ratio(methods: dict[str, dict[str, Any]], top: str, bottom: str) -> float | None:
        if top not in methods or bottom not in methods:
            return None
        numerator = methods[top]["tokens_per_second"]
        denominator = methods[bottom]["tokens_per_second"]
        return numerator / denominator if numerator is not None and denominator else None

    summaries = {}
    for pair, methods in by_pair.items():
        for name, result in methods.items():
            result["ratio_vs_hf_generate"] = ratio(methods, name, HF_GENERATE)
        summaries[pair] = {
            "ratio_codit_vs_direct": ratio(methods, ENGINE_CODIT, HF_GENERATE),
            "ratio_codit_vs_engine_direct": ratio(methods, ENGINE_CODIT, ENGINE_DIRECT),
            "skip_fraction": methods.get(ENGINE_CODIT, {}).get("pre_skipped_fraction"),
            "ratio_continuous_vs_fixed_codit": ratio(methods, ENGINE_CODIT, ENGINE_CODIT_FIXED),
            "ratio_continuous_vs_fixed_direct": ratio(methods, ENGINE_DIRECT, ENGINE_DIRECT_FIXED),
            "ratio_vllm_codit_vs_direct": ratio(methods, VLLM_CODIT, VLLM_DIRECT),
            "ratio_vllm_vs_engine_codit": ratio(methods, VLLM_CODIT, ENGINE_CODIT),
            "ratio_vllm_vs_engine_direct": ratio(methods, VLLM_DIRECT, ENGINE_DIRECT),
            "occupancy": {
                name: methods[name]["occupancy"] for name in ENGINE_METHODS if name in methods
            },
            "padding_waste": {
                name: methods[name]["padding_waste"] for name in ENGINE_METHODS if name in methods
            },
        }
    return summaries


def batch_occupancy(summaries: dict[str, dict[str, Any]], method: str) -> float | None:
    """`method`'s occupancy on the paper-like mix, else on the tiny world (None if neither ran):
    the figure `codit cost --bench` takes for workload.batch_occupancy."""
    for pair in (PAPER_MIX_PAIR, TINYWORLD_PAIR):
        value = summaries.get(pair, {}).get("occupancy", {}).get(method)
        if value is not None:
            return value
    return None


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(summary: dict[str, Any]) -> str:
    """A readable, aligned table per pair."""
    columns = (
        ("method", "method", 0),
        ("tokens", "tokens", 0),
        ("seconds", "seconds", 2),
        ("tokens/s", "tokens_per_second", 1),
        ("x hf", "ratio_vs_hf_generate", 2),
        ("peak MiB", "peak_mem_mib", 1),
        ("pre skipped", "pre_skipped_fraction", 3),
        ("|V_head|=1", "single_head_fraction", 3),
        ("occupancy", "occupancy", 3),
        ("padding", "padding_waste", 3),
    )
    lines = []
    for pair, pair_settings in summary["settings"]["pairs"].items():
        rows = [r for r in summary["results"] if r["pair"] == pair]
        if not rows:
            continue
        cells = [[_cell(row[key], digits) for _, key, digits in columns] for row in rows]
        widths = [
            max(len(title), *(len(line[i]) for line in cells))
            for i, (title, _, _) in enumerate(columns)
        ]
        mix = " (forced paper-like lengths)" if pair == PAPER_MIX_PAIR else ""
        lines.append(
            f"pair {pair}: {rows[0]['prompts']} prompts, batch {pair_settings['batch_size']}, "
            f"<= {pair_settings['max_new_tokens']} new tokens{mix}, alpha "
            f"{summary['settings']['alpha']}, window {summary['settings']['window_batches']} "
            f"batches, {summary['settings']['device']} {summary['settings']['dtype']}, "
            f"{summary['settings']['threads']} thread(s)"
        )
        titles = [title for title, _, _ in columns]
        for line in [titles, *cells]:
            padded = [line[0].ljust(widths[0])]
            padded += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
            lines.append("  ".join(padded))
        pair_summary = summary["pairs"][pair]
        lines.append(
            f"engine_codit vs engine_direct: {_cell(pair_summary['ratio_codit_vs_engine_direct'])}"
            f"; engine_codit vs hf_generate_direct: {_cell(pair_summary['ratio_codit_vs_direct'])}"
            f"; continuous vs fixed batches: CoDIT "
            f"{_cell(pair_summary['ratio_continuous_vs_fixed_codit'])}, direct "
            f"{_cell(pair_summary['ratio_continuous_vs_fixed_direct'])}"
        )
        if pair_summary["ratio_vllm_codit_vs_direct"] or pair_summary["ratio_vllm_vs_engine_codit"]:
            lines.append(
                f"vLLM vs our engine: CoDIT {_cell(pair_summary['ratio_vllm_vs_engine_codit'])}, "
                f"direct {_cell(pair_summary['ratio_vllm_vs_engine_direct'])}; vllm_codit vs "
                f"vllm_direct: {_cell(pair_summary['ratio_vllm_codit_vs_direct'])}"
            )
        lines.append("")
    lines.append(
        f"batch occupancy (engine_codit, {summary['batch_occupancy_pair']}): continuous "
        f"{_cell(summary['batch_occupancy'], 3)}, fixed batches "
        f"{_cell(summary['batch_occupancy_fixed'], 3)}"
    )
    lines.append(f"wall time {summary['wall_seconds']:.1f} s")
    return "\n".join(lines)


def _split_choices(text: str, choices: Sequence[str], option: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in choices]
    if unknown or not names:
        raise ValueError(f"{option} takes a comma-separated subset of {', '.join(choices)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tinyworld", type=Path, default=Path("resources/tinyworld"), help="tiny-world directory"
    )
    parser.add_argument("--post", help="post model dir (default: TINYWORLD/models/llama-instruct)")
    parser.add_argument("--pre", help="pre model dir (default: TINYWORLD/models/llama-base)")
    parser.add_argument(
        "--instructions", help="instruction JSONL (default: TINYWORLD/instructions/pool.jsonl)"
    )
    parser.add_argument(
        "--pairs", default=",".join(DEFAULT_PAIRS), help=f"comma-separated subset of {PAIRS}"
    )
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated subset of {METHODS} (vllm_*: vLLM's environment, `make vllm`)",
    )
    parser.add_argument("--num-prompts", type=int, default=256, help="tiny-world pair")
    parser.add_argument("--batch-size", type=int, default=16, help="tiny-world pair")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="tiny-world pair")
    parser.add_argument(
        "--mix-num-prompts", type=int, default=4096, help="paper-mix pair (one window at 64)"
    )
    parser.add_argument(
        "--mix-batch-size", type=int, default=64, help="paper-mix pair (config/paper.yaml's)"
    )
    parser.add_argument("--mix-max-new-tokens", type=int, default=128, help="paper-mix pair")
    parser.add_argument("--mix-repeats", type=int, default=1, help="paper-mix pair")
    parser.add_argument(
        "--window-batches",
        type=int,
        default=WINDOW_BATCHES,
        help="planned batches per continuous-batching window (as codit generate's default)",
    )
    parser.add_argument("--large-num-prompts", type=int, default=8, help="random pairs")
    parser.add_argument("--large-batch-size", type=int, default=8, help="random pairs")
    parser.add_argument(
        "--large-max-new-tokens",
        type=int,
        default=16,
        help="random pairs (short: naive_codit re-encodes the whole prefix at every step)",
    )
    parser.add_argument(
        "--warmup-tokens",
        type=int,
        default=8,
        help="new tokens of the untimed warm-up batch (the first planned batch)",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per method, median kept (tiny world)"
    )
    parser.add_argument("--large-repeats", type=int, default=1, help="random pairs")
    parser.add_argument("--alpha", type=float, default=0.01, help="CoDIT plausibility threshold")
    parser.add_argument("--seed", type=int, default=0, help="global seed of per-prompt seeds")
    # JSON object of Qwen2Config fields overriding the 0.5B shapes (tests shrink the pair).
    parser.add_argument("--random-config", default="{}", help=argparse.SUPPRESS)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="measure in this process instead of one fresh process each (peak memory is then "
        "not isolated)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line to stdout")
    parser.add_argument(
        "--vllm-python",
        default=VLLM_PYTHON,
        help=f"python of vLLM's environment, for vllm_* methods (default: {VLLM_PYTHON})",
    )
    add_runtime_arguments(parser)
    parser.set_defaults(threads=1)


def _resolve_paths(args: argparse.Namespace) -> tuple[str, str, str]:
    """post, pre and instruction paths; a missing tiny world is a one-line error."""
    post = Path(args.post or args.tinyworld / "models" / "llama-instruct")
    pre = Path(args.pre or args.tinyworld / "models" / "llama-base")
    instructions = Path(args.instructions or args.tinyworld / "instructions" / "pool.jsonl")
    for path in (post, pre, instructions):
        if not path.exists():
            raise ValueError(f"{path} does not exist: the bench needs the tiny world; {BUILD_HINT}")
    return str(post), str(pre), str(instructions)


# Each pair's flags: --num-prompts ... for the tiny world, --mix-... and --large-... for the others.
PAIR_FLAG_PREFIX = {TINYWORLD_PAIR: "", PAPER_MIX_PAIR: "mix_"}
PAIR_SETTINGS = ("num_prompts", "batch_size", "max_new_tokens", "repeats")


def _pair_settings(args: argparse.Namespace, pair: str) -> dict[str, int]:
    prefix = PAIR_FLAG_PREFIX.get(pair, "large_")
    return {name: getattr(args, prefix + name) for name in PAIR_SETTINGS}


def _validate(args: argparse.Namespace) -> tuple[list[str], list[str], dict[str, Any]]:
    pairs = _split_choices(args.pairs, PAIRS, "--pairs")
    methods = _split_choices(args.methods, METHODS, "--methods")
    for option in (
        "num_prompts", "batch_size", "max_new_tokens", "large_num_prompts",
        "large_batch_size", "large_max_new_tokens", "warmup_tokens", "threads", "repeats",
        "large_repeats", "mix_num_prompts", "mix_batch_size", "mix_max_new_tokens",
        "mix_repeats", "window_batches",
    ):  # fmt: skip
        if getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be >= 1")
    codit_settings(args.alpha)  # a bad alpha fails before any model loads
    try:
        overrides = json.loads(args.random_config)
    except json.JSONDecodeError as error:
        raise ValueError(f"--random-config is not valid JSON ({error.msg})") from None
    if not isinstance(overrides, dict):
        raise ValueError("--random-config must be a JSON object")
    return pairs, methods, overrides


def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    pairs, methods, overrides = _validate(args)
    post, pre, instructions = _resolve_paths(args)
    set_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    settings = {
        "alpha": args.alpha,
        "beta": 1.0,
        "temperature": 1.0,
        "top_p": 1.0,
        "seed": args.seed,
        "warmup_tokens": args.warmup_tokens,
        "window_batches": args.window_batches,
        "paper_mix": {"mean_share": PAPER_MEAN_SHARE, "runaway_share": RUNAWAY_SHARE},
        "device": device,
        "dtype": dtype,
        "threads": args.threads,
        "isolated_processes": not args.in_process,
        "post": post,
        "pre": pre,
        "instructions": instructions,
        "random_pair_shapes": {
            pair: {**shape, **overrides} for pair, shape in RANDOM_SHAPES.items() if pair in pairs
        },
        "vllm_python": args.vllm_python if set(methods) & set(VLLM_METHODS) else None,
        "pairs": {pair: _pair_settings(args, pair) for pair in pairs},
        "methods": methods,
    }
    results = []
    for pair in pairs:
        for method in methods:
            if pair == PAPER_MIX_PAIR and method not in ENGINE_METHODS:
                continue  # only the engine forces response lengths
            spec = {
                **settings["pairs"][pair],
                "pair": pair,
                "method": method,
                "post": post,
                "pre": pre,
                "instructions": instructions,
                "seed": args.seed,
                "alpha": args.alpha,
                "warmup_tokens": args.warmup_tokens,
                "window_batches": args.window_batches,
                "threads": args.threads,
                "device": device,
                "dtype": dtype,
                "random_overrides": overrides,
                "vllm_python": args.vllm_python,
            }
            print(f"codit bench: {pair} / {method} ...", file=sys.stderr, flush=True)
            result = measure(spec) if args.in_process else run_isolated(spec)
            print(
                f"codit bench: {pair} / {method}: {result['tokens']} tokens in "
                f"{result['seconds']:.2f} s",
                file=sys.stderr,
                flush=True,
            )
            results.append(result)
    pair_summaries = add_ratios(results)
    # The ratios `codit cost --bench` reads: the tiny world's, else the first pair benched (the
    # GPU script's random-8b).
    headline_pair = next(
        (pair for pair in (TINYWORLD_PAIR, *pair_summaries) if pair in pair_summaries), None
    )
    headline = pair_summaries.get(headline_pair, {}) if headline_pair else {}
    summary = {
        "headline_pair": headline_pair,
        "ratio_codit_vs_direct": headline.get("ratio_codit_vs_direct"),
        "ratio_codit_vs_engine_direct": headline.get("ratio_codit_vs_engine_direct"),
        "skip_fraction": headline.get("skip_fraction"),
        # The same for vLLM (`codit cost --bench FILE --engine vllm` reads it).
        "ratio_vllm_codit_vs_direct": headline.get("ratio_vllm_codit_vs_direct"),
        # What `codit cost --bench` reads as workload.batch_occupancy, and today's figure.
        "batch_occupancy": batch_occupancy(pair_summaries, ENGINE_CODIT),
        "batch_occupancy_fixed": batch_occupancy(pair_summaries, ENGINE_CODIT_FIXED),
        "batch_occupancy_pair": (
            PAPER_MIX_PAIR if PAPER_MIX_PAIR in pair_summaries else TINYWORLD_PAIR
        ),
        "pairs": pair_summaries,
        "results": results,
        "settings": settings,
        "package_versions": package_versions(),
        "wall_seconds": time.perf_counter() - started,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_table(summary))
