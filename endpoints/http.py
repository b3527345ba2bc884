"""The one outbound HTTP client every provider call goes through.

An `httpx.AsyncClient` pools connections, but its connections belong to the event loop they were
opened on: daphne runs one loop for its lifetime, while tests and Celery tasks (`asyncio.run`) start
and close loops all the time. So there is one client per running loop, created on first use and
forgotten when the loop is garbage-collected; a client is never used on a loop it wasn't created on.

Timeouts are read from settings on every request (`timeout()`), so they can change without
re-creating clients.
"""
from __future__ import annotations

import asyncio
import threading
import weakref

import httpx
from django.conf import settings

USER_AGENT = "Atrium/0.1"
_LIMITS = httpx.Limits(max_connections=500, max_keepalive_connections=100, keepalive_expiry=30)

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()
_strong: dict[int, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]] = {}
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
        return _client_of(loop)


def _client_of(loop: asyncio.AbstractEventLoop) -> httpx.AsyncClient:
    try:
        current = _clients.get(loop)
    except TypeError:
        for key, (other, _client) in list(_strong.items()):
            if other.is_closed():
                del _strong[key]
        current = _strong[id(loop)][1] if id(loop) in _strong else None
    if current is None or current.is_closed:
        current = httpx.AsyncClient(
            timeout=timeout(),
            limits=_LIMITS,
            follow_redirects=False,  # a redirect could carry credentials to another host
            headers={"User-Agent": USER_AGENT},
            # trust_env (default): HTTPS_PROXY / NO_PROXY from the environment, as corporate networks need
        )
        try:
            _clients[loop] = current
        except TypeError:  # a loop implementation without weak references: keep it until closed
            _strong[id(loop)] = (loop, current)
    return current


async def aclose() -> None:
    """Close the running loop's client (e.g. at the end of an `asyncio.run` in a Celery task)."""
    loop = asyncio.get_running_loop()
    with _lock:
        try:
            current = _clients.pop(loop, None)
        except TypeError:
            current = _strong.pop(id(loop), (loop, None))[1]
    if current is not None:
        await current.aclose()
