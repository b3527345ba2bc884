"""OpenAI Chat Completions, as the gateway reads and writes it (`POST /v1/chat/completions`)."""
from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from chat.errors import InvalidRequest
from chat.gateway.answer import Answer, openai_usage
from chat.gateway.turn import GatewayAsk
from chat.policy import USER_PARAMS
from endpoints.adapters.types import ChatMessage, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta
from endpoints.config import PORTAL_CONTROLLED_PARAMS

# What the gateway sets from the request itself; every other portal-controlled field is refused.
READ_HERE = {"model", "messages", "stream", "stream_options", "tools", "tool_choice"}
REFUSED = PORTAL_CONTROLLED_PARAMS - READ_HERE
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


def _content(message: dict[str, Any], position: int) -> str | list[dict[str, Any]]:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
        raise InvalidRequest(f"messages[{position}].content must be a string or a list of content parts.")
    return content


def _id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{where} is required (a non-empty string).")
    return value


def _tool_calls(calls: Any, position: int) -> list[ToolCall]:
    """An assistant message's `tool_calls`, each `{id, type: function, function: {name, arguments}}`."""
    where = f"messages[{position}].tool_calls"
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where} must be a list.")
    read = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            raise InvalidRequest(f"{where}[{i}] must be an object with a function.")
        if call.get("type", "function") != "function":
            raise InvalidRequest(f"{where}[{i}].type must be 'function'.")
        function = call["function"]
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            raise InvalidRequest(f"{where}[{i}].function.arguments must be a string (JSON text).")
        read.append(ToolCall(
            id=_id(call.get("id"), f"{where}[{i}].id"), name=_id(function.get("name"), f"{where}[{i}].function.name"),
            arguments=arguments or "",
        ))
    return read


def _message(message: Any, position: int) -> ChatMessage:
    if not isinstance(message, dict):
        raise InvalidRequest(f"messages[{position}] must be an object.")
    role = message.get("role")
    if role not in ROLES:
        raise InvalidRequest(f"messages[{position}].role must be one of system, developer, user, assistant, tool.")
    content = _content(message, position)
    if role == "tool":
        return ChatMessage(role="tool", content=content,
                           tool_call_id=_id(message.get("tool_call_id"), f"messages[{position}].tool_call_id"))
    if message.get("tool_calls") is not None and role != "assistant":
        raise InvalidRequest(f"messages[{position}]: only an assistant message may carry tool_calls.")
    calls = _tool_calls(message["tool_calls"], position) if message.get("tool_calls") is not None else []
    return ChatMessage(role=ROLES[role], content=content, tool_calls=calls)


def parse(body: dict[str, Any]) -> tuple[GatewayAsk, bool, bool]:
    """The request as a GatewayAsk, whether to stream, and whether the stream ends with usage."""
    refused = sorted(key for key in body if key in REFUSED)
    if refused:
        raise InvalidRequest(f"{', '.join(refused)}: set by Atrium, not by the caller; remove it from the request.")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be a list.")
    chat = [_message(m, i) for i, m in enumerate(messages)]
    params: dict[str, Any] = {}
    passthrough: dict[str, Any] = {}
    for key, value in body.items():
        if key in READ_HERE or value is None:
            continue
        if key == "max_completion_tokens":
            params["max_tokens"] = value
        elif key in USER_PARAMS:
            params[key] = value
        else:
            passthrough[key] = value  # tool_choice, response_format, …: as the upstream takes them
    if "tool_choice" in body:
        passthrough["tool_choice"] = body["tool_choice"]
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("tools must be a list.")
    options = body.get("stream_options")
    options = options if isinstance(options, dict) else {}
    ask = GatewayAsk(
        model=str(body.get("model") or ""), messages=chat, params=params, passthrough=passthrough, tools=tools,
    )
    return ask, bool(body.get("stream")), bool(options.get("include_usage"))


def _tool_call(call: dict[str, str]) -> dict[str, Any]:
    return {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}


def whole(answer: Answer, *, rid: str, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(answer.text) or None}
    if answer.reasoning:
        message["reasoning_content"] = "".join(answer.reasoning)
    if answer.tool_calls:
        message["tool_calls"] = [_tool_call(c) for c in answer.calls()]
    return {
        "id": f"chatcmpl-{rid}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": answer.finish, "logprobs": None}],
        "usage": openai_usage(answer.usage),
    }


def _data(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _delta(event: Any) -> dict[str, Any] | None:
    if isinstance(event, TextDelta):
        return {"content": event.text}
    if isinstance(event, ReasoningDelta):
        return {"reasoning_content": event.text}
    if isinstance(event, ToolCallDelta):
        call: dict[str, Any] = {"index": event.index, "function": {"arguments": event.arguments}}
        if event.id:
            call["id"], call["type"] = event.id, "function"
        if event.name:
            call["function"]["name"] = event.name
        return {"tool_calls": [call]}
    return None


async def stream(
    events: AsyncIterator[Any], answer: Answer, *, rid: str, model: str, include_usage: bool, cost: Any
) -> AsyncIterator[bytes]:
    """SSE chunks until `data: [DONE]`; `events` are the turn's from the first content event on.
    `cost()` gives the call's cost in credits once it is billed (in the usage chunk)."""
    base = {"id": f"chatcmpl-{rid}", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _data({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})

    yield chunk({"role": "assistant", "content": ""})
    async for event in events:
        answer.add(event)
        delta = _delta(event)
        if delta is not None:
            yield chunk(delta)
    if answer.error is not None and answer.done is not None and answer.done.unfinished:
        error = answer.error
        yield _data({"error": {"message": error.message, "type": "api_error", "code": f"upstream_{error.kind}"}})
    else:
        yield chunk({}, answer.finish)
    if include_usage:
        yield _data({**base, "choices": [], "usage": {**openai_usage(answer.usage), "cost_credits": str(cost())}})
    yield b"data: [DONE]\n\n"
