"""Chatting over the websocket (the real ASGI app: origin check, session auth, channel layer) with
answers streamed by the loopback upstream through the production adapters."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async

from billing.models import Transaction
from chat.models import Conversation, Message
from endpoints.adapters.types import Usage
from tests.chatsocket import open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]


def db(fn, *args, **kwargs):
    return sync_to_async(fn)(*args, **kwargs)


def _messages(conversation_id):
    return list(Message.objects.filter(conversation_id=conversation_id).order_by("created_at"))


def _ledger(message_id):
    return list(Transaction.objects.filter(message_id=message_id).order_by("token_type"))


PROTOCOLS = {
    "openai_chat": dict(provider="openai_chat"),
    "anthropic": dict(provider="anthropic"),
    "openai_responses": dict(provider="openai_responses"),
    "azure": dict(provider="openai_chat", kind="azureOpenAI", query_params={"api-version": "2024-10-21"}),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_user_streams_an_answer_from_each_protocol(protocol, chat_socket, chat_endpoint, upstream, chatter):
    fields = dict(PROTOCOLS[protocol])
    if protocol == "azure":
        fields["base_url"] = upstream.url + "/openai/deployments"
    endpoint = await db(chat_endpoint, f"ep-{protocol}", **fields)
    upstream.reply(
        text="Bonjour, je suis là.", reasoning="thinking it over", usage=Usage(input_tokens=12, output_tokens=6)
    )
    socket = await chat_socket()

    answer = await socket.ask("Say hello in French", endpoint=endpoint.name, model="test-model", request_id="r1")

    created = answer.created
    assert created["request_id"] == "r1" and created["new_conversation"] is True
    assert created["endpoint"] == endpoint.name and created["model"] == "test-model"
    assert answer.text == "Bonjour, je suis là."
    assert answer.reasoning == "thinking it over"
    assert answer.done["finish_reason"] in ("stop", "end_turn", "completed") and answer.done["unfinished"] is False
    assert answer.usage["usage"]["prompt_tokens"] == 12 and answer.usage["usage"]["completion_tokens"] == 6
    assert answer.usage["estimated"] is False

    question, reply = await db(_messages, answer.conversation_id)
    assert (question.role, question.text, question.parent_id) == ("user", "Say hello in French", None)
    assert str(question.pk) == created["user_message_id"] and str(reply.pk) == created["assistant_message_id"]
    assert reply.parent_id == question.pk and reply.text == "Bonjour, je suis là."
    assert {"type": "reasoning", "text": "thinking it over"} in reply.content
    assert (reply.prompt_tokens, reply.completion_tokens, reply.unfinished) == (12, 6, False)
    rows = await db(_ledger, reply.pk)
    assert {(r.token_type, r.tokens, r.context) for r in rows} == {
        ("prompt", 12, "message"),
        ("completion", 6, "message"),
    }
    assert all(r.user_id == chatter.pk and str(r.conversation_id) == answer.conversation_id for r in rows)

    sent = upstream.completions()[-1]
    if protocol == "azure":
        assert sent.path.endswith("/openai/deployments/test-model/chat/completions")
        assert sent.query["api-version"] == "2024-10-21" and "api-key" in sent.headers
    texts = [m for m in sent.json.get("messages", sent.json.get("input", []))]
    assert "Say hello in French" in str(texts)


async def test_a_conversation_goes_on_from_the_last_answer(chat_socket, chat_endpoint, upstream):
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    upstream.reply(text="Paris.")
    first = await socket.ask("Capital of France?", endpoint=endpoint.name, model="test-model")
    upstream.reply(text="About 2 million.")
    second = await socket.ask("And its population?", conversation_id=first.conversation_id)

    assert second.created["new_conversation"] is False
    assert second.created["user_message"]["parent_id"] == first.message_id
    sent = upstream.completions()[-1].json["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "Capital of France?"), ("assistant", "Paris."), ("user", "And its population?"),
    ]


async def test_editing_a_message_starts_a_sibling_branch(chat_socket, chat_endpoint, upstream):
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    upstream.reply(text="One.")
    first = await socket.ask("Count to one", endpoint=endpoint.name, model="test-model")
    upstream.reply(text="Two.")
    second = await socket.ask("Now two", conversation_id=first.conversation_id)

    upstream.reply(text="Three.")
    await socket.send(type="edit", message_id=second.created["user_message_id"], text="Now three")
    edited = await socket.answer()

    assert edited.created["operation"] == "edit"
    assert edited.created["user_message"]["parent_id"] == first.message_id  # sibling of "Now two"
    assert edited.text == "Three."
    sent = upstream.completions()[-1].json["messages"]
    assert [m["content"] for m in sent] == ["Count to one", "One.", "Now three"]
    messages = await db(_messages, first.conversation_id)
    siblings = [m for m in messages if m.parent_id == uuid.UUID(first.message_id)]
    assert sorted(m.text for m in siblings) == ["Now three", "Now two"]


async def test_regenerating_adds_a_sibling_answer(chat_socket, chat_endpoint, upstream):
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    upstream.reply(text="A first try.")
    first = await socket.ask("Tell a joke", endpoint=endpoint.name, model="test-model")
    upstream.reply(text="A better try.")
    await socket.send(type="regenerate", message_id=first.message_id)
    again = await socket.answer()

    assert again.created["operation"] == "regenerate" and again.created["user_message_id"] is None
    assert again.created["parent_id"] == first.created["user_message_id"]
    assert again.message_id != first.message_id and again.text == "A better try."
    sent = upstream.completions()[-1].json["messages"]
    assert [m["content"] for m in sent] == ["Tell a joke"]
    answers = [m for m in await db(_messages, first.conversation_id) if m.role == "assistant"]
    assert [a.text for a in answers] == ["A first try.", "A better try."]


async def test_continuing_a_cut_off_answer_appends_to_it(chat_socket, chat_endpoint, upstream):
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    upstream.reply(text="Once upon a time", finish="length", usage=Usage(input_tokens=8, output_tokens=4))
    first = await socket.ask("Tell a story", endpoint=endpoint.name, model="test-model")
    assert first.done["finish_reason"] == "length" and first.done["unfinished"] is True

    upstream.reply(text=" there was a portal.", usage=Usage(input_tokens=14, output_tokens=5))
    await socket.send(type="continue", message_id=first.message_id)
    more = await socket.answer()

    assert more.created["assistant_message_id"] == first.message_id
    assert more.created["text"] == "Once upon a time"
    assert more.text == "Once upon a time there was a portal."
    assert more.done["unfinished"] is False
    sent = upstream.completions()[-1].json["messages"]
    assert sent[-1] == {"role": "assistant", "content": "Once upon a time"}
    (_, answer) = await db(_messages, first.conversation_id)
    assert answer.text == "Once upon a time there was a portal."
    assert (answer.prompt_tokens, answer.completion_tokens) == (22, 9)  # both calls add up
    rows = await db(_ledger, answer.pk)
    assert sorted((r.token_type, r.tokens) for r in rows) == [
        ("completion", 4), ("completion", 5), ("prompt", 8), ("prompt", 14),
    ]


async def test_stopping_keeps_and_bills_the_partial_answer(chat_socket, chat_endpoint, upstream):
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    words = " ".join(f"word{i}" for i in range(200))
    upstream.reply(text=words, chunk_delay=0.05)
    await socket.send(type="send", text="Talk a lot", endpoint=endpoint.name, model="test-model")
    frames = await socket.until("delta")
    frames += [await socket.receive(), await socket.receive()]
    conversation_id = frames[0]["conversation_id"]
    await socket.send(type="stop", conversation_id=conversation_id)
    rest = await socket.answer()

    done = rest.done
    assert done["finish_reason"] == "stopped" and done["unfinished"] is True
    (_, answer) = await db(_messages, conversation_id)
    assert answer.unfinished and answer.finish_reason == "stopped"
    assert answer.text and words.startswith(answer.text) and answer.text != words
    rows = await db(_ledger, answer.pk)
    assert rows and all(r.context == "abort" and r.estimated for r in rows)
    assert {r.token_type for r in rows} == {"prompt", "completion"}


async def test_a_fast_model_reaches_the_socket_in_batches_after_the_first_token(chat_socket, chat_endpoint, upstream):
    """The first token is sent on its own, at once; then deltas are merged (at most one frame per
    live.BATCH_SECONDS), so a model writing 500 chunks a second costs far fewer socket writes."""
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    words = [f"w{i}" for i in range(200)]
    upstream.reply(text=" ".join(words), chunk_delay=0.002)
    answer = await socket.ask("Quick", endpoint=endpoint.name, model="test-model")

    deltas = answer.of_type("delta")
    assert deltas[0]["text"].strip() == "w0"
    assert 2 <= len(deltas) < 100
    assert answer.text == " ".join(words)
    assert [d["seq"] for d in deltas] == sorted({d["seq"] for d in deltas})  # numbered, in order, once


async def test_stopping_before_the_first_token(chat_socket, chat_endpoint, upstream):
    """The model is still thinking: `created` is there (it is sent once the request is on its
    way), a stop ends the answer at once, without waiting for the provider."""
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    upstream.reply(text="too late", delay=3)
    await socket.send(type="send", text="Think hard", endpoint=endpoint.name, model="test-model")
    created = (await socket.until("created"))[-1]
    started = asyncio.get_running_loop().time()
    await socket.send(type="stop", conversation_id=created["conversation_id"])
    rest = await socket.answer()

    assert asyncio.get_running_loop().time() - started < 2
    assert rest.done["finish_reason"] == "stopped" and rest.done["unfinished"] is True
    assert not [f for f in rest.frames if f["type"] == "delta"]
    (question, answer) = await db(_messages, created["conversation_id"])
    assert question.text == "Think hard" and answer.text == "" and answer.unfinished


async def test_switching_model_endpoint_and_spec_mid_conversation(chat_socket, chat_endpoint, upstream):
    from endpoints.models import ModelSpec

    first_endpoint = await db(chat_endpoint, "first")
    second_endpoint = await db(chat_endpoint, "second", models=("second-model",))
    await db(
        ModelSpec.objects.create, name="helpful", label="Helpful", endpoint=second_endpoint,
        model="second-model", system_prompt="Be helpful.", temperature=0.3,
    )
    socket = await chat_socket()
    one = await socket.ask("Hi", endpoint=first_endpoint.name, model="test-model")
    conversation_id = one.conversation_id

    two = await socket.ask("Hi again", conversation_id=conversation_id, model="other-model")
    assert two.created["model"] == "other-model" and upstream.completions()[-1].json["model"] == "other-model"

    three = await socket.ask("And again", conversation_id=conversation_id, endpoint="second", model="second-model")
    assert three.created["endpoint"] == "second"

    four = await socket.ask("With the spec", conversation_id=conversation_id, spec="helpful")
    sent = upstream.completions()[-1].json
    assert four.created["spec"] == "helpful" and four.created["sender"] == "Helpful"
    assert sent["model"] == "second-model" and sent["temperature"] == 0.3
    assert sent["messages"][0] == {"role": "system", "content": "Be helpful."}
    assert [m["content"] for m in sent["messages"][1:]] == [
        "Hi", "Hello from the upstream.", "Hi again", "Hello from the upstream.", "And again",
        "Hello from the upstream.", "With the spec",
    ]

    conversation = await db(Conversation.objects.select_related("model_spec").get, pk=conversation_id)
    assert conversation.model_spec.name == "helpful" and conversation.model == "second-model"
    models = [m.model for m in await db(_messages, conversation_id) if m.role == "assistant"]
    assert models == ["test-model", "other-model", "second-model", "second-model"]


async def test_a_reload_mid_stream_receives_the_answer_so_far_then_the_rest(chat_socket, chat_endpoint, upstream):
    endpoint = await db(chat_endpoint)
    words = " ".join(f"w{i}" for i in range(60))
    upstream.reply(text=words, chunk_delay=0.04)
    first_tab = await chat_socket()
    await first_tab.send(type="send", text="Stream slowly", endpoint=endpoint.name, model="test-model")
    frames = await first_tab.until("delta")
    started = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - started < 1.3:  # past the first snapshot of the text
        frames.append(await first_tab.receive())
    conversation_id = frames[0]["conversation_id"]
    await first_tab.close()  # the tab is reloaded: the answer goes on without it

    reloaded = await chat_socket()
    await reloaded.send(type="join", conversation_id=conversation_id)
    joined = await reloaded.receive()
    assert joined["type"] == "joined" and joined["live"] is True
    answer = await reloaded.answer()
    assert answer.created["assistant_message_id"] == frames[0]["assistant_message_id"]
    snapshot = answer.of_type("delta")[0]
    assert snapshot.get("snapshot") is True and len(snapshot["text"].split()) >= 10
    assert answer.text == words  # what was written before the reload, then the rest: nothing twice
    assert answer.done["unfinished"] is False


async def test_a_reload_while_the_model_thinks_gets_the_whole_answer(chat_socket, chat_endpoint, upstream):
    """Before the first token a new conversation has no rows yet; joining it works all the same."""
    endpoint = await db(chat_endpoint)
    upstream.reply(text="Worth the wait.", delay=0.8)
    first_tab = await chat_socket()
    await first_tab.send(type="send", text="Think first", endpoint=endpoint.name, model="test-model")
    created = (await first_tab.until("created"))[-1]
    await first_tab.close()

    reloaded = await chat_socket()
    await reloaded.send(type="join", conversation_id=created["conversation_id"])
    joined = await reloaded.receive()
    assert joined["type"] == "joined" and joined["live"] is True and joined["title"] == "New Chat"
    answer = await reloaded.answer()
    assert answer.created["assistant_message_id"] == created["assistant_message_id"]
    assert answer.text == "Worth the wait." and answer.done["unfinished"] is False


async def test_a_second_tab_follows_the_same_stream(chat_socket, chat_endpoint, upstream, chatter_cookie):
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    upstream.reply(text="first answer")
    first = await socket.ask("Start", endpoint=endpoint.name, model="test-model")
    other_tab = await chat_socket()
    await other_tab.send(type="join", conversation_id=first.conversation_id)
    joined = await other_tab.until("joined")
    await other_tab.until("done")  # the finished answer is replayed for a moment after it ends

    upstream.reply(text="a reply both tabs see", chunk_delay=0.01)
    await socket.send(type="send", text="More", conversation_id=first.conversation_id)
    mine, theirs = await asyncio.gather(socket.answer(), other_tab.answer())
    assert joined[-1]["live"] is False
    assert mine.text == theirs.text == "a reply both tabs see"
    assert mine.message_id == theirs.message_id


async def test_joining_after_the_end_replays_the_finished_answer(chat_socket, chat_endpoint, upstream):
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    upstream.reply(text="all done")
    first = await socket.ask("Go", endpoint=endpoint.name, model="test-model")
    later = await chat_socket()
    await later.send(type="join", conversation_id=first.conversation_id)
    joined = await later.receive()
    replay = await later.answer()
    assert joined["live"] is False and replay.text == "all done" and replay.done["unfinished"] is False


async def test_an_outsider_cannot_join_or_stop_another_users_conversation(
    chat_socket, chat_endpoint, upstream, make_user
):
    from tests.chatsocket import session_cookie

    endpoint = await db(chat_endpoint)
    outsider = await db(make_user, "outsider")
    outsider_cookie = await db(session_cookie, outsider)
    owner = await chat_socket()
    upstream.reply(text=" ".join(["secret"] * 30), chunk_delay=0.03)
    await owner.send(type="send", text="My secret plan", endpoint=endpoint.name, model="test-model")
    created = (await owner.until("created"))[-1]
    conversation_id = created["conversation_id"]

    intruder = await chat_socket(outsider_cookie)
    await intruder.send(type="join", conversation_id=conversation_id)
    assert (await intruder.receive()) | {"request_id": None} == {
        "type": "error", "code": "not_found", "message": "Conversation not found.", "request_id": None,
    }
    await intruder.send(type="stop", conversation_id=conversation_id)
    assert (await intruder.receive())["code"] == "not_found"
    for kind, extra in (("regenerate", {}), ("continue", {}), ("edit", {"text": "mine now"})):
        await intruder.send(type=kind, message_id=created["assistant_message_id"], **extra)
        assert (await intruder.receive())["code"] == "not_found"
    await intruder.send(type="send", text="hi", conversation_id=conversation_id)
    assert (await intruder.receive())["code"] == "not_found"

    answer = await owner.answer()
    assert answer.done["unfinished"] is False  # the outsider's stop did nothing
    assert await intruder.nothing_within(0.2)  # and nothing of the answer reached the outsider


async def test_signed_out_sockets_are_closed_with_4401(db):
    connected, _, socket = await open_socket(None)

    closed = await socket.communicator.receive_output(timeout=5)

    assert connected  # accepted, so the browser sees the close code (a refusal would be an HTTP 403)
    assert closed["type"] == "websocket.close" and closed["code"] == 4401


async def test_sockets_from_another_origin_are_refused(chatter_cookie):
    connected, _, _ = await open_socket(chatter_cookie, origin="https://evil.example.com")
    assert not connected


async def test_parameters_the_portal_controls_cannot_be_set(chat_socket, chat_endpoint, upstream):
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    for params, message in (
        ({"model": "gpt-expensive"}, "The parameter 'model' is set by Atrium and cannot be changed."),
        ({"stream": False}, "The parameter 'stream' is set by Atrium and cannot be changed."),
        ({"temperature": "hot"}, "The parameter 'temperature' has the wrong type (str)."),
        ({"banana": 1}, "Unknown parameter 'banana'"),
    ):
        await socket.send(type="send", text="hi", endpoint=endpoint.name, model="test-model", params=params)
        error = await socket.receive()
        assert error["code"] == "invalid" and error["message"].startswith(message)
    assert upstream.completions() == []
    answer = await socket.ask(
        "hi", endpoint=endpoint.name, model="test-model", params={"temperature": 0.5, "max_tokens": 50}
    )
    assert answer.done["unfinished"] is False
    sent = upstream.completions()[-1].json
    assert (sent["temperature"], sent["max_tokens"]) == (0.5, 50)


async def test_invalid_frames_get_an_error_frame_and_the_socket_stays_open(chat_socket):
    socket = await chat_socket()
    await socket.send_text("this is not json")
    assert await socket.receive() == {
        "type": "error",
        "code": "invalid",
        "message": "The frame is not valid JSON.",
        "request_id": None,
    }
    await socket.send_text("[1, 2]")
    assert "JSON object" in (await socket.receive())["message"]
    await socket.send(type="dance", request_id="x")
    error = await socket.receive()
    assert error["request_id"] == "x" and "Unknown frame type 'dance'" in error["message"]
    await socket.send(type="send", request_id="y")
    error = await socket.receive()
    assert error["code"] == "invalid" and "text: Field required" in error["message"]
    await socket.send(type="join", conversation_id="not-a-uuid")
    assert "conversation_id" in (await socket.receive())["message"]
    await socket.send(type="send", text="x", surprise=True)
    assert "surprise" in (await socket.receive())["message"]
    await socket.send_bytes(b"\x00\x01")
    assert "binary" in (await socket.receive())["message"]
    await socket.send(type="join", conversation_id=str(uuid.uuid4()))
    assert (await socket.receive())["code"] == "not_found"
    await socket.send(type="send", text="   ")
    assert (await socket.receive())["message"] == "The message is empty."
    await socket.send(type="send", text="hi", endpoint="nope", model="x")
    assert (await socket.receive())["message"] == "There is no endpoint 'nope'."
    await socket.send(type="ping", request_id="p")
    assert await socket.receive() == {"type": "pong", "request_id": "p"}
