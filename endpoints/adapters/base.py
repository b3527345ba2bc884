"""The one base class every wire-protocol adapter extends (healthchecks' `Transport` shape).

A subclass says how its protocol lays out a request (URL, auth headers, body) and how to read one
event of its stream or one JSON body; this class does everything they share: the POST through the
pooled client, HTTP errors, timeouts, cut connections, malformed chunks, and the rule that text and
usage received before a failure are still delivered, with the error as the last event.

Two hooks are there for protocols unlike OpenAI's and Anthropic's: `sign` adds headers computed
from the exact request when it is sent (AWS SigV4 for a native Bedrock adapter), and `streamed` /
`frames` read a stream that is not SSE (Bedrock's binary event stream, Gemini's JSON array). A new
protocol is a module with a subclass and a line in `endpoints.adapters.ADAPTERS`.
"""
from __future__ import annotations

import asyncio
import email.utils
import errno
import json
import logging
import socket
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from httpx_sse import EventSource, ServerSentEvent

from endpoints import http
from endpoints.adapters.types import (
    Call,
    ChatRequest,
    Event,
    Finish,
    StreamError,
    Usage,
    UsageReport,
)
from portal.logging import redact

if TYPE_CHECKING:
    from endpoints.models import Endpoint

log = logging.getLogger(__name__)

DRAIN_SECONDS = 0.5  # after the terminal event, how long the rest of a response may take to end
# Request parameters that only steer reasoning; `reasoningFormat: disabled` removes them all.
REASONING_PARAMS = (
    "reasoning_effort", "reasoning", "reasoning_summary", "thinking", "thinking_budget", "include_reasoning",
)


class UpstreamFailure(Exception):
    """A failure found while reading an answer; becomes the final StreamError."""

    def __init__(self, event: StreamError):
        super().__init__(event.message)
        self.event = event


@dataclass
class StreamState:
    """What one answer has produced so far."""

    usage: Usage | None = None
    finish: str | None = None
    done: bool = False  # the protocol's terminal event arrived
    extra: dict[str, Any] = field(default_factory=dict)  # per-protocol bookkeeping


@dataclass
class Shape:
    """What shaping hands an adapter to lay out a request."""

    request: ChatRequest
    user_id: str = ""
    reasoning_format: str | None = None  # reasoning_effort | reasoning_object | disabled | None
    base_url: str = ""  # resolved
    direct: bool = False  # directEndpoint: base_url is the full URL
    # the endpoint, for settings of one protocol only (Azure's deployment names); None when a
    # request is laid out without one (bench/floor.py)
    endpoint: Endpoint | None = None


