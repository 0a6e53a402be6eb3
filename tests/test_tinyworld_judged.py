"""The tiny world's AlpacaEval 2 and WildBench: their bench folders and the world's served judge
(codit.tinyworld.judge) asked through codit.judged.alpacaeval's and codit.judged.wildbench's own
paths."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
import tinyworld_cache

from codit.judged import alpacaeval, alpacaeval_metrics, judging, mtbench, wildbench
from codit.judged.judge import Judge, JudgeEndpoint, JudgeError, JudgeRequest
from codit.judged.judge_server import judge_at
from codit.tinyworld import alpacaeval as tiny
from codit.tinyworld import judge as tiny_judge
from codit.tinyworld import wildbench as tiny_wildbench
from codit.tinyworld.corpus import build_splits
from codit.tinyworld.mtbench import QUESTIONS
from codit.tinyworld.mtbench import write_bench as write_mtbench
from codit.tinyworld.oracle import Oracle
from codit.tinyworld.world import generate_world
from codit.workflow.provenance import read_json, read_jsonl, write_json, write_jsonl

os.environ.setdefault("HF_HUB_OFFLINE", "1")
POOR = "I do not know."  # the stand-in reference output of the fast tests


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A world with the oracle's files and both bench folders (no models: POOR references)."""
    root = tmp_path_factory.mktemp("tw") / "world"
    facts = generate_world(0)
    splits = build_splits(facts, 0, pool_size=8, posttrain_size=8)
    write_json(root / "world.json", facts)
    pool = [{"id": f"tw-{i}", **item} for i, item in enumerate(splits["pool"])]
    write_jsonl(root / "instructions" / "pool.jsonl", pool)
    items = splits["ifeval"]
    tiny_wildbench.write_tiny_bench(root / tiny_judge.WILDBENCH_FOLDER, items)
    references = {item["instruction"]: POOR for item in tiny.tiny_items(items)}
    tiny.write_tiny_bench(root / tiny.FOLDER, items, references)
    write_mtbench(root / "mt_bench", items)
    return root, items


@pytest.fixture(scope="module")
def served(world, tmp_path_factory) -> JudgeEndpoint:
    """The world's judge as a real server process, for the module's tests."""
    serve = f"{sys.executable} -m codit tinyworld judge --world {world[0]} --port {{port}}"
    endpoint = JudgeEndpoint(serve=serve, model=tiny_judge.MODEL_NAME, workers=2, retries=0)
    log = tmp_path_factory.mktemp("log") / "judge-server.log"
    with judge_at(endpoint, log) as running:
        yield running


def test_copies_agree_with_the_benchmark_modules():
    """The judge server keeps copies of these (it starts without numpy and scipy)."""
    assert tiny_judge.WILDBENCH_PROMPT.pattern == tiny_wildbench.TINY_PROMPT.pattern
    assert tiny_judge.WILDBENCH_PROMPT.flags == tiny_wildbench.TINY_PROMPT.flags
    assert tiny_judge.TASKS_FILE == wildbench.TASKS_FILE
    assert (tiny.FIRST, tiny.SECOND) == (alpacaeval.FIRST, alpacaeval.SECOND)
    assert (tiny.REFERENCE_FILE, tiny.TEMPLATE_FILE) == (
        alpacaeval.REFERENCE_FILE,
        alpacaeval.TEMPLATE_FILE,
    )


def test_the_tiny_alpaca_bench_is_accepted_and_shares_no_item(world):
    root, items = world
    bench = alpacaeval.Bench(root / tiny.FOLDER)
    assert len(bench.references) == tiny.TINY_ITEMS == 32
    assert bench.gamed is None and bench.difficulty is None  # length_controlled_minimal
    assert [m["role"] for m in bench.messages] == ["system", "user"]
    ours = {r["instruction"] for r in bench.references}
    mt_bench = {item["instruction"] for item in items[:QUESTIONS]}
    wild = {
        t["conversation_input"][-1]["content"] for t in wildbench.Bench(root / "wildbench").tasks
    }
    assert not ours & mt_bench and not ours & wild and len(wild) == tiny_wildbench.TINY_TASKS
    combos = {len(r["tinyworld"]["constraints"]) for r in bench.references}
    assert combos == {1, 2, 3}
    first = bench.references[0]
    assert first["output"] == POOR and first["generator"] == tiny.GENERATOR
    assert first["tinyworld"]["answer"] == tiny.tiny_items(items)[0]["answer"]
    with pytest.raises(ValueError, match="no reference output"):
        tiny.write_tiny_bench(root / "other", items, {})


