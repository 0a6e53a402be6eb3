"""`codit chatvector`: the chat-vector arm, theta_student + r * (theta_post - theta_pre).

The paper's "chat vector" baseline (Huang et al. 2023, "Chat Vector") adds what post-training
changed in the teacher's weights to a student base model. That is only defined when the student
shares the teacher's architecture and every parameter's shape, so anything else is refused before
any arithmetic, with a ValueError naming the model, the parameter and the shapes:

- the three models must have the same model_type and architecture class;
- the same parameter names (a tied output head in one model and an untied one in another is a
  name mismatch: the tied model has no separate `lm_head.weight`);
- the same shape for every parameter, with one exception: when the vocabulary sizes (rows of the
  token embedding) differ between the three models, e.g. because the post model added chat
  tokens or the checkpoints pad their embeddings differently, the token embedding and the output
  head are skipped (the student's are kept) and recorded in chat_vector.json, as the chat-vector
  paper does for vocabularies that differ. Any other shape mismatch is refused;
- the same token ids: every token of the smaller of two tokenizers (student vs post, pre vs post)
  has the same id in the larger one (equal sizes: the same token -> id map), since the added
  vector assumes that row i means the same token in all three models.

Tied embeddings: `model.state_dict()` of a tied model (transformers 5.23) holds both
`...embed_tokens.weight` and `lm_head.weight`, views of one tensor, so adding the vector to every
state-dict entry would add it twice. The arithmetic runs over `named_parameters()`, which lists a
shared tensor once, and `save_pretrained` writes it once (the head is re-tied on loading).
Buffers (not weights) are the student's.

The sum is computed per parameter in float32 (the student is loaded in float32, post and pre in
their stored dtype and upcast per tensor), then the model is cast to --dtype. The output folder
appears all at once:

    OUT/                  model (safetensors), config, generation_config, student's tokenizer
    OUT/chat_vector.json  ratio, sources, parameter counts, skipped parameters and why, provenance

The tokenizer is the student's, with the post model's chat template when the post model has one
and the student's tokenizer has all of the post tokenizer's added tokens (the behaviour the
vector adds was learned with that template); otherwise the student's own template.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codit.training.sft import clean_generation_config, end_of_turn_token, staging_dir
from codit.workflow.provenance import provenance, write_json
from codit.workflow.runtime import THREADS_HELP, require_safetensors, set_threads, torch_dtype
from codit.workflow.settings import Settings, option

RECORD_FILE = "chat_vector.json"
OUTPUT_DTYPES = ("float32", "bfloat16")
ROLES = ("student", "post", "pre")


@dataclass(frozen=True, kw_only=True)
class ChatVectorRun(Settings):
    """One `codit chatvector` run: student + ratio x (post - pre), saved as a model folder."""

    student: str = option(help="student base model folder")
    post: str = option(help="teacher's post-trained model folder")
    pre: str = option(help="teacher's pre-trained checkpoint folder")
    ratio: float = option(help="r in theta_student + r * (post - pre)")
    out: str = option(help="output model folder")
    dtype: str = option(
        "float32",
        "dtype of the saved weights (the arithmetic is float32 either way)",
        choices=OUTPUT_DTYPES,
    )
    trust_remote_code: bool = option(False, "run the models' repository code")
    threads: int | None = option(None, THREADS_HELP)


add_arguments = ChatVectorRun.add_arguments


# ----------------------------------------------------------------------------- checks


def _label(role: str, source: str) -> str:
    return f"{role} model {source}"


def check_architectures(configs: dict[str, Any], sources: dict[str, str]) -> None:
    """Refuse unless all three configs have the post model's model_type and architecture."""

    def describe(config) -> str:
        architectures = getattr(config, "architectures", None) or ["?"]
        return f"{config.model_type} model ({', '.join(architectures)})"

    post = configs["post"]
    for role in ("student", "pre"):
        config = configs[role]
        same_type = config.model_type == post.model_type
        archs, post_archs = getattr(config, "architectures", None), post.architectures
        if not same_type or (archs and post_archs and archs != post_archs):
            raise ValueError(
                f"{_label(role, sources[role])} is a {describe(config)} but "
                f"{_label('post', sources['post'])} is a {describe(post)}: a chat vector can only "
                "be added to a model of the teacher's architecture"
            )


