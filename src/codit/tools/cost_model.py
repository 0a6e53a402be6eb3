"""The per-job arithmetic of `codit cost`: a roofline model of a decode step and of a prefill on
the assumed GPU, and from it the seconds of generating a dataset, of an SFT job, of evaluating
a model, of answering a judged benchmark and of the judge's calls."""

from __future__ import annotations

import math
from dataclasses import dataclass

from codit.tools.cost_assumptions import GPU, EvalTask, Judge, JudgedBench, ModelCost

# --------------------------------------------------------------------------------------------
# Per-job arithmetic


def decode_step_seconds(model: ModelCost, gpu: GPU, rows: float, context: float) -> float:
    """Seconds of one memory-bound decode step: weights plus `rows` KV caches at `context`."""
    read = model.params * gpu.bytes_per_param + rows * model.kv_bytes(context)
    return read / (gpu.bandwidth * gpu.decode_efficiency)


def prefill_seconds(model: ModelCost, gpu: GPU, prompt_tokens: float) -> float:
    """Seconds of the forward passes over `prompt_tokens` prompt tokens (compute-bound)."""
    return 2 * model.active_params * prompt_tokens / (gpu.flops * gpu.prefill_mfu)


@dataclass(frozen=True)
class GenerationCost:
    """Direct generation of `instructions` responses with one model on one job's GPUs."""

    decode_tokens_per_s: float  # generated tokens per second of decoding
    tokens_per_s: float  # generated tokens per second of the job, prefill included
    seconds: float  # wall time for all instructions


def direct_generation(
    model: ModelCost,
    gpu: GPU,
    instructions: float,
    prompt_tokens: float,
    response_tokens: float,
    batch_rows: float,
) -> GenerationCost:
    """Wall time of direct generation: decode steps at `batch_rows` rows, plus prefill."""
    context = prompt_tokens + response_tokens / 2
    decode_tps = batch_rows / decode_step_seconds(model, gpu, batch_rows, context)
    tokens = instructions * response_tokens
    seconds = tokens / decode_tps + prefill_seconds(model, gpu, instructions * prompt_tokens)
    return GenerationCost(decode_tps, tokens / seconds, seconds)


def codit_generation(direct: GenerationCost, ratio: float) -> GenerationCost:
    """CoDIT takes the direct engine's time over the measured throughput ratio."""
    return GenerationCost(
        direct.decode_tokens_per_s * ratio, direct.tokens_per_s * ratio, direct.seconds / ratio
    )


def sft_seconds(
    model: ModelCost,
    gpu: GPU,
    instructions: float,
    example_tokens: float,
    epochs: float,
    flops_per_param_token: float,
) -> float:
    """Seconds of LoRA SFT over `instructions` examples of `example_tokens` each."""
    flops = flops_per_param_token * model.active_params * instructions * example_tokens * epochs
    return flops / (gpu.flops * gpu.training_mfu)


def evaluation_seconds(
    model: ModelCost, gpu: GPU, task: EvalTask, batch_size: int, limit: int | None
) -> float:
    """Seconds of one lm-eval generation task: decode steps per batch plus prefill."""
    items = task.items if limit is None else min(task.items, limit)
    batches = math.ceil(items / batch_size)
    context = task.prompt_tokens + task.generated_tokens / 2
    decode = batches * task.generated_tokens * decode_step_seconds(model, gpu, batch_size, context)
    return decode + prefill_seconds(model, gpu, items * task.prompt_tokens)


def judge_gpu_seconds(
    judge: Judge, calls: float, call_prompt_tokens: float, reply_tokens: float
) -> float:
    """GPU-seconds a judge server spends on `calls` calls of the given prompt and reply tokens."""
    return calls * (call_prompt_tokens + reply_tokens) / judge.tokens_per_s_per_gpu


def answer_seconds(
    model: ModelCost,
    gpu: GPU,
    bench: JudgedBench,
    batch_size: int,
    max_new_tokens: int,
    occupancy: float,
) -> float:
    """Seconds of one answering job of a judged benchmark (`codit mtbench|alpacaeval|wildbench
    answer`, the engine in direct mode): every item in every answering round (MT-Bench's two
    turns; one otherwise), batched per answering group (an answering temperature), each batch
    decoding until its longest answer stops (direct generation's model: the mean answer over the
    batch occupancy, capped at max_new_tokens), plus prefill of every prompt."""
    answer = min(bench.answer_tokens, max_new_tokens)
    steps = min(answer / occupancy, max_new_tokens)  # the longest answer of a batch
    seconds = 0.0
    for prompt in bench.answer_prompts(answer):
        context = prompt + answer / 2
        for group in bench.answer_groups():
            for start in range(0, group, batch_size):
                rows = min(batch_size, group - start) * answer / steps  # rows still decoding
                seconds += steps * decode_step_seconds(model, gpu, rows, context)
        seconds += prefill_seconds(model, gpu, bench.items * prompt)
    return seconds
