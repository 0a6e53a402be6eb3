"""`codit evaluate` for real: lm-eval with tiny local tasks on a tiny random Llama (no Hub)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from tiny_models import save_tiny_llama, write_dataset

from codit.cli import main

GEN_DOCS = [
    {"prompt": "say hello world", "answer": "hello"},
    {"prompt": "what color is the sky", "answer": "blue"},
    {"prompt": "write one word", "answer": "word"},
]
MC_DOCS = [
    {"question": "is the sky blue", "choices": ["yes", "no"], "label": 0},
    {"question": "is the cat a dog", "choices": ["yes", "no"], "label": 1},
]

GEN_YAML = """\
task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: []
  do_sample: false
  max_gen_toks: 4
process_results: !function utils.process_results
metric_list:
  - metric: word_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

MC_YAML = """\
task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: choices
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

UTILS = """\
def process_results(doc, results):
    return {"word_match": float(doc["answer"] in results[0].split())}
"""


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tasks")
    gen_data = write_jsonl(root / "tiny_gen.jsonl", GEN_DOCS)
    mc_data = write_jsonl(root / "tiny_mc.jsonl", MC_DOCS)
    (root / "tiny_gen.yaml").write_text(GEN_YAML.format(data=gen_data))
    (root / "tiny_mc.yaml").write_text(MC_YAML.format(data=mc_data))
    (root / "utils.py").write_text(textwrap.dedent(UTILS))
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("model") / "llama")


def evaluate(model: Path, task_dir: Path, out: Path, *extra: str) -> dict:
    main([
        "evaluate", "--model", str(model), "--tasks", "tiny_gen,tiny_mc",
        "--include-path", str(task_dir), "--no-default-tasks", "--out", str(out),
        "--device", "cpu", "--threads", "1", *extra,
    ])  # fmt: skip
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def evaluated(model_dir, task_dir, tmp_path_factory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("eval")
    labels = ["--label", "arm=direct", "--label", "student=tiny"]
    # The student's own folder stands in for its teacher: both architectures are recorded.
    payload = evaluate(model_dir, task_dir, root / "results.json", "--samples-dir",
                       str(root / "samples"), "--teacher", str(model_dir), *labels)  # fmt: skip
    return payload, root


def test_metrics_in_lm_eval_format(evaluated):
    payload, _ = evaluated
    assert 0.0 <= payload["results"]["tiny_gen"]["word_match,none"] <= 1.0
    assert 0.0 <= payload["results"]["tiny_mc"]["acc,none"] <= 1.0
    assert "acc_stderr,none" in payload["results"]["tiny_mc"]
    assert payload["n-samples"]["tiny_gen"]["effective"] == len(GEN_DOCS)
    for key in ("configs", "versions", "n-shot", "higher_is_better", "config"):
        assert key in payload
    assert "samples" not in payload


def test_codit_block(evaluated, model_dir):
    codit = evaluated[0]["codit"]
    assert codit["labels"] == {
        "arm": "direct",
        "student": "tiny",
        "student_architecture": "llama",
        "teacher_architecture": "llama",
    }
    assert codit["model"] == str(model_dir)
    settings = codit["provenance"]["settings"]
    assert settings["apply_chat_template"] is True
    assert settings["device"] == "cpu" and settings["dtype"] == "float32"
    assert settings["seeds"]["random_seed"] == 0
    assert "lm_eval" in codit["provenance"]["versions"]


def test_samples_per_task(evaluated):
    payload, root = evaluated
    gen_samples = [json.loads(line) for line in (root / "samples" / "tiny_gen.jsonl").open()]
    assert len(gen_samples) == len(GEN_DOCS)
    assert {"doc", "resps", "filtered_resps", "word_match"} <= set(gen_samples[0])
    # Prompts went through the chat template.
    assert gen_samples[0]["arguments"]["gen_args_0"]["arg_0"].startswith("<|user|>")
    assert (root / "samples" / "tiny_mc.jsonl").is_file()
    assert set(payload["codit"]["sample_files"]) == {"tiny_gen", "tiny_mc"}


def test_without_chat_template_and_with_limit(model_dir, task_dir, tmp_path):
    payload = evaluate(model_dir, task_dir, tmp_path / "r.json", "--no-apply-chat-template",
                       "--limit", "1", "--samples-dir", str(tmp_path / "s"))  # fmt: skip
    assert payload["n-samples"]["tiny_gen"]["effective"] == 1
    sample = json.loads((tmp_path / "s" / "tiny_gen.jsonl").read_text().splitlines()[0])
    assert sample["arguments"]["gen_args_0"]["arg_0"] == GEN_DOCS[0]["prompt"]


def test_unknown_task_is_refused_by_name(model_dir, task_dir, tmp_path):
    with pytest.raises(SystemExit) as failure:
        main([
            "evaluate", "--model", str(model_dir), "--tasks", "tiny_gen,tiny_gne",
            "--include-path", str(task_dir), "--no-default-tasks",
            "--out", str(tmp_path / "r.json"),
        ])  # fmt: skip
    message = str(failure.value)
    assert "tiny_gne" in message and str(task_dir) in message and "tiny_gen" in message
    assert not (tmp_path / "r.json").exists()


def test_bad_label_is_refused(model_dir, task_dir, tmp_path):
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        evaluate(model_dir, task_dir, tmp_path / "r.json", "--label", "nonsense")


def test_evaluates_an_sft_output(task_dir, tmp_path):
    """The handoff: `codit sft`'s merged dir is what `codit evaluate` reads."""
    student = save_tiny_llama(tmp_path / "student")
    data = write_dataset(tmp_path / "data.jsonl", count=4)
    main(["sft", "--student", str(student), "--data", str(data), "--out", str(tmp_path / "sft"),
          "--epochs", "1", "--threads", "1"])  # fmt: skip
    payload = evaluate(tmp_path / "sft" / "merged", task_dir, tmp_path / "r.json")
    assert "word_match,none" in payload["results"]["tiny_gen"]


def test_missing_model_dir_is_refused(task_dir, tmp_path):
    with pytest.raises(SystemExit, match="no such directory"):
        evaluate(tmp_path / "absent", task_dir, tmp_path / "r.json")
