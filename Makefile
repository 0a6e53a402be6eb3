# Two entry points that include their own set-up on a fresh clone:
#   make run   - install, then run the whole workflow on the built-in tiny world
#   make test  - install, then run the checks and every test (unit tests and the smoke DAG)
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# The venv's commands (codit, snakemake) must be on PATH for the workflow's shell rules.
export PATH := $(BIN):$(PATH)

.PHONY: run test check

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	snakemake --cores all

check: $(VENV)/.installed
	ruff check .
	snakefmt --check .
	snakemake --lint

test: check
	pytest -m "slow or not slow" --durations=15
