"""The two-model decoding engine and the `codit generate` stage, on tiny random models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tiny_models import EOS_BIAS, save_tiny_pair, tiny_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from codit.cli import main as codit_main
from codit.data.datasets import repeated_ngram_share, repetition_summary
from codit.generation.decoding import contrast_scores
from codit.generation.engine import ContrastiveGenerator, generate_in_batches, left_pad
from codit.generation.generate import prompt_seed, render_prompts, stop_token_ids
from codit.generation.loading import load_model
from codit.generation.settings import DecodingSettings
from codit.workflow.jobs import shard_bounds
from codit.workflow.provenance import read_jsonl

CPU = torch.device("cpu")
MAX_NEW_TOKENS = 24
INSTRUCTIONS = [
    "w1 w2 w3",
    "w5",
    "w7 w8 w9 w10 w11 w12 w13",
    "w40 w41",
    "w60 w61 w62 w63",
    "w11",
    "w20 w21 w22 w23 w24 w25",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Post/pre directories per architecture (llama, gpt2); pre vocabularies are padded."""
    root = tmp_path_factory.mktemp("tiny_pairs")
    return {arch: save_tiny_pair(root, arch, EOS_BIAS[arch]) for arch in ("llama", "gpt2")}


def load_pair(pairs, arch):
    post_dir, pre_dir = pairs[arch]
    tokenizer = AutoTokenizer.from_pretrained(post_dir)
    return (
        tokenizer,
        load_model(str(post_dir), CPU, torch.float32),
        load_model(str(pre_dir), CPU, torch.float32),
    )


