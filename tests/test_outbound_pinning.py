"""User-provided base URLs are vetted when their connection opens (SPEC §5): the vetting network
backend of `endpoints.http` resolves the host, refuses it when an address is loopback, private,
link-local or otherwise not public (unless ALLOW_PRIVATE_USER_BASE_URLS), and connects to the
address it vetted, with the original host name in the Host header, TLS SNI and certificate check.

The name is resolved once, by the call that connects, so a resolver answering a public address to
a check and 127.0.0.1 to the connect (DNS rebinding) has no second answer to give. A resolver that
answers differently the second time is out of reach here; what is real on loopback is shown:
names whose resolution this machine decides ('localhost' → loopback) and a host name that resolves
nowhere (`.invalid`, RFC 6761).
"""
from __future__ import annotations

import asyncio
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from asgiref.sync import async_to_sync

from endpoints import http
from endpoints.adapters import adapter_for
from endpoints.adapters.types import Call, Event, Finish, StreamError
from endpoints.models import Protocol, UserProviderKey
from tests.certs import certificate
from tests.streaming import final, run_chat, text_of

NOWHERE = "upstream.invalid"  # never resolves (RFC 6761)
PRIVATE = "Your base URL for Mine points to a local or private network address"


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def chat_call(url: str, *, outbound_check: bool = True) -> Call:
    return Call(
        endpoint_name="Mine",
        model="m",
        url=url,
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        body={
            "model": "m",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        outbound_check=outbound_check,
    )


def send(*calls: Call) -> list[list[Event]]:
    """Every event of each call, one after another on one event loop (so on the same pools)."""
    async def run() -> list[list[Event]]:
        try:
            return [[event async for event in adapter_for(Protocol.OPENAI_CHAT).run(call)] for call in calls]
        finally:
            await http.aclose()

    return asyncio.run(run())


# --- the vetting: what a user-provided URL may reach ---------------------------------------------

@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"])
def test_a_user_provided_url_on_this_machine_is_refused_before_connecting(settings, upstream, host):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = False
    url = f"http://{host}:{port_of(upstream.url)}/v1/chat/completions"

    [events] = send(chat_call(url))

    assert final(events) == StreamError(
        f"{PRIVATE} ({host.strip('[]').lower()}), which this portal does not allow for user-provided URLs.",
        kind="config",
    )
    assert upstream.connections == 0


def test_the_same_url_configured_by_an_admin_is_not_vetted(settings, upstream):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = False

    [events] = send(chat_call(f"http://localhost:{port_of(upstream.url)}/v1/chat/completions", outbound_check=False))

    assert text_of(events) == "Hello from the upstream."


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111", "8.8.8.8"])
def test_public_addresses_pass_the_vetting(address):
    assert http.is_public(address)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "::1", "10.0.0.5", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "::ffff:127.0.0.1", "::ffff:10.0.0.5", "fe80::1%eth0", "fd00::1", "224.0.0.1", "ff02::1",
])
def test_loopback_private_link_local_and_multicast_addresses_do_not(address):
    assert not http.is_public(address)


def test_the_metadata_address_of_cloud_providers_is_refused_without_a_connection_attempt(settings):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = False
    settings.UPSTREAM_CONNECT_TIMEOUT = 5  # (a connect attempt to 169.254.169.254 would hang until then)

    [events] = send(chat_call("http://169.254.169.254/latest/chat/completions"))

    assert final(events).message.startswith(f"{PRIVATE} (169.254.169.254)")


@pytest.mark.parametrize("allow_private", [False, True])
def test_a_host_that_does_not_resolve_is_a_connect_error(settings, allow_private):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = allow_private

    [events] = send(chat_call(f"https://{NOWHERE}/v1/chat/completions"))

    assert final(events) == StreamError("Could not connect to Mine (host name not found).", kind="connect")


# --- a vetted request reaches the address it vetted, under the original name -------------------

def test_with_private_urls_allowed_a_vetted_request_keeps_the_original_host_name(settings, upstream):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = True
    port = port_of(upstream.url)

    [events] = send(chat_call(f"http://LocalHost:{port}/v1/chat/completions"))

    assert text_of(events) == "Hello from the upstream." and isinstance(final(events), Finish)
    assert upstream.last.headers["host"] == f"localhost:{port}"
    assert upstream.last.path == "/v1/chat/completions"


