"""The chat's shared live state: conversation claims, stop flags, live-answer snapshots and the
configuration version — small keys every daphne process reads and writes while answers stream.

With REDIS_URL set they live in Redis, read and written from the event loop itself through one
pooled `redis.asyncio` client per loop (and one pooled sync client for code that runs in threads:
the database threads, Celery, management commands). Without it, in this process's memory (the
embedded default runs a single process).

Why not the Django cache: its API is synchronous (its `a*` methods run the sync call in a worker
thread), so each read on the way to an answer's first token cost a thread hop and a GIL hand-over
on top of the Redis round trip. Everything else (model lists, sessions, …) stays in the Django cache.

Values are JSON. Keys are prefixed with CACHE_PREFIX (default "atrium") and "chat:".
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from chat.background import raise_if_cancelling

log = logging.getLogger(__name__)

# Compare-and-delete: only the holder of a claim may release it.
_DELETE_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def _prefix() -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX') or 'atrium'}:chat:"


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _load(raw: Any) -> Any:
    return None if raw is None else json.loads(raw)


class _Memory:
    """Process memory with expiry (the embedded default). Thread-safe; async methods don't wait."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, tuple[str, float | None]] = {}

    def _live(self, key: str) -> str | None:
        entry = self.data.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= time.monotonic():
            del self.data[key]
            return None
        return entry[0]

    @staticmethod
    def _expiry(ttl: float | None) -> float | None:
        return None if ttl is None else time.monotonic() + ttl

    def add(self, key: str, raw: str, ttl: float | None) -> bool:
        with self.lock:
            if self._live(key) is not None:
                return False
            self.data[key] = (raw, self._expiry(ttl))
            return True

    def get(self, key: str) -> str | None:
        with self.lock:
            return self._live(key)

    def get_many(self, keys: list[str]) -> list[str | None]:
        with self.lock:
            return [self._live(key) for key in keys]

    def write(self, entries: Iterable[tuple[str, str, float | None]]) -> None:
        with self.lock:
            for key, raw, ttl in entries:
                self.data[key] = (raw, self._expiry(ttl))
            if len(self.data) > 50_000:  # expired keys are dropped when read; sweep now and then
                for stale in [k for k, (_, e) in self.data.items() if e is not None and e <= time.monotonic()]:
                    del self.data[stale]

    def touch(self, key: str, ttl: float) -> None:
        with self.lock:
            raw = self._live(key)
            if raw is not None:
                self.data[key] = (raw, self._expiry(ttl))

    def delete_if(self, key: str, raw: str) -> None:
        with self.lock:
            if self._live(key) == raw:
                del self.data[key]

    def delete(self, key: str) -> None:
        with self.lock:
            self.data.pop(key, None)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()


_memory = _Memory()
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
_sync_client: Any = None
_clients_lock = threading.Lock()


def _redis_url() -> str | None:
    return getattr(settings, "REDIS_URL", None) or None


def _required_redis_url() -> str:
    url = _redis_url()
    if url is None:  # callers check first: without REDIS_URL the store is in memory
        raise RuntimeError("REDIS_URL is not set")
    return url


