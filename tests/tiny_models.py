"""Tiny random causal LMs and word-level chat tokenizers, built in-process or saved to disk for
the tests (no Hub access).

Two vocabularies: the generation tests' (`w0`..`w89`, `tiny_tokenizer`, `save_tiny_pair`) and
the SFT and evaluation tests' (English words with a `<|end|>` turn token, `save_tiny_llama`,
`save_tiny_gpt2`, and `write_dataset` for a generated dataset in the format `codit generate`
writes). The tokenizers are `tokenizers` WordLevel models wrapped in PreTrainedTokenizerFast;
the models are randomly initialised Llama / GPT-2 configurations.
"""

from __future__ import annotations

import json
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

from codit.data.datasets import dataset_record

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


# ---- the SFT and evaluation tests' models and datasets

_WORD_TEXT = """the a cat dog sat on mat yes no answer question write one two three word words in
upper lower case say hello world please end with reply short long list item first second is what
color sky blue red green ok done"""
SFT_WORDS = _WORD_TEXT.split()
SFT_SPECIALS = [
    "<pad>",
    "<unk>",
    "<s>",
    "</s>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
]
END_OF_TURN = "<|end|>"

SFT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|> {{ message['content'] }} <|end|> "
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def build_tokenizer(with_chat_template: bool = True, with_chat_tokens: bool = True):
    """A word-level tokenizer over SFT_WORDS; eos is </s>, distinct from the end-of-turn token.

    Without chat tokens it mimics a base model that lacks the teacher's template tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = SFT_SPECIALS if with_chat_tokens else SFT_SPECIALS[:4]
    vocab = {token: index for index, token in enumerate(specials + list(SFT_WORDS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    if with_chat_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": SFT_SPECIALS[4:]})
    if with_chat_template:
        tokenizer.chat_template = SFT_CHAT_TEMPLATE
    return tokenizer


def save_tiny_model(
    directory: Path,
    architecture: str,
    with_chat_template: bool = True,
    with_chat_tokens: bool = True,
    seed: int = 0,
) -> Path:
    """A random tiny `llama` or `gpt2` model saved with the SFT tokenizer."""
    tokenizer = build_tokenizer(with_chat_template, with_chat_tokens)
    special_ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    model = tiny_model(architecture, seed, len(tokenizer), special_ids=special_ids)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_llama(
    directory: Path, with_chat_template: bool = True, with_chat_tokens: bool = True, seed: int = 0
) -> Path:
    return save_tiny_model(directory, "llama", with_chat_template, with_chat_tokens, seed)


def save_tiny_gpt2(directory: Path, with_chat_template: bool = True, seed: int = 0) -> Path:
    return save_tiny_model(directory, "gpt2", with_chat_template, seed=seed)


def record(index: int, finish_reason: str = "stop") -> dict:
    """One generated-dataset record in the format `codit generate` writes."""
    prompt = ["say hello world", "what color is the sky", "write one word in upper case"][index % 3]
    answer = ["hello world", "the sky is blue", "OK done"][index % 3].lower()
    return dataset_record(
        f"r{index}",
        prompt,
        answer,
        pair="tiny",
        arm="direct",
        alpha=None,
        beta=None,
        seed=123,
        num_tokens=len(answer.split()),
        finish_reason=finish_reason,
    )


def write_dataset(path: Path, count: int, truncated: int = 0) -> Path:
    """`count` records, the last `truncated` of which hit the length limit."""
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(count):
            reason = "length" if index >= count - truncated else "stop"
            handle.write(json.dumps(record(index, reason)) + "\n")
    return path
