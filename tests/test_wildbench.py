"""WildBench v2 scoring: the judge's prompt, the reply parser, WB-Score and the task macro by hand,
fetching from file:// sources, the tiny world's bench, and grading through a real local HTTP
judge."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from fake_judge import FakeJudge

from codit.judged import wildbench
from codit.judged.common import results_block
from codit.judged.judge import Judge, JudgeEndpoint
from codit.judged.wildbench import (
    BENCHMARK,
    CATEGORY_WEIGHTS,
    Bench,
    grade,
    parse_score,
    scores,
    task_samples,
)
from codit.tinyworld import wildbench as tiny_wildbench

# Our own stand-in for WildBench's score template: the same four placeholders.
TEMPLATE = (
    "History:\n{$history}<end>\nQuery:\n{$user_query}\n<end>\n"
    "Response:\n{$model_output}\n<end>\nChecklist:\n{$checklist}<end>\nJSON please."
)
TASKS = [
    {"id": "a", "session_id": "s-a", "primary_tag": "Creative Writing", "secondary_tags": [],
     "conversation_input": [{"role": "user", "content": "Write a poem."}],
     "checklist": ["Is it a poem?"]},
    {"id": "b", "session_id": "s-b", "primary_tag": "Coding & Debugging",
     "secondary_tags": ["Reasoning", "Planning"],
     "conversation_input": [
         {"role": "user", "content": "Fix my loop."},
         {"role": "assistant", "content": "Show me the code."},
         {"role": "system", "content": "(a message of another role)"},
         {"role": "user", "content": "for i in x: pass"},
     ],
     "checklist": ["Is the bug found?", "Is the fix correct?"]},
    {"id": "c", "session_id": "s-c", "primary_tag": "Math", "secondary_tags": ["Data Analysis"],
     "conversation_input": [{"role": "user", "content": "2 + 2?"}], "checklist": []},
]  # fmt: skip


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def make_bench(root: Path, tasks: list[dict] = TASKS, template: str = TEMPLATE) -> Path:
    write_jsonl(root / "tasks.jsonl", tasks)
    (root / "eval_template.score.v2.md").write_text(template)
    return root


# --------------------------------------------------------------------------------------------
# The reply parser


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ('{"strengths": "good", "weaknesses": "none", "score": "7"}', 7.0),
        ('  {"strengths": "s", "weaknesses": "w", "score": 8}\n', 8.0),
        ('{"score": "8.5"}', 8.5),
        # not valid JSON (a code fence, a line break inside a string): the fallback reads it
        ('```json\n{"strengths": "a", "weaknesses": "b", "score": "6"}\n```', 6.0),
        ('{"strengths": "line one\nline two", "score": "4"}', 4.0),
        ('Here it is: {"score": 5, "strengths": "x",}', 5.0),  # unquoted, trailing comma
        ('{"score": "3" "score": "9"}', 3.0),  # the first one, as WildBench's regex takes
        # no readable score: unparsable
        ('{"strengths": "s", "weaknesses": "w"}', None),
        ('{"score": "[1~10]"}', None),
        ('{"score": "11"}', None),
        ('{"score": 0}', None),
        ('{"score": true}', None),
        ("The response deserves a 7.", None),
        ("", None),
    ],
)
def test_the_score_is_read_as_json_else_by_wildbenchs_fallback(reply, score):
    assert parse_score(reply) == score


# --------------------------------------------------------------------------------------------
# The judge's prompt


def test_the_prompt_fills_history_query_answer_and_checklist_as_wildbench_does(tmp_path):
    bench = Bench(make_bench(tmp_path / "bench"))
    request = bench.request({"session_id": "s-b", "output": "Use range."}, "judge")
    # history: every message but the last, USER:/ASSISTANT: blocks; other roles left out
    assert request.messages == [
        {
            "role": "user",
            "content": "History:\nUSER: Fix my loop.\n\nASSISTANT: Show me the code.\n\n<end>\n"
            "Query:\nfor i in x: pass\n<end>\nResponse:\nUse range.\n<end>\n"
            "Checklist:\n- Is the bug found?\n- Is the fix correct?\n<end>\nJSON please.",
        }
    ]
    assert request.item == "task 1 (session s-b)"
    # a one-turn task has an empty history; an empty checklist renders as nothing
    first = bench.request({"session_id": "s-c", "output": ["4", "ignored"]}, "judge")
    assert first.messages[0]["content"].startswith("History:\n<end>\nQuery:\n2 + 2?\n<end>\n")
    assert "Response:\n4\n<end>\nChecklist:\n<end>" in first.messages[0]["content"]
    # the key depends on the judge model and the filled prompt
    again = bench.request({"session_id": "s-b", "output": "Use range."}, "judge")
    other_model = bench.request({"session_id": "s-b", "output": "Use range."}, "judge-2")
    other_answer = bench.request({"session_id": "s-b", "output": "Use while."}, "judge")
    assert again.key == request.key
    assert len({request.key, other_model.key, other_answer.key}) == 3


def test_long_texts_are_cut_at_1000_words_and_placeholders_in_answers_stay_text(tmp_path):
    bench = Bench(make_bench(tmp_path / "bench"))
    long_answer = " ".join(f"w{i}" for i in range(1001)) + " {$checklist}"
    prompt = bench.request({"session_id": "s-a", "output": long_answer}, "j").messages[0]
    shown = re.search(r"Response:\n(.*)\n<end>\nChecklist", prompt["content"], re.S).group(1)
    assert shown == " ".join(f"w{i}" for i in range(1000)) + "... (truncated)"
    assert wildbench.shorten("a b c", 3) == "a b c" and wildbench.shorten("a b c d", 3) == (
        "a b c... (truncated)"
    )
    # filled in one pass: a placeholder inside an answer is not replaced
    literal = bench.request({"session_id": "s-a", "output": "see {$checklist}"}, "j")
    assert "Response:\nsee {$checklist}\n<end>" in literal.messages[0]["content"]


def test_what_is_not_wildbench_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tasks.jsonl"):
        Bench(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"no placeholder \{\$model_output\}"):
        Bench(make_bench(tmp_path / "t", template="{$history}{$user_query}{$checklist}"))
    bad_tag = [{**TASKS[0], "secondary_tags": ["Cooking"]}]
    with pytest.raises(ValueError, match=r"task 0: task tags \['Cooking'\] are not WildBench's"):
        Bench(make_bench(tmp_path / "tag", tasks=bad_tag))
    ends_with_answer = [
        {**TASKS[0], "conversation_input": [{"role": "assistant", "content": "Hi"}]}
    ]
    with pytest.raises(ValueError, match="does not end with a user query"):
        Bench(make_bench(tmp_path / "end", tasks=ends_with_answer))
    no_checklist = [{k: v for k, v in TASKS[0].items() if k != "checklist"}]
    with pytest.raises(ValueError, match=r"not a WildBench task \(no checklist\)"):
        Bench(make_bench(tmp_path / "fields", tasks=no_checklist))
    bench = Bench(make_bench(tmp_path / "ok"))
    with pytest.raises(ValueError, match="WildBench: session 'nope' of the answers is not in"):
        bench.request({"session_id": "nope", "output": "x"}, "j")


# --------------------------------------------------------------------------------------------
# WB-Score and the task macro by hand


def judgment(doc_id: int, score: float | None, categories: list[str], length: int = 10) -> dict:
    return {"doc_id": doc_id, "session_id": f"s{doc_id}", "categories": categories,
            "score": score, "output_length": length, "empty_answer": False,
            "truncated_answer": False}  # fmt: skip


CREATIVE, PLANNING, MATH = "Creative Tasks", "Planning & Reasoning", "Math & Data Analysis"
INFO, CODING = "Information/Advice seeking", "Coding & Debugging"
HAND = [
    judgment(0, 8.0, [CREATIVE]),
    judgment(1, 6.0, [CODING, PLANNING]),
    judgment(2, 3.0, [MATH]),
    judgment(3, None, [INFO]),  # unparsable: counted, in no mean
    judgment(4, 10.0, [CREATIVE]),
]


def test_wb_score_and_task_macro_by_hand():
    result = scores(HAND)
    # mean of 8, 6, 3, 10 = 6.75; WB-Score = (6.75 - 5) x 2 x 10 = 35
    assert result["score"] == pytest.approx(6.75)
    assert result["wb_score"] == pytest.approx(35.0)
    # categories: Creative (8 + 10) / 2 = 9 -> adjusted 8; Coding 6 -> 2; Planning 6 -> 2;
    # Math 3 -> -4; Information seeking has no valid score: 0 in a sum over all five weights.
    assert sum(CATEGORY_WEIGHTS.values()) == 4.75
    macro = 10 * (0.5 * 8 + 1.25 * 2 + 1.25 * 2 + 1.0 * -4) / 4.75  # = 10 x 5 / 4.75
    assert result["task_macro"] == pytest.approx(macro) == pytest.approx(10.526315789)
    assert result["categories"] == {
        CODING: {"tasks": 1, "wb_score": pytest.approx(20.0)},
        CREATIVE: {"tasks": 2, "wb_score": pytest.approx(80.0)},
        MATH: {"tasks": 1, "wb_score": pytest.approx(-40.0)},
        PLANNING: {"tasks": 1, "wb_score": pytest.approx(20.0)},
    }
    assert (result["judgments"], result["unparsable"]) == (5, 1)
    assert result["avg_length"] == 10
    assert scores([judgment(0, None, [INFO])])["task_macro"] is None
    # the macro of given category means (the leaderboard's, say): the same formula
    means = {CREATIVE: 9.0, CODING: 6.0, PLANNING: 6.0, MATH: 3.0}
    assert wildbench.task_macro(means) == pytest.approx(macro)
    assert wildbench.task_macro({}) is None


def test_empty_and_cut_answers_count_in_the_score_not_in_the_categories_or_the_length(tmp_path):
    """_create_tables.py (mode score) reads each answer as its v2.0625 result files store it,
    stripped: empty ones and ones ending in "... (truncated)" stay in the mean score (WB-Score)
    and leave the category means and avg_len."""
    empty = {**judgment(5, 1.0, [MATH], length=0), "empty_answer": True}
    cut = {**judgment(6, 2.0, [CREATIVE], length=5000), "truncated_answer": True}
    result = scores([*HAND, empty, cut])
    assert result["score"] == pytest.approx((8 + 6 + 3 + 10 + 1 + 2) / 6)
    assert result["task_macro"] == pytest.approx(scores(HAND)["task_macro"])
    assert result["categories"] == scores(HAND)["categories"]
    assert result["avg_length"] == 10  # of the four kept answers
    assert (result["empty_answers"], result["truncated_answers"]) == (1, 1)
    # the per-task samples still average to the macro: the excluded tasks add 0 to it
    bench = Bench(make_bench(tmp_path / "bench", tasks=five_tasks(7)))
    samples = task_samples(bench, [*HAND, empty, cut])
    assert {s["doc_id"]: s["task_macro"] for s in samples}[5] == 0
    assert sum(s["task_macro"] for s in samples) / len(samples) == pytest.approx(
        result["task_macro"]
    )
    assert sum(s["score"] for s in samples) / len(samples) == pytest.approx(result["score"])


@pytest.mark.parametrize(
    ("output", "length", "empty", "cut"),
    [
        ("  An answer.\n", 10, False, False),
        ("\n \n", 0, True, False),
        ("", 0, True, False),
        (" ".join(["w"] * 1001), 1000 * 2 - 1 + len("... (truncated)"), False, True),
        ("It ends like this... (truncated)\n\n", 32, False, True),
    ],
)
def test_an_answer_is_read_as_wildbenchs_result_files_store_it(output, length, empty, cut):
    shown = wildbench.judged_answer(output)
    assert (len(shown), not shown, shown.endswith(wildbench.TRUNCATED)) == (length, empty, cut)


def test_the_per_task_samples_average_to_the_scores_and_give_the_stderrs(tmp_path):
    bench = Bench(make_bench(tmp_path / "bench", tasks=five_tasks()))
    samples = task_samples(bench, HAND)
    assert [s["doc_id"] for s in samples] == [0, 1, 2, 4]  # the unparsable task is left out
    # task_macro per task: N x sum over its categories of (w / 4.75) / n_c x its wb_score
    by_hand = {
        0: 4 * (0.5 / 4.75 / 2) * 60,
        1: 4 * (1.25 / 4.75 / 1 + 1.25 / 4.75 / 1) * 20,
        2: 4 * (1.0 / 4.75 / 1) * -40,
        4: 4 * (0.5 / 4.75 / 2) * 100,
    }
    assert {s["doc_id"]: s["task_macro"] for s in samples} == pytest.approx(by_hand)
    result = scores(HAND)
    for metric in ("score", "wb_score", "task_macro"):
        mean = sum(s[metric] for s in samples) / len(samples)
        assert mean == pytest.approx(result[metric])
    block = results_block(result, samples, wildbench.METRICS)
    # stderr of score: sd(8, 6, 3, 10) / 2; sd = sqrt(sum of squared deviations / 3)
    deviations = [8 - 6.75, 6 - 6.75, 3 - 6.75, 10 - 6.75]
    stderr = (sum(d * d for d in deviations) / 3) ** 0.5 / 2
    assert block["score_stderr,none"] == pytest.approx(stderr)
    assert block["wb_score_stderr,none"] == pytest.approx(20 * stderr)
    assert set(block) == {f"{m}{s},none" for m in ("score", "wb_score", "task_macro")
                          for s in ("", "_stderr")}  # fmt: skip
    assert samples[0]["filter"] == "none" and samples[0]["metrics"] == [
        "score", "wb_score", "task_macro",
    ]  # fmt: skip
    assert len(samples[0]["doc_hash"]) == 64 and samples[0]["doc_hash"] != samples[1]["doc_hash"]


def five_tasks(count: int = 5) -> list[dict]:
    """Five tasks (doc_ids 0..4) for the hand-made judgments."""
    return [{**TASKS[i % 3], "id": str(i), "session_id": f"s{i}"} for i in range(count)]


# --------------------------------------------------------------------------------------------
# Fetching


def write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def dataset_rows() -> list[dict]:
    """Rows with the v2 config's columns, extra fields included."""
    rows = []
    for task in TASKS:
        messages = [{**m, "language": "English", "redacted": False, "toxic": False,
                     "timestamp": None} for m in task["conversation_input"]]  # fmt: skip
        rows.append({**task, "conversation_input": messages, "intent": "i", "length": 1,
                     "references": {"gpt-4": "ref"}})  # fmt: skip
    return rows


