"""Asking an LLM judge: the one client every judged stage uses (Best-of-N, judged benchmarks).

The judge is an OpenAI-compatible chat endpoint (`vllm serve`, `transformers serve`, a hosted
API), called with the `openai` client, which retries connection errors, timeouts, 408, 409, 429
and 5xx replies with exponential backoff (`JudgeEndpoint.retries` times) and refuses the other
4xx at once. On top of it, `Judge.ask`:

- sends the requests concurrently (`workers`), at temperature 0;
- appends every verdict to a cache (JSONL) the moment it arrives: the request's key, the
  prompt version, the raw reply and the parsed verdict, so a killed judging job asks, when
  rerun, only for the verdicts it does not have;
- asks again when the stage's parser cannot read a reply (`parse_retries` times: a server may
  cut or vary a reply); a reply that stays unreadable comes back with verdict None and is not
  cached (a rerun asks again), for the stage to refuse or to count, never to score silently;
  with `max_unparsable_share` (the judged benchmarks'), more unreadable replies than that share,
  or no readable one at all, stop `ask` with a message naming the judge, the share, the prompt
  version and two replies (and a reasoning field beside empty replies);
- names the benchmark, the item and the endpoint in every error.

A stage that weighs the verdict by the judge's confidence (AlpacaEval 2) asks for the
log-probabilities of the reply's first token (`top_logprobs`): each entry then also holds
`top_logprobs`, [{token, logprob}] of that token, or None where the server returned none (a
server may ignore the request: `transformers serve` does); the stage says which kind it used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from codit.workflow.settings import Settings, option

# Characters of a reply or an error body shown in messages.
REPLY_SHOWN = 300
# What the client sends as the key when the endpoint needs none (vLLM's convention).
NO_KEY = "EMPTY"


@dataclass(frozen=True, kw_only=True)
class JudgeEndpoint(Settings):
    """Where the judge is and how it is asked: the config's `judge` entries."""

    flag_prefix: ClassVar[str] = "judge_"

    url: str | None = option(
        None, "base URL of the OpenAI-compatible API, e.g. http://host:8000/v1"
    )
    serve: str | None = option(
        None,
        "instead of --judge-url: a command that serves the judge for the job, '{port}' standing "
        "for its port, e.g. 'vllm serve openai/gpt-oss-120b --host 127.0.0.1 --port {port}'",
    )
    model: str | None = option(None, "model name sent to the endpoint")
    api_key_env: str = option(
        "OPENAI_API_KEY",
        f"environment variable holding the API key (unset: the key {NO_KEY!r})",
    )
    max_tokens: int = option(1024, "max reply tokens")
    workers: int = option(8, "concurrent requests")
    timeout: float = option(300.0, "seconds per request")
    retries: int = option(
        3, "retries (exponential backoff) on connection errors, timeouts, 408, 409, 429 and 5xx"
    )
    max_unparsable_share: float = option(
        0.02,
        "a judged benchmark's job fails, before writing scores, when more than this share of "
        "its judge's replies carry no readable verdict",
        elide_default=True,
    )

    def check(self) -> None:
        """Refuse an endpoint that cannot be asked; errors name the flag."""
        if not self.serve and not (self.url or "").startswith(("http://", "https://")):
            raise ValueError(
                f"--judge-url must be an http(s) URL (or give --judge-serve), got {self.url!r}"
            )
        if not self.model:
            raise ValueError("--judge-model is required")
        checks = {
            "--judge-max-tokens must be >= 1": self.max_tokens >= 1,
            "--judge-workers must be >= 1": self.workers >= 1,
            "--judge-timeout must be positive": self.timeout > 0,
            "--judge-retries must be >= 0": self.retries >= 0,
            "--judge-max-unparsable-share must be in [0, 1]": 0 <= self.max_unparsable_share <= 1,
        }
        for message, ok in checks.items():
            if not ok:
                raise ValueError(message)

    def described(self) -> str:
        return f"judge {self.model} at {self.url}"

    def provenance(self) -> dict[str, Any]:
        """What a judged result records of its judge (the key's variable name, never the key)."""
        return {
            "url": self.url,
            "serve": self.serve,
            "model": self.model,
            "api_key_env": self.api_key_env,
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }


