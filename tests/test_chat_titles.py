"""Conversation titles: the Celery task asks the configured endpoint/model in the configured way,
stores the title, pushes it to the open socket and bills the call (context "title")."""
from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from billing.models import Transaction
from chat.models import Conversation

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("builtin_roles", "eager_celery"),
]


async def _ask_and_get_title(socket, **fields):
    """Send, then read until both the answer is done and the title has arrived."""
    await socket.send(type="send", **fields)
    frames, seen = [], set()
    while not {"done", "title"} <= seen:
        frame = await socket.receive()
        frames.append(frame)
        seen.add(frame["type"])
    return frames


def _title_rows(conversation_id):
    return [(t.token_type, t.tokens, t.model, t.endpoint.name) for t in
            Transaction.objects.filter(conversation_id=conversation_id, context="title").select_related("endpoint")]


def _title_requests(upstream, model):
    return [r for r in upstream.completions() if r.json.get("model") == model and r.json.get("max_tokens") == 60]


async def test_an_immediate_completion_title(chat_socket, chat_endpoint, upstream):
    endpoint = await sync_to_async(chat_endpoint)(
        "Acme", title_convo=True, title_timing="immediate", title_model="title-model",
    )
    upstream.reply(model="title-model", text='"Paris Trip Plans."')
    upstream.reply(model="test-model", text="Here is a plan.")
    socket = await chat_socket()

    frames = await _ask_and_get_title(socket, text="Plan a trip to Paris", endpoint=endpoint.name, model="test-model")

    title = next(f for f in frames if f["type"] == "title")
    conversation_id = frames[0]["conversation_id"]
    assert title == {"type": "title", "conversation_id": conversation_id, "title": "Paris Trip Plans"}
    conversation = await sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert conversation.title == "Paris Trip Plans"
    (request,) = _title_requests(upstream, "title-model")
    (message,) = request.json["messages"]
    assert message["role"] == "system"
    assert message["content"].endswith("User: Plan a trip to Paris\nAI: ")  # immediate: from the first message
    assert "tools" not in request.json
    rows = await sync_to_async(_title_rows)(conversation_id)
    assert sorted(rows) == [("completion", 5, "title-model", "Acme"), ("prompt", 10, "title-model", "Acme")]


async def test_a_final_structured_title_from_the_current_model(chat_socket, chat_endpoint, upstream):
    endpoint = await sync_to_async(chat_endpoint)(
        "Acme", title_convo=True, title_timing="final", title_method="functions", title_model="current_model",
        title_message_role="user", title_prompt="Name this chat.\n{convo}",
        title_prompt_template="Q: {input}\nA: {output}",
    )
    upstream.reply(text="The moon is 384,400 km away.")
    upstream.reply(
        text="", tool_calls=[{"id": "call_1", "name": "set_title", "arguments": json.dumps({"title": "Moon Distance"})}]
    )
    socket = await chat_socket()

    frames = await _ask_and_get_title(socket, text="How far is the moon?", endpoint=endpoint.name, model="other-model")

    assert [f for f in frames if f["type"] == "title"][0]["title"] == "Moon Distance"
    answer_request, title_request = upstream.completions()
    assert title_request.json["model"] == "other-model"  # current_model
    assert title_request.json["messages"][0] == {
        "role": "user", "content": "Name this chat.\nQ: How far is the moon?\nA: The moon is 384,400 km away.",
    }
    assert title_request.json["tools"][0]["function"]["name"] == "set_title"
    assert answer_request.json["messages"][-1]["content"] == "How far is the moon?"


async def test_the_title_endpoint_falls_back_to_the_conversations_endpoint(chat_socket, chat_endpoint, upstream):
    broken = await sync_to_async(chat_endpoint)("Broken titles", base_url=upstream.refused_url())
    endpoint = await sync_to_async(chat_endpoint)(
        "Acme", title_convo=True, title_timing="final", title_endpoint=broken, title_model="cheap-model",
    )
    upstream.reply(model="test-model", text="An answer.")
    upstream.reply(model="test-model", text="Fallback Title")
    socket = await chat_socket()

    frames = await _ask_and_get_title(socket, text="Hello there", endpoint=endpoint.name, model="test-model")

    assert [f for f in frames if f["type"] == "title"][0]["title"] == "Fallback Title"
    rows = await sync_to_async(_title_rows)(frames[0]["conversation_id"])
    assert {(model, name) for _, _, model, name in rows} == {("test-model", "Acme")}  # the failed try cost nothing


async def test_anthropic_titles_put_the_prompt_in_the_system_field(chat_socket, chat_endpoint, upstream):
    endpoint = await sync_to_async(chat_endpoint)(
        "Claude", provider="anthropic", title_convo=True, title_model="current_model",
    )
    upstream.reply(text="Hello!")
    upstream.reply(text="Greeting Exchange")
    socket = await chat_socket()

    frames = await _ask_and_get_title(socket, text="Hi Claude", endpoint=endpoint.name, model="test-model")

    assert [f for f in frames if f["type"] == "title"][0]["title"] == "Greeting Exchange"
    title_request = [r for r in upstream.completions() if r.json.get("max_tokens") == 60][0]
    assert "User: Hi Claude" in json.dumps(title_request.json["system"])  # a string or text blocks
    assert title_request.json["messages"][0]["role"] == "user"


async def test_no_title_is_asked_for_when_titles_are_off_or_the_chat_goes_on(chat_socket, chat_endpoint, upstream):
    endpoint = await sync_to_async(chat_endpoint)("Quiet")
    socket = await chat_socket()
    first = await socket.ask("one", endpoint=endpoint.name, model="test-model")
    await socket.ask("two", conversation_id=first.conversation_id)
    assert len(upstream.completions()) == 2
    assert await socket.nothing_within(0.3)
