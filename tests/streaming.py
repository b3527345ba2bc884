"""Helpers for tests that drive `endpoints.services` against the loopback upstream."""
from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

from endpoints.adapters.types import (
    ChatMessage,
    ChatRequest,
    Event,
    Finish,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    UsageReport,
)

PNG = "data:image/png;base64,iVBORw0KGgo="


def tool_loop(*, error: bool = False) -> list[ChatMessage]:
    """A tool loop's second request, provider-neutral: the assistant called two tools (one with
    text beside the calls), both results came back (the second with an image), then the user
    asked on; `error` marks the first result as a failed tool."""
    return [
        ChatMessage("user", "Weather in Oslo and Rome?"),
        ChatMessage("assistant", "Checking both.", tool_calls=[
            ToolCall("call_1", "weather", '{"city": "Oslo"}'), ToolCall("call_2", "weather", '{"city": "Rome"}'),
        ]),
        ChatMessage("tool", "Oslo: 4 °C", tool_call_id="call_1", is_error=error),
        ChatMessage("tool", [{"type": "text", "text": "Rome: 18 °C"}, {"type": "image_url", "image_url": {"url": PNG}}],
                    tool_call_id="call_2"),
        ChatMessage("user", "Which is warmer?"),
        ChatMessage("assistant", "", tool_calls=[ToolCall("call_3", "compare", "")]),
        ChatMessage("tool", "Rome", tool_call_id="call_3"),
    ]


def chat_request(model: str = "test-model", text: str = "Hello?", **fields: Any) -> ChatRequest:
    fields.setdefault("messages", [ChatMessage(role="user", content=text)])
    return ChatRequest(model=model, **fields)


async def _collect(endpoint: Any, request: ChatRequest, user: Any) -> list[Event]:
    from endpoints.services import stream_chat

    return [event async for event in stream_chat(endpoint=endpoint, request=request, user=user)]


def run_chat(endpoint: Any, user: Any = None, request: ChatRequest | None = None, **fields: Any) -> list[Event]:
    """Every event of one `stream_chat`, from a sync test (database access stays on the test's
    thread and transaction)."""
    if request is None:
        fields.setdefault("model", endpoint.models.first().name)
        request = chat_request(**fields)
    return async_to_sync(_collect)(endpoint, request, user)


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def reasoning_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, ReasoningDelta))


def tool_calls_of(events: list[Event]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            call = calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = event.id or call["id"]
            call["name"] = event.name or call["name"]
            call["arguments"] += event.arguments
    return calls


def usage_of(events: list[Event]):
    """The usage reported last (each report is the usage so far)."""
    reports = [e for e in events if isinstance(e, UsageReport)]
    return reports[-1].usage if reports else None


def final(events: list[Event]) -> Finish | StreamError:
    assert events, "no events"
    last = events[-1]
    assert isinstance(last, (Finish, StreamError))
    assert not any(isinstance(e, (Finish, StreamError)) for e in events[:-1]), "only the last event ends the answer"
    return last
