"""OpenAI Chat Completions (`/chat/completions`): OpenAI and every OpenAI-compatible provider
(OpenRouter, Groq, Mistral, DeepSeek, Ollama, vLLM, …); Azure OpenAI in `azure_openai.py`.

Stream: `data: {chunk}` SSE events ending with `data: [DONE]`; text in `choices[0].delta.content`,
reasoning in `delta.reasoning` or `delta.reasoning_content`, tool calls as indexed
`delta.tool_calls` fragments, usage in the last chunk when `stream_options.include_usage` is set
(`prompt_tokens_details.cached_tokens` is a subset of `prompt_tokens`).
"""
from __future__ import annotations

from typing import Any

from httpx_sse import ServerSentEvent

from endpoints.adapters.base import REASONING_PARAMS, Adapter, Shape, StreamState
from endpoints.adapters.types import Call, ChatMessage, Event, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, Usage

# A tool message takes text only; images a tool returned follow the tool messages in a user message.
TOOL_IMAGES_NOTE = "Images returned by the tool calls above:"


def usage_from_openai(raw: dict[str, Any]) -> Usage:
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage.from_openai(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def tool_call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def chat_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Neutral messages as Chat Completions messages: an assistant's tool calls in `tool_calls`
    (content null when it wrote no text), a tool result as `role: tool` with its `tool_call_id`."""
    out: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []  # from the run of tool messages just written
    for message in messages:
        if message.role != "tool" and images:
            out.append({"role": "user", "content": [{"type": "text", "text": TOOL_IMAGES_NOTE}, *images]})
            images = []
        if message.role == "tool":
            content = message.content
            if isinstance(content, list):
                images += [p for p in content if p.get("type") != "text"]
                content = [p for p in content if p.get("type") == "text"] or ""
            out.append({"role": "tool", "tool_call_id": message.tool_call_id, "content": content})
        elif message.tool_calls:
            out.append({"role": message.role, "content": message.content or None,
                        "tool_calls": [tool_call(c) for c in message.tool_calls]})
        else:
            out.append({"role": message.role, "content": message.content})
    if images:
        out.append({"role": "user", "content": [{"type": "text", "text": TOOL_IMAGES_NOTE}, *images]})
    return out


def reasoning_settings(params: dict[str, Any]) -> tuple[str | None, str | None]:
    """(effort, summary) asked for by the request parameters."""
    effort = params.get("reasoning_effort")
    summary = params.get("reasoning_summary")
    reasoning = params.get("reasoning")
    if isinstance(reasoning, dict):
        effort = effort or reasoning.get("effort")
        summary = summary or reasoning.get("summary")
    return (str(effort) if effort else None, str(summary) if summary else None)


class OpenAIChatAdapter(Adapter):
    protocol = "openai_chat"
    label = "OpenAI Chat Completions (/chat/completions)"
    path = "/chat/completions"

    def body(self, shape: Shape) -> dict[str, Any]:
        request = shape.request
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages += chat_messages(request.messages)
        body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": request.stream}
        params = {k: v for k, v in request.params.items() if v is not None and k not in REASONING_PARAMS}
        if "max_output_tokens" in params:
            params.setdefault("max_tokens", params.pop("max_output_tokens"))
        body.update(params)
        if shape.user_id:
            body.setdefault("user", shape.user_id)
        if request.tools:
            body["tools"] = request.tools
        effort, summary = reasoning_settings(request.params)
        if effort and shape.reasoning_format != "disabled":
            if shape.reasoning_format == "reasoning_object":
                body["reasoning"] = {"effort": effort, "summary": summary or "auto"}
            else:  # reasoning_effort, and the default
                body["reasoning_effort"] = effort
        return body

    def finalize(self, body: dict[str, Any], shape: Shape, dropped: list[str]) -> dict[str, Any]:
        if body.get("stream") and "stream_options" not in dropped:
            options = body.get("stream_options")
            options = options if isinstance(options, dict) else {}
            body["stream_options"] = {**options, "include_usage": True}
        return body

    # --- reading -----------------------------------------------------------------------------
    def read_event(self, sse: ServerSentEvent, state: StreamState, call: Call) -> list[Event]:
        if sse.data.strip() == "[DONE]":
            state.done = True
            return []
        if not sse.data.strip():
            return []
        payload = self.parse_json(sse, call)
        if not isinstance(payload, dict):
            return []
        error = payload.get("error")
        if sse.event == "error" or error:
            detail = error if isinstance(error, dict) else payload
            raise self.stream_error(
                call, self.error_message({"error": detail}) or str(error or ""),
                str(detail.get("type") or detail.get("code") or "") if isinstance(detail, dict) else None,
            )
        if isinstance(payload.get("usage"), dict):
            state.usage = usage_from_openai(payload["usage"])
        events: list[Event] = []
        for choice in payload.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = self._reasoning(delta, call)
            if reasoning:
                events.append(ReasoningDelta(reasoning))
            if isinstance(delta.get("content"), str) and delta["content"]:
                events.append(TextDelta(delta["content"]))
            for fragment in delta.get("tool_calls") or []:
                function = fragment.get("function") or {}
                events.append(ToolCallDelta(
                    index=int(fragment.get("index") or 0),
                    id=fragment.get("id"),
                    name=function.get("name"),
                    arguments=function.get("arguments") or "",
                ))
            if choice.get("finish_reason"):
                state.finish = str(choice["finish_reason"])
        return events

    def read_full(self, payload: Any, state: StreamState, call: Call) -> list[Event]:
        if not isinstance(payload, dict):
            return []
        if payload.get("error"):
            detail = payload["error"]
            raise self.stream_error(call, self.error_message(payload),
                                    str(detail.get("type") or "") if isinstance(detail, dict) else None)
        if isinstance(payload.get("usage"), dict):
            state.usage = usage_from_openai(payload["usage"])
        events: list[Event] = []
        choices = payload.get("choices") or []
        if choices:
            choice = choices[0]
            message = choice.get("message") or {}
            reasoning = self._reasoning(message, call)
            if reasoning:
                events.append(ReasoningDelta(reasoning))
            if isinstance(message.get("content"), str) and message["content"]:
                events.append(TextDelta(message["content"]))
            for index, tool_call in enumerate(message.get("tool_calls") or []):
                function = tool_call.get("function") or {}
                events.append(ToolCallDelta(index=index, id=tool_call.get("id"), name=function.get("name"),
                                            arguments=function.get("arguments") or ""))
            state.finish = str(choice.get("finish_reason") or "stop")
        return events

    @staticmethod
    def _reasoning(delta: dict[str, Any], call: Call) -> str:
        """Reasoning text under customParams.reasoningKey; unset: whichever of the two keys is there."""
        keys = (call.reasoning_key,) if call.reasoning_key else ("reasoning_content", "reasoning")
        for key in keys:
            value = delta.get(key)
            if isinstance(value, str) and value:
                return value
        return ""
