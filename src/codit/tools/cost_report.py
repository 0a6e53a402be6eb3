"""The estimate of `codit cost` as Markdown tables (or rounded for JSON): every stage's jobs and
GPU-hours, the judged benchmarks' answering and judging, and the assumptions it rests on."""

from __future__ import annotations

import math
from typing import Any

from codit.workflow.benchmarks import Benchmark, benchmarks
from codit.workflow.naming import CODIT, DIRECT_SAMPLE, parse_arm

# The stage that judges the judged benchmarks' answers (one job per evaluated model).
JUDGE_STAGE = "judged_judge"


def answer_stage(benchmark: Benchmark) -> str:
    return f"{benchmark.task}_answer"


STAGE_LABELS = {
    "generate_direct": "generate (direct)",
    "generate_samples": "generate (Best-of-N extra samples)",
    "generate_codit": "generate (CoDIT)",
    "best_of_n": "Best-of-N scoring (judge server)",
    "sft": "sft (teacher datasets)",
    "sft_public": "sft (public datasets)",
    "evaluate": "evaluate (students, references)",
    "evaluate_public": "evaluate (public-dataset students)",
    "chat_vector": "chat vector (weight arithmetic, CPU)",
    "evaluate_chat_vector": "evaluate (chat vectors)",
    **{answer_stage(benchmark): f"{benchmark.label} answers" for benchmark in benchmarks()},
    # Named after the enabled benchmarks in the output (judge_stage_label).
    "judged_judge": "judging of the judged benchmarks (judge server)",
    "total": "total",
}

# --------------------------------------------------------------------------------------------
# Output


def round_sig(value: float, digits: int = 3) -> float:
    """`value` rounded to `digits` significant figures."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def format_sig(value: float, digits: int = 3) -> str:
    """`value` at `digits` significant figures, without exponent, thousands separated."""
    rounded = round_sig(value, digits)
    if rounded == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}"


def rounded(value: Any, digits: int = 3) -> Any:
    """Every float in a nested structure rounded to `digits` significant figures."""
    if isinstance(value, float):
        return round_sig(value, digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item, digits) for item in value]
    return value


def format_tokens(value: float) -> str:
    """A token count: whole numbers as they are, others at 3 significant figures."""
    return f"{int(value):,}" if float(value).is_integer() else format_sig(value)


def judge_stage_label(result: dict[str, Any]) -> str:
    """The judging stage's label, naming the enabled judged benchmarks."""
    labels = [result[key]["label"] for key in result["judged"]["benchmarks"]]
    if not labels:
        return STAGE_LABELS[JUDGE_STAGE]
    return f"judging of {', '.join(labels)} (judge server)"


