"""The tiny world's judge server: an OpenAI-compatible endpoint whose verdicts are the oracle's.

`codit tinyworld judge --world DIR --port P` serves, on 127.0.0.1:

- `GET /health`: 200 once the world is loaded;
- `POST /v1/chat/completions`: the last user message must be a judge prompt of a format it
  knows: Best-of-N's JUDGE_PROMPT (the instruction and the response between `<instruction>`
  and `<response>` tags), or the tiny MT-Bench's turn-1 and turn-2 prompts
  (codit.tinyworld.mtbench: turn 2 is graded on the second answer); the reply is a short
  reason and `Rating: [[N]]`, with N = 1 + round(9 x the oracle's score)
  (codit.tinyworld.oracle), so (N - 1) / 9 is the oracle's score to within 1/18. A prompt
  about an instruction the world does not hold, or of no known format, is refused with HTTP
  400 and says why.

It is a real server process: a judging job starts it like any served judge (`judge.serve` in
the config, codit.judge_server) and stops it. It stands in for a trained tiny judge model: it
agrees with the oracle by construction, and the client, cache, parsing and aggregation it is
asked through are the ones the paper grid uses with gpt-oss-120b.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from codit.provenance import read_jsonl
from codit.tinyworld.oracle import Oracle

# Best-of-N's judge prompt (codit.bestofn.JUDGE_PROMPT): what it rates sits between these tags.
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
MODEL_NAME = "tinyworld-oracle-judge"


def rating(score: float) -> int:
    """The 1..10 rating of an oracle score in [0, 1]."""
    return 1 + round(9 * score)


def mt_bench_items(world: Path) -> dict[str, dict[str, Any]]:
    """The tiny MT-Bench's oracle items by turn-1 text: {"turn_1": item, "turn_2": item}."""
    path = world / "mt_bench" / "question.jsonl"
    if not path.is_file():
        return {}
    return {q["turns"][0]: q["tinyworld"] for q in read_jsonl(path, objects_only=True)}


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
    mt_bench = mt_bench_items(Path(world))

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
                content = verdict(oracle, prompt, mt_bench)
            except (ValueError, KeyError, IndexError, TypeError) as error:
                return self._send(400, {"error": {"message": f"cannot judge: {error}"}})
            message = {"role": "assistant", "content": content}
            self._send(
                200,
                {
                    "id": f"tinyjudge-{time.monotonic_ns()}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", MODEL_NAME),
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
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
