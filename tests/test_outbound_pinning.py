"""User-provided base URLs are pinned (SPEC §5, DNS rebinding): `check_outbound` resolves the host
once and vets every address, and the request then connects to exactly those addresses, with the
original host name in the Host header, without resolving the name again.

A resolver that answers differently the second time is out of reach here, so the two halves are
shown with what is real on loopback: the check with names whose resolution this machine decides
('localhost' → loopback), and the connect with a host name that resolves nowhere (`.invalid`,
RFC 6761) — a request to it can only reach the loopback upstream through its pin.
"""
from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from asgiref.sync import async_to_sync

from endpoints import http
from endpoints.adapters import adapter_for
from endpoints.adapters.types import Call, Event, Finish, StreamError
from endpoints.http import Pin
from endpoints.models import Protocol, UserProviderKey
from endpoints.shaping import ConfigError, check_outbound
from tests.certs import certificate
from tests.streaming import final, run_chat, text_of

NOWHERE = "upstream.invalid"  # never resolves (RFC 6761)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def check(url: str) -> Pin:
    return asyncio.run(check_outbound(url, "Mine"))


def chat_call(url: str, *, pin: Pin | None = None, outbound_check: bool = True) -> Call:
    return Call(
        endpoint_name="Mine", model="m", url=url, headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        body={"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": True,
              "stream_options": {"include_usage": True}},
        outbound_check=outbound_check, pin=pin,
    )


def send(*calls: Call) -> list[list[Event]]:
    """Every event of each call, one after another on one event loop (so on the same pools)."""
    async def run() -> list[list[Event]]:
        try:
            return [[event async for event in adapter_for(Protocol.OPENAI_CHAT).run(call)] for call in calls]
        finally:
            await http.aclose()

    return asyncio.run(run())


# --- the check resolves once and returns what it vetted ------------------------------------------

@pytest.mark.parametrize("url", ["http://localhost:8080/v1", "https://LOCALHOST/v1", "http://127.0.0.1:8080/v1",
                                 "http://[::ffff:127.0.0.1]/v1", "http://169.254.169.254/latest"])
def test_the_check_refuses_names_and_addresses_on_this_machine(settings, url):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = False

    with pytest.raises(ConfigError) as refused:
        check(url)

    assert str(refused.value).startswith("Your base URL for Mine points to a local or private network address")


@pytest.mark.parametrize("url, pin", [
    ("https://93.184.216.34/v1", Pin("93.184.216.34", 443, ("93.184.216.34",))),
    ("http://93.184.216.34/v1", Pin("93.184.216.34", 80, ("93.184.216.34",))),
    ("http://[2606:4700:4700::1111]:8080/v1", Pin("2606:4700:4700::1111", 8080, ("2606:4700:4700::1111",))),
])
def test_a_public_address_is_returned_as_the_pin(settings, url, pin):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = False

    assert check(url) == pin  # nothing is connected to


@pytest.mark.parametrize("allow_private", [False, True])
def test_a_host_that_does_not_resolve_is_refused(settings, allow_private):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = allow_private

    with pytest.raises(ConfigError) as refused:
        check(f"https://{NOWHERE}/v1")

    assert str(refused.value) == f"The host of your base URL for Mine ({NOWHERE}) cannot be resolved."


def test_with_private_urls_allowed_the_check_still_pins_what_it_resolved(settings):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = True
    resolved = list(dict.fromkeys(info[4][0] for info in socket.getaddrinfo("localhost", 8080, type=socket.SOCK_STREAM)))

    assert check("http://LocalHost:8080/v1") == Pin("localhost", 8080, tuple(resolved))


# --- a pinned request connects to its pin only ---------------------------------------------------

def test_a_pinned_request_reaches_the_pinned_address_with_the_original_host_name(upstream):
    port = port_of(upstream.url)
    url = f"http://{NOWHERE}:{port}/v1/chat/completions"

    unpinned, pinned = send(chat_call(url, outbound_check=False), chat_call(url, pin=Pin(NOWHERE, port, ("127.0.0.1",))))

    assert final(unpinned) == StreamError("Could not connect to Mine (host name not found).", kind="connect")
    assert text_of(pinned) == "Hello from the upstream." and isinstance(final(pinned), Finish)
    assert len(upstream.requests) == 1
    assert upstream.last.headers["host"] == f"{NOWHERE}:{port}"
    assert upstream.last.path == "/v1/chat/completions"


def test_the_pinned_addresses_are_tried_in_order(upstream):
    port = port_of(upstream.url)
    pin = Pin(NOWHERE, port, ("127.0.0.2", "127.0.0.1"))  # nothing listens on 127.0.0.2: refused, then the next

    [events] = send(chat_call(f"http://{NOWHERE}:{port}/v1/chat/completions", pin=pin))

    assert text_of(events) == "Hello from the upstream."
    assert upstream.last.headers["host"] == f"{NOWHERE}:{port}"


@pytest.mark.parametrize("pin_for", ["another host", "another port"])
def test_a_pin_for_another_host_or_port_connects_nowhere(upstream, pin_for):
    port = port_of(upstream.url)
    pin = Pin("other.invalid", port, ("127.0.0.1",)) if pin_for == "another host" else Pin(NOWHERE, port + 1, ("127.0.0.1",))

    [events] = send(chat_call(f"http://{NOWHERE}:{port}/v1/chat/completions", pin=pin))

    assert final(events) == StreamError("Could not connect to Mine (network error).", kind="connect")
    assert upstream.connections == 0