def fetch_argv(out: Path, data: Path, code: Path, *extra: str) -> list[str]:
    """A fetch of our stand-in template: any template digest accepted unless `extra` says."""
    argv = ["fetch", "--out", str(out), "--data-source", data.as_uri()]
    return [*argv, "--template-source", code.as_uri(), "--template-sha256", "", *extra]


def command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    wildbench.add_arguments(parser)
    wildbench.run(parser.parse_args(argv))


def test_fetch_writes_the_tasks_and_the_template_into_a_bench_folder(tmp_path):
    data, code = tmp_path / "hf", tmp_path / "github"  # the two repositories, as file:// URLs
    write_parquet(data / "v2" / "test-00000-of-00001.parquet", dataset_rows())
    (code / "evaluation").mkdir(parents=True)
    (code / "evaluation" / "eval_template.score.v2.md").write_text(TEMPLATE)
    out = tmp_path / "hub" / "wildbench"
    command(fetch_argv(out, data, code, "--tasks", "3"))
    bench = Bench(out)
    assert [t["session_id"] for t in bench.tasks] == ["s-a", "s-b", "s-c"]
    assert bench.tasks[1] == TASKS[1]  # only the fields the bench keeps, messages as role/content
    assert bench.template == TEMPLATE
    assert sorted(p.name for p in out.iterdir()) == [
        "eval_template.score.v2.md", "manifest.json", "tasks.jsonl",
    ]  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tasks"] == 3
    assert manifest["files"]["data"]["url"].endswith("hf/v2/test-00000-of-00001.parquet")
    assert manifest["files"]["template"]["url"].endswith(
        "github/evaluation/eval_template.score.v2.md"
    )
    # the default expects v2's 1,024 tasks and WildBench's own template (by its digest); a
    # failed fetch leaves no folder behind
    other = tmp_path / "other"
    with pytest.raises(ValueError, match=r"eval_template.score.v2.md has the sha256 [0-9a-f]{64}, "
                       f"not {wildbench.TEMPLATE_SHA256}"):  # fmt: skip
        command(fetch_argv(other, data, code, "--tasks", "3", "--template-sha256",
                           wildbench.TEMPLATE_SHA256))  # fmt: skip
    with pytest.raises(ValueError, match="holds 3 tasks, not 1024"):
        command(fetch_argv(other, data, code))
    (code / "evaluation" / "eval_template.score.v2.md").write_text("Rate it: {$model_output}")
    with pytest.raises(ValueError, match="not WildBench's score template"):
        command(fetch_argv(other, data, code, "--tasks", "3"))
    with pytest.raises(ValueError, match=r"WildBench: cannot fetch file://.*/v2/nothing.parquet"):
        command(fetch_argv(other, data, code, "--data-file", "v2/nothing.parquet"))
    assert not other.exists()
    assert Bench(out).template == TEMPLATE  # the earlier fetch is untouched


