"""A generation shard killed at any point resumes to exactly the output of an unbroken run.

Continuous batching runs inside windows of planned batches (here 2 batches of 2 rows: 4
prompts, refilled as rows finish); a window is the checkpoint unit, so a resumed shard
re-creates every window's batch composition."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import EOS_BIAS, save_tiny_pair

from codit.cli import main as codit_main
from codit.generation.checkpoint import ShardCheckpoint, checkpoint_path
from codit.workflow.provenance import read_jsonl, write_json

INSTRUCTIONS = [
    "w1 w2 w3", "w5", "w7 w8 w9 w10", "w40 w41", "w60 w61 w62 w63", "w11", "w2 w3",
    "w9 w8 w7 w6 w5", "w33",
]  # fmt: skip
WINDOWS = 3  # 9 instructions, --batch-size 2, --window-batches 2: windows of 4, 4 and 1


@pytest.fixture(scope="module")
def shard_inputs(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("resume")
    post_dir, pre_dir = save_tiny_pair(root, "llama", EOS_BIAS["llama"])
    instructions = root / "instructions.jsonl"
    instructions.write_text(
        "".join(json.dumps({"id": i, "instruction": t}) + "\n" for i, t in enumerate(INSTRUCTIONS))
    )
    return post_dir, pre_dir, instructions


def generate(inputs, out: Path, fault: str | None = None, seed: int = 3, extra=()):
    """`codit generate` in its own process (so SIGKILL kills only it); returns the process."""
    post_dir, pre_dir, instructions = inputs
    command = [sys.executable, "-m", "codit", "generate", "--pair", "tiny"]
    command += ["--post", str(post_dir), "--pre", str(pre_dir), "--instructions", str(instructions)]
    command += ["--alpha", "0.1", "--top-p", "0.9", "--seed", str(seed), "--batch-size", "2"]
    command += ["--window-batches", "2", *extra]
    command += ["--max-new-tokens", "16", "--device", "cpu", "--threads", "1"]
    command += ["--out", str(out), "--card", str(out.with_suffix(".card.json"))]
    environment = {key: value for key, value in os.environ.items() if key != "CODIT_FAULT"}
    if fault:
        environment["CODIT_FAULT"] = fault
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def unbroken(shard_inputs, tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("unbroken") / "shard.jsonl"
    assert generate(shard_inputs, out).returncode == 0
    assert not checkpoint_path(out).exists(), "a finished shard leaves no checkpoint behind"
    settings = json.loads(out.with_suffix(".card.json").read_text())["provenance"]["settings"]
    assert settings["continuous"] and settings["window_batches"] == 2
    engine = json.loads(out.with_suffix(".card.json").read_text())["throughput"]["engine"]
    assert engine["refills"] > 0 and engine["batches"] == WINDOWS
    return out.read_bytes()


@pytest.mark.parametrize(
    ("fault", "resumed", "extra"),
    [
        ("generate.after_batch:1", 4, ()),  # killed between windows
        pytest.param("generate.after_batch:2", 8, (), marks=pytest.mark.slow),
        ("checkpoint.mid_write:2", 4, ()),  # killed half-way through writing window 2
        # outputs written, checkpoint not yet removed
        pytest.param("generate.before_checkpoint_removal:1", 9, (), marks=pytest.mark.slow),
        # fixed batches (checkpointed per batch): the same records as continuous batching
        pytest.param("generate.after_batch:1", 2, ("--no-continuous",), marks=pytest.mark.slow),
    ],
)
def test_killed_shard_resumes_to_byte_identical_output(
    shard_inputs, unbroken, tmp_path, fault, resumed, extra
):
    out = tmp_path / "shard.jsonl"
    killed = generate(shard_inputs, out, fault, extra=extra)
    assert killed.returncode == -signal.SIGKILL
    assert checkpoint_path(out).exists()
    if not fault.startswith("generate.before_checkpoint_removal"):
        assert not out.exists(), "a killed shard must not leave a finished-looking output"

    rerun = generate(shard_inputs, out, extra=extra)
    assert rerun.returncode == 0, rerun.stderr
    assert out.read_bytes() == unbroken
    assert not checkpoint_path(out).exists()
    card = json.loads(out.with_suffix(".card.json").read_text())
    assert card["throughput"]["resumed_records"] == resumed
    assert card["num_records"] == len(INSTRUCTIONS)


def test_checkpoint_of_other_settings_is_discarded(shard_inputs, tmp_path):
    out = tmp_path / "shard.jsonl"
    assert generate(shard_inputs, out, "generate.after_batch:2", seed=3).returncode != 0
    rerun = generate(shard_inputs, out, seed=4)
    assert rerun.returncode == 0 and "starting over" in rerun.stderr
    fresh = tmp_path / "fresh.jsonl"
    assert generate(shard_inputs, fresh, seed=4).returncode == 0
    assert out.read_bytes() == fresh.read_bytes()
    assert (
        json.loads(out.with_suffix(".card.json").read_text())["throughput"]["resumed_records"] == 0
    )


def test_torn_batch_is_cut_from_the_checkpoint(tmp_path):
    path = tmp_path / "shard.jsonl.checkpoint"
    checkpoint = ShardCheckpoint(path, {"seed": 1})
    assert checkpoint.load() == {}
    checkpoint.append(0, [{"id": "a"}, {"id": "b"}])
    whole = path.stat().st_size
    checkpoint.append(1, [{"id": "c"}, {"id": "d"}])
    with open(path, "r+b") as handle:  # as if killed after the first record of batch 1
        handle.truncate(whole + (path.stat().st_size - whole) // 2 + 3)
    assert ShardCheckpoint(path, {"seed": 1}).load() == {0: [{"id": "a"}, {"id": "b"}]}
    assert path.stat().st_size == whole


def test_gather_keeps_or_drops_length_truncated_responses(shard_inputs, unbroken, tmp_path):
    shard = tmp_path / "000-of-001.jsonl"
    shard.write_bytes(unbroken)
    card = {"provenance": {"settings": {"shard": {"num_shards": 1, "shard_index": 0}}}}
    card["provenance"]["settings"]["shard"].update(start=0, end=len(INSTRUCTIONS))
    shard.with_suffix(".card.json").write_text(json.dumps(card))
    records = read_jsonl(shard)
    truncated = sum(record["finish_reason"] == "length" for record in records)
    assert 0 < truncated < len(records), "the fixture needs both finish reasons"

    for drop in (False, True):
        out = tmp_path / f"data-{drop}.jsonl"
        flags = ["--drop-truncated"] if drop else []
        codit_main(
            ["gather", "--shards", str(shard), "--out", str(out)]
            + ["--card", str(out.with_suffix(".card.json")), *flags]
        )
        summary = json.loads(out.with_suffix(".card.json").read_text())
        kept = read_jsonl(out)
        assert len(kept) == summary["num_records"] == len(records) - (truncated if drop else 0)
        assert summary["num_generated"] == len(records)
        assert summary["truncated"] == {"generated": truncated, "dropped": truncated * drop}
        assert summary["finish_reasons"]["length"] == truncated
        assert all(record["finish_reason"] == "stop" for record in kept) or not drop


def test_a_write_killed_before_its_rename_leaves_no_result_and_the_next_cleans_up(tmp_path):
    target = tmp_path / "card.json"
    env = {**os.environ, "CODIT_FAULT": "write.before_rename:1"}
    code = (
        f"from codit.workflow.provenance import write_json; write_json({str(target)!r}, {{'a': 1}})"
    )
    killed = subprocess.run([sys.executable, "-c", code], env=env, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert not target.exists()
    assert len(list(tmp_path.glob(".card.json.*.tmp"))) == 1  # the killed attempt's file
    write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert list(tmp_path.iterdir()) == [target]
