"""Safety: weights load from safetensors only, and a model's repository code runs only when its
own config entry says trust_remote_code (per model, also inside a teacher pair)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from tiny_models import save_tiny_llama, save_tiny_pair, write_dataset
from workflow_runs import REPO, job_blocks, snakemake

from codit.cli import main


def pickle_only(model_dir: Path) -> Path:
    """The same model with its weights as a pickled pytorch_model.bin and no safetensors."""
    from safetensors.torch import load_file

    for path in model_dir.glob("*.safetensors"):
        torch.save(load_file(path), model_dir / "pytorch_model.bin")
        path.unlink()
    return model_dir


def refused(argv: list[str]) -> str:
    with pytest.raises(SystemExit) as failure:
        main(argv)
    return str(failure.value)


def test_every_stage_refuses_pickled_weights(tmp_path):
    post, pre = save_tiny_pair(tmp_path, "llama")
    pickle_only(pre)
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps({"id": "a", "instruction": "w1 w2"}) + "\n")
    message = refused([
        "generate", "--mode", "codit", "--pair", "p", "--post", str(post), "--pre", str(pre),
        "--alpha", "0.1", "--instructions", str(pool), "--max-new-tokens", "4",
        "--out", str(tmp_path / "out.jsonl"), "--card", str(tmp_path / "card.json"),
        "--device", "cpu",
    ])  # fmt: skip
    assert f"model {pre}: weights only as pickle files (pytorch_model.bin)" in message
    assert "safetensors only" in message and not (tmp_path / "out.jsonl").exists()

    student = pickle_only(save_tiny_llama(tmp_path / "student"))
    data = write_dataset(tmp_path / "data.jsonl", count=8)
    message = refused([
        "sft", "--student", str(student), "--data", str(data), "--out", str(tmp_path / "sft"),
        "--epochs", "1", "--device", "cpu",
    ])  # fmt: skip
    assert f"model {student}: weights only as pickle files" in message
    assert not (tmp_path / "sft").exists()

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "docs.jsonl").write_text(json.dumps({"q": "say", "a": "say"}) + "\n")
    (tasks / "t.yaml").write_text(
        "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {tasks / 'docs.jsonl'}\ntest_split: test\noutput_type: generate_until\n"
        'doc_to_text: "{{q}}"\ndoc_to_target: "{{a}}"\n'
        "metric_list:\n  - metric: exact_match\n"
    )
    message = refused(["evaluate", "--model", str(student), "--tasks", "t", "--include-path",
                       str(tasks), "--no-default-tasks", "--out", str(tmp_path / "r.json"),
                       "--device", "cpu"])  # fmt: skip
    assert f"model {student}: weights only as pickle files" in message
    assert not (tmp_path / "r.json").exists()


def test_trust_remote_code_reaches_only_the_model_that_asks_for_it(tmp_path):
    """The tiny pair's pre model (also the student) allows its repository code; the post model
    does not: CoDIT jobs pass --trust-remote-code-pre only, direct jobs nothing."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["models"]["tiny-llama-base"]["trust_remote_code"] = True
    (tmp_path / "trusting.yaml").write_text(yaml.safe_dump(config))
    result = snakemake("-n", "-p", "--configfile", "trusting.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    evaluations = ("evaluate_student", "evaluate_chatvector", "evaluate_reference")
    commands = {rule: [] for rule in ("generate_shard", "sft", *evaluations)}
    for rule, _, command in job_blocks(result.stdout):
        commands.setdefault(rule, []).append(command)
    for command in commands["generate_shard"]:
        assert "--trust-remote-code " not in command  # the post model never
        assert ("--trust-remote-code-pre" in command) == ("--mode codit" in command)
    for command in commands["sft"]:
        student_allows = "--student resources/tinyworld/models/llama-base " in command
        assert ("--trust-remote-code" in command) == student_allows
    for command in commands["evaluate_reference"]:
        assert ("--trust-remote-code" in command) == ("models/llama-base " in command)
    # Every evaluated student of tiny-llama-base (trained or chat vector) gets the flag; the
    # other student's jobs do not (evaluate_student once passed it to none).
    for rule in ("evaluate_student", "evaluate_chatvector"):
        assert commands[rule], rule
        for command in commands[rule]:
            student_allows = "--label student=tiny-llama-base " in command
            assert ("--trust-remote-code" in command) == student_allows, (rule, command)
