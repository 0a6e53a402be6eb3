"""A judge whose replies cannot be read stops the judging job before it writes scores, naming
what to fix; below `judge.max_unparsable_share` the scores say how many items they rest on; a
rerun asks only for the missing verdicts. Each benchmark's own `codit judged` command, against
a real local endpoint (tests/fake_judge.py) that answers as the tiny world's oracle judge
except for the prompts it is told to garble."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fake_judge import FakeJudge
from test_tinyworld_judged import world, write_answers_of_every_benchmark  # noqa: F401 (fixture)

from codit.judged import alpacaeval, judging, mtbench, wildbench
from codit.report import pivots, render, tables
from codit.tinyworld import alpacaeval as tiny
from codit.tinyworld import judge as tiny_judge

FOLDERS = {
    mtbench.TASK: ("--mt-bench", "mt_bench"),
    alpacaeval.TASK: ("--alpaca-eval", tiny.FOLDER),
    wildbench.TASK: ("--wildbench", tiny_judge.WILDBENCH_FOLDER),
}
NAMES = {mtbench.TASK: "MT-Bench", alpacaeval.TASK: "AlpacaEval", wildbench.TASK: "WildBench"}


@pytest.fixture
def oracle_endpoint(world):  # noqa: F811 (the imported fixture)
    """A local endpoint that replies as the tiny world's oracle judge (plain verdicts)."""
    root, _ = world
    oracle = tiny_judge.Oracle(root)
    mt_bench, items = tiny_judge.mt_bench_items(root), tiny_judge.bench_items(root)
    server = FakeJudge(lambda prompt: tiny_judge.respond(oracle, prompt, mt_bench, items)[0])
    yield server
    server.close()


@pytest.fixture
def answered(world, tmp_path):  # noqa: F811 (the imported fixture)
    """(the world's folder, a function writing answers of a model NAME to every bench and
    returning its prefix)."""
    root, items = world

    def answers(name: str) -> Path:
        evaluated = tmp_path / name / "model"
        write_answers_of_every_benchmark(root, items, evaluated)
        return evaluated

    return root, answers


def one_in_three(prompt: str) -> bool:
    """The prompts garbled: about one in three, the same ones on every request."""
    return int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 3 == 0


def judged(root: Path, evaluated: Path, task: str, url: str, *flags: str):
    """`codit judged` for one benchmark; the completed process."""
    flag, folder = FOLDERS[task]
    command = [sys.executable, "-m", "codit", "judged", "--evaluated", str(evaluated),
               flag, str(root / folder), "--judge-url", url, "--judge-model", "oracle",
               "--judge-workers", "2", "--judge-retries", "0", *flags]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def written(evaluated: Path, task: str) -> list[str]:
    folder = judging.answers_dir(evaluated, task)
    return sorted(
        path.name for path in folder.iterdir() if path.name.startswith(("judg", "sam", "sc"))
    )


def cache_lines(evaluated: Path, task: str) -> int:
    cache = judging.answers_dir(evaluated, task) / "judgments.jsonl.judge-cache.jsonl"
    return len(cache.read_text().splitlines()) if cache.exists() else 0


@pytest.mark.parametrize("task", list(FOLDERS))
def test_all_replies_unreadable_stop_the_job_naming_what_to_fix(answered, oracle_endpoint, task):
    root, answers = answered
    evaluated = answers("model")
    oracle_endpoint.garbage = True
    done = judged(root, evaluated, task, oracle_endpoint.url)
    assert done.returncode == 1, done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith(f"codit judged: error: {NAMES[task]}"), message
    expected = ("carry no readable verdict (100.0%", f"judge oracle at {oracle_endpoint.url}",
                "prompt version", "For example", "'no verdict'", "the same command")  # fmt: skip
    for part in expected:
        assert part in message, (part, message)
    assert written(evaluated, task) == ["judgments.jsonl.judge-cache.jsonl"]
    assert cache_lines(evaluated, task) == 0
    # A bound of 1 still refuses a job that read nothing (it would score nothing).
    done = judged(root, evaluated, task, oracle_endpoint.url, "--judge-max-unparsable-share", "1")
    assert done.returncode == 1 and "no readable verdict at all" in done.stderr, done.stderr