def check_token_ids(tokenizers: dict[str, Any], sources: dict[str, str]) -> None:
    """Refuse a student or pre tokenizer whose token ids disagree with the post tokenizer's.

    Every token of the smaller vocabulary must have the same id in the larger one (a larger
    vocabulary may only append tokens); with equal sizes the maps must be identical. The first
    differing token in id order is named.
    """
    post_vocab = tokenizers["post"].get_vocab()
    for role in ("student", "pre"):
        vocab = tokenizers[role].get_vocab()
        smaller, larger = sorted((vocab, post_vocab), key=len)  # stable: equal sizes keep order
        for token, _ in sorted(smaller.items(), key=lambda item: (item[1], item[0])):
            if smaller[token] != larger.get(token):
                raise ValueError(
                    f"{_label(role, sources[role])} and {_label('post', sources['post'])} do not "
                    f"share token ids: token {token!r} has id {vocab.get(token)} in the {role} "
                    f"tokenizer and id {post_vocab.get(token)} in the post tokenizer; the chat "
                    "vector assumes the same token ids"
                )


def _shape(tensor) -> str:
    return "(" + ", ".join(str(size) for size in tensor.shape) + ")"


def vocabulary_rows(models: dict[str, Any]) -> dict[str, int]:
    return {role: model.get_input_embeddings().weight.shape[0] for role, model in models.items()}


def vocabulary_parameters(model) -> list[str]:
    """Names (as in named_parameters) of the token embedding and output head of `model`."""
    tensors = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None:
        tensors.append(head.weight)
    ids = {id(tensor) for tensor in tensors}
    return [name for name, param in model.named_parameters() if id(param) in ids]


