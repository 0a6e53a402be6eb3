"""The tiny world: deterministic data, tokenizer and chat format, splits, task folder, models."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from codit.tinyworld import build_data, train_model
from codit.tinyworld.chatformat import END_OF_TURN, render_prompt
from codit.tinyworld.corpus import build_splits
from codit.tinyworld.world import generate_world
from codit.workflow.provenance import read_jsonl

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SEED = 0
POOL = 64


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    return build_data(tmp_path_factory.mktemp("tw") / "world", seed=SEED, pool_size=POOL)


def _data_files(root: Path) -> dict[str, bytes]:
    # The data card carries timings and the command line; everything else must match exactly.
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "data_card.json" and "models" not in p.parts
    }


def test_same_seed_gives_identical_files_and_other_seed_differs(world_dir, tmp_path):
    again = build_data(tmp_path / "again", seed=SEED, pool_size=POOL)
    assert _data_files(again) == _data_files(world_dir)
    card_a = json.loads((world_dir / "data_card.json").read_text())
    card_b = json.loads((again / "data_card.json").read_text())
    assert card_a["sha256"] == card_b["sha256"]
    assert generate_world(SEED + 1) != generate_world(SEED)


def test_layout_and_pool_format(world_dir):
    for name in [
        "world.json",
        "corpus/pretrain.jsonl",
        "corpus/posttrain.jsonl",
        "instructions/pool.jsonl",
        "tokenizer/tokenizer.json",
        "tasks/tinyworld_ifeval.yaml",
        "tasks/tinyworld_knowledge.yaml",
        "tasks/utils.py",
        "data_card.json",
    ]:
        assert (world_dir / name).is_file(), name
    pool = read_jsonl(world_dir / "instructions" / "pool.jsonl")
    assert len(pool) == POOL
    assert pool[0]["id"] == "tw-000001"
    assert all({"id", "instruction", "constraints"} <= set(row) for row in pool)
    assert len({row["id"] for row in pool}) == POOL


def test_tokenizer_round_trip_and_chat_template(world_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(world_dir / "tokenizer")
    for text in ["The capital of Bofouforia is Mimdair.", "SHOUT!\n* a\n* b", 'é ☃ {"k": 1}']:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    assert tokenizer.eos_token == END_OF_TURN
    messages = [{"role": "user", "content": "Who founded Tezosia?"}]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == render_prompt("Who founded Tezosia?")
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": "Tamo Reeli."}], tokenize=False
    )
    assert full.startswith(rendered) and full.endswith(f"Tamo Reeli.{END_OF_TURN}\n")
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|user|>")
    with pytest.raises(Exception, match="only user and assistant"):
        tokenizer.apply_chat_template([{"role": "system", "content": "x"}], tokenize=False)


def test_pool_is_disjoint_from_posttrain_and_benchmarks(world_dir):
    pool = {r["instruction"] for r in read_jsonl(world_dir / "instructions" / "pool.jsonl")}
    post = {r["instruction"] for r in read_jsonl(world_dir / "corpus" / "posttrain.jsonl")}
    tasks = world_dir / "tasks"
    ifeval = {r["prompt"] for r in read_jsonl(tasks / "tinyworld_ifeval.jsonl")}
    knowledge = {r["question"] for r in read_jsonl(tasks / "tinyworld_knowledge.jsonl")}
    assert not pool & post
    assert not (pool | post) & (ifeval | knowledge)


def test_benchmark_combinations_are_unseen_but_their_types_are_seen(world_dir):
    post = read_jsonl(world_dir / "corpus" / "posttrain.jsonl")
    pool = read_jsonl(world_dir / "instructions" / "pool.jsonl")
    bench = read_jsonl(world_dir / "tasks" / "tinyworld_ifeval.jsonl")
    seen = {r["combo"] for r in post + pool}
    multi = [r for r in bench if len(r["constraints"]) > 1]
    assert len(multi) >= len(bench) // 2
    assert not {r["combo"] for r in multi} & seen
    seen_types = {c["type"] for r in post for c in r["constraints"]}
    assert {c["type"] for r in bench for c in r["constraints"]} <= seen_types


def test_base_corpus_never_teaches_constraints(world_dir):
    from codit.tinyworld.constraints import PHRASINGS

    corpus = (world_dir / "corpus" / "pretrain.jsonl").read_text()
    for phrasings in PHRASINGS.values():
        for phrasing in phrasings:
            assert phrasing.split("{")[0][:25] not in corpus


def test_base_corpus_shows_every_format_as_plain_text(world_dir):
    """The base sees lower/upper case, quotes, JSON, bullets, greetings and sign-offs as text."""
    from codit.tinyworld.constraints import PREFIXES, SUFFIXES

    docs = [r["text"] for r in read_jsonl(world_dir / "corpus" / "pretrain.jsonl")]
    parts = [part for doc in docs for part in doc.split("\n\n")]
    assert sum(p == p.lower() and bool(p.strip()) for p in parts) >= 50
    assert sum(p == p.upper() and bool(p.strip()) for p in parts) >= 50
    assert sum(p.startswith('"') and p.endswith('"') for p in parts) >= 20
    assert sum(p.startswith("{") and p.endswith("}") for p in parts) >= 20
    assert sum(p.startswith("* ") for p in parts) >= 20
    assert all(any(fix in doc for doc in docs) for fix in PREFIXES + SUFFIXES)
    chats = [doc for doc in docs if doc.startswith("<|user|>")]
    assert 0.05 <= len(chats) / len(docs) <= 0.25


def _load_tasks(include_path: Path) -> dict:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(include_path))
    return manager.load(["tinyworld_ifeval", "tinyworld_knowledge"])["tasks"]


def test_relocated_task_folder_scores_gold_one_and_wrong_zero(world_dir, tmp_path):
    moved = tmp_path / "elsewhere" / "tasks"
    shutil.copytree(world_dir / "tasks", moved)
    tasks = _load_tasks(moved)
    ifeval, knowledge = tasks["tinyworld_ifeval"], tasks["tinyworld_knowledge"]
    splits = build_splits(generate_world(SEED), SEED, POOL, 16)
    gold = {item["instruction"]: item["response"] for item in splits["ifeval"]}
    docs = list(ifeval.test_docs())
    assert len(docs) == len(gold) == 200
    for doc in docs[:40] + docs[-40:]:
        right = ifeval.process_results(doc, [gold[doc["prompt"]]])
        assert right["prompt_level_strict_acc"] and all(right["inst_level_strict_acc"])
        assert right["prompt_level_loose_acc"]
        wrong = ifeval.process_results(doc, [""])
        assert not wrong["prompt_level_strict_acc"] and not any(wrong["inst_level_loose_acc"])
    kdocs = list(knowledge.test_docs())
    assert 150 <= len(kdocs) <= 250
    doc = kdocs[0]
    assert knowledge.process_results(doc, [f"{doc['answer']}."])["exact_match"] == 1.0
    sentence = f"It is {doc['answer'].upper()}!\nMore text."
    assert knowledge.process_results(doc, [sentence])["exact_match"] == 1.0
    assert knowledge.process_results(doc, ["I do not know."])["exact_match"] == 0.0
    assert knowledge.process_results(doc, [f"Hmm.\n{doc['answer']}"])["exact_match"] == 0.0


def test_instruct_before_base_names_the_missing_directory(world_dir):
    with pytest.raises(FileNotFoundError, match=r"models/gpt2-base"):
        train_model(world_dir, "gpt2-instruct")
    with pytest.raises(ValueError, match="bert-base"):
        train_model(world_dir, "bert-base")


def test_missing_tokenizer_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        train_model(tmp_path, "llama-base")


def test_short_training_saves_a_loadable_model_with_end_of_turn_stop(world_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = train_model(world_dir, "llama-base", steps=3)
    record = json.loads((target / "train_record.json").read_text())
    assert record["settings"]["steps"] == 3 and record["loss"]["curve"]
    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target)
    assert tokenizer.eos_token_id in model.generation_config.eos_token_id
    assert model.generation_config.do_sample is False
    assert not list(target.parent.glob(".llama-base.*"))  # no staging debris
    instruct = train_model(world_dir, "llama-instruct", steps=2)
    assert json.loads((instruct / "train_record.json").read_text())["settings"]["init"].endswith(
        "llama-base"
    )


def test_a_world_trains_its_own_teacher_pair_in_its_models_dir(world_dir, tmp_path):
    world = tmp_path / "worlds" / "5"
    base = train_model(world_dir, "llama-base", seed=5, steps=2, models_dir=world)
    instruct = train_model(world_dir, "llama-instruct", seed=5, steps=2, models_dir=world)
    assert (base, instruct) == (world / "llama-base", world / "llama-instruct")
    record = json.loads((instruct / "train_record.json").read_text())
    assert record["settings"]["init"] == str(world / "llama-base")
    assert record["settings"]["seed"] == 5
    # another seed is another teacher: other initial weights
    other = train_model(world_dir, "llama-base", seed=6, steps=2, models_dir=tmp_path / "6")
    assert (base / "model.safetensors").read_bytes() != (other / "model.safetensors").read_bytes()


def test_public_split_is_drawn_last_and_leaves_earlier_splits_unchanged():
    from codit.tinyworld.corpus import PUBLIC_SIZE

    world = generate_world(SEED)
    splits = build_splits(world, SEED, POOL, 2000)
    without = build_splits(world, SEED, POOL, 2000, public_size=0)
    assert len(splits["public"]) == PUBLIC_SIZE == 1024 and without["public"] == []
    assert {k: v for k, v in splits.items() if k != "public"} == {
        k: v for k, v in without.items() if k != "public"
    }


def test_public_set_is_rule_written_seen_and_disjoint(world_dir):
    from codit.tinyworld.constraints import check_all

    public = read_jsonl(world_dir / "instructions" / "public.jsonl")
    assert len(public) == 1024 and public[0]["id"] == "tw-pub-000001"
    assert len({row["id"] for row in public}) == len(public)
    fields = {"id", "instruction", "response", "constraints", "request", "combo"}
    assert all(fields | {"subject", "answer"} <= set(row) for row in public)
    # Gold responses: written by the world's rules, so they obey their instructions.
    assert all(
        check_all(row["constraints"], row["response"], row["request"])["prompt_strict"]
        for row in public
    )
    texts = {row["instruction"] for row in public}
    post = read_jsonl(world_dir / "corpus" / "posttrain.jsonl")
    pool = read_jsonl(world_dir / "instructions" / "pool.jsonl")
    tasks = world_dir / "tasks"
    bench = read_jsonl(tasks / "tinyworld_ifeval.jsonl")
    knowledge = {r["question"] for r in read_jsonl(tasks / "tinyworld_knowledge.jsonl")}
    others = {r["instruction"] for r in post + pool} | {r["prompt"] for r in bench} | knowledge
    assert not texts & others
    unseen = {r["combo"] for r in bench if len(r["constraints"]) > 1}
    assert not {row["combo"] for row in public} & unseen
    assert any(row["combo"] == "plain" for row in public)
    card = json.loads((world_dir / "data_card.json").read_text())
    assert card["counts"]["public_examples"] == 1024
    assert "instructions/public.jsonl" in card["sha256"]


def test_instruction_records_carry_subject_and_answer(world_dir):
    world = generate_world(SEED)
    subjects = set(world["countries"]) | set(world["creatures"])
    for name in ["corpus/posttrain.jsonl", "instructions/pool.jsonl"]:
        rows = read_jsonl(world_dir / name)
        assert all(row["subject"] in subjects for row in rows), name
        assert all(row["answer"] is None or isinstance(row["answer"], str) for row in rows)
        # Open "describe" questions have no single answer; fact questions do.
        assert any(row["answer"] is None for row in rows) and any(row["answer"] for row in rows)
    splits = build_splits(world, SEED, POOL, 2000)
    pool = read_jsonl(world_dir / "instructions" / "pool.jsonl")
    assert [(r["subject"], r["answer"]) for r in pool] == [
        (item["subject"], item["answer"]) for item in splits["pool"]
    ]


def test_codit_public_reads_the_tiny_world_public_set(world_dir, tmp_path):
    """The workflow's field mapping for the tiny world's public set."""
    from codit.cli import main

    out, card = tmp_path / "public.jsonl", tmp_path / "card.json"
    main(
        [
            "public",
            "--name",
            "tinyworld",
            "--source",
            str(world_dir / "instructions" / "public.jsonl"),
            "--instruction-field",
            "instruction",
            "--response-field",
            "response",
            "--id-field",
            "id",
            "--size",
            "50",
            "--out",
            str(out),
            "--card",
            str(card),
        ]
    )
    records = read_jsonl(out)
    assert len(records) == 50 and all(r["id"].startswith("tw-pub-") for r in records)
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    assert {r["arm"] for r in records} == {"public_tinyworld"}
    written = json.loads(card.read_text())
    assert (written["source_rows"], written["usable_rows"]) == (1024, 1024)
    assert sum(written["skipped"].values()) == 0 and written["warnings"] == []


def test_cli_data_subcommand(tmp_path):
    from codit.cli import main

    main(["tinyworld", "data", "--out", str(tmp_path / "w"), "--pool-size", "8"])
    assert len(read_jsonl(tmp_path / "w" / "instructions" / "pool.jsonl")) == 8


def test_cli_all_builds_data_and_every_model(tmp_path):
    """`codit tinyworld all` (a few steps each): data, both bases side by side, then instruct."""
    from codit.cli import main
    from codit.tinyworld.cli import BUILD_ORDER

    root = tmp_path / "world"
    main(["tinyworld", "all", "--out", str(root), "--pool-size", "8", "--steps", "2"])
    for name in BUILD_ORDER:
        record = json.loads((root / "models" / name / "train_record.json").read_text())
        assert record["settings"]["steps"] == 2 and len(record["loss"]["curve"]) == 2
        assert (root / "models" / name / "model.safetensors").is_file()


@pytest.mark.slow
def test_full_build_meets_quality_gates(tinyworld_build):
    """The tiny world the workflow's rules build (the tests' shared build), scored with the
    workflow's evaluation protocol and real lm-eval."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from codit.tinyworld.cli import BUILD_ORDER

    root = tinyworld_build / "resources" / "tinyworld"
    scores = {}
    for name in BUILD_ORDER:
        results = lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={root / 'models' / name},dtype=float32",
            tasks=["tinyworld_ifeval", "tinyworld_knowledge"],
            device="cpu",
            batch_size=32,
            apply_chat_template=True,
            task_manager=TaskManager(include_path=str(root / "tasks")),
        )["results"]
        scores[name] = {
            "strict": results["tinyworld_ifeval"]["prompt_level_strict_acc,none"],
            "knowledge": results["tinyworld_knowledge"]["exact_match,none"],
        }
    print(scores)
    assert scores["llama-instruct"]["strict"] >= scores["llama-base"]["strict"] + 0.30
    assert scores["llama-instruct"]["strict"] < 0.9  # room left for CoDIT to matter
    assert scores["llama-base"]["knowledge"] >= 0.2
    assert scores["llama-instruct"]["knowledge"] >= scores["llama-base"]["knowledge"]
    assert scores["gpt2-base"]["knowledge"] >= 0.05


