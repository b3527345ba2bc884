"""The chat's database threads: ORM work of the event loop's code runs here (`on_db`)."""
from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

# Threads the chat's database work runs on. Each keeps its connection between calls (reconnecting,
# or a thread hop to a shared thread that other code closes connections on, would add milliseconds
# to every answer's first token). CHAT_DB_THREADS of them (default one: see settings); one on
# SQLite, which serialises writers anyway.
_db_executor: ThreadPoolExecutor | None = None
_db_executor_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _db_executor
    with _db_executor_lock:
        if _db_executor is None:
            threads = 1 if connections["default"].vendor == "sqlite" else settings.CHAT_DB_THREADS
            _db_executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chat-db")
        return _db_executor


P = ParamSpec("P")
R = TypeVar("R")


def on_db(fn: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`fn` as a coroutine run on one of the chat's database threads (see CHAT_DB_THREADS).

    A connection an error left unusable is closed, so the next call opens a fresh one.
    """

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception:
            for connection in connections.all(initialized_only=True):
                if connection.connection is not None and not connection.is_usable():
                    connection.close()
            raise

    return sync_to_async(call, thread_sensitive=False, executor=_executor())


def close_db_connections(timeout: float = 10.0) -> None:
    """Close the database connections of every chat database thread (tests: before the test
    database is flushed or dropped). Blocks until each thread has done so."""
    executor = _executor()
    threads = executor._max_workers
    barrier = threading.Barrier(threads)

    def close() -> None:
        barrier.wait(timeout)  # holds every thread until all have a job: each closes its own
        connections.close_all()

    for future in [executor.submit(close) for _ in range(threads)]:
        future.result(timeout)
