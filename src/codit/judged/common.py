"""The common end of every judged benchmark's judging job (MT-Bench, WildBench, AlpacaEval 2).

A judging job reads one model's answers, asks the judge (`codit.judged.judge`, an endpoint that runs
or one `codit.judged.judge_server` serves for the job) and writes three files:

- the judgments (`--out`): JSONL, every verdict with its raw reply;
- the per-item samples (`--samples`, default `samples.jsonl` beside `--out`): one record per
  benchmark item in lm-eval's logged-sample layout (doc_id, doc_hash, filter, metrics, one
  value per metric; a metric without a valid verdict left out), which `codit.report.stats` reads for
  the paired bootstrap over items;
- the scores (`--scores`): shaped like an evaluation file of `codit evaluate`, so the report
  reads it beside the lm-eval results: `results[task]` holds each metric under
  "<metric>,none" with its "_stderr" twin, `higher_is_better[task]` the directions, and
  `codit` the answering model's labels (copied from the answers' card, `--answers-card`), the
  samples file and the provenance.

The verdict cache (`<out>.judge-cache.jsonl`) lets a killed job ask only for the missing
verdicts; it is removed once the judgments are written. A job whose judge left more than
`judge.max_unparsable_share` of its replies unreadable fails before writing anything (the
message names benchmark, judge, share, prompt version and two replies), keeping the cache; below
that bound the scores rest on the readable verdicts and say how many (`scored`).

`fetch_file` is how every benchmark's fetch (a local rule) downloads its files, with their
digests for the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.judged.judge import Judge, JudgeEndpoint
from codit.judged.judge_server import judge_at
from codit.report.stats import standard_error
from codit.workflow.provenance import file_sha256, provenance, read_json, write_json, write_jsonl
from codit.workflow.settings import Settings, option

Records = list[dict[str, Any]]


def fetch_file(url: str, target: Path, benchmark: str) -> dict[str, str]:
    """`url` (https or file://) into `target`; {url, sha256}, or an error naming both."""
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=120) as answer:
            target.write_bytes(answer.read())
    except OSError as error:
        raise ValueError(f"{benchmark}: cannot fetch {url}: {error}") from None
    return {"url": url, "sha256": file_sha256(target)}


@dataclass(frozen=True, kw_only=True)
class JudgedOutputs(Settings):
    """Where a judging job reads the model's labels and writes its three files."""

    answers_card: Path | None = option(
        None, "the answers' card (`codit ... answer --card`): its labels go into the scores"
    )
    out: Path = option(help="the judgments: JSONL, every verdict with its raw reply")
    scores: Path = option(help="the scores: an evaluation-shaped JSON (see codit.judged.common)")
    samples: Path | None = option(
        None, "per-item scores for the paired bootstrap (default: samples.jsonl beside OUT)"
    )
    server_log: Path | None = option(
        None, "output of the judge server --judge-serve starts (default: OUT.judge-server.log)"
    )

    @property
    def samples_path(self) -> Path:
        return self.samples or Path(self.out).with_name("samples.jsonl")

    def labels(self) -> dict[str, Any]:
        """The answers' card (its `labels` and `model`); {} without one."""
        if self.answers_card is None:
            return {}
        card = read_json(self.answers_card)
        if not isinstance(card, dict):
            raise ValueError(f"--answers-card {self.answers_card}: not a JSON object")
        return card


@dataclass(frozen=True)
class JudgedBenchmark:
    """What the scores file says about a benchmark: its name, task name in the tables, the
    metrics (all higher-is-better) and how the judge's replies are read."""

    name: str
    task: str
    metrics: tuple[str, ...]
    prompt_version: str
    parse: Callable[[str], Any]
    # metric -> the key of its standard error in the result (None: none); others: over items
    stderr_keys: Mapping[str, str | None] | None = None


def results_block(
    result: Mapping[str, Any],
    samples: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    stderr_keys: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """lm-eval's `results[task]` layout: each metric with a value under "<metric>,none" and
    its standard error: the result's own (`stderr_keys`: metric -> its key in `result`, None
    for none) or else the standard error over the samples' items."""
    block: dict[str, Any] = {}
    for metric in metrics:
        if result[metric] is None:
            continue
        block[f"{metric},none"] = result[metric]
        if stderr_keys is not None and metric in stderr_keys:
            if stderr_keys[metric] is not None:
                block[f"{metric}_stderr,none"] = result[stderr_keys[metric]]
            continue
        per_item = [sample[metric] for sample in samples if metric in sample]
        block[f"{metric}_stderr,none"] = standard_error(per_item)
    return block


def judge_and_write(
    benchmark: JudgedBenchmark,
    endpoint_settings: JudgeEndpoint,
    outputs: JudgedOutputs,
    grade: Callable[[Judge], tuple[Records, dict[str, Any]]],
    item_samples: Callable[[Records], Records],
    record: dict[str, Any],
    extra: Mapping[str, Any] | None = None,
    running: JudgeEndpoint | None = None,
    **judge_options: Any,
) -> dict[str, Any]:
    """Ask the judge through `grade` (-> judgments, result), then write the judgments, the
    samples and the scores; returns the scores payload. `extra` joins the payload (digests of
    the bench and the answers); `running`: the endpoint of a judge server the caller already
    runs (`codit judged`: one server for several benchmarks), else the job serves its own;
    `judge_options` go to `Judge` (e.g. top_logprobs)."""
    card = outputs.labels()
    endpoint_settings.check()  # before a server starts
    cache = Path(f"{outputs.out}.judge-cache.jsonl")
    log = outputs.server_log or Path(f"{outputs.out}.judge-server.log")
    with judge_at(endpoint_settings, log, running) as endpoint:
        judge = Judge(
            endpoint, benchmark=benchmark.name, prompt_version=benchmark.prompt_version,
            parse=benchmark.parse, cache=cache,
            max_unparsable_share=endpoint_settings.max_unparsable_share, **judge_options,
        )  # fmt: skip
        judgments, result = grade(judge)
    samples = item_samples(judgments)
    unreadable = result.get("unparsable", result.get("verdicts", {}).get("unparsable", 0))
    write_jsonl(outputs.out, judgments)
    write_jsonl(outputs.samples_path, samples)
    payload = {
        "benchmark": benchmark.name,
        **result,
        "results": {
            benchmark.task: results_block(result, samples, benchmark.metrics, benchmark.stderr_keys)
        },
        "higher_is_better": {benchmark.task: dict.fromkeys(benchmark.metrics, True)},
        # judgments with a readable verdict, of all (below judge.max_unparsable_share)
        "scored": {"items": len(judgments) - unreadable, "of": len(judgments)},
        "judge": endpoint.provenance(),
        **(extra or {}),
        "codit": {
            "labels": card.get("labels", {}),
            "model": card.get("model"),
            "sample_files": {benchmark.task: str(outputs.samples_path)},
            "provenance": provenance(record),
        },
    }
    write_json(outputs.scores, payload)
    cache.unlink(missing_ok=True)  # the judgments file keeps every verdict
    return payload
