"""`codit explain` (Figure 1 for one instruction) against the decoding rule and the engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from matplotlib.image import imread
from tiny_models import EOS_BIAS, save_tiny_pair, tiny_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from codit.cli import main as codit_main
from codit.generation.decoding import contrast_scores, plausibility_mask
from codit.generation.engine import ContrastiveGenerator
from codit.generation.generate import render_prompts, stop_token_ids
from codit.generation.settings import DecodingSettings
from codit.tools.explain import render_figure

# Randomly initialised models are nearly uniform: V_head would be the whole vocabulary and the
# CoDIT ranking a shifted copy of the post model's. Scaling the output rows (the post model
# less than the pre model) gives peaked distributions, a real V_head, and greedy CoDIT tokens
# that differ from the post model's arg-max.
POST_SHARPNESS, PRE_SHARPNESS = 20.0, 40.0
# Greedy CoDIT (alpha 0.01, beta 1) runs past 9 tokens on VARIED and stops (EOS) after
# STOPS_AFTER tokens on STOPPING.
VARIED, STOPPING, STOPS_AFTER = "w6", "w18", 5
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny llama post/pre pair (pre vocabulary padded), output rows sharpened."""
    post_dir, pre_dir = save_tiny_pair(
        tmp_path_factory.mktemp("explain_pair"), "llama", EOS_BIAS["llama"]
    )
    for directory, factor in ((post_dir, POST_SHARPNESS), (pre_dir, PRE_SHARPNESS)):
        model = AutoModelForCausalLM.from_pretrained(directory)
        with torch.no_grad():
            model.get_output_embeddings().weight.mul_(factor)
        model.save_pretrained(directory)
    return post_dir, pre_dir


@pytest.fixture(scope="module")
def models(pair):
    post_dir, pre_dir = pair
    tokenizer = AutoTokenizer.from_pretrained(post_dir)
    post, pre = (AutoModelForCausalLM.from_pretrained(d).eval() for d in pair)
    return tokenizer, post, pre


def explain(pair, out_dir: Path, instruction: str, *extra: str) -> dict:
    """Run `codit explain` through the CLI; returns its JSON."""
    post_dir, pre_dir = pair
    out_dir.mkdir(parents=True, exist_ok=True)
    codit_main(
        [
            "explain",
            "--post",
            str(post_dir),
            "--pre",
            str(pre_dir),
            "--instruction",
            instruction,
            "--json",
            str(out_dir / "explain.json"),
            "--out",
            str(out_dir / "explain.png"),
            "--device",
            "cpu",
            "--threads",
            "1",
            *extra,
        ]
    )
    return json.loads((out_dir / "explain.json").read_text())


def direct_logprobs(models, context_ids):
    """lp_post and lp_pre of the next token: one full forward each (no cache), sliced to the
    tokenizer's vocabulary before the log-softmax."""
    tokenizer, post, pre = models
    x = torch.tensor([context_ids])
    with torch.no_grad():
        return tuple(
            torch.log_softmax(model(x).logits[:, -1, : len(tokenizer)].float(), dim=-1)
            for model in (post, pre)
        )


@pytest.mark.parametrize(
    ("alpha", "beta", "step"), [(0.01, 1.0, 0), (0.1, 1.0, 3), (0.3, 0.5, 6), (0.0, 1.0, 2)]
)
def test_codit_probabilities_are_the_softmax_of_contrast_scores_over_v_head(
    pair, models, tmp_path, alpha, beta, step
):
    top_k = 200  # more than the vocabulary: every token, hence all of V_head, is listed
    record = explain(
        pair, tmp_path, VARIED, "--alpha", str(alpha), "--beta", str(beta), "--step", str(step),
        "--top-k", str(top_k),
    )  # fmt: skip
    lp_post, lp_pre = direct_logprobs(models, record["context"]["token_ids"])
    scores = contrast_scores(lp_post, lp_pre, alpha, beta)[0]
    expected = scores.softmax(dim=-1)
    tokens = record["tokens"]
    assert len(tokens) == len(models[0])
    for token in tokens:
        index = token["id"]
        assert token["p_codit"] == pytest.approx(float(expected[index]), rel=1e-4, abs=1e-7)
        assert token["p_post"] == pytest.approx(float(lp_post[0, index].exp()), rel=1e-4)
        assert token["p_pre"] == pytest.approx(float(lp_pre[0, index].exp()), rel=1e-4)
        if token["in_head"]:
            assert token["score"] == pytest.approx(float(scores[index]), rel=1e-4, abs=1e-4)
        else:
            assert token["score"] is None and token["p_codit"] == 0.0
    assert sum(token["p_codit"] for token in tokens) == pytest.approx(1.0, abs=1e-5)
    # The CoDIT panel is V_head by decreasing score; the greedy pick is its first token.
    head_by_score = sorted(
        (t for t in tokens if t["in_head"]), key=lambda t: (-t["score"], t["id"])
    )
    assert record["panels"]["codit"] == [t["id"] for t in head_by_score]
    assert record["next_token"]["id"] == int(scores.argmax()) == record["panels"]["codit"][0]


