"""The answer: one object (`Answer`) owning a turn's provider request, its stop, the claim and
hold it keeps alive, the periodic saving of the text, and its end (`chat.finish.finish_turn`).

`stream_turn(turn, stop=…)` streams the provider's answer (the adapter's normalised events), saves
the answer as it grows (at most every `FLUSH_SECONDS`, so a crash loses at most that much), and
when the stream ends — finished, failed, stopped or abandoned — stores the final text, finish
reason, error and token usage and hands the usage to billing. Its last event is `Done`.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any

from django.conf import settings
from django.utils import timezone

from billing import holds
from chat import configcache, store
from chat.claims import LOCK_REFRESH_SECONDS, LOCK_TTL, lock_key
from chat.db import on_db
from chat.finish import Done, Outcome, Received, finish_turn
from chat.models import Message
from chat.tasks import schedule_title_soon
from chat.turns import Turn
from endpoints import services as endpoint_services
from endpoints.adapters.types import (
    Event,
    Finish,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from portal.ratelimit import aspend_tokens

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0

_END = object()


class StopSignal:
    """A request to stop one answer (kept, marked unfinished and billed). Like an asyncio.Event,
    except that the answer's stream is called back at once instead of keeping a task waiting."""

    def __init__(self) -> None:
        self._set = False
        self._callbacks: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when set (at once if it is); returns what unsubscribes it."""
        if self._set:
            callback()
            return lambda: None
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None


_background: set[asyncio.Task[Any]] = set()


def _in_background(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _touch_claim(conversation_id: uuid.UUID) -> None:
    with contextlib.suppress(Exception):  # Redis briefly away: the next refresh tries again
        await store.touch(lock_key(conversation_id), LOCK_TTL)


async def _renew_hold(hold: uuid.UUID) -> None:
    with contextlib.suppress(Exception):  # database briefly away: the next refresh tries again
        await on_db(holds.renew)(call=hold)


def _save_progress(message_id: uuid.UUID, text: str, parts: list[dict[str, Any]]) -> None:
    Message.objects.filter(pk=message_id).update(text=text, content=parts, updated_at=timezone.now())


async def _snapshot_or_none() -> configcache.Snapshot | None:
    """The loop's configuration snapshot for billing; None when it cannot be read (the store is
    away): finish_turn then tries itself, inside its own handling of billing failures."""
    try:
        return await configcache.asnapshot()
    except Exception:
        return None


async def _meter(turn: Turn, usage: Usage) -> None:
    """Count a metered turn's tokens (`Turn.metered`) against its user's tokens per minute; the
    answer ends the same when the counter cannot be reached."""
    try:
        await aspend_tokens(turn.user, usage.prompt_total + usage.output_tokens)
    except Exception:
        log.warning("counting the tokens of generation %s failed", turn.generation_id, exc_info=True)


def _wants_title(turn: Turn, timing: str) -> bool:
    endpoint = turn.endpoint
    return bool(turn.new_conversation and endpoint.title_convo and endpoint.title_timing == timing)


class ProviderRequest:
    """A turn's provider request, read in a task of its own into `queue`, which the `Answer`
    consumes (all of the upstream stream is read in this one task, as httpx wants; a stop cancels
    it). The task starts when this is created: `chat.run.TurnRun` creates it next to the task that
    runs the answer, so the request goes out in the event loop's next turn, not a turn after that
    (a task that starts a task costs a turn, 1–2 ms on a loaded loop). Whoever creates one hands it
    to `stream_turn`, which ends it.

    `on_sent` is awaited once the request is on the wire (not when it could not be sent)."""

    def __init__(self, turn: Turn, *, on_sent: Callable[[], Awaitable[None]] | None = None) -> None:
        self.turn = turn
        self.on_sent = on_sent
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.sent = False
        # Set when the consumer comes back for the event after the first delta (it has handled it).
        self.first_taken = asyncio.Event()
        self._ended = False  # _END is in the queue
        self.task = asyncio.create_task(self._pump())
        # (a task cancelled before its first step never runs its body: end the queue all the same)
        self.task.add_done_callback(lambda _task: self._end())

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self.queue.put_nowait(_END)

    async def _sent(self) -> None:
        if self.on_sent is not None:
            try:
                await self.on_sent()
            except Exception:  # never let it fail the provider request
                log.exception("on_sent of turn %s failed", self.turn.generation_id)

    async def _pump(self) -> None:
        turn, queue = self.turn, self.queue
        upstream = endpoint_services.stream_chat(
            endpoint=turn.endpoint, request=turn.request, user=turn.user, call=turn.call, on_sent=self._sent
        )
        try:
            self.sent = True
            first = True
            async for event in upstream:
                queue.put_nowait(event)
                if first and isinstance(event, (TextDelta, ReasoningDelta, ToolCallDelta)):
                    # The first delta often arrives with more of the answer (one read brought
                    # several chunks): wait until the consumer has handled it (sent it to the
                    # browser) before parsing the rest, which would otherwise delay it.
                    first = False
                    await self.first_taken.wait()
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the adapter promises not to raise; never let it take the turn down
            log.exception("adapter for endpoint %s raised", turn.endpoint.pk)
            queue.put_nowait(StreamError(message=f"The provider connection failed unexpectedly ({type(exc).__name__}).",
                                         kind="upstream"))
        finally:
            with contextlib.suppress(Exception):
                await upstream.aclose()
            self._end()


class Answer:
    """One turn's answer while it streams: the provider request, the stop, the claim (and balance
    hold) kept alive by timer callbacks (no task waits meanwhile), the rows saved after the first
    event and the text flushed at most every FLUSH_SECONDS, then one end, `finish`."""

    def __init__(self, turn: Turn, request: ProviderRequest, stop: StopSignal | None) -> None:
        self.turn = turn
        self.request = request
        self.received = Received(turn.prefix_text, turn.prefix_parts)
        self.usage: Usage | None = None  # the usage so far: a later report replaces an earlier one
        self.finish_reason = ""
        self.error: StreamError | None = None
        self.stopped = False
        self._flush_task: asyncio.Task[None] | None = None
        self._last_flush = time.monotonic()
        self._hold_renewed = time.monotonic()
        self._loop = asyncio.get_running_loop()
        self._claim_timer = self._loop.call_later(LOCK_REFRESH_SECONDS, self._refresh_claim)
        self._unsubscribe = stop.subscribe(self._on_stop) if stop is not None else None

    def _on_stop(self) -> None:
        self.stopped = True
        self.request.task.cancel()

    def _refresh_claim(self) -> None:
        turn = self.turn
        if not turn.stateless:
            _in_background(_touch_claim(turn.conversation_id))
        # A long answer renews its balance hold (it expires only when its call died).
        if turn.hold is not None and time.monotonic() - self._hold_renewed > settings.BILLING_HOLD_SECONDS / 3:
            self._hold_renewed = time.monotonic()
            _in_background(_renew_hold(turn.hold))
        self._claim_timer = self._loop.call_later(LOCK_REFRESH_SECONDS, self._refresh_claim)

    def record(self, event: Event) -> None:
        """Take one event of the provider's stream into the answer."""
        if isinstance(event, UsageReport):
            self.usage = event.usage
        elif isinstance(event, Finish):
            self.finish_reason = event.reason
        elif isinstance(event, StreamError):
            self.error = event
        else:
            self.received.add(event)

    # --- saving ---

    def start_saving(self) -> asyncio.Future[None]:
        turn = self.turn
        if turn.saved is None:
            saved = turn.start_saving()
            saved.add_done_callback(self._on_saved)
            if _wants_title(turn, "immediate"):  # from the first message, once it is saved
                saved.add_done_callback(self._title_when_saved)
            return saved
        return turn.saved

    def _on_saved(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("saving turn %s failed", self.turn.generation_id, exc_info=future.exception())
            self.error = StreamError(
                message="The conversation could not be saved, so the answer was stopped. Please try again.",
                kind="server",
            )
            self.request.queue.put_nowait(self.error)
            self.request.task.cancel()

    def _title_when_saved(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is None:
            _in_background(schedule_title_soon(self.turn.conversation_id, "immediate"))

    def flush_if_due(self) -> None:
        """Save the text so far, at most every FLUSH_SECONDS, once the rows are saved."""
        received, saved = self.received, self.turn.saved
        now = time.monotonic()
        if (
            received.changed and now - self._last_flush >= FLUSH_SECONDS
            and (self._flush_task is None or self._flush_task.done())
            and not self.turn.stateless
            and saved is not None and saved.done() and saved.exception() is None
        ):
            received.changed = False
            self._last_flush = now
            self._flush_task = asyncio.create_task(
                on_db(_save_progress)(self.turn.assistant_message_id, received.full_text, received.parts())
            )

    async def _rows_saved(self) -> bool:
        try:
            await asyncio.shield(self.start_saving())
            return True
        except Exception:
            return False

    # --- the end ---

    def close(self) -> None:
        """Stop the timers and the stop subscription (the answer's stream has ended)."""
        self._claim_timer.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()

    async def abandon(self) -> None:
        """Whoever iterated the answer went away: end the provider request, keep and bill what there is."""
        task = self.request.task
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(Exception):
            await asyncio.shield(self.finish(abandoned=True))

    async def finish(self, *, abandoned: bool) -> Done:
        if self._flush_task is not None:
            with contextlib.suppress(Exception):
                await self._flush_task
        saved = await self._rows_saved()
        outcome = Outcome(
            reported=self.usage,
            finish_reason=self.finish_reason,
            error=self.error,
            stopped=(self.stopped or abandoned) and saved,
            request_sent=self.request.sent,
        )
        done: Done = await on_db(finish_turn)(
            self.turn, self.received, outcome, saved=saved, snap=await _snapshot_or_none()
        )
        if self.turn.metered:
            await _meter(self.turn, done.usage)
        if not abandoned and _wants_title(self.turn, "final") and done.text:
            _in_background(schedule_title_soon(self.turn.conversation_id, "final"))
        return done


async def stream_turn(
    turn: Turn, *, stop: StopSignal | None = None, request: ProviderRequest | None = None
) -> AsyncGenerator[Event | Done, None]:
    """Stream the answer: the adapter's events (text, reasoning, tool calls, usage, finish, error),
    then `Done`. Setting `stop` ends the stream early (partial answer kept, marked unfinished and
    billed); so does closing this generator (a client that went away) or cancelling its task.

    `request`: the turn's provider request, already started (ProviderRequest, which also takes the
    `on_sent` hook: work done there overlaps the provider's time to answer); without it the
    request starts here."""
    answer = Answer(turn, request or ProviderRequest(turn), stop)
    queue, first_taken = answer.request.queue, answer.request.first_taken
    finished = False
    try:
        while True:
            event = await queue.get()
            if event is _END:
                break
            answer.record(event)
            yield event
            first_taken.set()
            if turn.saved is None:
                answer.start_saving()
            answer.flush_if_due()
        finished = True
    except (GeneratorExit, asyncio.CancelledError):
        # The consumer went away (gateway client disconnected) or the task is being cancelled:
        # keep and bill what there is, then let the exit proceed.
        await answer.abandon()
        raise
    finally:
        answer.close()
        if not finished and not answer.request.task.done():
            answer.request.task.cancel()
    yield await answer.finish(abandoned=False)
