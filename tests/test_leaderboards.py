"""Conformance with the judged benchmarks' own code and published numbers, on real data.

The data comes from the benchmarks' public repositories (tests/reference_libraries.py finds it;
each file names its source repository, commit and paths): the judges' verdicts of the AlpacaEval
2.0 leaderboard models and of WildBench v2.0625's score runs with the leaderboards computed from
them, FastChat's MT-Bench files and WildBench's score template. The tests check that

- AlpacaEval 2.0: our win rate, its standard error, the discrete win rate and the counts equal
  the leaderboard for every model; the stored preferences follow from the judge's real top-5
  log-probabilities through our parser and our order of the outputs; the mean output length
  follows its stated definition; the minimal length-controlled GLM equals alpaca_eval's (the
  published LC needs df_gamed.csv, from the Hub: the distance is printed); our judge prompts and
  preferences equal alpaca_eval's own annotator's for real instructions;
- WildBench: WB-Score, the mean score and the mean length (which leaves the empty and cut
  answers out, as the category means do) equal the leaderboard; the task macro of the
  leaderboard's category means equals its task macro; the real template filled by us equals
  WildBench's construction;
- MT-Bench: `codit mtbench fetch` reads FastChat's real files; for every question and turn our
  judge messages equal what FastChat's own gen_judgment/common.py code sends, and our rating
  parse equals FastChat's.

Where a benchmark's code sends its request (alpaca_eval's completion function, FastChat's
`chat_completion_openai`), the test puts a recorder in its place: what is compared is what the
benchmark's code would have sent and how it reads the reply.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import statistics
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fake_judge import FakeJudge
from reference_libraries import import_alpaca_eval, shared_data
from workflow_runs import REPO, job_blocks, job_counts, snakemake

from codit.cli import main as codit_main
from codit.judged import alpacaeval, alpacaeval_metrics, mtbench, wildbench
from codit.judged.judge import JudgeEndpoint

# Stored preferences are rounded to 10 decimals in the extracted data.
STORED = 1e-9
# The published leaderboards' floats, recomputed from the same verdicts.
PUBLISHED = 1e-8


def report(line: str) -> None:
    """A figure the conformance tests check, shown in pytest's output (-s or -rA)."""
    print(f"conformance: {line}")


# --------------------------------------------------------------------------------------------
# AlpacaEval 2.0


@pytest.fixture(scope="module")
def alpaca_eval_data() -> dict:
    return json.loads(shared_data("public-judgments/alpaca_eval.json").read_text())


def test_win_rates_equal_the_leaderboard_for_every_model(alpaca_eval_data):
    leaderboard, models = alpaca_eval_data["leaderboard"], alpaca_eval_data["models"]
    assert len(models) == len(leaderboard) == 57
    largest = 0.0
    for name, model in models.items():
        ours = alpacaeval_metrics.win_rate([item["preference"] for item in model["items"]])
        published = leaderboard[name]
        for key in ("win_rate", "standard_error", "discrete_win_rate"):
            difference = abs(ours[key] - float(published[key]))
            assert difference < PUBLISHED, (name, key, ours[key], published[key])
            largest = max(largest, difference)
        for key in ("n_wins", "n_wins_base", "n_draws", "n_total"):
            assert ours[key] == int(published[key]), (name, key)
    report(f"AlpacaEval 2.0 win rate, standard error, discrete win rate and counts: 57/57 models "
           f"equal the leaderboard, largest difference {largest:.1e}")  # fmt: skip


def test_the_stored_preferences_follow_from_the_judges_log_probabilities(alpaca_eval_data):
    """Our parser of the first token's top-5 log-probabilities, in the order we show the two
    outputs in (alpaca_eval's, seed 0), gives every stored preference of every model."""
    references = alpaca_eval_data["reference"]
    judged = largest = 0
    for model in alpaca_eval_data["models"].values():
        for item in model["items"]:
            assert item["reference_length"] == len(references[item["id"]]["output"])
            if item["top_logprobs"] is None:  # kept without log-probabilities in the snapshot
                continue
            top = [{"token": token, "logprob": logprob} for token, logprob in item["top_logprobs"]]
            first = alpacaeval.model_shown_first(
                alpacaeval.ORDER_SEED, references[item["id"]]["instruction"]
            )
            ours = alpacaeval.model_preference(alpacaeval.weighted_preference(top), first)
            assert abs(ours - item["preference"]) < STORED, (item, ours)
            largest = max(largest, abs(ours - item["preference"]))
            judged += 1
    assert judged == 40931
    report(f"AlpacaEval 2.0 preferences from the judge's top-5 log-probabilities: "
           f"{judged}/{judged}, largest difference {largest:.1e}")  # fmt: skip


