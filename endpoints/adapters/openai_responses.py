"""OpenAI Responses (`/responses`): OpenAI's newer API, ChatGPT/Codex.

Request: `input` items instead of `messages`, `instructions` for the system prompt,
`max_output_tokens`, `reasoning: {effort, summary}`, flat function tools, a tool loop's calls and
results as `function_call` / `function_call_output` items; parameters the API does not accept
(stop, penalties, seed, …) are stripped automatically.
Stream: typed SSE events — `response.created`, `response.output_text.delta`,
`response.reasoning_summary_text.delta`, `response.function_call_arguments.delta`,
`response.completed` / `response.incomplete` (usage: input_tokens with
input_tokens_details.cached_tokens as a subset, output_tokens), `response.failed`, `error`.
"""
from __future__ import annotations

from typing import Any

from httpx_sse import ServerSentEvent

from endpoints.adapters.base import Adapter, Shape, StreamState
from endpoints.adapters.openai_chat import reasoning_settings
from endpoints.adapters.types import Call, ChatMessage, Event, ReasoningDelta, TextDelta, ToolCallDelta, Usage

# Request parameters the Responses API accepts besides those built here; others are stripped.
ACCEPTED_PARAMS = ("temperature", "top_p", "tool_choice", "parallel_tool_calls", "metadata", "text", "truncation",
                   "service_tier", "top_logprobs", "prompt_cache_key", "safety_identifier", "include",
                   "previous_response_id", "max_tool_calls", "background")


def usage_from_responses(raw: dict[str, Any]) -> Usage:
    return Usage.from_openai(
        prompt_tokens=int(raw.get("input_tokens") or 0),
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=int((raw.get("input_tokens_details") or {}).get("cached_tokens") or 0),
        reasoning_tokens=int((raw.get("output_tokens_details") or {}).get("reasoning_tokens") or 0),
    )


