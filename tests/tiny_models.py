"""Tiny random causal LMs and a word-level chat tokenizer, built in-process for generation tests.

Nothing here touches a model hub: the tokenizer is a `tokenizers` WordLevel model wrapped in
PreTrainedTokenizerFast, and the models are randomly initialised Llama / GPT-2 configurations.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>", "<|user|>", "<|assistant|>"]
WORDS = [f"w{i}" for i in range(90)]
# Output-row scale of <eos> at which greedy continuations of the test prompts stop at different
# steps (some within 24 tokens, some not); found by trying a few values.
EOS_BIAS = {"llama": 2.0, "gpt2": 2.9}
CHAT_TEMPLATE = (
    "<bos>{% for message in messages %}<|{{ message.role }}|> {{ message.content }} <eos> "
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_vocabulary(swap: tuple[str, str] | None = None) -> dict[str, int]:
    """Token -> id map of the tiny tokenizer; `swap` exchanges the ids of two tokens."""
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + WORDS)}
    if swap is not None:
        first, second = swap
        vocab[first], vocab[second] = vocab[second], vocab[first]
    return vocab


def tiny_tokenizer(
    swap: tuple[str, str] | None = None, chat_template: str | None = CHAT_TEMPLATE
) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer with <eos>/<pad> and a one-line chat template."""
    backend = Tokenizer(WordLevel(vocab=tiny_vocabulary(swap), unk_token="<unk>"))
    backend.pre_tokenizer = WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens=["<|user|>", "<|assistant|>"],
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def tiny_model(
    architecture: str,
    seed: int,
    vocab_size: int,
    eos_bias: float = 0.0,
    special_ids: tuple[int, int, int] | None = None,
    max_positions: int = 256,
) -> PreTrainedModel:
    """A 2-layer random `llama` or `gpt2` model in fp32.

    `eos_bias` scales the output row of <eos> so that some greedy continuations stop early,
    which exercises the finished-row handling of the decoding loop. `special_ids` are the
    (bos, eos, pad) ids; by default those of this module's tokenizer. `max_positions` is the
    context (max_position_embeddings; gpt2's learned position table has that many rows).
    """
    torch.manual_seed(seed)
    bos_id, eos_id, pad_id = special_ids or (
        SPECIAL_TOKENS.index("<bos>"),
        SPECIAL_TOKENS.index("<eos>"),
        SPECIAL_TOKENS.index("<pad>"),
    )
    if architecture == "llama":
        config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=max_positions,
            bos_token_id=bos_id,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )
        model = LlamaForCausalLM(config)
    elif architecture == "gpt2":
        config = GPT2Config(
            vocab_size=vocab_size,
            n_positions=max_positions,
            n_embd=32,
            n_layer=2,
            n_head=4,
            bos_token_id=bos_id,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )
        model = GPT2LMHeadModel(config)
    else:
        raise ValueError(f"unknown tiny architecture {architecture!r}")
    if eos_bias:
        with torch.no_grad():
            model.get_output_embeddings().weight[eos_id] *= eos_bias
    return model.float().eval()


def save_tiny_pair(
    directory: Path,
    architecture: str,
    post_eos_bias: float = 0.0,
    pre_max_positions: int = 256,
) -> tuple[Path, Path]:
    """Save a post model (vocabulary = tokenizer) and a pre model with a padded vocabulary.

    The pre model's embedding matrix is padded past the tokenizer, as real checkpoints often
    are, so the generator has to slice logits to the real vocabulary. `pre_max_positions` is
    the pre model's context (the post model's is 256).
    """
    tokenizer = tiny_tokenizer()
    post_dir, pre_dir = directory / f"{architecture}-post", directory / f"{architecture}-pre"
    post = tiny_model(architecture, seed=1, vocab_size=len(tokenizer), eos_bias=post_eos_bias)
    pre = tiny_model(
        architecture, seed=2, vocab_size=len(tokenizer) + 14, max_positions=pre_max_positions
    )
    for model, path in ((post, post_dir), (pre, pre_dir)):
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    return post_dir, pre_dir
