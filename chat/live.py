"""Live answers: each answer runs in a task of its own (not the socket's that asked for it) and
reaches every socket following its conversation — the one that asked, a second tab, a reload, on
this daphne process or any other sharing Redis — as one numbered sequence of frames.

One delivery path. A `Generation` turns the turn's events (`chat.run.TurnRun`) into frames,
numbers them (`seq`) and sends them out in batches: the first token at once, then whatever came
within BATCH_SECONDS as one batch (consecutive deltas merged into one frame), so a fast model does
not cost a socket write per chunk. Each batch, the same frames for everyone:

1. is folded into `sent` (`chat.frames.SoFar`: what a socket joining here is sent first), in the
   same step as it is taken, so a joiner's replay ends exactly where a batch ends;
2. is handed to this process's sockets following the conversation, directly;
3. is queued for the publisher, which writes it to the chat store (`chat.store`: each frame under
   its number, the newest number, and about once a second the folded answer) and then sends it to
   the conversation's channel-layer group (`chat.<id>`) for the sockets of other processes. A
   process skips the group's copies of its own generations' frames (their sockets got them
   directly). Publications are at most PUBLISH_SECONDS apart (the batches handed out meanwhile go
   out together), except the last, which goes at once.

A socket joining mid-stream is sent the answer so far, then forwards only frames numbered above
it: from `sent` when the answer is written here (exact: taken without awaiting anything), else
from the store (the folded answer up to S, then the frames S+1…H, H the newest number) after it
joined the group. The last batch (with `done`) is published before it is handed to this process's
sockets, and the generation leaves this process's registry only after that, so a join after the
end — here or anywhere — is told `live: false` and sent the finished answer.

Stop works from any process: the conversation's claim (`chat.claims`) names the process writing
its answer; the requester sets `stop:<generation>` and sends a message to that process's stop group
`chatstop.<process id>`, which one task per process listens to (and each generation's heartbeat
reads the flag once a second, should the message be lost while Redis was away).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from chat import configcache, store
from chat.background import LoopTask, raise_if_cancelling, serve_on_this_loop
from chat.claims import PROCESS_ID, Claim, aread_claim
from chat.db import on_db
from chat.errors import ChatError, NotFound
from chat.finish import Done
from chat.frames import (
    Frame,
    SoFar,
    append_frame,
    created_frame,
    delta_frame,
    end_frames,
    error_frame,
    server_failure_frames,
)
from chat.groups import channel_layer, group_name, stop_group
from chat.models import Conversation
from chat.run import TurnRun
from chat.turns import Turn
from endpoints.adapters.types import ReasoningDelta, StreamError, TextDelta, ToolCallDelta

if TYPE_CHECKING:
    from accounts.models import User

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.025  # after the first token, an answer's frames go out at most this often
PUBLISH_SECONDS = 0.05  # and are published for other processes at most this often (until the end)
SNAPSHOT_SECONDS = 1.0  # how often the folded answer is rewritten in the store while streaming
RUNNING_TTL = 30  # a snapshot not refreshed for this long belongs to a process that died
FRAME_TTL = 120
DONE_TTL = 120  # a finished answer stays joinable this long (then it is read from the database)
STOP_TTL = 120
FIRST_OUT_WAIT = 0.5  # publishing starts at the first token, or this long after the start
GROUP_REFRESH_SECONDS = 3600  # channel-layer group memberships expire (channels_redis: a day)


class Registry:
    """This process's live answers and the sockets following conversations here (frames of an
    answer written here reach those sockets directly)."""

    def __init__(self) -> None:
        self.generations: dict[str, Generation] = {}  # by conversation
        self.followers: dict[str, weakref.WeakSet[Any]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()  # (asyncio keeps only weak references)

    def spawn(self, coro: Any, *, name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


_registry = Registry()


def snapshot_key(conversation_id: uuid.UUID | str) -> str:
    return f"live:{conversation_id}"


def frame_key(generation_id: str, seq: int) -> str:
    return f"frame:{generation_id}:{seq}"


def head_key(generation_id: str) -> str:
    return f"head:{generation_id}"


def stop_key(generation_id: str) -> str:
    return f"stop:{generation_id}"


class Generation:
    """Runs one turn and delivers its frames (see module doc)."""

    def __init__(self, turn: Turn, *, request_id: str | None):
        self.turn = turn
        self.id = turn.generation_id
        self.conversation_id = str(turn.conversation_id)
        self.message_id = str(turn.assistant_message_id)
        self.request_id = request_id
        self.run: TurnRun | None = None  # started by launch
        self.seq = 0
        self.pending: list[Frame] = []  # numbered, not yet sent
        self.flush_timer: asyncio.TimerHandle | None = None
        self.sent = SoFar(self.id, self.conversation_id)  # every batch handed out so far
        self.published = SoFar(self.id, self.conversation_id)  # every batch in the store
        self.outbox: list[Frame] = []  # handed out, not yet published
        self.wakeup = asyncio.Event()
        self.closed = False
        self.ending = asyncio.Event()  # the last batch is out: publish it without pausing
        self.snapshot_at = 0.0
        self.snapshot_lock = asyncio.Lock()
        self.delivering = asyncio.Lock()  # batches reach local sockets in the order they were taken
        # Publishing, the heartbeat and whatever a socket asked for (`after_first_out`) start once
        # the first token is out (see first_token_out); until then only the provider request runs.
        self.first_out = False
        self._after_first_out: list[Callable[[], Awaitable[None]]] = []
        self._publisher: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._creating: asyncio.Future[None] | None = None  # the `created` frame on its way

    def stop(self) -> None:
        if self.run is not None:
            self.run.stop()

    # frames -------------------------------------------------------------------------------------
    async def request_sent(self) -> None:
        """The provider request is on the wire: the `created` frame goes out while the provider
        thinks, in a task of its own (a new conversation's claim is a Redis round trip first), so
        that the answer is read as soon as it comes, even from a provider quicker than Redis."""
        self._created()

    def _created(self) -> asyncio.Future[None]:
        if self._creating is None:
            self._creating = asyncio.ensure_future(self._create())
        return self._creating

    async def _create(self) -> None:
        await self.turn.claimed()
        await self.emit(created_frame(self.turn, request_id=self.request_id))

    async def emit(self, *frames: Frame) -> None:
        """Number frames and send them: at once, or (deltas after the first token) with the next
        batch, at most BATCH_SECONDS later."""
        if frames[0]["type"] != "created":
            creating = self._created()
            if not creating.done():  # frames go in order: `created` first, out (not only numbered)
                await asyncio.shield(creating)  # (a stop or cancelled turn leaves it going out)
        for frame in frames:
            frame.setdefault("conversation_id", self.conversation_id)
            frame.setdefault("generation_id", self.id)
            self.seq += 1
            frame["seq"] = self.seq
            append_frame(self.pending, frame)
        if all(frame["type"] == "delta" for frame in frames) and self.first_out:
            if self.flush_timer is None:
                self.flush_timer = asyncio.get_running_loop().call_later(BATCH_SECONDS, self._flush_soon)
            return
        await self.flush()

    def _flush_soon(self) -> None:
        self.flush_timer = None
        _registry.spawn(self.flush())

    async def flush(self) -> None:
        """Send what is pending as one batch (see module doc)."""
        if self.flush_timer is not None:
            self.flush_timer.cancel()
            self.flush_timer = None
        batch, self.pending = self.pending, []
        if not batch:
            return
        for frame in batch:  # (with the taking of the batch: nothing awaited in between)
            self.sent.apply(frame)
        self.outbox.extend(batch)
        self.wakeup.set()
        async with self.delivering:
            if batch[-1]["type"] == "done":
                await self._publish_all()  # a join anywhere after a socket here saw the end sees it too
            for socket in list(_registry.followers.get(self.conversation_id, ())):
                try:
                    await socket.deliver(batch)
                except Exception:
                    log.exception("delivering frames to a local socket failed")

    def replay_here(self) -> tuple[int, list[Frame]]:
        """What a socket joining here is sent first, and the number it covers (exact: nothing is
        sent while this runs). Before `created` is out it is built from the turn and counted as
        seen (it will be frame 1)."""
        if self.sent.created is None:
            return 1, self.sent.frames(created=created_frame(self.turn, request_id=self.request_id))
        return self.sent.seq, self.sent.frames()

    # publishing ---------------------------------------------------------------------------------
    def after_first_out(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work()` (in a task of its own) once the first token is out (at once if it is)."""
        if self.first_out:
            _registry.spawn(work())
        else:
            self._after_first_out.append(work)

    def first_token_out(self) -> None:
        """The first token has been sent (or the answer ended without one, or FIRST_OUT_WAIT
        passed): start publishing, the heartbeat and what waited for this. Once."""
        if self.first_out:
            return
        self.first_out = True
        self._publisher = asyncio.create_task(self.publisher())
        self._heartbeat = asyncio.create_task(self.heartbeat())
        waiting, self._after_first_out = self._after_first_out, []
        for work in waiting:
            _registry.spawn(work())

    async def _publish_all(self) -> None:
        """Publish everything handed out, and stop publishing (the answer has ended)."""
        self.first_token_out()
        self.closed = True
        self.ending.set()
        self.wakeup.set()
        assert self._publisher is not None
        await asyncio.shield(self._publisher)

    async def publisher(self) -> None:
        """Publishes the outbox to the store and the channel layer, in order, at most every
        PUBLISH_SECONDS (the batches handed out meanwhile together, as they are: a short answer is
        one publication, a long one costs Redis ~20 round trips a second however fast the model)."""
        layer = channel_layer()
        group = group_name(self.conversation_id)
        published_at = time.monotonic()
        while self.outbox or not self.closed:
            if not self.outbox:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            pause = published_at + PUBLISH_SECONDS - time.monotonic()
            if pause > 0 and not self.ending.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ending.wait(), pause)
            frames, self.outbox = self.outbox, []
            published_at = time.monotonic()
            try:
                await self._store(frames)
                await layer.group_send(group, {"type": "chat.frames", "frames": frames, "process": PROCESS_ID})
            except Exception:
                # Redis briefly away: the answer is still saved to the database; joiners see a gap.
                log.exception("publishing frames up to %s of generation %s failed", frames[-1]["seq"], self.id)

    async def _store(self, frames: list[Frame]) -> None:
        snapshot_due = time.monotonic() - self.snapshot_at >= SNAPSHOT_SECONDS
        for frame in frames:
            self.published.apply(frame)
            snapshot_due = snapshot_due or frame["type"] in ("created", "done")
        head = frames[-1]["seq"]
        entries: list[tuple[str, Any, float | None]] = [(frame_key(self.id, f["seq"]), f, FRAME_TTL) for f in frames]
        entries.append((head_key(self.id), head, FRAME_TTL))
        if snapshot_due:  # with the snapshot, in one round trip
            await self.write_snapshot(entries)
        else:
            await store.write(entries)

    async def write_snapshot(self, entries: list[tuple[str, Any, float | None]] | None = None) -> None:
        """Write the folded answer as published (with `entries`, other keys in the same round trip)."""
        # One write at a time, each with the state as it is when the write starts: a slow older
        # write can never land after a newer one.
        async with self.snapshot_lock:
            if self.published.created is None:  # (nothing to show before `created` is published)
                if entries:
                    await store.write(entries)
                return
            self.snapshot_at = time.monotonic()
            ttl = DONE_TTL if self.published.done else RUNNING_TTL
            state = self.published.as_json()
            await store.write([*(entries or ()), (snapshot_key(self.conversation_id), state, ttl)])

    async def heartbeat(self) -> None:
        """Keeps the snapshot fresh (and alive) while the provider is silent, and reads the stop
        flag (a stop message sent while this process's stop listener was reconnecting)."""
        while True:
            await asyncio.sleep(SNAPSHOT_SECONDS)
            try:
                if time.monotonic() - self.snapshot_at >= SNAPSHOT_SECONDS:
                    await self.write_snapshot()
                if await store.get(stop_key(self.id)):
                    self.stop()
            except Exception:
                log.warning("refreshing generation %s failed", self.id, exc_info=True)

    # the run ------------------------------------------------------------------------------------
    async def answer(self) -> None:
        # Publishing to Redis, refreshing the snapshot and reading the stop flag all wait for the
        # first token (or the end, or FIRST_OUT_WAIT when the model is slow to answer): they are
        # Redis round trips and tasks on this event loop, and this process's sockets get the
        # frames directly anyway. Until then the loop does only what the provider request needs.
        assert self.run is not None
        slow = asyncio.get_running_loop().call_later(FIRST_OUT_WAIT, self.first_token_out)
        try:
            async for event in self.run:
                if isinstance(event, (TextDelta, ReasoningDelta, ToolCallDelta)):
                    await self.emit(delta_frame(self.message_id, event))
                    if not self.first_out:
                        await _let_writes_out()  # the first token leaves before anything else is done
                        self.first_token_out()
                elif isinstance(event, StreamError):
                    await self.emit(error_frame(self.message_id, event))
                elif isinstance(event, Done):
                    await self.emit(*end_frames(event))  # (one batch)
                # (UsageReport, Finish: reported once, final, in the usage and done frames)
        except Exception:
            log.exception("generation %s failed", self.id)
            await self.emit(*server_failure_frames(self.message_id))
        finally:
            slow.cancel()
            await self.flush()
            await self._publish_all()
            assert self._heartbeat is not None
            self._heartbeat.cancel()
            with contextlib.suppress(BaseException):
                await self._heartbeat
            if _registry.generations.get(self.conversation_id) is self:
                del _registry.generations[self.conversation_id]


