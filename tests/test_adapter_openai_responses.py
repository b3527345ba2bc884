"""The OpenAI Responses adapter against the loopback upstream."""
from __future__ import annotations

import pytest

from endpoints.adapters.types import ChatMessage, Finish, Usage
from endpoints.models import Protocol
from tests.streaming import PNG, final, reasoning_of, run_chat, text_of, tool_calls_of, tool_loop, usage_of


@pytest.fixture
def endpoint(make_endpoint, upstream):
    return make_endpoint("Codex", base_url=upstream.base_url, provider=Protocol.OPENAI_RESPONSES, models=("gpt-5",))


def test_it_posts_input_and_instructions_and_strips_unsupported_params(endpoint, upstream):
    run_chat(endpoint, system="Be exact.", messages=[ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello"),
                                                     ChatMessage("user", "More")],
             params={"max_tokens": 500, "temperature": 0.7, "stop": ["x"], "frequency_penalty": 0.5, "seed": 3,
                     "reasoning_effort": "low"})

    request = upstream.last
    assert request.path == "/v1/responses"
    assert request.headers["authorization"] == "Bearer sk-test-secret-value-1234"
    assert request.json == {
        "model": "gpt-5",
        "instructions": "Be exact.",
        "input": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                  {"role": "user", "content": "More"}],
        "stream": True,
        "store": False,
        "max_output_tokens": 500,
        "temperature": 0.7,
        "reasoning": {"effort": "low", "summary": "auto"},
    }


def test_it_streams_reasoning_summary_text_function_calls_and_usage(endpoint, upstream):
    upstream.reply(reasoning="Summary of thoughts.", text="Done.",
                   tool_calls=[{"id": "call_a", "name": "search", "arguments": '{"q": 1}'}],
                   usage=Usage(input_tokens=50, cache_read_tokens=14, output_tokens=30, reasoning_tokens=12))

    events = run_chat(endpoint)

    assert reasoning_of(events) == "Summary of thoughts."
    assert text_of(events) == "Done."
    assert tool_calls_of(events) == {0: {"id": "call_a", "name": "search", "arguments": '{"q": 1}'}}
    assert usage_of(events) == Usage(input_tokens=50, cache_read_tokens=14, output_tokens=30, reasoning_tokens=12)
    assert final(events) == Finish("tool_calls")


def test_an_incomplete_response_finishes_with_length(endpoint, upstream):
    upstream.reply(text="partial", finish="length", usage=Usage(input_tokens=3, output_tokens=9))

    events = run_chat(endpoint)

    assert text_of(events) == "partial"
    assert usage_of(events) == Usage(input_tokens=3, output_tokens=9)
    assert final(events) == Finish("length")


def test_function_tools_are_flattened(endpoint, upstream):
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
    run_chat(endpoint, tools=[tool])

    assert upstream.last.json["tools"] == [{"type": "function", "name": "f", "description": "d",
                                            "parameters": {"type": "object"}}]


def test_a_non_streamed_request_reads_the_response_object(endpoint, upstream):
    upstream.reply(text="All at once.", reasoning="why", usage=Usage(input_tokens=2, output_tokens=3))

    events = run_chat(endpoint, stream=False)

    assert upstream.last.json["stream"] is False
    assert (text_of(events), reasoning_of(events)) == ("All at once.", "why")
    assert usage_of(events) == Usage(input_tokens=2, output_tokens=3)
    assert final(events) == Finish("stop")


def test_a_tool_loop_is_written_as_function_call_and_function_call_output_items(endpoint, upstream):
    upstream.reply(text="Rome is warmer.")

    events = run_chat(endpoint, messages=tool_loop())

    assert text_of(events) == "Rome is warmer."  # (the upstream checks each output answers a call)
    assert upstream.last.json["input"] == [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {"role": "assistant", "content": "Checking both."},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": '{"city": "Rome"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "Oslo: 4 °C"},
        {"type": "function_call_output", "call_id": "call_2", "output": [
            {"type": "input_text", "text": "Rome: 18 °C"}, {"type": "input_image", "image_url": PNG},
        ]},
        {"role": "user", "content": "Which is warmer?"},
        {"type": "function_call", "call_id": "call_3", "name": "compare", "arguments": ""},
        {"type": "function_call_output", "call_id": "call_3", "output": "Rome"},
    ]