def logistic(difference: float) -> float:
    return 1 / (1 + math.exp(-difference / tiny_judge.PAIRWISE_TEMPERATURE))


def seed_with_order(instruction: str, model_first: bool) -> int:
    return next(
        s for s in range(100) if alpacaeval.model_shown_first(s, instruction) is model_first
    )


def ask_pairwise(bench, endpoint, instruction_id, output, seed, top) -> tuple[dict, bool]:
    judge = alpacaeval.judge_for(endpoint, top_logprobs=top)
    request, first = bench.request(
        instruction_id, output, endpoint.model, seed=seed, top_logprobs=top
    )
    return judge.ask([request])[request.key], first


def test_pairwise_verdicts_in_both_orders_plain_and_weighted(world, served):
    """Gold answer (the model's) against the POOR reference, shown first and second: the reply,
    the log-probabilities and the preference with the order undone, by hand."""
    root, items = world
    bench = alpacaeval.Bench(root / tiny.FOLDER)
    oracle = Oracle(root)
    gold = {item["instruction"]: item["response"] for item in items}
    # An instruction whose POOR reference meets a constraint: a difference below 1.
    index = next(
        i for i, r in enumerate(bench.references) if oracle.score(r["tinyworld"], POOR)["score"] > 0
    )
    reference = bench.references[index]
    answer = gold[reference["instruction"]]
    good, poor = (oracle.score(reference["tinyworld"], text)["score"] for text in (answer, POOR))
    assert good == 1.0 and 0 < poor < good
    p_better = logistic(good - poor)  # p that the better output is named
    assert 0.5 < p_better < 1
    for model_first in (True, False):
        seed = seed_with_order(reference["instruction"], model_first)
        plain, first = ask_pairwise(bench, served, index, answer, seed, 0)
        assert first is model_first
        assert plain["reply"] == ("m" if model_first else "M") and "top_logprobs" not in plain
        assert plain["verdict"] == (1 if model_first else 2)
        shown, kind = alpacaeval.shown_preference(plain)
        assert kind == "plain" and alpacaeval.model_preference(shown, first) == 2.0

        weighted, first = ask_pairwise(bench, served, index, answer, seed, alpacaeval.TOP_LOGPROBS)
        top = weighted["top_logprobs"]
        p_first = p_better if model_first else 1 - p_better
        assert [t["token"] for t in top] == (["m", "M"] if model_first else ["M", "m"])
        by_token = {t["token"]: t["logprob"] for t in top}
        assert by_token["m"] == pytest.approx(math.log(p_first))
        assert by_token["M"] == pytest.approx(math.log(1 - p_first))
        shown, kind = alpacaeval.shown_preference(weighted)
        assert kind == "weighted" and shown == pytest.approx(2 - p_first)
        assert alpacaeval.model_preference(shown, first) == pytest.approx(1 + p_better)

        # The model's output equal to the reference: a tie, "m" in plain, 0.5 / 0.5 weighted.
        tie, first = ask_pairwise(bench, served, index, POOR, seed, alpacaeval.TOP_LOGPROBS)
        assert tie["reply"] == "m"
        assert [t["logprob"] for t in tie["top_logprobs"]] == pytest.approx([math.log(0.5)] * 2)
        shown, _ = alpacaeval.shown_preference(tie)
        assert alpacaeval.model_preference(shown, first) == pytest.approx(1.5)
    one, _ = ask_pairwise(bench, served, index, answer, 0, 1)  # top_logprobs 1: "m" or "M" only
    assert len(one["top_logprobs"]) == 1


def test_judge_outputs_over_the_tiny_bench(world, served):
    """codit.judged.alpacaeval's whole judging path: gold answers beat the POOR references."""
    root, items = world
    bench = alpacaeval.Bench(root / tiny.FOLDER)
    outputs = [
        {"instruction": item["instruction"], "output": item["response"]}
        for item in tiny.tiny_items(items)
    ]
    judgments = alpacaeval.judge_outputs(bench, outputs, alpacaeval.judge_for(served), seed=3)
    assert {j["verdict_kind"] for j in judgments} == {"weighted"}
    assert {j["model_shown_first"] for j in judgments} == {True, False}
    assert all(j["preference"] > 1.5 for j in judgments)
    assert alpacaeval_metrics.win_rate([j["preference"] for j in judgments])["n_wins"] == 32