def test_the_pinned_sources_are_full_commits():
    run = wildbench.FetchRun(out=Path("x"))
    assert re.fullmatch(r"https://huggingface.co/datasets/allenai/WildBench/resolve/[0-9a-f]{40}",
                        run.data_source)  # fmt: skip
    assert re.fullmatch(r"https://raw.githubusercontent.com/allenai/WildBench/[0-9a-f]{40}",
                        run.template_source)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Grading through a real local HTTP judge


def score_by_words(prompt: str) -> str:
    """Scores the answer by its word count (1..10): JSON for even counts, fenced for odd."""
    answer = re.search(r"Response:\n(.*)\n<end>\nChecklist", prompt, re.S).group(1)
    words = max(1, min(10, len(answer.split())))
    body = json.dumps({"strengths": "s", "weaknesses": "w", "score": str(words)}, indent=1)
    return body if words % 2 == 0 else f"```json\n{body}\n```"


@pytest.fixture
def server():
    fake = FakeJudge(score_by_words)
    yield fake
    fake.close()


def judge(server: FakeJudge) -> Judge:
    endpoint = JudgeEndpoint(url=server.url, model="judge", workers=2)
    return Judge(
        endpoint, benchmark=BENCHMARK, prompt_version=wildbench.PROMPT_VERSION, parse=parse_score
    )


