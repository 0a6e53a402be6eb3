"""codit.judged.alpacaeval: the judge's pairwise requests (order randomised, recorded and undone)
through codit.judged.judge against a real local HTTP server, verdicts with and without
log-probabilities, the win rate by hand, and the length-controlled win rate against alpaca_eval's
own get_length_controlled_winrate (alpaca-eval 0.6.6) on synthetic annotations, its Hub download of
df_gamed.csv pointed at a local file."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reference_libraries import import_alpaca_eval

from codit.judged import alpacaeval
from codit.judged.alpacaeval import (
    Bench,
    judge_for,
    judge_outputs,
    model_shown_first,
    parse_verdict,
    scores,
    shown_preference,
    template_messages,
    weighted_preference,
)
from codit.judged.alpacaeval_metrics import length_controlled_win_rate, win_rate
from codit.judged.judge import JudgeEndpoint
from codit.tinyworld.judge import send_json

TEMPLATE = """<|im_start|>system
You compare outputs.
<|im_end|>
<|im_start|>user
## Instruction
{instruction}
## Output m
{output_1}
## Output M
{output_2}
Answer m or M.
<|im_end|>"""
REFERENCES = [
    {"instruction": f"Task {i}: say something {{literally}}.", "output": "ref " * (i + 2),
     "generator": "reference"}
    for i in range(8)
]  # fmt: skip
SEED = 3


def shown_outputs(prompt: str) -> tuple[str, str]:
    found = re.search(r"## Output m\n(.*)\n## Output M\n(.*)\nAnswer", prompt, re.S)
    return found.group(1), found.group(2)


class LongerWins:
    """A judge server that prefers the longer output shown: reply "m" or "M" and, unless
    `logprobs` is off, first-token top log-probabilities giving the winner 0.8 and the other 0.2."""

    def __init__(self, logprobs: bool = True) -> None:
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                first, second = shown_outputs(body["messages"][-1]["content"])
                winner, loser = ("m", "M") if len(first) > len(second) else ("M", "m")
                choice = {"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": winner}}  # fmt: skip
                if logprobs and body.get("logprobs"):
                    top = [
                        {"token": winner, "logprob": math.log(0.8), "bytes": None},
                        {"token": loser, "logprob": math.log(0.2), "bytes": None},
                        {"token": "The", "logprob": math.log(0.001), "bytes": None},
                    ]
                    choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
                send_json(self, 200, {"id": "c", "object": "chat.completion", "created": 0,
                                      "model": body["model"], "choices": [choice]})  # fmt: skip

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_bench(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reference_outputs.json").write_text(json.dumps(REFERENCES))
    (folder / "alpaca_eval_clf.txt").write_text(TEMPLATE)
    return folder


def model_outputs() -> list[dict]:
    """Even instructions: a longer output than the reference's; odd ones: a shorter one."""
    lengths = [len(r["output"]) + (5 if i % 2 == 0 else -3) for i, r in enumerate(REFERENCES)]
    return [
        {"instruction": r["instruction"], "output": "x" * n}
        for r, n in zip(REFERENCES, lengths, strict=True)
    ]


@pytest.fixture(params=[True, False], ids=["logprobs", "plain"])
def server(request):
    judge = LongerWins(logprobs=request.param)
    yield judge
    judge.close()