def test_the_mean_output_length_follows_its_stated_definition(alpaca_eval_data):
    """Ours: the mean length of the judged outputs. The leaderboard's avg_length: int(mean over
    the model_outputs file), so outputs that were never judged count as well: for models with
    fewer than 805 judgments it is the judged lengths summed over 805."""
    partial = []
    for name, model in alpaca_eval_data["models"].items():
        lengths = [item["output_length"] for item in model["items"]]
        published = int(alpaca_eval_data["leaderboard"][name]["avg_length"])
        assert int(sum(lengths) / alpacaeval.INSTRUCTIONS) == published, name
        ours = alpacaeval_metrics.mean(lengths)
        if len(lengths) == alpacaeval.INSTRUCTIONS:
            assert int(ours) == published, name
        else:
            partial.append(
                f"{name} ({len(lengths)} judged: ours {ours:.1f}, published {published})"
            )
    assert len(partial) == 6
    report(f"AlpacaEval 2.0 avg_length: 51/51 fully judged models equal int(ours); "
           f"{'; '.join(partial)}")  # fmt: skip


@pytest.fixture(scope="module")
def alpaca_eval_glm(tmp_path_factory):
    """alpaca_eval's glm_winrate with its Hub download of df_gamed.csv pointed at a local file:
    the minimal GLM reads nothing of it but the instructions' difficulty it never uses."""
    import_alpaca_eval()
    from alpaca_eval.metrics import glm_winrate

    gamed = tmp_path_factory.mktemp("alpaca_eval") / "df_gamed.csv"
    frame = {
        "model": "unused",
        "index": range(alpacaeval.INSTRUCTIONS),
        "instruction_difficulty": 0.0,
    }
    pd.DataFrame(frame).to_csv(gamed, index=False)
    download = glm_winrate.hf_hub_download
    glm_winrate.hf_hub_download = lambda **kwargs: str(gamed)
    yield glm_winrate
    glm_winrate.hf_hub_download = download


def test_the_minimal_lc_glm_equals_alpaca_evals_and_its_distance_to_the_published_lc(
    alpaca_eval_data, alpaca_eval_glm
):
    references = alpaca_eval_data["reference"]
    largest, to_published = 0.0, {}
    for name, model in alpaca_eval_data["models"].items():
        items = model["items"]
        ours = alpacaeval_metrics.length_controlled_win_rate(
            [item["preference"] for item in items],
            [item["output_length"] for item in items],
            [item["reference_length"] for item in items],
            [item["id"] for item in items],
        )
        assert ours["glm"] == "length_controlled_minimal"
        # The GLM reads only the outputs' lengths: the model's outputs are stand-ins of them.
        annotations = [
            {"preference": item["preference"], "output_1": references[item["id"]]["output"],
             "output_2": "x" * item["output_length"], "index": item["id"],
             "generator_1": "gpt4_1106_preview", "generator_2": name, "annotator": "judge"}
            for item in items
        ]  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's deprecations inside alpaca_eval
            theirs = alpaca_eval_glm.get_length_controlled_winrate(
                annotations, glm_name="length_controlled_minimal", save_weights_dir=None,
                is_warn_extreme_changes=False,
            )  # fmt: skip
        difference = abs(ours["length_controlled_winrate"] - theirs["length_controlled_winrate"])
        assert difference < 1e-6, (name, ours["length_controlled_winrate"], theirs)
        largest = max(largest, difference)
        published = float(alpaca_eval_data["leaderboard"][name]["length_controlled_winrate"])
        to_published[name] = ours["length_controlled_winrate"] - published
    assert len(to_published) == 57
    distances = sorted(abs(d) for d in to_published.values())
    report(f"AlpacaEval 2.0 LC, length_controlled_minimal: 57/57 models equal alpaca_eval's, "
           f"largest difference {largest:.1e}; distance to the published LC "
           f"(length_controlled_v1, which needs df_gamed.csv): median "
           f"{statistics.median(distances):.1f}, largest {distances[-1]:.1f} points")  # fmt: skip


def shown_probability(prompt: str) -> float:
    """p(m) of a made-up judge: a number in (0.05, 0.95) drawn from the prompt's text, so that
    every judge asked the same prompt gives the same verdict."""
    digest = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
    return 0.05 + 0.9 * digest / 2**32


