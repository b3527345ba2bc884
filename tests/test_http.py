"""The shared outbound client: stock httpx, one per event loop, never used on another loop."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from endpoints import http


def test_one_client_per_loop_and_a_fresh_one_on_the_next_loop(upstream):
    upstream.models(["a"])
    upstream.models(["b"])

    async def use() -> tuple[int, int, int]:
        first, second = http.client(), http.client()
        response = await first.get(upstream.base_url + "/models")
        return id(first), id(second), response.status_code

    first_loop = asyncio.run(use())
    second_loop = asyncio.run(use())  # the first loop is closed: its client must not be reused

    assert first_loop[0] == first_loop[1]
    assert first_loop[2] == second_loop[2] == 200


def test_aclose_forgets_the_loops_client(upstream):
    async def use() -> bool:
        before = http.client()
        await http.aclose()
        return http.client() is not before and before.is_closed

    assert asyncio.run(use())


def test_on_sent_runs_once_the_request_is_out_before_the_answer(upstream):
    """`on_sent` (the chat turn sends its `created` frame there) runs while the provider thinks."""
    upstream.reply(text="hello", delay=0.3)
    moments: dict[str, float] = {}

    async def on_sent() -> None:
        moments.setdefault("sent", asyncio.get_running_loop().time())
        moments["calls"] = moments.get("calls", 0) + 1

    async def ask() -> int:
        body = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
        started = asyncio.get_running_loop().time()
        async with http.stream("POST", upstream.base_url + "/chat/completions", json=body, on_sent=on_sent) as response:
            moments["answered"] = asyncio.get_running_loop().time()
            await response.aread()
        moments["started"] = started
        return response.status_code

    assert asyncio.run(ask()) == 200
    assert moments["calls"] == 1
    assert moments["sent"] - moments["started"] < 0.2 <= moments["answered"] - moments["sent"]
    assert upstream.completions()[-1].json["messages"][0]["content"] == "Hi"


def test_on_sent_is_not_called_when_nothing_could_be_sent(upstream):
    calls = []

    async def on_sent() -> None:
        calls.append(1)

    async def ask() -> None:
        async with http.stream("POST", upstream.refused_url() + "/chat/completions", json={}, on_sent=on_sent):
            pass

    with pytest.raises(httpx.ConnectError):
        asyncio.run(ask())
    assert calls == []


def test_timeouts_come_from_settings_at_request_time(settings):
    settings.UPSTREAM_CONNECT_TIMEOUT = 3
    settings.UPSTREAM_READ_TIMEOUT = 45

    timeout = http.timeout()

    assert (timeout.connect, timeout.read) == (3.0, 45.0)
    assert http.timeout(read=5).read == 5.0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["openai", "anthropic", "responses"])
async def test_streamed_answers_one_after_another_reuse_one_pooled_connection(kind, make_endpoint, upstream):
    from asgiref.sync import sync_to_async
    from django.db import connections

    from endpoints.services import stream_chat
    from tests.streaming import chat_request, text_of

    fields = {
        "openai": {"base_url": upstream.base_url},
        "anthropic": {"base_url": upstream.url, "provider": "anthropic"},
        "responses": {"base_url": upstream.base_url, "provider": "openai_responses"},
    }[kind]
    endpoint = await sync_to_async(make_endpoint)(**fields)
    upstream.set_default(text="Hello again.")

    answers = [
        text_of([e async for e in stream_chat(endpoint=endpoint, request=chat_request(), user=None)])
        for _ in range(3)
    ]
    await sync_to_async(connections.close_all)()

    assert answers == ["Hello again."] * 3
    assert upstream.connections == 1


@pytest.mark.django_db(transaction=True)
async def test_concurrent_streams_fill_the_pools_in_order_and_a_later_one_reuses_a_warm_connection(
    make_endpoint, upstream
):
    from asgiref.sync import sync_to_async
    from django.db import connections

    from endpoints.services import stream_chat
    from tests.streaming import chat_request, text_of

    endpoint = await sync_to_async(make_endpoint)(base_url=upstream.base_url)
    upstream.set_default(text="Side by side.", chunk_delay=0.05)

    async def answer() -> str:
        return text_of([e async for e in stream_chat(endpoint=endpoint, request=chat_request(), user=None)])

    concurrent = await asyncio.gather(*(answer() for _ in range(20)))
    later = await answer()
    await sync_to_async(connections.close_all)()

    assert concurrent == ["Side by side."] * 20 and later == "Side by side."
    assert upstream.connections == 20


# --- what httpcore's own network backend does for us --------------------------------------------

CHAT = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}


async def _answers(url: str, count: int, *, pause: float = 0.0) -> list[str]:
    """`count` streamed answers one after another through the shared client (`pause` between)."""
    texts = []
    for index in range(count):
        if index and pause:
            await asyncio.sleep(pause)
        async with http.stream("POST", url + "/chat/completions", json=CHAT) as response:
            assert response.status_code == 200
            texts.append((await response.aread()).decode())
    return texts


@pytest.fixture
def tls_upstream(tmp_path, monkeypatch):
    """The test upstream over HTTPS, with a certificate from a throwaway CA that the clients trust
    through SSL_CERT_FILE (as a company's own CA is configured)."""
    import ssl

    from tests.certs import certificate
    from tests.upstream import Upstream

    ca_file, cert_file, key_file = certificate(tmp_path, "127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    with Upstream(tls=server_context) as server:
        yield server


def test_a_provider_over_https_answers_and_its_connection_is_kept(tls_upstream):
    tls_upstream.set_default(text="Sent over TLS.")

    texts = asyncio.run(_answers(tls_upstream.base_url, 3))

    assert tls_upstream.base_url.startswith("https://")
    assert all('"content": "Sent' in text and "[DONE]" in text for text in texts)
    assert tls_upstream.connections == 1


@pytest.mark.django_db(transaction=True)
async def test_a_certificate_the_portal_does_not_trust_is_a_clear_connect_error(
    make_endpoint, tls_upstream, monkeypatch
):
    from asgiref.sync import sync_to_async

    from endpoints.adapters.types import StreamError
    from endpoints.services import stream_chat
    from tests.streaming import chat_request

    monkeypatch.delenv("SSL_CERT_FILE")  # the public CAs only: the throwaway CA is unknown
    await http.aclose()  # (this loop's clients were made trusting it)
    endpoint = await sync_to_async(make_endpoint)(name="Self-signed", base_url=tls_upstream.base_url)

    events = [e async for e in stream_chat(endpoint=endpoint, request=chat_request(), user=None)]

    assert isinstance(events[-1], StreamError) and events[-1].kind == "connect"
    assert events[-1].message == "Could not connect to Self-signed (TLS handshake failed)."
    assert tls_upstream.completions() == []


@pytest.mark.parametrize("hang_up", ["close", "408"])
def test_a_kept_connection_the_server_hung_up_is_not_used_again(upstream, hang_up):
    """A server closes idle keep-alive connections when it likes (some first send an unasked 408):
    the next request must go out on a new connection, not fail on the dead one."""
    upstream.reply(text="First answer.", hang_up=hang_up)
    upstream.reply(text="Second answer.")

    texts = asyncio.run(_answers(upstream.base_url, 2, pause=0.3))

    assert '"content": "First' in texts[0] and '"content": "Second' in texts[1]
    assert upstream.connections == 2


def test_cookies_a_provider_sets_are_not_sent_back(upstream):
    """The pooled clients serve every user: a provider's cookie must not ride along with anyone's
    next request."""
    upstream.reply(text="Have a cookie.", headers={"Set-Cookie": "session=user-a-secret; Path=/"})
    upstream.reply(text="Next.")

    asyncio.run(_answers(upstream.base_url, 2))

    first, second = upstream.completions()
    assert "cookie" not in first.headers and "cookie" not in second.headers
    assert upstream.connections == 1


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_large_answer_is_read_whole_through_back_pressure(request, scheme):
    """Megabytes left unread for a while (a slow consumer) are all there when read."""
    upstream = request.getfixturevalue("upstream" if scheme == "http" else "tls_upstream")
    text = "word " * 4096  # each word is its own SSE event of ~200 bytes: ~800 kB
    upstream.reply(text=text.strip())

    async def ask() -> int:
        async with http.stream("POST", upstream.base_url + "/chat/completions", json=CHAT) as response:
            await asyncio.sleep(0.5)  # let it pile up unread
            return sum(len(chunk) for chunk in [await response.aread()])

    received = asyncio.run(ask())

    assert received > 512 * 1024
    assert upstream.disconnects == 0


def test_a_large_request_is_sent_whole_through_back_pressure(upstream):
    """A long conversation is a large request body: more than the socket buffers at once, so
    writing waits for the server to read."""
    history = [{"role": "user", "content": f"message {n} " + "x" * 4000} for n in range(2000)]
    body = {**CHAT, "messages": history}

    async def ask() -> int:
        async with http.stream("POST", upstream.base_url + "/chat/completions", json=body) as response:
            await response.aread()
            return response.status_code

    assert asyncio.run(ask()) == 200
    assert upstream.last.json["messages"] == history
