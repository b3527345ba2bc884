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

Timeouts are read from settings on every request (`timeout()`), so they can change without
re-creating clients.
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from typing import Any, AsyncIterator

import httpx
from django.conf import settings

USER_AGENT = "Atrium/0.1"
SHARDS = 8
SHARD_STREAMS = 8
_LIMITS = httpx.Limits(max_connections=500 // SHARDS, max_keepalive_connections=100 // SHARDS, keepalive_expiry=30)



class _Pools:
    """A loop's clients (created on first use) and how many streams each has in flight."""

    def __init__(self) -> None:
        self.clients: list[httpx.AsyncClient | None] = [None] * SHARDS
        self.busy = [0] * SHARDS


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pools]" = weakref.WeakKeyDictionary()
_strong: dict[int, tuple[asyncio.AbstractEventLoop, _Pools]] = {}
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
        return _client(_pools_of(loop), 0)


@contextlib.asynccontextmanager
async def stream(method: str, url: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
    """`client().stream(…)` on the first pool with room (see the module doc)."""
    loop = asyncio.get_running_loop()
    with _lock:
        pools = _pools_of(loop)
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


def _client(pools: _Pools, index: int) -> httpx.AsyncClient:
    current = pools.clients[index]
    if current is None or current.is_closed:
        current = pools.clients[index] = _new_client()
    return current


def _new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=timeout(),
        limits=_LIMITS,
        follow_redirects=False,  # a redirect could carry credentials to another host
        headers={"User-Agent": USER_AGENT},
        # trust_env (default): HTTPS_PROXY / NO_PROXY from the environment, as corporate networks need
    )


def _pools_of(loop: asyncio.AbstractEventLoop) -> _Pools:
    try:
        current = _clients.get(loop)
    except TypeError:
        for key, (other, _pools) in list(_strong.items()):
            if other.is_closed():
                del _strong[key]
        current = _strong[id(loop)][1] if id(loop) in _strong else None
    if current is None:
        current = _Pools()
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
            pools = _clients.pop(loop, None)
        except TypeError:
            pools = _strong.pop(id(loop), (loop, None))[1]
    for current in pools.clients if pools is not None else ():
        if current is not None:
            await current.aclose()
