"""The one outbound HTTP client every provider call goes through.

An `httpx.AsyncClient` pools connections, but its connections belong to the event loop they were
opened on: daphne runs one loop for its lifetime, while tests and Celery tasks (`asyncio.run`) start
and close loops all the time. So there is one client per running loop, created on first use and
forgotten when the loop is garbage-collected; a client is never used on a loop it wasn't created on.

A loop's client is split into up to SHARDS pools, filled in order: `stream()` uses the first pool
with fewer than SHARD_STREAMS requests in flight. httpcore scans every connection of a pool
(polling idle sockets) on each request and each response end, so with many concurrent streams one
big pool costs a large share of the event loop (a third of daphne's loop at 50 concurrent answers:
encode/httpcore#1035, #928). Filling in order keeps a quiet portal on the first pool, whose
connections stay warm (no new TCP/TLS handshake per answer); `client()` is that first pool.

User-provided base URLs (SPEC §5) are pinned: `endpoints.shaping.check_outbound` resolves the host
once, vets every address and returns a `Pin`; a request given `pin=` connects only to those
addresses and never resolves the name again, so a DNS server answering a public address to the
check and 127.0.0.1 to the connect (DNS rebinding) gets nowhere. The URL, the Host header, TLS SNI
and certificate verification all keep the original host name; only the TCP connect is redirected.
Pinned requests have their own clients per loop (same sharding and bounds as above, created only
once a pinned request is made), whose transport's network backend connects to the pin instead of
resolving: their pools never hold a connection an admin-configured endpoint opened by name, and
theirs are only ever opened to vetted addresses. A pooled connection to a host is reused for the
next pinned request to the same host and port: it goes to an address vetted for that host earlier.
An environment proxy (HTTPS_PROXY, with NO_PROXY) applies to pinned requests as to the others; the
proxy then resolves the name itself, so pinning only covers direct connections.

Timeouts are read from settings on every request (`timeout()`), so they can change without
re-creating clients.

Direct connections run on `endpoints.netio` (httpcore's network backend on asyncio's transports
instead of anyio's streams: no extra event-loop turn per read and write; see there), and the
clients keep no cookies (`_Client`).
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

import httpcore
import httpx
from django.conf import settings

from endpoints.netio import AsyncioBackend

USER_AGENT = "Atrium/0.1"
SHARDS = 8
SHARD_STREAMS = 8
_LIMITS = httpx.Limits(max_connections=500 // SHARDS, max_keepalive_connections=100 // SHARDS, keepalive_expiry=30)
PIN_EXTENSION = "atrium.pin"  # request extension carrying the Pin to the pinned transport
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Pin:
    """The addresses vetted for one host: a pinned request to `host`:`port` connects to one of
    them (in order) and nowhere else. `host` as httpx connects to it (`httpx.URL.raw_host`:
    lower-case, IDNA-encoded, IPv6 without brackets)."""

    host: str
    port: int
    addresses: tuple[str, ...]

    @classmethod
    def key_of(cls, url: httpx.URL) -> tuple[str, int]:
        return url.raw_host.decode("ascii"), url.port or _DEFAULT_PORTS.get(url.scheme, 0)


# --- the pinned transport ----------------------------------------------------------------------

_pin: contextvars.ContextVar[Pin | None] = contextvars.ContextVar("atrium_outbound_pin", default=None)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, except that a TCP connect goes to the current request's pinned
    addresses instead of resolving the host name. Refuses any connect without a matching pin."""

    def __init__(self) -> None:
        self._backend = AsyncioBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pin = _pin.get()
        if pin is None or (host.lower(), port) != (pin.host, pin.port) or not pin.addresses:
            raise httpcore.ConnectError(f"no vetted address for {host}:{port}")
        # Tried in order (getaddrinfo's preference), sharing the connect timeout so that an
        # unreachable first address leaves time for the next, as a resolving client would.
        deadline = None if timeout is None else time.monotonic() + timeout
        failure: Exception | None = None
        for index, address in enumerate(pin.addresses):
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0) / (len(pin.addresses) - index)
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout=remaining, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("pinned requests connect over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _Transport(httpx.AsyncHTTPTransport):
    """httpx's transport for direct connections, on a network backend of our choosing."""

    def __init__(self, limits: httpx.Limits, backend: httpcore.AsyncNetworkBackend) -> None:
        # httpx has no public way to hand its transport a network backend: this is the pool
        # `AsyncHTTPTransport.__init__` builds for a direct connection (verify=True, trust_env),
        # plus the backend; every other method (request/response mapping, exception mapping,
        # closing) is httpx's own.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


class _PinnedTransport(_Transport):
    """The transport on `_PinnedBackend`. A request must carry the Pin of its own host and port
    (PIN_EXTENSION); the pin is current while httpcore connects, which it does inside
    `handle_async_request`, in the requesting task."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits, _PinnedBackend())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pin = request.extensions.get(PIN_EXTENSION)
        if not isinstance(pin, Pin) or Pin.key_of(request.url) != (pin.host, pin.port):
            # fail closed: without its pin, not even a pooled connection is used
            raise httpx.ConnectError(f"no vetted address for {request.url.host}", request=request)
        token = _pin.set(pin)
        try:
            return await super().handle_async_request(request)
        finally:
            _pin.reset(token)


def _proxy_mounts() -> dict[str, httpx.AsyncBaseTransport | None]:
    """The environment's proxies (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY) exactly as httpx maps them
    for a client of its own making; httpx skips this when a client is given its own transport.
    (Proxied requests go through httpx's proxy transport, on httpcore's default network backend.)"""
    from httpx._utils import get_environment_proxies  # not public; the same mapping the shared clients use

    return {
        pattern: None if url is None else httpx.AsyncHTTPTransport(proxy=httpx.Proxy(url), limits=_LIMITS)
        for pattern, url in get_environment_proxies().items()
    }


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _Client(httpx.AsyncClient):
    """An AsyncClient without cookies. Its pools serve every user, so a cookie one provider answer
    set (a load balancer's, a bot check's) would go out with everybody's next requests to that
    host; no provider API needs cookies. (It also spares each response httpx's Set-Cookie parsing,
    which goes through urllib's request and response shims.)"""

    _jar: _NoCookies | None = None

    @property  # type: ignore[override]
    def cookies(self) -> httpx.Cookies:
        if self._jar is None:
            self._jar = _NoCookies()
        return self._jar

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        pass  # nothing is kept


# --- the per-loop registry ---------------------------------------------------------------------

class _Pools:
    """A loop's clients of one kind (created on first use) and how many streams each has in flight."""

    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self.factory = factory
        self.clients: list[httpx.AsyncClient | None] = [None] * SHARDS
        self.busy = [0] * SHARDS


class _LoopPools:
    def __init__(self) -> None:
        self.shared = _Pools(_new_client)
        self.pinned = _Pools(_new_pinned_client)


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPools]" = weakref.WeakKeyDictionary()
_strong: dict[int, tuple[asyncio.AbstractEventLoop, _LoopPools]] = {}
_lock = threading.Lock()


def timeout(*, read: float | None = None) -> httpx.Timeout:
    """Connect timeout from UPSTREAM_CONNECT_TIMEOUT, read (= time between two bytes) from
    UPSTREAM_READ_TIMEOUT unless given."""
    connect = float(settings.UPSTREAM_CONNECT_TIMEOUT)
    read = float(settings.UPSTREAM_READ_TIMEOUT if read is None else read)
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


def client() -> httpx.AsyncClient:
    """The pooled client of the running event loop (call from async code only)."""
    loop = asyncio.get_running_loop()
    with _lock:  # loops of several threads (daphne, async_to_sync, Celery) share the registry
        return _client(_pools_of(loop).shared, 0)


async def request(method: str, url: str, *, pin: Pin | None = None, **kwargs: Any) -> httpx.Response:
    """`client().request(…)`, or with `pin` on the first pinned pool, connecting only to the pin."""
    if pin is None:
        return await client().request(method, url, **kwargs)
    kwargs["extensions"] = _with_pin(kwargs, pin)
    loop = asyncio.get_running_loop()
    with _lock:
        pinned = _client(_pools_of(loop).pinned, 0)
    return await pinned.request(method, url, **kwargs)


@contextlib.asynccontextmanager
async def stream(
    method: str, url: str, *, pin: Pin | None = None, on_sent: Callable[[], Awaitable[None]] | None = None,
    **kwargs: Any,
) -> AsyncIterator[httpx.Response]:
    """`client().stream(…)` on the first pool with room (see the module doc); with `pin`, on the
    pinned pools, connecting only to the pin. `on_sent` is awaited once the request (headers and
    body) has been written to the connection, before the response is read (httpcore's `trace`
    extension): work done there overlaps the provider's own time to answer."""
    if pin is not None:
        kwargs["extensions"] = _with_pin(kwargs, pin)
    if on_sent is not None:
        kwargs["extensions"] = {**(kwargs.get("extensions") or {}), "trace": _sent_tracer(on_sent)}
    loop = asyncio.get_running_loop()
    with _lock:
        loop_pools = _pools_of(loop)
        pools = loop_pools.shared if pin is None else loop_pools.pinned
        busy = pools.busy
        index = next((i for i in range(SHARDS) if busy[i] < SHARD_STREAMS), min(range(SHARDS), key=busy.__getitem__))
        chosen = _client(pools, index)
        busy[index] += 1
    try:
        async with chosen.stream(method, url, **kwargs) as response:
            yield response
    finally:
        with _lock:
            busy[index] -= 1


def _sent_tracer(on_sent: Callable[[], Awaitable[None]]) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    async def trace(event: str, info: dict[str, Any]) -> None:
        # "http11.send_request_body.complete" (or http2's): the whole request is on the wire
        if event.endswith(".send_request_body.complete"):
            await on_sent()

    return trace


def _with_pin(kwargs: dict[str, Any], pin: Pin) -> dict[str, Any]:
    return {**(kwargs.get("extensions") or {}), PIN_EXTENSION: pin}


def _client(pools: _Pools, index: int) -> httpx.AsyncClient:
    current = pools.clients[index]
    if current is None or current.is_closed:
        current = pools.clients[index] = pools.factory()
    return current


def _new_client() -> httpx.AsyncClient:
    return _Client(
        timeout=timeout(),
        transport=_Transport(_LIMITS, AsyncioBackend()),
        # HTTPS_PROXY / NO_PROXY from the environment, as corporate networks need
        mounts=_proxy_mounts(),
        follow_redirects=False,  # a redirect could carry credentials to another host
        headers={"User-Agent": USER_AGENT},
    )


def _new_pinned_client() -> httpx.AsyncClient:
    return _Client(
        timeout=timeout(),
        transport=_PinnedTransport(_LIMITS),
        mounts=_proxy_mounts(),
        follow_redirects=False,  # a redirect would also leave the vetted address
        headers={"User-Agent": USER_AGENT},
    )


def _pools_of(loop: asyncio.AbstractEventLoop) -> _LoopPools:
    try:
        current = _clients.get(loop)
    except TypeError:
        for key, (other, _pools) in list(_strong.items()):
            if other.is_closed():
                del _strong[key]
        current = _strong[id(loop)][1] if id(loop) in _strong else None
    if current is None:
        current = _LoopPools()
        try:
            _clients[loop] = current
        except TypeError:  # a loop implementation without weak references: keep it until closed
            _strong[id(loop)] = (loop, current)
    return current


async def aclose() -> None:
    """Close the running loop's clients (e.g. at the end of an `asyncio.run` in a Celery task)."""
    loop = asyncio.get_running_loop()
    with _lock:
        try:
            loop_pools = _clients.pop(loop, None)
        except TypeError:
            loop_pools = _strong.pop(id(loop), (loop, None))[1]
    if loop_pools is None:
        return
    for current in (*loop_pools.shared.clients, *loop_pools.pinned.clients):
        if current is not None:
            await current.aclose()