def judge_top_logprobs(prompt: str) -> list[tuple[str, float]]:
    p = shown_probability(prompt)
    alternatives = [("m", math.log(p)), ("M", math.log1p(-p)), ("Both", math.log(1e-6))]
    return sorted(alternatives, key=lambda alternative: -alternative[1])


def test_judge_prompts_and_preferences_equal_alpaca_evals_own_annotator(alpaca_eval_data, tmp_path):
    """alpaca_eval's PairwiseAnnotator with the weighted_alpaca_eval_gpt4_turbo config against
    ours, for real instructions, the real reference outputs and template: the same messages,
    the same order, the same preferences, and no judge asked for an identical output."""
    import_alpaca_eval()
    from alpaca_eval.annotators import PairwiseAnnotator
    from alpaca_eval.utils import prompt_to_chatml

    references = alpaca_eval_data["reference"]
    folder = tmp_path / "alpaca_eval"
    folder.mkdir()
    (folder / alpacaeval.REFERENCE_FILE).write_text(json.dumps(references))
    (folder / alpacaeval.TEMPLATE_FILE).write_text(alpaca_eval_data["template"])
    bench = alpacaeval.Bench(folder)
    chosen = list(range(0, alpacaeval.INSTRUCTIONS, 67))  # 13 instructions
    # Each answered with another instruction's real reference output; one with its own.
    outputs = [
        {"instruction": references[i]["instruction"],
         "output": references[i if i == chosen[4] else (i + 1) % len(references)]["output"]}
        for i in chosen
    ]  # fmt: skip

    annotator = PairwiseAnnotator(
        annotators_config="weighted_alpaca_eval_gpt4_turbo", caching_path=None
    )
    [single] = annotator.annotators.values()
    sent: list[list[dict]] = []

    def completions(prompts: list[str], **kwargs) -> dict:
        replies = []
        for prompt in prompts:
            messages = prompt_to_chatml(prompt)
            sent.append(messages)
            top = [{"token": t, "logprob": lp} for t, lp in judge_top_logprobs(
                messages[-1]["content"])]  # fmt: skip
            replies.append({"logprobs": {"content": [{**top[0], "top_logprobs": top}]}})
        n = len(prompts)
        return {"completions": [r["logprobs"]["content"][0]["token"] for r in replies],
                "completions_all": replies, "price_per_example": [0.0] * n,
                "time_per_example": [0.0] * n}  # fmt: skip

    single.fn_completions = completions
    theirs = annotator.annotate_head2head(
        outputs_1=[references[i] for i in chosen], outputs_2=outputs
    )

    server = FakeJudge(reply=lambda prompt: "m", top_logprobs=judge_top_logprobs)
    try:
        endpoint = JudgeEndpoint(url=server.url, model="gpt-4-1106-preview", workers=2)
        judgments = alpacaeval.judge_outputs(bench, outputs, alpacaeval.judge_for(endpoint))
    finally:
        server.close()
    ours_sent = [body["messages"] for body in server.requests]
    assert len(ours_sent) == len(sent) == len(chosen) - 1  # the identical output: not asked
    as_text = [json.dumps(messages, sort_keys=True) for messages in ours_sent]
    assert sorted(as_text) == sorted(json.dumps(messages, sort_keys=True) for messages in sent)
    by_instruction = {row["instruction"]: row["preference"] for row in theirs}
    for judgment in judgments:
        instruction = references[judgment["instruction_id"]]["instruction"]
        assert judgment["preference"] == pytest.approx(by_instruction[instruction], abs=1e-12)
    assert [j["verdict_kind"] for j in judgments].count("identical") == 1
    assert {j["model_shown_first"] for j in judgments} == {True, False}
    report(f"AlpacaEval 2.0 judge prompts: {len(sent)}/{len(sent)} equal alpaca_eval's annotator "
           f"(real template, {len(chosen)} real instructions), preferences equal")  # fmt: skip


# --------------------------------------------------------------------------------------------
# WildBench


@pytest.fixture(scope="module")
def wildbench_data() -> dict:
    return json.loads(shared_data("public-judgments/wildbench.json").read_text())


def wildbench_judgments(items: list[dict]) -> list[dict]:
    """Our judgments of a model's stored verdicts (the task tags are on the Hub only)."""
    return [
        {"doc_id": position, "session_id": item["session_id"], "categories": [],
         "score": float(item["score"]), "output_length": item["output_length"],
         "empty_answer": item["output_stripped_empty"],
         "truncated_answer": item["output_ends_truncated"]}
        for position, item in enumerate(items)
    ]  # fmt: skip


