"""The judged-benchmark registry (codit.workflow.benchmarks): a benchmark added through it alone
(tests/toy_benchmark.py, named in CODIT_JUDGED_BENCHMARKS) is in the config schema and checks,
the dry run (its answering jobs, its flags in the judging jobs), `codit judged`, and the
report's tables; the built-in benchmarks' declarations agree with their modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_judge import FakeJudge
from workflow_runs import BIN, REPO, derived_config, job_blocks, job_counts, snakemake

from codit.workflow.benchmarks import benchmarks, paper_headlines, plugins

TESTS = Path(__file__).resolve().parent
TOY = {
    "CODIT_JUDGED_BENCHMARKS": "toy_benchmark:BENCHMARK",
    "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
}


def toy_bench(folder: Path) -> Path:
    folder.mkdir(parents=True)
    prompts = [{"id": f"p{i}", "prompt": f"Say {i} in words."} for i in range(4)]
    (folder / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    return folder


def test_the_registry_lists_the_built_in_benchmarks_and_their_modules_serve_them():
    assert [b.task for b in benchmarks()] == ["mt_bench", "alpaca_eval", "wildbench"]
    assert [h.column for _, h in paper_headlines()] == ["AE2 LC", "AE2 WR", "MT-Bench", "WB-Score"]
    for benchmark in benchmarks():
        module = benchmark.load()
        assert benchmark.task == module.TASK and benchmark.name == module.BENCHMARK
        assert callable(module.grade_answers) and callable(module.run)
        fields = set(module.GradingRun.__dataclass_fields__)
        assert {"bench", "answers", "judge", "outputs", *benchmark.options} <= fields
        for key, schema in benchmark.options.items():  # one default for the config and the flag
            assert module.GradingRun.__dataclass_fields__[key].default == schema["default"]
        assert set(benchmark.metrics) == set(module.JUDGED.metrics)
        assert {h.metric for h in benchmark.headlines} <= set(benchmark.metrics)


def test_a_benchmark_named_in_the_environment_is_loaded_and_bad_names_are_refused():
    (toy,) = plugins("toy_benchmark:BENCHMARK")
    assert toy.task == "toy_bench" and toy.flag == "--toy-bench"
    assert toy.option_flag("weight") == "--toy-bench-weight"
    with pytest.raises(ValueError, match="'toy_benchmark' is not module:ATTRIBUTE"):
        plugins("toy_benchmark")
    with pytest.raises(ValueError, match="cannot load 'no_such_module:X'"):
        plugins("no_such_module:X")
    with pytest.raises(ValueError, match="'toy_benchmark:Headline' is not a codit Benchmark"):
        plugins("toy_benchmark:Headline")


def test_a_benchmark_added_through_the_registry_is_planned_with_its_flags(tmp_path):
    bench = toy_bench(tmp_path / "toy")
    toy = {"enabled": True, "bench": str(bench), "weight": 3}
    config = derived_config(tmp_path / "toy.yaml", {"evaluation": {"toy_bench": toy}}, {})
    where = ("--configfile", str(config), "--directory", str(tmp_path))
    result = snakemake("-n", "-p", *where, env=TOY)
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    for kind, evaluation in (("student", "evaluate_student"),
                             ("chatvector", "evaluate_chatvector"),
                             ("reference", "evaluate_reference")):  # fmt: skip
        assert counts[f"toybench_answer_{kind}"] == counts[evaluation] > 0
    jobs = job_blocks(result.stdout)
    answering = [c for rule, _, c in jobs if rule.startswith("toybench_answer_")]
    assert all(" codit toybench answer --model " in c for c in answering)
    assert all("--max-new-tokens 16 " in c for c in answering)  # the declared default
    judging = [c for rule, _, c in jobs if rule == "judge_answers"]
    assert all(f" --toy-bench {bench} " in c and " --toy-bench-weight 3 " in c for c in judging)

    # Without the declaration the config's section is an unknown key, refused by the schema.
    unknown = snakemake("-n", *where)
    assert unknown.returncode != 0
    assert "'toy_bench' was unexpected" in unknown.stderr + unknown.stdout
    # A check of the registry's: the toy has no tiny-world bench.
    toy["bench"] = "tinyworld"
    config = derived_config(tmp_path / "tiny-toy.yaml", {"evaluation": {"toy_bench": toy}}, {})
    refused = snakemake("-n", "--configfile", str(config), "--directory", str(tmp_path), env=TOY)
    message = "evaluation.toy_bench.bench: the tiny world has no Toy bench"
    assert refused.returncode != 0 and message in refused.stderr + refused.stdout


def codit(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **TOY, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(BIN / "codit"), *argv], capture_output=True, text=True, env=env, timeout=300
    )


def rating(prompt: str) -> str:
    """The toy judge: a longer answer rates higher."""
    answer = prompt.splitlines()[-1]
    return f"Fine.\nRating: [[{min(10, len(answer.split()))}]]"


def test_codit_judged_and_the_report_grade_and_show_it(tmp_path):
    bench = toy_bench(tmp_path / "toy")
    judge = FakeJudge(reply=rating)
    evals = []
    try:
        for arm, words in (("direct", 2), ("codit_alpha0.1_beta1", 5)):
            evaluated = tmp_path / "eval" / arm
            folder = Path(f"{evaluated}.toy_bench")
            folder.mkdir(parents=True)
            answers = [{"id": f"p{i}", "output": " ".join(["word"] * words)} for i in range(4)]
            (folder / "answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
            labels = {"teacher_pair": "pa", "student": "s", "arm": arm, "seed": "0"}
            (folder / "answers.card.json").write_text(json.dumps({"labels": labels}))
            done = codit("judged", "--evaluated", str(evaluated), "--toy-bench", str(bench),
                         "--toy-bench-weight", "2", "--judge-url", judge.url,
                         "--judge-model", "toy-judge")  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert "toy_bench graded with one judge" in done.stdout
            scores = json.loads((folder / "scores.json").read_text())
            assert scores["results"]["toy_bench"]["score,none"] == 2 * words
            evals.append(folder / "scores.json")
    finally:
        judge.close()
    assert len(judge.requests) == 8

    out = tmp_path / "results"
    report = codit("report", "--evals", *map(str, evals), "--out-dir", str(out))
    assert report.returncode == 0, report.stderr
    markdown = (out / "tables/main.md").read_text()
    assert "## toy_bench/score" in markdown
    paper = markdown.split("## Paper table")[1]
    block = paper.split("\n### ")[1]
    assert "| arm " in block and " Toy |" in block
    assert "`Toy` = the toy judge's mean rating" in paper
    main = (out / "tables/main.csv").read_text()
    assert "toy_bench,score" in main


def test_the_cli_lists_a_registered_benchmarks_command():
    listed = codit("--help")
    assert (
        "toybench" in listed.stdout and "Toy bench: a model's answers rated 1-10" in listed.stdout
    )
    assert (
        "toybench"
        not in subprocess.run(
            [sys.executable, "-m", "codit", "--help"], capture_output=True, text=True, cwd=REPO
        ).stdout
    )
