"""The chat turn: one async service every entry point (websocket, OpenAI-compatible gateway) uses.

A turn is two steps:

1. `prepare_turn(user=…, action=…)` checks what the user may do (role, model specs, balance), saves
   the user message and an empty assistant message, and builds the request for the provider from
   the branch the answer continues, trimmed to the model's context window. Refusals raise a
   `ChatError` whose text is meant for the user; nothing is written and nothing is sent upstream.
2. `stream_turn(turn, stop=…)` streams the provider's answer (the adapter's normalised events),
   saves the answer as it grows (at most every `FLUSH_SECONDS`, so a crash loses at most that much),
   and when the stream ends — finished, failed, stopped or abandoned — stores the final text, finish
   reason, error and token usage and hands the usage to billing. Its last event is `Done`.

Billing is called from `_check_balance` (admission) and `_finish_turn` (through
`chat.recovery.finish_answer`, which recovery uses too) only.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, AsyncIterator, Awaitable, Callable

from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing import services as billing
from billing.pricing import Rates
from billing.tokens import count_tokens, estimated_usage
from chat import configcache, store
from chat.claims import (
    LOCK_REFRESH_SECONDS,
    LOCK_TTL,
    EarlyClaim,
    aread_claim,
    arelease_conversation,
    claim_conversation,
    lock_key,
    release_conversation,
)
from chat.db import on_db
from chat.errors import BUSY_MESSAGE, Busy, Forbidden, InvalidRequest, NoBalance, NotFound
from chat.models import Conversation, Message, Role as MessageRole
from chat.policy import (
    MAX_TEXT_CHARS,
    Draft,
    Target,
    _model_row,
    _portal,
    build_context,
    check_fetched_model,
    context_window,
    reserved_for_answer,
    resolve_target,
)
from chat.recovery import Bill, finish_answer, in_flight_record
from endpoints import services as endpoint_services
from endpoints.adapters.types import (
    Call,
    ChatRequest,
    Event,
    Finish,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from endpoints.models import Endpoint
from endpoints.shaping import ConfigError, build_call

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0

# --- what a turn asks for ----------------------------------------------------------------------

class Operation(StrEnum):
    SEND = "send"  # a new user message (a new conversation when no conversation is given)
    EDIT = "edit"  # a new sibling of an existing user message, then its answer
    REGENERATE = "regenerate"  # a new sibling of an existing answer
    CONTINUE = "continue"  # more text appended to a cut-off answer


@dataclass
class TurnAction:
    op: Operation
    text: str = ""
    conversation_id: uuid.UUID | None = None
    # send: the message being answered (default: the newest message of the conversation)
    parent_id: uuid.UUID | None = None
    # edit: the user message edited; regenerate/continue: the assistant message
    message_id: uuid.UUID | None = None
    # switch (any operation): endpoint name or id, model name, model spec name, parameters
    endpoint: str | int | None = None
    model: str | None = None
    spec: str | None = None
    params: dict[str, Any] | None = None
    system_prompt: str | None = None


Rows = tuple[Conversation, "Message | None", Message]


@dataclass
class Turn:
    """A prepared turn: request built, rows planned. `stream_turn` runs it.

    The rows (conversation, user message, answer) are model instances built on first use
    (`build_rows`): building three of them is about half the CPU of planning a turn, and nothing
    on the way to the first token needs them — it uses the ids, which are chosen up front."""

    user: User
    op: Operation
    conversation_id: uuid.UUID
    assistant_message_id: uuid.UUID
    build_rows: Callable[[], Rows]
    # what the `created` frame tells about the rows: title, user_message {id, parent_id, text} or
    # None, the answer's parent_id and sender (plain values, no rows needed)
    shown: dict[str, Any]
    target: Target
    request: ChatRequest
    prompt_tokens: int
    new_conversation: bool
    generation_id: str
    # continue: what the answer held before (text, reasoning, tool calls, token counts)
    prefix_text: str = ""
    prefix_parts: list[dict[str, Any]] = field(default_factory=list)
    # saving the rows (prepare_turn starts it; stream_turn waits for it before writing the answer)
    saved: "asyncio.Future[None] | None" = None
    # the provider request, built by prepare_turn on the database thread (None: stream_chat builds it)
    call: Call | None = None
    # a new conversation's claim, written before its id is shown and its rows saved (see EarlyClaim)
    pending_claim: EarlyClaim | None = None
    # the call id of the turn's balance hold (None: the role has no balance); released by its bill
    hold: uuid.UUID | None = None
    # A turn with no conversation (the gateway: the caller sends the whole message list): no
    # claim, no rows, no title, no recovery record; only the bill is written (context `gateway`).
    stateless: bool = False
    _rows: Rows | None = None

    def rows(self) -> Rows:
        if self._rows is None:
            self._rows = self.build_rows()
        return self._rows

    @property
    def conversation(self) -> Conversation:
        return self.rows()[0]

    @property
    def user_message(self) -> "Message | None":
        """None when regenerating/continuing (the answered message is the answer's parent)."""
        return self.rows()[1]

    @property
    def assistant_message(self) -> Message:
        return self.rows()[2]

    def start_saving(self) -> "asyncio.Future[None]":
        """Save the rows (once), on a thread of its own with its own database connection.

        stream_turn starts this as soon as the first event of the answer has been handed on (or
        when the stream ends without any): the insert costs milliseconds of CPU, and under the GIL
        it would otherwise delay the first token. Nothing is written to the answer before it is done.
        A new conversation's rows are saved once its claim is written (`EarlyClaim.confirm`).
        """
        if self.saved is None:
            if self.stateless:
                self.saved = asyncio.get_running_loop().create_future()
                self.saved.set_result(None)
            else:
                self.saved = asyncio.ensure_future(self._save())
        return self.saved

    async def _save(self) -> None:
        self.rows()  # (built here, on the loop, not by the saving thread)
        if self.pending_claim is not None:
            await self.pending_claim.confirm()
        await on_db(save_turn)(self)

    async def claimed(self) -> None:
        """Make sure a new conversation's claim is written (before its id is shown to anyone: a
        second send to it must find it claimed). A failure is logged here and fails the save."""
        if self.pending_claim is not None:
            try:
                await self.pending_claim.confirm()
            except Exception:
                log.warning("claiming conversation %s failed", self.conversation_id, exc_info=True)

    @property
    def endpoint(self) -> Endpoint:
        return self.target.endpoint

    @property
    def model(self) -> str:
        return self.target.model


# --- events stream_turn adds to the adapter's ---------------------------------------------------

@dataclass(frozen=True)
class Done:
    """The last event of a turn: what was stored."""

    message_id: uuid.UUID
    finish_reason: str
    unfinished: bool
    error: str
    usage: Usage
    estimated: bool
    text: str


# --- preparing a turn (sync: database) ---------------------------------------------------------

def _owned_message(user: User, message_id: uuid.UUID | None, what: str) -> Message:
    message = (
        Message.objects.select_related("conversation").filter(user=user, pk=message_id).first()
        if message_id else None
    )
    if message is None:
        raise NotFound(f"{what} was not found.")
    return message


def _rates(endpoint: Endpoint, model: str, snap: configcache.Snapshot) -> Rates:
    """What billing.rates_for returns, from the configuration cache (no queries)."""
    return Rates.resolve(_model_row(endpoint, model, snap), _portal(snap))


def _check_balance(
    *, user: User, target: Target, prompt_tokens: int, snap: configcache.Snapshot | None = None
) -> tuple[uuid.UUID | None, int | None]:
    """The turn's admission (billing.check_balance). Returns the call id its hold is under (None:
    the role has no balance) and, when the request sets no max_tokens and a hold was placed, the
    answer limit to send: the answer budget the context already keeps free, which the hold covers
    (so a running answer never spends more than it holds; see check_balance's rule)."""
    snap = snap or configcache.snapshot()
    max_tokens = target.params.get("max_tokens")
    asked = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None
    budget = asked or reserved_for_answer(target, context_window(target, snap))
    try:
        hold = billing.check_balance(
            user=user,
            endpoint=target.endpoint,
            model=target.model,
            prompt_tokens=prompt_tokens,
            max_completion_tokens=budget,
            rates=_rates(target.endpoint, target.model, snap),
        )
    except billing.InsufficientBalance as exc:
        raise NoBalance(str(exc)) from exc
    return hold, (budget if hold is not None and asked is None else None)


def _release_hold(user: User, hold: uuid.UUID | None) -> None:
    """A turn admitted but never started gives its hold back."""
    if hold is not None:
        try:
            billing.holds.release(user=user, call=hold)
        except Exception:  # the hold expires with nobody renewing it
            log.exception("releasing the hold %s of an unstarted turn failed", hold)


class _ConversationMissing(Exception):
    """A send to a conversation that is not in the database (yet: its first answer may still be
    streaming, its rows follow the first token) — `prepare_turn` tells Busy from NotFound."""


@dataclass(frozen=True)
class _Anchors:
    """Where a turn hangs in the conversation's tree."""

    conversation: Conversation | None = None
    parent: Message | None = None  # what the new user message hangs under
    answered: Message | None = None  # regenerate: the user message whose answer is redone
    continued: Message | None = None

    def branch(self, text: str) -> list[Any]:
        """The branch the answer continues; a new user message is appended in memory."""
        if self.continued is not None:
            return self.continued.branch()
        if self.answered is not None:
            return self.answered.branch()
        branch = self.parent.branch() if self.parent is not None else []
        return [*branch, Draft(role=MessageRole.USER, text=text)]


def _checked_text(action: TurnAction) -> str:
    text = (action.text or "").strip()
    if action.op in (Operation.SEND, Operation.EDIT) and not text:
        raise InvalidRequest("The message is empty.")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidRequest(f"The message is too long ({len(text):,} characters; at most {MAX_TEXT_CHARS:,}).")
    return text


def _anchors(user: User, action: TurnAction) -> _Anchors:
    if action.op == Operation.SEND:
        return _send_anchors(user, action)
    if action.op == Operation.EDIT:
        edited = _owned_message(user, action.message_id, "The message to edit")
        if edited.role != MessageRole.USER:
            raise InvalidRequest("Only your own messages can be edited; regenerate an answer instead.")
        parent = Message.objects.filter(user=user, pk=edited.parent_id).first() if edited.parent_id else None
        return _Anchors(conversation=edited.conversation, parent=parent)
    return _answer_anchors(user, action)


def _send_anchors(user: User, action: TurnAction) -> _Anchors:
    """A send: into a new conversation, or under a message of one (default: its newest)."""
    if action.conversation_id is None:
        if action.parent_id is not None:
            raise InvalidRequest("parent_id needs the conversation_id it belongs to.")
        return _Anchors()
    conversation = Conversation.objects.owned_by(user).select_related("endpoint", "model_spec").filter(
        pk=action.conversation_id
    ).first()
    if conversation is None:
        raise _ConversationMissing()
    messages = Message.objects.filter(user=user, conversation=conversation)
    if action.parent_id is None:
        return _Anchors(conversation=conversation, parent=messages.order_by("-created_at").first())
    parent = messages.filter(pk=action.parent_id).first()
    if parent is None:
        raise NotFound("The message to answer was not found in this conversation.")
    return _Anchors(conversation=conversation, parent=parent)


def _answer_anchors(user: User, action: TurnAction) -> _Anchors:
    """Regenerate (an answer, or the user message it answers) or continue (an answer)."""
    regenerate = action.op == Operation.REGENERATE
    message = _owned_message(user, action.message_id, "The answer")
    conversation = message.conversation
    if message.role == MessageRole.USER and regenerate:
        return _Anchors(conversation=conversation, answered=message)  # "the answer to this message"
    if message.role != MessageRole.ASSISTANT:
        raise InvalidRequest(f"Only an answer can be {'regenerated' if regenerate else 'continued'}.")
    if not regenerate:
        return _Anchors(conversation=conversation, continued=message)
    answered = Message.objects.filter(user=user, pk=message.parent_id).first() if message.parent_id else None
    if answered is None:
        raise InvalidRequest("This answer has no question to answer again.")
    return _Anchors(conversation=conversation, answered=answered)


def plan_turn(
    *, user: User, action: TurnAction, early_claim: "EarlyClaim | None" = None,
    snap: configcache.Snapshot | None = None, on_loop: bool = False,
) -> tuple[dict[str, Any], Target, bool]:
    """Everything a turn needs that only reads: the conversation, anchors, target, context — and,
    unless a fetched model list must be checked first, the balance check (which holds credits).

    Returns (plan, target, needs_fetch_check). With `early_claim` (a `send`, see `EarlyClaim`) the
    conversation is being claimed meanwhile; from a database thread the plan waits for the claim
    before the balance check, on the event loop (`on_loop`) the caller awaits it afterwards (a plan
    that runs on the loop needs no database, so it holds nothing). Without `early_claim` the
    conversation is claimed here, last.
    """
    # As the database has it now (cached until any user or role changes): a role changed or an
    # account disabled since the socket opened counts.
    snap = snap or configcache.snapshot()
    user_pk = user.pk
    user = snap.get(("user", user_pk), lambda: User.objects.select_related("role").filter(pk=user_pk, is_active=True).first())
    if user is None:
        raise Forbidden("Your account is disabled.")
    op = action.op
    text = _checked_text(action)
    anchors = _anchors(user, action)
    conversation, parent, answered, continued = anchors.conversation, anchors.parent, anchors.answered, anchors.continued

    target, needs_fetch_check = resolve_target(
        user=user,
        endpoint=action.endpoint,
        model=action.model,
        spec=action.spec,
        params=action.params,
        system_prompt=action.system_prompt,
        conversation=conversation,
        snap=snap,
    )

    branch = anchors.branch(text)
    messages, prompt_tokens = build_context(branch, target=target, snap=snap)
    if early_claim is not None and not on_loop and not early_claim.held():
        raise Busy(BUSY_MESSAGE)
    # Admission needs the database: on the loop it is left to prepare_turn's one trip to a database
    # thread (which builds the turn too), as it is after a fetched model list's check.
    admit_later = needs_fetch_check or (on_loop and billing.role_of(user).balance_enabled)
    if not admit_later:
        hold, answer_limit = _check_balance(user=user, target=target, prompt_tokens=prompt_tokens, snap=snap)
    else:
        hold, answer_limit = None, None
    try:
        if continued is not None and continued.parent_id:
            answered = Message.objects.filter(user=user, pk=continued.parent_id).first()
        if early_claim is not None:
            conversation_id, generation_id = early_claim.conversation_id, early_claim.generation_id
        else:
            conversation_id = conversation.pk if conversation is not None else uuid.uuid4()
            generation_id = uuid.uuid4().hex
            claim_conversation(conversation_id, generation_id, user.pk)
    except BaseException:
        _release_hold(user, hold)
        raise
    plan = {
        "conversation_id": conversation_id,
        "generation_id": generation_id,
        "user": user,
        "op": op,
        "text": text,
        "conversation": conversation,
        "parent": parent,
        "answered": answered,
        "continued": continued,
        "messages": messages,
        "prompt_tokens": prompt_tokens,
        "hold": hold,
        "answer_limit": answer_limit,
        "admit_later": admit_later,
    }
    return plan, target, needs_fetch_check


def build_turn(*, plan: dict[str, Any], target: Target) -> Turn:
    """The turn's rows (not saved yet: `save_turn` does that while the provider is already being
    asked) and the provider request. No database access."""
    user: User = plan["user"]
    op: Operation = plan["op"]
    existing: Conversation | None = plan["conversation"]
    endpoint = target.endpoint
    conversation_id: uuid.UUID = plan["conversation_id"]
    continued: Message | None = plan["continued"]
    asks = op in (Operation.SEND, Operation.EDIT)
    # ids chosen now: the request and the frames use them before the rows exist
    user_message_id = uuid.uuid4() if asks else None
    answer_id = continued.pk if continued is not None else uuid.uuid4()

    def build_rows() -> Rows:
        if existing is None:
            conversation = Conversation(
                id=conversation_id,
                user=user,
                endpoint=endpoint,
                endpoint_name=endpoint.name,
                model=target.model,
                model_spec=target.spec,
                params={} if target.spec else target.params,
                system_prompt="" if target.spec else target.system_prompt,
            )
        else:
            conversation = existing
            conversation.endpoint = endpoint
            conversation.endpoint_name = endpoint.name
            conversation.model = target.model
            conversation.model_spec = target.spec
            if target.spec is None:
                conversation.params = target.params
                conversation.system_prompt = target.system_prompt
        user_message: Message | None = None
        if asks:
            user_message = Message(
                id=user_message_id,
                conversation=conversation,
                user=user,
                parent=plan["parent"],
                role=MessageRole.USER,
                endpoint=endpoint,
                model=target.model,
                sender=user.name or user.get_username(),
            )
            user_message.set_text(plan["text"])
            assistant = _new_answer(answer_id, user, conversation, user_message, target)
        elif op == Operation.REGENERATE:
            assistant = _new_answer(answer_id, user, conversation, plan["answered"], target)
        else:
            assert continued is not None
            assistant = continued
            assistant.unfinished = True
            assistant.error = ""
            assistant.finish_reason = ""
        return conversation, user_message, assistant

    prefix_text, prefix_parts = "", []
    if continued is not None:
        prefix_text = continued.text
        prefix_parts = [p for p in continued.content if p.get("type") != "text"]
    if asks:
        parent: Message | None = plan["parent"]
        answered_id, answered_parent_id = user_message_id, parent.pk if parent is not None else None
        answer_parent_id = user_message_id
    else:
        answered = plan["answered"]
        answered_id = answered.pk if answered is not None else None
        answered_parent_id = answered.parent_id if answered is not None else None
        answer_parent_id = continued.parent_id if continued is not None else answered_id
    shown = {
        "title": existing.title if existing is not None else Conversation.DEFAULT_TITLE,
        "user_message": (
            {"id": str(user_message_id), "parent_id": _str_or_none(answered_parent_id), "text": plan["text"]}
            if asks else None
        ),
        "parent_id": _str_or_none(answer_parent_id),
        "sender": continued.sender if continued is not None else target.sender,
    }
    request = ChatRequest(
        model=target.model,
        messages=plan["messages"],
        system=target.system_prompt,
        params=dict(target.params, max_tokens=plan["answer_limit"]) if plan.get("answer_limit") else dict(target.params),
        conversation_id=str(conversation_id),
        parent_message_id=str(answered_parent_id) if answered_parent_id else "",
        message_id=str(answered_id) if answered_id is not None else "",
    )
    return Turn(
        user=user,
        op=op,
        conversation_id=conversation_id,
        assistant_message_id=answer_id,
        build_rows=build_rows,
        shown=shown,
        target=target,
        request=request,
        prompt_tokens=plan["prompt_tokens"],
        new_conversation=existing is None,
        generation_id=plan["generation_id"],
        prefix_text=prefix_text,
        prefix_parts=prefix_parts,
        hold=plan.get("hold"),
    )


def save_turn(turn: Turn) -> None:
    """Save the conversation (new or switched), the user message and the empty, unfinished answer."""
    conversation = turn.conversation
    turn.assistant_message.in_flight = in_flight_record(turn)  # cleared by _finish_turn; see chat/recovery.py
    with transaction.atomic():
        if turn.new_conversation:
            conversation.save(force_insert=True)
        else:
            conversation.save(
                update_fields=["endpoint", "endpoint_name", "model", "model_spec", "params", "system_prompt", "updated_at"]
            )
        new_messages = [turn.user_message] if turn.user_message is not None else []
        if turn.op == Operation.CONTINUE:
            turn.assistant_message.save(update_fields=["unfinished", "error", "finish_reason", "in_flight", "updated_at"])
        else:
            new_messages.append(turn.assistant_message)
        Message.objects.bulk_create(new_messages)  # the question and its answer: one INSERT


def _str_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None


def _new_answer(
    answer_id: uuid.UUID, user: User, conversation: Conversation, parent: Message, target: Target
) -> Message:
    return Message(
        id=answer_id,
        conversation=conversation,
        user=user,
        parent=parent,
        role=MessageRole.ASSISTANT,
        endpoint=target.endpoint,
        model=target.model,
        sender=target.sender,
        unfinished=True,  # until the provider says it finished: a crash leaves it marked
    )


async def prepare_turn(*, user: User, action: TurnAction) -> Turn:
    """Check and build a turn (see module doc); raises ChatError for the user to read. The rows are
    saved in the background (`turn.saved`), while the provider is already being asked: saving is
    not on the way to the first token.

    A send that starts a new conversation is planned on the event loop itself when everything it
    needs is in memory (the configuration cache is warm and the role has no balance to check):
    no trip to a database thread before the provider is asked. Anything that would touch the
    database there raises SynchronousOnlyOperation before it does, and the plan runs again on a
    database thread, as every other turn does.
    """
    early_claim = EarlyClaim(action.conversation_id, user.pk) if action.op == Operation.SEND else None
    try:
        if early_claim is not None and not early_claim.fresh:
            await asyncio.sleep(0)  # the claim's command goes out now, before the plan keeps the loop busy
        snap = await configcache.asnapshot()  # (the claim's round trip runs meanwhile)
        result = None
        if early_claim is not None and action.conversation_id is None:
            try:
                result = _plan_and_build(user=user, action=action, early_claim=early_claim, snap=snap, on_loop=True)
            except SynchronousOnlyOperation:
                result = None
            if result is not None and not await early_claim.aheld():
                raise Busy(BUSY_MESSAGE)
        if result is None:
            result = await on_db(_plan_and_build)(user=user, action=action, early_claim=early_claim, snap=snap)
    except _ConversationMissing:
        if early_claim is not None and await early_claim.aheld():
            await early_claim.arelease_if_held()
        else:
            claim = await aread_claim(action.conversation_id)
            if claim is not None and claim.user_id == str(user.pk):
                raise Busy(BUSY_MESSAGE) from None  # its first answer is being written (rows follow the first token)
        raise NotFound("Conversation not found.") from None
    except BaseException:
        if early_claim is not None:
            await early_claim.arelease_if_held()
        raise
    plan, target, needs_fetch_check, turn = result
    if turn is None:
        try:
            if needs_fetch_check:
                await check_fetched_model(user=user, target=target)
            turn = await on_db(_admit_and_build)(plan, target, snap)
        except BaseException:
            with contextlib.suppress(Exception):
                await on_db(_release_hold)(plan["user"], plan.get("hold"))
            if early_claim is not None:
                await early_claim.arelease_if_held()
            else:
                await arelease_conversation(plan["conversation_id"], plan["generation_id"], user.pk)
            raise
    if early_claim is not None and early_claim.fresh:
        turn.pending_claim = early_claim
    return turn


def _plan_and_build(
    *, user: User, action: TurnAction, early_claim: EarlyClaim | None = None,
    snap: configcache.Snapshot | None = None, on_loop: bool = False,
) -> tuple[dict[str, Any], Target, bool, "Turn | None"]:
    """plan_turn, and when no fetched model list must be checked first, the turn and its provider
    call too: one trip to the database thread on the way to the first token, not three (or none,
    `on_loop`: see prepare_turn)."""
    plan, target, needs_fetch_check = plan_turn(
        user=user, action=action, early_claim=early_claim, snap=snap, on_loop=on_loop
    )
    if plan["admit_later"]:
        return plan, target, needs_fetch_check, None
    try:
        turn = build_turn(plan=plan, target=target)
        turn.call = _prebuilt_call(turn)
    except BaseException:
        if not on_loop:
            _release_hold(plan["user"], plan["hold"])
        # Only the claim plan_turn took itself: an early claim is released by prepare_turn (and on
        # the loop the caller plans again on a thread, with the same claim).
        if early_claim is None and not on_loop:
            release_conversation(plan["conversation_id"], plan["generation_id"], user.pk)
        raise
    return plan, target, False, turn


def _admit_and_build(plan: dict[str, Any], target: Target, snap: configcache.Snapshot | None = None) -> Turn:
    """The admission prepare_turn left for a database thread, then the turn and its provider call
    (one trip; an admitted turn that cannot be built gives its hold back). `snap`: the
    configuration the turn was planned with (its rates: no second look at the cache's version)."""
    plan["hold"], plan["answer_limit"] = _check_balance(
        user=plan["user"], target=target, prompt_tokens=plan["prompt_tokens"], snap=snap
    )
    try:
        turn = build_turn(plan=plan, target=target)
        turn.call = _prebuilt_call(turn)
    except BaseException:
        _release_hold(plan["user"], plan["hold"])
        raise
    return turn


def _prebuilt_call(turn: Turn) -> Call | None:
    """The provider request, built ahead; None when it cannot be built (stream_chat then tries
    again and reports the configuration error as the answer's error, as it always does)."""
    try:
        return build_call(endpoint=turn.endpoint, request=turn.request, user=turn.user)
    except (ConfigError, LookupError):
        return None


# --- streaming a turn ----------------------------------------------------------------------------

class _Answer:
    """The answer as it grows: text, reasoning and tool calls (merged from indexed fragments)."""

    def __init__(self, prefix_text: str, prefix_parts: list[dict[str, Any]]):
        self.prefix_text = prefix_text
        self.text: list[str] = []
        self.reasoning: list[str] = [p.get("text", "") for p in prefix_parts if p.get("type") == "reasoning"]
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.other_parts = [p for p in prefix_parts if p.get("type") not in ("reasoning", "tool_call")]
        for position, part in enumerate(p for p in prefix_parts if p.get("type") == "tool_call"):
            self.tool_calls[position] = dict(part)
        self.changed = False

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = self.tool_calls.setdefault(event.index, {"type": "tool_call", "id": "", "name": "", "arguments": ""})
            if event.id:
                call["id"] = event.id
            if event.name and not call["name"]:
                call["name"] = event.name
            call["arguments"] += event.arguments
        else:
            return
        self.changed = True

    @property
    def new_text(self) -> str:
        return "".join(self.text)

    @property
    def full_text(self) -> str:
        return self.prefix_text + self.new_text

    @property
    def has_output(self) -> bool:
        return bool(self.text or (self.reasoning and any(self.reasoning)) or self.tool_calls)

    def parts(self) -> list[dict[str, Any]]:
        parts = list(self.other_parts)
        reasoning = "".join(self.reasoning)
        if reasoning:
            parts.append({"type": "reasoning", "text": reasoning})
        parts.extend(self.tool_calls[i] for i in sorted(self.tool_calls))
        parts.append({"type": "text", "text": self.full_text})
        return parts

    def generated_for_estimate(self) -> str:
        calls = "".join(c.get("name", "") + c.get("arguments", "") for c in self.tool_calls.values())
        return self.new_text + "".join(self.reasoning) + calls


def _save_progress(message_id: uuid.UUID, text: str, parts: list[dict[str, Any]]) -> None:
    Message.objects.filter(pk=message_id).update(text=text, content=parts, updated_at=timezone.now())


def _estimate_usage(turn: Turn, answer: _Answer) -> Usage:
    return estimated_usage(
        prompt_tokens=turn.prompt_tokens, received_text=answer.generated_for_estimate(), model=turn.model
    )


def _usage_to_bill(
    turn: Turn, answer: _Answer, reported: Usage | None, *, interrupted: bool, stopped: bool, request_sent: bool
) -> tuple[Usage, bool | frozenset[str]]:
    """What to bill, and which of it is estimated (True: all; else the token types; SPEC §4): every count the provider
    reported, as reported; only what it did not report is estimated. An interrupted answer (cut,
    failed, stopped) bills at least the tokenizer's count of the text delivered: the provider's
    last report may predate most of it (Anthropic's message_start says output_tokens 1). A refused
    request (401, 404, 429, connection refused) with no output and no usage costs nothing."""
    if reported is None:
        if answer.has_output or (stopped and request_sent):
            return _estimate_usage(turn, answer), True
        return Usage(), False
    if answer.has_output and (interrupted or reported.output_tokens == 0):
        delivered = count_tokens(answer.generated_for_estimate(), turn.model)
        if delivered > reported.output_tokens:
            return dataclasses.replace(reported, output_tokens=delivered), frozenset({"completion"})
    return reported, False


def _finish_turn(
    turn: Turn,
    answer: _Answer,
    *,
    reported: Usage | None,
    finish_reason: str,
    error: StreamError | None,
    stopped: bool,
    request_sent: bool,
    saved: bool = True,
    snap: configcache.Snapshot | None = None,
) -> Done:
    """Store the final answer and bill it (chat.recovery.finish_answer, as recovery does). `snap`:
    the configuration as the event loop sees it now (there its version costs no round trip; see
    chat.configcache)."""
    clean = not stopped and error is None and finish_reason not in ("", "length")
    unfinished = not clean
    interrupted = stopped or error is not None or finish_reason == ""
    if stopped:
        finish_reason = "stopped"
    elif error is not None:
        finish_reason = "error"
    error_text = error.message if error is not None else ""
    usage, estimated = _usage_to_bill(
        turn, answer, reported, interrupted=interrupted, stopped=stopped, request_sent=request_sent
    )
    if turn.stateless:
        return _finish_stateless(
            turn, answer, usage=usage, estimated=estimated, finish_reason=finish_reason, error_text=error_text,
            unfinished=unfinished, snap=snap,
        )
    message = turn.assistant_message
    fields = dict(
        text=answer.full_text,
        content=answer.parts(),
        finish_reason=finish_reason[:40],
        error=error_text,
        unfinished=unfinished,
        prompt_tokens=_add(message.prompt_tokens, usage.prompt_total, turn.op),
        completion_tokens=_add(message.completion_tokens, usage.output_tokens, turn.op),
        cache_read_tokens=_add(message.cache_read_tokens, usage.cache_read_tokens, turn.op),
        cache_write_tokens=_add(message.cache_write_tokens, usage.cache_write_tokens, turn.op),
        reasoning_tokens=_add(message.reasoning_tokens, usage.reasoning_tokens, turn.op),
        updated_at=timezone.now(),
    )
    context = "message" if clean or finish_reason == "length" else "abort"
    try:
        try:
            rates = _rates(turn.endpoint, turn.model, snap or configcache.snapshot())
        except Exception:  # the configuration store is away: billing looks the rates up itself
            rates = None
        bill = Bill(
            user=turn.user, endpoint=turn.endpoint, model=turn.model, usage=usage, context=context,
            estimated=estimated, hold=turn.hold, rates=rates,
        )
        finish_answer(
            message_id=message.pk if saved else None,
            conversation_id=turn.conversation_id,
            fields=fields,
            bill=bill,
            record=message.in_flight,
        )
    finally:
        release_conversation(turn.conversation_id, turn.generation_id, turn.user.pk)
    return Done(
        message_id=message.pk,
        finish_reason=finish_reason,
        unfinished=unfinished,
        error=error_text,
        usage=usage,
        estimated=bool(estimated),
        text=answer.full_text,
    )


def _finish_stateless(
    turn: Turn, answer: _Answer, *, usage: Usage, estimated: bool | frozenset[str], finish_reason: str,
    error_text: str, unfinished: bool, snap: configcache.Snapshot | None,
) -> Done:
    """The end of a turn with no conversation: the bill alone (context `gateway`), through the
    same posting path as an answer's (finish_answer without a message)."""
    try:
        rates: Rates | None = _rates(turn.endpoint, turn.model, snap or configcache.snapshot())
    except Exception:  # the configuration store is away: billing looks the rates up itself
        rates = None
    bill = Bill(
        user=turn.user, endpoint=turn.endpoint, model=turn.model, usage=usage, context="gateway",
        estimated=estimated, hold=turn.hold, rates=rates,
    )
    finish_answer(message_id=None, conversation_id=None, fields={"updated_at": timezone.now()}, bill=bill, record=None)
    return Done(
        message_id=turn.assistant_message_id,
        finish_reason=finish_reason,
        unfinished=unfinished,
        error=error_text,
        usage=usage,
        estimated=bool(estimated),
        text=answer.full_text,
    )


async def _snapshot_or_none() -> configcache.Snapshot | None:
    """The loop's configuration snapshot for billing; None when it cannot be read (the store is
    away): _finish_turn then tries itself, inside its own handling of billing failures."""
    try:
        return await configcache.asnapshot()
    except Exception:
        return None


def _add(previous: int | None, new: int, op: Operation) -> int:
    """Token counts of a continued answer add up; a fresh answer starts from zero."""
    return (previous or 0) + new if op == Operation.CONTINUE else new


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


def _in_background(coro: Any) -> None:
    task = asyncio.create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _touch_claim(conversation_id: uuid.UUID) -> None:
    with contextlib.suppress(Exception):  # Redis briefly away: the next refresh tries again
        await store.touch(lock_key(conversation_id), LOCK_TTL)


async def _renew_hold(hold: uuid.UUID) -> None:
    with contextlib.suppress(Exception):  # database briefly away: the next refresh tries again
        await on_db(billing.holds.renew)(call=hold)


def _wants_title(turn: Turn, timing: str) -> bool:
    endpoint = turn.endpoint
    return turn.new_conversation and endpoint.title_convo and endpoint.title_timing == timing


class ProviderRequest:
    """A turn's provider request, read in a task of its own into `queue`, which `stream_turn`
    consumes (all of the upstream stream is read in this one task, as httpx wants; a stop cancels
    it). The task starts when this is created: `chat.live.launch` creates it next to the task that
    runs the answer, so the request goes out in the event loop's next turn, not a turn after that
    (a task that starts a task costs a turn, 1–2 ms on a loaded loop). Whoever creates one hands it
    to `stream_turn`, which ends it.

    `on_sent` is awaited once the request is on the wire (not when it could not be sent)."""

    def __init__(self, turn: Turn, *, on_sent: Callable[[], Awaitable[None]] | None = None) -> None:
        self.turn = turn
        self.on_sent = on_sent
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.state: dict[str, Any] = {"usage": None, "finish": "", "error": None, "sent": False}
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
            self.state["sent"] = True
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


async def stream_turn(
    turn: Turn, *, stop: StopSignal | None = None, request: ProviderRequest | None = None
) -> AsyncIterator[Event | Done]:
    """Stream the answer: the adapter's events (text, reasoning, tool calls, usage, finish, error),
    then `Done`. Setting `stop` ends the stream early (partial answer kept, marked unfinished and
    billed); so does closing this generator (a client that went away) or cancelling its task.

    `request`: the turn's provider request, already started (ProviderRequest, which also takes the
    `on_sent` hook: work done there overlaps the provider's time to answer); without it the
    request starts here."""
    from chat.tasks import schedule_title_soon

    answer = _Answer(turn.prefix_text, turn.prefix_parts)
    message_id = turn.assistant_message_id

    if request is None:
        request = ProviderRequest(turn)
    queue, state, first_taken, pump_task = request.queue, request.state, request.first_taken, request.task
    stopped = False

    def on_stop() -> None:
        nonlocal stopped
        stopped = True
        pump_task.cancel()

    unsubscribe = stop.subscribe(on_stop) if stop is not None else None

    # The claim is refreshed every LOCK_REFRESH_SECONDS (timer callbacks: no task waits meanwhile).
    loop = asyncio.get_running_loop()

    hold_renewed = time.monotonic()

    def refresh_claim() -> None:
        nonlocal claim_timer, hold_renewed
        if not turn.stateless:
            _in_background(_touch_claim(turn.conversation_id))
        # A long answer renews its balance hold (it expires only when its call died).
        if turn.hold is not None and time.monotonic() - hold_renewed > settings.BILLING_HOLD_SECONDS / 3:
            hold_renewed = time.monotonic()
            _in_background(_renew_hold(turn.hold))
        claim_timer = loop.call_later(LOCK_REFRESH_SECONDS, refresh_claim)

    claim_timer = loop.call_later(LOCK_REFRESH_SECONDS, refresh_claim)
    flush_task: asyncio.Task[Any] | None = None
    last_flush = time.monotonic()
    finished = False

    async def rows_saved() -> bool:
        try:
            await asyncio.shield(start_saving())
            return True
        except Exception:
            return False

    def on_saved(future: "asyncio.Future[None]") -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("saving turn %s failed", turn.generation_id, exc_info=future.exception())
            state["error"] = StreamError(
                message="The conversation could not be saved, so the answer was stopped. Please try again.",
                kind="server",
            )
            queue.put_nowait(state["error"])
            pump_task.cancel()

    def start_saving() -> "asyncio.Future[None]":
        if turn.saved is None:
            turn.start_saving().add_done_callback(on_saved)
            if _wants_title(turn, "immediate"):  # from the first message, once it is saved
                turn.saved.add_done_callback(
                    lambda f: None if f.cancelled() or f.exception() else _in_background(
                        schedule_title_soon(turn.conversation_id, "immediate")
                    )
                )
        return turn.saved

    async def finalize(*, abandoned: bool) -> Done:
        if flush_task is not None:
            with contextlib.suppress(Exception):
                await flush_task
        saved = await rows_saved()
        return await on_db(_finish_turn)(
            turn,
            answer,
            reported=state["usage"],
            finish_reason=state["finish"],
            error=state["error"],
            stopped=(stopped or abandoned) and saved,
            request_sent=state["sent"],
            saved=saved,
            snap=await _snapshot_or_none(),
        )

    try:
        while True:
            event = await queue.get()
            if event is _END:
                break
            if isinstance(event, UsageReport):
                state["usage"] = event.usage  # the usage so far: a later report replaces an earlier one
            elif isinstance(event, Finish):
                state["finish"] = event.reason
            elif isinstance(event, StreamError):
                state["error"] = event
            else:
                answer.add(event)
            yield event
            first_taken.set()
            if turn.saved is None:
                start_saving()
            now = time.monotonic()
            if (
                answer.changed and now - last_flush >= FLUSH_SECONDS and (flush_task is None or flush_task.done())
                and not turn.stateless
                and turn.saved is not None and turn.saved.done() and turn.saved.exception() is None
            ):
                answer.changed = False
                last_flush = now
                flush_task = asyncio.create_task(
                    on_db(_save_progress)(message_id, answer.full_text, answer.parts())
                )
        finished = True
    except (GeneratorExit, asyncio.CancelledError):
        # The consumer went away (gateway client disconnected) or the task is being cancelled:
        # keep and bill what there is, then let the exit proceed.
        pump_task.cancel()
        with contextlib.suppress(BaseException):
            await pump_task
        with contextlib.suppress(Exception):
            await asyncio.shield(finalize(abandoned=True))
        raise
    finally:
        claim_timer.cancel()
        if unsubscribe is not None:
            unsubscribe()
        if not finished and not pump_task.done():
            pump_task.cancel()
    done = await finalize(abandoned=False)
    if _wants_title(turn, "final") and done.text:
        _in_background(schedule_title_soon(turn.conversation_id, "final"))
    yield done