def test_wb_score_and_the_mean_length_equal_the_leaderboard(wildbench_data):
    """The mean length leaves out the empty and cut answers, as the category means do (one
    rule, `wildbench.in_categories`): the published avg_len shows which answers WildBench left
    out of both."""
    checked, largest, unpublished = 0, 0.0, []
    for name, model in wildbench_data["models"].items():
        published = wildbench_data["published"][name]
        if not published["score.json"]:
            unpublished.append(name)
            continue
        ours = wildbench.scores(wildbench_judgments(model["items"]))
        table, stats = published["score.json"], published["all_stat"]
        pairs = [(ours["score"], table["score"]), (ours["wb_score"], stats["WB_score"]),
                 (ours["wb_score"], table["adjusted_score"] * 10),
                 (ours["avg_length"], table["avg_len"])]  # fmt: skip
        for value, expected in pairs:
            assert abs(value - expected) < PUBLISHED, (name, value, expected)
            largest = max(largest, abs(value - expected))
        assert ours["judgments"] == table["total"]
        checked += 1
    assert checked == 7 and unpublished == ["Phi-3-mini-128k-instruct"]
    excluded = {name: sum(i["output_stripped_empty"] or i["output_ends_truncated"]
                          for i in model["items"])
                for name, model in wildbench_data["models"].items()}  # fmt: skip
    report(f"WildBench WB-Score, score and avg_len: {checked}/{checked} models with a published "
           f"row equal the leaderboard, largest difference {largest:.1e} (no row for "
           f"{', '.join(unpublished)}); answers left out of the categories: "
           f"reka-core-20240501 {excluded['reka-core-20240501']}, reka-edge "
           f"{excluded['reka-edge']}")  # fmt: skip


def test_the_task_macro_of_the_leaderboards_category_means_is_its_task_macro(wildbench_data):
    checked, largest = 0, 0.0
    for name, published in wildbench_data["published"].items():
        if not published["score.json"]:
            continue
        adjusted = published["score.json"]["task_categorized_scores"]
        means = {category: score / 2 + 5 for category, score in adjusted.items()}
        assert set(means) == set(wildbench.CATEGORY_WEIGHTS)
        ours = wildbench.task_macro(means)
        for expected in (published["all_stat"]["WB_score.task_macro"],
                         published["score.json"]["task_macro_score"] * 10):  # fmt: skip
            assert abs(ours - expected) < PUBLISHED, (name, ours, expected)
            largest = max(largest, abs(ours - expected))
        for category, mean in means.items():
            stat = published["all_stat"][f"WB_score.{category}"]
            assert abs(wildbench.adjusted(mean) * 10 - stat) < PUBLISHED, (name, category)
        checked += 1
    assert checked == 7
    report(f"WildBench task macro from the leaderboard's category means: {checked}/{checked} "
           f"models equal WB_score.task_macro, largest difference {largest:.1e}")  # fmt: skip


def wildbench_prompt(template: str, task: dict, output: str) -> str:
    """WildBench's construction of a score prompt (src/eval.py, `compose_eval_item` and
    `placeholder_generation` in mode "score", --max_words_to_eval 1000): one replacement after
    another, as it does."""

    def shorten(text: str, k: int = 1000) -> str:
        if k > 0 and len(text.split(" ")) > k:
            text = " ".join(text.split(" ")[:k]) + "... (truncated)"
        return text

    history = ""
    for message in task["conversation_input"][:-1]:
        if message["role"] == "user":
            history += "USER: " + message["content"] + "\n\n"
        elif message["role"] == "assistant":
            history += "ASSISTANT: " + message["content"] + "\n\n"
    checklist = "".join(f"- {entry}\n" for entry in task["checklist"])
    prompt = template.replace("{$history}", shorten(history))
    prompt = prompt.replace("{$user_query}", shorten(task["conversation_input"][-1]["content"]))
    prompt = prompt.replace("{$model_output}", shorten(output))
    return prompt.replace("{$checklist}", checklist)