@pytest.mark.parametrize(("alpha", "step"), [(0.01, 0), (0.1, 4), (0.5, 1), (1.0, 0)])
def test_v_head_membership_equals_the_plausibility_mask(pair, models, tmp_path, alpha, step):
    record = explain(
        pair, tmp_path, VARIED, "--alpha", str(alpha), "--step", str(step), "--top-k", "200"
    )
    lp_post, _ = direct_logprobs(models, record["context"]["token_ids"])
    mask = plausibility_mask(lp_post, alpha)[0]
    assert {t["id"]: t["in_head"] for t in record["tokens"]} == dict(enumerate(mask.tolist()))
    assert record["head"]["size"] == int(mask.sum())
    assert 1 <= record["head"]["size"] < len(models[0])  # a real subset: the test means something
    p_max = float(lp_post.exp().max())
    assert record["head"]["threshold"] == pytest.approx(alpha * p_max, rel=1e-4)
    # With the default top-k the listed tokens carry the same membership.
    small = explain(pair, tmp_path / "small", VARIED, "--alpha", str(alpha), "--step", str(step))
    assert {t["id"]: t["in_head"] for t in small["tokens"]} == {
        t["id"]: bool(mask[t["id"]]) for t in small["tokens"]
    }
    assert all(len(ids) <= 10 for ids in small["panels"].values())


@pytest.mark.parametrize("instruction", [VARIED, "w11"])
def test_step_context_is_what_the_engine_generates_greedily(pair, models, tmp_path, instruction):
    tokenizer, post, pre = models
    step, alpha, beta = 8, 0.01, 1.0
    (prompt,) = render_prompts(tokenizer, [instruction])
    engine = ContrastiveGenerator(
        post,
        pre,
        DecodingSettings(alpha=alpha, beta=beta, greedy=True),
        len(tokenizer),
        stop_token_ids(post, tokenizer),
        tokenizer.pad_token_id,
        max_new_tokens=step + 1,
    )
    (result,) = engine.generate([prompt])
    assert result.finish_reason == "length", "the instruction must not stop within the steps"
    assert len(set(result.token_ids)) > 2, "the greedy tokens must not be one repeated token"
    record = explain(pair, tmp_path, instruction, "--step", str(step))
    assert record["context"]["generated_token_ids"] == result.token_ids[:step]
    assert record["context"]["token_ids"] == prompt + result.token_ids[:step]
    assert record["context"]["prompt_tokens"] == len(prompt)
    # The token explained is the one the engine picks next.
    assert record["next_token"]["id"] == result.token_ids[step]


def test_step_past_the_end_of_the_response_is_refused(pair, models, tmp_path):
    tokenizer, post, pre = models
    (prompt,) = render_prompts(tokenizer, [STOPPING])
    engine = ContrastiveGenerator(
        post,
        pre,
        DecodingSettings(alpha=0.01, beta=1.0, greedy=True),
        len(tokenizer),
        stop_token_ids(post, tokenizer),
        tokenizer.pad_token_id,
        max_new_tokens=16,
    )
    (result,) = engine.generate([prompt])
    assert (result.finish_reason, len(result.token_ids)) == ("stop", STOPS_AFTER)
    last = explain(pair, tmp_path, STOPPING, "--step", str(STOPS_AFTER))
    assert last["next_token"]["id"] == tokenizer.eos_token_id
    with pytest.raises(SystemExit) as error:
        explain(pair, tmp_path / "past", STOPPING, "--step", str(STOPS_AFTER + 1))
    message = str(error.value.code)
    assert message.startswith("codit explain: error: greedy CoDIT decoding stops")
    assert f"--step must be <= {STOPS_AFTER}" in message


