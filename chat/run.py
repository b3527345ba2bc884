"""A turn drivable without a websocket: start it, iterate its events, stop it.

    run = await start_turn(user=user, action=TurnAction(op=Operation.SEND, text="Hello", ...))
    async for event in run:      # the adapter's events (TextDelta, ReasoningDelta, ToolCallDelta,
        ...                      # UsageReport, Finish, StreamError), then Done
    run.stop()                   # from anywhere, any time: the answer so far is kept and billed

No socket, channel layer or frame format in here: the websocket (`chat.live`, which turns events
into frames for every socket following the conversation) drives a turn through this, and so can
any other entry point. Refusals raise `chat.errors.ChatError` from `start_turn`, before anything is
written or sent upstream.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from chat.answer import ProviderRequest, StopSignal, stream_turn
from chat.finish import Done
from chat.planning import prepare_turn
from chat.turns import Turn, TurnAction
from endpoints.adapters.types import Event

if TYPE_CHECKING:
    from accounts.models import User


class TurnRun:
    """A prepared turn, answering. The provider request starts when this is created (its task
    next to whoever iterates the events: see ProviderRequest); `on_sent` is awaited once the
    request is on the wire. Iterate it once; closing the iteration early (a client that went away)
    ends the answer as a stop does."""

    def __init__(self, turn: Turn, *, on_sent: Callable[[], Awaitable[None]] | None = None) -> None:
        self.turn = turn
        self._stop = StopSignal()
        self._events = stream_turn(turn, stop=self._stop, request=ProviderRequest(turn, on_sent=on_sent))

    def __aiter__(self) -> AsyncIterator[Event | Done]:
        return self._events

    def stop(self) -> None:
        """End the answer now (kept, marked unfinished, billed); its last event is still Done."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def aclose(self) -> None:
        await self._events.aclose()


async def start_turn(
    *, user: User, action: TurnAction, on_sent: Callable[[], Awaitable[None]] | None = None
) -> TurnRun:
    """Check and prepare the turn (raises ChatError for the user to read), then start it."""
    return TurnRun(await prepare_turn(user=user, action=action), on_sent=on_sent)
