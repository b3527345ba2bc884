"""Joining a conversation (a reload, a second tab, another server): the answer so far, then every
later piece exactly once, however fast the model writes; after the end, `live: false` and the
finished answer. On the in-process app and over real daphne processes."""
from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from tests.chatsocket import Answer, Socket, open_real_socket, session_cookie
from tests.daphne import Daphne

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]

WORDS = " ".join(f"w{i}" for i in range(300))


async def _reload_while_it_streams(asker: Socket, open_tab, *, reloads: int) -> tuple[Answer, list[Answer]]:
    """`asker` has sent a question; open `reloads` tabs one after another while the answer streams,
    each joining the conversation and reading it to the end."""
    asked = Answer(await asker.until("delta"))
    conversation_id = asked.conversation_id
    joins = []
    for _ in range(reloads):
        tab = await open_tab()
        await tab.send(type="join", conversation_id=conversation_id)
        joins.append(asyncio.ensure_future(tab.answer()))
        await asyncio.sleep(0.011)  # (not a multiple of the merge intervals: joins land anywhere in them)
    asked.frames += (await asker.answer()).frames
    return asked, [Answer([f for f in (await join).frames if f["type"] != "joined"]) for join in joins]


def _assert_each_word_once(answer: Answer) -> None:
    assert answer.text == WORDS, _first_difference(answer.text)
    assert answer.done["unfinished"] is False


def _first_difference(text: str) -> str:
    got, want = text.split(), WORDS.split()
    for position, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            got_there, wanted_there = " ".join(got[position:position + 4]), " ".join(want[position:position + 4])
            return f"word {position}: got {got_there!r}, want {wanted_there!r}"
    return f"{len(got)} words, want {len(want)}"


async def test_tabs_reloaded_while_a_fast_model_writes_get_every_word_once(chat_socket, chat_endpoint, upstream):
    endpoint = await sync_to_async(chat_endpoint)()
    upstream.reply(text=WORDS, chunk_delay=0.001)
    asker = await chat_socket()
    await asker.send(type="send", text="Fast, please", endpoint=endpoint.name, model="test-model")

    asked, joined = await _reload_while_it_streams(asker, chat_socket, reloads=6)

    _assert_each_word_once(asked)
    for answer in joined:
        _assert_each_word_once(answer)


async def test_a_join_right_after_the_end_is_not_live_and_gets_the_finished_answer(
    chat_socket, chat_endpoint, upstream
):
    endpoint = await sync_to_async(chat_endpoint)()
    asker, other_tab = await chat_socket(), await chat_socket()
    for attempt in range(5):
        upstream.reply(text=f"answer {attempt} " + WORDS[:400], chunk_delay=0.003)
        asked = await asker.ask("Quick one", endpoint=endpoint.name, model="test-model")
        await other_tab.send(type="join", conversation_id=asked.conversation_id)
        joined = await other_tab.receive()
        replay = await other_tab.answer()

        assert joined["type"] == "joined" and joined["live"] is False
        assert replay.text == asked.text and replay.done["message_id"] == asked.message_id
        assert await other_tab.nothing_within(0.15)  # and nothing of it comes a second time


@pytest.fixture(scope="module")
def daphnes(django_db_setup, django_db_blocker):
    """Two daphne servers sharing the test database (and Redis when REDIS_URL is set)."""
    servers = [Daphne(name="joins-1"), Daphne(name="joins-2")]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


async def test_reloads_on_the_same_daphne_get_every_word_of_a_fast_answer_once(
    daphnes, chat_endpoint, upstream, chatter
):
    endpoint = await sync_to_async(chat_endpoint)()
    cookie = await sync_to_async(session_cookie)(chatter)
    upstream.reply(text=WORDS, chunk_delay=0.001)
    sockets = [await open_real_socket(daphnes[0].ws_url, cookie)]

    async def open_tab():
        sockets.append(await open_real_socket(daphnes[0].ws_url, cookie))
        return sockets[-1]

    try:
        await sockets[0].send(type="send", text="Fast, please", endpoint=endpoint.name, model="test-model")
        asked, joined = await _reload_while_it_streams(sockets[0], open_tab, reloads=6)
    finally:
        for socket in sockets:
            await socket.close()

    _assert_each_word_once(asked)
    for answer in joined:
        _assert_each_word_once(answer)


@pytest.mark.skipif(not settings.REDIS_URL, reason="joining through another daphne needs REDIS_URL")
async def test_reloads_through_another_daphne_get_every_word_of_a_fast_answer_once(
    daphnes, chat_endpoint, upstream, chatter
):
    endpoint = await sync_to_async(chat_endpoint)()
    cookie = await sync_to_async(session_cookie)(chatter)
    upstream.reply(text=WORDS, chunk_delay=0.001)
    sockets = [await open_real_socket(daphnes[0].ws_url, cookie)]

    async def open_tab():
        sockets.append(await open_real_socket(daphnes[1].ws_url, cookie))
        return sockets[-1]

    try:
        await sockets[0].send(type="send", text="Fast, please", endpoint=endpoint.name, model="test-model")
        asked, joined = await _reload_while_it_streams(sockets[0], open_tab, reloads=6)
    finally:
        for socket in sockets:
            await socket.close()

    _assert_each_word_once(asked)
    for answer in joined:
        _assert_each_word_once(answer)


@pytest.mark.parametrize("server", [0, 1], ids=["same daphne", "other daphne"])
async def test_a_join_through_daphne_right_after_the_end_is_not_live(server, daphnes, chat_endpoint, upstream, chatter):
    if server == 1 and not settings.REDIS_URL:
        pytest.skip("joining through another daphne needs REDIS_URL")
    endpoint = await sync_to_async(chat_endpoint)()
    cookie = await sync_to_async(session_cookie)(chatter)
    asker = await open_real_socket(daphnes[0].ws_url, cookie)
    other_tab = await open_real_socket(daphnes[server].ws_url, cookie)
    try:
        for attempt in range(5):
            upstream.reply(text=f"answer {attempt} " + WORDS[:400], chunk_delay=0.003)
            asked = await asker.ask("Quick one", endpoint=endpoint.name, model="test-model")
            await other_tab.send(type="join", conversation_id=asked.conversation_id)
            joined = await other_tab.receive()
            replay = await other_tab.answer()

            assert joined["type"] == "joined" and joined["live"] is False
            assert replay.text == asked.text and replay.done["message_id"] == asked.message_id
            assert await other_tab.nothing_within(0.15)
    finally:
        await asker.close()
        await other_tab.close()
