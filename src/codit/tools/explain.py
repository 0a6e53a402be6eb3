"""`codit explain`: the paper's Figure 1 for any instruction, at one decoding step.

For one position of one response it shows, side by side, the top tokens of the post model, the
top tokens of the pre model and the tokens the CoDIT rule ranks first:

    lp_post, lp_pre  log-probabilities of the next token, sliced to the shared vocabulary
    V_head           plausibility set: p_post(v) >= alpha * max_w p_post(w)
    s(v)             lp_post(v) - beta * lp_pre(v) on V_head, -inf elsewhere
    p_codit(v)       softmax(s)(v): the CoDIT distribution at temperature 1 (no top-p)

The context is the instruction rendered with the post model's chat template exactly as
`codit generate` renders it, then `--prefix` (an assistant-response prefix, tokenized without
special tokens), then `--step N` tokens chosen greedily by the CoDIT rule. Both models run
through the engine's `IncrementalLM` (same slicing to the real vocabulary, same cache), and
every number comes from the functions of codit.generation.decoding, so the figure explains exactly
what the engine computes. Nothing is sampled: the same arguments always give the same output.

Outputs: a three-panel PNG (`--out`), a JSON with every number shown (`--json`) and a plain
text table on stdout.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from codit.generation.decoding import (
    check_scores_are_sampleable,
    check_shared_vocabulary,
    contrast_scores,
    plausibility_mask,
    select_next_tokens,
)
from codit.generation.settings import CODIT_MODE, DecodingSettings
from codit.workflow.provenance import atomic_path, write_json
from codit.workflow.runtime import (
    add_runtime_arguments,
    resolve_device,
    resolve_dtype,
    set_threads,
    torch_dtype,
)

DEFAULT_TOP_K = 10
TITLE_TAIL_TOKENS = 12  # context tokens quoted in the figure's title
LABEL_CHARS = 24  # longest token label drawn on a panel's axis
DPI = 110
HEAD_COLOUR = "tab:blue"
OUTSIDE_COLOUR = "0.75"
PRE_COLOUR = "tab:orange"
CODIT_COLOUR = "tab:green"
THRESHOLD_COLOUR = "tab:red"


@dataclass(frozen=True)
class Explanation:
    """One decoding position: its context and the next-token distributions of both models.

    Tensors are 1-D over the shared vocabulary (float32, CPU). `scores` is -inf outside
    V_head; `codit_probs` is softmax(scores), 0 outside V_head.
    """

    context_ids: list[int]
    prompt_length: int  # tokens of the rendered instruction
    prefix_length: int  # tokens of --prefix after it
    generated_ids: list[int]  # the --step greedy CoDIT tokens after the prefix
    alpha: float
    beta: float
    logprobs_post: torch.Tensor
    logprobs_pre: torch.Tensor
    head: torch.Tensor
    scores: torch.Tensor
    codit_probs: torch.Tensor

    @property
    def next_token(self) -> int:
        """The token greedy CoDIT decoding picks here (arg-max of s, as the engine's)."""
        settings = DecodingSettings(mode=CODIT_MODE, alpha=self.alpha, beta=self.beta, greedy=True)
        return int(select_next_tokens(self.scores.unsqueeze(0), settings)[0])


# --------------------------------------------------------------------------------------------
# The numbers


def _descending(values: torch.Tensor) -> list[int]:
    """Token ids by decreasing value, ties by increasing id (a stable, deterministic order)."""
    return values.sort(descending=True, stable=True).indices.tolist()


def explain_position(
    post_model: Any,
    pre_model: Any,
    context_ids: Sequence[int],
    vocab_size: int,
    alpha: float,
    beta: float,
    step: int = 0,
    stop_ids: Sequence[int] = (),
    prompt_length: int | None = None,
    prefix_length: int = 0,
) -> Explanation:
    """Greedy-decode `step` CoDIT tokens after `context_ids`, then explain the next position.

    Both models go through the engine's IncrementalLM (a batch of one, no padding), so the log
    probabilities are sliced to `vocab_size` exactly as during generation. A greedy token in
    `stop_ids` before `step` tokens is an error: the response ends there.
    """
    from codit.generation.engine import IncrementalLM

    settings = DecodingSettings(mode=CODIT_MODE, alpha=alpha, beta=beta, greedy=True)
    if step < 0:
        raise ValueError(f"--step must be >= 0, got {step}")
    if not context_ids:
        raise ValueError("the context is empty")
    post = IncrementalLM(post_model, vocab_size)
    pre = IncrementalLM(pre_model, vocab_size, output_device=post.device)
    input_ids = torch.tensor([list(context_ids)], dtype=torch.long)
    attention_mask = torch.ones_like(input_ids)
    generated: list[int] = []
    with torch.inference_mode():
        lp_post = post.prefill(input_ids, attention_mask, max(step, 1))
        lp_pre = pre.prefill(input_ids, attention_mask, max(step, 1))
        for index in range(step):
            scores = contrast_scores(lp_post, lp_pre, alpha, beta)
            token = int(select_next_tokens(scores, settings)[0])
            if token in stop_ids:
                raise ValueError(
                    f"greedy CoDIT decoding stops (EOS id {token}) after {index} token(s); "
                    f"--step must be <= {index} for this instruction"
                )
            generated.append(token)
            fed = torch.tensor([[token]], dtype=torch.long)
            lp_post, lp_pre = post.feed(fed), pre.feed(fed)
    lp_post, lp_pre = lp_post.float().cpu(), lp_pre.float().cpu()
    head = plausibility_mask(lp_post, alpha)
    scores = contrast_scores(lp_post, lp_pre, alpha, beta, head=head)
    check_scores_are_sampleable(scores)
    return Explanation(
        context_ids=[*context_ids, *generated],
        prompt_length=len(context_ids) - prefix_length if prompt_length is None else prompt_length,
        prefix_length=prefix_length,
        generated_ids=generated,
        alpha=alpha,
        beta=beta,
        logprobs_post=lp_post[0],
        logprobs_pre=lp_pre[0],
        head=head[0],
        scores=scores[0],
        codit_probs=scores[0].double().softmax(dim=-1).float(),
    )


def panel_ids(explanation: Explanation, top_k: int) -> dict[str, list[int]]:
    """The tokens of each panel, best first: post and pre by probability, CoDIT by score
    among the members of V_head (at most `top_k` each)."""
    head_ids = [t for t in _descending(explanation.scores) if bool(explanation.head[t])]
    return {
        "post": _descending(explanation.logprobs_post)[:top_k],
        "pre": _descending(explanation.logprobs_pre)[:top_k],
        "codit": head_ids[:top_k],
    }


def _number(value: float) -> float | None:
    """A float for JSON: None for -inf/inf/NaN (JSON has no such numbers)."""
    return float(value) if math.isfinite(value) else None


def token_text(tokenizer: Any, token_id: int) -> str:
    """The token decoded alone, special tokens kept (what it adds to the response text)."""
    return tokenizer.decode([token_id], skip_special_tokens=False)


def token_label(text: str, limit: int = LABEL_CHARS) -> str:
    """repr() of a token's text (whitespace visible and escaped), shortened to `limit` chars."""
    label = repr(text)
    return label if len(label) <= limit else label[: limit - 1] + "…"


def explanation_record(
    explanation: Explanation, tokenizer: Any, top_k: int, settings: dict[str, Any]
) -> dict[str, Any]:
    """Every number the figure and the table show, as one JSON-ready dict.

    `tokens` holds each token of any panel once (ordered by post rank) with p_post, p_pre, the
    score s (None outside V_head), membership of V_head and p_codit; ranks are 1-based over the
    whole vocabulary (rank_codit over V_head only).
    """
    panels = panel_ids(explanation, top_k)
    post_order = _descending(explanation.logprobs_post)
    pre_order = _descending(explanation.logprobs_pre)
    rank_post = {token: rank for rank, token in enumerate(post_order, start=1)}
    rank_pre = {token: rank for rank, token in enumerate(pre_order, start=1)}
    head_order = [t for t in _descending(explanation.scores) if bool(explanation.head[t])]
    rank_codit = {token: rank for rank, token in enumerate(head_order, start=1)}
    listed = sorted(set().union(*panels.values()), key=rank_post.__getitem__)
    tokens = []
    for token in listed:
        in_head = bool(explanation.head[token])
        tokens.append(
            {
                "id": token,
                "token": tokenizer.convert_ids_to_tokens(token),
                "text": token_text(tokenizer, token),
                "p_post": float(explanation.logprobs_post[token].exp()),
                "lp_post": _number(float(explanation.logprobs_post[token])),
                "rank_post": rank_post[token],
                "p_pre": float(explanation.logprobs_pre[token].exp()),
                "lp_pre": _number(float(explanation.logprobs_pre[token])),
                "rank_pre": rank_pre[token],
                "in_head": in_head,
                "score": _number(float(explanation.scores[token])) if in_head else None,
                "p_codit": float(explanation.codit_probs[token]),
                "rank_codit": rank_codit.get(token),
            }
        )
    p_post = explanation.logprobs_post.exp()
    context = explanation.context_ids
    prefix_end = explanation.prompt_length + explanation.prefix_length
    next_token = explanation.next_token
    generated = explanation.generated_ids
    return {
        **settings,
        "alpha": explanation.alpha,
        "beta": explanation.beta,
        "top_k": top_k,
        "temperature": 1.0,
        "vocab_size": int(explanation.logprobs_post.shape[0]),
        "context": {
            "token_ids": context,
            "prompt_tokens": explanation.prompt_length,
            "prefix_token_ids": context[explanation.prompt_length : prefix_end],
            "generated_token_ids": generated,
            "generated_text": tokenizer.decode(generated, skip_special_tokens=False),
            "tail_text": context_tail(tokenizer, context),
        },
        "head": {
            "size": int(explanation.head.sum()),
            "p_post_max": float(p_post.max()),
            "threshold": explanation.alpha * float(p_post.max()),
            "p_post_mass": float(p_post[explanation.head].sum()),
        },
        "next_token": {"id": next_token, "text": token_text(tokenizer, next_token)},
        "panels": panels,
        "tokens": tokens,
    }


def context_tail(tokenizer: Any, context_ids: Sequence[int], count: int = TITLE_TAIL_TOKENS) -> str:
    """The text of the context's last `count` tokens, "…" in front when the context is longer."""
    text = tokenizer.decode(list(context_ids[-count:]), skip_special_tokens=False)
    return ("…" if len(context_ids) > count else "") + text


# --------------------------------------------------------------------------------------------
# Table and figure


def format_table(record: dict[str, Any]) -> str:
    """The three panels as side-by-side text columns; `*` marks members of V_head."""
    by_id = {token["id"]: token for token in record["tokens"]}
    panels = record["panels"]
    width = LABEL_CHARS

    def column(name: str, field: str) -> list[str]:
        cells = []
        for token_id in panels[name]:
            token = by_id[token_id]
            mark = "*" if token["in_head"] else " "
            cell = f"{token_label(token['text'], width):<{width}} {token[field]:8.4f}{mark}"
            if name == "codit":
                cell += f" {token['score']:8.3f}"
            cells.append(cell)
        return cells

    columns = [column("post", "p_post"), column("pre", "p_pre"), column("codit", "p_codit")]
    widths = [width + 10, width + 10, width + 19]
    head = record["head"]
    lines = [
        f"context: {record['context']['tail_text']!r}",
        f"alpha={record['alpha']:g} beta={record['beta']:g}  |V_head|={head['size']} "
        f"(p_post >= {head['threshold']:.4g}, {head['p_post_mass']:.1%} of the post mass)  "
        f"greedy CoDIT next token: {record['next_token']['text']!r} "
        f"(id {record['next_token']['id']})",
        "",
        f"{'rank':>4}  {'post':<{width}} {'p_post':>8}   {'pre':<{width}} {'p_pre':>8}   "
        f"{'CoDIT':<{width}} {'p_codit':>8}  {'s':>8}",
    ]
    for row in range(max(map(len, columns))):
        cells = [
            (cells[row] if row < len(cells) else "").ljust(size)
            for cells, size in zip(columns, widths, strict=True)
        ]
        lines.append(f"{row + 1:>4}  " + "  ".join(cells).rstrip())
    lines += ["", "* member of V_head; s = lp_post - beta * lp_pre"]
    return "\n".join(lines)


def _plain(text: str) -> str:
    """Escape matplotlib's mathtext marker so token text is drawn literally."""
    return text.replace("$", r"\$")


def _bar_panel(
    ax: Any,
    tokens: list[dict[str, Any]],
    field: str,
    colours: list[str],
    title: str,
    pick: int,
    notes: list[str] | None = None,
) -> None:
    """Horizontal bars of `field`, best on top, values (and `notes`) at the bar ends; `pick`
    (the greedy CoDIT token) has a bold label."""
    labels = [_plain(token_label(token["text"])) for token in tokens]
    values = [token[field] for token in tokens]
    positions = list(range(len(tokens)))
    ax.barh(positions, values, color=colours)
    ax.set_yticks(positions, labels, fontfamily="monospace", fontsize=8)
    for label, token in zip(ax.get_yticklabels(), tokens, strict=True):
        if token["id"] == pick:
            label.set_fontweight("bold")
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    top = max(values, default=0.0)
    ax.set_xlim(0, max(top * (1.5 if notes else 1.25), 1e-6))
    for position, value in enumerate(values):
        note = f"  {notes[position]}" if notes else ""
        ax.text(value, position, f" {value:.3f}{note}", va="center", fontsize=7)


def render_figure(record: dict[str, Any], path: str | Path) -> None:
    """Three horizontal bar panels (post, pre, CoDIT), written atomically as a PNG.

    Post: p_post of its top tokens, members of V_head coloured, the threshold alpha * max p_post
    dashed. Pre: p_pre of its top tokens. CoDIT: the members of V_head with the highest s, bar =
    softmax(s) at temperature 1, s written at the bar's end. The greedy CoDIT token is bold.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    by_id = {token["id"]: token for token in record["tokens"]}
    panels = {name: [by_id[t] for t in ids] for name, ids in record["panels"].items()}
    rows = max(len(tokens) for tokens in panels.values())
    figure = Figure(figsize=(15, 1.8 + 0.32 * rows), layout="constrained")
    post_ax, pre_ax, codit_ax = figure.subplots(1, 3)
    head = record["head"]
    pick = record["next_token"]["id"]

    post_colours = [HEAD_COLOUR if t["in_head"] else OUTSIDE_COLOUR for t in panels["post"]]
    _bar_panel(post_ax, panels["post"], "p_post", post_colours, "post model: p_post", pick)
    post_ax.axvline(head["threshold"], color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.2)
    post_ax.legend(
        handles=[
            Patch(color=HEAD_COLOUR, label=f"in V_head ({head['size']} tokens)"),
            Patch(color=OUTSIDE_COLOUR, label="outside V_head"),
            Line2D(
                [],
                [],
                color=THRESHOLD_COLOUR,
                linestyle="--",
                label=f"α·max p_post = {head['threshold']:.3g}",
            ),
        ],
        loc="lower right",
        fontsize=7,
    )
    post_ax.set_xlabel("probability")

    pre_colours = [PRE_COLOUR] * len(panels["pre"])
    _bar_panel(pre_ax, panels["pre"], "p_pre", pre_colours, "pre model: p_pre", pick)
    pre_ax.set_xlabel("probability")

    _bar_panel(
        codit_ax,
        panels["codit"],
        "p_codit",
        [CODIT_COLOUR] * len(panels["codit"]),
        f"CoDIT: V_head ranked by s = lp_post − {record['beta']:g}·lp_pre",
        pick,
        notes=[f"s={token['score']:.2f}" for token in panels["codit"]],
    )
    codit_ax.set_xlabel("softmax(s) over V_head (temperature 1)")

    context = record["context"]
    where = f"step {len(context['generated_token_ids'])}"
    if context["prefix_token_ids"]:
        where += f" after a {len(context['prefix_token_ids'])}-token prefix"
    figure.suptitle(
        _plain(
            f"next token after {context['tail_text']!r}\n"
            f"{Path(str(record['post'])).name} vs {Path(str(record['pre'])).name} · "
            f"α={record['alpha']:g}, β={record['beta']:g} · {where} · "
            f"greedy CoDIT picks {record['next_token']['text']!r}"
        ),
        fontsize=10,
    )
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)


# --------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--post", required=True, help="post-trained (instruct) model: dir or id")
    parser.add_argument("--pre", required=True, help="pre-trained (base) model: dir or id")
    parser.add_argument("--instruction", required=True, help="the user turn to answer")
    parser.add_argument(
        "--prefix",
        default="",
        help="assistant-response text after the prompt (tokenized without special tokens)",
    )
    parser.add_argument(
        "--step",
        type=int,
        default=0,
        help="greedy-decode this many CoDIT tokens first, then explain the next one",
    )
    parser.add_argument("--alpha", type=float, default=0.01, help="plausibility threshold")
    parser.add_argument("--beta", type=float, default=1.0, help="weight of the pre model")
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help="tokens per panel")
    parser.add_argument(
        "--chat-template-kwargs",
        default="{}",
        help="JSON object, e.g. '{\"enable_thinking\": false}'",
    )
    parser.add_argument("--out", help="figure to write (PNG)")
    parser.add_argument("--json", help="numbers to write (JSON)")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="run the post model's repository code"
    )
    parser.add_argument(
        "--trust-remote-code-pre", action="store_true", help="run the pre model's repository code"
    )
    add_runtime_arguments(parser)


def run(args: argparse.Namespace) -> None:
    from codit.generation.generate import context_limit, render_prompts, stop_token_ids
    from codit.generation.loading import load_model, load_tokenizer
    from codit.generation.settings import parse_chat_template_kwargs

    # Every option is checked before a model loads; errors name the option.
    DecodingSettings(mode=CODIT_MODE, alpha=args.alpha, beta=args.beta, greedy=True)
    if not args.instruction.strip():
        raise ValueError("--instruction must be a non-empty string")
    if args.step < 0:
        raise ValueError(f"--step must be >= 0, got {args.step}")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    if args.threads is not None and args.threads < 1:
        raise ValueError("--threads must be >= 1")
    chat_template_kwargs = parse_chat_template_kwargs(args.chat_template_kwargs)
    resolve_dtype(args.dtype, "cpu")
    set_threads(args.threads)
    device = torch.device(resolve_device(args.device))
    dtype = torch_dtype(resolve_dtype(args.dtype, device.type))

    tokenizer = load_tokenizer(args.post, args.trust_remote_code)
    pre_tokenizer = load_tokenizer(args.pre, args.trust_remote_code_pre)
    vocab_size = check_shared_vocabulary(tokenizer, pre_tokenizer, args.post, args.pre)
    (prompt,) = render_prompts(
        tokenizer, [args.instruction], chat_template_kwargs, model_name=f"post model {args.post}"
    )
    prefix = tokenizer(args.prefix, add_special_tokens=False)["input_ids"] if args.prefix else []
    post_model = load_model(args.post, device, dtype, args.trust_remote_code)
    pre_model = load_model(args.pre, device, dtype, args.trust_remote_code_pre)
    limits = [context_limit(post_model, tokenizer), context_limit(pre_model, pre_tokenizer)]
    limit = min((tokens for tokens in limits if tokens is not None), default=None)
    needed = len(prompt) + len(prefix) + args.step
    if limit is not None and needed > limit:
        raise ValueError(
            f"prompt ({len(prompt)}) + prefix ({len(prefix)}) + --step ({args.step}) = {needed} "
            f"tokens exceeds the models' {limit}-token context"
        )
    explanation = explain_position(
        post_model,
        pre_model,
        prompt + prefix,
        vocab_size,
        args.alpha,
        args.beta,
        step=args.step,
        stop_ids=stop_token_ids(post_model, tokenizer),
        prompt_length=len(prompt),
        prefix_length=len(prefix),
    )
    settings = {
        "post": args.post,
        "pre": args.pre,
        "instruction": args.instruction,
        "prefix": args.prefix,
        "step": args.step,
        "chat_template_kwargs": chat_template_kwargs,
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(device),
    }
    record = explanation_record(explanation, tokenizer, args.top_k, settings)
    if args.json:
        write_json(args.json, record)
    if args.out:
        render_figure(record, args.out)
    print(format_table(record))
