"""The native Anthropic Messages adapter against the loopback upstream."""
from __future__ import annotations

import pytest

from endpoints.adapters.types import ChatMessage, Finish, Usage
from endpoints.models import Kind, Protocol
from tests.streaming import final, reasoning_of, run_chat, text_of, tool_calls_of, tool_loop, usage_of


@pytest.fixture
def endpoint(make_endpoint, upstream):
    return make_endpoint("Claude", base_url=upstream.url, provider=Protocol.ANTHROPIC, models=("claude-sonnet-4-5",),
                         api_key="sk-ant-test-key-000111")


def test_it_posts_to_v1_messages_with_x_api_key_version_and_top_level_system(endpoint, upstream):
    run_chat(endpoint, system="You are terse.", messages=[
        ChatMessage("system", "Answer in French."),
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Salut"),
        ChatMessage("user", "Again"),
    ], params={"temperature": 0.5, "stop": "END", "frequency_penalty": 1})

    request = upstream.last
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test-key-000111"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    assert request.json == {
        "model": "claude-sonnet-4-5",
        "system": "You are terse.\n\nAnswer in French.",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Salut"},
            {"role": "user", "content": "Again"},
        ],
        "max_tokens": 8192,
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "stream": True,
    }


def test_max_tokens_is_always_set_even_when_dropped(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.url, provider=Protocol.ANTHROPIC, models=("claude-3-haiku-20240307",),
                             drop_params=["max_tokens", "temperature"])
    run_chat(endpoint, params={"temperature": 1, "max_tokens": 100})

    assert upstream.last.json["max_tokens"] == 4096
    assert "temperature" not in upstream.last.json


def test_an_anthropic_kind_endpoint_uses_the_native_client(make_endpoint, upstream):
    endpoint = make_endpoint("anthropic", kind=Kind.ANTHROPIC, base_url=upstream.url + "/v1", models=("claude-x",))
    assert endpoint.provider == Protocol.ANTHROPIC
    run_chat(endpoint, params={"max_tokens": 300})

    assert upstream.last.path == "/v1/messages" and upstream.last.json["max_tokens"] == 300


def test_it_streams_thinking_text_tool_use_and_disjoint_cache_usage(endpoint, upstream):
    upstream.reply(
        reasoning="Considering options.",
        text="Use the tool.",
        tool_calls=[{"id": "toolu_01", "name": "lookup", "arguments": '{"q": "atrium"}'}],
        usage=Usage(input_tokens=40, cache_read_tokens=1000, cache_write_tokens=200, output_tokens=25),
    )

    events = run_chat(endpoint)

    assert reasoning_of(events) == "Considering options."
    assert text_of(events) == "Use the tool."
    assert tool_calls_of(events) == {0: {"id": "toolu_01", "name": "lookup", "arguments": '{"q": "atrium"}'}}
    assert usage_of(events) == Usage(input_tokens=40, cache_read_tokens=1000, cache_write_tokens=200, output_tokens=25)
    assert final(events) == Finish("tool_calls")


def test_ping_comments_and_multi_line_data_are_understood(endpoint, upstream):
    upstream.reply(text="plain answer", comments=True, multiline=True)

    events = run_chat(endpoint)

    assert text_of(events) == "plain answer"
    assert final(events) == Finish("stop")


def test_max_tokens_stop_reason_is_length(endpoint, upstream):
    upstream.reply(text="cut", finish="length")

    assert final(run_chat(endpoint)) == Finish("length")


@pytest.mark.parametrize("params, budget, max_tokens", [
    ({"thinking": True, "thinking_budget": 3000}, 3000, 8192),
    ({"reasoning_effort": "high", "max_tokens": 32000}, 16384, 32000),
    ({"thinking": True, "thinking_budget": 5000, "max_tokens": 4000}, 3600, 4000),
])
def test_thinking_is_requested_with_a_budget_below_max_tokens(endpoint, upstream, params, budget, max_tokens):
    run_chat(endpoint, params={**params, "temperature": 0.3})

    body = upstream.last.json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == max_tokens
    assert "temperature" not in body  # extended thinking refuses a custom temperature


