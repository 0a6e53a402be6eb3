"""`codit <stage> ...`: one thin command per workflow stage; the Snakemake rules call these.

Each stage module exposes `add_arguments(parser)` and `run(args)`; `stage_module` names the
module of every stage. Only the chosen stage's module is imported, so `codit --help` stays
instant (torch is not loaded).
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from codit.workflow.benchmarks import by_command

# Each stage's one-line help, in the order `codit --help` lists them; the judged benchmarks'
# commands (codit.workflow.benchmarks) come after `evaluate`.
STAGES = {
    "tinyworld": "build the built-in tiny world (data, tokenizer, models, tasks)",
    "download": "download a Hub model (safetensors only) into a local folder",
    "instructions": "normalise an instruction source into the pool to answer",
    "generate": "generate CoDIT or direct responses for an instruction file",
    "gather": "concatenate the generated shards of one dataset, with its card",
    "bestofn": (
        "Best-of-N: score N direct samples per instruction (oracle or LLM judge), keep the best"
    ),
    "public": (
        "a public instruction dataset (Hub or JSONL, field mapping) subsampled to a given size"
    ),
    "sft": "LoRA SFT of a student on a generated dataset; saves adapter and merged model",
    "chatvector": "add r x (post - pre) of a teacher pair to a student of the same architecture",
    "prefetch": "fetch the data of lm-eval tasks into the hub cache (for offline evaluation jobs)",
    "evaluate": "run lm-evaluation-harness tasks on a model directory",
    "judged": "grade one model's answers to every judged benchmark with one judge (served once)",
    "power": "items and seeds a paired comparison needs to decide, from a report's measured noise",
    "report": "collect evaluation results into tables and figures",
    "verdicts": "the paper's claims decided over the worlds of several runs' main tables, pooled",
    "bench": "measure generation speed and memory of the engine against model.generate",
    "cost": "estimate GPU-hours per stage of a config from stated assumptions",
    "explain": (
        "Figure 1 for one instruction: top tokens of post, pre and CoDIT at one decoding step"
    ),
    "compare": "paired bootstrap of a metric between two samples files (b - a, interval, p-value)",
}


def stage_module(stage: str) -> ModuleType:
    """The module that serves `stage` (its `add_arguments` and `run`), imported only when the
    stage runs."""
    match stage:
        case "tinyworld":
            from codit.tinyworld import cli as module
        case "download":
            from codit.data import hub as module
        case "instructions":
            from codit.data import instructions as module
        case "generate":
            from codit.generation import generate as module
        case "gather":
            from codit.data import datasets as module
        case "bestofn":
            from codit.baselines import bestofn as module
        case "public":
            from codit.baselines import public as module
        case "sft":
            from codit.training import sft as module
        case "chatvector":
            from codit.baselines import chatvector as module
        case "prefetch":
            from codit.evaluation import prefetch as module
        case "evaluate":
            from codit.evaluation import lmeval as module
        case "judged":
            from codit.judged import judging as module
        case "power":
            from codit.report import power as module
        case "report":
            from codit.report import build as module
        case "verdicts":
            from codit.report import pooled as module
        case "bench":
            from codit.tools import bench as module
        case "cost":
            from codit.tools import cost as module
        case "explain":
            from codit.tools import explain as module
        case "compare":
            from codit.report import stats as module
        case _:
            # the judged benchmarks' commands: the registry names their modules
            return by_command()[stage].load()
    return module


def stages() -> dict[str, str]:
    """Every command and its help line: STAGES with the judged benchmarks' after `evaluate`."""
    listed = {}
    for name, text in STAGES.items():
        listed[name] = text
        if name == "evaluate":
            listed |= {command: b.help for command, b in by_command().items()}
    return listed


def _overview() -> str:
    width = max(map(len, stages()))
    lines = ["usage: codit <stage> [options]", "", "stages:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in stages().items()]
    lines += ["", "`codit <stage> --help` lists a stage's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """`codit <stage> ...`. From the command line (argv None) and with CODIT_WARM=1 the stage
    runs in a process forked from a warm interpreter (codit.workflow.warm), else in this one."""
    if argv is None:
        from codit.workflow import warm

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
    if stage not in stages():
        sys.exit(f"codit: unknown stage {stage!r}\n\n{_overview()}")
    module = stage_module(stage)
    parser = argparse.ArgumentParser(prog=f"codit {stage}", description=stages()[stage])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        module.run(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        # Bad input is reported as one line naming the offending thing, not as a traceback.
        sys.exit(f"codit {stage}: error: {error}")


if __name__ == "__main__":
    main()