ANSWERS = [
    {"session_id": "s-a", "output": "one two three four five six seven eight"},  # 8
    {"session_id": "s-b", "output": "one two three"},  # 3, fenced
    {"session_id": "s-c", "output": ""},  # empty: judged too, scored 1
]


def test_grading_asks_the_judge_once_per_answer_and_scores_by_hand(server, tmp_path):
    bench = Bench(make_bench(tmp_path / "bench"))
    judgments, result = grade(bench, ANSWERS, judge(server))
    assert [(j["doc_id"], j["score"], j["categories"]) for j in judgments] == [
        (0, 8.0, [CREATIVE]),
        (1, 3.0, [CODING, PLANNING]),
        (2, 1.0, [MATH]),
    ]
    assert len(server.requests) == 3
    assert all(r["temperature"] == 0 and len(r["messages"]) == 1 for r in server.requests)
    assert all(r["messages"][0]["role"] == "user" for r in server.requests)
    # mean 4; WB-Score (4 - 5) x 20 = -20; macro: Creative 8 -> 6, Coding 3 -> -4,
    # Planning 3 -> -4, Math 1 -> -8
    assert result["score"] == pytest.approx(4.0) and result["wb_score"] == pytest.approx(-20.0)
    # Math's only answer is empty: it leaves the category means (Math counts 0), not the mean
    macro = 10 * (0.5 * 6 + 1.25 * -4 + 1.25 * -4) / 4.75
    assert result["task_macro"] == pytest.approx(macro)
    assert (result["unparsable"], result["empty_answers"], result["truncated_answers"]) == (0, 1, 0)
    assert [j["output_length"] for j in judgments] == [39, 13, 0]
    assert result["avg_length"] == pytest.approx((39 + 13) / 2)
    with pytest.raises(ValueError, match="session 's-a' answered twice"):
        grade(bench, [ANSWERS[0], ANSWERS[0]], judge(server))