def test_disabled_reasoning_format_sends_no_thinking(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.url, provider=Protocol.ANTHROPIC,
                             custom_params={"reasoningFormat": "disabled"})
    run_chat(endpoint, params={"thinking": True, "reasoning_effort": "high"})

    assert "thinking" not in upstream.last.json and "reasoning_effort" not in upstream.last.json


def test_openai_style_tools_and_images_are_converted(endpoint, upstream):
    tool = {"type": "function", "function": {"name": "lookup", "description": "Find", "parameters": {"type": "object"}}}
    run_chat(endpoint, tools=[tool], messages=[ChatMessage("user", [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ])])

    body = upstream.last.json
    assert body["tools"] == [{"name": "lookup", "description": "Find", "input_schema": {"type": "object"}}]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
    ]


def test_a_non_streamed_request_reads_the_message_json(endpoint, upstream):
    upstream.reply(text="Whole.", reasoning="hm", usage=Usage(input_tokens=5, cache_write_tokens=7, output_tokens=1))

    events = run_chat(endpoint, stream=False)

    assert upstream.last.json["stream"] is False
    assert (text_of(events), reasoning_of(events)) == ("Whole.", "hm")
    assert usage_of(events) == Usage(input_tokens=5, cache_write_tokens=7, output_tokens=1)
    assert final(events) == Finish("stop")


def test_vertex_ai_takes_the_model_in_the_url_and_the_version_in_the_body(make_endpoint, upstream):
    base = upstream.url + "/v1/projects/acme/locations/us-east5/publishers/anthropic/models"
    endpoint = make_endpoint(base_url=base, provider=Protocol.ANTHROPIC, auth_kind="access_token",
                             api_key="ya29.vertex-token", models=("claude-sonnet-4@20250514",))
    upstream.reply(text="from vertex")

    events = run_chat(endpoint)
    run_chat(endpoint, stream=False)

    streamed, whole = upstream.requests
    assert text_of(events) == "from vertex"
    assert streamed.path.endswith("/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict")
    assert whole.path.endswith("/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict")
    assert streamed.headers["authorization"] == "Bearer ya29.vertex-token"
    assert streamed.json["anthropic_version"] == "vertex-2023-10-16" and "model" not in streamed.json


def test_a_tool_loop_is_written_as_tool_use_blocks_and_one_user_turn_of_tool_results(endpoint, upstream):
    upstream.reply(text="Rome is warmer.")

    events = run_chat(endpoint, messages=tool_loop(error=True))

    assert text_of(events) == "Rome is warmer."  # (the upstream checks the exchange as Anthropic does)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    assert upstream.last.json["messages"] == [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}},
        ]},
        # both results in one user turn, first; the user's next words join it
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "Oslo: 4 °C", "is_error": True},
            {"type": "tool_result", "tool_use_id": "call_2",
             "content": [{"type": "text", "text": "Rome: 18 °C"}, image]},
            {"type": "text", "text": "Which is warmer?"},
        ]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_3", "name": "compare", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_3", "content": "Rome"}]},
    ]


def test_tool_arguments_that_are_not_a_json_object_are_kept_under_raw(endpoint, upstream):
    from endpoints.adapters.types import ToolCall

    run_chat(endpoint, messages=[
        ChatMessage("user", "Go"),
        ChatMessage("assistant", "", tool_calls=[ToolCall("t1", "f", '{"unterminated'), ToolCall("t2", "g", "[1]")]),
        ChatMessage("tool", "ok", tool_call_id="t1"),
        ChatMessage("tool", "ok", tool_call_id="t2"),
    ])

    uses = upstream.last.json["messages"][1]["content"]
    assert [u["input"] for u in uses] == [{"_raw": '{"unterminated'}, {"_raw": "[1]"}]
