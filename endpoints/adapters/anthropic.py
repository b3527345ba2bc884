"""Anthropic Messages (`/v1/messages`), native: Anthropic, MiniMax, Vertex AI Anthropic models and
Anthropic-compatible gateways.

Request: headers `x-api-key` and `anthropic-version: 2023-06-01`; `system` is a top-level field,
never a message; `max_tokens` is required and always set; extended thinking is
`thinking: {type: enabled, budget_tokens}`; a tool loop's calls are `tool_use` blocks and their
results `tool_result` blocks opening the next user turn (see `turns`).
Stream: named SSE events `message_start` (usage: input, cache creation, cache read — disjoint),
`content_block_start/delta/stop` (text_delta, thinking_delta, input_json_delta), `message_delta`
(output_tokens, stop_reason), `message_stop`, `ping`, `error`.
"""
from __future__ import annotations

import json
from typing import Any

from httpx_sse import ServerSentEvent

from endpoints.adapters.base import Adapter, Shape, StreamState
from endpoints.adapters.openai_chat import reasoning_settings
from endpoints.adapters.types import (
    Call,
    ChatMessage,
    Event,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)

ANTHROPIC_VERSION = "2023-06-01"
VERTEX_VERSION = "vertex-2023-10-16"
DEFAULT_MAX_TOKENS = 8192
LEGACY_MAX_TOKENS = 4096  # Claude 3 (not 3.5/3.7) models cap output at 4096
MIN_THINKING_BUDGET = 1024  # the API's minimum budget_tokens
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
# Chat Completions parameters the Messages API rejects; other parameters pass through.
OPENAI_ONLY = ("frequency_penalty", "presence_penalty", "n", "seed", "logit_bias", "logprobs", "top_logprobs",
               "response_format", "stream_options", "user", "parallel_tool_calls", "max_completion_tokens")
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                "refusal": "content_filter"}


def is_vertex(base_url: str) -> bool:
    """Anthropic models on Google Vertex AI (`https://REGION-aiplatform.googleapis.com/v1/projects/…/
    publishers/anthropic/models`, or a proxy with the same layout)."""
    return base_url.rstrip("/").endswith("/publishers/anthropic/models")


def usage_from_anthropic(raw: dict[str, Any]) -> Usage:
    return Usage.from_anthropic(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_read_input_tokens=int(raw.get("cache_read_input_tokens") or 0),
        cache_creation_input_tokens=int(raw.get("cache_creation_input_tokens") or 0),
    )


def default_max_tokens(model: str) -> int:
    legacy = model.startswith("claude-3-") and not model.startswith(("claude-3-5", "claude-3-7"))
    return LEGACY_MAX_TOKENS if legacy else DEFAULT_MAX_TOKENS