def test_training_is_deterministic_for_a_seed(world_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    twin = tmp_path / "twin"
    for name in ["tokenizer", "corpus"]:
        shutil.copytree(world_dir / name, twin / name)
    first = train_model(twin, "gpt2-base", seed=3, steps=3)
    weights_a = load_file(first / "model.safetensors")
    second = train_model(twin, "gpt2-base", seed=3, steps=3)
    weights_b = load_file(second / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[key], weights_b[key]) for key in weights_a)


EVERY = 2  # --checkpoint-steps of the resume tests: checkpoints at steps 2 and 4 of 6


def _train(world: Path, name: str, steps: int, fault: str | None = None):
    """`codit tinyworld train` as its own process (so SIGKILL kills only it)."""
    command = [sys.executable, "-m", "codit", "tinyworld", "train", "--out", str(world)]
    command += ["--model", name, "--steps", str(steps), "--threads", "1"]
    command += ["--checkpoint-steps", str(EVERY)]
    environment = {key: value for key, value in os.environ.items() if key != "CODIT_FAULT"}
    if fault:
        environment["CODIT_FAULT"] = fault
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "name", ["llama-base", pytest.param("llama-instruct", marks=pytest.mark.slow)]
)
def test_killed_training_resumes_to_the_same_model(world_dir, tmp_path, name):
    """SIGKILL right after the second checkpoint (step 4 of 6), rerun: the rerun starts at
    step 4 and writes the same model bytes and losses as an unbroken run, and removes the
    checkpoint. The instruct model also restores its base's identity."""
    from codit.tinyworld.checkpoint import checkpoint_dir

    worlds = {}
    for run in ("unbroken", "killed"):
        worlds[run] = tmp_path / run
        shutil.copytree(world_dir, worlds[run], ignore=shutil.ignore_patterns("models"))
        if name == "llama-instruct":  # trained from a (briefly trained) base
            assert _train(worlds[run], "llama-base", 1).returncode == 0
    steps = 3 * EVERY
    unbroken = _train(worlds["unbroken"], name, steps)
    assert unbroken.returncode == 0, unbroken.stderr[-3000:]
    killed = _train(worlds["killed"], name, steps, fault="tinyworld.after_checkpoint:2")
    assert killed.returncode == -signal.SIGKILL
    target = worlds["killed"] / "models" / name
    assert checkpoint_dir(target).is_dir() and not target.exists()
    resumed = _train(worlds["killed"], name, steps)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"at step {2 * EVERY} of {steps}" in resumed.stdout
    assert not checkpoint_dir(target).exists()
    for file in ("model.safetensors", "tokenizer.json", "generation_config.json"):
        unbroken_bytes = (worlds["unbroken"] / "models" / name / file).read_bytes()
        assert (target / file).read_bytes() == unbroken_bytes, file
    records = [
        json.loads((world / "models" / name / "train_record.json").read_text())["loss"]
        for world in worlds.values()
    ]
    assert records[0] == records[1]


