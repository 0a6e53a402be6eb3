"""`codit prefetch` and offline evaluation: task data is fetched once, and a compute job whose
task data is not in the offline cache fails in seconds, naming the task, before any model loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codit.cli import main
from codit.workflow.config import hub_environment

BIN = Path(sys.executable).parent
DOCS = [{"prompt": "say hello", "answer": "hello"}, {"prompt": "say bye", "answer": "bye"}]
TASK_YAML = """\
task: {name}
dataset_path: {dataset_path}
{dataset_kwargs}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs: {{until: [], do_sample: false, max_gen_toks: 2}}
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    """A task with local data and one whose data would come from the Hub."""
    root = tmp_path_factory.mktemp("tasks")
    data = root / "local.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in DOCS))
    local_kwargs = f"dataset_kwargs:\n  data_files:\n    test: {data}"
    (root / "local_task.yaml").write_text(
        TASK_YAML.format(name="local_task", dataset_path="json", dataset_kwargs=local_kwargs)
    )
    (root / "hub_task.yaml").write_text(
        TASK_YAML.format(name="hub_task", dataset_path="acme/never-fetched", dataset_kwargs="")
    )
    return root


def test_prefetch_writes_a_manifest_of_what_each_task_read(task_dir, tmp_path):
    out = tmp_path / "tasks.json"
    main(["prefetch", "--tasks", "local_task", "--include-path", str(task_dir),
          "--no-default-tasks", "--out", str(out)])  # fmt: skip
    manifest = json.loads(out.read_text())
    assert manifest["tasks"]["local_task"] == {
        "dataset_path": "json",
        "dataset_name": None,
        "splits": {"test": len(DOCS)},
    }
    assert manifest["provenance"]["versions"]["datasets"]


def offline_codit(*args: str, cache: Path) -> subprocess.CompletedProcess:
    """A `codit` process with the environment the workflow gives compute jobs."""
    env = {**os.environ, **hub_environment(str(cache), offline=True)}
    return subprocess.run(
        [str(BIN / "codit"), *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("stage", ["evaluate", "prefetch"])
def test_offline_job_without_cached_data_names_the_task_and_the_fix(task_dir, tmp_path, stage):
    # Not a model: the job must fail on the task data before it tries to load one.
    not_a_model = tmp_path / "model"
    not_a_model.mkdir()
    model_args = ["--model", str(not_a_model), "--device", "cpu"] if stage == "evaluate" else []
    result = offline_codit(
        stage, "--tasks", "local_task,hub_task", "--include-path", str(task_dir),
        "--no-default-tasks", "--out", str(tmp_path / "out.json"), *model_args,
        cache=tmp_path / "hub",
    )  # fmt: skip
    assert result.returncode != 0
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"codit {stage}: error: lm-eval task hub_task: cannot load its data")
    assert "acme/never-fetched" in error and "offline cache" in error
    assert f"HF_HOME={tmp_path / 'hub' / 'huggingface'}" in error
    assert "codit prefetch --tasks hub_task" in error and "prefetch_eval_tasks" in error
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.json").exists()


def test_offline_job_reads_local_task_data(task_dir, tmp_path):
    """Local task files need no prefetch: the tiny world's evaluations run offline this way."""
    out = tmp_path / "tasks.json"
    result = offline_codit(
        "prefetch", "--tasks", "local_task", "--include-path", str(task_dir),
        "--no-default-tasks", "--out", str(out), cache=tmp_path / "hub",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads(out.read_text())
    assert manifest["environment"]["HF_HUB_OFFLINE"] == "1"
    assert manifest["tasks"]["local_task"]["splits"] == {"test": len(DOCS)}
