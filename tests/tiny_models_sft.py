"""Tiny random models and tokenizers saved to disk, for SFT and evaluation tests (no Hub access)."""

from __future__ import annotations

import json
from pathlib import Path

_WORD_TEXT = """the a cat dog sat on mat yes no answer question write one two three word words in
upper lower case say hello world please end with reply short long list item first second is what
color sky blue red green ok done"""
WORDS = _WORD_TEXT.split()
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
END_OF_TURN = "<|end|>"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|> {{ message['content'] }} <|end|> "
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def build_tokenizer(with_chat_template: bool = True, with_chat_tokens: bool = True):
    """A word-level tokenizer over WORDS; eos is </s>, distinct from the end-of-turn token.

    Without chat tokens it mimics a base model that lacks the teacher's template tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = SPECIALS if with_chat_tokens else SPECIALS[:4]
    vocab = {token: index for index, token in enumerate(specials + list(WORDS))}
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
        tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[4:]})
    if with_chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_tiny_model(
    directory: Path,
    architecture: str,
    with_chat_template: bool = True,
    with_chat_tokens: bool = True,
    seed: int = 0,
) -> Path:
    """A random tiny `llama` or `gpt2` model saved with this module's tokenizer."""
    from tiny_models import tiny_model

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
    return {
        "id": f"r{index}",
        "prompt": [{"role": "user", "content": prompt}],
        "completion": [{"role": "assistant", "content": answer}],
        "pair": "tiny",
        "arm": "direct",
        "alpha": None,
        "beta": None,
        "seed": 123,
        "num_tokens": len(answer.split()),
        "finish_reason": finish_reason,
    }


def write_dataset(path: Path, count: int, truncated: int = 0) -> Path:
    """`count` records, the last `truncated` of which hit the length limit."""
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(count):
            reason = "length" if index >= count - truncated else "stop"
            handle.write(json.dumps(record(index, reason)) + "\n")
    return path