def plain_greedy_generate(post, tokenizer, prompts, stop_ids):
    """Reference: post_model.generate with only explicit settings, cut at the first stop id.

    transformers 5.23 fills every unset field of a passed GenerationConfig from the model's own
    generation_config (e.g. repetition_penalty), so the model's config is blanked for the call.
    """
    input_ids, attention_mask = left_pad(prompts, tokenizer.pad_token_id, CPU)
    config = GenerationConfig(
        do_sample=False,
        max_new_tokens=MAX_NEW_TOKENS,
        eos_token_id=stop_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    saved, post.generation_config = post.generation_config, GenerationConfig()
    try:
        output = post.generate(
            input_ids=input_ids, attention_mask=attention_mask, generation_config=config
        )
    finally:
        post.generation_config = saved
    rows = []
    for row in output[:, input_ids.shape[1] :].tolist():
        stops = [index for index, token in enumerate(row) if token in stop_ids]
        rows.append((row[: stops[0]], "stop") if stops else (row, "length"))
    return rows


def naive_codit_greedy(post, pre, prompt, settings, vocab_size, stop_ids):
    """Reference without cache or padding: re-encode the whole prefix at every step."""
    ids, generated = list(prompt), []
    for _ in range(MAX_NEW_TOKENS):
        with torch.no_grad():
            x = torch.tensor([ids])
            lp_post = torch.log_softmax(post(x).logits[:, -1, :vocab_size].float(), dim=-1)
            lp_pre = torch.log_softmax(pre(x).logits[:, -1, :vocab_size].float(), dim=-1)
        token = contrast_scores(lp_post, lp_pre, settings.alpha, settings.beta).argmax().item()
        if token in stop_ids:
            return generated, "stop"
        generated.append(token)
        ids.append(token)
    return generated, "length"


def run_engine(post, pre, tokenizer, prompts, settings, seeds=None):
    stop_ids = stop_token_ids(post, tokenizer)
    engine = ContrastiveGenerator(
        post, pre, settings, len(tokenizer), stop_ids, tokenizer.pad_token_id, MAX_NEW_TOKENS
    )
    return [(r.token_ids, r.finish_reason) for r in engine.generate(prompts, seeds)]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("alpha", [0.0, 0.01, 0.5])
def test_codit_with_beta_zero_greedy_equals_plain_generate(tiny_pairs, arch, alpha):
    tokenizer, post, pre = load_pair(tiny_pairs, arch)
    prompts = render_prompts(tokenizer, INSTRUCTIONS[:4])
    assert len({len(prompt) for prompt in prompts}) > 1, "the batch must need left padding"
    stop_ids = stop_token_ids(post, tokenizer)
    settings = DecodingSettings(alpha=alpha, beta=0.0, greedy=True)
    expected = plain_greedy_generate(post, tokenizer, prompts, stop_ids)
    # The batch must exercise both finished rows (padded while others run) and full-length rows.
    assert {reason for _, reason in expected} == {"stop", "length"}
    assert run_engine(post, pre, tokenizer, prompts, settings) == expected
    single = prompts[2:3]
    assert run_engine(post, pre, tokenizer, single, settings) == plain_greedy_generate(
        post, tokenizer, single, stop_ids
    )


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_direct_greedy_equals_plain_generate(tiny_pairs, arch):
    tokenizer, post, _ = load_pair(tiny_pairs, arch)
    prompts = render_prompts(tokenizer, INSTRUCTIONS)
    settings = DecodingSettings(mode="direct", alpha=None, beta=None, greedy=True)
    stop_ids = stop_token_ids(post, tokenizer)
    assert run_engine(post, None, tokenizer, prompts, settings) == plain_greedy_generate(
        post, tokenizer, prompts, stop_ids
    )


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_cached_batched_codit_equals_naive_reencoding_reference(tiny_pairs, arch):
    tokenizer, post, pre = load_pair(tiny_pairs, arch)
    prompts = render_prompts(tokenizer, INSTRUCTIONS)
    settings = DecodingSettings(alpha=0.1, beta=1.0, greedy=True)
    stop_ids = stop_token_ids(post, tokenizer)
    expected = [
        naive_codit_greedy(post, pre, prompt, settings, len(tokenizer), stop_ids)
        for prompt in prompts
    ]
    assert run_engine(post, pre, tokenizer, prompts, settings) == expected
    # The contrast matters: beta = 1 does not reproduce the post model's own greedy output.
    assert expected != plain_greedy_generate(post, tokenizer, prompts, stop_ids)


def test_sampled_response_depends_only_on_its_own_seed(tiny_pairs):
    tokenizer, post, pre = load_pair(tiny_pairs, "llama")
    prompts = render_prompts(tokenizer, INSTRUCTIONS)
    seeds = [prompt_seed(7, index) for index in range(len(prompts))]
    settings = DecodingSettings(alpha=0.01, beta=1.0, temperature=1.0, top_p=0.9)
    engine = ContrastiveGenerator(
        post,
        pre,
        settings,
        len(tokenizer),
        stop_token_ids(post, tokenizer),
        tokenizer.pad_token_id,
        MAX_NEW_TOKENS,
    )
    # fp32 padding changes logits by ~1e-7; with inverse-CDF sampling a token could only flip if
    # its row's uniform fell within ~1e-7 of a CDF boundary, so equality here is robust.
    alone = [engine.generate([p], [s])[0] for p, s in zip(prompts, seeds, strict=True)]
    for batch_size in (2, 3, len(prompts)):
        assert generate_in_batches(engine, prompts, seeds, batch_size) == alone
    reseeded = generate_in_batches(engine, prompts, [seed + 1 for seed in seeds], 4)
    assert reseeded != alone, "a different seed should change some sampled response"


def test_prompt_seed_is_stable_and_id_specific():
    assert prompt_seed(0, "a") == prompt_seed(0, "a")
    assert len({prompt_seed(0, "a"), prompt_seed(0, "b"), prompt_seed(1, "a")}) == 3
    # Pinned value: the rule must not change silently (it would change every dataset).
    # Pinned value (sha256(b"0:a"), first 8 bytes, top bit cleared): the rule must not change
    # silently, since that would change every sampled dataset.
    assert prompt_seed(0, "a") == 2158286327075803111
    # Best-of-N's further samples: sample 0 is the direct arm's seed, the others differ.
    assert prompt_seed(0, "a", sample=0) == prompt_seed(0, "a")
    assert len({prompt_seed(0, "a", sample=j) for j in range(4)}) == 4


def test_shard_bounds_cover_the_file_in_order():
    blocks = [shard_bounds(10, 3, index) for index in range(3)]
    assert blocks == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(ValueError, match="--shard-index"):
        shard_bounds(10, 3, 3)


def test_model_without_chat_template_is_refused_by_name():
    with pytest.raises(ValueError, match="org/base-only has no chat template"):
        render_prompts(tiny_tokenizer(chat_template=None), ["w1"], model_name="org/base-only")


# ----------------------------------------------------------------------------------------------
# The CLI, end to end


@pytest.fixture(scope="module")
def leaky_pair(tmp_path_factory) -> tuple[Path, Path, list[int]]:
    """A llama pair whose post generation_config carries instruct-style sampling defaults and
    an EOS list; none of the defaults may leak into generation."""
    root = tmp_path_factory.mktemp("leaky_pair")
    post_dir, pre_dir = save_tiny_pair(root, "llama", EOS_BIAS["llama"])
    tokenizer = tiny_tokenizer()
    eos_ids = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("w5")]
    GenerationConfig(
        do_sample=True, temperature=0.05, top_k=1, repetition_penalty=5.0, eos_token_id=eos_ids
    ).save_pretrained(post_dir)
    return post_dir, pre_dir, eos_ids