def test_the_real_score_template_is_filled_as_wildbench_fills_it(tmp_path):
    template = shared_data("wildbench-template/eval_template.score.v2.md")
    assert hashlib.sha256(template.read_bytes()).hexdigest() == wildbench.TEMPLATE_SHA256
    tasks = [
        {"id": "t1", "session_id": "t1", "primary_tag": "Coding & Debugging",
         "secondary_tags": ["Reasoning"],
         "conversation_input": [
             {"role": "user", "content": "My loop never ends: `while i < 10: print(i)`"},
             {"role": "assistant", "content": "Do you increment i?"},
             {"role": "user", "content": "No. What should I write?"}],
         "checklist": ["Does it add `i += 1`?", "Does it explain why the loop never ends?"]},
        {"id": "t2", "session_id": "t2", "primary_tag": "Creative Writing", "secondary_tags": [],
         "conversation_input": [{"role": "user", "content": "A haiku on {braces}, please."}],
         "checklist": ["Is it 5-7-5?"]},
    ]  # fmt: skip
    folder = tmp_path / "wildbench"
    folder.mkdir()
    (folder / wildbench.TASKS_FILE).write_text("".join(json.dumps(t) + "\n" for t in tasks))
    (folder / wildbench.TEMPLATE_FILE).write_bytes(template.read_bytes())
    bench = wildbench.Bench(folder)
    long_answer = " ".join(["word"] * 1200)
    for task, output in ((tasks[0], "Add `i += 1` inside the loop."), (tasks[1], long_answer),
                         (tasks[1], "")):  # fmt: skip
        request = bench.request({"session_id": task["session_id"], "output": output}, "gpt-4o")
        assert request.messages == [
            {"role": "user", "content": wildbench_prompt(template.read_text(), task, output)}
        ]
    report("WildBench: the real score template (the pinned sha256) is filled as src/eval.py does")


# --------------------------------------------------------------------------------------------
# MT-Bench


@pytest.fixture(scope="module")
def fastchat_folder() -> Path:
    return shared_data("mtbench-fastchat")