async def _let_writes_out() -> None:
    """Let the event loop send what this task just wrote to sockets before it goes on.

    Daphne's sockets are Twisted transports: a write is buffered and sent when the loop next polls
    the socket. The first delta of an answer usually arrives together with more of it, and
    reading on would keep the loop busy (and the first token in the buffer) until all of that is
    handled. Resuming two loop iterations later lets the poll in between flush the write: the
    first resumption is queued before that poll's write callbacks, the second after them.
    """
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def launch(generation: Generation) -> Generation:
    """Start answering (`Generation(turn, …)`) in a task of its own; returns at once."""
    serve_on_this_loop()
    stop_listener.ensure()
    configcache.listener.ensure()
    # The provider request's task first (TurnRun starts it), then the answer's: both start in the
    # loop's next turn, the request ahead (see ProviderRequest).
    generation.run = TurnRun(generation.turn, on_sent=generation.request_sent)
    _registry.generations[generation.conversation_id] = generation  # (joins from now on replay it)
    _registry.spawn(generation.answer(), name=f"generation-{generation.id}")
    return generation


async def wait_for_generations(timeout: float = 30.0) -> None:
    """Wait for this process's running generations (tests, graceful shutdown)."""
    pending = [t for t in _registry.tasks if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)


# --- the joining side ------------------------------------------------------------------------------

