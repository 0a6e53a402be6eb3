"""codit.judged.judge: the `openai` client against a real local HTTP server: retries, refusals,
replies that do not parse, the verdict cache a killed job resumes from, and errors that name the
benchmark, the item and the endpoint."""

from __future__ import annotations

import json
import re
import socket

import pytest
from fake_judge import FakeJudge

from codit.judged.judge import Judge, JudgeEndpoint, JudgeError, JudgeRequest, request_key


def echo_rating(prompt: str) -> str:
    """Rates `rate N` prompts N."""
    rating = re.search(r"rate (\d+)", prompt).group(1)
    return f"Because.\nRating: [[{rating}]]"


def parse(reply: str) -> int | None:
    found = re.findall(r"\[\[(\d+)\]\]", reply)
    return int(found[-1]) if found else None


def requests(*ratings: int) -> list[JudgeRequest]:
    return [
        JudgeRequest(request_key("m", "v1", n), [{"role": "user", "content": f"rate {n}"}], f"q{n}")
        for n in ratings
    ]


def judge(server: FakeJudge, cache=None, **settings) -> Judge:
    endpoint = JudgeEndpoint(url=server.url, model="m", **settings)
    return Judge(endpoint, benchmark="MT-Bench", prompt_version="v1", parse=parse, cache=cache)


@pytest.fixture
def server():
    fake = FakeJudge(echo_rating)
    yield fake
    fake.close()


def test_verdicts_come_back_by_key_with_reply_and_prompt_version(server):
    asked = requests(3, 7, 3)
    verdicts = judge(server).ask(asked)
    assert [verdicts[r.key]["verdict"] for r in asked] == [3, 7, 3]
    assert len(server.requests) == 2  # the same request twice is sent once
    entry = verdicts[asked[1].key]
    assert entry["prompt_version"] == "v1" and "Rating: [[7]]" in entry["reply"]
    assert server.requests[0]["temperature"] == 0 and server.requests[0]["model"] == "m"
    assert server.headers[0]["authorization"] == "Bearer EMPTY"  # no key variable set


def test_a_server_error_is_retried_by_the_client(server):
    server.fail_first = 1
    [entry] = judge(server, retries=1).ask(requests(4)).values()
    assert entry["verdict"] == 4 and len(server.requests) == 2


def test_errors_name_the_benchmark_the_item_and_the_endpoint(server):
    server.fail_first = 5
    with pytest.raises(JudgeError, match=rf"MT-Bench: q4: judge m at {server.url}: HTTP 500"):
        judge(server, retries=1).ask(requests(4))
    assert len(server.requests) == 2
    refused = JudgeEndpoint(url=server.url.removesuffix("/v1"), model="m", retries=3)
    with pytest.raises(JudgeError, match="HTTP 404"):
        Judge(refused, benchmark="b", prompt_version="v", parse=parse).ask(requests(1))
    assert len(server.requests) == 3  # a refusal is not retried
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    down = JudgeEndpoint(url=f"http://127.0.0.1:{port}/v1", model="m", retries=0)
    with pytest.raises(JudgeError, match=rf"b: q1: judge m at http://127.0.0.1:{port}/v1: APIC"):
        Judge(down, benchmark="b", prompt_version="v", parse=parse).ask(requests(1))


def test_an_unparsable_reply_is_asked_again_then_returned_without_verdict(server, tmp_path):
    server.garbage = True
    cache = tmp_path / "cache.jsonl"
    [entry] = judge(server, cache=cache).ask(requests(5)).values()
    assert entry["verdict"] is None and entry["tries"] == 3 and entry["reply"] == "no verdict"
    assert len(server.requests) == 3
    assert not cache.exists() or cache.read_text() == ""  # never cached: a rerun asks again


def test_a_killed_job_resumes_asking_only_for_missing_verdicts(server, tmp_path):
    cache = tmp_path / "cache.jsonl"
    first = judge(server, cache=cache).ask(requests(1, 2))
    assert len(server.requests) == 2 and len(cache.read_text().splitlines()) == 2
    with cache.open("a") as handle:
        handle.write('{"key": "cut by a kill')  # the killed job's last line
    again = judge(server, cache=cache).ask(requests(1, 2, 3))
    assert len(server.requests) == 3  # only the third
    assert {k: again[k] for k in first} == first
    cached = [json.loads(line) for line in cache.read_text().splitlines() if line.endswith("}")]
    assert sorted(entry["verdict"] for entry in cached) == [1, 2, 3]  # in order of arrival


def test_bad_endpoint_settings_are_refused_before_any_request():
    for settings, message in [
        ({"url": None, "model": "m"}, "--judge-url must be an http"),
        ({"url": "ftp://x", "model": "m"}, "--judge-url must be an http"),
        ({"url": "http://x/v1", "model": None}, "--judge-model is required"),
        ({"url": "http://x/v1", "model": "m", "workers": 0}, "--judge-workers must be >= 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            Judge(JudgeEndpoint(**settings), benchmark="b", prompt_version="v", parse=parse)
