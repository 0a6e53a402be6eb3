"""A local OpenAI-compatible chat endpoint for the judge tests (a real HTTP server in a thread)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from codit.tinyworld.judge import send_json


def count_words(prompt: str) -> str:
    """Best-of-N's judge: rating = words of the judged response (at most 10)."""
    response = re.search(r"<response>\n(.*)\n</response>", prompt, re.S).group(1)
    return f"Fine.\nRating: [[{min(10, len(response.split()))}]]"


class FakeJudge:
    """Answers POST /v1/chat/completions with `reply(prompt)` (by default `count_words`) and,
    for a request that asks for log-probabilities, `top_logprobs(prompt)` ([(token, logprob)],
    the reply's first token's alternatives) when given; keeps every request body and its
    headers."""

    def __init__(
        self,
        reply: Callable[[str], str] = count_words,
        port: int = 0,
        top_logprobs: Callable[[str], list[tuple[str, float]]] | None = None,
    ) -> None:
        self.reply = reply
        self.top_logprobs = top_logprobs
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.fail_first = 0  # answer this many requests with HTTP 500 first
        self.garbage = False  # reply without a rating
        self.garbles: Callable[[str], bool] | None = None  # garbage for the prompts it picks
        self.reasoning_only = False  # garbage as an empty reply beside a reasoning field
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                found = self.path == "/health"
                self._send(200 if found else 404, {"status": "ok" if found else "not found"})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    judge.requests.append(body)
                    judge.headers.append({k.lower(): v for k, v in self.headers.items()})
                    fail = judge.fail_first > 0
                    judge.fail_first -= fail
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": "not found"})
                if fail:
                    return self._send(500, {"error": "overloaded"})
                prompt = body["messages"][-1]["content"]
                garbled = judge.garbage or (judge.garbles is not None and judge.garbles(prompt))
                content = "no verdict" if garbled else judge.reply(prompt)
                message = {"role": "assistant", "content": content}
                if garbled and judge.reasoning_only:  # as vLLM serves a reasoning model
                    thought = "Let me weigh the answer step by step..."
                    message = {"role": "assistant", "content": "", "reasoning_content": thought}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                if judge.top_logprobs is not None and body.get("logprobs"):
                    top = [{"token": token, "logprob": logprob, "bytes": None}
                           for token, logprob in judge.top_logprobs(prompt)]  # fmt: skip
                    choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
                self._send(200, {"id": "c", "object": "chat.completion", "created": 0,
                                 "model": body["model"], "choices": [choice]})  # fmt: skip

            def _send(self, code, payload):
                send_json(self, code, payload)

            def log_message(self, *args):
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    # A judge server process: `python tests/fake_judge.py PORT` (what --judge-serve starts).
    import sys
    import time

    FakeJudge(port=int(sys.argv[1]))
    print(f"fake judge listening on port {sys.argv[1]}", flush=True)
    while True:
        time.sleep(3600)