async def replay(conversation_id: uuid.UUID | str) -> tuple[str | None, int, list[Frame]]:
    """What a socket joining a conversation written by another process (or by none) is sent first:
    (generation id, the number it covers, frames). The caller has already joined the
    conversation's group; it forwards later frames of this generation only when numbered above."""
    state = await store.get(snapshot_key(conversation_id))
    if not state:
        return None, 0, []
    so_far = SoFar.from_json(state)
    head = await store.get(head_key(so_far.generation_id)) or so_far.seq
    frames = so_far.frames()
    if head > so_far.seq:
        keys = [frame_key(so_far.generation_id, seq) for seq in range(so_far.seq + 1, head + 1)]
        found = await store.get_many(keys)
        frames.extend(found[key] for key in keys if key in found)
    return so_far.generation_id, head, frames


def follow(conversation_id: str, socket: Any) -> None:
    """Register a socket of this process for the frames of answers written here."""
    _registry.followers.setdefault(conversation_id, weakref.WeakSet()).add(socket)


def unfollow(conversation_id: str, socket: Any) -> None:
    followers = _registry.followers.get(conversation_id)
    if followers is not None:
        followers.discard(socket)
        if not followers:
            _registry.followers.pop(conversation_id, None)


def local_generation(conversation_id: str) -> Generation | None:
    return _registry.generations.get(conversation_id)