def request_key(*parts: Any) -> str:
    """What a verdict depends on (judge model, prompt version, the judged texts), hashed."""
    payload = json.dumps(parts, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class JudgeRequest:
    """One question to the judge: its cache key, the chat messages, and the item it is about
    (named in errors and reports, e.g. "id 'q1' sample 3")."""

    key: str
    messages: list[dict[str, str]] = field(hash=False)
    item: str


def first_token_logprobs(choices: Sequence[Any]) -> list[dict[str, Any]] | None:
    """[{token, logprob}] of the first reply token's top alternatives; None when absent."""
    logprobs = getattr(choices[0], "logprobs", None) if choices else None
    content = getattr(logprobs, "content", None) or []
    top = getattr(content[0], "top_logprobs", None) if content else None
    if not top:
        return None
    return [{"token": t.token, "logprob": float(t.logprob)} for t in top]


class JudgeError(ValueError):
    """The judge could not be asked, or refused; the message names benchmark, item, endpoint."""


def reasoning_text(message: Any) -> str | None:
    """The reasoning a server returned beside the reply (vLLM's `reasoning_content`, newer
    servers' `reasoning`), or None."""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(message, name, None)
        if value is None:
            value = (getattr(message, "model_extra", None) or {}).get(name)
        if isinstance(value, str) and value:
            return value
    return None


class Judge:
    """Ask `endpoint` for verdicts on `benchmark`'s requests; see the module docstring."""

    def __init__(
        self,
        endpoint: JudgeEndpoint,
        *,
        benchmark: str,
        prompt_version: str,
        parse: Callable[[str], Any],
        cache: Path | None = None,
        parse_retries: int = 2,
        top_logprobs: int = 0,
        max_unparsable_share: float | None = None,
    ) -> None:
        from openai import OpenAI

        endpoint.check()
        if not endpoint.url:
            raise ValueError("a served judge is asked once it runs: use judge_server.judge_at")
        self.endpoint, self.benchmark, self.prompt_version = endpoint, benchmark, prompt_version
        self.parse, self.cache, self.parse_retries = parse, cache, parse_retries
        self.top_logprobs = top_logprobs
        self.max_unparsable_share = max_unparsable_share
        self.client = OpenAI(
            base_url=endpoint.url,
            api_key=os.environ.get(endpoint.api_key_env) or NO_KEY,
            timeout=endpoint.timeout,
            max_retries=endpoint.retries,
        )

    def ask(self, requests: Sequence[JudgeRequest]) -> dict[str, dict[str, Any]]:
        """Verdicts by request key: {key, prompt_version, reply, verdict, tries}; a request
        asked twice (same key) is sent once; cached verdicts are not asked again."""
        verdicts = self._read_cache()
        todo = {}
        for request in requests:
            if request.key not in verdicts and request.key not in todo:
                todo[request.key] = request
        distinct = {request.key: request for request in requests}
        if self.cache is not None:
            print(
                f"codit: {self.benchmark}: {len(distinct) - len(todo)} verdicts reused from "
                f"{self.cache}, {len(todo)} to ask",
                file=sys.stderr,
            )
        if todo:
            self._ask_concurrently(list(todo.values()), verdicts)
        unreadable = [distinct[key] for key in distinct if verdicts[key]["verdict"] is None]
        self._check_readable(unreadable, len(distinct), verdicts)
        return {request.key: verdicts[request.key] for request in requests}

    def _check_readable(
        self, unreadable: list[JudgeRequest], asked: int, verdicts: dict[str, dict[str, Any]]
    ) -> None:
        """Refuse, with what a user needs to fix it, a share of unreadable replies (of the
        `asked` distinct requests) above the bound: the benchmark, judge, endpoint, count and
        share, prompt version, two examples."""
        bound, readable = self.max_unparsable_share, asked - len(unreadable)
        if bound is None or not asked:
            return
        # No readable verdict at all is refused whatever the bound: it would score nothing.
        if readable and len(unreadable) / asked <= bound:
            return
        examples = "; ".join(
            f"{request.item}: {verdicts[request.key]['reply'][:REPLY_SHOWN]!r}"
            for request in unreadable[:2]
        )
        thinking = [r for r in unreadable if verdicts[r.key].get("reasoning_chars")]
        hint = ""
        if thinking:
            hint = (
                f" {len(thinking)} of these replies are empty while the server returned a "
                "reasoning field: the judge spent its tokens reasoning. Serve it with a reasoning "
                "parser (vLLM: --reasoning-parser) or raise judge.max_tokens (now "
                f"{self.endpoint.max_tokens})."
            )
        share = len(unreadable) / asked
        bound_said = (
            f"above judge.max_unparsable_share = {bound:g}" if share > bound
            else "no readable verdict at all"
        )  # fmt: skip
        kept = f"The {readable} readable verdicts stay cached in {self.cache}; " if (
            self.cache is not None
        ) else ""  # fmt: skip
        raise JudgeError(
            f"{self.benchmark}: {len(unreadable)} of {asked} replies of "
            f"{self.endpoint.described()} carry no readable verdict ({share:.1%}, {bound_said}; "
            f"prompt version {self.prompt_version}). For example {examples}.{hint} {kept}after "
            "fixing the judge or its prompt, run the same command: only the others are asked again."
        )

    def _error(self, request: JudgeRequest, reason: str) -> JudgeError:
        return JudgeError(
            f"{self.benchmark}: {request.item}: {self.endpoint.described()}: {reason}"
        )

    def _reply(self, request: JudgeRequest) -> tuple[str, list[dict[str, Any]] | None, str | None]:
        """One reply, when asked for its first token's top log-probabilities (None when the
        server gave none), and the reasoning the server returned beside it (None without), after
        the client's own retries; transport failures become JudgeError."""
        import openai

        extra: dict[str, Any] = {}
        if self.top_logprobs:
            extra = {"logprobs": True, "top_logprobs": self.top_logprobs}
        try:
            completion = self.client.chat.completions.create(
                model=self.endpoint.model,
                messages=request.messages,
                temperature=0,
                max_tokens=self.endpoint.max_tokens,
                **extra,
            )
        except openai.APIStatusError as error:
            body = str(error.body if error.body is not None else error.message)[:REPLY_SHOWN]
            raise self._error(request, f"HTTP {error.status_code}: {body}") from None
        except openai.APIError as error:  # connection errors and timeouts, retried already
            tries = self.endpoint.retries + 1
            reason = f"{type(error).__name__} after {tries} tries: {error}"
            raise self._error(request, reason) from None
        choices = completion.choices or []
        message = choices[0].message if choices else None
        content = message.content if message else None
        reasoning = reasoning_text(message) if message else None
        return content if isinstance(content, str) else "", first_token_logprobs(choices), reasoning

    def verdict(self, request: JudgeRequest) -> dict[str, Any]:
        """Ask until the reply parses (at most 1 + parse_retries times)."""
        tries = 0
        while True:
            tries += 1
            reply, logprobs, reasoning = self._reply(request)
            verdict = self.parse(reply)
            if verdict is not None or tries > self.parse_retries:
                entry = {
                    "key": request.key,
                    "prompt_version": self.prompt_version,
                    "reply": reply,
                    "verdict": verdict,
                    "tries": tries,
                }
                if self.top_logprobs:
                    entry["top_logprobs"] = logprobs
                if reasoning is not None:
                    entry["reasoning_chars"] = len(reasoning)
                return entry

    def _read_cache(self) -> dict[str, dict[str, Any]]:
        """Cached verdicts by key; a line cut by a killed run is ignored (asked again)."""
        if self.cache is None or not self.cache.is_file():
            return {}
        cached = {}
        for line in self.cache.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                cached[entry["key"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
        return cached

    def _ask_concurrently(
        self, todo: list[JudgeRequest], verdicts: dict[str, dict[str, Any]]
    ) -> None:
        """Ask `todo` concurrently, caching each parsed verdict as it arrives."""
        with contextlib.ExitStack() as stack:
            handle = None
            if self.cache is not None:
                self.cache.parent.mkdir(parents=True, exist_ok=True)
                # A killed run may have left a cut last line: start ours on a fresh one.
                cut = self.cache.is_file() and not self.cache.read_bytes().endswith(b"\n")
                handle = stack.enter_context(open(self.cache, "a", encoding="utf-8"))
                if cut and self.cache.stat().st_size:
                    handle.write("\n")
            executor = stack.enter_context(ThreadPoolExecutor(max_workers=self.endpoint.workers))
            # On the first failure, drop the requests not yet started (the cache keeps the rest).
            stack.callback(executor.shutdown, wait=True, cancel_futures=True)
            pending = {executor.submit(self.verdict, request) for request in todo}
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                # Keep every verdict that arrived before raising the first failure among them.
                for future in sorted(done, key=lambda f: f.exception() is not None):
                    entry = future.result()
                    verdicts[entry["key"]] = entry
                    if handle is not None and entry["verdict"] is not None:
                        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
                        handle.flush()