def test_an_unparsable_reply_is_asked_again_then_counted_and_left_out(server, tmp_path):
    server.garbage = True
    bench = Bench(make_bench(tmp_path / "bench"))
    judgments, result = grade(bench, ANSWERS[:1], judge(server))
    assert len(server.requests) == 3  # asked once and twice again (codit.judged.judge)
    assert judgments[0]["score"] is None and judgments[0]["reply"] == "no verdict"
    assert (result["score"], result["wb_score"], result["task_macro"]) == (None, None, None)
    assert (result["judgments"], result["unparsable"], result["categories"]) == (1, 1, {})
    assert task_samples(bench, judgments) == []


def test_the_command_writes_an_evaluation_the_report_reads(server, tmp_path):
    from codit.report.stats import item_scores
    from codit.report.tables import main_table

    bench = make_bench(tmp_path / "bench")
    answers, card = tmp_path / "answers.jsonl", tmp_path / "answers.card.json"
    write_jsonl(answers, ANSWERS)
    labels = {"teacher_pair": "p", "student": "s", "arm": "direct", "seed": "0"}
    card.write_text(json.dumps({"model": "models/s", "labels": labels}))
    out, scores_path = tmp_path / "judgments.jsonl", tmp_path / "scores.json"
    argv = ["judge", "--bench", str(bench), "--answers", str(answers), "--answers-card", str(card)]
    argv += ["--out", str(out), "--scores", str(scores_path)]
    command([*argv, "--judge-url", server.url, "--judge-model", "judge"])
    payload = json.loads(scores_path.read_text())
    block = payload["results"]["wildbench"]
    assert block["score,none"] == pytest.approx(4.0)
    assert block["wb_score,none"] == pytest.approx(-20.0)
    # sd(8, 3, 1) / sqrt(3): squared deviations from 4 sum to 26, over n - 1 = 2
    assert block["score_stderr,none"] == pytest.approx((26 / 2) ** 0.5 / 3**0.5)
    samples = payload["codit"]["sample_files"]["wildbench"]
    assert samples == str(tmp_path / "samples.jsonl")
    assert item_scores(samples, "wb_score") == pytest.approx({0: 60.0, 1: -40.0, 2: -80.0})
    macro = item_scores(samples, "task_macro")
    assert sum(macro.values()) / 3 == pytest.approx(block["task_macro,none"])
    assert payload["higher_is_better"]["wildbench"] == {
        "score": True, "wb_score": True, "task_macro": True,
    }  # fmt: skip
    assert payload["judge"]["model"] == "judge" and len(payload["answers_sha256"]) == 64
    assert [json.loads(line)["score"] for line in out.read_text().splitlines()] == [8.0, 3.0, 1.0]
    assert not Path(f"{out}.judge-cache.jsonl").exists()
    rows = main_table([(str(scores_path), payload)])
    found = set(zip(rows["task"], rows["metric"], strict=True))
    assert {("wildbench", "wb_score"), ("wildbench", "task_macro")} <= found
    assert set(rows["arm"]) == {"direct"}


