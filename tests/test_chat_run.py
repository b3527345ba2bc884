"""A turn driven without a websocket (chat.run): start it, read its events, stop it — against the
loopback upstream, as the REST API or the OpenAI-compatible gateway would."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from billing.models import Transaction
from chat.errors import Forbidden
from chat.models import Message
from chat.run import start_turn
from chat.services import Done, Operation, TurnAction
from endpoints.adapters.types import TextDelta

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]


def db(fn, *args, **kwargs):
    return sync_to_async(fn)(*args, **kwargs)


def _ask(endpoint, text="hello") -> TurnAction:
    return TurnAction(op=Operation.SEND, text=text, endpoint=endpoint.name, model="test-model")


def _transactions(message_id):
    return list(Transaction.objects.filter(message_id=message_id))


async def test_a_turn_runs_to_the_end_without_a_socket(chat_endpoint, upstream, chatter):
    endpoint = await db(chat_endpoint)
    upstream.reply(text="Hello without a socket.")

    run = await start_turn(user=chatter, action=_ask(endpoint))
    events = [event async for event in run]

    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    done = events[-1]
    assert isinstance(done, Done) and text == done.text == "Hello without a socket."
    assert done.unfinished is False and done.finish_reason == "stop"
    message = await db(Message.objects.get, pk=done.message_id)
    assert message.text == "Hello without a socket." and message.user_id == chatter.pk
    assert await db(_transactions, done.message_id)


async def test_stopping_a_turn_keeps_and_bills_what_was_written(chat_endpoint, upstream, chatter):
    endpoint = await db(chat_endpoint)
    words = " ".join(["token"] * 100)
    upstream.reply(text=words, chunk_delay=0.02)

    run = await start_turn(user=chatter, action=_ask(endpoint))
    events = []
    async for event in run:
        events.append(event)
        if len(events) == 3:
            run.stop()

    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "stopped" and done.unfinished is True
    assert done.text and words.startswith(done.text) and done.text != words
    message = await db(Message.objects.get, pk=done.message_id)
    assert message.text == done.text and message.finish_reason == "stopped"
    assert {t.context for t in await db(_transactions, done.message_id)} == {"abort"}


async def test_a_refused_turn_raises_before_anything_is_asked(chat_endpoint, upstream, chatter):
    endpoint = await db(chat_endpoint)
    role = chatter.role
    role.can_chat = False
    await db(role.save)

    with pytest.raises(Forbidden, match="does not allow chatting"):
        await start_turn(user=chatter, action=_ask(endpoint))
    assert upstream.completions() == []
