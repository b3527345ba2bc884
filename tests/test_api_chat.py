"""A chat turn over HTTP (POST /api/chat/...): answered whole or as server-sent events, stopped by
another request — in this process and, against real daphne servers sharing Redis, from another
process. The same turn the websocket runs: a socket following the conversation sees it too."""
from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import AsyncClient

from accounts.models import Role
from accounts.services import api_key_create
from billing.models import Transaction
from chat.models import Message
from tests.daphne import Daphne

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]
TIMEOUT = 10.0


@pytest.fixture
def caller(make_user):
    role = Role.objects.create(name="API", can_use_api=True)
    return make_user("ada", role=role)


@pytest.fixture
async def api(caller, live_cleanup):
    client = AsyncClient()
    await client.aforce_login(caller)
    return client


def post(client: AsyncClient, path: str, body: dict[str, Any], **kwargs: Any):
    return client.post(path, data=json.dumps(body), content_type="application/json", **kwargs)


def parse_events(chunks: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in b"".join(chunks).decode().split("\n\n"):
        if block.strip():
            lines = dict(line.split(": ", 1) for line in block.splitlines())
            events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_a_message_sent_over_http_is_answered_whole_stored_and_billed(api, caller, chat_endpoint, upstream):
    endpoint = await sync_to_async(chat_endpoint)("Acme", models=("test-model",))
    upstream.reply(text="Hello over HTTP.")

    response = await post(api, "/api/chat/send", {"text": "Hi", "endpoint": endpoint.name, "model": "test-model"})

    answer = response.json()
    assert response.status_code == 200 and answer["new_conversation"] is True and answer["errors"] == []
    assert answer["user_message"]["text"] == "Hi" and answer["message"]["text"] == "Hello over HTTP."
    assert answer["message"]["parent_id"] == answer["user_message"]["id"]
    billed = await sync_to_async(lambda: sum(t.credits for t in Transaction.objects.filter(
        message_id=answer["message"]["id"])))()
    assert Decimal(answer["message"]["usage"]["credits"]) == -billed
    assert answer["message"]["usage"]["prompt_tokens"] > 0


async def test_a_streamed_answer_comes_as_the_websockets_frames_in_server_sent_events(
    api, chat_endpoint, upstream
):
    endpoint = await sync_to_async(chat_endpoint)("Acme", models=("test-model",))
    upstream.reply(text="One two three four.")

    response = await post(api, "/api/chat/send", {"text": "Count", "endpoint": endpoint.name,
                                                  "model": "test-model", "stream": True, "request_id": "r1"})
    events = parse_events([chunk async for chunk in response.streaming_content])

    kinds = [kind for kind, _ in events]
    assert response["Content-Type"] == "text/event-stream"
    assert kinds[0] == "created" and kinds[-2:] == ["usage", "done"] and "delta" in kinds
    assert events[0][1]["request_id"] == "r1"
    assert "".join(frame.get("text", "") for kind, frame in events if kind == "delta") == "One two three four."
    assert [frame["seq"] for _, frame in events] == sorted(frame["seq"] for _, frame in events)
    stored = await sync_to_async(Message.objects.get)(pk=events[-1][1]["message_id"])
    assert stored.text == "One two three four." and stored.unfinished is False


async def test_an_answer_streamed_over_http_is_stopped_by_another_request(api, chat_endpoint, upstream):
    endpoint = await sync_to_async(chat_endpoint)("Acme", models=("test-model",))
    words = " ".join(f"w{i}" for i in range(200))
    upstream.reply(text=words, chunk_delay=0.02)

    response = await post(api, "/api/chat/send", {"text": "Talk", "endpoint": endpoint.name,
                                                  "model": "test-model", "stream": True})
    chunks, stopped = [], None
    async for chunk in response.streaming_content:
        chunks.append(chunk)
        if stopped is None and b"event: delta" in chunk:
            conversation_id = parse_events(chunks)[0][1]["conversation_id"]
            stopped = await api.post(f"/api/conversations/{conversation_id}/stop")
    events = parse_events(chunks)

    done = events[-1][1]
    assert stopped is not None and stopped.status_code == 204
    assert done["type"] == "done" and done["unfinished"] is True and done["finish_reason"] == "stopped"
    stored = await sync_to_async(Message.objects.get)(pk=done["message_id"])
    assert stored.text and words.startswith(stored.text) and stored.text != words
    assert await sync_to_async(Transaction.objects.filter(message_id=stored.pk).exists)()


async def test_a_socket_following_the_conversation_sees_the_answer_asked_over_http(
    api, caller, chat_socket, chat_endpoint, upstream
):
    from tests.chatsocket import session_cookie

    endpoint = await sync_to_async(chat_endpoint)("Acme", models=("test-model",))
    upstream.reply(text="First.")
    first = (await post(api, "/api/chat/send", {"text": "Hi", "endpoint": endpoint.name,
                                                "model": "test-model"})).json()
    socket = await chat_socket(await sync_to_async(session_cookie)(caller))
    await socket.send(type="join", conversation_id=first["conversation_id"])
    await socket.until("joined")
    replayed = await socket.answer()  # (the first answer, finished a moment ago, is replayed on join)
    upstream.reply(text="Seen in the other tab.")

    second = (await post(api, "/api/chat/send", {"text": "Again", "conversation_id": first["conversation_id"]})).json()
    seen = await socket.answer()

    assert replayed.text == "First."
    assert second["message"]["text"] == "Seen in the other tab." == seen.text
    assert seen.created["assistant_message_id"] == second["message"]["id"]


async def test_refusals_answer_with_the_one_error_body(api, caller, chat_endpoint):
    from tests.test_billing_turns import fund

    rates = {"prompt_rate": 100, "completion_rate": 1000, "context_tokens": 4000}
    endpoint = await sync_to_async(chat_endpoint)("Acme", models=("test-model",), rates=rates)

    unknown = await post(api, "/api/chat/send", {"text": "Hi", "endpoint": "Nowhere", "model": "x"})
    missing = await post(api, "/api/chat/regenerate", {"message_id": "00000000-0000-0000-0000-000000000000"})
    await sync_to_async(fund)(caller, Decimal(1))
    no_balance = await post(api, "/api/chat/send", {"text": "Hi", "endpoint": endpoint.name, "model": "test-model"})

    assert unknown.status_code in (403, 404, 422) and set(unknown.json()["error"]) >= {"code", "message"}
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert no_balance.status_code == 402 and no_balance.json()["error"]["code"] == "balance"


async def test_a_signed_in_browser_must_send_the_csrf_token(caller, chat_endpoint, live_cleanup):
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(caller)

    response = await post(client, "/api/chat/send", {"text": "Hi", "endpoint": "Acme", "model": "test-model"})

    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert not await sync_to_async(Message.objects.exists)()


@pytest.fixture(scope="module")
def daphnes(django_db_setup, django_db_blocker):
    servers = [Daphne(name="api-daphne-1"), Daphne(name="api-daphne-2")]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.mark.skipif(not settings.REDIS_URL, reason="a stop reaching another daphne process needs REDIS_URL")
async def test_a_stop_sent_to_another_server_stops_the_answer_streaming_from_the_first(
    daphnes, caller, chat_endpoint, upstream
):
    first, second = daphnes
    endpoint = await sync_to_async(chat_endpoint)("Acme", models=("test-model",))
    key = (await sync_to_async(api_key_create)(user=caller, name="script")).key
    headers = {"Authorization": f"Bearer {key}"}
    words = " ".join(f"w{i}" for i in range(300))
    upstream.reply(text=words, chunk_delay=0.02)

    async with httpx.AsyncClient(headers=headers, timeout=TIMEOUT) as client:
        body = {"text": "Talk", "endpoint": endpoint.name, "model": "test-model", "stream": True}
        async with client.stream("POST", f"http://127.0.0.1:{first.port}/api/chat/send", json=body) as response:
            chunks, stopped = [], None
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                if stopped is None and b"event: delta" in b"".join(chunks):
                    conversation_id = parse_events(chunks[:1])[0][1]["conversation_id"]
                    stopped = await client.post(
                        f"http://127.0.0.1:{second.port}/api/conversations/{conversation_id}/stop")
    events = parse_events(chunks)

    done = events[-1][1]
    assert stopped is not None and stopped.status_code == 204, stopped.text
    assert done["type"] == "done" and done["finish_reason"] == "stopped" and done["unfinished"] is True
    stored = await sync_to_async(Message.objects.get)(pk=done["message_id"])
    assert words.startswith(stored.text) and stored.text != words


async def test_an_answer_over_http_on_daphne_is_answered_whole(daphnes, caller, chat_endpoint, upstream):
    endpoint = await sync_to_async(chat_endpoint)("Acme", models=("test-model",))
    key = (await sync_to_async(api_key_create)(user=caller, name="script")).key
    upstream.reply(text="Served whole by daphne.")

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT) as client:
        response = await client.post(f"http://127.0.0.1:{daphnes[0].port}/api/chat/send",
                                     json={"text": "Hi", "endpoint": endpoint.name, "model": "test-model"})

    assert response.status_code == 200 and response.json()["message"]["text"] == "Served whole by daphne."
    await asyncio.sleep(0)