def test_wildbench_scores_are_the_oracles_ratings(world, served):
    """codit.judged.wildbench's grade path: each score is 1 + round(9 x the oracle's score)."""
    root, items = world
    bench = wildbench.Bench(root / tiny_judge.WILDBENCH_FOLDER)
    oracle = Oracle(root)
    gold = {item["instruction"]: item["response"] for item in items}
    answers = []
    for index, task in enumerate(bench.tasks):
        response = gold[task["tinyworld"]["instruction"]]
        output = [response, POOR, response.upper(), response.lower()][index % 4]
        answers.append({"session_id": task["session_id"], "output": output})
    judge = Judge(
        served, benchmark=wildbench.BENCHMARK, prompt_version=wildbench.PROMPT_VERSION,
        parse=wildbench.parse_score,
    )  # fmt: skip
    judgments, scores = wildbench.grade(bench, answers, judge)
    expected = [
        1 + round(9 * oracle.score(task["tinyworld"], answer["output"])["score"])
        for task, answer in zip(bench.tasks, answers, strict=True)
    ]
    assert [j["score"] for j in judgments] == expected
    assert len(set(expected)) > 2 and scores["unparsable"] == 0
    reply = json.loads(judgments[0]["reply"])
    assert set(reply) == {"strengths", "weaknesses", "score"} and reply["score"] == "10"


def test_the_served_judge_refuses_an_instruction_it_does_not_hold(world, served):
    root, _ = world
    bench = alpacaeval.Bench(root / tiny.FOLDER)
    fields = {"instruction": "Not an instruction of the world.", "output_1": "a", "output_2": "b"}
    messages = [{**m, "content": alpacaeval.fill(m["content"], fields)} for m in bench.messages]
    judge = alpacaeval.judge_for(served)
    with pytest.raises(JudgeError, match=r"HTTP 400.*no instruction 'Not an instruction"):
        judge.ask([JudgeRequest("k", messages, "instruction x")])


@pytest.mark.slow
def test_reference_answers_of_the_trained_instruct_model(tinyworld_build, tmp_path):
    """write_world_bench on a built world: the instruct model's greedy answers (the same when
    generated again) as the references; gold answers win or tie against every one."""
    root = tinyworld_cache.copy_into(tinyworld_build, tmp_path)
    folder = tiny.write_world_bench(root)
    references = read_json(folder / tiny.REFERENCE_FILE)
    assert len(references) == tiny.TINY_ITEMS and alpacaeval.Bench(folder).gamed is None
    items = tiny.tiny_items(tiny.held_out_items(root))
    again = tiny.reference_answers(root, items)
    assert [r["output"] for r in references] == [again[item["instruction"]] for item in items]
    oracle = Oracle(root)
    scores = [oracle.score(r["tinyworld"], r["output"])["score"] for r in references]
    assert sum(scores) / len(scores) > 0.2, scores  # the instruct model answers, if imperfectly
    serve = f"{sys.executable} -m codit tinyworld judge --world {root} --port {{port}}"
    endpoint = JudgeEndpoint(serve=serve, model=tiny_judge.MODEL_NAME, workers=2)
    outputs = [{"instruction": item["instruction"], "output": item["response"]} for item in items]
    with judge_at(endpoint, tmp_path / "judge.log") as running:
        judgments = alpacaeval.judge_outputs(
            alpacaeval.Bench(folder), outputs, alpacaeval.judge_for(running)
        )
    assert all(j["preference"] >= 1.5 for j in judgments)
    for judgment, score in zip(judgments, scores, strict=True):
        assert judgment["preference"] == pytest.approx(1 + logistic(1.0 - score))