class Adapter(ABC):
    protocol: ClassVar[str]  # the registry key, stored in Endpoint.provider
    label: ClassVar[str]  # how the admin names it
    path: ClassVar[str]  # appended to baseURL unless directEndpoint
    models_path: ClassVar[str | None] = "/models"

    # --- request layout --------------------------------------------------------------------
    def url(self, shape: Shape) -> str:
        return shape.base_url if shape.direct else shape.base_url.rstrip("/") + self.path

    def auth_headers(self, *, api_key: str, auth_kind: str) -> dict[str, str]:
        """Headers carrying the key; `auth_kind` is the endpoint's (api_key, access_token, none)."""
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def base_headers(self, *, stream: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if stream:
            headers["Accept"] = "text/event-stream"
        return headers

    @abstractmethod
    def body(self, shape: Shape) -> dict[str, Any]:
        """The provider's request body with the default parameters (before addParams/dropParams)."""

    def finalize(self, body: dict[str, Any], shape: Shape, dropped: list[str]) -> dict[str, Any]:
        """Last touches after addParams/dropParams (what the protocol always needs)."""
        return body

    def sign(self, call: Call, content: bytes) -> dict[str, str]:
        """Headers that sign this exact request (URL, headers, body), computed as it is sent, so a
        signature's timestamp is fresh; `call.credential` holds the key. None by default."""
        return {}

    # --- answer reading --------------------------------------------------------------------
    def streamed(self, response: httpx.Response) -> bool:
        """Whether a 2xx answer to a streamed request is the protocol's stream (read with
        `frames`), not a whole JSON body (read with `read_full`)."""
        return "text/event-stream" in response.headers.get("content-type", "")

    def frames(self, response: httpx.Response) -> AsyncGenerator[Any, None]:
        """The stream's events, each handed to `read_event`: SSE events by default."""
        return EventSource(response).aiter_sse()

    @abstractmethod
    def read_event(self, sse: ServerSentEvent, state: StreamState, call: Call) -> list[Event]:
        """Events from one event of the stream (an SSE event unless `frames` says otherwise);
        sets `state.done` on the protocol's terminal event."""

    @abstractmethod
    def read_full(self, payload: Any, state: StreamState, call: Call) -> list[Event]:
        """Events from a whole (non-streamed) JSON answer."""

    def error_message(self, payload: Any) -> str:
        """The provider's own words in an error body (OpenAI and Anthropic both use `error.message`)."""
        if isinstance(payload, dict):
            error = payload.get("error", payload)
            if isinstance(error, dict):
                return str(error.get("message") or error.get("detail") or error.get("code") or "")
            if isinstance(error, str):
                return error
            if payload.get("detail"):
                return str(payload["detail"])
        if isinstance(payload, list) and payload:
            return self.error_message(payload[0])
        return ""

    # --- the exchange ----------------------------------------------------------------------
    async def run(
        self, call: Call, *, on_sent: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncGenerator[Event, None]:
        """Send `call`, yield its events; the last one is Finish or StreamError, never an exception.
        `on_sent` is awaited once the request is on the wire (see `endpoints.http.stream`)."""
        state = StreamState()
        failure: StreamError | None = None
        received = False
        try:
            # aclosing: when the consumer stops early (a user pressing stop), the upstream response
            # is closed at once instead of whenever the abandoned generator is garbage-collected.
            async with aclosing(self._exchange(call, state, on_sent)) as events:
                async for event in events:
                    received = True
                    yield event
        except UpstreamFailure as exc:
            failure = exc.event
        except httpx.ConnectTimeout:
            failure = StreamError(
                f"Connecting to {call.endpoint_name} timed out after {_seconds(settings.UPSTREAM_CONNECT_TIMEOUT)}.",
                kind="timeout",
            )
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
            where = "during the answer" if received or state.extra.get("started") else "before answering"
            failure = StreamError(
                f"{call.endpoint_name} stopped responding {where} "
                f"(no data for {_seconds(settings.UPSTREAM_READ_TIMEOUT)}).",
                kind="timeout",
            )
        except httpx.ConnectError as exc:
            failure = _connect_failure(exc, call)
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if state.extra.get("started"):
                failure = StreamError(
                    f"The connection to {call.endpoint_name} was cut before the answer finished.", kind="cut"
                )
            else:
                failure = StreamError(
                    f"{call.endpoint_name} closed the connection without answering ({type(exc).__name__}).", kind="cut"
                )
        except httpx.HTTPError as exc:
            failure = StreamError(f"Request to {call.endpoint_name} failed: {_scrub(str(exc), call)}", kind="upstream")
        if failure is None and call.stream and not state.done and state.finish is None:
            # a clean end of stream after the finish reason is tolerated (some servers omit [DONE])
            failure = StreamError(
                f"The connection to {call.endpoint_name} ended before the answer finished.", kind="cut"
            )
        if state.usage is not None:
            yield UsageReport(state.usage)
        if failure is not None:
            log.warning("upstream %s (%s) failed: %s", call.endpoint_name, call.model, failure.message)
            yield failure
        else:
            yield Finish(state.finish or "stop")

    async def _exchange(
        self, call: Call, state: StreamState, on_sent: Callable[[], Awaitable[None]] | None
    ) -> AsyncGenerator[Event, None]:
        content = json.dumps(call.body, default=_json_default).encode()
        signature = self.sign(call, content)
        async with http.stream(
            "POST", call.url, vet=call.outbound_check, on_sent=on_sent,
            headers={**call.headers, **signature} if signature else call.headers, content=content,
            timeout=http.timeout(),
        ) as response:
            if response.status_code >= 400:
                raw = await response.aread()
                raise UpstreamFailure(self.http_error(call, response, raw))
            state.extra["started"] = True
            content_type = response.headers.get("content-type", "")
            if not call.stream or not self.streamed(response):
                # a non-streamed answer (or a server that ignored `stream: true`)
                raw = await response.aread()
                try:
                    payload = json.loads(raw)
                except ValueError as exc:
                    raise UpstreamFailure(StreamError(
                        f"{call.endpoint_name} answered with something that is not JSON "
                        f"({content_type or 'no content type'}).",
                        kind="protocol",
                    )) from exc
                for event in self.read_full(payload, state, call):
                    yield event
                state.done = True
                return
            async with aclosing(self.frames(response)) as stream:
                async for sse in stream:
                    for event in self.read_event(sse, state, call):
                        yield event
                    if state.done:
                        await _drain(stream)
                        break

    # --- helpers for subclasses ------------------------------------------------------------
    def parse_json(self, sse: ServerSentEvent, call: Call) -> Any:
        try:
            return json.loads(sse.data)
        except ValueError as exc:
            raise UpstreamFailure(StreamError(
                f"{call.endpoint_name} sent a malformed chunk (not valid JSON); the answer stops there.",
                kind="protocol",
            )) from exc

    def stream_error(self, call: Call, message: str, error_type: str | None) -> UpstreamFailure:
        """An error reported inside a 200 stream."""
        kind = _kind_of(error_type or "")
        text = _scrub(message, call) or "unknown error"
        return UpstreamFailure(StreamError(
            f"{call.endpoint_name} reported an error during the answer: {text}", kind=kind
        ))

    def http_error(self, call: Call, response: httpx.Response, raw: bytes) -> StreamError:
        status = response.status_code
        try:
            detail = self.error_message(json.loads(raw))
        except ValueError:
            detail = raw.decode("utf-8", "replace").strip()
        detail = _scrub(detail, call)
        said = f": {detail}" if detail else "."
        name = call.endpoint_name
        if status in (401, 403):
            what = "rejected the API key" if status == 401 else "refused access with this API key"
            return StreamError(f"{name} {what} (HTTP {status}){said} Check the key for this endpoint.",
                               status=status, kind="auth")
        if status == 404:
            return StreamError(f"{name} does not know the model '{call.model}' (HTTP 404){said}",
                               status=status, kind="not_found")
        if status == 429:
            retry_after = retry_after_seconds(response.headers)
            wait = f" Retry after {_seconds(retry_after)}." if retry_after is not None else " Try again shortly."
            return StreamError(f"{name} is rate limiting requests (HTTP 429){said}{wait}",
                               status=status, retry_after=retry_after, kind="rate_limit")
        if status >= 500:
            return StreamError(f"{name} had a server error (HTTP {status}){said} Try again later.",
                               status=status, retry_after=retry_after_seconds(response.headers), kind="server")
        return StreamError(f"{name} refused the request (HTTP {status}){said}", status=status, kind="upstream")


async def _drain(stream: AsyncIterator[Any]) -> None:
    """Read what follows the protocol's terminal event (normally just the end of the chunked body),
    so the connection goes back to the pool: a response closed before its end closes its
    connection, and every answer would then pay for a new TCP (and TLS) connection. A server that
    keeps the body open after the terminal event gets DRAIN_SECONDS, then the connection is dropped."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in stream:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass  # the answer is complete either way; only the connection is not reused


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """`retry-after-ms`, `retry-after` as seconds or as an HTTP date."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _connect_failure(exc: httpx.ConnectError, call: Call) -> StreamError:
    if isinstance(exc.__cause__, http.RefusedAddress):  # (the vetting of a user-provided URL)
        return StreamError(
            f"Your base URL for {call.endpoint_name} points to a local or private network address "
            f"({urlsplit(call.url).hostname}), which this portal does not allow for user-provided URLs.",
            kind="config",
        )
    return StreamError(f"Could not connect to {call.endpoint_name} ({_connect_reason(exc)}).", kind="connect")


def _connect_reason(exc: BaseException) -> str:
    """The root cause of a failed connect, in words (httpx says only 'All connection attempts failed')."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "host name not found"
        if isinstance(seen, ssl.SSLError):
            return "TLS handshake failed"
        if isinstance(seen, OSError) and seen.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "network unreachable"
        seen = seen.__cause__ or seen.__context__
    return "network error"


def _kind_of(error_type: str) -> str:
    lowered = error_type.lower()
    for needle, kind in (("rate", "rate_limit"), ("overload", "server"), ("server", "server"), ("api_error", "server"),
                         ("auth", "auth"), ("permission", "auth"), ("not_found", "not_found")):
        if needle in lowered:
            return kind
    return "upstream"


def _seconds(value: float) -> str:
    value = float(value)
    number = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    return f"{number} second" + ("" if number == "1" else "s")


def _scrub(text: str, call: Call) -> str:
    """Provider words may echo the key back (e.g. 'Incorrect API key provided: sk-…'): remove every
    known secret and anything shaped like one, and keep it short."""
    for secret in call.secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = redact(text)
    text = " ".join(text.split())
    return text[:300] + ("…" if len(text) > 300 else "")


def _json_default(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