def test_order_is_randomised_recorded_and_undone(server, tmp_path):
    bench = Bench(write_bench(tmp_path / "bench"))
    judge = judge_for(JudgeEndpoint(url=server.url, model="judge"), cache=tmp_path / "cache.jsonl")
    judgments = judge_outputs(bench, list(reversed(model_outputs())), judge, seed=SEED)

    orders = [j["model_shown_first"] for j in judgments]
    assert orders == [model_shown_first(SEED, r["instruction"]) for r in REFERENCES]
    assert 0 < sum(orders) < len(orders)  # both orders occur
    assert [model_shown_first(SEED + 1, r["instruction"]) for r in REFERENCES] != orders
    by_prompt = {}
    for body in server.requests:
        assert body["messages"][0] == {"role": "system", "content": "You compare outputs."}
        assert body["temperature"] == 0
        # the instruction's own braces are left as they are
        instruction = re.search(
            r"(Task \d+: say something \{literally\}\.)", body["messages"][1]["content"]
        )
        by_prompt[instruction.group(1)] = shown_outputs(body["messages"][1]["content"])
    for judgment, output in zip(judgments, model_outputs(), strict=True):
        reference = REFERENCES[judgment["instruction_id"]]["output"]
        shown = by_prompt[REFERENCES[judgment["instruction_id"]]["instruction"]]
        assert shown == ((output["output"], reference) if judgment["model_shown_first"]
                         else (reference, output["output"]))  # fmt: skip

    # The longer output wins whichever side it was shown on: 2 = the model wins.
    logprobs = server.requests[0].get("logprobs") and judgments[0]["top_logprobs"] is not None
    win, loss = (1.8, 1.2) if logprobs else (2.0, 1.0)
    for judgment in judgments:
        expected = win if judgment["instruction_id"] % 2 == 0 else loss
        assert judgment["preference"] == pytest.approx(expected)
        assert judgment["verdict_kind"] == ("weighted" if logprobs else "plain")
        shown_winner = judgment["model_shown_first"] == (judgment["instruction_id"] % 2 == 0)
        assert judgment["reply"] == ("m" if shown_winner else "M")
    assert server.requests[0]["logprobs"] is True and server.requests[0]["top_logprobs"] == 5

    result = scores(bench, judgments)
    assert result["win_rate"] == pytest.approx(50.0 if not logprobs else (80 + 20) / 2)
    assert result["verdicts"] == {
        "weighted": 8 if logprobs else 0, "plain": 0 if logprobs else 8, "identical": 0,
        "unparsable": 0,
    }  # fmt: skip
    assert result["avg_length"] == pytest.approx(sum(len(o["output"]) for o in model_outputs()) / 8)
    assert result["glm"] == "length_controlled_minimal"  # no df_gamed.csv, no difficulty
    assert "neither df_gamed.csv nor instruction_difficulty.csv" in result["lc_note"]
    block = alpacaeval.results_block(result)
    assert block["win_rate,none"] == result["win_rate"]
    assert block["length_controlled_winrate_stderr,none"] == result["lc_standard_error"]
    samples = alpacaeval.instruction_samples(bench, judgments, result)
    assert [s["doc_id"] for s in samples] == list(range(8))
    assert [s["win_rate"] for s in samples] == pytest.approx(
        [(j["preference"] - 1) * 100 for j in judgments]
    )
    # without the instructions' difficulty the GLM's value is the same for every item: no
    # per-item LC, so the paired bootstrap does not invent an interval of width 0
    assert all(s["metrics"] == ["win_rate"] and "length_controlled_winrate" not in s
               for s in samples)  # fmt: skip

    # A rerun asks nothing: the verdicts (with their log-probabilities) come from the cache.
    asked = len(server.requests)
    assert judge_outputs(bench, model_outputs(), judge, seed=SEED) == judgments
    assert len(server.requests) == asked