# --- a role's tokens per minute (portal.ratelimit) ---------------------------------------------------


@pytest.fixture
def fresh_counters():
    from portal import ratelimit

    ratelimit.reset_memory()


@pytest.fixture
def key_headers(caller, fresh_counters) -> dict[str, str]:
    """A script's headers: the caller's personal API key, of a role allowed 30 tokens a minute."""
    role = caller.role
    role.tokens_per_minute = 30
    role.save()
    return {"Authorization": f"Bearer {api_key_create(user=caller, name='script').key}"}


async def _sent_until_refused(headers: dict[str, str], body: dict[str, Any], attempts: int):
    """Send until refused with 429 (the windows are wall-clock minutes: a run that straddles a
    minute's end counts again once)."""
    for made in range(1, attempts + 1):
        response = await post(AsyncClient(), "/api/chat/send", body, headers=headers)
        if response.status_code == 429:
            return made, response
        assert response.status_code == 200, response.content
        if body.get("stream"):
            assert b"event: done" in b"".join([chunk async for chunk in response.streaming_content])
    raise AssertionError(f"no 429 in {attempts} requests")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_chat_turns_made_with_a_key_count_their_tokens_against_the_roles_limit(
    stream, key_headers, chat_endpoint, upstream, live_cleanup
):
    from endpoints.adapters.types import Usage

    endpoint = await sync_to_async(chat_endpoint)("Acme", models=("test-model",))
    upstream.set_default(usage=Usage(input_tokens=20, output_tokens=15))  # 35 tokens a turn

    body = {"text": "Hi", "endpoint": endpoint.name, "model": "test-model", "stream": stream}
    made, refused = await _sent_until_refused(key_headers, body, attempts=3)

    assert made in (2, 3) and refused.json()["error"]["code"] == "rate_limited"
    assert "30 tokens per minute" in refused.json()["error"]["message"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert len(upstream.completions()) == made - 1


async def test_the_browsers_own_chat_turns_are_not_counted(api, key_headers, chat_endpoint, upstream):
    from endpoints.adapters.types import Usage

    endpoint = await sync_to_async(chat_endpoint)("Acme", models=("test-model",))
    upstream.set_default(usage=Usage(input_tokens=20, output_tokens=15))
    body = {"text": "Hi", "endpoint": endpoint.name, "model": "test-model"}

    in_browser = [(await post(api, "/api/chat/send", body)).status_code for _ in range(3)]
    by_key = await AsyncClient().get("/api/me", headers=key_headers)

    assert in_browser == [200, 200, 200] and by_key.status_code == 200