def format_judged(result: dict[str, Any]) -> list[str]:
    """The judged benchmarks' table (answers and judge calls per benchmark, the judge's
    start-ups, the total) and what each benchmark's jobs do; nothing when none is enabled."""
    judged = result["judged"]
    if not judged["benchmarks"]:
        return []
    details = [result[key] for key in judged["benchmarks"]]
    total = judged["total"]
    lines = [
        "",
        "| judged benchmark | answer jobs | answer GPU-hours | judge calls | judge GPU-hours |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for detail in details:
        lines.append(
            f"| {detail['label']} | {detail['answer_jobs']:,} | "
            f"{format_sig(detail['answer_gpu_hours'])} | {detail['judge_calls']:,} | "
            f"{format_sig(detail['judge_gpu_hours'])} |"
        )
    if judged["judge_served"]:
        lines.append(
            f"| judge start-up (once per judging job: {judged['jobs']:,} x "
            f"{judged['judge_gpus_per_job']} GPUs x {format_sig(judged['judge_startup_s_per_job'])}"
            f" s) | | | | {format_sig(judged['startup_gpu_hours'])} |"
        )
    lines += [
        f"| total | {total['answer_jobs']:,} | {format_sig(total['answer_gpu_hours'])} | "
        f"{total['judge_calls']:,} | {format_sig(total['judge_gpu_hours'])} |",
        "",
    ]
    for detail in details:
        prompts = " and ".join(format_tokens(tokens) for tokens in detail["answer_prompt_tokens"])
        rounds = f" x {detail['rounds']} turns" if detail["rounds"] > 1 else ""
        per = " per turn" if detail["rounds"] > 1 else ""
        lines.append(
            f"{detail['label']}: each evaluated model answers {detail['items']:,} "
            f"{detail['items_name']}{rounds} on its own GPUs "
            f"({format_tokens(detail['answer_tokens'])} answer tokens assumed, at most "
            f"{detail['max_new_tokens']:,}; prompts of {prompts} tokens; "
            f"{detail['answer_batches_per_round']} batches of up to "
            f"{detail['answer_batch_size']}{per}).",
        )
    if judged["judge_served"]:
        where = (
            f"served by each judging job on {judged['judge_gpus_per_job']} GPUs, "
            f"{format_sig(judged['judge_startup_s_per_job'])} s start-up per job included"
        )
    else:
        where = "at judge.url, an external endpoint (the judging jobs hold no GPU)"
    calls = "; ".join(
        f"{detail['label']} {detail['judge_calls_per_job']:,} calls of "
        f"{format_tokens(round_sig(detail['judge_prompt_tokens_per_call']))} prompt + "
        f"{format_tokens(detail['judge_reply_tokens_per_call'])} reply "
        f"token{'' if detail['judge_reply_tokens_per_call'] == 1 else 's'} "
        f"({format_sig(detail['judge_gpu_seconds_per_job'])} GPU-seconds)"
        for detail in details
    )
    lines += [
        "",
        f"The judge ({judged['judge_model']}) is {where}. One judging job per evaluated model "
        f"({judged['jobs']:,} jobs) grades every enabled benchmark's answers: {calls} per job, "
        f"at {format_sig(judged['judge_tokens_per_s_per_gpu'])} tokens/s per GPU; "
        f"{format_sig(judged['judge_gpu_hours_per_job'])} GPU-hours per judging job.",
    ]
    return lines


def format_markdown(result: dict[str, Any], config_name: str) -> str:
    """The stage table and the per-pair generation table, as Markdown."""
    codit_arms = sum(parse_arm(arm).kind == CODIT for arm in result["arms"])
    samples = sum(parse_arm(arm).kind == DIRECT_SAMPLE for arm in result["generated_arms"])
    lines = [
        f"{config_name}: {result['instructions']:,} instructions, {result['pairs_count']} "
        f"teacher pairs x {len(result['arms'])} trained arms ({codit_arms} CoDIT) x "
        f"{len(result['seeds'])} seeds ({samples} extra direct samples per pair and seed for "
        f"Best-of-N), {len(result['public_arms'])} public datasets, "
        f"{len(result['chat_vectors'])} chat vectors, {len(result['students'])} students, "
        f"{len(result['references'])} references; {result['gpu']}; CoDIT/direct throughput "
        f"{result['codit_vs_direct_throughput']:.2f} "
        f"({result['codit_vs_direct_throughput_source']})",
        "",
        "| stage | jobs | GPU-hours |",
        "| --- | ---: | ---: |",
    ]
    for key, label in STAGE_LABELS.items():
        stage = result["stages"][key]
        if key == JUDGE_STAGE:
            label = judge_stage_label(result)
        if stage["jobs"] or key == "total":  # stages the config does not have are left out
            lines.append(f"| {label} | {stage['jobs']:,} | {format_sig(stage['gpu_hours'])} |")
    best = result["best_of_n"]
    if best.get("judge_calls"):
        lines += [
            "",
            f"Best-of-N judge ({best['judge_model']}): {best['judge_calls']:,} calls of "
            f"{format_sig(best['judge_prompt_tokens_per_call'])} prompt + "
            f"{format_sig(best['judge_reply_tokens_per_call'])} reply tokens at "
            f"{format_sig(best['judge_tokens_per_s_per_gpu'])} tokens/s per GPU "
            "(GPU-hours of a saturated server; a server kept up while idle costs more).",
        ]
    lines += format_judged(result)
    if result["judge_external_gpu_hours"]:
        total = result["stages"]["total"]["gpu_hours"]
        lines += [
            "",
            f"The judge is at judge.url, an external endpoint: the judge stages' "
            f"{format_sig(result['judge_external_gpu_hours'])} GPU-hours (Best-of-N scoring, "
            "the judged benchmarks' judging) are that server's, not GPUs the workflow's jobs "
            f"hold; the jobs' own GPU-hours: "
            f"{format_sig(total - result['judge_external_gpu_hours'])}.",
        ]
    lines += [
        "",
        "| teacher pair | GPUs per job direct / CoDIT | tokens/s per job direct | "
        "tokens/s per job CoDIT | GPU-hours per direct arm and seed | "
        "GPU-hours per CoDIT arm and seed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, pair in result["pairs"].items():
        lines.append(
            f"| {name} | {pair['gpus_direct']} / {pair['gpus_codit']} | "
            f"{format_sig(pair['direct_tokens_per_s'])} | "
            f"{format_sig(pair['codit_tokens_per_s'])} | "
            f"{format_sig(pair['gpu_hours_direct_arm'])} | "
            f"{format_sig(pair['gpu_hours_codit_arm'])} |"
        )
    return "\n".join(lines)
