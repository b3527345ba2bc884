"""Anthropic Messages, as the gateway reads and writes it (`POST /v1/messages`).

Requests are turned into the provider-neutral form (OpenAI-style content parts and function
tools, which every adapter converts to its own protocol), answers back into Messages blocks."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from chat.errors import InvalidRequest
from chat.gateway.answer import Answer, anthropic_usage
from chat.gateway.turn import GatewayAsk
from endpoints.adapters.anthropic import tool_input
from endpoints.adapters.types import ChatMessage, TextDelta, ToolCall, ToolCallDelta

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
SAMPLING = {"temperature", "top_p", "top_k"}
IGNORED = {"model", "messages", "system", "stream", "tools", "tool_choice", "metadata", "max_tokens", "stop_sequences"}


def _block(block: Any, where: str) -> dict[str, Any]:
    if not isinstance(block, dict):
        raise InvalidRequest(f"{where} must be a content block object.")
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": str(block.get("text") or "")}
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        else:
            url = str(source.get("url") or "")
        return {"type": "image_url", "image_url": {"url": url}}
    raise InvalidRequest(f"{where}: content blocks of type '{kind}' are not supported by this gateway yet.")


def _id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{where} is required (a non-empty string).")
    return value


def _chat_message(role: str, parts: list[dict[str, Any]], calls: list[ToolCall] | None = None) -> ChatMessage:
    text_only = all(p["type"] == "text" for p in parts)
    content = "".join(p["text"] for p in parts) if text_only else parts
    return ChatMessage(role=role, content=content, tool_calls=calls or [])


def _tool_use(block: dict[str, Any], where: str) -> ToolCall:
    if not isinstance(block.get("input", {}), dict):
        raise InvalidRequest(f"{where}.input must be an object.")
    return ToolCall(id=_id(block.get("id"), f"{where}.id"), name=_id(block.get("name"), f"{where}.name"),
                    arguments=json.dumps(block.get("input") or {}))


def _tool_result(block: dict[str, Any], where: str) -> ChatMessage:
    content = block.get("content")
    if content is None or isinstance(content, str):
        parts: str | list[dict[str, Any]] = content or ""
    elif isinstance(content, list):
        parts = [_block(b, f"{where}.content[{i}]") for i, b in enumerate(content)]
        if len(parts) == 1 and parts[0]["type"] == "text":
            parts = parts[0]["text"]
    else:
        raise InvalidRequest(f"{where}.content must be a string or a list of text and image blocks.")
    return ChatMessage(role="tool", content=parts, tool_call_id=_id(block.get("tool_use_id"), f"{where}.tool_use_id"),
                       is_error=bool(block.get("is_error")))


def _messages(message: Any, position: int) -> list[ChatMessage]:
    """One Messages turn as neutral messages: a user turn's `tool_result` blocks each become a tool
    message (other blocks a user message in their place), an assistant turn's `tool_use` blocks
    its tool calls."""
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise InvalidRequest(f"messages[{position}] must be an object with role user or assistant.")
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return [ChatMessage(role=role, content=content)]
    if not isinstance(content, list):
        raise InvalidRequest(f"messages[{position}].content must be a string or a list of blocks.")
    read: list[ChatMessage] = []
    parts: list[dict[str, Any]] = []
    calls: list[ToolCall] = []
    for i, block in enumerate(content):
        where = f"messages[{position}].content[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in ("tool_use", "tool_result") and kind != ("tool_use" if role == "assistant" else "tool_result"):
            turn = "an assistant" if kind == "tool_use" else "a user"
            raise InvalidRequest(f"{where}: a {kind} block belongs in {turn} turn.")
        if kind == "tool_use":
            calls.append(_tool_use(block, where))
        elif kind == "tool_result":
            if parts:
                read.append(_chat_message(role, parts))
                parts = []
            read.append(_tool_result(block, where))
        else:
            parts.append(_block(block, where))
    if parts or calls or not read:
        read.append(_chat_message(role, parts, calls))
    return read


def _system(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if isinstance(system, list):
        return "\n\n".join(str(b.get("text") or "") for b in system if isinstance(b, dict) and b.get("type") == "text")
    raise InvalidRequest("system must be a string or a list of text blocks.")


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) and t.get("name") for t in tools):
        raise InvalidRequest("tools must be a list of {name, description, input_schema}.")
    return [
        {"type": "function", "function": {
            "name": t["name"], "description": t.get("description", ""),
            "parameters": t.get("input_schema") or {"type": "object", "properties": {}},
        }}
        for t in tools
    ]


def _tool_choice(choice: Any) -> Any:
    """Anthropic's tool_choice in OpenAI's words (the neutral form; see turn.native_tool_choice)."""
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))


def parse(body: dict[str, Any]) -> tuple[GatewayAsk, bool]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be a list.")
    params: dict[str, Any] = {}
    passthrough: dict[str, Any] = {}
    if isinstance(body.get("max_tokens"), int):
        params["max_tokens"] = body["max_tokens"]
    if body.get("stop_sequences"):
        params["stop"] = list(body["stop_sequences"])
    for key, value in body.items():
        if key in IGNORED or value is None:
            continue
        (params if key in SAMPLING else passthrough)[key] = value
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None:
        passthrough["tool_choice"] = choice
    ask = GatewayAsk(
        model=str(body.get("model") or ""),
        messages=[read for i, m in enumerate(messages) for read in _messages(m, i)],
        system=_system(body.get("system")),
        params=params,
        passthrough=passthrough,
        tools=_tools(body.get("tools")),
    )
    return ask, bool(body.get("stream"))


def whole(answer: Answer, *, rid: str, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if answer.text:
        content.append({"type": "text", "text": "".join(answer.text)})
    content += [{"type": "tool_use", "id": c["id"], "name": c["name"], "input": tool_input(c["arguments"])}
                for c in answer.calls()]
    return {
        "id": f"msg_{rid}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(answer.finish, "end_turn"),
        "stop_sequence": None,
        "usage": anthropic_usage(answer.usage),
    }


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **payload}, separators=(',', ':'))}\n\n".encode()


class _Blocks:
    """Content blocks opened and closed as the answer switches between text and tool calls."""

    def __init__(self) -> None:
        self.index = -1
        self.open: tuple[str, int] | None = None  # ("text", 0) or ("tool", tool call index)

    def switch(self, to: tuple[str, int], start: dict[str, Any]) -> list[bytes]:
        if self.open == to:
            return []
        out = self.close()
        self.index += 1
        self.open = to
        out.append(_event("content_block_start", {"index": self.index, "content_block": start}))
        return out

    def close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [_event("content_block_stop", {"index": self.index})]


async def stream(events: AsyncIterator[Any], answer: Answer, *, rid: str, model: str, prompt_tokens: int,
                 cost: Any) -> AsyncIterator[bytes]:
    """Messages SSE events; message_start's input_tokens is Atrium's count, message_delta's usage
    the upstream's (the SDKs take the later one)."""
    start: dict[str, Any] = {
        "id": f"msg_{rid}", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": prompt_tokens, "output_tokens": 0},
    }
    yield _event("message_start", {"message": start})
    blocks = _Blocks()
    async for event in events:
        answer.add(event)
        if isinstance(event, TextDelta):
            for out in blocks.switch(("text", 0), {"type": "text", "text": ""}):
                yield out
            delta = {"type": "text_delta", "text": event.text}
            yield _event("content_block_delta", {"index": blocks.index, "delta": delta})
        elif isinstance(event, ToolCallDelta):
            head = {"type": "tool_use", "id": event.id or "", "name": event.name or "", "input": {}}
            for out in blocks.switch(("tool", event.index), head):
                yield out
            if event.arguments:
                delta = {"type": "input_json_delta", "partial_json": event.arguments}
                yield _event("content_block_delta", {"index": blocks.index, "delta": delta})
    for out in blocks.close():
        yield out
    if answer.error is not None and answer.done is not None and answer.done.unfinished:
        yield _event("error", {"error": {"type": "api_error", "message": answer.error.message}})
        return
    usage = {**anthropic_usage(answer.usage), "cost_credits": str(cost())}
    stop = STOP_REASONS.get(answer.finish, "end_turn")
    yield _event("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage})
    yield _event("message_stop", {})
