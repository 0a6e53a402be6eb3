"""One build of the default tiny world (data, its three models, the tiny AlpacaEval's reference
outputs) for every test that needs it.

The workflow's own rules build it (`tinyworld_data`, `tinyworld_model`), once, into
`.test-cache/tinyworld-<key>/` of the checkout, where `<key>` hashes the world's seed and pool
size, the code that builds it and the versions of the packages that train it: a change to any of
them builds a new world, and nothing else does. A file lock lets parallel test workers (pytest -n)
wait for one build instead of starting their own. Tests copy the world into their own working
directory (`copy_into`), so none of them can change the cached one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import yaml
from filelock import FileLock
from workflow_runs import REPO, snakemake

CACHE_ROOT = Path(os.environ.get("CODIT_TEST_CACHE", REPO / ".test-cache"))
MODELS = ("llama-base", "llama-instruct", "gpt2-base")
# What the build reads: change any of these and the world is built anew.
BUILD_SOURCES = [
    *sorted((REPO / "src/codit/tinyworld").rglob("*.py")),
    *sorted((REPO / "src/codit/tinyworld/task_templates").glob("*")),
    REPO / "src/codit/workflow/provenance.py",
    REPO / "src/codit/judged/wildbench.py",  # the layout the tiny WildBench is written in
    REPO / "workflow/rules/tinyworld.smk",
]
BUILD_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors")
DONE = "built.json"


def world_settings() -> dict:
    """The default config's `tinyworld` block: the world every test shares."""
    return yaml.safe_load((REPO / "config/config.yaml").read_text())["tinyworld"]


def cache_key() -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(world_settings(), sort_keys=True).encode())
    digest.update(json.dumps({name: version(name) for name in BUILD_PACKAGES}).encode())
    for path in BUILD_SOURCES:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def built() -> Path:
    """The cache folder holding `resources/tinyworld/` (built now if it is not there yet)."""
    key = cache_key()
    folder = CACHE_ROOT / f"tinyworld-{key}"
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock", timeout=40 * 60):
        if (folder / DONE).is_file():
            return folder
        shutil.rmtree(folder, ignore_errors=True)  # a build killed half-way starts over
        folder.mkdir()
        targets = ["resources/tinyworld/data_card.json"]
        targets += [f"resources/tinyworld/models/{name}" for name in MODELS]
        targets += ["resources/tinyworld/alpaca_eval"]  # the instruct model's references
        result = snakemake(
            "--cores", "2", "--configfile", str(REPO / "config/config.yaml"),
            "--directory", str(folder), *targets, timeout=40 * 60,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"building the test tiny world failed:\n{result.stderr[-5000:]}")
        (folder / DONE).write_text(json.dumps({"key": key, **world_settings()}) + "\n")
    # Builds for code this checkout no longer has are of no use: keep the folder small.
    for stale in CACHE_ROOT.glob("tinyworld-*"):
        if stale.is_dir() and stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
            Path(str(stale) + ".lock").unlink(missing_ok=True)
    return folder


def copy_into(build: Path, workdir: Path) -> Path:
    """Copy the world of `build` (a folder `built` returned) to `workdir/resources/tinyworld`
    (times kept: it stays up to date)."""
    target = workdir / "resources" / "tinyworld"
    shutil.copytree(build / "resources" / "tinyworld", target)
    return target


# The judge the tests share (tests/test_tinyworld_judge.py, tests/test_vllm_judge.py): a short
# `codit tinyworld train-judge` run on the cached world.
JUDGE_STEPS = 200
JUDGE_TRAIN_INSTRUCTIONS = 150
JUDGE_HELD_OUT_INSTRUCTIONS = 24


def trained_judge(build: Path) -> Path:
    """`build/judge/` (model/, agreement.json, ...): trained once per build, under a lock."""
    folder = build / "judge"
    with FileLock(str(folder) + ".lock", timeout=30 * 60):
        if not (folder / "agreement.json").is_file():
            command = [
                sys.executable, "-m", "codit", "tinyworld", "train-judge",
                "--world", str(build / "resources" / "tinyworld"), "--out", str(folder),
                "--steps", str(JUDGE_STEPS),
                "--max-train-instructions", str(JUDGE_TRAIN_INSTRUCTIONS),
                "--max-held-out-instructions", str(JUDGE_HELD_OUT_INSTRUCTIONS), "--threads", "2",
            ]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True, timeout=30 * 60)
            if result.returncode != 0:
                raise RuntimeError(f"training the test judge failed:\n{result.stderr[-5000:]}")
    return folder