@pytest.mark.parametrize("task", list(FOLDERS))
def test_one_in_three_unreadable_scores_below_the_bound_stops_above_and_the_rerun_asks_the_rest(
    answered, oracle_endpoint, task
):
    root, answers = answered
    below, above = answers("below"), answers("above")
    oracle_endpoint.garbles = one_in_three

    done = judged(root, below, task, oracle_endpoint.url, "--judge-max-unparsable-share", "0.6")
    assert done.returncode == 0, done.stderr
    scores = json.loads((judging.answers_dir(below, task) / "scores.json").read_text())
    unreadable = scores.get("unparsable", scores.get("verdicts", {}).get("unparsable"))
    assert 0 < unreadable < scores["judgments"]
    assert scores["scored"] == {
        "items": scores["judgments"] - unreadable,
        "of": scores["judgments"],
    }
    # main.csv carries the counts, and main.md's paper table names the partial cell.
    labels = {"teacher_pair": "tiny-llama", "student": "tiny-llama-base", "arm": "direct",
              "seed": "0"}  # fmt: skip
    table = tables.main_table([("scores.json", {**scores, "codit": {"labels": labels}})])
    assert set(table["n_scored"]) == {scores["judgments"] - unreadable}
    assert set(table["n_items"]) == {scores["judgments"]}
    partial = tables.partially_scored(table)
    assert partial == [
        f"{task} of tiny-llama / tiny-llama-base / direct seed 0: "
        f"{scores['judgments'] - unreadable} of {scores['judgments']} items scored"
    ]
    paper = pivots.paper_table(tables.summary_table(table), {}, None, None, partial)
    assert partial[0] in render.markdown_paper_section(paper)
    assert render.latex_escape(partial[0]) in render.latex_paper_table(paper, "tiny-llama")

    bound = f"{unreadable / scores['judgments'] / 2:.3g}"  # below the share: the job stops
    done = judged(root, above, task, oracle_endpoint.url, "--judge-max-unparsable-share", bound)
    assert done.returncode == 1, done.stderr
    assert f"above judge.max_unparsable_share = {bound}" in done.stderr, done.stderr
    assert written(above, task) == ["judgments.jsonl.judge-cache.jsonl"]
    readable = cache_lines(above, task)
    assert readable > 0

    # The judge fixed: the rerun (default bound) asks only for the verdicts it lacks.
    oracle_endpoint.garbles = None
    asked_before = len(oracle_endpoint.requests)
    done = judged(root, above, task, oracle_endpoint.url)
    assert done.returncode == 0, done.stderr
    assert f"{readable} verdicts reused" in done.stderr, done.stderr
    new_requests = oracle_endpoint.requests[asked_before:]
    assert new_requests and all(one_in_three(r["messages"][-1]["content"]) for r in new_requests)
    assert written(above, task) == ["judgments.jsonl", "samples.jsonl", "scores.json"]
    scores = json.loads((judging.answers_dir(above, task) / "scores.json").read_text())
    assert scores["scored"]["items"] == scores["scored"]["of"]


def test_an_empty_reply_beside_a_reasoning_field_is_named_with_the_fix(answered, oracle_endpoint):
    root, answers = answered
    evaluated = answers("model")
    oracle_endpoint.garbage = oracle_endpoint.reasoning_only = True
    done = judged(root, evaluated, mtbench.TASK, oracle_endpoint.url)
    assert done.returncode == 1
    assert "replies are empty while the server returned a reasoning field" in done.stderr
    assert "--reasoning-parser" in done.stderr and "judge.max_tokens (now 1024)" in done.stderr


def test_too_few_verdicts_for_a_metric_is_the_same_clear_error(answered, oracle_endpoint):
    """With the bound lifted, AlpacaEval's length-controlled GLM and WildBench's task macro
    refuse too few verdicts themselves, naming the judge (not scikit-learn's message)."""
    root, answers = answered
    evaluated = answers("model")
    readable_once: set[str] = set()

    def all_but_a_few(prompt: str) -> bool:
        if len(readable_once) < 2 or prompt in readable_once:
            readable_once.add(prompt)
            return False
        return True

    # No answer equal to its reference (a tie is a verdict without asking): every one is asked.
    answers = judging.answers_dir(evaluated, alpacaeval.TASK) / judging.ANSWERS
    records = [json.loads(line) for line in answers.read_text().splitlines()]
    answers.write_text("".join(json.dumps({**r, "output": r["output"] + " Indeed."}) + "\n"
                               for r in records))  # fmt: skip
    oracle_endpoint.garbles = all_but_a_few
    done = judged(root, evaluated, alpacaeval.TASK, oracle_endpoint.url,
                  "--judge-max-unparsable-share", "1")  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "GLM needs at least 5" in done.stderr and "judge oracle at" in done.stderr, done.stderr
    assert "LogisticRegression" not in done.stderr
    readable_once.clear()
    done = judged(root, evaluated, wildbench.TASK, oracle_endpoint.url,
                  "--judge-max-unparsable-share", "1")  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "no readable verdict from judge oracle at" in done.stderr
    assert "in the task categories" in done.stderr, done.stderr