def test_vetted_connection_failures_read_as_before(upstream, settings):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = True
    settings.UPSTREAM_CONNECT_TIMEOUT = 0.3
    refused, unreachable = port_of(upstream.refused_url()), port_of(upstream.unreachable_url())

    refused_events, unreachable_events = send(
        chat_call(f"http://localhost:{refused}/v1/chat/completions"),
        chat_call(f"http://localhost:{unreachable}/v1/chat/completions"),
    )

    assert final(refused_events) == StreamError("Could not connect to Mine (connection refused).", kind="connect")
    assert final(unreachable_events) == StreamError("Connecting to Mine timed out after 0.3 seconds.", kind="timeout")


def test_vetted_connections_are_pooled_and_never_shared_with_admin_endpoints(upstream, settings):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = True
    upstream.models(["a"])
    upstream.models(["b"])
    upstream.models(["c"])
    port = port_of(upstream.url)

    async def run() -> list[int]:
        try:
            return [
                (await http.request("GET", f"http://127.0.0.1:{port}/v1/models", vet=True)).status_code,
                (await http.request("GET", f"http://127.0.0.1:{port}/v1/models", vet=True)).status_code,
                (await http.request("GET", f"http://127.0.0.1:{port}/v1/models")).status_code,
            ]
        finally:
            await http.aclose()

    assert asyncio.run(run()) == [200, 200, 200]
    assert upstream.connections == 2  # one kept alive for the user's URL, one for the admin's


def test_an_admin_connection_to_a_private_address_is_not_lent_to_a_user_provided_url(upstream, settings):
    """An admin's endpoint may live on the company network; a user typing its address must not
    ride on the admin's pooled connection to it."""
    settings.ALLOW_PRIVATE_USER_BASE_URLS = False
    upstream.models(["admin"])
    url = f"http://127.0.0.1:{port_of(upstream.url)}/v1/models"

    async def run() -> tuple[int, type[BaseException] | None]:
        try:
            admin = (await http.request("GET", url)).status_code
            try:
                await http.request("GET", url, vet=True)
            except httpx.ConnectError as exc:
                return admin, type(exc.__cause__)
            return admin, None
        finally:
            await http.aclose()

    assert asyncio.run(run()) == (200, http.RefusedAddress)
    assert len(upstream.requests) == 1


def test_an_environment_proxy_still_carries_user_provided_urls(upstream, monkeypatch, settings):
    """HTTP(S)_PROXY applies to user-provided URLs as to the others: the proxy (here the upstream)
    gets the request and resolves the name itself; only direct connections are vetted."""
    settings.ALLOW_PRIVATE_USER_BASE_URLS = False
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", upstream.url)
    monkeypatch.setenv("HTTP_PROXY", upstream.url)
    elsewhere = port_of(upstream.refused_url())

    [events] = send(chat_call(f"http://{NOWHERE}:{elsewhere}/v1/chat/completions"))

    assert text_of(events) == "Hello from the upstream."
    assert upstream.last.headers["host"] == f"{NOWHERE}:{elsewhere}"


def test_no_proxy_sends_a_user_provided_url_direct_and_vetted(upstream, monkeypatch, settings):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = False
    for name in ("all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", upstream.url)
    monkeypatch.setenv("HTTP_PROXY", upstream.url)
    monkeypatch.setenv("no_proxy", "localhost")
    monkeypatch.setenv("NO_PROXY", "localhost")

    [events] = send(chat_call(f"http://localhost:{port_of(upstream.url)}/v1/chat/completions"))

    assert final(events).message.startswith(f"{PRIVATE} (localhost)")
    assert upstream.connections == 0


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


def test_a_vetted_https_request_sends_and_verifies_the_original_host_name(tls_models, settings):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = True
    server = tls_models("localhost")

    async def run():
        try:
            return await http.request("GET", f"https://localhost:{server.port}/v1/models", vet=True)
        finally:
            await http.aclose()

    response = asyncio.run(run())

    assert response.status_code == 200 and response.json()["data"] == [{"id": "over-tls"}]
    assert server.server_names == ["localhost"]
    assert server.hosts == [f"localhost:{server.port}"]


def test_a_vetted_https_request_refuses_a_certificate_for_another_name(tls_models, settings):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = True
    server = tls_models("someone-else.invalid")

    [events] = send(chat_call(f"https://localhost:{server.port}/v1/chat/completions"))

    assert final(events) == StreamError("Could not connect to Mine (TLS handshake failed).", kind="connect")
    assert server.hosts == []


# --- end to end: the chat and the model list of a user-provided URL ------------------------------

@pytest.mark.django_db
def test_a_user_provided_url_is_called_through_the_vetting_client(make_endpoint, make_user, upstream, settings):
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
