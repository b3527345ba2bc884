"""An answer as the gateway writes it: the turn's events gathered (text, reasoning, tool calls,
usage, finish) into what both wire formats need."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chat.finish import Done
from endpoints.adapters.types import Event, ReasoningDelta, StreamError, TextDelta, ToolCallDelta, Usage

CONTENT = (TextDelta, ReasoningDelta, ToolCallDelta)


@dataclass
class Answer:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, str]] = field(default_factory=dict)
    error: StreamError | None = None
    done: Done | None = None

    def add(self, event: Event | Done) -> None:
        if isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = self.tool_calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = event.id or call["id"]
            call["name"] = call["name"] or (event.name or "")
            call["arguments"] += event.arguments
        elif isinstance(event, StreamError):
            self.error = event
        elif isinstance(event, Done):
            self.done = event

    @property
    def has_output(self) -> bool:
        return bool(self.text or self.reasoning or self.tool_calls)

    @property
    def usage(self) -> Usage:
        return self.done.usage if self.done is not None else Usage()

    @property
    def finish(self) -> str:
        """The finish reason in Chat Completions' words (a stopped answer: stop)."""
        reason = self.done.finish_reason if self.done is not None else ""
        if self.tool_calls and reason in ("stop", "tool_calls", ""):
            return "tool_calls"
        return reason if reason in ("stop", "length", "tool_calls", "content_filter") else "stop"

    def calls(self) -> list[dict[str, str]]:
        return [self.tool_calls[i] for i in sorted(self.tool_calls)]


def openai_usage(usage: Usage) -> dict[str, Any]:
    """Disjoint counts back in OpenAI's convention (cached ⊂ prompt)."""
    prompt = usage.prompt_total
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }
