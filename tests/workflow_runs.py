"""Running this workflow in tests: Snakemake with the venv on PATH, dry-run parsers, the cut-down
grid the SLURM and fault tests share, and what two runs must agree on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def with_venv(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with the venv's commands first on PATH (the shell rules call `codit`,
    which lives next to this interpreter), plus `extra`."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(extra or {})}


def snakemake(
    *args: str, cwd: Path = REPO, timeout: int = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run Snakemake on this workflow; `env` adds environment variables for it and its jobs."""
    env = with_venv(env)
    return subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_counts(output: str) -> dict[str, int]:
    """Parse the `Job stats` table of a dry run."""
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return {
        match[1]: int(match[2])
        for match in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE)
        if match[1] != "total"
    }


def job_blocks(output: str) -> list[tuple[str, dict[str, str], str]]:
    """(rule, resources incl. threads, shell command) of every job block of a dry run with -p."""
    jobs = []
    for block in re.split(r"^(?:local)?rule ", output, flags=re.MULTILINE)[1:]:
        rule = block.split(":", 1)[0]
        line = re.search(r"^\s+resources: (.*)$", block, flags=re.MULTILINE)
        resources = dict(item.split("=", 1) for item in (line[1].split(", ") if line else []))
        threads = re.search(r"^\s+threads: (\d+)$", block, flags=re.MULTILINE)
        resources["threads"] = threads[1] if threads else "1"
        command = re.search(r"^Shell command: (.*)$", block, flags=re.MULTILINE)
        jobs.append((rule, resources, command[1] if command else ""))
    return jobs


# The tiny world cut down for test_slurm and test_faults: one alpha, one seed, one student, two
# shards per dataset, no other baseline than direct. Models ask for a GPU each (on SLURM, jobs
# schedule only because of the fake GPUs).
SMALL_GRID = {
    # The default world (so tests share one build: tinyworld_cache), 96 of its instructions.
    "instructions": {"limit": 96},
    "teacher_pairs": {"tiny-llama": {"post": "tiny-llama-instruct", "pre": "tiny-llama-base"}},
    "generation": {"alphas": [0.1], "max_new_tokens": 96, "batch_size": 32, "num_shards": 2},
    "students": ["tiny-llama-base"],
    "sft": {"epochs": 1, "learning_rate": 0.002, "batch_size": 8, "max_length": 256},
    # The judged benchmarks (as in config/config.yaml, shorter answers): each judging job
    # serves the judge once for the three
    "evaluation": {
        "references": ["tiny-llama-instruct"],
        "limit": 64,
        "mt_bench": {"enabled": True, "bench": "tinyworld", "max_new_tokens": 32},
        "alpaca_eval": {"enabled": True, "bench": "tinyworld", "max_new_tokens": 32},
        "wildbench": {"enabled": True, "bench": "tinyworld", "max_new_tokens": 32},
    },
    # Evaluation jobs ask for 2 CPUs (resources.evaluate.cpus), the others for `threads`: 1.
    "resources": {"evaluate": {"mem_mb": 2000, "runtime_minutes": 15, "cpus": 2}},
}
# Keys replaced as a whole rather than merged into the tiny world's.
SMALL_GRID_REPLACED = {
    "models": {
        "tiny-llama-base": {"tinyworld": "llama-base", "gpus": 1},
        "tiny-llama-instruct": {"tinyworld": "llama-instruct", "gpus": 1},
    },
    "seeds": [0],
    "best_of_n": {},
    "public_datasets": {},
    "chat_vector": {},
}


def derived_config(path: Path, merged: dict, replaced: dict) -> Path:
    """The tiny world's config with `merged` tables merged into its own and `replaced` keys
    replacing its own, written to `path`."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for key, value in merged.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    config.update(replaced)
    path.write_text(yaml.safe_dump(config))
    return path


def small_config(path: Path) -> Path:
    return derived_config(path, SMALL_GRID, SMALL_GRID_REPLACED)


def results_of(workdir: Path) -> dict[str, object]:
    """What must agree between runs: datasets byte for byte, SFT losses, every metric."""
    found: dict[str, object] = {}
    for path in sorted((workdir / "results/datasets").rglob("data.jsonl")):
        found[str(path.relative_to(workdir))] = path.read_bytes()
    for path in sorted((workdir / "results/sft").rglob("train_record.json")):
        record = json.loads(path.read_text())
        found[str(path.relative_to(workdir))] = (record["final_loss"], record["loss_curve"])
    for path in sorted((workdir / "results/eval").rglob("*.json")):
        payload = json.loads(path.read_text())
        # tasks.json is the prefetch manifest: what each task read
        found[str(path.relative_to(workdir))] = payload.get("results", payload.get("tasks"))
    found["main.csv"] = (workdir / "results/tables/main.csv").read_text()
    return found


def processes() -> list[str]:
    """Command lines of this machine's processes (to find servers or engines left behind)."""
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return lines
