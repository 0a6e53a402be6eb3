"""`codit tinyworld {data,train,alpacaeval,all}`: build the tiny world step by step or all at
once;
`codit tinyworld judge`: serve its judge (codit.tinyworld.judge); `codit tinyworld train-judge`:
train a tiny judge model and measure its agreement with the oracle (codit.tinyworld.judge_model)."""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from codit.tinyworld.models import BASE_OF, CHECKPOINT_STEPS, MODEL_NAMES

BUILD_ORDER = ("llama-base", "llama-instruct", "gpt2-base")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="world, corpora, instruction pool, tokenizer, tasks")
    _common(data)
    data.add_argument(
        "--pool-size",
        type=int,
        default=512,
        help="held-out instructions for CoDIT and the baseline to answer",
    )

    train = commands.add_parser("train", help="train one tiny model (instruct needs its base)")
    _common(train)
    train.add_argument("--model", required=True, choices=MODEL_NAMES)
    train.add_argument("--steps", type=int, default=None, help="optimiser steps (default: tuned)")
    train.add_argument("--lr", type=float, default=None, help="peak learning rate (default: tuned)")
    train.add_argument(
        "--checkpoint-steps",
        type=int,
        default=CHECKPOINT_STEPS,
        help="save the training state every N steps; a killed run resumes from it (results "
        "do not depend on N)",
    )
    train.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="where the model (and an instruct model's base) lives (default: OUT/models); a "
        "world of the deciding study trains its own teacher pair into worlds/<seed>",
    )

    everything = commands.add_parser(
        "all", help="data, then llama-base and gpt2-base in parallel, then llama-instruct"
    )
    _common(everything)
    everything.add_argument("--pool-size", type=int, default=512)
    everything.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimiser steps of every model (default: each model's tuned number)",
    )
    everything.add_argument(
        "--with-gpt2-instruct",
        action="store_true",
        help="also train gpt2-instruct (a second teacher pair)",
    )

    judge = commands.add_parser(
        "judge", help="serve the world's judge (the oracle's verdicts) on an OpenAI-compatible API"
    )
    judge.add_argument("--world", required=True, type=Path, help="a built tiny-world directory")
    judge.add_argument("--port", required=True, type=int, help="port on 127.0.0.1")

    alpaca_eval = commands.add_parser(
        "alpacaeval",
        help="the tiny AlpacaEval bench (world/alpaca_eval): llama-instruct's greedy references",
    )
    alpaca_eval.add_argument("--world", required=True, type=Path, help="a built tiny world")
    alpaca_eval.add_argument("--threads", type=int, default=1, help="torch CPU threads")

    train_judge = commands.add_parser(
        "train-judge",
        help="fine-tune a tiny judge on the oracle's verdicts; write the model and agreement.json",
    )
    train_judge.add_argument(
        "--world", required=True, type=Path, help="a built tiny-world directory"
    )
    train_judge.add_argument(
        "--out", required=True, type=Path, help="output folder (model/, agreement.json)"
    )
    train_judge.add_argument("--steps", type=int, default=None, help="optimiser steps")
    train_judge.add_argument("--lr", type=float, default=None, help="peak learning rate")
    train_judge.add_argument(
        "--max-train-instructions",
        type=int,
        default=None,
        help="train on the first N training instructions only (quick checks)",
    )
    train_judge.add_argument(
        "--max-held-out-instructions",
        type=int,
        default=None,
        help="measure agreement on the first N held-out instructions only (quick checks)",
    )
    train_judge.add_argument("--seed", type=int, default=0)
    train_judge.add_argument("--threads", type=int, default=2, help="torch CPU threads")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="tiny-world directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def run(args: argparse.Namespace) -> None:
    if args.command == "judge":
        from codit.tinyworld.judge import serve

        serve(args.world, args.port)
        return
    if args.command == "train-judge":
        from codit.tinyworld.judge_model import headline, train_judge

        result = train_judge(
            args.world, args.out, seed=args.seed, threads=args.threads, steps=args.steps,
            lr=args.lr, max_train_instructions=args.max_train_instructions,
            max_held_out_instructions=args.max_held_out_instructions,
        )  # fmt: skip
        print(f"tiny judge -> {args.out}: {headline(result)}")
        return
    if args.command == "alpacaeval":
        _write_alpaca_eval(args.world, args.threads)
        return
    from codit.tinyworld import build_data

    if args.command in {"data", "all"}:
        started = time.perf_counter()
        build_data(args.out, seed=args.seed, pool_size=args.pool_size, threads=args.threads)
        print(f"tinyworld data -> {args.out} ({time.perf_counter() - started:.1f} s)")
    if args.command == "train":
        _train(
            args.out, args.model, args.seed, args.threads, args.steps, args.lr,
            args.checkpoint_steps, args.models_dir,
        )  # fmt: skip
    if args.command == "all":
        # The two bases are independent: train them side by side, one thread each.
        bases = [name for name in BUILD_ORDER if name not in BASE_OF]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(bases), mp_context=context) as pool:
            jobs = [
                pool.submit(_train, args.out, name, args.seed, 1, args.steps, None)
                for name in bases
            ]
            for job in jobs:
                job.result()
        instructs = [name for name in BUILD_ORDER if name in BASE_OF]
        instructs += ["gpt2-instruct"] if args.with_gpt2_instruct else []
        for name in instructs:
            _train(args.out, name, args.seed, args.threads, args.steps, None)
        _write_alpaca_eval(args.out, args.threads)


def _write_alpaca_eval(world: Path, threads: int) -> None:
    from codit.tinyworld.alpacaeval import write_world_bench
    from codit.workflow.runtime import set_threads

    set_threads(threads)
    print(f"tiny AlpacaEval -> {write_world_bench(world)}")


def _train(
    out: Path,
    name: str,
    seed: int,
    threads: int,
    steps: int | None,
    lr: float | None,
    checkpoint_steps: int = CHECKPOINT_STEPS,
    models_dir: Path | None = None,
) -> None:
    from codit.tinyworld import train_model

    started = time.perf_counter()
    target = train_model(
        out, name, seed=seed, threads=threads, steps=steps, lr=lr,
        checkpoint_steps=checkpoint_steps, models_dir=models_dir,
    )  # fmt: skip
    print(f"tinyworld {name} -> {target} ({time.perf_counter() - started:.1f} s)", flush=True)
