"""`python -m codit_vllm.run`: one vLLM engine that the workflow drives over a pipe.

The workflow (codit.generation.vllm_backend) starts this in vLLM's environment, writes one JSON
command per line on its stdin and reads one JSON answer per line from the stdout it was given;
everything vLLM itself prints goes to stderr (the job's log). Prompts arrive as token ids
(rendered with the workflow's own chat templates) and answers leave as token ids: no tokenizer
is loaded here. End of stdin (the workflow finished, or died) ends the engine.

Commands:

    {"op": "generate", "prompts": [[ids]], "seeds": [int], "max_tokens": [int],
     "temperature": T, "top_p": p, "greedy": bool, "stop_token_ids": [ids],
     "allowed_token_ids": [ids] | null}
        -> {"outputs": [{"token_ids": [ids]}]}      (stop token included, as vLLM returns it)
    {"op": "prompt_logprobs", "prompts": [[ids]], "top": k}
        -> {"outputs": [[null | [[id, logprob]]]]}  (per prompt position; log_softmax of the
                                                      model's logits: CoDIT scores for a pair)
    {"op": "contrast", "alpha": a, "beta": b} -> {"ok": true}   (a pair's (alpha, beta))

Its first line is {"ready": true, "vllm": version}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m codit_vllm.run", description=__doc__)
    parser.add_argument("--model", required=True, help="model folder (a CoDIT pair's or one model)")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", choices=("cpu", "cuda"), required=True)
    parser.add_argument("--max-num-seqs", type=int, required=True, help="sequences per step")
    parser.add_argument("--max-model-len", type=int, help="default: the model's context")
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--cpu-kvcache-gib", type=float, default=1.0)
    parser.add_argument("--max-logprobs", type=int, default=20)
    parser.add_argument(
        "--threads", type=int, help="CPU threads of the model's kernels (the job's; default: all)"
    )
    parser.add_argument(
        "--in-process",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run vLLM's engine core in this process (default on CPU): every request of a "
        "command is queued before the first step, so a command's batches do not depend on "
        "timing; across processes (default on GPU) scheduling overlaps the model's steps",
    )
    return parser.parse_args(argv)


def engine(args: argparse.Namespace) -> Any:
    """The vLLM engine of the model; its own prefix cache is off (see the comment)."""
    from vllm import LLM

    # On CPU no request is prefilled in chunks: vLLM rewinds the seeded generator of a chunked
    # request, which a CPU generator cannot do ("CPU Generator does not use offset"). A whole
    # prompt then has to fit one step's token budget.
    cpu = args.device == "cpu"
    if cpu and args.max_model_len is None:
        raise SystemExit("codit_vllm.run: --max-model-len is needed on CPU (the step's budget)")
    return LLM(
        model=args.model,
        dtype=args.dtype,
        seed=0,
        max_num_seqs=args.max_num_seqs,
        max_model_len=args.max_model_len,
        tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        # CPU: eager PyTorch (no graphs to capture); GPU: vLLM's CUDA graphs.
        enforce_eager=args.device == "cpu",
        skip_tokenizer_init=True,
        # The sampling settings are the workflow's, not the checkpoint's generation_config.
        generation_config="vllm",
        # A cached prefix would make a resumed window compute differently from an unbroken one.
        enable_prefix_caching=False,
        max_logprobs=args.max_logprobs,
        enable_chunked_prefill=False if cpu else None,
        max_num_batched_tokens=max(args.max_model_len, 2048) if cpu else None,
    )


def sampling_params(command: dict[str, Any], index: int) -> Any:
    from vllm import SamplingParams

    greedy = bool(command.get("greedy"))
    return SamplingParams(
        n=1,
        temperature=0.0 if greedy else float(command["temperature"]),
        top_p=1.0 if greedy else float(command["top_p"]),
        seed=None if greedy else int(command["seeds"][index]),
        max_tokens=int(command["max_tokens"][index]),
        stop_token_ids=list(command["stop_token_ids"]),
        allowed_token_ids=command.get("allowed_token_ids"),
        detokenize=False,
    )


def generate(llm: Any, command: dict[str, Any]) -> dict[str, Any]:
    prompts = [{"prompt_token_ids": list(ids)} for ids in command["prompts"]]
    params = [sampling_params(command, index) for index in range(len(prompts))]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    return {"outputs": [{"token_ids": list(output.outputs[0].token_ids)} for output in outputs]}


def prompt_logprobs(llm: Any, command: dict[str, Any]) -> dict[str, Any]:
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=int(command["top"]))
    prompts = [{"prompt_token_ids": list(ids)} for ids in command["prompts"]]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    return {
        "outputs": [
            [
                None
                if position is None
                else [[int(token), float(entry.logprob)] for token, entry in position.items()]
                for position in output.prompt_logprobs
            ]
            for output in outputs
        ]
    }


def set_contrast(llm: Any, command: dict[str, Any]) -> dict[str, Any]:
    alpha, beta = float(command["alpha"]), float(command["beta"])
    llm.apply_model(lambda model: model.set_contrast(alpha, beta))
    return {"ok": True}


COMMANDS = {"generate": generate, "prompt_logprobs": prompt_logprobs, "contrast": set_contrast}


def serve(llm: Any, commands: TextIO, answers: TextIO) -> None:
    """Answer each command line until stdin ends."""
    for line in commands:
        if not line.strip():
            continue
        command = json.loads(line)
        answers.write(json.dumps(COMMANDS[command["op"]](llm, command)) + "\n")
        answers.flush()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # The answers get this process's stdout; vLLM's own prints go to stderr with the rest.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    in_process = args.device == "cpu" if args.in_process is None else args.in_process
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"
    # `contrast` sends a function to the workers (several processes under tensor parallelism).
    os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
    if args.device == "cpu":
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{args.cpu_kvcache_gib:g}")
    if args.threads is not None:
        # Before vLLM's import: its CPU worker refuses torch.set_num_threads later on.
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    import vllm

    llm = engine(args)
    answers.write(json.dumps({"ready": True, "vllm": vllm.__version__}) + "\n")
    answers.flush()
    serve(llm, sys.stdin, answers)


if __name__ == "__main__":
    main()
