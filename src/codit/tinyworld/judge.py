"""The tiny world's judge server: an OpenAI-compatible endpoint whose verdicts are the oracle's.

`codit tinyworld judge --world DIR --port P` serves, on 127.0.0.1:

- `GET /health`: 200 once the world is loaded;
- `POST /v1/chat/completions`: the last user message must be a judge prompt of a format it
  knows (one function each):
  - Best-of-N's JUDGE_PROMPT (the instruction and the response between `<instruction>` and
    `<response>` tags), or the tiny MT-Bench's turn-1 and turn-2 prompts
    (codit.tinyworld.mtbench: turn 2 is graded on the second answer): the reply is a short
    reason and `Rating: [[N]]`;
  - the tiny WildBench's prompt (codit.tinyworld.wildbench.TINY_TEMPLATE; WILDBENCH_PROMPT, a copy
    of its TINY_PROMPT, reads the query and the response back out): the reply is JSON {"strengths",
    "weaknesses", "score": "N"};
  - the tiny AlpacaEval's pairwise prompt (codit.tinyworld.alpacaeval.TEMPLATE): the reply is
    "m" when output_1 has the higher oracle score, "M" when output_2 has (a tie: "m", the
    output shown first, so under AlpacaEval's seeded random order a tie is a win or a loss
    with equal chance); asked with `logprobs: true, top_logprobs: n`, it also returns
    `choices[0].logprobs.content[0].top_logprobs` (the first n of "m", "M") with
    p(m) = 1 / (1 + exp(-(s_1 - s_2) / PAIRWISE_TEMPERATURE)), p(M) = 1 - p(m), s the oracle
    scores: with the temperature 0.1 a score difference of 0.1 gives p = 0.73, 0.25 (one of
    two constraints) 0.92, 0.5 0.993; a tie 0.5 / 0.5, so codit.judged.alpacaeval's weighted
    preference is 1.5.
  In every rating, N = 1 + round(9 x the oracle's score) (codit.tinyworld.oracle), so
  (N - 1) / 9 is the oracle's score to within 1/18. The held-out instructions are found by their
  text in the world's bench folders (mt_bench/question.jsonl, alpaca_eval/reference_outputs.json,
  wildbench/tasks.jsonl: their `tinyworld` oracle items), the others in its instruction pool. A
  prompt about an instruction the world does not hold, or of no known format, is refused with
  HTTP 400 and says why.

It is a real server process: a judging job starts it like any served judge (`judge.serve` in
the config, codit.judged.judge_server) and stops it. It stands in for a trained tiny judge model: it
agrees with the oracle by construction, and the client, cache, parsing and aggregation it is
asked through are the ones the paper grid uses with gpt-oss-120b.
"""

from __future__ import annotations

import json
import math
import re
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from codit.tinyworld import alpacaeval as tiny_alpacaeval
from codit.tinyworld.alpacaeval import FIRST, REFERENCE_FILE, SECOND
from codit.tinyworld.oracle import Oracle
from codit.workflow.provenance import read_json, read_jsonl

# Best-of-N's judge prompt (codit.baselines.bestofn.JUDGE_PROMPT): what it rates sits between these
# tags.
JUDGED = re.compile(r"<instruction>\n(.*?)\n</instruction>.*?<response>\n(.*?)\n</response>", re.S)
# The tiny MT-Bench's prompts (codit.tinyworld.mtbench): turn 1, and the two-turn conversation.
MT_BENCH_TURN_1 = re.compile(
    r"\[Question\]\n(.*?)\n\n\[The Start of Assistant's Answer\]\n(.*?)\n"
    r"\[The End of Assistant's Answer\]",
    re.S,
)
MT_BENCH_TURN_2 = re.compile(
    r"### User:\n(.*?)\n\n### Assistant A:\n.*?\n\n### User:\n.*?\n\n### Assistant A:\n(.*?)"
    r"\n\n<\|The End of Assistant A's Conversation with User\|>",
    re.S,
)
# The tiny WildBench's prompt: codit.tinyworld.wildbench.TINY_PROMPT and its tasks file, copied
# rather than imported so that the server starts without codit.judged.wildbench's numpy and scipy
# (tests check).
WILDBENCH_PROMPT = re.compile(
    r"<\|begin_of_query\|>\n(.*?)\n<\|end_of_query\|>.*?"
    r"<\|begin_of_response\|>\n(.*?)\n<\|end_of_response\|>",
    re.S,
)
WILDBENCH_FOLDER, TASKS_FILE = "wildbench", "tasks.jsonl"  # the bench folder under the world
MODEL_NAME = "tinyworld-oracle-judge"
# p(output_1 better) = logistic((s_1 - s_2) / PAIRWISE_TEMPERATURE), s the oracle scores.
PAIRWISE_TEMPERATURE = 0.1


