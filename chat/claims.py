"""One answer at a time per conversation: the claim, a key in the chat store (`chat.store`, shared
by every process) holding "<generation id>:<user id>:<process id>". It is refreshed while the
answer streams, so a process that died frees the conversation after LOCK_TTL; the process id
tells `chat.live` where to send a stop."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from chat import store
from chat.errors import BUSY_MESSAGE, Busy

# while the answer streams so that a process that died frees the conversation after LOCK_TTL.
LOCK_TTL = 30
LOCK_REFRESH_SECONDS = 10

#
# The claim is a key in the chat store (`chat.store`, shared by every process) holding
# "<generation id>:<user id>:<process id>": the process id tells `chat.live` where to send a stop.

PROCESS_ID = uuid.uuid4().hex[:16]  # this process, as named in the claims of the answers it writes


def lock_key(conversation_id: uuid.UUID | str) -> str:
    return f"lock:{conversation_id}"


def _claim_value(generation_id: str, user_id: int) -> str:
    return f"{generation_id}:{user_id}:{PROCESS_ID}"


@dataclass(frozen=True)
class Claim:
    generation_id: str
    user_id: str
    process_id: str

    @classmethod
    def parse(cls, value: Any) -> Claim | None:
        if not value:
            return None
        generation_id, _, rest = str(value).partition(":")
        user_id, _, process_id = rest.partition(":")
        return cls(generation_id, user_id, process_id)


def claim_conversation(conversation_id: uuid.UUID, generation_id: str, user_id: int) -> None:
    if not store.add_sync(lock_key(conversation_id), _claim_value(generation_id, user_id), LOCK_TTL):
        raise Busy(BUSY_MESSAGE)


def read_claim(conversation_id: uuid.UUID | str) -> Claim | None:
    return Claim.parse(store.get_sync(lock_key(conversation_id)))


async def aread_claim(conversation_id: uuid.UUID | str) -> Claim | None:
    return Claim.parse(await store.get(lock_key(conversation_id)))


def release_conversation(conversation_id: uuid.UUID | str, generation_id: str, user_id: int) -> None:
    """Free the conversation if `generation_id` (of `user_id`, claimed by this process) still holds
    it: one compare-and-delete of the exact value the claim wrote."""
    store.delete_if_sync(lock_key(conversation_id), _claim_value(generation_id, user_id))


async def arelease_conversation(conversation_id: uuid.UUID | str, generation_id: str, user_id: int) -> None:
    await store.delete_if(lock_key(conversation_id), _claim_value(generation_id, user_id))


def current_generation(conversation_id: uuid.UUID | str, *, user_id: int | None = None) -> str | None:
    """The id of the answer being written in this conversation right now (any process), if any
    (only when it is `user_id`'s conversation, if given)."""
    claim = read_claim(conversation_id)
    if claim is None or (user_id is not None and claim.user_id != str(user_id)):
        return None
    return claim.generation_id


class EarlyClaim:
    """The claim of a `send`'s conversation, taken while the turn is being planned: the store's
    round trip (Redis) overlaps the plan's own instead of adding to the time to the first token.

    A send names its conversation up front, so the claim can start before anything is read.
    Created on the event loop; the outcome can be awaited there (`aheld`) or waited for from a
    database thread (`held`). The plan waits for it before anything that writes (the balance hold)
    and refuses with Busy when another answer holds it; a refusal for any other reason releases it.

    A send that starts a new conversation (`fresh`: its id is chosen here, nobody else can hold
    it) is held from the start; the claim is written later (`confirm()`), before the conversation's
    id is shown to anyone (`Turn.claimed`: chat.live does it while the provider request is on its
    way, so that its round trip is not on the way to the first token) and before its rows are saved.
    """

    def __init__(self, conversation_id: uuid.UUID | None, user_id: int):
        self.fresh = conversation_id is None
        self.conversation_id = conversation_id or uuid.uuid4()
        self.generation_id = uuid.uuid4().hex
        self.user_id = user_id
        self._loop = asyncio.get_running_loop()
        self._outcome: asyncio.Task[bool] | None = None
        if not self.fresh:
            self.start()

    def start(self) -> None:
        """Write the claim (once; on the loop)."""
        if self._outcome is None:
            self._outcome = self._loop.create_task(
                store.add(lock_key(self.conversation_id), _claim_value(self.generation_id, self.user_id), LOCK_TTL)
            )

    async def confirm(self) -> None:
        """Write the claim if not yet done and wait for it; raises if it could not be written."""
        self.start()
        assert self._outcome is not None
        if not await asyncio.shield(self._outcome):
            raise RuntimeError(f"conversation {self.conversation_id} is claimed by another answer")

    def held(self) -> bool:
        """From a database thread (never the loop, which completes the claim)."""
        if self.fresh:
            return True
        return asyncio.run_coroutine_threadsafe(self.aheld(), self._loop).result(timeout=LOCK_TTL)

    async def aheld(self) -> bool:
        if self.fresh:
            return True
        assert self._outcome is not None
        return bool(await asyncio.shield(self._outcome))

    async def arelease_if_held(self) -> None:
        if self._outcome is None:
            return  # a fresh claim never written
        try:
            held = await asyncio.shield(self._outcome)
        except Exception:
            held = True  # unknown: release only deletes a claim that is ours
        if held:
            await arelease_conversation(self.conversation_id, self.generation_id, self.user_id)
