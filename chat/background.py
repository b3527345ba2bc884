"""Process-wide background tasks of the chat (the stop listener, the configuration follower): one
running task per event loop, started on first use, cancelled when a test's loop ends."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class LoopTask:
    """A coroutine kept running as one task on the running loop (started again on another loop, or
    when it ended)."""

    def __init__(self, name: str, start: Callable[[], Coroutine[Any, Any, None]]):
        self.name = name
        self.start = start
        self.task: asyncio.Task[None] | None = None

    def ensure(self) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self.start(), name=self.name)

    async def cancel(self) -> None:
        """Cancel the task if it runs on this loop (tests: before their loop ends)."""
        task, self.task = self.task, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def raise_if_cancelling() -> None:
    """Call in an `except Exception:` of a loop that must survive lost connections: channels_redis
    and redis-py turn a cancelled read into a TimeoutError/ConnectionError, which is still a
    cancellation of this task."""
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        raise asyncio.CancelledError


_serving_loop: asyncio.AbstractEventLoop | None = None


def serve_on_this_loop() -> None:
    """Note the running loop as the one this process serves answers on (daphne's)."""
    global _serving_loop
    _serving_loop = asyncio.get_running_loop()


def is_server_loop() -> bool:
    """Whether the running loop is the one this process serves answers on (daphne's), as opposed
    to a short-lived loop of a Celery task."""
    try:
        return asyncio.get_running_loop() is _serving_loop
    except RuntimeError:
        return False
