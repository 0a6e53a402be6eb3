"""The declaration of a toy judged benchmark, added through the registry alone as
docs/adding-a-benchmark.md shows: this `Benchmark` (named in the environment by
CODIT_JUDGED_BENCHMARKS="toy_benchmark:BENCHMARK") and the module it names
(tests/toy_benchmark_grading.py), used by tests/test_benchmark_registry.py.

A declaration imports nothing but codit.workflow.benchmarks: the registry reads it while the
Snakefile builds the DAG, and the benchmark's module (which imports the rest) only when used.
"""

from __future__ import annotations

from codit.workflow.benchmarks import Benchmark, Headline

BENCHMARK = Benchmark(
    task="toy_bench",
    command="toybench",
    module="toy_benchmark_grading",
    name="Toy bench",
    label="Toy bench",
    help="Toy bench: a model's answers rated 1-10 by the judge",
    summary="the toy bench for every evaluated model: each prompt answered, rated by the judge",
    published="toy",
    bench_help="`toy`: nothing to fetch here; or a folder with prompts.jsonl",
    data_file="prompts.jsonl",
    max_new_tokens=16,
    metrics=("score",),
    headlines=(Headline("score", "Toy", "Toy score", "the toy judge's mean rating", 2),),
    options={
        "weight": {
            "type": "integer",
            "minimum": 1,
            "default": 1,
            "description": "what each rating is multiplied by",
        }
    },  # fmt: skip
)