def _image_part(url: str) -> dict[str, Any]:
    if url.startswith("data:") and ";base64," in url:
        media_type, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def convert_content(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """OpenAI-style parts (text, image_url) to Anthropic blocks; Anthropic blocks pass unchanged."""
    return content if isinstance(content, str) else _convert_parts(content)


def _convert_parts(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if part.get("type") == "image_url":
            image = part.get("image_url")
            blocks.append(_image_part(image.get("url", "") if isinstance(image, dict) else str(image or "")))
        else:
            blocks.append(part)
    return blocks


def convert_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function tools to Anthropic `{name, description, input_schema}`."""
    converted = []
    for tool in tools:
        function = tool.get("function") if tool.get("type") == "function" else None
        if function is None:
            converted.append(tool)
            continue
        converted.append({
            "name": function["name"],
            "description": function.get("description", ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        })
    return converted


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as the object `tool_use.input` must be (text that is not a JSON
    object is kept under `_raw`, so nothing the model wrote is lost)."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Content as a list of blocks (no empty text block: the API refuses them)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [b for b in _convert_parts(content) if not (b.get("type") == "text" and not b.get("text"))]


def _tool_use(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(call.arguments)}


def _tool_result(message: ChatMessage) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    content = message.content if isinstance(message.content, str) else _blocks(message.content)
    if content:
        block["content"] = content
    if message.is_error:
        block["is_error"] = True
    return block


def turns(messages: list[ChatMessage]) -> tuple[list[str], list[dict[str, Any]]]:
    """Neutral messages as (system texts, Messages turns). An assistant's tool calls become
    `tool_use` blocks after its text; tool results become `tool_result` blocks of ONE user turn
    (Anthropic wants every result of an assistant turn in the next user turn, before anything
    else), and a user message right after them joins that turn."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None  # the blocks of the user turn tool results opened
    for message in messages:
        if message.role == "system":
            system.append(_text(message.content))
        elif message.role == "tool":
            if results is None:
                results = []
                out.append({"role": "user", "content": results})
            results.append(_tool_result(message))
        elif message.role == "user" and results is not None:
            results += _blocks(message.content)
            results = None
        elif message.tool_calls:
            out.append({"role": message.role,
                        "content": _blocks(message.content) + [_tool_use(c) for c in message.tool_calls]})
            results = None
        else:
            out.append({"role": message.role, "content": convert_content(message.content)})
            results = None
    return system, out


def _text(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content if p.get("type") == "text")


class AnthropicAdapter(Adapter):
    protocol = "anthropic"
    label = "Anthropic Messages (/v1/messages)"
    path = "/v1/messages"
    models_path = None

    def url(self, shape: Shape) -> str:
        if shape.direct:
            return shape.base_url
        root = shape.base_url.rstrip("/")
        if is_vertex(root):
            # Vertex AI: …/publishers/anthropic/models/{model}:streamRawPredict (or :rawPredict)
            verb = "streamRawPredict" if shape.request.stream else "rawPredict"
            return f"{root}/{shape.request.model}:{verb}"
        return root + ("/messages" if root.endswith("/v1") else self.path)

    def auth_headers(self, *, api_key: str, auth_kind: str) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:  # an access token (Vertex AI's GCP token) is a Bearer token; a key goes in x-api-key
            bearer = auth_kind == "access_token"
            headers.update({"Authorization": f"Bearer {api_key}"} if bearer else {"x-api-key": api_key})
        return headers

    def body(self, shape: Shape) -> dict[str, Any]:
        request = shape.request
        system_texts, messages = turns(request.messages)
        system_parts = ([request.system] if request.system else []) + system_texts
        params = dict(request.params)
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        if system_parts:
            body["system"] = "\n\n".join(part for part in system_parts if part)
        max_tokens = params.pop("max_tokens", None) or params.pop("max_output_tokens", None)
        body["max_tokens"] = int(max_tokens) if max_tokens else default_max_tokens(request.model)
        if "stop" in params:
            stop = params.pop("stop")
            if stop:
                body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        effort, _summary = reasoning_settings(params)
        thinking = params.pop("thinking", None)
        budget = params.pop("thinking_budget", None) or params.pop("thinkingBudget", None)
        for name in ("reasoning_effort", "reasoning", "reasoning_summary", "include_reasoning", *OPENAI_ONLY):
            params.pop(name, None)
        body.update({k: v for k, v in params.items() if v is not None})
        body["stream"] = request.stream
        if request.tools:
            body["tools"] = convert_tools(request.tools)
        if shape.reasoning_format != "disabled":
            self._thinking(body, thinking, budget, effort)
        return body

    @staticmethod
    def _thinking(body: dict[str, Any], thinking: Any, budget: Any, effort: str | None) -> None:
        if isinstance(thinking, dict):
            body["thinking"] = thinking
            return
        if not (thinking or effort):
            return
        tokens = int(budget) if budget else THINKING_BUDGETS.get(effort or "", 2048)
        if tokens >= body["max_tokens"]:
            tokens = int(body["max_tokens"] * 0.9)
        if tokens < MIN_THINKING_BUDGET:
            return  # max_tokens leaves no room for thinking
        body["thinking"] = {"type": "enabled", "budget_tokens": tokens}
        # extended thinking accepts neither a custom temperature nor top_k
        for name in ("temperature", "top_k"):
            body.pop(name, None)

    def finalize(self, body: dict[str, Any], shape: Shape, dropped: list[str]) -> dict[str, Any]:
        if not body.get("max_tokens"):
            body["max_tokens"] = default_max_tokens(shape.request.model)
        if is_vertex(shape.base_url):
            # Vertex takes the model from the URL and the API version in the body
            body.pop("model", None)
            body["anthropic_version"] = VERTEX_VERSION
        return body

    # --- reading -----------------------------------------------------------------------------
    def read_event(self, sse: ServerSentEvent, state: StreamState, call: Call) -> list[Event]:
        if not sse.data.strip():
            return []
        payload = self.parse_json(sse, call)
        if not isinstance(payload, dict):
            return []
        kind = payload.get("type") or sse.event
        blocks: dict[int, dict[str, Any]] = state.extra.setdefault("blocks", {})
        if kind == "message_start":
            raw = dict((payload.get("message") or {}).get("usage") or {})
            state.extra["usage"] = raw
            state.usage = usage_from_anthropic(raw)
            # Reported now, not only at the end: a call stopped mid-answer never reaches the end,
            # and its prompt counts (cache reads and writes included) must be billed as reported.
            return [UsageReport(state.usage)]
        if kind == "content_block_start":
            return _block_started(payload, state, blocks)
        if kind == "content_block_delta":
            return _block_delta(payload, blocks)
        if kind == "message_delta":
            raw = state.extra.setdefault("usage", {})
            raw.update({k: v for k, v in (payload.get("usage") or {}).items() if v is not None})
            state.usage = usage_from_anthropic(raw)
            reason = (payload.get("delta") or {}).get("stop_reason")
            if reason:
                state.finish = STOP_REASONS.get(reason, reason)
            return []
        if kind == "message_stop":
            state.done = True
            return []
        if kind == "error":
            error = payload.get("error") or {}
            raise self.stream_error(call, str(error.get("message") or ""), str(error.get("type") or ""))
        return []  # ping, content_block_stop and future event types

    def read_full(self, payload: Any, state: StreamState, call: Call) -> list[Event]:
        if not isinstance(payload, dict):
            return []
        if payload.get("type") == "error":
            error = payload.get("error") or {}
            raise self.stream_error(call, str(error.get("message") or ""), str(error.get("type") or ""))
        if isinstance(payload.get("usage"), dict):
            state.usage = usage_from_anthropic(payload["usage"])
        events: list[Event] = []
        tool = 0
        for block in payload.get("content") or []:
            if block.get("type") == "text" and block.get("text"):
                events.append(TextDelta(block["text"]))
            elif block.get("type") == "thinking" and block.get("thinking"):
                events.append(ReasoningDelta(block["thinking"]))
            elif block.get("type") == "tool_use":
                events.append(ToolCallDelta(index=tool, id=block.get("id"), name=block.get("name"),
                                            arguments=json.dumps(block.get("input") or {})))
                tool += 1
        reason = payload.get("stop_reason") or "end_turn"
        state.finish = STOP_REASONS.get(reason, reason)
        return events


def _block_started(payload: dict[str, Any], state: StreamState, blocks: dict[int, dict[str, Any]]) -> list[Event]:
    """A content block opens: remember its type (and tool call number) for the deltas that follow."""
    index = int(payload.get("index") or 0)
    block = payload.get("content_block") or {}
    info: dict[str, Any] = {"type": block.get("type")}
    blocks[index] = info
    if block.get("type") == "tool_use":
        info["tool"] = state.extra["tools"] = state.extra.get("tools", -1) + 1
        arguments = json.dumps(block["input"]) if block.get("input") else ""
        return [ToolCallDelta(index=info["tool"], id=block.get("id"), name=block.get("name"), arguments=arguments)]
    if block.get("type") == "text" and block.get("text"):
        return [TextDelta(block["text"])]
    if block.get("type") == "thinking" and block.get("thinking"):
        return [ReasoningDelta(block["thinking"])]
    return []


def _block_delta(payload: dict[str, Any], blocks: dict[int, dict[str, Any]]) -> list[Event]:
    delta = payload.get("delta") or {}
    delta_type = delta.get("type")
    if delta_type == "text_delta" and delta.get("text"):
        return [TextDelta(delta["text"])]
    if delta_type == "thinking_delta" and delta.get("thinking"):
        return [ReasoningDelta(delta["thinking"])]
    if delta_type == "input_json_delta":
        info = blocks.get(int(payload.get("index") or 0), {})
        return [ToolCallDelta(index=int(info.get("tool", 0)), arguments=delta.get("partial_json") or "")]
    return []  # signature_delta, citations_delta
