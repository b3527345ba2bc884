"""The OpenAI Chat Completions adapter against the loopback upstream."""
from __future__ import annotations

import pytest

from endpoints.adapters.openai_chat import TOOL_IMAGES_NOTE
from endpoints.adapters.types import Finish, TextDelta, Usage
from tests.streaming import PNG, final, reasoning_of, run_chat, text_of, tool_calls_of, tool_loop, usage_of


@pytest.fixture
async def worker_db_closed():
    """Async tests reach the database from asgiref's worker thread; close that thread's connection
    afterwards so PostgreSQL can drop the test database."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    await sync_to_async(connections.close_all)()


@pytest.fixture
def endpoint(make_endpoint, upstream):
    return make_endpoint("Local", base_url=upstream.base_url, models=("gpt-test",))


def test_it_streams_the_answer_as_text_deltas_then_usage_then_finish(endpoint, upstream, make_user):
    upstream.reply(text="Hello there, friend.", usage=Usage(input_tokens=12, output_tokens=4))

    events = run_chat(endpoint, make_user())

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello ", "there, ", "friend."]
    assert usage_of(events) == Usage(input_tokens=12, output_tokens=4)
    assert final(events) == Finish("stop")


def test_it_posts_to_chat_completions_with_bearer_key_and_include_usage(endpoint, upstream, make_user):
    user = make_user()
    run_chat(endpoint, user, system="Be brief.", params={"temperature": 0.2, "max_tokens": 50})

    request = upstream.last
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test-secret-value-1234"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "model": "gpt-test",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "max_tokens": 50,
        "user": str(user.pk),
    }


def test_cached_and_reasoning_tokens_follow_openai_convention(endpoint, upstream):
    # OpenAI reports cached tokens inside prompt_tokens: 30 prompt of which 20 cached
    upstream.reply(usage=Usage(input_tokens=10, cache_read_tokens=20, output_tokens=9, reasoning_tokens=4))

    events = run_chat(endpoint)

    assert upstream.last.json["stream_options"] == {"include_usage": True}
    assert usage_of(events) == Usage(input_tokens=10, cache_read_tokens=20, output_tokens=9, reasoning_tokens=4)


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_reasoning_is_read_from_either_key_when_none_is_configured(endpoint, upstream, key):
    upstream.reply(reasoning="Let me think.", reasoning_key=key, text="42")

    events = run_chat(endpoint)

    assert reasoning_of(events) == "Let me think."
    assert text_of(events) == "42"


def test_reasoning_key_configured_reads_only_that_key(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.base_url, custom_params={"reasoningKey": "reasoning"})
    upstream.reply(reasoning="hidden", reasoning_key="reasoning_content", text="a")
    upstream.reply(reasoning="shown", reasoning_key="reasoning", text="b")

    assert reasoning_of(run_chat(endpoint)) == ""
    assert reasoning_of(run_chat(endpoint)) == "shown"


def test_tool_call_fragments_keep_their_index(endpoint, upstream):
    upstream.reply(text="", tool_calls=[
        {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"id": "call_2", "name": "get_time", "arguments": '{"tz": "CET"}'},
    ])

    events = run_chat(endpoint)

    assert tool_calls_of(events) == {
        0: {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "call_2", "name": "get_time", "arguments": '{"tz": "CET"}'},
    }
    assert final(events) == Finish("tool_calls")


def test_sse_comments_and_multi_line_data_are_understood(endpoint, upstream):
    upstream.reply(text="one two three", comments=True, multiline=True, usage=Usage(input_tokens=3, output_tokens=3))

    events = run_chat(endpoint)

    assert text_of(events) == "one two three"
    assert usage_of(events) == Usage(input_tokens=3, output_tokens=3)
    assert final(events) == Finish("stop")


def test_length_finish_reason_is_passed_on(endpoint, upstream):
    upstream.reply(text="cut by max tokens", finish="length")

    assert final(run_chat(endpoint)) == Finish("length")


def test_a_non_streamed_request_reads_the_json_answer(endpoint, upstream):
    upstream.reply(
        text="Whole answer.",
        reasoning="thought",
        usage=Usage(input_tokens=7, cache_read_tokens=3, output_tokens=2),
        tool_calls=[{"id": "call_9", "name": "f", "arguments": "{}"}],
    )

    events = run_chat(endpoint, stream=False)

    assert "stream_options" not in upstream.last.json and upstream.last.json["stream"] is False
    assert text_of(events) == "Whole answer." and reasoning_of(events) == "thought"
    assert tool_calls_of(events) == {0: {"id": "call_9", "name": "f", "arguments": "{}"}}
    assert usage_of(events) == Usage(input_tokens=7, cache_read_tokens=3, output_tokens=2)
    assert final(events) == Finish("tool_calls")


@pytest.mark.django_db(transaction=True)
async def test_it_works_from_async_code_too(make_endpoint, upstream, worker_db_closed):
    from asgiref.sync import sync_to_async

    from endpoints.services import stream_chat
    from tests.streaming import chat_request

    endpoint = await sync_to_async(make_endpoint)(base_url=upstream.base_url)
    upstream.reply(text="async hello")

    events = [e async for e in stream_chat(endpoint=endpoint, request=chat_request(), user=None)]

    assert text_of(events) == "async hello"
    assert final(events) == Finish("stop")


@pytest.mark.django_db(transaction=True)
async def test_stopping_early_hangs_up_on_the_upstream_at_once(make_endpoint, upstream, worker_db_closed):
    from asgiref.sync import sync_to_async

    from endpoints.services import stream_chat
    from tests.streaming import chat_request

    endpoint = await sync_to_async(make_endpoint)(base_url=upstream.base_url)
    upstream.reply(text=" ".join(["word"] * 200), chunk_delay=0.02)

    events = stream_chat(endpoint=endpoint, request=chat_request(), user=None)
    async for event in events:
        if isinstance(event, TextDelta):
            break
    await events.aclose()

    assert await sync_to_async(upstream.wait_for_disconnects)(1, timeout=3) == 1


def test_a_tool_loop_is_written_as_tool_calls_and_tool_messages(endpoint, upstream):
    upstream.reply(text="Rome is warmer.")

    events = run_chat(endpoint, messages=tool_loop(error=True))

    assert text_of(events) == "Rome is warmer."  # (the upstream checks the exchange as OpenAI does)
    assert upstream.last.json["messages"] == [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Oslo: 4 °C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "Rome: 18 °C"}]},
        # a tool message takes text only: the image follows the results in a user message
        {"role": "user", "content": [{"type": "text", "text": TOOL_IMAGES_NOTE},
                                     {"type": "image_url", "image_url": {"url": PNG}}]},
        {"role": "user", "content": "Which is warmer?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_3", "type": "function", "function": {"name": "compare", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "call_3", "content": "Rome"},
    ]


def test_azure_writes_a_tool_loop_as_openai_does(make_endpoint, upstream):
    from endpoints.models import Kind

    endpoint = make_endpoint("Azure", kind=Kind.AZURE_OPENAI, base_url=upstream.url + "/openai/deployments",
                             models=("gpt-test",))

    run_chat(endpoint, messages=tool_loop())

    assert upstream.last.path == "/openai/deployments/gpt-test/chat/completions"
    messages = upstream.last.json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "user", "user", "assistant", "tool"]
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "Oslo: 4 °C"}


def test_a_tool_result_of_images_only_leaves_its_tool_message_empty(endpoint, upstream):
    from endpoints.adapters.types import ChatMessage, ToolCall

    run_chat(endpoint, messages=[
        ChatMessage("user", "Screenshot?"),
        ChatMessage("assistant", "", tool_calls=[ToolCall("call_s", "screenshot", "{}")]),
        ChatMessage("tool", [{"type": "image_url", "image_url": {"url": PNG}}], tool_call_id="call_s"),
    ])

    assert upstream.last.json["messages"][2:] == [
        {"role": "tool", "tool_call_id": "call_s", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": TOOL_IMAGES_NOTE},
                                     {"type": "image_url", "image_url": {"url": PNG}}]},
    ]
