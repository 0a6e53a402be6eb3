"""A model answering a judged benchmark's conversations through our generation engine.

Every judged benchmark (MT-Bench, AlpacaEval 2, WildBench) has the evaluated model answer
conversations: the messages before the answer, rendered with the model's chat template. The
answers come from our engine (codit.generation.engine, the model alone: direct mode), at a
temperature per conversation (0 means greedy), with a seed derived from (seed, the conversation's
name), so an answer does not depend on batching. A conversation whose prompt plus `max_new_tokens`
does not fit the model's context is refused before anything is generated, naming it.

`AnsweringRun` holds the flags every `codit <benchmark> answer` command shares; `Answerer` loads
the model once and answers groups of conversations; the answers' card (`answer_card`) records
counts, finish reasons, the model's labels (for the report) and the provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.evaluation.lmeval import ModelLabels
from codit.generation.settings import (
    DIRECT_MODE,
    VLLM_BACKEND,
    DecodingSettings,
    EngineSettings,
    parse_chat_template_kwargs,
)
from codit.workflow.provenance import file_sha256, provenance, write_json, write_jsonl
from codit.workflow.runtime import THREADS_HELP
from codit.workflow.settings import Settings, group, json_text, option

Messages = list[dict[str, str]]


@dataclass(frozen=True, kw_only=True)
class AnsweringSettings(Settings):
    """How answers are generated: the benchmark's `max_new_tokens` and the evaluation's engine
    (batch size, dtype, device)."""

    max_new_tokens: int = option(1024, "tokens per answer (FastChat's default: 1024)")
    engine: EngineSettings = group(EngineSettings, "engine")


@dataclass(frozen=True, kw_only=True)
class AnsweringRun(Settings):
    """One `codit <benchmark> answer` run: a model answers every item of a bench folder."""

    model: str = option(help="model folder (or Hub id) that answers")
    bench: Path = option(help="the benchmark's folder")
    out: Path = option(help="the answers: JSONL, one record per item")
    card: Path = option(help="the answers' card: counts, finish reasons, labels, provenance")
    answering: AnsweringSettings = group(AnsweringSettings, "answering")
    labels: ModelLabels = group(ModelLabels, "labels (kept in the card for the report)")
    seed: int = option(0, "global seed of the per-item seeds of sampled answers")
    trust_remote_code: bool = option(False, "run the model repository's own code")
    chat_template_kwargs: dict[str, Any] | None = option(
        None, "JSON object passed to the chat template", parse=parse_chat_template_kwargs,
        render=json_text,
    )  # fmt: skip
    threads: int | None = option(None, THREADS_HELP)


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str
    num_tokens: int


class Answerer:
    """The model of one answering run, loaded once (see the module docstring); on vLLM
    (`--backend vllm`) its engine starts at the first answers and ends with the block:

        with Answerer(run, BENCHMARK) as answerer:
            answers = answerer.answer(conversations, names, temperature)
    """

    def __init__(self, run: AnsweringRun, benchmark: str) -> None:
        import torch

        from codit.generation.generate import context_limit, stop_token_ids
        from codit.generation.loading import load_model, load_model_metadata, load_tokenizer
        from codit.workflow.runtime import resolve_device, resolve_dtype, set_threads, torch_dtype

        set_threads(run.threads)
        self.run, self.benchmark = run, benchmark
        engine = run.answering.engine
        device = torch.device(resolve_device(engine.device))
        dtype = torch_dtype(resolve_dtype(engine.dtype, device.type))
        self.tokenizer = load_tokenizer(run.model, run.trust_remote_code)
        self.vllm = None
        if engine.backend == VLLM_BACKEND:
            from codit.generation.vllm_backend import (
                LazyVllmEngine,
                VllmEngine,
                installed_versions,
            )

            self.model = load_model_metadata(run.model, run.trust_remote_code)
            self.versions = installed_versions(engine.vllm)
            self.vllm = LazyVllmEngine(
                lambda: VllmEngine(
                    run.model,
                    engine.vllm,
                    device=device.type,
                    dtype=str(dtype).removeprefix("torch."),
                    max_num_seqs=engine.batch_size,
                    max_model_len=self.limit,
                    name=f"{benchmark} answers of {run.model}",
                )  # fmt: skip
            )
        else:
            self.model = load_model(run.model, device, dtype, run.trust_remote_code)
        self.stop_ids = stop_token_ids(self.model, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.stop_ids[0]
        self.limit = context_limit(self.model, self.tokenizer)

    def __enter__(self) -> Answerer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.vllm is not None:
            self.vllm.close()

    def generator(self, settings: DecodingSettings) -> Any:
        """The engine that answers with `settings`: ours, or vLLM's (started once per run)."""
        run, max_new_tokens = self.run, self.run.answering.max_new_tokens
        if self.vllm is not None:
            from codit.generation.vllm_backend import VllmGenerator, text_vocab_size

            return VllmGenerator(
                self.vllm, settings, self.stop_ids, max_new_tokens, len(self.tokenizer),
                text_vocab_size(self.model.config), self.versions,
            )  # fmt: skip
        from codit.generation.engine import ContrastiveGenerator

        return ContrastiveGenerator(
            self.model, None, settings, len(self.tokenizer), self.stop_ids, self.pad_id,
            max_new_tokens, cache=run.answering.engine.cache,
            continuous=run.answering.engine.continuous,
        )  # fmt: skip

    def answer(
        self, conversations: Sequence[Messages], names: Sequence[str], temperature: float
    ) -> list[Answer]:
        """Answers to `conversations` (named for their seeds and errors) at one temperature."""
        from codit.generation.engine import generate_in_batches
        from codit.generation.generate import (
            prompt_seed,
            render_conversations,
            too_long_for_context,
        )

        run, max_new_tokens = self.run, self.run.answering.max_new_tokens
        settings = DecodingSettings(
            mode=DIRECT_MODE, alpha=None, beta=None, top_p=1.0,
            temperature=temperature or 1.0, greedy=temperature < 1e-4,
        )  # fmt: skip
        generator = self.generator(settings)
        prompts = render_conversations(
            self.tokenizer, list(conversations), run.chat_template_kwargs, f"model {run.model}"
        )
        too_long = too_long_for_context(prompts, max_new_tokens, self.limit)
        if any(too_long):
            cut = [name for name, long in zip(names, too_long, strict=True) if long]
            raise ValueError(
                f"{self.benchmark}: {cut}: the prompt plus --max-new-tokens {max_new_tokens} "
                f"exceeds the {self.limit}-token context of {run.model}; lower --max-new-tokens"
            )
        seeds = [prompt_seed(run.seed, name) for name in names]
        engine = run.answering.engine
        results = generate_in_batches(
            generator, prompts, seeds, engine.batch_size, engine.batches_per_window
        )
        return [
            Answer(
                self.tokenizer.decode(result.token_ids, skip_special_tokens=True),
                result.finish_reason,
                len(result.token_ids),
            )
            for result in results
        ]


def write_answers(
    run: AnsweringRun, records: list[dict[str, Any]], finish_reasons: Sequence[str], data: str
) -> None:
    """The answers (`run.out`) and their card (`run.card`); `data` names the bench's file the
    answered items come from (its digest goes into the card)."""
    write_jsonl(run.out, records)
    write_json(run.card, answer_card(run, len(records), finish_reasons, data))
    print(f"codit: {len(records)} items answered by {run.model} -> {run.out}")


def answer_card(run: AnsweringRun, items: int, finish_reasons: Sequence[str], data: str) -> dict:
    """The answers' card: what was answered, how answers ended, whose answers they are."""
    engine = run.answering.engine
    versions = {}
    if engine.backend == VLLM_BACKEND:
        from codit.generation.vllm_backend import installed_versions

        versions = {"vllm": installed_versions(engine.vllm)}
    return {
        "model": str(run.model),
        "labels": run.labels.of(str(run.model)),
        "backend": engine.backend,
        **versions,
        "items": items,
        "finish_reasons": {r: list(finish_reasons).count(r) for r in sorted(set(finish_reasons))},
        "data_sha256": file_sha256(Path(run.bench) / data),
        **provenance(run.record()),
    }