def test_checkpoint_of_other_settings_is_discarded(world_dir, tmp_path):
    """A checkpoint left by a run with other settings (here: more steps) is not resumed."""
    from codit.tinyworld.checkpoint import checkpoint_dir

    world = tmp_path / "world"
    shutil.copytree(world_dir, world, ignore=shutil.ignore_patterns("models"))
    killed = _train(world, "llama-base", 2 * EVERY, fault="tinyworld.after_checkpoint:1")
    assert killed.returncode == -signal.SIGKILL
    rerun = _train(world, "llama-base", EVERY + 1)
    assert rerun.returncode == 0 and "resumed" not in rerun.stdout
    assert not checkpoint_dir(world / "models" / "llama-base").exists()


def test_the_tiny_mt_bench_turns_are_found_by_the_judge_server(tmp_path):
    """The world's MT-Bench (FastChat's layout) and the judge server's reading of its prompts."""
    from codit.judged.mtbench import Bench
    from codit.tinyworld.judge import judged_item, mt_bench_items
    from codit.tinyworld.mtbench import write_bench

    splits = build_splits(generate_world(0), 0, pool_size=8, posttrain_size=8)
    write_bench(tmp_path / "mt_bench", splits["ifeval"])
    bench = Bench(tmp_path / "mt_bench")
    assert len(bench.questions) == 16
    first = bench.questions["1"]
    assert (
        first["category"] == "extraction"
        and first["turns"][0] == splits["ifeval"][0]["instruction"]
    )
    items = mt_bench_items(tmp_path)
    answer = {"question_id": 1, "turns": ["Mekto is the capital.", "MEKTO IS THE CAPITAL."]}
    for turn in (1, 2):
        prompt = bench.request(answer, turn, "m").messages[1]["content"]
        item, response = judged_item(None, items, prompt)
        assert item == first["tinyworld"][f"turn_{turn}"] and response == answer["turns"][turn - 1]
    assert first["tinyworld"]["turn_2"]["constraints"] == [{"type": "upper", "kwargs": {}}]
    with pytest.raises(ValueError, match="no tiny MT-Bench question"):
        judged_item(None, {}, bench.request(answer, 1, "m").messages[1]["content"])


