"""`codit chatvector`: theta_student + r * (theta_post - theta_pre) on tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import tiny_model, tiny_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from codit import cli
from codit.baselines.chatvector import RECORD_FILE, build_chat_vector_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB = len(tiny_tokenizer())
UP = "model.layers.0.mlp.up_proj.weight"


def save(directory: Path, model, tokenizer=None) -> Path:
    model.save_pretrained(directory)
    (tokenizer or tiny_tokenizer()).save_pretrained(directory)
    return directory


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "model.safetensors")


def record(directory: Path) -> dict:
    return json.loads((directory / RECORD_FILE).read_text())


def nothing_written(out: Path) -> bool:
    return not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> dict[str, Path]:
    """A llama teacher pair and a llama student base, all with the same tokenizer and shapes."""
    root = tmp_path_factory.mktemp("llama")
    return {
        role: save(root / role, tiny_model("llama", seed=seed, vocab_size=VOCAB))
        for role, seed in (("post", 1), ("pre", 2), ("student", 3))
    }


def build(models: dict[str, Path], out: Path, ratio: float, **kwargs) -> dict:
    return build_chat_vector_model(
        models["student"], models["post"], models["pre"], ratio, out, **kwargs
    )


def test_ratio_zero_gives_the_student_bit_for_bit(llama, tmp_path):
    out = tmp_path / "cv"
    result = build(llama, out, 0.0)
    student, merged = weights(llama["student"]), weights(out)
    assert merged.keys() == student.keys()
    for name, tensor in student.items():
        assert merged[name].dtype == tensor.dtype
        assert torch.equal(merged[name], tensor), name
    assert result["skipped"] == []
    assert result["parameters"]["added_tensors"] == result["parameters"]["tensors"]
    assert record(out)["ratio"] == 0.0


def test_ratio_one_on_the_pre_model_gives_the_post_model(llama, tmp_path):
    out = tmp_path / "cv"
    build({**llama, "student": llama["pre"]}, out, 1.0)
    post, merged = weights(llama["post"]), weights(out)
    assert merged.keys() == post.keys()
    worst = max(float((merged[name] - post[name]).abs().max()) for name in post)
    assert worst < 1e-6  # pre + (post - pre) in float32: rounding only


def test_the_sum_of_one_parameter_by_hand(llama, tmp_path):
    out = tmp_path / "cv"
    build(llama, out, 0.5)
    student, post, pre = (weights(llama[role])[UP] for role in ("student", "post", "pre"))
    merged = weights(out)[UP]
    torch.testing.assert_close(merged, student + 0.5 * (post - pre), rtol=1e-6, atol=1e-7)
    s, p, q = (float(t[3, 5]) for t in (student, post, pre))
    assert float(merged[3, 5]) == pytest.approx(s + 0.5 * (p - q), abs=1e-7)
    assert not torch.equal(merged, student)


def test_another_architecture_is_refused(llama, tmp_path):
    student = save(tmp_path / "gpt2", tiny_model("gpt2", seed=3, vocab_size=VOCAB))
    out = tmp_path / "cv"
    with pytest.raises(ValueError) as error:
        build({**llama, "student": student}, out, 1.0)
    message = str(error.value)
    assert f"student model {student} is a gpt2 model (GPT2LMHeadModel)" in message
    assert "is a llama model (LlamaForCausalLM)" in message
    assert "teacher's architecture" in message
    assert nothing_written(out)


def test_a_shape_mismatch_is_refused_naming_parameter_and_shapes(llama, tmp_path):
    config = tiny_model("llama", seed=3, vocab_size=VOCAB).config
    config.intermediate_size = 48
    torch.manual_seed(3)
    student = save(tmp_path / "narrow", LlamaForCausalLM(config))
    out = tmp_path / "cv"
    with pytest.raises(ValueError) as error:
        build({**llama, "student": student}, out, 1.0)
    assert str(error.value) == (
        "parameter 'model.layers.0.mlp.gate_proj.weight' has shape (48, 32) in student model "
        f"{student} but (64, 32) in post model {llama['post']}: the models do not share an "
        "architecture"
    )
    assert nothing_written(out)


def test_a_tied_student_with_an_untied_teacher_is_refused(llama, tmp_path):
    config = tiny_model("llama", seed=3, vocab_size=VOCAB).config
    config.tie_word_embeddings = True
    torch.manual_seed(3)
    student = save(tmp_path / "tied", LlamaForCausalLM(config))
    with pytest.raises(ValueError) as error:
        build({**llama, "student": student}, tmp_path / "cv", 1.0)
    message = str(error.value)
    assert f"parameter 'lm_head.weight' is in post model {llama['post']}" in message
    assert f"but not in student model {student}" in message
    assert "student ties its output head to the token embedding, post does not" in message


def test_tied_embeddings_get_the_vector_once(tmp_path):
    models = {
        role: save(tmp_path / role, tiny_model("gpt2", seed=seed, vocab_size=VOCAB))
        for role, seed in (("post", 1), ("pre", 2), ("student", 3))
    }
    out = tmp_path / "cv"
    result = build(models, out, 0.5)
    name = "transformer.wte.weight"
    student, post, pre = (weights(models[role])[name] for role in ("student", "post", "pre"))
    merged = weights(out)
    assert "lm_head.weight" not in merged  # stored once, re-tied on loading
    expected = student + 0.5 * (post - pre)
    torch.testing.assert_close(merged[name], expected, rtol=1e-6, atol=1e-7)
    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    torch.testing.assert_close(model.lm_head.weight, expected, rtol=1e-6, atol=1e-7)
    assert result["tied_word_embeddings"] is True


def test_differing_vocabulary_sizes_skip_embeddings_and_head(llama, tmp_path):
    chat_tokenizer = tiny_tokenizer()
    chat_tokenizer.add_tokens(["<|system|>"], special_tokens=True)  # a chat token of the post
    post = save(
        tmp_path / "post", tiny_model("llama", seed=1, vocab_size=VOCAB + 1), chat_tokenizer
    )
    out = tmp_path / "cv"
    result = build({**llama, "post": post}, out, 1.0)
    student, post_w, pre, merged = (
        weights(folder) for folder in (llama["student"], post, llama["pre"], out)
    )
    skipped = {"model.embed_tokens.weight", "lm_head.weight"}
    for name in skipped:
        assert torch.equal(merged[name], student[name])
    for name in student.keys() - skipped:
        expected = student[name] + (post_w[name] - pre[name])
        torch.testing.assert_close(merged[name], expected, rtol=1e-6, atol=1e-7)
    saved = record(out)
    assert {entry["parameter"] for entry in saved["skipped"]} == skipped
    assert all(
        f"vocabulary sizes differ (embedding rows: student {VOCAB}, post {VOCAB + 1}, pre {VOCAB})"
        in entry["reason"]
        for entry in saved["skipped"]
    )
    counts = saved["parameters"]
    assert counts["skipped_tensors"] == 2
    assert counts["added_tensors"] == counts["tensors"] - 2
    assert counts["skipped_elements"] == 2 * VOCAB * 32
    assert saved["vocabulary_rows"] == {"student": VOCAB, "post": VOCAB + 1, "pre": VOCAB}
    assert result["tokenizer"]["chat_template_from"] == "student"  # student lacks <|system|>
    assert len(AutoTokenizer.from_pretrained(out)) == VOCAB


def test_a_tokenizer_with_other_token_ids_is_refused(llama, tmp_path):
    student = save(
        tmp_path / "swapped",
        tiny_model("llama", seed=3, vocab_size=VOCAB),
        tiny_tokenizer(swap=("w1", "w2")),
    )
    out = tmp_path / "cv"
    with pytest.raises(ValueError) as error:
        build({**llama, "student": student}, out, 1.0)
    assert str(error.value) == (
        f"student model {student} and post model {llama['post']} do not share token ids: "
        "token 'w2' has id 7 in the student tokenizer and id 8 in the post tokenizer; the chat "
        "vector assumes the same token ids"
    )
    assert nothing_written(out)


def test_the_output_loads_and_generates(llama, tmp_path):
    out = tmp_path / "cv"
    result = build(llama, out, 1.0, dtype="bfloat16")
    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.dtype == torch.bfloat16
    assert tokenizer.chat_template == tiny_tokenizer().chat_template
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "w1 w2"}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = prompt["input_ids"] if not isinstance(prompt, torch.Tensor) else prompt
    generated = model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert generated.shape == (1, ids.shape[1] + 4)
    eos_id = tokenizer.convert_tokens_to_ids("<eos>")
    assert model.generation_config.eos_token_id == [eos_id]
    saved = json.loads((out / "generation_config.json").read_text())
    assert {"do_sample", "temperature", "top_k", "top_p"}.isdisjoint(saved)
    assert result["dtype"] == "bfloat16"
    assert result["arithmetic_dtype"] == "float32"
    # bf16 output = the float32 sum cast once
    reference = tmp_path / "fp32"
    build(llama, reference, 1.0)
    assert torch.equal(weights(out)[UP], weights(reference)[UP].to(torch.bfloat16))


def test_the_cli_end_to_end(llama, tmp_path, capsys):
    out = tmp_path / "cv"
    argv = ["chatvector", "--student", str(llama["student"]), "--post", str(llama["post"])]
    argv += ["--pre", str(llama["pre"]), "--ratio", "0.5", "--out", str(out)]
    cli.main(argv)
    assert "codit chatvector: student + 0.5 x (post - pre)" in capsys.readouterr().out
    saved = record(out)
    assert saved["provenance"]["settings"]["ratio"] == 0.5
    assert saved["sources"] == {role: str(llama[role]) for role in ("student", "post", "pre")}
    assert (out / "generation_config.json").exists()
    assert (out / "tokenizer.json").exists()
    AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)


def test_a_refusal_through_the_cli_is_one_line_and_writes_nothing(llama, tmp_path):
    student = save(tmp_path / "gpt2", tiny_model("gpt2", seed=3, vocab_size=VOCAB))
    out = tmp_path / "cv"
    argv = ["chatvector", "--student", str(student), "--post", str(llama["post"])]
    argv += ["--pre", str(llama["pre"]), "--ratio", "1", "--out", str(out)]
    with pytest.raises(SystemExit) as error:
        cli.main(argv)
    message = str(error.value.code)
    assert message.startswith(f"codit chatvector: error: student model {student} is a gpt2")
    assert "\n" not in message
    assert nothing_written(out)
