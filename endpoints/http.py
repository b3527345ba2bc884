"""The one outbound HTTP client every provider call goes through: stock httpx on httpcore's own
network backend.

An `httpx.AsyncClient` pools connections, but its connections belong to the event loop they were
opened on: daphne runs one loop for its lifetime, while tests and Celery tasks (`asyncio.run`) start
and close loops all the time. So there is one client per running loop, created on first use and
forgotten when the loop is garbage-collected; a client is never used on a loop it wasn't created on.

A loop's client is split into up to SHARDS pools, filled in order: `stream()` uses the first pool
with fewer than SHARD_STREAMS requests in flight. httpcore scans every connection of a pool
(polling idle sockets) on each request and each response end, so with many concurrent streams one
big pool costs a large share of the event loop (encode/httpcore#1035, #928). Filling in order keeps
a quiet portal on the first pool, whose connections stay warm (no new TCP/TLS handshake per answer);
`client()` is that first pool.

User-provided base URLs (SPEC §5) go through clients of their own (`vet=True`), whose network
backend (`VettingBackend`) vets the address when the connection opens, as healthchecks' curl
wrapper does with OPENSOCKETFUNCTION: it resolves the host, refuses it when any of its addresses is
loopback, private, link-local (cloud metadata) or otherwise not public, unless
ALLOW_PRIVATE_USER_BASE_URLS, and connects to the vetted address itself. The name is resolved once,
in the same call that connects, so a DNS server answering a public address and then 127.0.0.1 (DNS
rebinding) has no second lookup to answer. The URL, the Host header, TLS SNI and certificate
verification keep the host name (httpcore hands the backend only the TCP connect). Those pools
never hold a connection an admin-configured endpoint opened, and theirs are only ever opened to
vetted addresses. An environment proxy (HTTPS_PROXY, with NO_PROXY) carries user-provided URLs as
it carries the others; the proxy then resolves the name itself, so vetting covers direct
connections.

Timeouts are read from settings on every request (`timeout()`), so they can change without
re-creating clients. The clients keep no cookies: their pools serve every user, so a cookie one
provider answer set (a load balancer's, a bot check's) would go out with everybody's next requests
to that host; no provider API needs cookies.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
import urllib.request
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import anyio
import httpcore
import httpx
from django.conf import settings

USER_AGENT = "Atrium/0.1"
SHARDS = 8
SHARD_STREAMS = 8
_LIMITS = httpx.Limits(max_connections=500 // SHARDS, max_keepalive_connections=100 // SHARDS, keepalive_expiry=30)


# --- vetting user-provided URLs at connect time -----------------------------------------------------

class RefusedAddress(httpcore.ConnectError):
    """A user-provided URL's host resolves to an address user-provided URLs may not reach. (httpx
    raises it as the cause of an `httpx.ConnectError`.)"""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to {address}, a local or private network address")
        self.host = host
        self.address = address


def is_public(address: str) -> bool:
    """A unicast address on the public internet (IPv4-mapped IPv6 judged as its IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class VettingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own network backend, except that a TCP connect resolves the host itself, vets
    every address and connects to the vetted addresses only (in the resolver's order, sharing the
    connect timeout, as a resolving client would). TLS is started by httpcore on the stream this
    returns, with the original host name."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        addresses = await _resolve(host, port, timeout)
        if not settings.ALLOW_PRIVATE_USER_BASE_URLS:
            for address in addresses:
                if not is_public(address):
                    raise RefusedAddress(host, address)
        failure: Exception | None = None
        for index, address in enumerate(addresses):
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0) / (len(addresses) - index)
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout=remaining, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # (_resolve returns at least one address)
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("user-provided URLs connect over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


async def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """The host's addresses, without repeats, within the connect timeout."""
    try:
        with anyio.fail_after(timeout):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"timed out resolving {host}") from exc
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
        raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise httpcore.ConnectError(f"{host} has no address")
    return addresses


class _VettedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport for user-provided URLs: direct connections on a VettingBackend pool, and
    the environment's proxy where one applies (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY, as urllib reads
    them: httpx reads the environment only for clients without a transport of their own)."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        # httpx takes no network backend: this is the pool its __init__ just built for a direct
        # connection (verify=True, trust_env), plus the backend. `_pool` is the one httpx
        # internal touched here (pyproject bounds httpx and httpcore to the tested versions).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=VettingBackend(),
        )
        self._limits = limits
        self._proxied: dict[str, httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = _environment_proxy(request.url)
        if proxy is None:
            return await super().handle_async_request(request)
        transport = self._proxied.get(proxy)
        if transport is None:
            transport = self._proxied[proxy] = httpx.AsyncHTTPTransport(proxy=proxy, limits=self._limits)
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        for transport in self._proxied.values():
            await transport.aclose()
        await super().aclose()


def _environment_proxy(url: httpx.URL) -> str | None:
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass_environment(url.host, proxies):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


# --- the per-loop registry ------------------------------------------------------------------------

def _no_cookies() -> CookieJar:
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))  # no domain may set a cookie