@pytest.mark.slow
def test_the_tiny_mt_bench_is_answered_and_graded_by_the_served_judge(tinyworld_build, tmp_path):
    """A tiny model answers the world's MT-Bench; the judge the job serves grades every turn as
    the oracle scores it."""
    from codit.cli import main
    from codit.tinyworld.oracle import Oracle

    root = tinyworld_build / "resources" / "tinyworld"
    bench = root / "mt_bench"
    answers, out, scores = (tmp_path / n for n in ("a.jsonl", "j.jsonl", "s.json"))
    main(["mtbench", "answer", "--model", str(root / "models" / "llama-instruct"),
          "--bench", str(bench), "--out", str(answers), "--card", str(tmp_path / "a.card.json"),
          "--max-new-tokens", "48", "--device", "cpu", "--threads", "1"])  # fmt: skip
    serve = f"{sys.executable} -m codit tinyworld judge --world {root} --port {{port}}"
    main(["mtbench", "judge", "--bench", str(bench), "--answers", str(answers), "--out", str(out),
          "--scores", str(scores), "--judge-serve", serve,
          "--judge-model", "tinyworld-oracle-judge"])  # fmt: skip
    oracle = Oracle(root)
    questions = {q["question_id"]: q for q in read_jsonl(bench / "question.jsonl")}
    answered = {a["question_id"]: a for a in read_jsonl(answers)}
    judgments = read_jsonl(out)
    assert len(judgments) == 32
    for judgment in judgments:
        turn, key = judgment["turn"], judgment["question_id"]
        item = questions[key]["tinyworld"][f"turn_{turn}"]
        truth = oracle.score(item, answered[key]["turns"][turn - 1])["score"]
        assert judgment["rating"] == 1 + round(9 * truth), judgment
    result = json.loads(scores.read_text())
    assert result["unparsable"] == 0 and 1 <= result["score"] <= 10
