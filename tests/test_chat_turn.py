"""The chat turn service: who may use what, the balance check, the context window, saving while
streaming, one answer at a time, and a caller that goes away (the gateway's case)."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from billing.models import Transaction
from chat.models import Conversation, Message
from chat.services import Operation, TurnAction, prepare_turn, stream_turn
from endpoints.models import EndpointModel, ModelSpec
from portal.models import PortalSettings

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]


def db(fn, *args, **kwargs):
    return sync_to_async(fn)(*args, **kwargs)


def _set_role(user, **fields):
    role = user.role
    for name, value in fields.items():
        if name in ("allowed_endpoints", "allowed_model_specs"):
            getattr(role, name).set(value)
        else:
            setattr(role, name, value)
    role.save()


async def _refused(socket, **frame):
    await socket.send(type="send", text=frame.pop("text", "hi"), **frame)
    error = await socket.receive()
    assert error["type"] == "error", error
    return error


async def test_a_role_without_chat_is_refused_before_anything_happens(chat_socket, chat_endpoint, upstream, chatter):
    endpoint = await db(chat_endpoint)
    await db(_set_role, chatter, can_chat=False)
    socket = await chat_socket()

    error = await _refused(socket, endpoint=endpoint.name, model="test-model")

    assert error["code"] == "forbidden" and "does not allow chatting" in error["message"]
    assert upstream.completions() == [] and await db(Conversation.objects.count) == 0


async def test_a_role_may_be_limited_to_some_endpoints(chat_socket, chat_endpoint, upstream, chatter):
    allowed = await db(chat_endpoint, "allowed")
    other = await db(chat_endpoint, "other")
    await db(_set_role, chatter, allowed_endpoints=[allowed])
    socket = await chat_socket()

    error = await _refused(socket, endpoint="other", model="test-model")
    assert error["code"] == "forbidden" and error["message"] == "Your role may not use the endpoint 'other'."
    answer = await socket.ask("hi", endpoint="allowed", model="test-model")
    assert answer.done["unfinished"] is False
    assert [r.json["model"] for r in upstream.completions()] == ["test-model"]
    assert other.pk  # exists, enabled, just not for this role


async def test_specs_only_roles_and_enforced_specs(chat_socket, chat_endpoint, upstream, chatter):
    endpoint = await db(chat_endpoint)
    spec = await db(
        ModelSpec.objects.create, name="safe", label="Safe", endpoint=endpoint, model="test-model", temperature=0.1
    )
    await db(_set_role, chatter, can_choose_models=False)
    socket = await chat_socket()

    error = await _refused(socket, endpoint=endpoint.name, model="test-model")
    assert error["code"] == "forbidden" and "may only use model specs" in error["message"]
    answer = await socket.ask("hi", spec="safe")
    assert answer.created["spec"] == "safe"

    await db(_set_role, chatter, can_choose_models=True)
    portal = await db(PortalSettings.load)
    portal.model_specs_enforce = True
    await db(portal.save)
    error = await _refused(socket, endpoint=endpoint.name, model="test-model")
    assert "Only model specs may be used" in error["message"]
    # with specs enforced, the spec's parameters win over the user's
    await socket.ask("hi", spec="safe", params={"temperature": 1.5})
    assert upstream.completions()[-1].json["temperature"] == 0.1
    assert spec.pk


async def test_a_role_may_be_limited_to_some_specs(chat_socket, chat_endpoint, upstream, chatter):
    endpoint = await db(chat_endpoint)
    mine = await db(ModelSpec.objects.create, name="mine", label="Mine", endpoint=endpoint, model="test-model")
    await db(ModelSpec.objects.create, name="theirs", label="Theirs", endpoint=endpoint, model="test-model")
    await db(_set_role, chatter, allowed_model_specs=[mine])
    socket = await chat_socket()

    error = await _refused(socket, spec="theirs")
    assert error["code"] == "forbidden" and error["message"] == "You may not use the model spec 'Theirs'."
    assert (await socket.ask("hi", spec="mine")).done["unfinished"] is False


async def test_the_default_spec_answers_when_nothing_is_chosen(chat_socket, chat_endpoint, upstream):
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    error = await _refused(socket)
    assert error["message"] == "Choose an endpoint and a model (or a model spec) for this conversation."
    await db(
        ModelSpec.objects.create,
        name="default",
        label="Default",
        endpoint=endpoint,
        model="other-model",
        is_default=True,
    )
    answer = await socket.ask("hi")
    assert (answer.created["spec"], answer.created["model"]) == ("default", "other-model")


async def test_unknown_models_and_switched_off_endpoints_are_refused(chat_socket, chat_endpoint, upstream):
    endpoint = await db(chat_endpoint, "Acme")
    socket = await chat_socket()
    error = await _refused(socket, endpoint="Acme", model="gpt-unlisted")
    assert error["code"] == "not_found"
    assert error["message"] == "The endpoint 'Acme' has no model 'gpt-unlisted' (available: test-model, other-model)."
    endpoint.enabled = False
    await db(endpoint.save)
    error = await _refused(socket, endpoint="Acme", model="test-model")
    assert error["message"] == "The endpoint 'Acme' is switched off."
    assert upstream.completions() == []


async def test_fetched_models_may_be_used(chat_socket, chat_endpoint, upstream):
    await db(chat_endpoint, "Fetching", models_fetch=True)
    upstream.models(["fetched-model"])
    socket = await chat_socket()
    answer = await socket.ask("hi", endpoint="Fetching", model="fetched-model")
    assert answer.done["unfinished"] is False
    error = await _refused(socket, endpoint="Fetching", model="not-fetched")
    assert error["message"] == "The endpoint 'Fetching' has no model 'not-fetched'."


async def test_without_balance_the_request_is_refused_and_nothing_is_sent(
    chat_socket, chat_endpoint, upstream, chatter
):
    from billing.services import ensure_balance

    endpoint = await db(
        chat_endpoint, rates={"prompt_rate": Decimal(1000), "completion_rate": Decimal(1000), "context_tokens": 8000}
    )
    await db(_set_role, chatter, balance_enabled=True, start_balance=Decimal(10))
    await db(ensure_balance, user=chatter)
    socket = await chat_socket()

    error = await _refused(socket, endpoint=endpoint.name, model="test-model", text="a question " * 50)

    assert error["code"] == "balance" and error["message"]
    assert upstream.completions() == []
    assert await db(Message.objects.count) == 0 and await db(Conversation.objects.count) == 0


async def test_one_answer_at_a_time_per_conversation(chat_socket, chat_endpoint, upstream):
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    upstream.reply(text=" ".join(["slow"] * 20), chunk_delay=0.03)
    await socket.send(type="send", text="first", endpoint=endpoint.name, model="test-model")
    created = (await socket.until("created"))[-1]
    await socket.send(type="send", text="second", conversation_id=created["conversation_id"])
    frames = await socket.until("done")
    busy = [f for f in frames if f["type"] == "error" and f.get("code") == "busy"]
    assert busy and "still being written" in busy[0]["message"]
    # once done, the conversation takes the next message
    assert (await socket.ask("second", conversation_id=created["conversation_id"])).done["unfinished"] is False


def test_an_answer_that_ends_frees_only_its_own_claim():
    """The end of an answer (or a refused plan) releases the conversation only if that answer still
    holds it: one compare-and-delete of the value its claim wrote."""
    import uuid

    from chat.claims import claim_conversation, read_claim, release_conversation

    conversation_id = uuid.uuid4()
    claim_conversation(conversation_id, "answer-a", 7)

    release_conversation(conversation_id, "answer-b", 7)  # another answer's end
    release_conversation(conversation_id, "answer-a", 8)  # not claimed for this user
    assert read_claim(conversation_id).generation_id == "answer-a"

    release_conversation(conversation_id, "answer-a", 7)
    assert read_claim(conversation_id) is None


def _long_history(user, endpoint, turns: int) -> Conversation:
    conversation = Conversation.objects.create(
        user=user, endpoint=endpoint, endpoint_name=endpoint.name, model="test-model"
    )
    parent = None
    for i in range(turns):
        for role in ("user", "assistant"):
            parent = Message.objects.create(
                conversation=conversation, user=user, parent=parent, role=role,
                text=f"{role} turn {i}: " + "lorem ipsum dolor sit amet " * 10,
            )
    return conversation


async def test_the_context_is_trimmed_to_the_model_window(chat_socket, chat_endpoint, upstream, chatter):
    endpoint = await db(chat_endpoint)
    await db(EndpointModel.objects.filter(endpoint=endpoint, name="test-model").update, context_tokens=600)
    conversation = await db(_long_history, chatter, endpoint, 20)
    socket = await chat_socket()

    answer = await socket.ask("the newest question", conversation_id=str(conversation.pk))

    assert answer.done["unfinished"] is False
    sent = upstream.completions()[-1].json["messages"]
    assert sent[-1] == {"role": "user", "content": "the newest question"}
    assert 2 < len(sent) < 20 and sent[0]["role"] == "user"  # oldest turns dropped, starts with a user turn
    assert sent[-2]["content"].startswith("assistant turn 19")

    error = await _refused(socket, conversation_id=str(conversation.pk), text="word " * 2000)
    assert error["code"] == "invalid" and "too long for test-model" in error["message"]


async def test_the_answer_is_saved_while_it_streams(chat_socket, chat_endpoint, upstream):
    endpoint = await db(chat_endpoint)
    words = " ".join(f"w{i}" for i in range(60))
    upstream.reply(text=words, chunk_delay=0.04)
    socket = await chat_socket()
    await socket.send(type="send", text="go", endpoint=endpoint.name, model="test-model")
    created = (await socket.until("created"))[-1]
    await asyncio.sleep(1.6)

    saved = await db(Message.objects.get, pk=created["assistant_message_id"])
    assert saved.unfinished and saved.text and words.startswith(saved.text) and saved.text != words

    answer = await socket.answer()
    final = await db(Message.objects.get, pk=created["assistant_message_id"])
    assert final.text == words and not final.unfinished and answer.done["finish_reason"] == "stop"


async def test_a_refused_send_leaves_its_conversation_free(chat_socket, chat_endpoint, upstream, chatter):
    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    first = await socket.ask("first", endpoint=endpoint.name, model="test-model")
    conversation_id = first.created["conversation_id"]

    error = await _refused(socket, conversation_id=conversation_id, endpoint="no-such-endpoint")
    assert error["code"] == "not_found"

    assert (await socket.ask("again", conversation_id=conversation_id)).done["unfinished"] is False


async def test_sending_into_another_users_busy_conversation_says_not_found(
    chat_socket, chat_endpoint, upstream, make_user
):
    from tests.chatsocket import session_cookie

    endpoint = await db(chat_endpoint)
    socket = await chat_socket()
    upstream.reply(text=" ".join(["slow"] * 20), chunk_delay=0.03)
    await socket.send(type="send", text="mine", endpoint=endpoint.name, model="test-model")
    created = (await socket.until("created"))[-1]
    intruder = await chat_socket(await db(lambda: session_cookie(make_user("intruder"))))

    error = await _refused(intruder, conversation_id=created["conversation_id"])

    assert error["code"] == "not_found"
    assert (await socket.until("done"))[-1]["unfinished"] is False


async def test_a_caller_that_goes_away_keeps_and_bills_the_partial_answer(chat_endpoint, upstream, chatter):
    """The gateway iterates stream_turn directly; a client that disconnects closes the iterator."""
    endpoint = await db(chat_endpoint)
    upstream.reply(text=" ".join(["token"] * 50), chunk_delay=0.02)
    turn = await prepare_turn(
        user=chatter, action=TurnAction(op=Operation.SEND, text="hello", endpoint=endpoint.name, model="test-model")
    )
    stream = stream_turn(turn)
    received = []
    async for event in stream:
        received.append(event)
        if len(received) == 3:
            break
    await stream.aclose()

    message = await db(Message.objects.get, pk=turn.assistant_message.pk)
    assert message.unfinished and message.finish_reason == "stopped" and message.text.startswith("token token")
    rows = await db(lambda: list(Transaction.objects.filter(message=message)))
    assert rows and {r.context for r in rows} == {"abort"} and all(r.estimated for r in rows)
    await sync_to_async(_close)()


def _close():
    from django.db import connections

    connections.close_all()


async def test_a_stop_before_the_answer_started_ends_it_at_once(chat_endpoint, upstream, chatter):
    """Stop pressed in the same moment as send: the provider request is cancelled before its task
    ever ran. The turn still ends (stopped, rows saved, nothing billed: nothing was asked)."""
    from chat.services import StopSignal

    endpoint = await db(chat_endpoint)
    turn = await prepare_turn(
        user=chatter, action=TurnAction(op=Operation.SEND, text="hello", endpoint=endpoint.name, model="test-model")
    )
    stop = StopSignal()
    stop.set()

    async def collect() -> list:
        return [event async for event in stream_turn(turn, stop=stop)]

    events = await asyncio.wait_for(collect(), timeout=10)

    done = events[-1]
    assert done.finish_reason == "stopped" and done.unfinished and done.text == ""
    message = await db(Message.objects.get, pk=turn.assistant_message.pk)
    assert message.unfinished and message.finish_reason == "stopped"
    assert upstream.completions() == []
    assert await db(Transaction.objects.filter(message=message).count) == 0


async def test_launch_puts_the_provider_request_on_the_wire_in_the_next_turn_of_the_loop(
    chat_endpoint, upstream, chatter
):
    """On a loaded loop each turn a new answer waits costs its first token 1–2 ms: the provider
    request's task starts next to the answer's (not from it, a turn later): launching adds one turn
    to the ones httpx itself takes to put a request on a warm connection."""
    from chat import live
    from endpoints import http

    endpoint = await db(chat_endpoint)
    asked = {"endpoint": endpoint.name, "model": "test-model"}
    turns, ticking = 0, True
    sent_at: list[int] = []

    class Counted(live.Generation):
        async def request_sent(self) -> None:
            sent_at.append(turns)
            await super().request_sent()

    def tick() -> None:  # once per turn of the loop while the test runs
        nonlocal turns
        turns += 1
        if ticking:
            asyncio.get_running_loop().call_soon(tick)

    async def httpx_turns() -> int:  # a request on the warm connection, straight through httpx
        sent: list[int] = []

        async def on_sent() -> None:
            sent.append(turns)

        started = turns
        async with http.stream("POST", f"{upstream.base_url}/chat/completions", on_sent=on_sent,
                               json={"model": "m", "messages": [{"role": "user", "content": "direct"}]}) as response:
            await response.aread()
        return sent[0] - started

    asyncio.get_running_loop().call_soon(tick)
    for text in ("warm up", "counted"):  # (the first answer opens the pooled connection)
        turn = await prepare_turn(user=chatter, action=TurnAction(op=Operation.SEND, text=text, **asked))
        launched_at = turns
        live.launch(Counted(turn, request_id=None))
        await live.wait_for_generations()
    direct = await httpx_turns()
    ticking = False
    assert sent_at[-1] - launched_at == 1 + direct
    assert [r.json["messages"][-1]["content"] for r in upstream.completions()] == ["warm up", "counted", "direct"]
