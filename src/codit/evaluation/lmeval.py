"""`codit evaluate`: lm-evaluation-harness tasks on one model directory, through the Python API.

The output file is lm-eval's own results dict (metric keys look like
`results[task]["prompt_level_strict_acc,none"]`, i.e. "<metric>,<filter>", with "_stderr"
twins), made JSON-safe, minus the in-memory "samples" (those go to --samples-dir/<task>.jsonl),
plus a "codit" block: {"labels", "model", "provenance"}.

Hub access is never forced off here: the workflow runs this with HF_HUB_OFFLINE=1 and
HF_DATASETS_OFFLINE=1 after `codit prefetch` has cached the tasks' data (local model dirs and
local task data need nothing else). The tasks are built, and their data loaded, before the
model, so data missing from an offline cache fails in seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.evaluation.tasks import TaskSelection, check_task_data
from codit.workflow.faults import fault_point
from codit.workflow.provenance import provenance, write_json, write_jsonl
from codit.workflow.runtime import (
    DEVICES,
    DTYPE_HELP,
    THREADS_HELP,
    require_safetensors,
    resolve_device,
    resolve_dtype,
    set_threads,
)
from codit.workflow.settings import Settings, group, option

# lm-eval's own defaults, passed explicitly so every result records the seeds it ran with.
SEEDS = {
    "random_seed": 0,
    "numpy_random_seed": 1234,
    "torch_random_seed": 1234,
    "fewshot_random_seed": 1234,
}


@dataclass(frozen=True, kw_only=True)
class EvaluationSettings(Settings):
    """How every model is evaluated: the config's `evaluation:` section."""

    selection: TaskSelection = group(TaskSelection, "tasks")
    batch_size: str = option("1", "integer, or 'auto'")
    limit: float | None = option(None, "examples per task (below 1: a fraction)")
    apply_chat_template: bool = option(
        True, "render prompts with the model's chat template (default: on)"
    )
    gen_kwargs: str | None = option(
        None,
        "generation overrides for generate_until tasks, e.g. 'max_gen_toks=256,temperature=0'",
    )
    dtype: str = option("auto", DTYPE_HELP, choices=("auto", "float32", "bfloat16"))
    device: str = option("auto", choices=DEVICES)


@dataclass(frozen=True, kw_only=True)
class ModelLabels(Settings):
    """What the report needs to place an evaluated model: the rule's labels (pair, student,
    arm, seed) and the architectures of the model and of its teacher. `codit evaluate` and
    `codit mtbench answer` take them alike."""

    label: tuple[str, ...] = option(
        (),
        "stored under codit.labels (repeatable), e.g. --label arm=direct",
        metavar="KEY=VALUE",
    )
    teacher: str | None = option(
        None,
        "the teacher's post-trained model folder: its architecture is recorded as the label "
        "teacher_architecture (the student's own as student_architecture)",
        metavar="DIR",
    )

    def of(self, model: str) -> dict[str, str]:
        """The labels of `model`: its architecture (and its teacher's), then --label's."""
        labels = {"student_architecture": model_type(model)}
        if self.teacher:
            labels["teacher_architecture"] = model_type(self.teacher)
        return labels | parse_labels(self.label)


@dataclass(frozen=True, kw_only=True)
class EvaluationRun(Settings):
    """One `codit evaluate` run: which model, how, and where its results go."""

    model: str = option(help="model dir (or Hub id) to evaluate")
    settings: EvaluationSettings = group(EvaluationSettings, "evaluation")
    out: str = option(help="results file (JSON)")
    samples_dir: str | None = option(None, "write per-task samples as DIR/<task>.jsonl")
    labels: ModelLabels = group(ModelLabels, "labels")
    trust_remote_code: bool = option(False, "run the model repository's own model code")
    threads: int | None = option(None, THREADS_HELP)


add_arguments = EvaluationRun.add_arguments


# ----------------------------------------------------------------------------- arguments