def rating(score: float) -> int:
    """The 1..10 rating of an oracle score in [0, 1]."""
    return 1 + round(9 * score)


def mt_bench_items(world: Path) -> dict[str, dict[str, Any]]:
    """The tiny MT-Bench's oracle items by turn-1 text: {"turn_1": item, "turn_2": item}."""
    path = world / "mt_bench" / "question.jsonl"
    if not path.is_file():
        return {}
    return {q["turns"][0]: q["tinyworld"] for q in read_jsonl(path, objects_only=True)}


def bench_items(world: Path) -> dict[str, dict[str, Any]]:
    """The tiny AlpacaEval's and WildBench's oracle items (their `tinyworld` fields) by text."""
    records = []
    references = world / tiny_alpacaeval.FOLDER / REFERENCE_FILE
    if references.is_file():
        records += read_json(references)
    tasks = world / WILDBENCH_FOLDER / TASKS_FILE
    if tasks.is_file():
        records += read_jsonl(tasks, objects_only=True)
    return {r["tinyworld"]["instruction"]: r["tinyworld"] for r in records if "tinyworld" in r}


def item_for(oracle: Oracle, items: dict[str, dict[str, Any]], instruction: str) -> dict[str, Any]:
    """The oracle item of a held-out bench instruction, else of a pool instruction."""
    return items[instruction] if instruction in items else oracle.item_for(instruction)


def judged_item(
    oracle: Oracle, mt_bench: dict[str, dict[str, Any]], prompt: str
) -> tuple[dict[str, Any], str]:
    """(the oracle item, the response) a judge prompt asks about; ValueError if none."""
    found = MT_BENCH_TURN_2.search(prompt) or MT_BENCH_TURN_1.search(prompt)
    if found is not None:
        question, response = found.groups()
        turn = "turn_2" if found.re is MT_BENCH_TURN_2 else "turn_1"
        if question not in mt_bench:
            raise ValueError(f"no tiny MT-Bench question {question[:80]!r}")
        return mt_bench[question][turn], response
    found = JUDGED.search(prompt)
    if found is None:
        raise ValueError("no judge format of the tiny world in the prompt")
    instruction, response = found.groups()
    return oracle.item_for(instruction), response


def reply(result: dict[str, Any]) -> str:
    """The judge's reply for one oracle result (Oracle.score's dict): a reason, then the rating."""
    return (
        f"Constraints met: {result['constraints']:.2f}; knowledge: {result['knowledge']:.2f}.\n"
        f"Rating: [[{rating(result['score'])}]]"
    )


def verdict(oracle: Oracle, prompt: str, mt_bench: dict[str, dict[str, Any]] | None = None) -> str:
    """The judge's reply to one judge prompt; ValueError when it cannot judge it."""
    item, response = judged_item(oracle, mt_bench or {}, prompt)
    return reply(oracle.score(item, response))


def wildbench_verdict(result: dict[str, Any]) -> str:
    """The tiny WildBench's reply for one oracle result: JSON, the rating as its score."""
    return json.dumps(
        {
            "strengths": f"Constraints met: {result['constraints']:.2f}.",
            "weaknesses": f"Knowledge: {result['knowledge']:.2f}.",
            "score": str(rating(result["score"])),
        }
    )


