"""`codit <stage> ...`: one thin command per workflow stage; the Snakemake rules call these.

Each stage module exposes `add_arguments(parser)` and `run(args)`. Only the chosen stage is
imported, so `codit --help` stays instant (torch is not loaded).
"""

from __future__ import annotations

import argparse
import importlib
import sys

STAGES = {
    "tinyworld": (
        "codit.tinyworld.cli",
        "build the built-in tiny world (data, tokenizer, models, tasks)",
    ),
    "download": ("codit.hub", "download a Hub model (safetensors only) into a local folder"),
    "instructions": (
        "codit.instructions",
        "normalise an instruction source into the pool to answer",
    ),
    "generate": ("codit.generation", "generate CoDIT or direct responses for an instruction file"),
    "gather": ("codit.datasets", "concatenate the generated shards of one dataset, with its card"),
    "bestofn": (
        "codit.bestofn",
        "Best-of-N: score N direct samples per instruction (oracle or LLM judge), keep the best",
    ),
    "public": (
        "codit.public",
        "a public instruction dataset (Hub or JSONL, field mapping) subsampled to a given size",
    ),
    "sft": (
        "codit.training",
        "LoRA SFT of a student on a generated dataset; saves adapter and merged model",
    ),
    "chatvector": (
        "codit.chatvector",
        "add r x (post - pre) of a teacher pair to a student of the same architecture",
    ),
    "prefetch": (
        "codit.prefetch",
        "fetch the data of lm-eval tasks into the hub cache (for offline evaluation jobs)",
    ),
    "evaluate": ("codit.evaluation", "run lm-evaluation-harness tasks on a model directory"),
    "mtbench": (
        "codit.mtbench",
        "MT-Bench: grade a model's two-turn answers with an LLM judge (FastChat's grading)",
    ),
    "alpacaeval": (
        "codit.alpacaeval",
        "AlpacaEval 2.0: a model's outputs judged pairwise against the reference (WR, LC WR)",
    ),
    "wildbench": (
        "codit.wildbench",
        "WildBench v2: a model's answers scored 1-10 on each task's checklist (WB-Score)",
    ),
    "judged": (
        "codit.judging",
        "grade one model's answers to every judged benchmark with one judge (served once)",
    ),
    "power": (
        "codit.power",
        "items and seeds a paired comparison needs to decide, from a report's measured noise",
    ),
    "report": ("codit.report", "collect evaluation results into tables and figures"),
    "verdicts": (
        "codit.pooled",
        "the paper's claims decided over the worlds of several runs' main tables, pooled",
    ),
    "bench": (
        "codit.bench",
        "measure generation speed and memory of the engine against model.generate",
    ),
    "cost": ("codit.cost", "estimate GPU-hours per stage of a config from stated assumptions"),
    "explain": (
        "codit.explain",
        "Figure 1 for one instruction: top tokens of post, pre and CoDIT at one decoding step",
    ),
    "compare": (
        "codit.stats",
        "paired bootstrap of a metric between two samples files (b - a, interval, p-value)",
    ),
}


def _overview() -> str:
    width = max(map(len, STAGES))
    lines = ["usage: codit <stage> [options]", "", "stages:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in STAGES.items()]
    lines += ["", "`codit <stage> --help` lists a stage's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """`codit <stage> ...`. From the command line (argv None) and with CODIT_WARM=1 the stage
    runs in a process forked from a warm interpreter (codit.warm), else in this one."""
    if argv is None:
        from codit import warm

        if warm.enabled():
            status = warm.delegate(sys.argv)
            if status is not None:
                sys.exit(status)
        argv = sys.argv[1:]
    run(argv)


def run(argv: list[str]) -> None:
    """Parse `codit <stage> ...` arguments and run the stage in this process."""
    argv = list(argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_overview())
        return
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        sys.exit(f"codit: unknown stage {stage!r}\n\n{_overview()}")
    module_name, description = STAGES[stage]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"codit {stage}", description=description)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        module.run(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        # Bad input is reported as one line naming the offending thing, not as a traceback.
        sys.exit(f"codit {stage}: error: {error}")


if __name__ == "__main__":
    main()
