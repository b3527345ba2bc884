"""Temporary chats are marked when they start: a `send` (websocket frame or `POST /api/chat/send`)
with `temporary: true` and no conversation makes a temporary conversation that expires after the
portal's retention window. Only new conversations, only for roles allowed them. (Their purge:
tests/test_library_temporary.py; the list: tests/test_api_conversation_list.py.)"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from accounts.models import Role
from chat.models import Conversation, Message
from portal.models import PortalSettings

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]


def db(fn, *args, **kwargs):
    return sync_to_async(fn)(*args, **kwargs)


def _window_of_hours(hours: int) -> None:
    portal = PortalSettings.load()
    portal.temporary_chat_retention_hours = hours
    portal.save()


def _conversation(pk: str) -> Conversation:
    return Conversation.objects.get(pk=pk)


def _forbid_temporary_chats(user) -> None:
    user.role = Role.objects.create(name="Kiosk", can_temporary_chat=False)
    user.save()


@pytest.fixture
async def acme(chat_endpoint):
    return await db(chat_endpoint, "Acme", models=("test-model",))


async def test_a_send_marked_temporary_starts_a_temporary_chat_expiring_after_the_window(
    chat_socket, acme, upstream
):
    await db(_window_of_hours, 2)
    upstream.reply(text="Forgotten soon.")
    socket = await chat_socket()
    before = timezone.now()

    answer = await socket.ask("Psst", endpoint=acme.name, model="test-model", temporary=True)

    conversation = await db(_conversation, answer.conversation_id)
    assert answer.created["temporary"] is True and answer.created["new_conversation"] is True
    assert answer.text == "Forgotten soon."
    assert conversation.temporary is True
    assert before + dt.timedelta(hours=2) <= conversation.expires_at <= timezone.now() + dt.timedelta(hours=2)


async def test_the_next_send_into_a_temporary_chat_is_told_it_is_temporary(chat_socket, acme, upstream):
    upstream.reply(text="One.")
    socket = await chat_socket()
    first = await socket.ask("Psst", endpoint=acme.name, model="test-model", temporary=True)
    upstream.reply(text="Two.")

    second = await socket.ask("Again", conversation_id=first.conversation_id)

    assert second.created["temporary"] is True and second.created["new_conversation"] is False
    assert (await db(_conversation, first.conversation_id)).temporary is True


async def test_an_ordinary_send_is_not_temporary(chat_socket, acme, upstream):
    upstream.reply(text="Kept.")
    socket = await chat_socket()

    answer = await socket.ask("Hello", endpoint=acme.name, model="test-model")

    conversation = await db(_conversation, answer.conversation_id)
    assert answer.created["temporary"] is False
    assert (conversation.temporary, conversation.expires_at) == (False, None)


async def test_an_existing_conversation_cannot_be_made_temporary(chat_socket, acme, upstream):
    upstream.reply(text="Kept.")
    socket = await chat_socket()
    kept = await socket.ask("Hello", endpoint=acme.name, model="test-model")

    await socket.send(type="send", text="Now forget", conversation_id=kept.conversation_id, temporary=True,
                      request_id="t1")
    error = await socket.receive()

    assert error["type"] == "error" and error["code"] == "invalid" and error["request_id"] == "t1"
    assert "new conversation" in error["message"]
    assert (await db(_conversation, kept.conversation_id)).temporary is False
    assert await db(Message.objects.filter(conversation_id=kept.conversation_id).count) == 2
    assert len(upstream.completions()) == 1


async def test_a_role_without_temporary_chats_is_refused_and_nothing_is_written(chatter, chat_socket, acme, upstream):
    await db(_forbid_temporary_chats, chatter)
    socket = await chat_socket()

    await socket.send(type="send", text="Psst", endpoint=acme.name, model="test-model", temporary=True)
    error = await socket.receive()

    assert error["type"] == "error" and error["code"] == "forbidden" and "temporary" in error["message"]
    assert not await db(Conversation.objects.exists)
    assert upstream.completions() == []


# --- the same over the REST API ----------------------------------------------------------------------


async def _signed_in(user) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


def post(client: AsyncClient, body: dict[str, Any], path: str = "/api/chat/send"):
    return client.post(path, data=json.dumps(body), content_type="application/json")


async def test_the_rest_api_starts_a_temporary_chat(chatter, acme, upstream, live_cleanup):
    upstream.reply(text="Forgotten soon.")
    api = await _signed_in(chatter)

    response = await post(api, {"text": "Psst", "endpoint": acme.name, "model": "test-model", "temporary": True})

    answer = response.json()
    assert response.status_code == 200 and answer["message"]["text"] == "Forgotten soon."
    conversation = await db(_conversation, answer["conversation_id"])
    assert conversation.temporary is True and conversation.expires_at is not None
    listed = (await api.get("/api/conversations")).json()["items"]
    assert [(c["id"], c["temporary"]) for c in listed] == [(answer["conversation_id"], True)]


async def test_the_rest_api_refuses_temporary_for_an_existing_conversation_even_another_users(
    chatter, make_user, acme, upstream, live_cleanup
):
    upstream.reply(text="Kept.")
    api = await _signed_in(chatter)
    kept = (await post(api, {"text": "Hello", "endpoint": acme.name, "model": "test-model"})).json()
    stranger = await _signed_in(await db(make_user, "stranger"))

    own = await post(api, {"text": "Forget", "conversation_id": kept["conversation_id"], "temporary": True})
    other = await post(stranger, {"text": "Forget", "conversation_id": kept["conversation_id"], "temporary": True})
    anonymous = await post(AsyncClient(), {"text": "Forget", "temporary": True})

    assert own.status_code == 422 and own.json()["error"]["code"] == "invalid"
    assert other.status_code == 422 and kept["conversation_id"] not in other.content.decode()
    assert anonymous.status_code == 401
    assert (await db(_conversation, kept["conversation_id"])).temporary is False
    assert len(upstream.completions()) == 1


async def test_the_rest_api_refuses_temporary_chats_to_a_role_without_them(chatter, acme, upstream, live_cleanup):
    await db(_forbid_temporary_chats, chatter)
    api = await _signed_in(chatter)

    response = await post(api, {"text": "Psst", "endpoint": acme.name, "model": "test-model", "temporary": True})

    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert not await db(Conversation.objects.exists)


def test_a_fork_of_a_temporary_chat_is_temporary_and_expires_with_it(client, chatter):
    expires = timezone.now() + dt.timedelta(hours=3)
    source = Conversation.objects.create(user=chatter, title="Secret", temporary=True, expires_at=expires)
    question = Message.objects.create(conversation=source, user=chatter, role="user", text="Psst")
    client.force_login(chatter)

    response = client.post(f"/api/messages/{question.pk}/fork")

    fork = Conversation.objects.get(pk=response.json()["id"])
    assert response.status_code == 201 and response.json()["temporary"] is True
    assert (fork.temporary, fork.expires_at) == (True, expires)