@pytest.fixture(scope="module")
def instruction_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("instructions") / "instructions.jsonl"
    path.write_text(
        "".join(
            json.dumps({"uid": f"q{index}", "text": text}) + "\n"
            for index, text in enumerate(INSTRUCTIONS)
        )
    )
    return path


def generate_cli(post, pre, instructions, out, card, *extra):
    common = ["generate", "--post", str(post), "--instructions", str(instructions)]
    common += ["--id-field", "uid", "--instruction-field", "text", "--pair", "tiny"]
    common += ["--out", str(out), "--card", str(card), "--max-new-tokens", str(MAX_NEW_TOKENS)]
    common += ["--device", "cpu", "--threads", "1"]
    codit_main(common + (["--pre", str(pre)] if pre else []) + list(extra))


def generate_sharded_and_gather(post_dir, pre_dir, instructions, tmp_path, *sampling) -> Path:
    """Three shards of batch 2, gathered (cards found beside the shards); returns the dataset."""
    shards = [tmp_path / f"shard{index}.jsonl" for index in range(3)]
    for index, shard in enumerate(shards):
        generate_cli(
            post_dir, pre_dir, instructions, shard, shard.with_suffix(".card.json"), *sampling,
            "--batch-size", "2", "--num-shards", "3", "--shard-index", str(index),
        )  # fmt: skip
    gathered = tmp_path / "gathered.jsonl"
    # Cards are found beside the shards (shardN.card.json) when --cards is left out.
    codit_main(["gather", "--shards", *map(str, shards), "--out", str(gathered),
                "--card", str(gathered.with_suffix(".card.json"))])  # fmt: skip
    return gathered


def test_cli_codit_sharded_and_gathered_equals_unsharded(leaky_pair, instruction_file, tmp_path):
    post_dir, pre_dir, eos_ids = leaky_pair
    sampling = ["--alpha", "0.1", "--beta", "1", "--top-p", "0.95", "--seed", "3"]
    full, full_card = tmp_path / "full.jsonl", tmp_path / "full.card.json"
    generate_cli(
        post_dir, pre_dir, instruction_file, full, full_card, *sampling, "--batch-size", "3"
    )

    gathered = generate_sharded_and_gather(post_dir, pre_dir, instruction_file, tmp_path, *sampling)
    gathered_card = gathered.with_suffix(".card.json")
    shards = [tmp_path / f"shard{index}.jsonl" for index in range(3)]
    cards = [shard.with_suffix(".card.json") for shard in shards]

    records = read_jsonl(full)
    assert read_jsonl(gathered) == records
    assert [record["id"] for record in records] == [f"q{i}" for i in range(len(INSTRUCTIONS))]
    for record, text in zip(records, INSTRUCTIONS, strict=True):
        assert record["prompt"] == [{"role": "user", "content": text}]
        assert record["completion"][0]["role"] == "assistant"
        assert isinstance(record["completion"][0]["content"], str)
        assert record["pair"] == "tiny" and record["arm"] == "codit_alpha0.1_beta1"
        assert (record["alpha"], record["beta"]) == (0.1, 1.0)
        assert record["seed"] == prompt_seed(3, record["id"])
        assert record["finish_reason"] in {"stop", "length"}
        assert 0 <= record["num_tokens"] <= MAX_NEW_TOKENS
        assert "<eos>" not in record["completion"][0]["content"]

    card = json.loads(full_card.read_text())
    assert card["num_records"] == len(INSTRUCTIONS)
    assert sum(card["finish_reasons"].values()) == len(INSTRUCTIONS)
    assert card["completion_tokens"]["max"] == max(r["num_tokens"] for r in records)
    settings = card["provenance"]["settings"]
    assert settings["eos_token_ids"] == eos_ids
    assert (settings["temperature"], settings["top_p"], settings["alpha"]) == (1.0, 0.95, 0.1)
    assert settings["dtype"] == "float32" and settings["device"] == "cpu"
    gathered_summary = json.loads(gathered_card.read_text())
    for key in ("num_records", "finish_reasons", "completion_tokens", "completion_words", "arm"):
        assert gathered_summary[key] == card[key]
    assert gathered_summary["provenance"]["settings"]["shard"]["num_shards"] == 3

    with pytest.raises(SystemExit) as error:
        codit_main(
            ["gather", "--shards", *map(str, shards[::-1]), "--cards"]
            + [*map(str, cards[::-1]), "--out", str(tmp_path / "x.jsonl")]
            + ["--card", str(tmp_path / "x.card.json")]
        )
    assert "expected shard 0 of 3" in str(error.value.code)