def plan_parameters(
    models: dict[str, Any], sources: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The parameter names to add the vector to, and the skipped ones with the reason.

    Refuses (ValueError) another architecture class, other parameter names or another shape;
    nothing is computed here.
    """
    post = models["post"]
    for role in ("student", "pre"):
        if type(models[role]) is not type(post):
            raise ValueError(
                f"{_label(role, sources[role])} loads as {type(models[role]).__name__} but "
                f"{_label('post', sources['post'])} loads as {type(post).__name__}: a chat "
                "vector can only be added to a model of the teacher's architecture"
            )
    params = {role: dict(model.named_parameters()) for role, model in models.items()}
    tied = {
        role: bool(model.config.get_text_config().tie_word_embeddings)
        for role, model in models.items()
    }
    for role in ("student", "pre"):
        only_post = [(name, "post", role) for name in params["post"] if name not in params[role]]
        only_role = [(name, role, "post") for name in params[role] if name not in params["post"]]
        for name, where, missing in (only_post + only_role)[:1]:
            hint = ""
            if tied[role] != tied["post"]:
                hint = (
                    f" ({role} {'ties' if tied[role] else 'does not tie'} its output head to the "
                    f"token embedding, post {'does' if tied['post'] else 'does not'})"
                )
            raise ValueError(
                f"parameter {name!r} is in {_label(where, sources[where])} but not in "
                f"{_label(missing, sources[missing])}{hint}: the models do not share an "
                "architecture"
            )

    rows = vocabulary_rows(models)
    skipped: dict[str, str] = {}
    if len(set(rows.values())) > 1:
        sizes = ", ".join(f"{role} {rows[role]}" for role in ROLES)
        reason = (
            f"vocabulary sizes differ (embedding rows: {sizes}); the student's rows are kept, "
            "as the chat-vector paper does for differing vocabularies"
        )
        skipped = {name: reason for name in vocabulary_parameters(models["student"])}
    for name, param in params["student"].items():
        for role in ("post", "pre"):
            other = params[role][name]
            same = other.shape == param.shape
            if name in skipped:  # only the vocabulary dimension may differ
                same = other.shape[1:] == param.shape[1:]
            if not same:
                raise ValueError(
                    f"parameter {name!r} has shape {_shape(param)} in "
                    f"{_label('student', sources['student'])} but {_shape(other)} in "
                    f"{_label(role, sources[role])}: the models do not share an architecture"
                )
    added = [name for name in params["student"] if name not in skipped]
    return added, skipped


# ----------------------------------------------------------------------------- loading


def load_config(source: str, trust_remote_code: bool):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)


def load_tokenizer(role: str, source: str, trust_remote_code: bool):
    """The tokenizer of one of the three models; a failure names the model's role."""
    from codit.generation import loading

    try:
        return loading.load_tokenizer(source, trust_remote_code)
    except (OSError, ValueError) as error:
        raise ValueError(f"{_label(role, source)}: cannot load its tokenizer ({error})") from None


def load_model(source: str, dtype: Any, trust_remote_code: bool):
    """One of the three models, on the CPU (the arithmetic runs there, in float32)."""
    import torch

    from codit.generation import loading

    return loading.load_model(source, torch.device("cpu"), dtype, trust_remote_code)


# ----------------------------------------------------------------------------- arithmetic


def add_chat_vector(models: dict[str, Any], names: list[str], ratio: float) -> dict[str, float]:
    """In place: student[name] += ratio * (post[name] - pre[name]), in float32, for `names`.

    Over named_parameters, so a tensor shared by tied parameters is changed once. Returns the
    L2 norm of the chat vector (post - pre) over `names` and of the change made.
    """
    import torch

    params = {role: dict(model.named_parameters()) for role, model in models.items()}
    squares = 0.0
    with torch.no_grad():
        for name in names:
            target = params["student"][name]
            if target.dtype != torch.float32:
                raise ValueError(f"student parameter {name!r} is {target.dtype}, not float32")
            delta = params["post"][name].float() - params["pre"][name].float()
            squares += float(delta.double().square().sum())
            target.add_(delta, alpha=ratio)
            if not torch.isfinite(target).all():
                raise ValueError(f"parameter {name!r}: the sum has non-finite values")
    norm = math.sqrt(squares)
    return {"vector_l2_norm": norm, "change_l2_norm": abs(ratio) * norm}


# ----------------------------------------------------------------------------- output


def output_tokenizer(student_tokenizer, post_tokenizer) -> tuple[Any, str | None]:
    """The student's tokenizer with the chat template the output uses, and where it came from."""
    vocab = student_tokenizer.get_vocab()
    post_added = [token.content for token in post_tokenizer.added_tokens_decoder.values()]
    if post_tokenizer.chat_template and all(token in vocab for token in post_added):
        student_tokenizer.chat_template = post_tokenizer.chat_template
        return student_tokenizer, "post"
    return student_tokenizer, "student" if student_tokenizer.chat_template else None


def generation_config(model, tokenizer, post_model, has_template: bool):
    """Stop on the template's end-of-turn token, the student's and the post's eos ids (those in
    the student's vocabulary); no sampling defaults (training.clean_generation_config)."""
    eos = end_of_turn_token(tokenizer) if has_template else tokenizer.eos_token
    if eos is None:
        raise ValueError("the student's tokenizer has no eos token and no chat template")
    config = clean_generation_config(model, tokenizer, eos)
    post_eos = post_model.generation_config.eos_token_id if post_model.generation_config else None
    ids = config.eos_token_id
    for token_id in post_eos if isinstance(post_eos, list) else [post_eos]:
        if token_id is not None and token_id < len(tokenizer) and token_id not in ids:
            ids.append(token_id)
    return config, eos


def parameter_counts(models: dict[str, Any], added: list[str], skipped: dict[str, str]) -> dict:
    params = dict(models["student"].named_parameters())
    return {
        "tensors": len(params),
        "elements": sum(p.numel() for p in params.values()),
        "added_tensors": len(added),
        "added_elements": sum(params[name].numel() for name in added),
        "skipped_tensors": len(skipped),
        "skipped_elements": sum(params[name].numel() for name in skipped),
    }


# ----------------------------------------------------------------------------- entry point


def build_chat_vector_model(
    student: str,
    post: str,
    pre: str,
    ratio: float,
    out: str | Path,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check, compute and save theta_student + ratio * (theta_post - theta_pre); returns the record.

    Everything is checked and computed before anything is written: a refusal leaves no --out.
    """
    import torch

    started = time.monotonic()
    if not math.isfinite(ratio):
        raise ValueError(f"--ratio must be a finite number, got {ratio}")
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(OUTPUT_DTYPES)}, got {dtype!r}")
    sources = {"student": str(student), "post": str(post), "pre": str(pre)}
    out = Path(out)
    for role, source in sources.items():
        if Path(source).exists() and Path(source).resolve() == out.resolve():
            raise ValueError(f"--out {out} is the {role} model's folder; write elsewhere")
        require_safetensors(source)

    configs = {role: load_config(source, trust_remote_code) for role, source in sources.items()}
    check_architectures(configs, sources)
    tokenizers = {role: load_tokenizer(role, s, trust_remote_code) for role, s in sources.items()}
    check_token_ids(tokenizers, sources)
    models = {"student": load_model(sources["student"], torch.float32, trust_remote_code)}
    for role in ("post", "pre"):
        models[role] = load_model(sources[role], "auto", trust_remote_code)
    added, skipped = plan_parameters(models, sources)

    norms = add_chat_vector(models, added, ratio)
    result = models["student"].to(torch_dtype(dtype))
    tokenizer, template_from = output_tokenizer(tokenizers["student"], tokenizers["post"])
    result.generation_config, eos = generation_config(
        result, tokenizer, models["post"], template_from is not None
    )
    settings = dict(settings or {})
    settings.update(
        student=sources["student"],
        post=sources["post"],
        pre=sources["pre"],
        ratio=ratio,
        out=str(out),
        dtype=dtype,
        trust_remote_code=trust_remote_code,
    )
    record = {
        "provenance": provenance(settings),
        "ratio": ratio,
        "sources": sources,
        "model_type": configs["post"].model_type,
        "architecture": type(result).__name__,
        "dtype": dtype,
        "arithmetic_dtype": "float32",
        "tied_word_embeddings": bool(result.config.get_text_config().tie_word_embeddings),
        "vocabulary_rows": vocabulary_rows(models),
        "tokenizer_sizes": {role: len(tok) for role, tok in tokenizers.items()},
        "parameters": parameter_counts(models, added, skipped),
        "skipped": [{"parameter": name, "reason": reason} for name, reason in skipped.items()],
        **norms,
        "tokenizer": {
            "from": "student",
            "chat_template_from": template_from,
            "eos_token": eos,
            "generation_eos_token_id": result.generation_config.eos_token_id,
        },
    }
    with staging_dir(out) as staging:
        result.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        record["runtime_s"] = round(time.monotonic() - started, 3)
        write_json(staging / RECORD_FILE, record)
    return record


def run(args: argparse.Namespace) -> None:
    from transformers.utils import logging as hf_logging

    vector = ChatVectorRun.from_args(args)
    set_threads(vector.threads)
    hf_logging.set_verbosity_warning()
    record = build_chat_vector_model(
        vector.student,
        vector.post,
        vector.pre,
        vector.ratio,
        vector.out,
        dtype=vector.dtype,
        trust_remote_code=vector.trust_remote_code,
        settings=vector.record(),
    )
    counts = record["parameters"]
    print(
        f"codit chatvector: student + {record['ratio']:g} x (post - pre) on "
        f"{counts['added_tensors']} of {counts['tensors']} parameter tensors "
        f"({counts['skipped_tensors']} skipped), {record['runtime_s']:.1f}s -> {vector.out}"
    )