def wildbench_reply(oracle: Oracle, items: dict[str, dict[str, Any]], found: re.Match) -> str:
    """The tiny WildBench's reply to its prompt (`found`)."""
    query, response = found.groups()
    return wildbench_verdict(oracle.score(item_for(oracle, items, query), response))


def pairwise_verdict(first: float, second: float) -> str:
    """The tiny AlpacaEval's reply for two oracle scores: "M" when output_2's is higher, else
    "m" (a tie: the output shown first)."""
    return SECOND if second > first else FIRST


def pairwise_reply(
    oracle: Oracle, items: dict[str, dict[str, Any]], found: re.Match
) -> tuple[str, float]:
    """The tiny AlpacaEval's reply to its prompt (`found`), "m" or "M", and p(m)."""
    instruction, *outputs = found.groups()
    item = item_for(oracle, items, instruction)
    first, second = (oracle.score(item, output)["score"] for output in outputs)
    p_first = 1 / (1 + math.exp(-(first - second) / PAIRWISE_TEMPERATURE))
    return pairwise_verdict(first, second), p_first


def logprobs(content: str, p_first: float, top: int) -> dict[str, Any]:
    """OpenAI's `choices[0].logprobs` of a one-token reply: the first `top` of "m" and "M"."""
    alternatives = sorted(
        [(FIRST, math.log(p_first)), (SECOND, math.log1p(-p_first))], key=lambda t: -t[1]
    )
    entries = [
        {"token": token, "logprob": value, "bytes": list(token.encode())}
        for token, value in alternatives
    ]
    chosen = next(entry for entry in entries if entry["token"] == content)
    return {"content": [{**chosen, "top_logprobs": entries[: max(top, 0)]}]}


def respond(
    oracle: Oracle,
    prompt: str,
    mt_bench: dict[str, dict[str, Any]],
    items: dict[str, dict[str, Any]],
) -> tuple[str, float | None]:
    """(the reply to a judge prompt of any known format, p(m) for a pairwise one)."""
    if found := tiny_alpacaeval.TINY_PROMPT.search(prompt):
        return pairwise_reply(oracle, items, found)
    if found := WILDBENCH_PROMPT.search(prompt):
        return wildbench_reply(oracle, items, found), None
    return verdict(oracle, prompt, mt_bench), None


def send_json(handler: BaseHTTPRequestHandler, code: int, payload: dict[str, Any]) -> None:
    """Answer one request with a JSON body."""
    data = json.dumps(payload).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def make_server(world: Path, port: int) -> ThreadingHTTPServer:
    """The server, bound to 127.0.0.1:`port` (0: any free port), not yet serving."""
    oracle = Oracle(world)
    mt_bench, items = mt_bench_items(Path(world)), bench_items(Path(world))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": {"message": f"no {self.path}"}})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": f"no {self.path}"}})
            try:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                content, p_first = respond(oracle, prompt, mt_bench, items)
                choice: dict[str, Any] = {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
                if body.get("logprobs") and p_first is not None:
                    top = int(body.get("top_logprobs") or 0)
                    choice["logprobs"] = logprobs(content, p_first, top)
            except (ValueError, KeyError, IndexError, TypeError) as error:
                return self._send(400, {"error": {"message": f"cannot judge: {error}"}})
            self._send(
                200,
                {
                    "id": f"tinyjudge-{time.monotonic_ns()}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", MODEL_NAME),
                    "choices": [choice],
                },
            )

        def _send(self, code: int, payload: dict[str, Any]) -> None:
            send_json(self, code, payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # one line per request would swamp the job's log

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def serve(world: Path, port: int) -> None:
    """Serve until SIGTERM (what judge_server.stop sends), then exit with status 0."""
    server = make_server(world, port)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)  # out of serve_forever: a stopped judge is a finished job

    signal.signal(signal.SIGTERM, stop)
    print(f"tiny-world judge on http://127.0.0.1:{port}/v1 (world {world})", file=sys.stderr)
    sys.stderr.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