def test_cli_engine_options_change_no_record(leaky_pair, instruction_file, tmp_path):
    """Placement (accelerate's device_map here), static caches and lock-step decoding give the
    records of the default engine."""
    post_dir, pre_dir, _ = leaky_pair
    sampling = ["--alpha", "0.1", "--seed", "5", "--batch-size", "4"]
    outputs = {}
    for name, options in {
        "default": [],
        "auto_static": ["--placement", "auto", "--cache", "static"],
        "lock_step": ["--no-skip-pre"],
    }.items():
        out = tmp_path / f"{name}.jsonl"
        generate_cli(
            post_dir,
            pre_dir,
            instruction_file,
            out,
            tmp_path / f"{name}.card.json",
            *sampling,
            *options,
        )
        outputs[name] = out.read_bytes()
    assert outputs["auto_static"] == outputs["default"] == outputs["lock_step"]
    card = json.loads((tmp_path / "auto_static.card.json").read_text())
    assert card["provenance"]["settings"]["placement"] == "auto"
    assert card["provenance"]["settings"]["cache"] == "static"
    assert card["throughput"]["engine"]["pre_forwards"] >= 1


def test_cli_direct_sample_index_draws_new_samples_of_the_direct_arm(
    leaky_pair, instruction_file, tmp_path
):
    """Sample 0 is the direct arm byte for byte; sample 1 has its own seeds and arm name."""
    post_dir, _, _ = leaky_pair
    outputs = {}
    for name, extra in {
        "direct": [],
        "zero": ["--sample-index", "0"],
        "one": ["--sample-index", "1"],
    }.items():
        out = tmp_path / f"{name}.jsonl"
        generate_cli(post_dir, None, instruction_file, out, tmp_path / f"{name}.card.json",
                     "--mode", "direct", "--seed", "7", *extra)  # fmt: skip
        outputs[name] = read_jsonl(out)
    assert outputs["zero"] == outputs["direct"]
    one = outputs["one"]
    assert {record["arm"] for record in one} == {"direct_sample1"}
    assert [r["id"] for r in one] == [r["id"] for r in outputs["direct"]]
    assert all(a["seed"] != b["seed"] for a, b in zip(one, outputs["direct"], strict=True))
    assert [r["seed"] for r in one] == [prompt_seed(7, r["id"], 1) for r in one]
    card = json.loads((tmp_path / "one.card.json").read_text())
    assert card["arm"] == "direct_sample1" and card["provenance"]["settings"]["sample"] == 1


def test_cli_direct_greedy_ignores_generation_config_defaults(
    leaky_pair, instruction_file, tmp_path
):
    post_dir, _, eos_ids = leaky_pair
    out, card = tmp_path / "direct.jsonl", tmp_path / "direct.card.json"
    generate_cli(post_dir, None, instruction_file, out, card, "--mode", "direct", "--greedy")
    records = read_jsonl(out)
    assert {record["arm"] for record in records} == {"direct"}
    assert {record["alpha"] for record in records} == {None}

    tokenizer = AutoTokenizer.from_pretrained(post_dir)
    post = AutoModelForCausalLM.from_pretrained(post_dir, dtype=torch.float32).eval()
    assert stop_token_ids(post, tokenizer) == eos_ids
    prompts = render_prompts(tokenizer, INSTRUCTIONS)
    expected = plain_greedy_generate(post, tokenizer, prompts, eos_ids)
    assert [record["num_tokens"] for record in records] == [len(ids) for ids, _ in expected]
    assert [record["finish_reason"] for record in records] == [reason for _, reason in expected]
    assert [record["completion"][0]["content"] for record in records] == [
        tokenizer.decode(ids, skip_special_tokens=True) for ids, _ in expected
    ]

    limited = tmp_path / "limited.jsonl"
    generate_cli(
        post_dir, None, instruction_file, limited, card, "--mode", "direct", "--limit", "2"
    )
    assert [record["id"] for record in read_jsonl(limited)] == ["q0", "q1"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--alpha", "2"], "--alpha"),
        (["--top-p", "0"], "--top-p"),
        (["--temperature", "-1"], "--temperature"),
        (["--beta", "-0.5"], "--beta"),
        (["--chat-template-kwargs", "[1]"], "--chat-template-kwargs"),
        (["--shard-index", "4", "--num-shards", "2"], "--shard-index"),
        (["--sample-index", "-1"], "--sample-index"),
        (["--mode", "codit", "--sample-index", "2"], "--sample-index"),
    ],
)
def test_cli_rejects_bad_settings_before_loading_models(tmp_path, instruction_file, extra, message):
    missing = tmp_path / "no-such-model"
    with pytest.raises(SystemExit) as error:
        generate_cli(
            missing, missing, instruction_file, tmp_path / "o.jsonl", tmp_path / "c.json", *extra
        )
    assert message in str(error.value.code)


