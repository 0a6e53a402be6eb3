"""`build_data`: world, corpora, instruction pool, tokenizer and task folder in one directory."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from codit.tinyworld.corpus import build_splits, pretrain_documents, split_combinations
from codit.tinyworld.mtbench import write_bench
from codit.tinyworld.tasks import write_task_folder
from codit.tinyworld.tokenizer import VOCAB_SIZE, train_tokenizer
from codit.tinyworld.wildbench import write_tiny_bench as write_wildbench
from codit.tinyworld.world import generate_world
from codit.workflow.provenance import file_sha256, provenance, write_json, write_jsonl

POSTTRAIN_SIZE = 2000
DATA_ITEMS = (
    "world.json",
    "corpus",
    "instructions",
    "tokenizer",
    "tasks",
    "mt_bench",
    "wildbench",
    "data_card.json",
)


def _instruction_record(prefix: str, index: int, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{prefix}-{index + 1:06d}",
        "instruction": item["instruction"],
        "constraints": item["constraints"],
        "request": item["request"],
        "combo": item["combo"],
        # For the Best-of-N oracle: whom the question is about, and the fact asked (null for
        # open "describe" questions).
        "subject": item["subject"],
        "answer": item["answer"],
    }


def build_data(
    out: str | os.PathLike,
    seed: int = 0,
    pool_size: int = 512,
    threads: int = 1,
    posttrain_size: int = POSTTRAIN_SIZE,
) -> Path:
    """Write every data product of the tiny world under `out` (models are trained separately).

    Everything is built in a staging directory and moved into place at the end.
    """
    if pool_size < 1:
        raise ValueError(f"--pool-size must be positive, got {pool_size}")
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))  # tokenizers' BPE trainer threads
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    staging = Path(tempfile.mkdtemp(prefix=".data.", dir=root))
    try:
        world = generate_world(seed)
        write_json(staging / "world.json", world)
        docs = pretrain_documents(world, seed)
        write_jsonl(staging / "corpus" / "pretrain.jsonl", [{"text": doc} for doc in docs])
        splits = build_splits(world, seed, pool_size, posttrain_size)
        posttrain = [
            {**_instruction_record("tw-post", i, item), "response": item["response"]}
            for i, item in enumerate(splits["posttrain"])
        ]
        write_jsonl(staging / "corpus" / "posttrain.jsonl", posttrain)
        pool = [_instruction_record("tw", i, item) for i, item in enumerate(splits["pool"])]
        write_jsonl(staging / "instructions" / "pool.jsonl", pool)
        # Responses written by the world's rules, not a model: the public-dataset baseline.
        public = [
            {**_instruction_record("tw-pub", i, item), "response": item["response"]}
            for i, item in enumerate(splits["public"])
        ]
        write_jsonl(staging / "instructions" / "public.jsonl", public)
        tokenizer = train_tokenizer(docs, staging / "tokenizer")
        write_task_folder(staging / "tasks", splits["ifeval"], splits["knowledge"])
        # MT-Bench's two turns on held-out benchmark instructions (no random draw of its own).
        write_bench(staging / "mt_bench", splits["ifeval"])
        write_wildbench(staging / "wildbench", splits["ifeval"])
        combos = split_combinations(seed)
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        card = provenance(
            {
                "seed": seed,
                "pool_size": pool_size,
                "posttrain_size": posttrain_size,
                "threads": threads,
                "vocab_size_requested": VOCAB_SIZE,
            }
        )
        card.update(
            {
                "counts": {
                    "countries": len(world["countries"]),
                    "creatures": len(world["creatures"]),
                    "facts": len(world["facts"]),
                    "pretrain_documents": len(docs),
                    "posttrain_examples": len(posttrain),
                    "pool_instructions": len(pool),
                    "public_examples": len(public),
                    "benchmark_ifeval": len(splits["ifeval"]),
                    "benchmark_knowledge": len(splits["knowledge"]),
                    # BPE stops early when the small corpus offers no more merges.
                    "vocab_size": len(tokenizer),
                },
                "posttrain_combos": dict(sorted(Counter(r["combo"] for r in posttrain).items())),
                "benchmark_combos": dict(
                    sorted(Counter(i["combo"] for i in splits["ifeval"]).items())
                ),
                "unseen_combos": [
                    "+".join(c) for c in combos["unseen_pairs"] + combos["unseen_triples"]
                ],
                "sha256": {str(p.relative_to(staging)): file_sha256(p) for p in files},
                "wall_seconds": round(time.perf_counter() - wall0, 2),
                "cpu_seconds": round(time.process_time() - cpu0, 2),
            }
        )
        write_json(staging / "data_card.json", card)
        _move_into_place(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _move_into_place(staging: Path, root: Path) -> None:
    # The card goes last: its presence means the data set is complete.
    for name in DATA_ITEMS:
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(staging / name, target)