def written_here(message: dict[str, Any]) -> bool:
    """Whether a channel-layer batch comes from this process (its sockets had it directly)."""
    return message.get("process") == PROCESS_ID


# --- stopping --------------------------------------------------------------------------------------

async def request_stop(conversation_id: uuid.UUID | str, claim: Claim) -> None:
    """Ask the process that writes the claimed answer to stop it (partial answer kept and billed)."""
    local = _registry.generations.get(str(conversation_id))
    if local is not None and local.id == claim.generation_id:
        local.stop()
        return
    await store.set(stop_key(claim.generation_id), True, STOP_TTL)
    await channel_layer().group_send(
        stop_group(claim.process_id), {"type": "generation.stop", "generation_id": claim.generation_id}
    )


async def _listen_for_stops() -> None:
    layer = channel_layer()
    group = stop_group(PROCESS_ID)
    while True:
        refresher: asyncio.Task[None] | None = None
        try:
            channel = await layer.new_channel()
            await layer.group_add(group, channel)
            refresher = asyncio.create_task(_keep_in_group(layer, group, channel))
            while True:
                message = await layer.receive(channel)
                wanted = message.get("generation_id")
                for generation in list(_registry.generations.values()):
                    if generation.id == wanted:
                        generation.stop()
        except asyncio.CancelledError:
            raise
        except Exception:
            raise_if_cancelling()
            log.warning("the stop listener lost the channel layer; reconnecting", exc_info=True)
            await asyncio.sleep(1.0)
        finally:
            if refresher is not None:
                refresher.cancel()