def test_an_output_identical_to_the_reference_is_a_tie_without_asking_the_judge(server, tmp_path):
    """alpaca_eval sets the preference of an output equal to the reference's to 1.5 before
    annotating (pairwise_evaluator.py `_preprocess`); the judgment says so."""
    bench = Bench(write_bench(tmp_path / "bench"))
    judge = judge_for(JudgeEndpoint(url=server.url, model="judge"), cache=tmp_path / "cache.jsonl")
    outputs = model_outputs()
    outputs[3] = {"instruction": REFERENCES[3]["instruction"], "output": REFERENCES[3]["output"]}
    # the same text but for a trailing space is a different output: the judge is asked
    outputs[4] = {"instruction": REFERENCES[4]["instruction"],
                  "output": REFERENCES[4]["output"] + " "}  # fmt: skip
    judgments = judge_outputs(bench, outputs, judge, seed=SEED)

    assert len(server.requests) == len(REFERENCES) - 1
    asked = {shown_outputs(body["messages"][1]["content"]) for body in server.requests}
    assert (REFERENCES[3]["output"], REFERENCES[3]["output"]) not in asked
    identical = judgments[3]
    assert identical["verdict_kind"] == "identical"
    assert identical["preference"] == identical["shown_preference"] == 1.5
    assert identical["reply"] is None and identical["top_logprobs"] is None
    assert judgments[4]["verdict_kind"] != "identical" and judgments[4]["reply"] is not None
    result = scores(bench, judgments)
    assert result["verdicts"]["identical"] == 1 and result["n_draws"] >= 1
    assert sum(result["verdicts"].values()) == len(REFERENCES)


def test_the_plain_verdict_and_the_weighted_preference_by_hand(alpaca_eval_metrics):
    assert [parse_verdict(r) for r in ("m", " M\n", '"M".', "**m**")] == [1, 2, 2, 1]
    assert [parse_verdict(r) for r in ("Model M", "", "mM", "n")] == [None] * 4

    # p(m) = 0.25 / (0.25 + 0.5): the preference (shown order) is 2 - 1/3.
    top = [{"token": "M", "logprob": math.log(0.5)}, {"token": "m", "logprob": math.log(0.25)},
           {"token": "Both", "logprob": math.log(0.2)}]  # fmt: skip
    assert weighted_preference(top) == pytest.approx(2 - 1 / 3)
    assert weighted_preference(top[:1]) == 2.0  # a missing token has probability 0
    assert weighted_preference(top[1:2]) == 1.0
    assert weighted_preference(top[2:]) is None and weighted_preference(None) is None
    # alpaca_eval's own parser (weighted_alpaca_eval_gpt4_turbo's settings) agrees.
    from alpaca_eval.completion_parsers import logprob_parser

    for tops in (top, top[:1], top[1:2]):
        completion = {"logprobs": {"content": [{"top_logprobs": tops}]}}
        [theirs] = logprob_parser(completion, "m", ["m", "M"], is_binarize=False)
        assert weighted_preference(tops) == pytest.approx(theirs)

    # The weighted preference wins over the text; without it the text's verdict is used.
    assert shown_preference({"verdict": 1, "top_logprobs": top}) == (
        pytest.approx(5 / 3),
        "weighted",
    )
    assert shown_preference({"verdict": 1, "top_logprobs": top[2:]}) == (1.0, "plain")
    assert shown_preference({"verdict": 2}) == (2.0, "plain")
    assert shown_preference({"verdict": None, "top_logprobs": None}) == (None, None)
    # Undone order: shown first and preferred (1.2 in the shown order) is 1.8 for the model.
    assert alpacaeval.model_preference(1.2, True) == pytest.approx(1.8)
    assert alpacaeval.model_preference(1.2, False) == 1.2


def test_win_rate_by_hand_ties_count_half(alpaca_eval_metrics):
    preferences = [2.0, 1.0, 1.5, 1.75, None]
    result = win_rate(preferences)
    shifted = [1.0, 0.0, 0.5, 0.75]
    assert result["win_rate"] == pytest.approx(56.25)  # (1 + 0 + 0.5 + 0.75) / 4
    assert result["standard_error"] == pytest.approx(
        math.sqrt(sum((s - 0.5625) ** 2 for s in shifted) / 3 / 4) * 100
    )
    assert (result["n_wins"], result["n_wins_base"], result["n_draws"], result["n_total"]) == (
        2,
        1,
        1,
        4,
    )
    assert result["discrete_win_rate"] == pytest.approx(62.5)  # 1.75 rounds to a win
    theirs = alpaca_eval_metrics.winrate.get_winrate([{"preference": p} for p in preferences[:4]])
    for key, value in result.items():
        assert value == pytest.approx(theirs[key]), key


