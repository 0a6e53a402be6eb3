"""`codit sft --checkpoint-steps N` killed at any moment resumes to exactly an unbroken run.

Every run is a real `codit sft` process on a tiny random Llama student (so SIGKILL and SIGTERM
hit only it); "identical" means the same logged loss, grad norm and learning rate at every
logging step, the same final loss, and byte-identical adapter weights. The logging interval (3)
is deliberately not a divisor of the checkpoint interval (4), so resuming also has to restore
the loss summed since the last log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_models import save_tiny_llama, write_dataset

# 24 records, batch 4: 6 optimizer steps an epoch, 18 in all; checkpoints at 4, 8, 12, 16, 18.
RUN = ["--batch-size", "4", "--epochs", "3", "--logging-steps", "3", "--learning-rate", "0.002"]
EVERY = 4


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sft_resume")
    return save_tiny_llama(root / "llama"), write_dataset(root / "data.jsonl", count=24)


def sft(inputs, out: Path, *extra: str, fault: str | None = None, wait: bool = True):
    """`codit sft` in its own process; the finished process, or the running one (wait=False)."""
    student, data = inputs
    command = [sys.executable, "-m", "codit", "sft", "--student", str(student), "--data", str(data)]
    command += ["--out", str(out), "--threads", "1", "--device", "cpu", *RUN, *extra]
    environment = {key: value for key, value in os.environ.items() if key != "CODIT_FAULT"}
    if fault:
        environment["CODIT_FAULT"] = fault
    if not wait:
        return subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)


def checkpoints(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoints")


def result(out: Path) -> dict:
    """What must not depend on interruptions (runtime and provenance do)."""
    record = json.loads((out / "train_record.json").read_text())
    return {
        "loss_curve": record["loss_curve"],
        "final_loss": record["final_loss"],
        "global_steps": record["global_steps"],
        "adapter": (out / "adapter" / "adapter_model.safetensors").read_bytes(),
    }


def resumed_from(out: Path) -> int | None:
    return json.loads((out / "train_record.json").read_text())["resumed_from_step"]


def finish(inputs, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """Rerun after a kill; it must succeed and leave no checkpoints behind."""
    rerun = sft(inputs, out, *extra)
    assert rerun.returncode == 0, rerun.stderr
    assert not checkpoints(out).exists(), "finished outputs leave no checkpoints behind"
    # The killed attempt's staging folder (SIGKILL runs no cleanup) is gone too.
    assert not list(out.parent.glob(f".{out.name}.tmp-*")), "stale staging folder left"
    return rerun


@pytest.fixture(scope="module")
def unbroken(inputs, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("unbroken") / "out"
    done = sft(inputs, out, "--checkpoint-steps", str(EVERY))
    assert done.returncode == 0, done.stderr
    assert "discarding" not in done.stderr and "resuming" not in done.stderr
    assert not checkpoints(out).exists()
    record = json.loads((out / "train_record.json").read_text())
    assert record["checkpoint_steps"] == EVERY and record["resumed_from_step"] is None
    assert record["global_steps"] == 18
    return result(out)


def test_checkpointing_does_not_change_the_result(inputs, unbroken, tmp_path):
    out = tmp_path / "out"
    assert sft(inputs, out, "--checkpoint-steps", "0").returncode == 0
    assert not checkpoints(out).exists()
    assert result(out) == unbroken
    record = json.loads((out / "train_record.json").read_text())
    assert record["checkpoint_steps"] == 0 and record["resumed_from_step"] is None


@pytest.mark.parametrize(
    ("fault", "step"),
    [
        ("sft.after_checkpoint:1", 4),
        ("sft.after_checkpoint:5", 18),  # the last, at the end of training: nothing left to run
    ],
)
def test_killed_right_after_a_checkpoint(inputs, unbroken, tmp_path, fault, step):
    out = tmp_path / "out"
    killed = sft(inputs, out, "--checkpoint-steps", str(EVERY), fault=fault)
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists()
    assert f"checkpoint-{step}" in [p.name for p in checkpoints(out).glob("checkpoint-*")]

    rerun = finish(inputs, out, "--checkpoint-steps", str(EVERY))
    assert f"resuming from {checkpoints(out) / f'checkpoint-{step}'}" in rerun.stderr
    assert resumed_from(out) == step
    assert result(out) == unbroken


def test_killed_between_checkpoints(inputs, unbroken, tmp_path):
    out = tmp_path / "out"
    # step 11: in the second epoch, 3 steps past checkpoint-8 and 2 past the log of step 9
    killed = sft(inputs, out, "--checkpoint-steps", str(EVERY), fault="sft.step:11")
    assert killed.returncode == -signal.SIGKILL
    assert sorted(p.name for p in checkpoints(out).glob("checkpoint-*")) == [
        "checkpoint-4",
        "checkpoint-8",
    ]
    finish(inputs, out, "--checkpoint-steps", str(EVERY))
    assert resumed_from(out) == 8
    assert result(out) == unbroken


def test_torn_newest_checkpoint_falls_back_to_the_previous(inputs, unbroken, tmp_path):
    out = tmp_path / "out"
    killed = sft(inputs, out, "--checkpoint-steps", str(EVERY), fault="sft.step:13")
    assert killed.returncode == -signal.SIGKILL
    kept = sorted(checkpoints(out).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert [p.name for p in kept] == ["checkpoint-8", "checkpoint-12"], "keeps the last two"
    # As if killed while writing trainer_state.json, the last file a checkpoint gets.
    state = kept[-1] / "trainer_state.json"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])

    rerun = finish(inputs, out, "--checkpoint-steps", str(EVERY))
    assert "checkpoint-12 is incomplete" in rerun.stderr
    assert resumed_from(out) == 8
    assert result(out) == unbroken


def test_checkpoint_missing_its_state_is_skipped(inputs, unbroken, tmp_path):
    out = tmp_path / "out"
    assert sft(inputs, out, "--checkpoint-steps", str(EVERY), fault="sft.step:9").returncode
    (checkpoints(out) / "checkpoint-8" / "trainer_state.json").unlink()
    finish(inputs, out, "--checkpoint-steps", str(EVERY))
    assert resumed_from(out) == 4
    assert result(out) == unbroken


def test_checkpoints_of_other_settings_are_discarded(inputs, unbroken, tmp_path):
    out = tmp_path / "out"
    other = ["--checkpoint-steps", str(EVERY), "--learning-rate", "0.001"]
    killed = sft(inputs, out, *other, fault="sft.after_checkpoint:2")
    assert killed.returncode == -signal.SIGKILL

    rerun = finish(inputs, out, "--checkpoint-steps", str(EVERY))
    assert "other settings (learning_rate)" in rerun.stderr
    assert "discarding them, starting over" in rerun.stderr
    assert resumed_from(out) is None
    assert result(out) == unbroken


def test_other_checkpoint_interval_still_resumes(inputs, unbroken, tmp_path):
    """The interval does not change results, so checkpoints of another interval are reused."""
    out = tmp_path / "out"
    assert sft(inputs, out, "--checkpoint-steps", "5", fault="sft.step:12").returncode
    finish(inputs, out, "--checkpoint-steps", str(EVERY))
    assert resumed_from(out) == 10
    assert result(out) == unbroken


@pytest.mark.slow
def test_student_with_added_template_tokens(inputs, tmp_path):
    """The rows of tokens added for the teacher's template are seeded: runs repeat, resume too."""
    teacher, data = inputs
    bare = save_tiny_llama(tmp_path / "bare", with_chat_template=False, with_chat_tokens=False)
    adopt = ["--chat-template-from", str(teacher)]
    reference = tmp_path / "reference"
    assert sft((bare, data), reference, *adopt).returncode == 0
    out = tmp_path / "out"
    killed = sft((bare, data), out, *adopt, "--checkpoint-steps", "4", fault="sft.step:11")
    assert killed.returncode == -signal.SIGKILL
    finish((bare, data), out, *adopt, "--checkpoint-steps", "4")
    assert resumed_from(out) == 8
    assert result(out) == result(reference)


@pytest.mark.slow
def test_sigterm_during_training(inputs, tmp_path):
    """A scheduler's cancel (SIGTERM) mid-training; the rerun matches an unbroken run."""
    longer = ["--epochs", "40", "--checkpoint-steps", "20"]  # 240 steps: seconds of training
    reference = tmp_path / "reference"
    assert sft(inputs, reference, *longer).returncode == 0

    out = tmp_path / "out"
    process = sft(inputs, out, *longer, wait=False)
    deadline = time.monotonic() + 120
    while not list(checkpoints(out).glob("checkpoint-*/trainer_state.json")):
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint within 2 minutes"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "terminated by signal" in stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".out.tmp-*")), "SIGTERM lets the staging folder be removed"

    finish(inputs, out, *longer)
    assert resumed_from(out) is not None and resumed_from(out) % 20 == 0
    assert result(out) == result(reference)
