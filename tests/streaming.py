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
    ToolCallDelta,
    UsageReport,
)


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
