"""The gateway's two readers on tool calls and tool results: each format read into the
provider-neutral messages, malformed ones refused with a 400 naming the field. (The SDKs' tool
loops through a real daphne are in test_gateway.py; an unknown tool call id is the upstream's to
refuse, as the loopback upstream does.)"""
from __future__ import annotations

import pytest

from chat.errors import InvalidRequest
from chat.gateway import anthropic_format, openai_format
from endpoints.adapters.types import ChatMessage, ToolCall

PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


def _openai(*messages: dict) -> list[ChatMessage]:
    ask, _, _ = openai_format.parse({"model": "m", "messages": list(messages)})
    return ask.messages


def _anthropic(*messages: dict) -> list[ChatMessage]:
    ask, _ = anthropic_format.parse({"model": "m", "max_tokens": 5, "messages": list(messages)})
    return ask.messages


CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}


# --- OpenAI Chat Completions ---------------------------------------------------------------------

def test_openai_tool_calls_and_tool_messages_are_read():
    messages = _openai(
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "refusal": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "4 °C"}]},
    )

    assert messages == [
        ChatMessage("user", "Weather?"),
        ChatMessage("assistant", "", tool_calls=[ToolCall("call_1", "weather", '{"city": "Oslo"}')]),
        ChatMessage("tool", [{"type": "text", "text": "4 °C"}], tool_call_id="call_1"),
    ]


def test_an_openai_tool_call_without_arguments_has_empty_ones():
    call = {"id": "c", "function": {"name": "now"}}

    assert _openai({"role": "assistant", "tool_calls": [call]})[0].tool_calls == [ToolCall("c", "now", "")]


@pytest.mark.parametrize(("message", "error"), [
    ({"role": "tool", "content": "4 °C"}, r"messages\[0\]\.tool_call_id is required"),
    ({"role": "tool", "tool_call_id": " ", "content": "4 °C"}, r"messages\[0\]\.tool_call_id is required"),
    ({"role": "tool", "tool_call_id": "c", "content": 4}, r"messages\[0\]\.content must be"),
    ({"role": "assistant", "tool_calls": {"id": "c"}}, r"messages\[0\]\.tool_calls must be a list"),
    ({"role": "assistant", "tool_calls": ["c"]}, r"tool_calls\[0\] must be an object with a function"),
    ({"role": "assistant", "tool_calls": [{**CALL, "id": None}]}, r"tool_calls\[0\]\.id is required"),
    ({"role": "assistant", "tool_calls": [{**CALL, "function": {"arguments": "{}"}}]},
     r"tool_calls\[0\]\.function\.name is required"),
    ({"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": {"a": 1}}}]},
     r"arguments must be a string \(JSON text\)"),
    ({"role": "assistant", "tool_calls": [{**CALL, "type": "custom"}]}, r"tool_calls\[0\]\.type must be 'function'"),
    ({"role": "user", "content": "Hi", "tool_calls": [CALL]}, r"only an assistant message may carry tool_calls"),
    ({"role": "function", "name": "f", "content": "x"},
     r"role must be one of system, developer, user, assistant, tool"),
])
def test_malformed_openai_tool_messages_are_refused_naming_the_field(message, error):
    with pytest.raises(InvalidRequest, match=error):
        _openai(message)


def test_an_unknown_tool_call_id_is_left_to_the_upstream():
    assert _openai({"role": "tool", "tool_call_id": "never_made", "content": "x"})[0].tool_call_id == "never_made"


# --- Anthropic Messages --------------------------------------------------------------------------

def test_anthropic_tool_use_and_tool_result_blocks_are_read():
    messages = _anthropic(
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Looking.", "citations": None},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "4 °C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
             "content": [{"type": "text", "text": "no data"}, {"type": "image", "source": PNG}]},
            {"type": "text", "text": "Which is warmer?"},
        ]},
    )

    assert messages == [
        ChatMessage("user", "Weather in Oslo and Rome?"),
        ChatMessage("assistant", "Looking.", tool_calls=[
            ToolCall("toolu_1", "weather", '{"city": "Oslo"}'), ToolCall("toolu_2", "weather", '{"city": "Rome"}'),
        ]),
        ChatMessage("tool", "4 °C", tool_call_id="toolu_1"),
        ChatMessage("tool", [{"type": "text", "text": "no data"},
                             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}],
                    tool_call_id="toolu_2", is_error=True),
        ChatMessage("user", "Which is warmer?"),
    ]


def test_an_anthropic_tool_result_without_content_is_empty():
    messages = _anthropic({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]})

    assert messages == [ChatMessage("tool", "", tool_call_id="t")]


@pytest.mark.parametrize(("message", "error"), [
    ({"role": "user", "content": [{"type": "tool_result", "content": "x"}]},
     r"messages\[0\]\.content\[0\]\.tool_use_id is required"),
    ({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": {"text": "x"}}]},
     r"content\[0\]\.content must be a string or a list"),
    ({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "document"}]}]},
     r"content\[0\]\.content\[0\]: content blocks of type 'document'"),
    ({"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]},
     r"messages\[0\]\.content\[0\]\.id is required"),
    ({"role": "assistant", "content": [{"type": "tool_use", "id": "t", "input": {}}]},
     r"messages\[0\]\.content\[0\]\.name is required"),
    ({"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]},
     r"messages\[0\]\.content\[0\]\.input must be an object"),
    ({"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
     r"a tool_use block belongs in an assistant turn"),
    ({"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
     r"a tool_result block belongs in a user turn"),
])
def test_malformed_anthropic_tool_blocks_are_refused_naming_the_field(message, error):
    with pytest.raises(InvalidRequest, match=error):
        _anthropic(message)


def test_an_anthropic_tool_result_of_several_text_blocks_keeps_them_apart():
    blocks = [{"type": "text", "text": "4 °C"}, {"type": "text", "text": "windy"}]

    messages = _anthropic({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": blocks}]})

    assert messages == [ChatMessage("tool", blocks, tool_call_id="t")]