# --------------------------------------------------------------------------------------------
# The tiny world's WildBench


def tiny_item(index: int) -> dict:
    """A held-out item as the tiny world writes them (codit.tinyworld.corpus.make_instruction)."""
    constraints = [{"type": "upper", "kwargs": {}}]
    if index % 3 == 2:
        constraints.append({"type": "suffix", "kwargs": {"suffix": "That is all."}})
    describe = index % 4 == 0
    request = f"Describe Zorb{index}." if describe else f"What is the capital of Zorb{index}?"
    return {
        "instruction": f"{request} Answer using only CAPITAL letters.",
        "request": request,
        "constraints": constraints,
        "subject": f"Zorb{index}",
        "answer": None if describe else f"Kel{index}",
        "response": "IRRELEVANT",
    }


def test_the_tiny_bench_holds_checklists_of_constraints_and_facts(tmp_path):
    items = [tiny_item(i) for i in range(60)]
    tiny_wildbench.write_tiny_bench(tmp_path / "wb", items, count=10, skip=16)
    bench = Bench(tmp_path / "wb")  # a bench like WildBench's
    assert len(bench.tasks) == 10
    picked = [t["tinyworld"]["subject"] for t in bench.tasks]
    assert picked == [f"Zorb{16 + i * 44 // 10}" for i in range(10)]  # spread over items[16:]
    # every category of the macro is present
    assert {c for t in bench.tasks for c in wildbench.categories_of(t)} == set(CATEGORY_WEIGHTS)
    first, second = bench.tasks[0], bench.tasks[1]  # items 16 (describe) and 20 (describe)
    assert first["conversation_input"] == [{"role": "user", "content": items[16]["instruction"]}]
    assert [m["role"] for m in second["conversation_input"]] == ["user", "assistant", "user"]
    assert second["conversation_input"][0]["content"] == items[20]["request"]
    assert first["checklist"] == [
        "Does the response follow the instruction: Write your entire answer in capital letters.",
        "Does the response state facts about Zorb16 and no facts of others?",
    ]
    with_suffix = next(t for t in bench.tasks if len(t["tinyworld"]["constraints"]) == 2)
    assert any('"That is all."' in entry for entry in with_suffix["checklist"])
    fact = next(t for t in bench.tasks if t["tinyworld"]["answer"] is not None)
    answer = fact["tinyworld"]["answer"]
    assert fact["checklist"][-1] == f"Does the response give {answer} as the answer?"
    # a tiny judge reads the query and the response back from the filled template
    prompt = bench.request({"session_id": second["session_id"], "output": "HI.\nTHERE"}, "j")
    content = prompt.messages[0]["content"]
    parts = tiny_wildbench.TINY_PROMPT.search(content).groups()
    assert parts == (items[20]["instruction"], "HI.\nTHERE")
    assert "USER: Describe Zorb20.\n\nASSISTANT: Sure." in content
    with pytest.raises(ValueError, match="44 held-out items after 16, need 50"):
        tiny_wildbench.write_tiny_bench(tmp_path / "too-many", items, count=50)