def _aclient() -> Any:
    """This loop's pooled async Redis client (connections belong to the loop they were opened on)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(_required_redis_url(), health_check_interval=30)
        _async_clients[loop] = client
    return client


def _client() -> Any:
    global _sync_client
    with _clients_lock:
        if _sync_client is None:
            import redis

            _sync_client = redis.Redis.from_url(_required_redis_url(), health_check_interval=30)
        return _sync_client


def _ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, int(ttl * 1000))


# --- async (the event loop) ------------------------------------------------------------------------

async def add(key: str, value: Any, ttl: float | None) -> bool:
    """Set `key` unless it exists; whether it was set."""
    raw = _dump(value)
    if not _redis_url():
        return _memory.add(_prefix() + key, raw, ttl)
    return bool(await _aclient().set(_prefix() + key, raw, px=_ms(ttl), nx=True))


async def get(key: str) -> Any:
    if not _redis_url():
        return _load(_memory.get(_prefix() + key))
    return _load(await _aclient().get(_prefix() + key))


async def get_many(keys: Iterable[str]) -> dict[str, Any]:
    keys = list(keys)
    if not keys:
        return {}
    full = [_prefix() + key for key in keys]
    raws = _memory.get_many(full) if not _redis_url() else await _aclient().mget(full)
    return {key: _load(raw) for key, raw in zip(keys, raws, strict=True) if raw is not None}


async def write(entries: Iterable[tuple[str, Any, float | None]]) -> None:
    """Set several keys, each with its own time to live, in one round trip."""
    raw = [(_prefix() + key, _dump(value), ttl) for key, value, ttl in entries]
    if not _redis_url():
        _memory.write(raw)
        return
    async with _aclient().pipeline(transaction=False) as pipe:
        for key, value, ttl in raw:
            pipe.set(key, value, px=_ms(ttl))
        await pipe.execute()


async def set(key: str, value: Any, ttl: float | None) -> None:  # noqa: A001 - the store's verb
    await write([(key, value, ttl)])


async def touch(key: str, ttl: float) -> None:
    if not _redis_url():
        _memory.touch(_prefix() + key, ttl)
        return
    await _aclient().pexpire(_prefix() + key, _ms(ttl))


async def delete_if(key: str, value: Any) -> None:
    """Delete `key` only while it still holds `value`."""
    if not _redis_url():
        _memory.delete_if(_prefix() + key, _dump(value))
        return
    await _aclient().eval(_DELETE_IF, 1, _prefix() + key, _dump(value))


# --- sync (threads: database work, Celery, commands) -----------------------------------------------

def get_sync(key: str) -> Any:
    if not _redis_url():
        return _load(_memory.get(_prefix() + key))
    return _load(_client().get(_prefix() + key))


def add_sync(key: str, value: Any, ttl: float | None) -> bool:
    raw = _dump(value)
    if not _redis_url():
        return _memory.add(_prefix() + key, raw, ttl)
    return bool(_client().set(_prefix() + key, raw, px=_ms(ttl), nx=True))


def set_sync(key: str, value: Any, ttl: float | None) -> None:
    raw = _dump(value)
    if not _redis_url():
        _memory.write([(_prefix() + key, raw, ttl)])
        return
    _client().set(_prefix() + key, raw, px=_ms(ttl))


def delete_if_sync(key: str, value: Any) -> None:
    if not _redis_url():
        _memory.delete_if(_prefix() + key, _dump(value))
        return
    _client().eval(_DELETE_IF, 1, _prefix() + key, _dump(value))


def delete_sync(key: str) -> None:
    if not _redis_url():
        _memory.delete(_prefix() + key)
        return
    _client().delete(_prefix() + key)


def clear_memory() -> None:
    """Forget the in-memory state (tests of the embedded default)."""
    _memory.clear()


async def aclose() -> None:
    """Close the running loop's Redis client (a loop that ends: tests, `asyncio.run` in tasks)."""
    client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


# --- notifications (Redis pub/sub) -----------------------------------------------------------------

def publish_sync(channel: str, message: Any) -> None:
    """Tell every process following `channel` (no-op without Redis: one process, nobody to tell)."""
    if _redis_url():
        _client().publish(_prefix() + channel, _dump(message))


async def follow(channel: str, on_message: Any, on_state: Any) -> None:
    """Until cancelled: subscribe to `channel`; `on_state(True)` once subscribed, `on_message(value)`
    for each message, `on_state(False)` when the subscription is lost (then it subscribes again
    after a second). Without Redis there is nothing to follow: returns at once."""
    if not _redis_url():
        return
    while True:
        pubsub = _aclient().pubsub()
        try:
            await pubsub.subscribe(_prefix() + channel)
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    on_message(_load(message["data"]))
                elif message.get("type") == "subscribe":  # Redis confirmed: nothing is missed from now
                    on_state(True)
        except asyncio.CancelledError:
            raise
        except Exception:
            raise_if_cancelling()
            log.warning("lost the subscription to %s; subscribing again", channel, exc_info=True)
        finally:
            on_state(False)
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        await asyncio.sleep(1.0)
