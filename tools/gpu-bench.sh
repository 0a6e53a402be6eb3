#!/usr/bin/env bash
# The GPU bench of docs/engine.md ("vLLM against our engine"): a random pair with Qwen3-8B's
# shapes and vocabulary in bf16 on one GPU, batch 64, through our engine and vLLM, CoDIT and
# direct, side by side in one run (tokens/s, peak CUDA memory of our engine, CoDIT/direct for
# both engines).
#
#   tools/gpu-bench.sh [OUT]     writes the JSON line to OUT (default gpu-bench.jsonl; for
#                                `codit cost --bench OUT --engine vllm`) and prints the table
#
# Needs: the workflow's environment with a CUDA torch (.venv: docs/cluster.md step 1) and vLLM's
# CUDA environment with the pair plugin (conda env create -f envs/vllm.yaml -p envs/.vllm), or
# VLLM_PYTHON naming its python. Two 8B models in bf16 take 32 GB: one 80 GB GPU holds either
# engine (they run one after the other, each in a fresh process). Not yet run: no GPU was lent.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-gpu-bench.jsonl}
VLLM_PYTHON=${VLLM_PYTHON:-envs/.vllm/bin/python}
PYTHON=${PYTHON:-.venv/bin/python}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2
"$PYTHON" -m codit bench --pairs random-8b \
    --methods engine_direct,engine_codit,vllm_direct,vllm_codit \
    --device cuda --dtype bfloat16 \
    --large-num-prompts 512 --large-batch-size 64 --large-max-new-tokens 256 \
    --vllm-python "$VLLM_PYTHON" --json >"$OUT"
"$PYTHON" -c 'import json, sys; from codit.tools.bench import format_table
print(format_table(json.loads(open(sys.argv[1]).read().splitlines()[-1])))' "$OUT"
