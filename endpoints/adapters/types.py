"""The normalised request, events and usage every wire-protocol adapter speaks.

The chat turn, the gateway and billing only ever see these types; each adapter module turns them
into one provider's wire format and back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Usage:
    """Token usage of one upstream call, normalised to DISJOINT counts.

    `input_tokens` are uncached prompt tokens; `cache_read_tokens` and `cache_write_tokens` are the
    other prompt tokens; `output_tokens` include `reasoning_tokens` (informational subset).
    Build it with `from_openai` / `from_anthropic`, which know each provider's convention.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(
        cls, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, reasoning_tokens: int = 0
    ) -> Usage:
        """OpenAI (Chat Completions and Responses): `cached_tokens` is a SUBSET of `prompt_tokens`."""
        cached = min(max(cached_tokens or 0, 0), prompt_tokens or 0)
        return cls(
            input_tokens=(prompt_tokens or 0) - cached,
            output_tokens=completion_tokens or 0,
            cache_read_tokens=cached,
            reasoning_tokens=reasoning_tokens or 0,
        )

    @classmethod
    def from_anthropic(
        cls,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_input_tokens: int = 0,
        cache_creation_input_tokens: int = 0,
    ) -> Usage:
        """Anthropic: input, cache read and cache creation counts are already disjoint."""
        return cls(
            input_tokens=input_tokens or 0,
            output_tokens=output_tokens or 0,
            cache_read_tokens=cache_read_input_tokens or 0,
            cache_write_tokens=cache_creation_input_tokens or 0,
        )

    @property
    def prompt_total(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass(frozen=True)
class ToolCall:
    """A function call an assistant message made, as the caller sends it back in a tool loop."""

    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it (each adapter parses it if its protocol wants an object)


@dataclass
class ChatMessage:
    """One message of a request, provider-neutral.

    Content is text or OpenAI-style parts (`{"type": "text"}`, `{"type": "image_url"}`). An
    assistant message may carry `tool_calls` beside its text; a tool's result is a message of role
    "tool" naming the call it answers (`tool_call_id`), its content the result (text or parts),
    `is_error` when the tool failed (Anthropic says so; OpenAI's protocols have no such flag).
    """

    role: str  # "user" | "assistant" | "system" | "tool"
    content: str | list[dict[str, Any]]
    tool_calls: list[ToolCall] = field(default_factory=list)  # role "assistant" only
    tool_call_id: str = ""  # role "tool" only
    is_error: bool = False  # role "tool" only


@dataclass
class ChatRequest:
    """What the chat turn asks an adapter for; provider-neutral."""

    model: str
    messages: list[ChatMessage]
    system: str = ""
    # temperature, top_p, max_tokens, stop, reasoning_effort, … (dropParams/addParams apply on top)
    params: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None
    stream: bool = True
    # ids for {{LIBRECHAT_BODY_*}} header placeholders
    conversation_id: str = ""
    parent_message_id: str = ""
    message_id: str = ""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""  # a JSON fragment


@dataclass(frozen=True)
class UsageReport:
    """The usage reported so far; a later report replaces an earlier one."""

    usage: Usage


@dataclass(frozen=True)
class Finish:
    reason: str  # "stop" | "length" | "tool_calls" | "content_filter" | provider's own


@dataclass(frozen=True)
class StreamError:
    """A failure the user sees as a clear message; text and usage received before it still count."""

    message: str
    status: int | None = None
    retry_after: float | None = None
    kind: str = "upstream"  # auth | not_found | rate_limit | server | connect | timeout | cut | protocol | config


Event = TextDelta | ReasoningDelta | ToolCallDelta | UsageReport | Finish | StreamError


# --- the adapter interface ------------------------------------------------------------------------
# One subclass per wire protocol (openai_chat.py, azure_openai.py, anthropic.py, openai_responses.py), registered in
# `endpoints.adapters.ADAPTERS`. `endpoints.shaping` builds a `Call` with the adapter's help; the
# adapter sends it and turns the answer into events (`endpoints.adapters.base.Adapter.run`).

@dataclass
class Call:
    """One fully shaped upstream request: everything resolved, nothing left to look up."""

    endpoint_name: str
    model: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    stream: bool = True
    reasoning_key: str | None = None  # Chat Completions: delta key with reasoning text (None: either)
    outbound_check: bool = False  # the URL is user-provided: its addresses are vetted when a connection opens
    secrets: tuple[str, ...] = ()  # values scrubbed from any message built from the provider's answer
    credential: str = field(default="", repr=False)  # the resolved key, for an adapter's `sign`