@pytest.fixture(scope="module")
def fetched_mt_bench(fastchat_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hub") / "mt_bench"
    codit_main(["mtbench", "fetch", "--out", str(out), "--source", fastchat_folder.as_uri()])
    return out


def test_the_fetch_reads_fastchats_real_files(fetched_mt_bench, fastchat_folder):
    bench = mtbench.Bench(fetched_mt_bench)
    assert sorted(int(q) for q in bench.questions) == list(range(81, 161))
    assert len(bench.prompts) == 8 and set(mtbench.PROMPT_NAMES.values()) <= set(bench.prompts)
    needing = sorted(int(q) for q, question in bench.questions.items()
                     if bench.needs_reference(question))  # fmt: skip
    assert needing == sorted(int(q) for q in bench.references) == list(range(101, 131))
    manifest = json.loads((fetched_mt_bench / "manifest.json").read_text())
    assert manifest["questions"] == 80
    assert manifest["files"]["question.jsonl"]["url"] == (
        f"{fastchat_folder.as_uri()}/mt_bench/question.jsonl"
    )


def fastchat_answer(question_id: int, turn: int) -> str:
    """An answer with what str.format would trip on ({braces}) and a fake rating in it."""
    return f"Answer {turn} to question {question_id}: use {{x}} here. Rating: [[2]] is not mine."


@pytest.fixture(scope="module")
def fastchat_judging(fastchat_folder):
    """FastChat's own single-answer judging (fastchat.llm_judge: gen_judgment.py's matches,
    common.py's play_a_match_single) on the real files, with `chat_completion_openai` replaced by
    a recorder: {(question_id, turn): the messages FastChat sends}, and its rating reader."""
    from fastchat.llm_judge import common, gen_judgment

    data = fastchat_folder
    questions = common.load_questions(str(data / "mt_bench" / "question.jsonl"), None, None)
    references = common.load_model_answers(str(data / "mt_bench" / "reference_answer"))
    judges = gen_judgment.make_judge_single(
        "gpt-4", common.load_judge_prompts(str(data / "judge_prompts.jsonl"))
    )
    answers = {"ours": {
        q["question_id"]: {"choices": [{"turns": [fastchat_answer(q["question_id"], 1),
                                                  fastchat_answer(q["question_id"], 2)]}]}
        for q in questions
    }}  # fmt: skip
    math_questions = [q for q in questions if q["category"] in common.NEED_REF_CATS]
    default_questions = [q for q in questions if q["category"] not in common.NEED_REF_CATS]
    matches = [
        *gen_judgment.make_match_single(default_questions, ["ours"], answers, judges["default"]),
        *gen_judgment.make_match_single(
            math_questions, ["ours"], answers, judges["math"], ref_answers=references
        ),
        *gen_judgment.make_match_single(
            default_questions, ["ours"], answers, judges["default-mt"], multi_turn=True
        ),
        *gen_judgment.make_match_single(
            math_questions, ["ours"], answers, judges["math-mt"], ref_answers=references,
            multi_turn=True,
        ),
    ]  # fmt: skip
    sent: dict[tuple[int, int], list[dict]] = {}
    current: dict = {"key": None, "reply": "Rating: [[5]]"}

    def recorder(model, conv, temperature, max_tokens, api_dict=None):
        assert (model, temperature) == ("gpt-4", 0)
        if current["key"] is not None:
            sent[current["key"]] = conv.to_openai_api_messages()
        return current["reply"]

    def play(match) -> dict:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per match
            return common.play_a_match_single(match, output_file=None)

    saved = common.chat_completion_openai
    common.chat_completion_openai = recorder
    try:
        for match in matches:
            current["key"] = (match.question["question_id"], 2 if match.multi_turn else 1)
            play(match)
        current["key"] = None

        def fastchat_rating(text: str) -> float:
            current["reply"] = text
            return play(matches[0])["score"]

        yield sent, fastchat_rating
    finally:
        common.chat_completion_openai = saved


def test_every_judge_message_equals_fastchats(fetched_mt_bench, fastchat_judging):
    sent, _ = fastchat_judging
    bench = mtbench.Bench(fetched_mt_bench)
    assert len(sent) == 160
    with_reference = 0
    for question_id in range(81, 161):
        turns = [fastchat_answer(question_id, 1), fastchat_answer(question_id, 2)]
        answer = {"question_id": question_id, "turns": turns}
        for turn in (1, 2):
            request = bench.request(answer, turn, "gpt-4")
            assert request.messages == sent[(question_id, turn)], (question_id, turn)
            with_reference += bench.needs_reference(bench.questions[str(question_id)])
    assert with_reference == 60
    report(
        "MT-Bench judge prompts: 160/160 (80 questions x 2 turns; 60 with the reference "
        "answer) equal FastChat's"
    )


# Replies as judges write them (FastChat's judgments of gpt-4 grading, in their forms).
REPLIES = [
    "The assistant's answer is correct and well explained.\n\nRating: [[9]]",
    "The response is helpful but misses the second part. Rating: [[6.5]]",
    "Rating: [8]",
    "I would give it [[3]]; on reflection, Rating: [[4]]",
    "[[10]]",
    "Rating: 7/10",
    "Rating: [[ 7 ]]",
    "The score is [[8/10]].",
    "Rating: [[5.]]",
    "",
]


@pytest.mark.parametrize("reply", REPLIES)
def test_the_rating_is_read_as_fastchat_reads_it(reply, fastchat_judging):
    _, fastchat_rating = fastchat_judging
    theirs = fastchat_rating(reply)
    ours = mtbench.parse_rating(reply)
    assert (-1 if ours is None else ours) == theirs


def test_the_paper_grid_fetches_the_real_files_and_plans_mt_bench_on_them(
    fastchat_folder, tmp_path
):
    """config/paper.yaml with `evaluation.mt_bench.source` at the folder of FastChat's real
    files: Snakemake's fetch rule fetches them, and the answering and judging jobs of the dry
    run that follows read the fetched folder."""
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    config["evaluation"]["mt_bench"]["source"] = str(fastchat_folder)
    configfile = tmp_path / "paper-real-mt-bench.yaml"
    configfile.write_text(yaml.safe_dump(config))
    where = ("--configfile", str(configfile), "--directory", str(tmp_path))
    fetched = snakemake(*where, "--cores", "1", "fetch_mtbench")
    assert fetched.returncode == 0, fetched.stderr
    bench = mtbench.Bench(tmp_path / "resources/hub/mt_bench")
    assert len(bench.questions) == 80 and len(bench.references) == 30
    log = (tmp_path / "logs/judged/fetch_mt_bench.log").read_text()
    assert "80 questions -> resources/hub/mt_bench" in log

    planned = snakemake("-n", "-p", "--cores", "64", *where)
    assert planned.returncode == 0, planned.stderr
    counts = job_counts(planned.stdout)
    assert "fetch_mtbench" not in counts and counts["fetch_alpacaeval"] == 1
    jobs = job_blocks(planned.stdout)
    answering = [c for rule, _, c in jobs if rule.startswith("mtbench_answer_")]
    judging = [c for rule, _, c in jobs if rule == "judge_answers"]
    assert len(answering) == len(judging) == counts["judge_answers"] > 0
    assert all("--bench resources/hub/mt_bench " in c for c in answering)
    assert all(" --mt-bench resources/hub/mt_bench " in c for c in judging)