def test_win_rate_and_the_lc_glm_read_legacy_and_invalid_preferences_alike(alpaca_eval_metrics):
    """One reading of the preferences (alpaca_eval's): the legacy 0 is a draw in the win rate as
    in the GLM, and a value outside [1, 2] is refused by both, naming the judgment."""
    legacy = [2.0, 1.0, 0, 1.75]
    assert win_rate(legacy) == win_rate([2.0, 1.0, 1.5, 1.75])
    theirs = alpaca_eval_metrics.winrate.get_winrate([{"preference": p} for p in legacy])
    for key, value in win_rate(legacy).items():
        assert value == pytest.approx(theirs[key]), key
    assert win_rate([2.0, math.nan, None])["n_total"] == 1  # no verdict: left out

    n = 6
    lengths, references, ids = [10 * (i + 1) for i in range(n)], [35] * n, list(range(n))
    assert length_controlled_win_rate(
        [0, 2.0, 1.0, 1.4, 1.8, 2.0], lengths, references, ids
    ) == length_controlled_win_rate([1.5, 2.0, 1.0, 1.4, 1.8, 2.0], lengths, references, ids)
    for invalid in (2.5, 0.5, -1.0):
        preferences = [2.0, 1.0, invalid, 1.4, 1.8, 2.0]
        with pytest.raises(ValueError, match=rf"judgment 2 has the preference {invalid}"):
            win_rate(preferences)
        with pytest.raises(ValueError, match=rf"judgment 2 has the preference {invalid}"):
            length_controlled_win_rate(preferences, lengths, references, ids)


def test_the_bench_folder_is_checked_and_reads_alpaca_evals_own_template(tmp_path):
    folder = write_bench(tmp_path / "bench")
    shipped = (
        resources.files("alpaca_eval")
        / "evaluators_configs/alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt"
    )
    with resources.as_file(shipped) as path:
        shutil.copy(path, folder / "alpaca_eval_clf.txt")
    bench = Bench(folder)
    assert [m["role"] for m in bench.messages] == ["system", "user"]
    assert bench.messages[0]["content"].startswith("You are a highly efficient assistant")
    assert bench.messages[1]["content"].endswith("## Best Model Identifier")
    request, first = bench.request(0, "OUT", "judge", seed=SEED, top_logprobs=5)
    user = request.messages[1]["content"]
    assert f'"instruction": """{REFERENCES[0]["instruction"]}"""' in user
    shown = ("OUT", REFERENCES[0]["output"]) if first else (REFERENCES[0]["output"], "OUT")
    assert f'"model_identifier": "m",\n        "output": """{shown[0]}"""' in user
    assert f'"model_identifier": "M",\n        "output": """{shown[1]}"""' in user
    assert bench.difficulty is None and bench.gamed is None

    (folder / "instruction_difficulty.csv").write_text(
        "index,instruction_difficulty\n0,0.5\n1,-1.25\n"
    )
    assert Bench(folder).difficulty == {0: 0.5, 1: -1.25}
    (folder / "alpaca_eval_clf.txt").write_text(
        "<|im_start|>user\n{instruction} {output_1}<|im_end|>"
    )
    with pytest.raises(ValueError, match="needs"):
        Bench(folder)
    (folder / "alpaca_eval_clf.txt").write_text("no markup {instruction} {output_1} {output_2}")
    with pytest.raises(ValueError, match="ChatML"):
        Bench(folder)
    with pytest.raises(FileNotFoundError, match="reference_outputs.json"):
        Bench(tmp_path)
    assert template_messages("<|im_start|>user\n hi \n<|im_end|>") == [
        {"role": "user", "content": "hi"}
    ]


# --------------------------------------------------------------------------------------------
# The length-controlled win rate against alpaca_eval's own function


