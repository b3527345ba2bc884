"""A chat turn for request/response callers (the REST API): start one and read its frames, or stop
one — the websocket's turn, not a second implementation.

A turn started here is a `chat.live.Generation`, exactly as one started over the websocket: it runs
in a task of its own through `chat.run.TurnRun`, every socket following the conversation (any tab,
any process) sees it live, it holds the conversation's claim, and a stop reaches it from any
process. The HTTP caller follows the conversation like a socket of this process (`FrameQueue`) and
reads the same numbered frames the websocket sends. A caller that goes away stops nothing, as a
closed socket stops nothing: the answer is written to the end and can be read afterwards (or
stopped with `chat.live.stop_answer`).
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from chat import live
from chat.services import TurnAction, prepare_turn

if TYPE_CHECKING:
    from accounts.models import User

Frame = dict[str, Any]


class FrameQueue:
    """Follows a conversation like a socket of this process (`chat.live.follow`), keeping the
    frames of one generation for whoever reads them."""

    def __init__(self, generation_id: str) -> None:
        self.generation_id = generation_id
        self.queue: asyncio.Queue[Frame] = asyncio.Queue()

    async def deliver(self, frames: list[Frame]) -> None:
        for frame in frames:
            if frame.get("generation_id") == self.generation_id:
                self.queue.put_nowait(frame)


class HttpTurn:
    """A started turn; iterate `frames()` once, from `created` to `done`."""

    def __init__(self, generation: live.Generation, follower: FrameQueue) -> None:
        self.generation = generation
        self.follower = follower
        self.conversation_id = generation.conversation_id

    async def frames(self) -> AsyncIterator[Frame]:
        try:
            while True:
                frame = await self.follower.queue.get()
                yield frame
                if frame["type"] == "done":
                    return
        finally:
            live.unfollow(self.conversation_id, self.follower)


async def start_answer(
    *, user: User, action: TurnAction, request_id: str | None = None, metered: bool = False
) -> HttpTurn:
    """Check and start a turn (raises ChatError for the user to read, before anything is sent).
    `metered`: asked with a personal API key, so its tokens count against the role's tokens per
    minute (`Turn.metered`)."""
    turn = await prepare_turn(user=user, action=action)
    turn.metered = metered
    generation = live.Generation(turn, request_id=request_id)
    follower = FrameQueue(generation.id)
    live.follow(generation.conversation_id, follower)  # before it starts: every frame reaches it
    live.launch(generation)
    return HttpTurn(generation, follower)