def _new_client(*, vet: bool) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=timeout(),
        limits=_LIMITS,
        # user-provided URLs: vetted at connect time; the others: httpx's own transport, with
        # HTTPS_PROXY / NO_PROXY from the environment, as corporate networks need
        transport=_VettedTransport(_LIMITS) if vet else None,
        cookies=_no_cookies(),
        follow_redirects=False,  # a redirect could carry credentials to another host
        headers={"User-Agent": USER_AGENT},
    )


class _Pools:
    """A loop's clients of one kind (created on first use) and how many streams each has in flight."""

    def __init__(self, *, vet: bool) -> None:
        self.vet = vet
        self.clients: list[httpx.AsyncClient | None] = [None] * SHARDS
        self.busy = [0] * SHARDS

    def client(self, index: int) -> httpx.AsyncClient:
        current = self.clients[index]
        if current is None or current.is_closed:
            current = self.clients[index] = _new_client(vet=self.vet)
        return current


class _LoopPools:
    def __init__(self) -> None:
        self.shared = _Pools(vet=False)
        self.vetted = _Pools(vet=True)


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPools] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def timeout(*, read: float | None = None) -> httpx.Timeout:
    """Connect timeout from UPSTREAM_CONNECT_TIMEOUT, read (= time between two bytes) from
    UPSTREAM_READ_TIMEOUT unless given."""
    connect = float(settings.UPSTREAM_CONNECT_TIMEOUT)
    read = float(settings.UPSTREAM_READ_TIMEOUT if read is None else read)
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


def _pools_of(loop: asyncio.AbstractEventLoop) -> _LoopPools:
    with _lock:  # loops of several threads (daphne, async_to_sync, Celery) share the registry
        current = _clients.get(loop)
        if current is None:
            current = _clients[loop] = _LoopPools()
        return current


def client(*, vet: bool = False) -> httpx.AsyncClient:
    """The running event loop's first pooled client (call from async code only); `vet`: the one
    for user-provided URLs."""
    loop_pools = _pools_of(asyncio.get_running_loop())
    return (loop_pools.vetted if vet else loop_pools.shared).client(0)


async def request(method: str, url: str, *, vet: bool = False, **kwargs: Any) -> httpx.Response:
    """`client(vet=vet).request(…)`."""
    return await client(vet=vet).request(method, url, **kwargs)


@contextlib.asynccontextmanager
async def stream(
    method: str, url: str, *, vet: bool = False, on_sent: Callable[[], Awaitable[None]] | None = None,
    **kwargs: Any,
) -> AsyncIterator[httpx.Response]:
    """`client().stream(…)` on the first pool with room (see the module doc); `vet`: a
    user-provided URL. `on_sent` is awaited once the request (headers and body) has been written
    to the connection, before the response is read (httpcore's `trace` extension): work done there
    overlaps the provider's own time to answer."""
    if on_sent is not None:
        kwargs["extensions"] = {**(kwargs.get("extensions") or {}), "trace": _sent_tracer(on_sent)}
    loop_pools = _pools_of(asyncio.get_running_loop())
    pools = loop_pools.vetted if vet else loop_pools.shared  # (used by this loop's thread only)
    busy = pools.busy
    index = next((i for i in range(SHARDS) if busy[i] < SHARD_STREAMS), min(range(SHARDS), key=busy.__getitem__))
    chosen = pools.client(index)
    busy[index] += 1
    try:
        async with chosen.stream(method, url, **kwargs) as response:
            yield response
    finally:
        busy[index] -= 1


def _sent_tracer(on_sent: Callable[[], Awaitable[None]]) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    async def trace(event: str, info: dict[str, Any]) -> None:
        # "http11.send_request_body.complete" (or http2's): the whole request is on the wire
        if event.endswith(".send_request_body.complete"):
            await on_sent()

    return trace


async def aclose() -> None:
    """Close the running loop's clients (e.g. at the end of an `asyncio.run` in a Celery task)."""
    loop = asyncio.get_running_loop()
    with _lock:
        loop_pools = _clients.pop(loop, None)
    if loop_pools is None:
        return
    for current in (*loop_pools.shared.clients, *loop_pools.vetted.clients):
        if current is not None:
            await current.aclose()
