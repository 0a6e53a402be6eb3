"""`codit sft` on tiny random students: real TRL, real peft, a few optimiser steps each."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from tiny_models import END_OF_TURN, save_tiny_gpt2, save_tiny_llama, write_dataset

from codit.cli import main
from codit.training import sft

FAST = ["--batch-size", "4", "--epochs", "1", "--logging-steps", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def students(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("students")
    return {
        "llama": save_tiny_llama(root / "llama"),
        "gpt2": save_tiny_gpt2(root / "gpt2"),
        "llama_no_template": save_tiny_llama(root / "bare", with_chat_template=False),
        "llama_no_chat_tokens": save_tiny_llama(
            root / "bare_tokens", with_chat_template=False, with_chat_tokens=False
        ),
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data") / "data.jsonl", count=10, truncated=2)


@pytest.fixture(scope="module")
def trained(students, dataset, tmp_path_factory) -> dict[str, Path]:
    """One SFT run per architecture, shared by the checks below."""
    root = tmp_path_factory.mktemp("sft")
    outs = {}
    for arch in ("llama", "gpt2"):
        outs[arch] = root / arch
        extra = ["--epochs", "2"]  # enough steps past warmup to move the weights clearly
        run_sft(students[arch], dataset, outs[arch], *extra)
    return outs


def run_sft(student: Path, data: Path, out: Path, *extra: str) -> None:
    main(["sft", "--student", str(student), "--data", str(data), "--out", str(out), *FAST, *extra])


def sft_error(*argv: str) -> str:
    with pytest.raises(SystemExit) as failure:
        run_sft(*argv)
    return str(failure.value)


def load_record(out: Path) -> dict:
    return json.loads((out / "train_record.json").read_text())


def logits_of(model, input_ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=input_ids).logits


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_outputs_layout(trained, arch):
    out = trained[arch]
    assert sorted(p.name for p in out.iterdir()) == ["adapter", "merged", "train_record.json"]
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "merged" / "config.json").is_file()
    assert not list(out.parent.glob(f".{arch}.tmp-*")), "staging dir left behind"
    record = load_record(out)
    assert record["final_loss"] > 0
    assert record["loss_curve"] and all("loss" in entry for entry in record["loss_curve"])
    assert record["merge_max_abs_logit_diff"] < 1e-4
    settings = record["provenance"]["settings"]
    assert settings["lora_r"] == 16 and settings["target_modules"] == "all-linear"
    assert settings["device"] == "cpu" and settings["dtype"] == "float32"
    assert settings["eos_token"] == END_OF_TURN
    assert "trl" in record["provenance"]["versions"]


def test_every_record_is_trained_on(trained):
    for arch in ("llama", "gpt2"):
        record = load_record(trained[arch])
        assert record["num_records"] == 10 and record["num_train_examples"] == 10
        assert record["dropped_by_trainer"] == 0


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_merged_equals_base_plus_adapter(students, trained, arch):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = trained[arch]
    input_ids = torch.tensor([[5, 29, 30, 7, 6, 30, 31, 7, 12, 14]])
    base = AutoModelForCausalLM.from_pretrained(students[arch], dtype=torch.float32)
    base_logits = logits_of(base, input_ids)
    with_adapter = PeftModel.from_pretrained(base, out / "adapter")
    merged = AutoModelForCausalLM.from_pretrained(out / "merged", dtype=torch.float32)
    expected, actual = logits_of(with_adapter, input_ids), logits_of(merged, input_ids)
    assert (expected - actual).abs().max() < 1e-4
    # Training moved the weights, so this is not a comparison of the base with itself.
    assert (base_logits - actual).abs().max() > 1e-3


def test_lora_reaches_gpt2_conv1d_layers(trained):
    config = json.loads((trained["gpt2"] / "adapter" / "adapter_config.json").read_text())
    targets = {name.rsplit(".", 1)[-1] for name in config["target_modules"]}
    assert {"c_attn", "c_proj", "c_fc"} <= targets


def test_merged_stops_at_end_of_turn(trained):
    from transformers import AutoTokenizer, GenerationConfig

    merged = trained["llama"] / "merged"
    tokenizer = AutoTokenizer.from_pretrained(merged)
    generation = GenerationConfig.from_pretrained(merged)
    assert tokenizer.chat_template and tokenizer.eos_token == END_OF_TURN
    assert generation.eos_token_id[0] == tokenizer.convert_tokens_to_ids(END_OF_TURN)
    assert tokenizer.convert_tokens_to_ids("</s>") in generation.eos_token_id
    assert not generation.do_sample and generation.temperature is None
    assert generation.top_k is None and generation.repetition_penalty is None
    assert json.loads((merged / "config.json").read_text())["use_cache"] is True


def job_args(student: Path, data: Path, out: Path, *extra: str) -> sft.SftRun:
    """The settings `codit sft --student ... --data ... --out ... EXTRA` parses into."""
    parser = argparse.ArgumentParser()
    sft.add_arguments(parser)
    argv = ["--student", str(student), "--data", str(data), "--out", str(out), *extra]
    return sft.SftRun.from_args(parser.parse_args(argv))


def test_loss_covers_completion_only(students, dataset, tmp_path):
    job = sft.build_job(job_args(students["llama"], dataset, tmp_path), tmp_path / "trainer")
    batch = next(iter(job.trainer.get_train_dataloader()))
    assistant = job.tokenizer.convert_tokens_to_ids("<|assistant|>")
    end_of_turn = job.tokenizer.convert_tokens_to_ids(END_OF_TURN)
    for input_ids, labels, attention in zip(
        batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True
    ):
        prompt_end = int((input_ids == assistant).nonzero()[-1]) + 1
        length = int(attention.sum())
        assert (labels[:prompt_end] == -100).all(), "prompt tokens carry loss"
        completion = slice(prompt_end, length)
        assert (labels[completion] == input_ids[completion]).all(), "completion not trained"
        assert (labels[length:] == -100).all()
        assert end_of_turn in labels[completion].tolist(), "the model never learns to stop"


@pytest.mark.parametrize(
    "student, template_from", [("llama", None), ("gpt2", None), ("llama_no_chat_tokens", "llama")]
)
def test_lm_head_scores_loss_positions_only(
    students, dataset, tmp_path, monkeypatch, student, template_from
):
    """On CPU, TRL's fused LM head scores only the positions with a label (build_job switches
    it on); loss and gradients equal those of scoring every position, which TRL does by default
    off Triton devices. The last case also trains the rows of added template tokens."""
    import trl.trainer.utils as trl_utils

    extra = ["--chat-template-from", str(students[template_from])] if template_from else []
    job = sft.build_job(job_args(students[student], dataset, tmp_path, *extra), tmp_path / "t")
    assert trl_utils._use_triton(torch.device("cpu"))
    batch = next(iter(job.trainer.get_train_dataloader()))
    model = job.trainer.model
    model.train()

    def loss_and_grads() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad()
        torch.manual_seed(0)  # the same LoRA dropout masks in both runs
        output = model(**batch, fused_lm_head=True)
        loss = -output.log_probs.sum() / output.label_mask.sum()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        return loss.detach(), grads

    loss, grads = loss_and_grads()
    monkeypatch.setattr(trl_utils, "_use_triton", lambda device: False)
    every_loss, every_grads = loss_and_grads()
    assert torch.allclose(loss, every_loss, rtol=1e-6, atol=0)
    assert grads.keys() == every_grads.keys() and grads
    for name, grad in grads.items():
        assert torch.allclose(grad, every_grads[name], rtol=1e-5, atol=1e-7), name
    if template_from:
        assert any("trainable_tokens" in name for name in grads)


def test_dataset_smaller_than_one_batch(students, tmp_path):
    data = write_dataset(tmp_path / "two.jsonl", count=2)
    run_sft(students["llama"], data, tmp_path / "out", "--batch-size", "8")
    assert load_record(tmp_path / "out")["num_train_examples"] == 2


def test_empty_dataset_is_refused(students, tmp_path):
    data = tmp_path / "empty.jsonl"
    data.write_text("")
    message = sft_error(students["llama"], data, tmp_path / "out")
    assert str(data) in message and "no training records" in message
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_malformed_jsonl_names_file_and_line(students, tmp_path):
    data = write_dataset(tmp_path / "bad.jsonl", count=3)
    lines = data.read_text().splitlines()
    lines[1] = lines[1][:-5]
    data.write_text("\n".join(lines) + "\n")
    assert f"{data}:2" in sft_error(students["llama"], data, tmp_path / "out")


def test_record_without_completion_is_refused(students, tmp_path):
    data = tmp_path / "nocompletion.jsonl"
    data.write_text(json.dumps({"prompt": [{"role": "user", "content": "hi"}]}) + "\n")
    message = sft_error(students["llama"], data, tmp_path / "out")
    assert "record 1" in message and "completion" in message


def test_student_without_template_is_refused(students, dataset, tmp_path):
    message = sft_error(students["llama_no_template"], dataset, tmp_path / "out")
    assert "--chat-template-from" in message
    assert not (tmp_path / "out").exists()


def test_template_from_teacher_adds_missing_tokens(students, dataset, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "out"
    student = students["llama_no_chat_tokens"]
    run_sft(student, dataset, out, "--chat-template-from", str(students["llama"]))
    record = load_record(out)
    assert END_OF_TURN in record["provenance"]["settings"]["added_template_tokens"]
    assert record["merge_max_abs_logit_diff"] < 1e-4
    tokenizer = AutoTokenizer.from_pretrained(out / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert tokenizer.chat_template and tokenizer.eos_token == END_OF_TURN
    assert merged.get_input_embeddings().num_embeddings == len(tokenizer)


def test_failed_run_leaves_no_output(students, dataset, tmp_path):
    message = sft_error(students["llama"], dataset, tmp_path / "out", "--lr-scheduler", "nonsense")
    assert "nonsense" in message
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))


# ----------------------------------------------------------------------------- bad data


def test_blank_only_dataset_is_refused(students, tmp_path):
    data = tmp_path / "blank.jsonl"
    data.write_text("\n   \n\t\n")
    message = sft_error(students["llama"], data, tmp_path / "out")
    assert f"{data}: no training records" in message


USER = {"role": "user", "content": "say hello"}
ASSISTANT = {"role": "assistant", "content": "hello"}


@pytest.mark.parametrize(
    "line, message",
    [
        (b"[1, 2]", ":3: record 2: expected a JSON object"),
        (b'{"prompt": [{"role": "user", "content": "caf\xe9"}]}', ":3: not UTF-8 text"),
        (json.dumps({"prompt": [USER]}).encode(), ":3: record 2: 'completion' must be a non-empty"),
        (json.dumps({"completion": [ASSISTANT]}).encode(), ":3: record 2: 'prompt' must be"),
        (
            json.dumps({"prompt": [{"role": "user"}], "completion": [ASSISTANT]}).encode(),
            ":3: record 2: 'prompt' holds a message without string role/content",
        ),
        (
            json.dumps({"prompt": [USER], "completion": [USER]}).encode(),
            ":3: record 2: 'completion' must hold assistant messages only",
        ),
        (
            json.dumps(
                {"prompt": [{"role": "human", "content": "hi"}], "completion": [ASSISTANT]}
            ).encode(),
            ":3: record 2: 'prompt' holds role(s) 'human'; expected system, user, assistant",
        ),
        (
            json.dumps({"prompt": [USER, ASSISTANT], "completion": [ASSISTANT]}).encode(),
            ":3: record 2: 'prompt' must end with a user message, not 'assistant'",
        ),
    ],
)
def test_bad_record_names_file_and_line(students, tmp_path, line, message):
    data = tmp_path / "bad.jsonl"
    good = json.dumps({"prompt": [USER], "completion": [ASSISTANT]}).encode()
    data.write_bytes(good + b"\n\n" + line + b"\n")  # line 2 is blank: record 2 is on line 3
    error = sft_error(students["llama"], data, tmp_path / "out")
    assert f"{data}{message}" in error
    assert not (tmp_path / "out").exists()


def test_truncated_records_are_counted_as_trl_tokenizes_them(students, tmp_path):
    data = write_dataset(tmp_path / "data.jsonl", count=6)
    # Untruncated lengths, from TRL's own preparation of the dataset.
    job = sft.build_job(job_args(students["llama"], data, tmp_path), tmp_path / "trainer")
    lengths = [len(ids) for ids in job.trainer.train_dataset["input_ids"]]
    cut = sorted(lengths)[len(lengths) // 2]
    expected = sum(length > cut for length in lengths)
    assert 0 < expected < len(lengths)
    args = job_args(students["llama"], data, tmp_path, "--max-length", str(cut))
    report = sft.training_data_report(args, job.tokenizer)
    assert report["truncated_to_max_length"] == expected
    assert f"{expected} of 6 records are longer than --max-length {cut}" in report["warnings"][0]
    # ... and TRL does cut exactly those.
    cut_job = sft.build_job(args, tmp_path / "trainer2")
    assert [len(ids) for ids in cut_job.trainer.train_dataset["input_ids"]] == [
        min(length, cut) for length in lengths
    ]


def test_dataset_smaller_than_one_batch_is_a_warning(students, tmp_path):
    # Trainer trains on the partial batch (test_dataset_smaller_than_one_batch), so it is
    # recorded, not refused.
    data = write_dataset(tmp_path / "two.jsonl", count=2)
    args = job_args(students["llama"], data, tmp_path, "--batch-size", "4", "--grad-accum", "2")
    job = sft.build_job(args, tmp_path / "trainer")
    report = sft.training_data_report(args, job.tokenizer)
    assert report["truncated_to_max_length"] == 0
    assert report["warnings"] == [
        f"{data}: 2 records, fewer than one batch (--batch-size 4 x --grad-accum 2 = 8); "
        "each epoch is one optimizer step on a partial batch"
    ]


def test_records_all_dropped_by_trl_are_refused(students, tmp_path):
    data = write_dataset(tmp_path / "data.jsonl", count=3)
    args = job_args(students["llama"], data, tmp_path, "--max-length", "3")
    job = sft.build_job(args, tmp_path / "trainer")
    with pytest.raises(ValueError, match="no training records left") as error:
        sft.check_examples_left(args, job.trainer)
    assert str(data) in str(error.value) and "--max-length 3" in str(error.value)
