"""Special tokens and the chat format shared by the corpus, the tokenizer and the models."""

from __future__ import annotations

DOC_SEPARATOR = "<|endoftext|>"
PAD = "<|pad|>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
END_OF_TURN = "<|end|>"
SPECIAL_TOKENS = [PAD, DOC_SEPARATOR, USER, ASSISTANT, END_OF_TURN]

# Single user turn (plus assistant turns for training text); a system message is rejected so
# callers notice instead of silently losing it (lm-eval retries without the system role).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "<|user|>\n{{ message['content'] }}<|end|>\n"
    "{% elif message['role'] == 'assistant' %}"
    "<|assistant|>\n{{ message['content'] }}<|end|>\n"
    "{% else %}"
    "{{ raise_exception('tinyworld chat template supports only user and assistant roles') }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# The trained judge's (codit.tinyworld.judge_model): the benchmarks send their judges a system
# message (MT-Bench's, AlpacaEval's), which it reads as a user turn before the prompt.
JUDGE_CHAT_TEMPLATE = CHAT_TEMPLATE.replace(
    "message['role'] == 'user'", "message['role'] in ('system', 'user')"
)


def render_prompt(user: str) -> str:
    """The text the template produces for one user turn with add_generation_prompt=True."""
    return f"{USER}\n{user}{END_OF_TURN}\n{ASSISTANT}\n"


def render_exchange(user: str, assistant: str) -> str:
    """A full single-turn exchange, as it appears in chat-formatted pre-training documents."""
    return f"{render_prompt(user)}{assistant}{END_OF_TURN}\n"