def test_cli_codit_needs_pre_and_reports_malformed_lines(leaky_pair, tmp_path):
    post_dir, pre_dir, _ = leaky_pair
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"uid": "a", "text": "w1"}\n{"uid": "b", "text": \n')
    with pytest.raises(SystemExit) as error:
        generate_cli(post_dir, None, bad, tmp_path / "o.jsonl", tmp_path / "c.json")
    assert "--pre" in str(error.value.code)
    with pytest.raises(SystemExit) as error:
        generate_cli(post_dir, pre_dir, bad, tmp_path / "o.jsonl", tmp_path / "c.json")
    assert f"{bad}:2" in str(error.value.code)
    assert not (tmp_path / "o.jsonl").exists()


def test_engine_outputs_are_finite_probabilities_of_the_real_vocabulary(tiny_pairs):
    tokenizer, post, pre = load_pair(tiny_pairs, "gpt2")
    assert pre.get_output_embeddings().weight.shape[0] > len(tokenizer)  # padded pre vocabulary
    engine = ContrastiveGenerator(
        post,
        pre,
        DecodingSettings(greedy=True),
        len(tokenizer),
        [tokenizer.eos_token_id],
        tokenizer.pad_token_id,
        MAX_NEW_TOKENS,
    )
    input_ids, attention_mask = left_pad(render_prompts(tokenizer, INSTRUCTIONS), 0, CPU)
    with torch.no_grad():
        lp_pre = engine.pre.prefill(input_ids, attention_mask, MAX_NEW_TOKENS)
    assert lp_pre.shape == (len(INSTRUCTIONS), len(tokenizer))
    assert torch.allclose(lp_pre.exp().sum(-1), torch.ones(len(INSTRUCTIONS)), atol=1e-5)
    assert not math.isnan(lp_pre.sum().item())


def test_placements_on_cpu_and_bad_names():
    from codit.generation.loading import model_placements

    for placement in ("same", "split"):
        post, pre = model_placements(CPU, placement, codit=True)
        assert post.device == pre.device == CPU and not post.spread and not pre.spread
    post, pre = model_placements(CPU, "auto", codit=True)
    assert post.spread and pre.spread and post.gpus == pre.gpus == ()
    with pytest.raises(ValueError, match="--placement must be one of"):
        model_placements(CPU, "everywhere", codit=True)


# ----------------------------------------------------------------------------------------------
# Bad input: instructions too long for the context, malformed instruction files


def test_cli_skips_instructions_too_long_for_the_context(tmp_path):
    """A prompt that cannot fit with a full response is skipped and counted, never generated:
    here it would index past gpt2's learned position table and kill the shard."""
    texts = INSTRUCTIONS[:3] + [" ".join(f"w{i}" for i in range(30, 50))] + INSTRUCTIONS[3:]
    instructions = tmp_path / "instructions.jsonl"
    instructions.write_text(
        "".join(json.dumps({"uid": f"q{i}", "text": t}) + "\n" for i, t in enumerate(texts))
    )
    lengths = [len(prompt) for prompt in render_prompts(tiny_tokenizer(), texts)]
    limit = sorted(lengths)[-2] + MAX_NEW_TOKENS  # every other prompt fits, one exactly
    # CoDIT uses the smaller context of the two models: here the pre model's.
    post_dir, pre_dir = save_tiny_pair(
        tmp_path / "pair", "gpt2", EOS_BIAS["gpt2"], pre_max_positions=limit
    )
    sampling = ["--alpha", "0.1", "--top-p", "0.95", "--seed", "3"]
    full, full_card = tmp_path / "full.jsonl", tmp_path / "full.card.json"
    generate_cli(post_dir, pre_dir, instructions, full, full_card, *sampling, "--batch-size", "3")
    gathered = generate_sharded_and_gather(post_dir, pre_dir, instructions, tmp_path, *sampling)
    gathered_card = gathered.with_suffix(".card.json")
    shards = [tmp_path / f"shard{index}.jsonl" for index in range(3)]

    records = read_jsonl(full)
    assert [record["id"] for record in records] == [f"q{i}" for i in range(8) if i != 3]
    assert read_jsonl(gathered) == records
    card = json.loads(full_card.read_text())
    assert card["num_records"] == 7
    assert card["skipped"] == {"too_long_for_context": 1}
    assert card["skipped_ids"] == {"too_long_for_context": ["q3"]}
    assert card["provenance"]["settings"]["context_limit"] == limit
    summary = json.loads(gathered_card.read_text())
    for key in ("num_records", "skipped", "skipped_ids", "finish_reasons", "completion_tokens"):
        assert summary[key] == card[key]
    shard_cards = [json.loads(shard.with_suffix(".card.json").read_text()) for shard in shards]
    skips = [shard_card["skipped"]["too_long_for_context"] for shard_card in shard_cards]
    assert skips == [0, 1, 0]

    # Direct generation only needs the post model's 256-token context: nothing is skipped.
    direct, direct_card = tmp_path / "direct.jsonl", tmp_path / "direct.card.json"
    generate_cli(post_dir, None, instructions, direct, direct_card, "--mode", "direct")
    assert len(read_jsonl(direct)) == 8
    assert json.loads(direct_card.read_text())["skipped"] == {"too_long_for_context": 0}

    # A shard whose every instruction is skipped is written, empty, with its card.
    alone, alone_card = tmp_path / "alone.jsonl", tmp_path / "alone.card.json"
    generate_cli(
        post_dir,
        pre_dir,
        instructions,
        alone,
        alone_card,
        "--num-shards",
        "8",
        "--shard-index",
        "3",
    )
    assert alone.read_text() == ""
    alone_summary = json.loads(alone_card.read_text())
    assert alone_summary["num_records"] == 0
    assert alone_summary["skipped_ids"] == {"too_long_for_context": ["q3"]}


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "bad.jsonl: no instructions (the file is empty or has only blank lines)"),
        (b"\n  \n", "bad.jsonl: no instructions"),
        (
            b'{"uid": "a", "text": "w1"}\n\n["w2"]\n',
            "bad.jsonl:3: expected a JSON object, got an array",
        ),
        (b'{"uid": "a", "text": "w1"}\n{"uid": "b", "text": "w\xff"}\n', "bad.jsonl:2: not UTF-8"),
        (b'{"uid": "a", "text": "w1"}\n{"uid": "b"}\n', "bad.jsonl:2: record has no field 'text'"),
        (b'{"uid": "a", "text": 5}\n', "bad.jsonl:1: field 'text' must be a non-empty string"),
        (b'{"uid": "a", "text": "w1"}\n{"uid": "a", "text": "w2"}\n', "bad.jsonl:2: duplicate id"),
    ],
)
def test_cli_refuses_a_bad_instruction_file_before_loading_models(tmp_path, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    missing = tmp_path / "no-such-model"
    with pytest.raises(SystemExit) as error:
        generate_cli(missing, missing, bad, tmp_path / "o.jsonl", tmp_path / "c.json")
    assert message in str(error.value.code)
    assert not (tmp_path / "o.jsonl").exists()


def test_repetition_measure_of_the_dataset_card():
    assert repeated_ngram_share("a b c") == 0.0  # fewer words than one 4-gram
    assert repeated_ngram_share("a b c d e f") == 0.0
    # 12 words, 9 four-grams; the loop repeats from the 5th four-gram on: 5 of 9 repeated
    assert repeated_ngram_share("a b c d " * 3) == pytest.approx(5 / 9)
    summary = repetition_summary(["a b c d " * 3, "one two three four five"])
    assert summary["mean_repeated_share"] == pytest.approx((5 / 9) / 2)
    assert summary["degenerate_share"] == 0.5 and summary["n"] == 4
    assert repetition_summary([])["mean_repeated_share"] is None


def test_gathering_needs_no_torch():
    """`codit gather` runs as a local rule on a login node: the datasets module is light."""
    import subprocess
    import sys

    code = "import sys, codit.data.datasets; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
