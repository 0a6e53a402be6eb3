"""The teacher pair as one vLLM model: the post and pre stacks side by side, and CoDIT's scores
as the model's logits.

One step, for the rows vLLM asks logits of (V = the tokenizer's real vocabulary, the columns
past it are the embedding's padding):

    lp_post = log_softmax(logits_post[:, :V])          lp_pre = log_softmax(logits_pre[:, :V])
    V_head  = { v : lp_post(v) >= log(alpha) + max_w lp_post(w) }   (alpha = 0 keeps every v)
    s(v)    = lp_post(v) - beta * floor(lp_pre)(v) on V_head, -inf elsewhere and past V

`floor` replaces -inf by the row's smallest finite lp_pre, and beta = 0 leaves lp_post alone:
the same rule, line for line, as the workflow's own engine (codit.generation.decoding). vLLM's
sampler then draws from softmax(s / T) after top-p, so at T = 1 and top-p = 1 it samples exactly
CoDIT, with each request's seed; its `raw_logprobs` are log_softmax(s).

Both stacks are built from the pair directory's config (the post model's, checked equal in
shape to the pre model's by the workflow before the engine starts), under the prefixes `post`
and `pre`: vLLM gives each stack's attention layers their own KV cache, and schedules, pages and
batches the pair as it would one model. The pair directory's config adds:

    architectures: ["CoditPairForCausalLM"]
    codit_post_architecture: the post model's own architecture (e.g. "LlamaForCausalLM")
    codit_pre: the pre model's folder (its safetensors are loaded into the `pre` stack)
    codit_alpha, codit_beta: the contrast
    codit_vocab_size: V, the shared tokenizer's length
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Iterable

import torch
from torch import nn


def plausibility_mask(logprobs_post: torch.Tensor, alpha: float) -> torch.Tensor:
    """V_head: lp_post(v) >= log(alpha) + max_w lp_post(w); alpha <= 0 keeps every token."""
    if alpha <= 0.0:
        return torch.ones_like(logprobs_post, dtype=torch.bool)
    threshold = math.log(alpha) + logprobs_post.max(dim=-1, keepdim=True).values
    return logprobs_post >= threshold


def finite_floor(logprobs: torch.Tensor) -> torch.Tensor:
    """-inf entries become the row's smallest finite value; a row holding NaN or +inf, or no
    finite value, becomes NaN (the model's logits were broken: never sample around that)."""
    finite = torch.isfinite(logprobs)
    row_floor = torch.where(finite, logprobs, math.inf).min(dim=-1, keepdim=True).values
    broken = (torch.isnan(logprobs) | (logprobs == math.inf)).any(dim=-1, keepdim=True)
    row_floor = torch.where(torch.isfinite(row_floor) & ~broken, row_floor, math.nan)
    return torch.where(finite & ~broken, logprobs, row_floor.expand_as(logprobs))


def contrast_scores(
    logprobs_post: torch.Tensor, logprobs_pre: torch.Tensor | None, alpha: float, beta: float
) -> torch.Tensor:
    """s = lp_post - beta * floor(lp_pre) on V_head(alpha), -inf elsewhere; beta = 0: lp_post."""
    head = plausibility_mask(logprobs_post, alpha)
    # beta = 0 never reads lp_pre: 0 * -inf would be NaN.
    scores = logprobs_post if beta == 0.0 else logprobs_post - beta * finite_floor(logprobs_pre)
    return scores.masked_fill(~head, -math.inf)


def pair_scores(
    logits_post: torch.Tensor,
    logits_pre: torch.Tensor | None,
    alpha: float,
    beta: float,
    vocab_size: int,
) -> torch.Tensor:
    """The CoDIT scores of one step, as logits of the model's full width (-inf past V)."""
    logprobs_post = torch.log_softmax(logits_post[:, :vocab_size].float(), dim=-1)
    logprobs_pre = (
        None
        if logits_pre is None
        else torch.log_softmax(logits_pre[:, :vocab_size].float(), dim=-1)
    )
    scores = torch.full(
        (logits_post.shape[0], logits_post.shape[1]),
        -math.inf,
        dtype=torch.float32,
        device=logits_post.device,
    )
    scores[:, :vocab_size] = contrast_scores(logprobs_post, logprobs_pre, alpha, beta)
    return scores


def safetensors_files(folder: str) -> list[str]:
    """The weight files of a model folder, in name order."""
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise FileNotFoundError(f"pre model {folder} holds no *.safetensors weights")
    return files


def pre_weights(folder: str) -> Iterable[tuple[str, torch.Tensor]]:
    """(name, tensor) of every weight of the pre model's checkpoint."""
    from safetensors import safe_open

    for path in safetensors_files(folder):
        with safe_open(path, framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
                yield name, weights.get_tensor(name)


class CoditPairForCausalLM(nn.Module):
    """Two stacks of the post model's architecture (`post`, `pre`); logits are CoDIT scores."""

    def __init__(self, *, vllm_config, prefix: str = "") -> None:  # noqa: ANN001 (vLLM's type)
        super().__init__()
        from vllm.model_executor.models import ModelRegistry
        from vllm.model_executor.models.utils import maybe_prefix

        config = vllm_config.model_config.hf_config
        self.config = config
        self.alpha = float(config.codit_alpha)
        self.beta = float(config.codit_beta)
        self.vocab_size = int(config.codit_vocab_size)
        self.pre_folder = str(config.codit_pre)
        stack_class, _ = ModelRegistry.resolve_model_cls(
            [config.codit_post_architecture], vllm_config.model_config
        )
        self.post = stack_class(vllm_config=vllm_config, prefix=maybe_prefix(prefix, "post"))
        self.pre = stack_class(vllm_config=vllm_config, prefix=maybe_prefix(prefix, "pre"))

    def set_contrast(self, alpha: float, beta: float) -> None:
        """Change (alpha, beta) of a running engine: the stacks and their caches stay."""
        self.alpha, self.beta = float(alpha), float(beta)

    def embed_input_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Each stack embeds the ids itself in forward; a pair takes no ready embeddings.
        raise NotImplementedError("a CoDIT pair takes token ids, not input embeddings")

    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors=None,  # noqa: ANN001 (pipeline parallelism is not supported)
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Both stacks' last hidden states, side by side: (tokens, 2 x hidden)."""
        hidden_post = self.post(input_ids, positions)
        hidden_pre = self.pre(input_ids, positions)
        return torch.cat([hidden_post, hidden_pre], dim=-1)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        hidden_post, hidden_pre = hidden_states.chunk(2, dim=-1)
        # Both before any return: with tensor parallelism each is a collective of all ranks.
        logits_post = self.post.compute_logits(hidden_post)
        logits_pre = None if self.beta == 0.0 else self.pre.compute_logits(hidden_pre)
        if logits_post is None:  # a rank that does not receive the gathered logits
            return None
        return pair_scores(logits_post, logits_pre, self.alpha, self.beta, self.vocab_size)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """The checkpoint vLLM reads (the pair folder's, i.e. the post model's) into `post`;
        the pre model's folder into `pre`. Returns every loaded name with its stack's prefix."""
        loaded = {f"post.{name}" for name in self.post.load_weights(weights)}
        loaded |= {f"pre.{name}" for name in self.pre.load_weights(pre_weights(self.pre_folder))}
        return loaded
