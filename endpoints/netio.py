"""httpcore's network I/O on asyncio's own transports.

httpx (through httpcore) reaches the network through a pluggable `httpcore.AsyncNetworkBackend`;
its default on asyncio is anyio's socket streams, which cost the provider call on every step:
each write and each read of data already received first yields to the event loop once
(anyio's cancellation checkpoint), a read that has to wait switches the socket's epoll
registration on and off again (two system calls), a timeout is a cancel scope, and asking an
idle pooled connection whether the server closed it (httpcore does, for every pooled connection,
on each request and at the end of each response) builds anyio's attribute table anew and polls
the socket. On a loaded event loop each yield waits behind everything else that is ready.

This backend keeps a connection's received bytes in an `asyncio.Protocol` (the transport reads
as data comes, as every asyncio protocol does): a read of data that is there returns it without
yielding, a write hands the bytes to the transport and only waits when the transport asks for
back-pressure, a timeout is one timer, and "did the server close or send something unasked" is
a look at that state. TLS is asyncio's own (`loop.start_tls`, as httpcore asks for it after the
TCP connect or a proxy's CONNECT). Errors map onto httpcore's exceptions, with the OS error as
their cause (`endpoints.adapters.base` words a failed connect from it).

httpcore also takes two locks per request on asyncio (the connection's, then HTTP/1.1's state
lock) and one at the end of each response; they are anyio locks, and an anyio lock yields to the
event loop on every acquire, even a free one, unless it is made with `fast_acquire=True` (anyio
4.5). httpcore never asks for that and has no setting for it, so `_free_locks_do_not_yield`
(applied on import) makes its locks that way: a request on a warm pooled connection is on the
wire in the turn of the event loop that asked for it. A lock that is held is still waited for
and a cancelled task still stops at the acquire: only the extra yield goes. On a busy loop each
yield waits behind everything else that is ready (about 2 ms per turn at 50 concurrent answers).
"""
from __future__ import annotations

import asyncio
import ssl
from typing import Any, Iterable

import anyio
import httpcore
from httpcore import _synchronization

READ_LIMIT = 256 * 1024  # bytes held unread before the transport stops reading (back-pressure)


class _Waiter:
    """Where the stream waits for the protocol (to read, or to write again): one wait at a time."""

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    def _time_out(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_exception(TimeoutError())

    async def wait(self, timeout: float | None) -> None:
        """Until woken; TimeoutError after `timeout` seconds (None: no limit)."""
        loop = asyncio.get_running_loop()
        self._future = loop.create_future()
        timer = None if timeout is None else loop.call_later(max(timeout, 0.0), self._time_out)
        try:
            await self._future
        finally:
            self._future = None
            if timer is not None:
                timer.cancel()


class _Protocol(asyncio.Protocol):
    """A connection's state: bytes received and not yet read, end of stream, write back-pressure."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False  # the peer finished sending
        self.lost = False  # the connection is gone
        self.error: BaseException | None = None  # why, when it was not a clean close
        self.reading_paused = False
        self.writing_paused = False
        self.readable = _Waiter()
        self.writable = _Waiter()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_LIMIT and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self.readable.wake()

    def eof_received(self) -> bool:
        self.eof = True
        self.readable.wake()
        return False  # close the transport: an HTTP client has nothing to send after the server's end

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self.readable.wake()
        self.writable.wake()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.writable.wake()


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol

    @property
    def _transport(self) -> asyncio.Transport:
        """The connection's transport, as its protocol knows it (the TLS one after start_tls)."""
        assert self._protocol.transport is not None  # (set by connection_made)
        return self._protocol.transport

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof and not protocol.lost:
            try:
                await protocol.readable.wait(timeout)
            except TimeoutError as exc:
                raise httpcore.ReadTimeout("timed out reading from the server") from exc
        if protocol.buffer:
            data = bytes(protocol.buffer[:max_bytes])
            del protocol.buffer[:max_bytes]
            if protocol.reading_paused and len(protocol.buffer) <= READ_LIMIT // 2 and not protocol.lost:
                protocol.reading_paused = False
                self._transport.resume_reading()
            return data
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__) from protocol.error
        return b""  # the server closed the connection (httpcore decides what that means here)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.lost or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed") from protocol.error
        self._transport.write(buffer)
        if protocol.writing_paused:
            try:
                await protocol.writable.wait(timeout)
            except TimeoutError as exc:
                raise httpcore.WriteTimeout("timed out writing to the server") from exc
            if protocol.lost and protocol.error is not None:
                raise httpcore.WriteError(str(protocol.error)) from protocol.error

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self._transport.abort()
            raise httpcore.ConnectTimeout("timed out during the TLS handshake") from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        if transport is None:  # the connection went away during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        # start_tls doesn't call connection_made again: from now on reads, writes and back-pressure
        # go through the TLS transport
        self._protocol.transport = transport  # type: ignore[assignment]
        return AsyncioStream(self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            # httpcore asks this of idle pooled connections: anything received or a close means the
            # connection cannot carry the next request (e.g. a server's 408 before it hung up)
            protocol = self._protocol
            return bool(protocol.buffer) or protocol.eof or protocol.lost or self._transport.is_closing()
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol, host, port,
                    local_addr=(local_address, 0) if local_address else None,
                    happy_eyeballs_delay=0.25,  # RFC 8305's recommended delay, as anyio does
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return _with_options(transport, protocol, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_unix_connection(_Protocol, path)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"timed out connecting to {path}") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return _with_options(transport, protocol, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _with_options(transport: asyncio.BaseTransport, protocol: asyncio.BaseProtocol,
                  socket_options: Iterable[Any] | None) -> AsyncioStream:
    # asyncio already sets TCP_NODELAY on TCP connections, as anyio does
    sock = transport.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
    return AsyncioStream(protocol)  # type: ignore[arg-type]


def _free_locks_do_not_yield() -> None:
    """httpcore's asyncio locks, made with `fast_acquire=True` (see the module doc). httpcore creates
    each lock's anyio lock in `AsyncLock.setup`, on the lock's first use; this replaces that method
    with one that does the same with the flag (trio keeps httpcore's own)."""
    original = _synchronization.AsyncLock.setup

    def setup(self: _synchronization.AsyncLock) -> None:
        original(self)
        if self._backend == "asyncio":
            self._anyio_lock = anyio.Lock(fast_acquire=True)

    setup.__wrapped__ = original  # type: ignore[attr-defined]
    _synchronization.AsyncLock.setup = setup  # type: ignore[method-assign]


if not hasattr(_synchronization.AsyncLock.setup, "__wrapped__"):  # (once, however often this is imported)
    _free_locks_do_not_yield()
