"""MT-Bench grading: FastChat's prompt choice, rating parsing and means, by hand on a few items,
through the judge client against a real local HTTP server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from fake_judge import FakeJudge
from tiny_models import save_tiny_llama
from transformers import AutoModelForCausalLM, AutoTokenizer

from codit.cli import main
from codit.judged.judge import Judge, JudgeEndpoint
from codit.judged.mtbench import BENCHMARK, Bench, grade, parse_rating

# Our own stand-ins for FastChat's four single-answer prompts: same names, same fields.
PROMPTS = [
    {"name": "single-v1", "system_prompt": "S1", "output_format": "[[rating]]",
     "prompt_template": "[Question]\n{question}\n[Answer]\n{answer}\n[End]"},
    {"name": "single-math-v1", "system_prompt": "S1", "output_format": "[[rating]]",
     "prompt_template": "[Question]\n{question}\n[Reference]\n{ref_answer_1}\n"
                        "[Answer]\n{answer}\n[End]"},
    {"name": "single-v1-multi-turn", "system_prompt": "S2", "output_format": "[[rating]]",
     "prompt_template": "U:{question_1}\nA:{answer_1}\nU:{question_2}\n"
                        "[Answer]\n{answer_2}\n[End]"},
    {"name": "single-math-v1-multi-turn", "system_prompt": "S2", "output_format": "[[rating]]",
     "prompt_template": "R:{ref_answer_1}|{ref_answer_2}\nU:{question_1}\nA:{answer_1}\n"
                        "U:{question_2}\n[Answer]\n{answer_2}\n[End]"},
]  # fmt: skip
QUESTIONS = [
    {"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Shorter."]},
    {"question_id": 111, "category": "math", "turns": ["2 + 2?", "Times 3?"]},
]
REFERENCES = [{"question_id": 111, "choices": [{"turns": ["4", "12"]}]}]
ANSWERS = [
    {"question_id": 81, "turns": ["one two three four five six", "one two"]},
    {"question_id": 111, "turns": ["four", "twelve it is"]},
]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def make_bench(root: Path, references: list[dict] = REFERENCES) -> Path:
    write_jsonl(root / "question.jsonl", QUESTIONS)
    write_jsonl(root / "judge_prompts.jsonl", PROMPTS)
    write_jsonl(root / "reference_answer" / "gpt-4.jsonl", references)
    return root


def words_of_answer(prompt: str) -> str:
    """Rates the graded answer by its word count (at most 10)."""
    answer = re.search(r"\[Answer\]\n(.*)\n\[End\]", prompt, re.S).group(1)
    return f"Judged.\nRating: [[{min(10, len(answer.split()))}]]"


@pytest.fixture
def server():
    fake = FakeJudge(words_of_answer)
    yield fake
    fake.close()


def judge(server: FakeJudge) -> Judge:
    endpoint = JudgeEndpoint(url=server.url, model="judge", workers=2)
    return Judge(endpoint, benchmark=BENCHMARK, prompt_version="fastchat", parse=parse_rating)


@pytest.mark.parametrize(
    ("reply", "rating"),
    [("Rating: [[7]]", 7.0), ("[[8.5]] then [[2]]", 8.5), ("no double [6]", 6.0),
     ("[[x]] but [3]", 3.0), ("Rating: 7", None)],
)  # fmt: skip
def test_ratings_are_parsed_as_fastchat_parses_them(reply, rating):
    assert parse_rating(reply) == rating


def test_each_turn_gets_fastchats_prompt_and_the_means_are_by_hand(server, tmp_path):
    judgments, scores = grade(Bench(make_bench(tmp_path / "bench")), ANSWERS, judge(server))
    assert [(j["question_id"], j["turn"], j["judge_prompt"], j["rating"]) for j in judgments] == [
        (81, 1, "single-v1", 6.0),
        (81, 2, "single-v1-multi-turn", 2.0),
        (111, 1, "single-math-v1", 1.0),
        (111, 2, "single-math-v1-multi-turn", 3.0),
    ]
    assert scores == {"turn_1": 3.5, "turn_2": 2.5, "score": 3.0, "judgments": 4, "unparsable": 0}
    sent = [request["messages"] for request in server.requests]
    assert all(messages[0]["role"] == "system" for messages in sent)
    by_system = {m[0]["content"] for m in sent}
    assert by_system == {"S1", "S2"}
    math_turn_2 = next(m[1]["content"] for m in sent if m[1]["content"].startswith("R:4|12"))
    assert "U:2 + 2?\nA:four\nU:Times 3?" in math_turn_2  # the whole conversation
    assert all(request["temperature"] == 0 for request in server.requests)


def test_an_unparsable_judgment_is_counted_and_left_out_of_the_means(server, tmp_path):
    server.garbage = True
    judgments, scores = grade(Bench(make_bench(tmp_path / "bench")), ANSWERS[:1], judge(server))
    assert [j["rating"] for j in judgments] == [None, None]
    assert scores == {"turn_1": None, "turn_2": None, "score": None, "judgments": 2,
                      "unparsable": 2}  # fmt: skip


def test_missing_reference_and_unknown_question_are_named(tmp_path, server):
    bench = Bench(make_bench(tmp_path / "bench", references=[]))
    with pytest.raises(ValueError, match=r"question 111 \(math\) is graded against a reference"):
        grade(bench, ANSWERS, judge(server))
    with pytest.raises(ValueError, match=r"MT-Bench: question 7 of the answers is not in"):
        grade(bench, [{"question_id": 7, "turns": ["a", "b"]}], judge(server))
    (tmp_path / "bench" / "judge_prompts.jsonl").write_text(json.dumps(PROMPTS[0]) + "\n")
    with pytest.raises(ValueError, match="no judge prompt single-math-v1, single-math-v1-multi"):
        Bench(tmp_path / "bench")


def test_the_command_writes_judgments_and_scores_and_a_killed_run_asks_only_the_rest(
    server, tmp_path
):
    bench = make_bench(tmp_path / "bench")
    answers = tmp_path / "answers.jsonl"
    write_jsonl(answers, ANSWERS)
    out, scores = tmp_path / "judgments.jsonl", tmp_path / "scores.json"
    # The killed run: the first answer's two verdicts reached the cache.
    cached = Judge(
        JudgeEndpoint(url=server.url, model="judge"), benchmark=BENCHMARK,
        prompt_version="fastchat", parse=parse_rating, cache=Path(f"{out}.judge-cache.jsonl"),
    )  # fmt: skip
    grade(Bench(bench), ANSWERS[:1], cached)
    assert len(server.requests) == 2
    argv = ["mtbench", "judge", "--bench", str(bench), "--answers", str(answers)]
    argv += ["--out", str(out), "--scores", str(scores)]
    main([*argv, "--judge-url", server.url, "--judge-model", "judge"])
    assert len(server.requests) == 4  # only the second answer's turns were asked
    assert [row["rating"] for row in map(json.loads, out.read_text().splitlines())] == [
        6.0, 2.0, 1.0, 3.0,
    ]  # fmt: skip
    result = json.loads(scores.read_text())
    assert (result["benchmark"], result["score"], result["unparsable"]) == ("MT-Bench", 3.0, 0)
    assert result["judge"]["model"] == "judge" and len(result["answers_sha256"]) == 64
    assert not Path(f"{out}.judge-cache.jsonl").exists()


def test_the_scores_are_an_evaluation_the_report_reads_with_per_question_samples(server, tmp_path):
    from codit.report.stats import item_scores
    from codit.report.tables import main_table

    bench = make_bench(tmp_path / "bench")
    answers, card = tmp_path / "answers.jsonl", tmp_path / "answers.card.json"
    write_jsonl(answers, ANSWERS)
    labels = {"teacher_pair": "p", "student": "s", "arm": "direct", "seed": "0"}
    card.write_text(json.dumps({"model": "models/s", "labels": labels}))
    out, scores = tmp_path / "judgments.jsonl", tmp_path / "scores.json"
    argv = ["mtbench", "judge", "--bench", str(bench), "--answers", str(answers)]
    argv += ["--answers-card", str(card), "--out", str(out), "--scores", str(scores)]
    main([*argv, "--judge-url", server.url, "--judge-model", "judge"])
    payload = json.loads(scores.read_text())
    # ratings (question 81: 6 then 2; question 111: 1 then 3); per question: 4 and 2
    assert payload["results"]["mt_bench"] == pytest.approx({
        "score,none": 3.0, "score_stderr,none": 1.0,  # sd of (4, 2) / sqrt(2)
        "turn_1,none": 3.5, "turn_1_stderr,none": 2.5,
        "turn_2,none": 2.5, "turn_2_stderr,none": 0.5,
    })  # fmt: skip
    samples = payload["codit"]["sample_files"]["mt_bench"]
    assert samples == str(tmp_path / "samples.jsonl")
    assert item_scores(samples, "score") == {81: 4.0, 111: 2.0}
    assert item_scores(samples, "turn_2") == {81: 2.0, 111: 3.0}
    rows = main_table([(str(scores), payload)])
    assert set(zip(rows["task"], rows["metric"], rows["value"], strict=True)) == {
        ("mt_bench", "score", 3.0), ("mt_bench", "turn_1", 3.5), ("mt_bench", "turn_2", 2.5),
    }  # fmt: skip
    assert set(rows["arm"]) == {"direct"} and set(rows["seed"]) == {0.0}


def test_a_question_with_an_unparsable_turn_keeps_its_other_turn(server, tmp_path):
    from codit.judged.mtbench import question_samples

    bench = Bench(make_bench(tmp_path / "bench"))
    judgments = [
        {"question_id": 81, "turn": 1, "rating": 6.0},
        {"question_id": 81, "turn": 2, "rating": None},
        {"question_id": 111, "turn": 1, "rating": None},
        {"question_id": 111, "turn": 2, "rating": None},
    ]
    samples = {record["doc_id"]: record for record in question_samples(bench, judgments)}
    assert (samples[81]["score"], samples[81]["turn_1"], "turn_2" in samples[81]) == (
        6.0, 6.0, False,
    )  # fmt: skip
    assert not {"score", "turn_1", "turn_2"} & samples[111].keys()


ANSWERED = [  # words of the tiny SFT vocabulary
    {"question_id": 1, "category": "writing", "turns": ["write a short reply", "say hello"]},
    {"question_id": 2, "category": "math", "turns": ["what is one two", "and three"]},
    {"question_id": 3, "category": "stem", "turns": ["what color is the sky", "in one word"]},
]


def answer(model: Path, bench: Path, out: Path, *extra: str) -> list[dict]:
    argv = ["mtbench", "answer", "--model", str(model), "--bench", str(bench), "--out", str(out)]
    argv += ["--card", f"{out}.card.json", "--max-new-tokens", "6", "--device", "cpu"]
    main([*argv, "--threads", "1", *extra])
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_model_answers_both_turns_the_second_with_the_first_in_context(tmp_path):
    model = save_tiny_llama(tmp_path / "model")
    bench = tmp_path / "bench"
    write_jsonl(bench / "question.jsonl", ANSWERED)
    labels = ["--label", "arm=direct", "--label", "student=s", "--teacher", str(model)]
    records = answer(model, bench, tmp_path / "a.jsonl", *labels)
    assert [(r["question_id"], r["temperature"], len(r["turns"])) for r in records] == [
        (1, 0.7, 2), (2, 0.0, 2), (3, 0.1, 2),
    ]  # fmt: skip
    # The same answers from another batch size: seeds belong to questions, not batches.
    again = answer(model, bench, tmp_path / "b.jsonl", "--batch-size", "1")
    assert [r["turns"] for r in again] == [r["turns"] for r in records]
    # The greedy (math) answers are Hugging Face's greedy continuations of the rendered turns.
    tokenizer = AutoTokenizer.from_pretrained(model)
    hf = AutoModelForCausalLM.from_pretrained(model).eval()
    math = records[1]
    messages = [{"role": "user", "content": ANSWERED[1]["turns"][0]}]
    for turn in (0, 1):
        if turn:
            messages += [
                {"role": "assistant", "content": math["turns"][0]},
                {"role": "user", "content": ANSWERED[1]["turns"][1]},
            ]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            output = hf.generate(
                ids, max_new_tokens=6, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )[0, ids.shape[1]:]  # fmt: skip
        expected = [t for t in output.tolist() if t != tokenizer.eos_token_id]
        assert math["turns"][turn] == tokenizer.decode(expected, skip_special_tokens=True)
        assert math["num_tokens"][turn] == len(expected)
    card = json.loads(Path(f"{tmp_path / 'a.jsonl'}.card.json").read_text())
    assert card["items"] == 3 and sum(card["finish_reasons"].values()) == 6
    # the report's labels, architectures included, travel with the answers
    assert card["labels"] == {"student_architecture": "llama", "teacher_architecture": "llama",
                              "arm": "direct", "student": "s"}  # fmt: skip


def test_fetch_copies_fastchats_layout_into_a_bench_folder(tmp_path):
    data = tmp_path / "fastchat-data"  # FastChat's llm_judge/data, served as file:// URLs
    write_jsonl(data / "mt_bench" / "question.jsonl", QUESTIONS)
    write_jsonl(data / "mt_bench" / "reference_answer" / "gpt-4.jsonl", REFERENCES)
    write_jsonl(data / "judge_prompts.jsonl", PROMPTS)
    out = tmp_path / "hub" / "mt_bench"
    main(["mtbench", "fetch", "--out", str(out), "--source", data.as_uri()])
    bench = Bench(out)
    assert list(bench.questions) == ["81", "111"] and bench.references["111"] == ["4", "12"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["questions"] == 2 and manifest["files"]["judge_prompts.jsonl"]["url"].endswith(
        "fastchat-data/judge_prompts.jsonl"
    )
    (data / "judge_prompts.jsonl").unlink()
    with pytest.raises(SystemExit, match=r"MT-Bench: cannot fetch file://.*judge_prompts.jsonl"):
        main(["mtbench", "fetch", "--out", str(tmp_path / "other"), "--source", data.as_uri()])
    assert not (tmp_path / "other").exists()


def test_answers_longer_than_the_context_are_refused_naming_the_questions(tmp_path):
    model = save_tiny_llama(tmp_path / "model")
    bench = tmp_path / "bench"
    write_jsonl(bench / "question.jsonl", ANSWERED)
    with pytest.raises(SystemExit, match=r"MT-Bench: \[.2:turn1.\]: the prompt plus"):
        answer(model, bench, tmp_path / "a.jsonl", "--max-new-tokens", "100000")


@pytest.mark.parametrize("benchmark", ["alpacaeval", "wildbench"])
def test_alpacaeval_and_wildbench_answers_come_from_the_same_engine(benchmark, tmp_path):
    """Every judged benchmark answers through codit.judged.answering: greedy answers equal Hugging
    Face's greedy continuation of the rendered conversation, and the card has the labels."""
    model = save_tiny_llama(tmp_path / "model")
    bench = tmp_path / "bench"
    bench.mkdir()
    if benchmark == "alpacaeval":
        references = [{"instruction": "what color is the sky", "output": "blue"},
                      {"instruction": "say hello", "output": "hello"}]  # fmt: skip
        (bench / "reference_outputs.json").write_text(json.dumps(references))
        (bench / "alpaca_eval_clf.txt").write_text(
            "<|im_start|>user\n{instruction} {output_1} {output_2}\n<|im_end|>"
        )
        conversations = [[{"role": "user", "content": r["instruction"]}] for r in references]
    else:
        from codit.judged.wildbench import conversation
        from codit.tinyworld.corpus import build_splits
        from codit.tinyworld.wildbench import write_tiny_bench
        from codit.tinyworld.world import generate_world

        splits = build_splits(generate_world(0), 0, 64, 64)
        write_tiny_bench(bench, splits["ifeval"], count=2)
        tasks = [json.loads(line) for line in (bench / "tasks.jsonl").read_text().splitlines()]
        conversations = [conversation(task) for task in tasks]
    out = tmp_path / "a.jsonl"
    main([benchmark, "answer", "--model", str(model), "--bench", str(bench), "--out", str(out),
          "--card", f"{out}.card.json", "--max-new-tokens", "5", "--device", "cpu",
          "--label", "arm=direct"])  # fmt: skip
    records = [json.loads(line) for line in out.read_text().splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(model)
    hf = AutoModelForCausalLM.from_pretrained(model).eval()
    for record, messages in zip(records, conversations, strict=True):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            output = hf.generate(
                ids, max_new_tokens=5, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )[0, ids.shape[1]:]  # fmt: skip
        expected = [t for t in output.tolist() if t != tokenizer.eos_token_id]
        assert record["output"] == tokenizer.decode(expected, skip_special_tokens=True)
        assert record["temperature"] == 0.0
    card = json.loads(Path(f"{out}.card.json").read_text())
    assert card["items"] == 2 and card["labels"]["arm"] == "direct"