def convert_content(role: str, content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    text_type = "output_text" if role == "assistant" else "input_text"
    parts: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "text":
            parts.append({"type": text_type, "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, dict) else image
            parts.append({"type": "input_image", "image_url": url})
        else:
            parts.append(part)
    return parts


def convert_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions `{type: function, function: {…}}` to the flat Responses shape."""
    converted = []
    for tool in tools:
        function = tool.get("function") if tool.get("type") == "function" else None
        if function is None:
            converted.append(tool)
        else:
            converted.append({"type": "function", "name": function["name"],
                              "description": function.get("description", ""),
                              "parameters": function.get("parameters") or {"type": "object", "properties": {}}})
    return converted


def input_items(message: ChatMessage) -> list[dict[str, Any]]:
    """One neutral message as Responses input items: an assistant's tool calls as `function_call`
    items after its text, a tool result as a `function_call_output` item."""
    if message.role == "tool":
        output = message.content if isinstance(message.content, str) else convert_content("user", message.content)
        return [{"type": "function_call_output", "call_id": message.tool_call_id, "output": output}]
    items: list[dict[str, Any]] = []
    if message.content or not message.tool_calls:
        items.append({"role": message.role, "content": convert_content(message.role, message.content)})
    items += [{"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments}
              for c in message.tool_calls]
    return items


class OpenAIResponsesAdapter(Adapter):
    protocol = "openai_responses"
    label = "OpenAI Responses (/responses)"
    path = "/responses"

    def body(self, shape: Shape) -> dict[str, Any]:
        request = shape.request
        instructions = [request.system] if request.system else []
        items: list[dict[str, Any]] = []
        for message in request.messages:
            if message.role == "system" and isinstance(message.content, str):
                instructions.append(message.content)
            else:
                items += input_items(message)
        body: dict[str, Any] = {"model": request.model, "input": items, "stream": request.stream, "store": False}
        if instructions:
            body["instructions"] = "\n\n".join(instructions)
        params = request.params
        max_tokens = params.get("max_output_tokens") or params.get("max_tokens") or params.get("max_completion_tokens")
        if max_tokens:
            body["max_output_tokens"] = int(max_tokens)
        body.update({k: params[k] for k in ACCEPTED_PARAMS if params.get(k) is not None})
        if request.tools:
            body["tools"] = convert_tools(request.tools)
        effort, summary = reasoning_settings(params)
        if effort and shape.reasoning_format != "disabled":
            body["reasoning"] = {"effort": effort, "summary": summary or "auto"}
        return body

    # --- reading -----------------------------------------------------------------------------
    def read_event(self, sse: ServerSentEvent, state: StreamState, call: Call) -> list[Event]:
        if not sse.data.strip():
            return []
        payload = self.parse_json(sse, call)
        if not isinstance(payload, dict):
            return []
        kind = payload.get("type") or sse.event
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            return [TextDelta(payload["delta"])] if payload.get("delta") else []
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return [ReasoningDelta(payload["delta"])] if payload.get("delta") else []
        tools: dict[str, int] = state.extra.setdefault("tools", {})
        if kind == "response.output_item.added":
            item = payload.get("item") or {}
            if item.get("type") == "function_call":
                index = tools[str(item.get("id"))] = len(tools)
                return [ToolCallDelta(index=index, id=item.get("call_id"), name=item.get("name"),
                                      arguments=item.get("arguments") or "")]
            return []
        if kind == "response.function_call_arguments.delta":
            index = tools.get(str(payload.get("item_id")), 0)
            return [ToolCallDelta(index=index, arguments=payload.get("delta") or "")]
        if kind in ("response.completed", "response.incomplete"):
            response = payload.get("response") or {}
            if isinstance(response.get("usage"), dict):
                state.usage = usage_from_responses(response["usage"])
            state.finish = self._finish(response, bool(tools))
            state.done = True
            return []
        if kind == "response.failed":
            response = payload.get("response") or {}
            if isinstance(response.get("usage"), dict):
                state.usage = usage_from_responses(response["usage"])
            error = response.get("error") or {}
            raise self.stream_error(call, failure_message(error), str(error.get("code") or ""))
        if kind == "error":
            error = payload.get("error")
            error = error if isinstance(error, dict) else payload
            error_type = str(error.get("code") or error.get("type") or "")
            raise self.stream_error(call, str(error.get("message") or ""), error_type)
        return []

    def read_full(self, payload: Any, state: StreamState, call: Call) -> list[Event]:
        if not isinstance(payload, dict):
            return []
        if payload.get("status") == "failed" or (payload.get("error") and not payload.get("output")):
            error = payload.get("error") or {}
            raise self.stream_error(call, failure_message(error), str(error.get("code") or ""))
        if isinstance(payload.get("usage"), dict):
            state.usage = usage_from_responses(payload["usage"])
        events: list[Event] = []
        tools = 0
        for item in payload.get("output") or []:
            if item.get("type") == "reasoning":
                for part in item.get("summary") or []:
                    if part.get("text"):
                        events.append(ReasoningDelta(part["text"]))
            elif item.get("type") == "message":
                for part in item.get("content") or []:
                    text = part.get("text") if part.get("type") == "output_text" else part.get("refusal")
                    if text:
                        events.append(TextDelta(text))
            elif item.get("type") == "function_call":
                events.append(ToolCallDelta(index=tools, id=item.get("call_id"), name=item.get("name"),
                                            arguments=item.get("arguments") or ""))
                tools += 1
        state.finish = self._finish(payload, bool(tools))
        return events

    @staticmethod
    def _finish(response: dict[str, Any], called_tools: bool) -> str:
        if response.get("status") == "incomplete":
            reason = (response.get("incomplete_details") or {}).get("reason") or "incomplete"
            return {"max_output_tokens": "length", "content_filter": "content_filter"}.get(reason, reason)
        return "tool_calls" if called_tools else "stop"


def failure_message(error: dict[str, Any]) -> str:
    """What a failed response says went wrong."""
    return str(error.get("message") or "the response failed")
