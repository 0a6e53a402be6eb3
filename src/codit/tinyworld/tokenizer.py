"""A byte-level BPE tokenizer trained on the pre-training corpus, saved for AutoTokenizer."""

from __future__ import annotations

import os
from pathlib import Path

from codit.tinyworld.chatformat import (
    CHAT_TEMPLATE,
    DOC_SEPARATOR,
    END_OF_TURN,
    PAD,
    SPECIAL_TOKENS,
)

VOCAB_SIZE = 1536


def train_tokenizer(texts: list[str], out_dir: str | os.PathLike, vocab_size: int = VOCAB_SIZE):
    """Train BPE on `texts` and save a PreTrainedTokenizerFast with the chat template.

    End of turn is the tokenizer's eos, so lm-eval and `generate` stop at the end of a reply.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Special tokens are cut out before training so they never merge with text.
    plain = [_strip_specials(text) for text in texts]
    bpe.train_from_iterator(plain, trainer=trainer, length=len(plain))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=DOC_SEPARATOR,
        eos_token=END_OF_TURN,
        pad_token=PAD,
        unk_token=None,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in {PAD, DOC_SEPARATOR}],
        model_max_length=512,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def _strip_specials(text: str) -> str:
    for token in SPECIAL_TOKENS:
        text = text.replace(token, " ")
    return text