def test_figure_is_a_png_and_token_text_is_drawn_literally(pair, tmp_path):
    record = explain(pair, tmp_path, VARIED, "--step", "2")
    png = tmp_path / "explain.png"
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    image = imread(png)
    assert image.ndim == 3 and image.shape[1] > 1000 and image.shape[0] > 300
    assert image[..., :3].std() > 0.05  # something is drawn
    # Token texts a real tokenizer produces: mathtext markers, whitespace, long pieces.
    odd = ["$", "$x^$", " a\n", "\t", "", "€" * 40]
    for token, text in zip(record["tokens"], odd * len(record["tokens"]), strict=False):
        token["text"] = text
    render_figure(record, tmp_path / "odd.png")
    assert (tmp_path / "odd.png").read_bytes().startswith(PNG_SIGNATURE)


def test_cli_end_to_end_prefix_table_and_determinism(pair, models, tmp_path, capsys):
    tokenizer = models[0]
    stepped = explain(pair, tmp_path / "stepped", VARIED, "--step", "3")
    generated_text = stepped["context"]["generated_text"]
    capsys.readouterr()
    # The same context given as a response prefix gives the same numbers.
    prefixed = explain(pair, tmp_path / "prefixed", VARIED, "--prefix", generated_text)
    table = capsys.readouterr().out
    assert (
        prefixed["context"]["prefix_token_ids"]
        == tokenizer(generated_text, add_special_tokens=False)["input_ids"]
    )
    assert prefixed["context"]["token_ids"] == stepped["context"]["token_ids"]
    assert prefixed["context"]["generated_token_ids"] == []
    # (Equal up to float rounding: one prefill of the whole context versus cached steps.)
    assert (prefixed["panels"], prefixed["next_token"]) == (
        stepped["panels"],
        stepped["next_token"],
    )
    assert prefixed["head"] == pytest.approx(stepped["head"], rel=1e-5)
    for mine, theirs in zip(prefixed["tokens"], stepped["tokens"], strict=True):
        floats = {key for key, value in mine.items() if isinstance(value, float)}
        assert {k: v for k, v in mine.items() if k not in floats} == {
            k: v for k, v in theirs.items() if k not in floats
        }
        assert {k: mine[k] for k in floats} == pytest.approx(
            {k: theirs[k] for k in floats}, rel=1e-4, abs=1e-7
        )
    # The table on stdout: header, one line per rank, the V_head marks and the greedy pick.
    assert "rank" in table and "p_codit" in table and "|V_head|=" in table
    assert f"greedy CoDIT next token: {prefixed['next_token']['text']!r}" in table
    in_head = {t["id"]: t["in_head"] for t in prefixed["tokens"]}
    marked = sum(in_head[i] for ids in prefixed["panels"].values() for i in ids)
    rows = table.splitlines()[4 : 4 + max(map(len, prefixed["panels"].values()))]
    assert [row.split()[0] for row in rows] == [str(rank) for rank in range(1, len(rows) + 1)]
    assert sum(row.count("*") for row in rows) == marked
    first_codit = next(t for t in prefixed["tokens"] if t["id"] == prefixed["panels"]["codit"][0])
    assert repr(first_codit["text"]) in table.splitlines()[4]
    # Deterministic: a second run writes the same JSON, byte for byte.
    again = tmp_path / "again"
    explain(pair, again, VARIED, "--prefix", generated_text)
    assert (again / "explain.json").read_bytes() == (
        tmp_path / "prefixed" / "explain.json"
    ).read_bytes()
    assert (tmp_path / "prefixed" / "explain.png").read_bytes().startswith(PNG_SIGNATURE)


def test_cli_refuses_a_vocabulary_mismatch(pair, tmp_path):
    post_dir, pre_dir = pair
    swapped = tmp_path / "swapped-pre"
    shutil.copytree(pre_dir, swapped)
    tiny_tokenizer(swap=("w3", "w7")).save_pretrained(swapped)
    with pytest.raises(SystemExit) as error:
        explain((post_dir, swapped), tmp_path / "out", VARIED)
    message = str(error.value.code)
    assert message.startswith("codit explain: error: post model")
    assert "do not share a vocabulary" in message and "'w3'" in message
    assert not (tmp_path / "out" / "explain.json").exists()
    assert not (tmp_path / "out" / "explain.png").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--alpha", "2"], "--alpha"),
        (["--beta", "-1"], "--beta"),
        (["--step", "-1"], "--step"),
        (["--top-k", "0"], "--top-k"),
        (["--chat-template-kwargs", "[1]"], "--chat-template-kwargs"),
    ],
)
def test_cli_refuses_bad_options_before_loading_models(tmp_path, extra, message):
    missing = tmp_path / "no-such-model"
    with pytest.raises(SystemExit) as error:
        explain((missing, missing), tmp_path, VARIED, *extra)
    assert str(error.value.code).startswith("codit explain: error:")
    assert message in str(error.value.code)