def test_a_user_provided_url_without_its_pin_is_not_sent(upstream):
    [events] = send(chat_call(upstream.base_url + "/chat/completions", pin=None))

    assert final(events) == StreamError(
        "Mine is not usable: its base URL was not checked before the request.", kind="config"
    )
    assert upstream.connections == 0


def test_pinned_connection_failures_read_as_before(upstream, settings):
    settings.UPSTREAM_CONNECT_TIMEOUT = 0.3
    refused, unreachable = port_of(upstream.refused_url()), port_of(upstream.unreachable_url())

    refused_events, unreachable_events = send(
        chat_call(f"http://{NOWHERE}:{refused}/v1/chat/completions", pin=Pin(NOWHERE, refused, ("127.0.0.1",))),
        chat_call(f"http://{NOWHERE}:{unreachable}/v1/chat/completions", pin=Pin(NOWHERE, unreachable, ("127.0.0.1",))),
    )

    assert final(refused_events) == StreamError("Could not connect to Mine (connection refused).", kind="connect")
    assert final(unreachable_events) == StreamError("Connecting to Mine timed out after 0.3 seconds.", kind="timeout")


def test_pinned_connections_are_pooled_and_never_shared_with_admin_endpoints(upstream):
    upstream.models(["a"])
    upstream.models(["b"])
    upstream.models(["c"])
    port = port_of(upstream.url)
    pin = Pin(NOWHERE, port, ("127.0.0.1",))

    async def run() -> list[int]:
        try:
            return [
                (await http.request("GET", f"http://{NOWHERE}:{port}/v1/models", pin=pin)).status_code,
                (await http.request("GET", f"http://{NOWHERE}:{port}/v1/models", pin=pin)).status_code,
                (await http.request("GET", upstream.base_url + "/models")).status_code,
            ]
        finally:
            await http.aclose()

    assert asyncio.run(run()) == [200, 200, 200]
    assert [r.headers["host"] for r in upstream.requests] == [f"{NOWHERE}:{port}"] * 2 + [f"127.0.0.1:{port}"]
    assert upstream.connections == 2  # one kept alive for the pinned host, one for the admin URL


def test_an_environment_proxy_still_carries_pinned_requests(upstream, monkeypatch):
    """HTTP(S)_PROXY applies to user-provided URLs as to the others: the proxy (here the upstream)
    gets the request and resolves the name itself; only direct connections can be pinned."""
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", upstream.url)
    monkeypatch.setenv("HTTP_PROXY", upstream.url)
    elsewhere = port_of(upstream.refused_url())

    [events] = send(chat_call(f"http://{NOWHERE}:{elsewhere}/v1/chat/completions",
                              pin=Pin(NOWHERE, elsewhere, ("127.0.0.1",))))

    assert text_of(events) == "Hello from the upstream."
    assert upstream.last.headers["host"] == f"{NOWHERE}:{elsewhere}"


# --- https: SNI and certificate verification keep the host name -----------------------------------

class _TLSModels:
    """A loopback https server answering the OpenAI model list; records SNI names and Host headers."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.server_names: list[str | None] = []
        self.hosts: list[str] = []
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        context.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                recorder.hosts.append(self.headers.get("Host", ""))
                body = json.dumps({"object": "list", "data": [{"id": "over-tls"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def tls_models(tmp_path, monkeypatch):
    """`tls_models(name)`: an https server with a certificate for `name` from a CA the client
    trusts (SSL_CERT_FILE, which httpx reads when a client is created)."""
    servers: list[_TLSModels] = []

    def start(name: str) -> _TLSModels:
        ca_file, cert_file, key_file = certificate(tmp_path, name)
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        servers.append(_TLSModels(cert_file, key_file))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_a_pinned_https_request_sends_and_verifies_the_original_host_name(tls_models):
    server = tls_models(NOWHERE)
    pin = Pin(NOWHERE, server.port, ("127.0.0.1",))

    async def run():
        try:
            return await http.request("GET", f"https://{NOWHERE}:{server.port}/v1/models", pin=pin)
        finally:
            await http.aclose()

    response = asyncio.run(run())

    assert response.status_code == 200 and response.json()["data"] == [{"id": "over-tls"}]
    assert server.server_names == [NOWHERE]
    assert server.hosts == [f"{NOWHERE}:{server.port}"]


def test_a_pinned_https_request_refuses_a_certificate_for_another_name(tls_models):
    server = tls_models("someone-else.invalid")
    url = f"https://{NOWHERE}:{server.port}/v1/chat/completions"

    [events] = send(chat_call(url, pin=Pin(NOWHERE, server.port, ("127.0.0.1",))))

    assert final(events) == StreamError("Could not connect to Mine (TLS handshake failed).", kind="connect")
    assert server.hosts == []


# --- end to end: the chat and the model list of a user-provided URL ------------------------------

@pytest.mark.django_db
def test_a_user_provided_url_is_called_through_its_pin(make_endpoint, make_user, upstream, settings):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = True  # the only host on reach here is loopback
    from endpoints.services import list_models

    user = make_user()
    endpoint = make_endpoint("Mine", base_url="user_provided", models_fetch=True, models=("listed",))
    port = port_of(upstream.url)
    UserProviderKey.objects.create(user=user, endpoint=endpoint, base_url=f"http://localhost:{port}/v1")
    upstream.models(["from-upstream"])

    events = run_chat(endpoint, user, model="listed")
    models = async_to_sync(list_models)(endpoint=endpoint, user=user)

    assert text_of(events) == "Hello from the upstream."
    assert models == ["from-upstream"]
    assert [(r.method, r.path, r.headers["host"]) for r in upstream.requests] == [
        ("POST", "/v1/chat/completions", f"localhost:{port}"),
        ("GET", "/v1/models", f"localhost:{port}"),
    ]
