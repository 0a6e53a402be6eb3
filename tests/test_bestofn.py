"""Best-of-N stage: selection, oracle scores, the LLM judge over a local HTTP server, the CLI."""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path

import pytest
from fake_judge import FakeJudge

from codit import cli
from codit.baselines import bestofn
from codit.baselines.bestofn import Candidate, JudgeScorer, OracleScorer
from codit.data.datasets import dataset_record
from codit.judged.judge import JudgeEndpoint

PAIR = "tinypair"


def record(key: str, instruction: str, response: str, arm: str = "direct") -> dict:
    return dataset_record(
        key,
        instruction,
        response,
        pair=PAIR,
        arm=arm,
        alpha=None,
        beta=None,
        seed=0,
        num_tokens=len(response.split()),
        finish_reason="stop",
    )


def write_lines(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class TableScorer:
    """Scores looked up by response text (selection tests need no real scorer)."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def settings(self) -> dict:
        return {"table": True}

    def score(self, candidates):
        return [{"score": self.table[c.response]} for c in candidates]


# --------------------------------------------------------------------------- selection


def test_best_index_prefers_highest_then_lowest_index():
    assert bestofn.best_index([0.1, 0.9, 0.3]) == 1
    assert bestofn.best_index([0.5, 0.7, 0.7]) == 1
    assert bestofn.best_index([0.2, 0.2, 0.2]) == 0


def test_selection_writes_best_candidate_per_instruction(tmp_path):
    instr = {k: f"question {k}" for k in ("a", "b", "c")}
    c0 = write_lines(tmp_path / "c0.jsonl", [record(k, instr[k], f"{k}0") for k in "abc"])
    # Candidate 1 lists its ids in another order: output follows candidate 0.
    c1 = write_lines(
        tmp_path / "c1.jsonl", [record(k, instr[k], f"{k}1", "direct_sample1") for k in "cab"]
    )
    c2 = write_lines(
        tmp_path / "c2.jsonl", [record(k, instr[k], f"{k}2", "direct_sample2") for k in "abc"]
    )
    table = {"a0": 0.2, "a1": 0.9, "a2": 0.5, "b0": 0.4, "b1": 0.4, "b2": 0.1}
    table |= {"c0": 0.0, "c1": 0.3, "c2": 0.6}
    out, card_path = tmp_path / "out" / "data.jsonl", tmp_path / "out" / "card.json"
    written = bestofn.best_of_n(
        [c0, c1, c2], TableScorer(table), "oracle", PAIR, out, card_path, tmp_path / "s.jsonl"
    )
    records = read_lines(out)
    assert records == written
    assert [r["id"] for r in records] == ["a", "b", "c"]
    assert [r["completion"][0]["content"] for r in records] == ["a1", "b0", "c2"]
    assert {r["arm"] for r in records} == {"bestof3_oracle"}
    assert records[0]["best_of_n"] == {"sample": 1, "score": 0.9, "scores": [0.2, 0.9, 0.5]}
    assert records[1]["best_of_n"]["sample"] == 0  # tie 0.4 / 0.4 -> lowest index
    assert records[2]["seed"] == 0 and records[2]["pair"] == PAIR

    card = json.loads(card_path.read_text())
    assert card["arm"] == "bestof3_oracle" and card["pair"] == PAIR
    assert card["num_records"] == 3 and card["missing_in_some_candidate"] == 0
    selection = card["selection"]
    assert selection["chosen_sample_counts"] == [1, 1, 1]
    assert selection["ties"] == 1
    assert selection["mean_chosen_score"] == pytest.approx((0.9 + 0.4 + 0.6) / 3)
    assert selection["mean_candidate_score"] == pytest.approx(sum(table.values()) / 9)
    assert selection["mean_sample0_score"] == pytest.approx(0.2)
    settings = card["provenance"]["settings"]
    assert settings["n"] == 3 and settings["scorer"] == "oracle"
    assert [c["path"] for c in settings["candidates"]] == [str(c0), str(c1), str(c2)]
    assert all(len(c["sha256"]) == 64 for c in settings["candidates"])
    scores = read_lines(tmp_path / "s.jsonl")
    assert len(scores) == 9 and scores[1] == {"id": "a", "sample": 1, "score": 0.9}


def test_ids_missing_in_some_candidate_are_left_out_and_counted(tmp_path):
    c0 = write_lines(tmp_path / "c0.jsonl", [record(k, k, f"{k}0") for k in "abc"])
    c1 = write_lines(tmp_path / "c1.jsonl", [record(k, k, f"{k}1") for k in "acd"])
    table = {f"{k}{j}": 0.5 for k in "abcd" for j in (0, 1)}
    out, card_path = tmp_path / "data.jsonl", tmp_path / "card.json"
    bestofn.best_of_n([c0, c1], TableScorer(table), "judge", PAIR, out, card_path)
    assert [r["id"] for r in read_lines(out)] == ["a", "c"]
    card = json.loads(card_path.read_text())
    assert card["missing_in_some_candidate"] == 2
    assert sorted(card["missing_ids"]) == ["b", "d"]
    assert card["arm"] == "bestof2_judge"


def test_mismatched_prompt_is_an_error_naming_file_and_id(tmp_path):
    c0 = write_lines(tmp_path / "c0.jsonl", [record("a", "one", "x"), record("b", "two", "y")])
    c1 = write_lines(tmp_path / "c1.jsonl", [record("a", "one", "x"), record("b", "TWO", "y")])
    with pytest.raises(ValueError, match=r"c1\.jsonl: id 'b' has another prompt"):
        bestofn.load_candidates([c0, c1])


def test_duplicate_id_in_a_candidate_is_an_error(tmp_path):
    c0 = write_lines(tmp_path / "c0.jsonl", [record("a", "one", "x"), record("a", "one", "y")])
    with pytest.raises(ValueError, match=r"c0\.jsonl:2: duplicate id 'a'"):
        bestofn.load_candidates([c0])


# --------------------------------------------------------------------------- oracle

WORLD = {
    "facts": [
        {"subject": "Zorlia", "kind": "country", "attribute": "capital", "value": "Mekto"},
        {"subject": "Zorlia", "kind": "country", "attribute": "flag", "value": "red"},
        {"subject": "Zorlia", "kind": "country", "attribute": "animal", "value": "vimbo"},
        {"subject": "Quoria", "kind": "country", "attribute": "capital", "value": "Tovo"},
        {"subject": "Quoria", "kind": "country", "attribute": "flag", "value": "green"},
        {"subject": "vimbo", "kind": "creature", "attribute": "fur", "value": "blue"},
        {"subject": "vimbo", "kind": "creature", "attribute": "habitat", "value": "forest"},
        {"subject": "vimbo", "kind": "creature", "attribute": "homeland", "value": "Zorlia"},
    ]
}
POOL = [
    {
        "id": "q1",
        "instruction": "What is the capital of Zorlia? Use only lowercase. At most 5 words.",
        "constraints": [{"type": "lower", "kwargs": {}}, {"type": "max_words", "kwargs": {"n": 5}}],
        "request": "What is the capital of Zorlia?",
        "combo": "lower+max_words",
        "subject": "Zorlia",
        "answer": "Mekto",
    },
    {
        "id": "q2",
        "instruction": "Describe the vimbo. Answer in capitals.",
        "constraints": [{"type": "upper", "kwargs": {}}],
        "request": "Describe the vimbo.",
        "combo": "upper",
        "subject": "vimbo",
        "answer": None,
    },
]


def make_world(root: Path, pool: list[dict] = POOL) -> Path:
    (root / "instructions").mkdir(parents=True)
    (root / "world.json").write_text(json.dumps(WORLD))
    write_lines(root / "instructions" / "pool.jsonl", pool)
    return root


@pytest.mark.parametrize(
    ("key", "response", "constraints", "knowledge"),
    [
        ("q1", "the capital is mekto.", 1.0, 1.0),  # compliant and correct
        ("q1", "The capital is Mekto.", 0.5, 1.0),  # not lowercase
        ("q1", "the capital is tovo.", 1.0, 0.0),  # wrong value
        ("q1", "the capital is mektoville.", 1.0, 0.0),  # whole words only
        ("q2", "THE VIMBO HAS BLUE FUR AND LIVES IN THE FOREST OF ZORLIA.", 1.0, 1.0),
        ("q2", "THE VIMBO HAS BLUE FUR AND A GREEN TAIL.", 1.0, 0.5),  # green: Quoria's flag
        ("q2", "The vimbo has red fur.", 0.0, 0.0),  # red is Zorlia's, not the vimbo's
        ("q2", "THE VIMBO IS NICE.", 1.0, 0.0),  # the subject alone is no world value
    ],
)
def test_oracle_scores(tmp_path, key, response, constraints, knowledge):
    oracle = OracleScorer(make_world(tmp_path / "world"))
    item = next(i for i in POOL if i["id"] == key)
    [result] = oracle.score([Candidate(key, 0, item["instruction"], response)])
    assert result["constraints"] == pytest.approx(constraints)
    assert result["knowledge"] == pytest.approx(knowledge)
    assert result["score"] == pytest.approx((constraints + knowledge) / 2)


def test_oracle_refuses_unknown_id_and_old_pool(tmp_path):
    oracle = OracleScorer(make_world(tmp_path / "world"))
    with pytest.raises(ValueError, match="no instruction with id 'q9'"):
        oracle.score([Candidate("q9", 0, "x", "y")])
    old = [{k: v for k, v in POOL[0].items() if k not in {"subject", "answer"}}]
    oracle = OracleScorer(make_world(tmp_path / "old", old))
    with pytest.raises(ValueError, match="no 'answer'/'subject' field"):
        oracle.score([Candidate("q1", 0, POOL[0]["instruction"], "y")])


# --------------------------------------------------------------------------- judge


@pytest.fixture
def fake_judge():
    judge = FakeJudge()
    yield judge
    judge.close()


def judge_candidates(tmp_path: Path) -> list[Path]:
    responses = [
        ["one two", "one two three four", "x"],  # q1: sample 1 wins (4 words)
        ["a b c", "a b c", "a"],  # q2: tie 3 / 3 -> sample 0
    ]
    paths = []
    for sample in range(3):
        recs = [record(f"q{i + 1}", f"instr {i}", r[sample]) for i, r in enumerate(responses)]
        paths.append(write_lines(tmp_path / f"c{sample}.jsonl", recs))
    return paths


def test_parse_rating_takes_the_last_valid_one():
    assert bestofn.parse_rating("[[3]] then\nRating: [[7]]") == 7
    assert bestofn.parse_rating("Rating: [[ 10 ]]") == 10
    assert bestofn.parse_rating("Rating: [[11]]") is None
    assert bestofn.parse_rating("Rating: 7") is None


def endpoint(url: str, model: str = "m", **settings) -> JudgeEndpoint:
    return JudgeEndpoint(url=url, model=model, **settings)


def test_judge_selects_and_sends_key(tmp_path, fake_judge, monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "secret")
    out = tmp_path / "data.jsonl"
    judge = endpoint(fake_judge.url, "judge-model", api_key_env="MY_JUDGE_KEY", workers=4)
    scorer = JudgeScorer(judge, cache=bestofn.judge_cache_path(out))
    paths = judge_candidates(tmp_path)
    bestofn.best_of_n(
        paths, scorer, "judge", PAIR, out, tmp_path / "card.json", tmp_path / "s.jsonl"
    )
    records = read_lines(out)
    assert [r["best_of_n"]["sample"] for r in records] == [1, 0]
    assert records[0]["best_of_n"]["scores"] == pytest.approx([1 / 9, 3 / 9, 0.0])
    assert records[0]["arm"] == "bestof3_judge"
    # Identical texts ("a b c" twice) are asked once: 5 distinct candidates.
    assert len(fake_judge.requests) == 5
    assert all(h.get("authorization") == "Bearer secret" for h in fake_judge.headers)
    body = fake_judge.requests[0]
    assert body["model"] == "judge-model" and body["temperature"] == 0
    assert body["max_tokens"] == 1024
    scores = read_lines(tmp_path / "s.jsonl")
    assert scores[1]["rating"] == 4 and "Rating: [[4]]" in scores[1]["reply"]
    card = json.loads((tmp_path / "card.json").read_text())
    settings = card["provenance"]["settings"]["scorer_settings"]
    assert settings["prompt_version"] == bestofn.JUDGE_PROMPT_VERSION
    assert settings["model"] == "judge-model" and "secret" not in json.dumps(card)
    assert not bestofn.judge_cache_path(out).exists()


def test_judge_unparsable_reply_stops_the_stage_naming_the_candidate(fake_judge):
    fake_judge.garbage = True
    scorer = JudgeScorer(endpoint(fake_judge.url, workers=1))
    with pytest.raises(ValueError, match=r"Best-of-N: id 'q7' sample 1: judge m at .* gave no ra"):
        scorer.score([Candidate("q7", 1, "instr", "two words")])
    assert len(fake_judge.requests) == 3  # asked again twice before giving up


def test_judge_rerun_of_the_stage_uses_the_cache(tmp_path, fake_judge):
    paths = judge_candidates(tmp_path)
    out = tmp_path / "data.jsonl"
    cache = bestofn.judge_cache_path(out)
    scorer = JudgeScorer(endpoint(fake_judge.url), cache=cache)
    scorer.score(bestofn.candidate_items(*bestofn.load_candidates(paths)[:2]))  # the killed run
    asked = len(fake_judge.requests)
    bestofn.best_of_n(paths, scorer, "judge", PAIR, out, tmp_path / "card.json")
    assert len(fake_judge.requests) == asked and not cache.exists()


# --------------------------------------------------------------------------- command line


def test_cli_oracle(tmp_path):
    world = make_world(tmp_path / "world")
    instructions = {item["id"]: item["instruction"] for item in POOL}
    good = {"q1": "the capital is mekto.", "q2": "THE VIMBO HAS BLUE FUR."}
    bad = {"q1": "The capital is Tovo.", "q2": "THE VIMBO HAS GREEN FUR."}
    c0 = write_lines(tmp_path / "c0.jsonl", [record(k, instructions[k], bad[k]) for k in good])
    c1 = write_lines(tmp_path / "c1.jsonl", [record(k, instructions[k], good[k]) for k in good])
    out, card = tmp_path / "data.jsonl", tmp_path / "card.json"
    argv = ["bestofn", "--candidates", str(c0), str(c1), "--scorer", "oracle"]
    argv += ["--pair", PAIR, "--out", str(out), "--card", str(card), "--world", str(world)]
    cli.main(argv)
    records = read_lines(out)
    assert [r["best_of_n"]["sample"] for r in records] == [1, 1]
    assert [r["best_of_n"]["score"] for r in records] == [1.0, 1.0]
    settings = json.loads(card.read_text())["provenance"]["settings"]
    assert settings["scorer_settings"]["oracle"] is True
    assert len(settings["scorer_settings"]["world_sha256"]) == 64


def test_cli_judge(tmp_path, fake_judge, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    paths = judge_candidates(tmp_path)
    out, card, scores = tmp_path / "data.jsonl", tmp_path / "card.json", tmp_path / "s.jsonl"
    argv = ["bestofn", "--candidates", *map(str, paths), "--scorer", "judge", "--pair", PAIR]
    argv += ["--out", str(out), "--card", str(card), "--scores", str(scores)]
    argv += ["--judge-url", fake_judge.url, "--judge-model", "m", "--judge-workers", "2"]
    cli.main(argv)
    assert [r["best_of_n"]["sample"] for r in read_lines(out)] == [1, 0]
    assert len(read_lines(scores)) == 6


def test_cli_judge_served_for_the_job(tmp_path):
    """--judge-serve: the job starts the judge server, asks it, and stops it."""
    paths = judge_candidates(tmp_path)
    out, card = tmp_path / "data.jsonl", tmp_path / "card.json"
    serve = f"{sys.executable} {Path(__file__).with_name('fake_judge.py')} {{port}}"
    argv = ["bestofn", "--candidates", *map(str, paths), "--scorer", "judge", "--pair", PAIR]
    argv += ["--out", str(out), "--card", str(card), "--judge-serve", serve, "--judge-model", "m"]
    cli.main(argv)
    assert [r["best_of_n"]["sample"] for r in read_lines(out)] == [1, 0]
    judge = json.loads(card.read_text())["provenance"]["settings"]["scorer_settings"]
    assert judge["serve"] == serve and judge["url"].startswith("http://127.0.0.1:")
    log = Path(f"{out}.judge-server.log").read_text()
    assert log.startswith("codit: starting judge server: ") and "listening on port" in log
    pid = int(re.search(r"judge server pid (\d+)", log).group(1))
    assert not Path(f"/proc/{pid}").exists()  # stopped and reaped


def test_the_tiny_worlds_served_judge_rates_as_its_oracle(tmp_path):
    """`codit tinyworld judge`, served for the Best-of-N job: ratings 1 + round(9 x oracle)."""
    world = make_world(tmp_path / "world")
    instructions = {item["id"]: item["instruction"] for item in POOL}
    samples = [
        {"q1": "The capital is Tovo.", "q2": "The vimbo has red fur."},  # oracle 0.25, 0.0
        {"q1": "the capital is mekto.", "q2": "THE VIMBO HAS BLUE FUR AND A GREEN TAIL."},
        {"q1": "The capital is Mekto.", "q2": "THE VIMBO IS NICE."},  # 0.75, 0.5
    ]
    paths = [
        write_lines(tmp_path / f"c{j}.jsonl", [record(k, instructions[k], r[k]) for k in r])
        for j, r in enumerate(samples)
    ]
    out, card, scores = tmp_path / "data.jsonl", tmp_path / "card.json", tmp_path / "s.jsonl"
    serve = f"{sys.executable} -m codit tinyworld judge --world {world} --port {{port}}"
    argv = ["bestofn", "--candidates", *map(str, paths), "--scorer", "judge", "--pair", PAIR]
    argv += ["--out", str(out), "--card", str(card), "--scores", str(scores)]
    argv += ["--judge-serve", serve, "--judge-model", "tinyworld-oracle-judge"]
    cli.main(argv)
    oracle = OracleScorer(world)
    for row in read_lines(scores):
        response = samples[row["sample"]][row["id"]]
        candidate = Candidate(row["id"], row["sample"], instructions[row["id"]], response)
        [truth] = oracle.score([candidate])
        assert row["rating"] == 1 + round(9 * truth["score"]), row
    assert [r["best_of_n"]["sample"] for r in read_lines(out)] == [1, 1]
    log = Path(f"{out}.judge-server.log").read_text()
    assert "tiny-world judge on http://127.0.0.1:" in log
    pid = re.search(r"judge server pid (\d+)", log).group(1)
    assert not Path(f"/proc/{pid}").exists()


def test_the_tiny_worlds_judge_refuses_what_it_cannot_judge(tmp_path):
    from codit.tinyworld.judge import make_server

    server = make_server(make_world(tmp_path / "world"), 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        scorer = JudgeScorer(endpoint(url, retries=0))
        with pytest.raises(ValueError, match=r"id 'q9' sample 0: judge m at .*HTTP 400.*no inst"):
            scorer.score([Candidate("q9", 0, "Not in the pool.", "x")])
    finally:
        server.shutdown()
        server.server_close()


def test_cli_errors_are_one_line(tmp_path):
    c0 = write_lines(tmp_path / "c0.jsonl", [record("a", "one", "x")])
    base = ["bestofn", "--candidates", str(c0), "--pair", PAIR]
    base += ["--out", str(tmp_path / "o.jsonl"), "--card", str(tmp_path / "c.json")]
    with pytest.raises(SystemExit) as error:
        cli.main([*base, "--scorer", "oracle"])
    assert (
        str(error.value)
        == "codit bestofn: error: --scorer oracle needs --world (the tiny world folder)"
    )
    with pytest.raises(
        SystemExit,
        match=r"--judge-url must be an http\(s\) URL \(or give --judge-serve\), got None",
    ):
        cli.main([*base, "--scorer", "judge"])
    with pytest.raises(SystemExit, match="candidate dataset .*missing.jsonl does not exist"):
        cli.main([*base[:2], str(tmp_path / "missing.jsonl"), *base[3:], "--scorer", "oracle"])