def parse_labels(pairs: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--label {pair!r}: expected KEY=VALUE")
        labels[key] = value
    return labels


def model_type(model_dir: str) -> str:
    """The `model_type` of a local checkpoint's config.json ("" for a Hub id or none given)."""
    config_file = Path(model_dir) / "config.json" if model_dir else None
    if config_file is None or not config_file.is_file():
        return ""
    return str(json.loads(config_file.read_text(encoding="utf-8")).get("model_type") or "")


def parse_batch_size(text: str) -> int | str:
    return text if text.startswith("auto") else int(text)


def parse_limit(limit: float | None) -> int | float | None:
    """lm-eval reads a limit below 1 as a fraction of the task and 1 or more as a count."""
    if limit is None or limit < 1:
        return limit
    return int(limit)


# ----------------------------------------------------------------------------- evaluation


def check_model_exists(model: str) -> None:
    """A path-like model that is missing fails here, not deep inside transformers."""
    looks_local = model.startswith((".", "/", "~")) or model.count("/") > 1
    if looks_local and not Path(model).expanduser().exists():
        raise FileNotFoundError(f"--model {model}: no such directory")


def model_args(run: EvaluationRun, dtype: str) -> dict[str, Any]:
    """HFLM arguments; device and batch size go to simple_evaluate (lm-eval refuses them twice)."""
    return {
        "pretrained": run.model,
        "dtype": dtype,
        "trust_remote_code": run.trust_remote_code,
        "use_safetensors": True,  # passed on to from_pretrained: never unpickle weights
    }


def json_safe(value: Any) -> Any:
    """Round-trip through JSON with lm-eval's converter (numpy scalars, sets, functions)."""
    from lm_eval.utils import handle_non_serializable

    return json.loads(json.dumps(value, default=handle_non_serializable))


def as_logged_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """A sample in the layout lm-eval's own --log_samples files use (EvaluationTracker)."""
    from lm_eval.utils import sanitize_list

    arguments = {
        f"gen_args_{i}": {f"arg_{j}": value for j, value in enumerate(request)}
        for i, request in enumerate(sample["arguments"])
    }
    return json_safe(
        {
            **sample,
            "arguments": arguments,
            "resps": sanitize_list(sample["resps"]),
            "filtered_resps": sanitize_list(sample["filtered_resps"]),
            "target": str(sample["target"]),
        }
    )


def write_samples(samples: dict[str, list[dict]], directory: Path) -> dict[str, str]:
    """One JSONL file per task; returns task -> file path."""
    paths = {}
    for task, records in samples.items():
        path = directory / f"{task}.jsonl"
        write_jsonl(path, [as_logged_sample(record) for record in records])
        paths[task] = str(path)
    return paths


def evaluate(run: EvaluationRun) -> dict[str, Any]:
    """Run the tasks and write the results file (and samples); returns the written payload."""
    import lm_eval

    started = time.monotonic()
    settings = run.settings
    tasks = settings.selection.names()
    labels = run.labels.of(run.model)
    manager = settings.selection.index()
    check_model_exists(run.model)
    require_safetensors(run.model)

    check_task_data(tasks, manager)
    set_threads(run.threads)
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=model_args(run, dtype),
        tasks=tasks,
        device=device,
        batch_size=parse_batch_size(settings.batch_size),
        limit=parse_limit(settings.limit),
        log_samples=True,
        apply_chat_template=settings.apply_chat_template,
        gen_kwargs=settings.gen_kwargs,
        task_manager=manager,
        **SEEDS,
    )
    samples = results.pop("samples", {})
    sample_files = write_samples(samples, Path(run.samples_dir)) if run.samples_dir else {}
    fault_point("evaluate.after_samples")  # tests kill here: samples written, results not
    recorded = {**run.record(), "device": device, "dtype": dtype, "seeds": SEEDS}
    payload = json_safe(results)
    payload["codit"] = {
        "labels": labels,
        "model": run.model,
        "sample_files": sample_files,
        "runtime_s": round(time.monotonic() - started, 3),
        "provenance": provenance(recorded),
    }
    # Written last: its presence means the samples are complete too.
    write_json(run.out, payload)
    return payload


def run(args: argparse.Namespace) -> None:
    payload = evaluate(EvaluationRun.from_args(args))
    for task, metrics in payload["results"].items():
        shown = ", ".join(
            f"{key}={value:.4g}"
            for key, value in metrics.items()
            if isinstance(value, float) and "_stderr" not in key
        )
        print(f"codit evaluate: {task}: {shown}")