def write_answers_of_every_benchmark(root: Path, items: list[dict], evaluated: Path) -> None:
    """Gold answers (every other one POOR) to the three tiny benches, with their cards."""
    gold = {item["instruction"]: item["response"] for item in items}

    def answer(instruction: str, index: int) -> str:
        return gold[instruction] if index % 2 else POOR

    questions = read_jsonl(root / "mt_bench" / "question.jsonl")
    references = read_json(root / tiny.FOLDER / tiny.REFERENCE_FILE)
    tasks = read_jsonl(root / tiny_judge.WILDBENCH_FOLDER / tiny_judge.TASKS_FILE)
    answers = {
        mtbench.TASK: [
            {"question_id": q["question_id"], "turns": [answer(q["turns"][0], i), POOR]}
            for i, q in enumerate(questions)
        ],
        alpacaeval.TASK: [
            {"instruction": r["instruction"], "output": answer(r["instruction"], i)}
            for i, r in enumerate(references)
        ],
        wildbench.TASK: [
            {"session_id": t["session_id"], "output": answer(t["tinyworld"]["instruction"], i)}
            for i, t in enumerate(tasks)
        ],
    }
    for task, records in answers.items():
        folder = judging.answers_dir(evaluated, task)
        write_jsonl(folder / judging.ANSWERS, records)
        write_json(folder / judging.ANSWERS_CARD, {"model": "gold", "labels": {"arm": "gold"}})


def test_one_judging_job_serves_the_judge_once_for_every_benchmark(world, tmp_path):
    """`codit judged`: one server start; each benchmark's files equal its own command's."""
    root, items = world
    together, alone = tmp_path / "together" / "model", tmp_path / "alone" / "model"
    write_answers_of_every_benchmark(root, items, together)
    write_answers_of_every_benchmark(root, items, alone)
    serve = f"{sys.executable} -m codit tinyworld judge --world {root} --port {{port}}"
    endpoint = JudgeEndpoint(serve=serve, model=tiny_judge.MODEL_NAME, workers=2, retries=0)
    benches = {mtbench.TASK: root / "mt_bench", alpacaeval.TASK: root / tiny.FOLDER,
               wildbench.TASK: root / tiny_judge.WILDBENCH_FOLDER}  # fmt: skip
    run = judging.JudgingRun(evaluated=str(together), benches=benches, judge=endpoint)
    payloads = judging.judge_all(run)
    assert list(payloads) == [mtbench.TASK, alpacaeval.TASK, wildbench.TASK]
    log = run.server_log_path.read_text()
    assert log.count("starting judge server") == 1, log
    # The same answers graded by each benchmark's own judging command (its own server).
    alone_run = judging.JudgingRun(evaluated=str(alone), benches=benches, judge=endpoint)
    for task in run.tasks:
        grade, grading = alone_run.grading(task)
        grade(grading)
        for name in judging.JUDGED_FILES[:2]:
            ours = (judging.answers_dir(together, task) / name).read_text()
            theirs = (judging.answers_dir(alone, task) / name).read_text()
            assert ours == theirs, (task, name)
        scores = read_json(judging.answers_dir(together, task) / "scores.json")
        own = read_json(judging.answers_dir(alone, task) / "scores.json")
        assert scores["results"] == own["results"] and scores["codit"]["labels"] == {"arm": "gold"}
    # the POOR answers are the tiny world's POOR reference outputs: ties, the judge not asked
    verdicts = payloads[alpacaeval.TASK]["verdicts"]
    assert verdicts["weighted"] == verdicts["identical"] == tiny.TINY_ITEMS // 2
    assert 0 < payloads[alpacaeval.TASK]["win_rate"] < 100  # gold wins, POOR loses
    assert payloads[wildbench.TASK]["unparsable"] == 0


def test_a_judging_job_without_answers_stops_before_a_judge_starts(world, tmp_path):
    root, _ = world
    endpoint = JudgeEndpoint(serve="false {port}", model="m")
    benches = {wildbench.TASK: root / tiny_judge.WILDBENCH_FOLDER}
    run = judging.JudgingRun(evaluated=str(tmp_path / "model"), benches=benches, judge=endpoint)
    with pytest.raises(ValueError, match=r"wildbench: no .*model\.wildbench/answers\.jsonl"):
        judging.judge_all(run)
    assert not run.server_log_path.exists()
    with pytest.raises(ValueError, match="give the bench folder of a benchmark .--mt-bench, "
                       "--alpaca-eval, --wildbench."):  # fmt: skip
        judging.judge_all(judging.JudgingRun(evaluated="x", benches={}, judge=endpoint))