@pytest.fixture(scope="module")
def alpaca_eval_metrics():
    """alpaca_eval.metrics (imported through tests/reference_libraries.py)."""
    import_alpaca_eval()
    from alpaca_eval import metrics
    from alpaca_eval.metrics import glm_winrate, winrate

    metrics.winrate, metrics.glm_winrate = winrate, glm_winrate
    return metrics


def synthetic(n: int = 120, seed: int = 0) -> tuple[list[dict], pd.DataFrame, np.ndarray]:
    """Annotations of a model whose longer answers win more often, and a df_gamed.csv of two
    gamed baselines (verbose, concise) on the same instructions, in alpaca_eval's layouts."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    gamed = []
    for model, shift in (("gamed_verbose", -1.5), ("gamed_concise", 1.5)):
        for i in range(n):
            delta = rng.normal() + shift  # reference minus model length, standardised
            p = 1 / (1 + math.exp(-(-1.2 * math.tanh(delta) - 0.8 * difficulty[i] - 0.2)))
            gamed.append({"model": model, "index": i, "preference": float(rng.random() < p),
                          "std_delta_len": delta, "instruction_difficulty": difficulty[i],
                          "not_gamed_baseline": False})  # fmt: skip
    annotations = []
    for i in range(n):
        reference, output = int(rng.integers(200, 1200)), int(rng.integers(100, 2000))
        p = 1 / (
            1 + math.exp(-(1.5 * math.tanh((output - reference) / 500) - 0.8 * difficulty[i] + 0.3))
        )
        kind = i % 5
        preference = (
            1.5 if kind == 0 else 1 + p if kind == 1 else 2.0 if rng.random() < p else 1.0
        )  # ties, weighted preferences, plain verdicts
        annotations.append({"instruction": f"i{i}", "output_1": "r" * reference,
                            "output_2": "o" * output, "preference": preference,
                            "generator_1": "reference", "generator_2": "model",
                            "annotator": "judge"})  # fmt: skip
    return annotations, pd.DataFrame(gamed), difficulty


@pytest.mark.parametrize(
    "glm", ["length_controlled_v1", "length_controlled_noreg", "length_controlled_minimal"]
)
def test_length_controlled_win_rate_matches_alpaca_evals_own(
    glm, alpaca_eval_metrics, tmp_path, monkeypatch
):
    annotations, gamed, difficulty = synthetic()
    annotations[7]["preference"] = math.nan  # a judgment without a verdict: predicted, not fitted
    gamed_file = tmp_path / "df_gamed.csv"
    gamed.to_csv(gamed_file, index=False)
    glm_winrate = alpaca_eval_metrics.glm_winrate
    # alpaca_eval downloads df_gamed.csv from the Hub on every call: point it at the local file
    # (the noreg and minimal GLMs read only its instruction difficulty, or nothing, from it).
    monkeypatch.setattr(glm_winrate, "hf_hub_download", lambda **kwargs: str(gamed_file))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's deprecations inside alpaca_eval
        theirs = glm_winrate.get_length_controlled_winrate(
            annotations, glm_name=glm, save_weights_dir=None
        )

    ours = length_controlled_win_rate(
        [None if math.isnan(a["preference"]) else a["preference"] for a in annotations],
        [len(a["output_2"]) for a in annotations],
        [len(a["output_1"]) for a in annotations],
        list(range(len(annotations))),
        instruction_difficulty=None
        if glm == "length_controlled_minimal"
        else dict(enumerate(difficulty)),
        gamed=gamed.drop(columns=["model"]) if glm == "length_controlled_v1" else None,
    )
    print(f"{glm}: LC ours {ours['length_controlled_winrate']:.6f} alpaca_eval "
          f"{theirs['length_controlled_winrate']:.6f}; WR {theirs['win_rate']:.4f}")  # fmt: skip
    assert ours["glm"] == glm
    assert ours["length_controlled_winrate"] == pytest.approx(
        theirs["length_controlled_winrate"], abs=1e-6
    )
    assert ours["lc_standard_error"] == pytest.approx(theirs["lc_standard_error"], abs=1e-6)
    # Not a trivial fit: the length term is used, and LC moves away from the raw win rate.
    assert ours["glm_weights"]["np.tanh(std_delta_len)"] != 0
    assert abs(ours["length_controlled_winrate"] - theirs["win_rate"]) > 1
    wr = win_rate([None if math.isnan(a["preference"]) else a["preference"] for a in annotations])
    assert wr["win_rate"] == pytest.approx(theirs["win_rate"])


def test_df_gamed_in_the_bench_supplies_the_difficulty_and_the_regularisation(tmp_path):
    folder = write_bench(tmp_path / "bench")
    _, gamed, difficulty = synthetic(n=len(REFERENCES))
    gamed.to_csv(folder / "df_gamed.csv", index=False)
    bench = Bench(folder)
    assert bench.difficulty == pytest.approx(dict(enumerate(difficulty)))
    assert "model" not in bench.gamed.columns and "gamed" in bench.sha256
    judgments = [
        {"instruction_id": i, "preference": [2.0, 1.0, 1.5, 1.3][i % 4], "verdict_kind": "weighted",
         "output_length": 100 + 40 * i, "reference_length": 300}
        for i in range(len(REFERENCES))
    ]  # fmt: skip
    result = scores(bench, judgments)
    assert result["glm"] == "length_controlled_v1"
    assert "regularised toward the gamed baselines" in result["lc_note"]
    assert set(result["glm_weights"]) == {
        "np.tanh(std_delta_len)", "instruction_difficulty", "not_gamed_baseline.astype(float)",
    }  # fmt: skip
    kept = {"glm_preference": result["glm_preference"]}
    samples = alpacaeval.instruction_samples(bench, judgments, kept)
    per_item = [s["length_controlled_winrate"] for s in samples]
    assert per_item == pytest.approx([p * 100 for p in result["glm_preference"]])


def test_the_command_writes_an_evaluation_the_report_reads(server, tmp_path):
    from codit.cli import main
    from codit.report.stats import item_scores
    from codit.report.tables import main_table

    bench = write_bench(tmp_path / "bench")
    answers, card = tmp_path / "answers.jsonl", tmp_path / "answers.card.json"
    answers.write_text("".join(json.dumps(o) + "\n" for o in model_outputs()))
    labels = {"teacher_pair": "p", "student": "s", "arm": "direct", "seed": "1"}
    card.write_text(json.dumps({"model": "models/s", "labels": labels}))
    out, scores_path = tmp_path / "judgments.jsonl", tmp_path / "scores.json"
    main(["alpacaeval", "judge", "--bench", str(bench), "--answers", str(answers),
          "--answers-card", str(card), "--out", str(out), "--scores", str(scores_path),
          "--seed", str(SEED), "--judge-url", server.url, "--judge-model", "judge"])  # fmt: skip
    payload = json.loads(scores_path.read_text())
    block = payload["results"]["alpaca_eval"]
    logprobs = payload["verdicts"]["weighted"] == 8
    assert block["win_rate,none"] == pytest.approx(50.0)  # (0.8 + 0.2) / 2 or (1 + 0) / 2
    assert block["win_rate_stderr,none"] == pytest.approx(payload["standard_error"])
    assert "avg_length_stderr,none" not in block and block["avg_length,none"] > 0
    assert payload["glm"] == "length_controlled_minimal"
    samples = payload["codit"]["sample_files"]["alpaca_eval"]
    per_item = item_scores(samples, "win_rate")
    assert per_item[0] == pytest.approx(80.0 if logprobs else 100.0)  # the longer output wins
    assert per_item[1] == pytest.approx(20.0 if logprobs else 0.0)
    rows = main_table([(str(scores_path), payload)])
    assert set(rows["metric"]) == {"win_rate", "length_controlled_winrate", "avg_length"}
    assert set(rows["seed"]) == {1.0} and set(rows["arm"]) == {"direct"}
    judgments = [json.loads(line) for line in out.read_text().splitlines()]
    assert [j["model_shown_first"] for j in judgments] == [
        model_shown_first(SEED, r["instruction"]) for r in REFERENCES
    ]


def test_fetch_writes_the_reference_the_glm_data_and_the_template(tmp_path):
    """`codit alpacaeval fetch` from the two repositories (file:// URLs here): the dataset's
    files as they are (datasets 4 runs no loading script), the judge's template at a tag."""
    data, code = tmp_path / "hf", tmp_path / "github"
    data.mkdir()
    (data / alpacaeval.REFERENCE_SOURCE_FILE).write_text(json.dumps(REFERENCES))
    _, gamed, difficulty = synthetic(n=len(REFERENCES))
    gamed.to_csv(data / "df_gamed.csv", index=False)
    pd.Series(difficulty, name="instruction_difficulty").to_csv(data / "instruction_difficulty.csv")
    template = code / alpacaeval.TEMPLATE_PATH
    template.parent.mkdir(parents=True)
    template.write_text(TEMPLATE)
    out = tmp_path / "hub" / "alpaca_eval"

    def fetch(target: Path, *extra: str) -> dict:
        run = alpacaeval.FetchRun(
            out=target, data_source=data.as_uri(), template_source=code.as_uri(),
            **dict(zip(extra[::2], extra[1::2], strict=True)),
        )  # fmt: skip
        return alpacaeval.fetch(run)

    manifest = fetch(out, "instructions", len(REFERENCES))
    bench = Bench(out)
    assert bench.references == REFERENCES and bench.gamed is not None
    assert sorted(p.name for p in out.iterdir()) == [
        "alpaca_eval_clf.txt", "df_gamed.csv", "instruction_difficulty.csv", "manifest.json",
        "reference_outputs.json",
    ]  # fmt: skip
    assert manifest["instructions"] == 8 and manifest["gamed_baselines"] is True
    assert manifest["files"]["references"]["url"].endswith("hf/alpaca_eval_gpt4_baseline.json")
    assert set(manifest["files"]) == {"references", "template", "df_gamed.csv",
                                      "instruction_difficulty.csv"}  # fmt: skip
    # the default expects AlpacaEval's 805 instructions; a failed fetch leaves no folder behind
    other = tmp_path / "other"
    with pytest.raises(ValueError, match="holds 8 instructions, not 805"):
        fetch(other)
    template.write_text("Compare {output_1} with {output_2}.")
    with pytest.raises(ValueError, match="alpaca_eval_clf.txt"):
        fetch(other, "instructions", 8)
    (data / "df_gamed.csv").unlink()
    with pytest.raises(ValueError, match=r"AlpacaEval 2.0: cannot fetch file://.*df_gamed.csv"):
        fetch(other, "instructions", 8)
    assert not other.exists()
    assert Bench(out).references == REFERENCES  # the earlier fetch is untouched


def test_the_fetch_sources_are_the_release_the_glm_follows():
    run = alpacaeval.FetchRun(out=Path("x"))
    assert run.data_source == "https://huggingface.co/datasets/tatsu-lab/alpaca_eval/resolve/main"
    assert run.template_source.endswith("tatsu-lab/alpaca_eval/v0.6.6")
    # the template we fetch is the one alpaca_eval 0.6.6 ships (installed here as a dev package)
    package = Path(importlib.util.find_spec("alpaca_eval").origin).parent  # found, not imported
    shipped = package.parent / Path(alpacaeval.TEMPLATE_PATH).relative_to("src")
    assert shipped.is_file(), shipped


def test_a_model_judged_against_its_own_outputs_gets_an_lc_win_rate_of_50():
    """No spread in the length differences (the reference model itself): alpaca_eval's
    standardisation would divide 0 by 0; the length term is 0 and the LC win rate 50."""
    n = len(REFERENCES)
    result = length_controlled_win_rate([1.5] * n, [10] * n, [10] * n, list(range(n)))
    assert result["length_controlled_winrate"] == pytest.approx(50.0)