async def _keep_in_group(layer: Any, group: str, channel: str) -> None:
    while True:
        await asyncio.sleep(GROUP_REFRESH_SECONDS)
        with contextlib.suppress(Exception):
            await layer.group_add(group, channel)


# One task per process receives stop requests for the answers it writes (see module doc).
stop_listener = LoopTask("chat-stops", _listen_for_stops)


def _owns(user_id: int, conversation_id: uuid.UUID) -> bool:
    return Conversation.objects.filter(user_id=user_id, pk=conversation_id).exists()


async def stop_answer(*, user: User, conversation_id: uuid.UUID) -> None:
    """Stop the answer being written in the user's conversation, in whichever process writes it
    (the answer so far is kept and billed). NotFound for a conversation that is not the user's;
    ChatError `not_running` when nothing is being written."""
    generation = local_generation(str(conversation_id))
    if generation is not None and generation.turn.user.pk == user.pk:  # written here
        generation.stop()
        return
    claim = await aread_claim(conversation_id)
    ours = claim is not None and claim.user_id == str(user.pk)
    if not ours and not await on_db(_owns)(user.pk, conversation_id):
        raise NotFound("Conversation not found.")
    if claim is None or not ours:
        raise ChatError("Nothing is being written in this conversation.", code="not_running")
    await request_stop(conversation_id, claim)
