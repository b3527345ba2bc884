"""Rate limits per role: requests and tokens per user per minute, shared by every server.

A role's `requests_per_minute` and `tokens_per_minute` (0: no limit) apply to each of its users.
Counting is by fixed windows of one wall-clock minute: a counter per (user, kind, minute) that
expires after two minutes. A request is refused (`RateLimited`, 429 with `Retry-After`: the seconds
until the next minute) when it is over the minute's request count, or when the tokens the user has
already spent this minute reach the limit (token counts are known only when a call ends, so the
call that crosses the limit completes and the next one waits).

With REDIS_URL set the counters live in Redis (one pipelined round trip per check: INCR, EXPIRE,
GET), so they hold across daphne processes; without it, in this process's memory (the embedded
default is one process). The REST API counts every request made with a personal API key
(`accounts.auth.ApiKeyAuth`: scripts; the browser's own session requests are not counted), the
gateway calls `acheck_request`; the tokens of every chat turn made with a personal API key (the
gateway's, and `/api/chat/*` with a key: `chat.turns.Turn.metered`) are added with `aspend_tokens`
when its answer ends.
"""
from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from django.conf import settings

WINDOW = 60  # seconds
KEEP = 2 * WINDOW  # a window's counters outlive it a little (clock skew between servers)


class RateLimited(Exception):
    """Over a role's limit: answer 429 with `Retry-After: retry_after` (whole seconds)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    requests: int  # per minute; 0: none
    tokens: int  # per minute; 0: none

    @classmethod
    def of(cls, role: Any) -> Limits:
        if role is None:
            return cls(0, 0)
        return cls(int(role.requests_per_minute or 0), int(role.tokens_per_minute or 0))

    @property
    def any(self) -> bool:
        return bool(self.requests or self.tokens)


def _window(now: float | None = None) -> tuple[int, int]:
    """The current minute's number and the whole seconds until it ends (at least 1)."""
    now = time.time() if now is None else now
    minute = int(now // WINDOW)
    return minute, max(1, math.ceil((minute + 1) * WINDOW - now))


def _keys(user_id: Any, minute: int) -> tuple[str, str]:
    prefix = f"{settings.CACHES['default'].get('KEY_PREFIX') or 'atrium'}:rl:{user_id}:{minute}"
    return f"{prefix}:req", f"{prefix}:tok"


def _verdict(limits: Limits, requests: int, tokens: int, retry_after: int) -> None:
    if limits.requests and requests > limits.requests:
        raise RateLimited(
            f"Rate limit reached: {limits.requests} requests per minute for your role. "
            f"Try again in {retry_after} s.", retry_after=retry_after,
        )
    if limits.tokens and tokens >= limits.tokens:
        raise RateLimited(
            f"Rate limit reached: {limits.tokens:,} tokens per minute for your role. "
            f"Try again in {retry_after} s.", retry_after=retry_after,
        )


# --- counters: process memory (embedded default) -------------------------------------------------

class _Memory:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, tuple[int, float]] = {}

    def add(self, key: str, amount: int) -> int:
        now = time.monotonic()
        with self.lock:
            if len(self.counts) > 10_000:  # forget expired windows now and then
                self.counts = {k: v for k, v in self.counts.items() if v[1] > now}
            value, expires = self.counts.get(key, (0, now + KEEP))
            if expires <= now:
                value, expires = 0, now + KEEP
            self.counts[key] = (value + amount, expires)
            return value + amount


_memory = _Memory()


def reset_memory() -> None:
    """Forget every in-memory counter (tests)."""
    _memory.counts.clear()


# --- counters: Redis ----------------------------------------------------------------------------

_sync_client: Any = None
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def _client() -> Any:
    global _sync_client
    if _sync_client is None:
        import redis

        _sync_client = redis.Redis.from_url(settings.REDIS_URL)
    return _sync_client


def _aclient() -> Any:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        import redis.asyncio

        client = _async_clients[loop] = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    return client


def _pipeline(pipe: Any, request_key: str, token_key: str) -> Any:
    pipe.incr(request_key)
    pipe.expire(request_key, KEEP)
    pipe.get(token_key)
    return pipe


# --- the checks -----------------------------------------------------------------------------------

def check_request(user: Any) -> None:
    """Count one request of `user` (its role's limits); raise RateLimited when over a limit."""
    limits = Limits.of(getattr(user, "role", None))
    if not limits.any:
        return
    minute, retry_after = _window()
    request_key, token_key = _keys(user.pk, minute)
    if settings.REDIS_URL:
        count, _expired, tokens = _pipeline(_client().pipeline(), request_key, token_key).execute()
        tokens = int(tokens or 0)
    else:
        count, tokens = _memory.add(request_key, 1), _memory.add(token_key, 0)
    _verdict(limits, int(count), tokens, retry_after)


async def acheck_request(user: Any) -> None:
    """check_request from the event loop (Redis spoken asynchronously: no thread hop)."""
    limits = Limits.of(getattr(user, "role", None))
    if not limits.any:
        return
    if not settings.REDIS_URL:
        return check_request(user)
    minute, retry_after = _window()
    request_key, token_key = _keys(user.pk, minute)
    count, _expired, tokens = await _pipeline(_aclient().pipeline(), request_key, token_key).execute()
    _verdict(limits, int(count), int(tokens or 0), retry_after)


async def aspend_tokens(user: Any, tokens: int) -> None:
    """Add a finished call's tokens to the user's minute (when the role limits tokens)."""
    if tokens <= 0 or not Limits.of(getattr(user, "role", None)).tokens:
        return
    minute, _ = _window()
    _request_key, token_key = _keys(user.pk, minute)
    if not settings.REDIS_URL:
        _memory.add(token_key, tokens)
        return
    pipe = _aclient().pipeline()
    pipe.incrby(token_key, tokens)
    pipe.expire(token_key, KEEP)
    await pipe.execute()
