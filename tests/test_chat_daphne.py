"""Over real sockets against real daphne processes: one server, and two servers on one Redis
sharing a stream (a socket on each: one asks, the other joins mid-stream and stops it)."""
from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from billing.models import Transaction
from chat.models import Message
from tests.chatsocket import TIMEOUT, Answer, open_real_socket, session_cookie
from tests.daphne import Daphne

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]


@pytest.fixture(scope="module")
def daphnes(django_db_setup, django_db_blocker):
    """Two daphne servers sharing the test database (and Redis when REDIS_URL is set)."""
    servers = [Daphne(name="daphne-1"), Daphne(name="daphne-2")]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


async def test_a_user_chats_over_a_real_socket_with_daphne(daphnes, chat_endpoint, upstream, chatter):
    endpoint = await sync_to_async(chat_endpoint)("Acme")
    cookie = await sync_to_async(session_cookie)(chatter)
    upstream.reply(text="Served by daphne.")
    socket = await open_real_socket(daphnes[0].ws_url, cookie)
    try:
        answer = await socket.ask("Hello daphne", endpoint=endpoint.name, model="test-model")
    finally:
        await socket.close()

    assert answer.text == "Served by daphne." and answer.done["unfinished"] is False
    saved = await sync_to_async(Message.objects.get)(pk=answer.message_id)
    assert saved.text == "Served by daphne." and saved.user_id == chatter.pk


async def test_daphne_closes_signed_out_sockets_with_4401_and_refuses_foreign_origins(daphnes, chatter):
    import websockets.exceptions

    cookie = await sync_to_async(session_cookie)(chatter)
    signed_out = await open_real_socket(daphnes[0].ws_url, "sessionid=not-a-session")
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        await signed_out.receive_text(TIMEOUT)
    assert closed.value.rcvd.code == 4401  # "sign in again", as README documents
    with pytest.raises(websockets.exceptions.InvalidStatus) as foreign:
        await open_real_socket(daphnes[0].ws_url, cookie, origin="https://evil.example.com")
    assert foreign.value.response.status_code == 403


@pytest.mark.skipif(not settings.REDIS_URL, reason="sharing a stream between two daphne processes needs REDIS_URL "
                    "(the Redis channel layer and cache); without it each process has its own in-memory layer")
async def test_two_servers_on_one_redis_share_a_stream_and_stop_works_from_either(
    daphnes, chat_endpoint, upstream, chatter
):
    first, second = daphnes
    endpoint = await sync_to_async(chat_endpoint)("Acme")
    cookie = await sync_to_async(session_cookie)(chatter)
    words = " ".join(f"w{i}" for i in range(200))
    upstream.reply(text=words, chunk_delay=0.02)

    asker = await open_real_socket(first.ws_url, cookie)
    watcher = await open_real_socket(second.ws_url, cookie)
    try:
        await asker.send(type="send", text="Talk", endpoint=endpoint.name, model="test-model")
        asked = Answer(await asker.until("delta"))
        await asyncio.sleep(1.2)  # well into the answer, past a snapshot

        await watcher.send(type="join", conversation_id=asked.conversation_id)
        joined = await watcher.receive()
        assert joined["type"] == "joined" and joined["live"] is True
        watched = Answer()
        while len(watched.of_type("delta")) < 5:  # the answer so far, then live deltas from server 1
            watched.frames.append(await watcher.receive())
        assert watched.created["assistant_message_id"] == asked.message_id
        assert watched.of_type("delta")[0]["snapshot"] is True

        await watcher.send(type="stop", conversation_id=asked.conversation_id)  # stop from server 2
        rest = await watcher.answer()
        watched.frames += rest.frames
        asked.frames += (await asker.answer()).frames
    finally:
        await asker.close()
        await watcher.close()

    for answer in (asked, watched):
        assert answer.done["finish_reason"] == "stopped" and answer.done["unfinished"] is True
    assert asked.text == watched.text and words.startswith(asked.text) and asked.text != words
    saved = await sync_to_async(Message.objects.get)(pk=asked.message_id)
    assert saved.text == asked.text and saved.finish_reason == "stopped"
    contexts = await sync_to_async(
        lambda: set(Transaction.objects.filter(message=saved).values_list("context", flat=True))
    )()
    assert contexts == {"abort"}


def _take_chat_away(user) -> None:
    role = type(user.role).objects.get(pk=user.role_id)
    role.can_chat = False
    role.save()  # as the admin does: signals bump and announce the configuration version


@pytest.mark.skipif(not settings.REDIS_URL, reason="another process seeing a change needs REDIS_URL "
                    "(without it each process keeps its own configuration version)")
async def test_a_running_server_applies_an_admin_change_at_the_next_turn(daphnes, chat_endpoint, upstream, chatter):
    endpoint = await sync_to_async(chat_endpoint)("Governed")
    cookie = await sync_to_async(session_cookie)(chatter)
    socket = await open_real_socket(daphnes[0].ws_url, cookie)
    try:
        upstream.reply(text="Still allowed.")
        first = await socket.ask("One", endpoint=endpoint.name, model="test-model")
        assert first.text == "Still allowed."  # the server now holds the role in its memory

        await sync_to_async(_take_chat_away)(chatter)  # in this process, not the server's
        await socket.send(type="send", text="Two", endpoint=endpoint.name, model="test-model")
        refused = await socket.receive()
    finally:
        await socket.close()

    assert refused["type"] == "error" and refused["code"] == "forbidden"
    assert "does not allow chatting" in refused["message"]
    assert len(upstream.completions()) == 1
