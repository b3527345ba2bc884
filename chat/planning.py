"""Preparing a turn: check what the user may do (role, model specs, balance), plan it, build it.

`prepare_turn(user=…, action=…)` reads the conversation and the anchors of the turn, resolves the
target (chat.policy), builds the context trimmed to the model's window, holds the balance the
answer may spend (billing) and builds the `Turn` with its provider request — one trip to a
database thread (none for a new conversation planned from the configuration cache; a second one
only after a fetched model list had to be checked). Refusals raise a `ChatError` whose text is
meant for the user; nothing is written and nothing is sent upstream.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import SynchronousOnlyOperation
from django.utils import timezone

from accounts.models import User
from billing import holds
from billing import services as billing
from billing.pricing import Rates
from chat import configcache
from chat.claims import EarlyClaim, aread_claim, arelease_conversation, claim_conversation, release_conversation
from chat.db import on_db
from chat.errors import BUSY_MESSAGE, Busy, Forbidden, InvalidRequest, NoBalance, NotFound
from chat.models import Conversation, Message
from chat.models import Role as MessageRole
from chat.policy import (
    MAX_TEXT_CHARS,
    Draft,
    Said,
    Target,
    _model_row,
    _portal,
    build_context,
    check_fetched_model,
    context_window,
    reserved_for_answer,
    resolve_target,
)
from chat.temporary import retention
from chat.turns import Operation, Turn, TurnAction, TurnPlan, build_turn
from endpoints.adapters.types import Call
from endpoints.models import Endpoint
from endpoints.shaping import ConfigError, build_call

log = logging.getLogger(__name__)


def rates_of(endpoint: Endpoint, model: str, snap: configcache.Snapshot) -> Rates:
    """What billing.rates_for returns, from the configuration cache (no queries)."""
    return Rates.resolve(_model_row(endpoint, model, snap), _portal(snap))


# --- admission ---------------------------------------------------------------------------------

def check_target_balance(
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
            rates=rates_of(target.endpoint, target.model, snap),
        )
    except billing.InsufficientBalance as exc:
        raise NoBalance(str(exc)) from exc
    return hold, (budget if hold is not None and asked is None else None)


def _release_hold(user: User, hold: uuid.UUID | None) -> None:
    """A turn admitted but never started gives its hold back."""
    if hold is not None:
        try:
            holds.release(user=user, call=hold)
        except Exception:  # the hold expires with nobody renewing it
            log.exception("releasing the hold %s of an unstarted turn failed", hold)


# --- where the turn hangs ----------------------------------------------------------------------

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

    def branch(self, text: str) -> list[Said]:
        """The branch the answer continues; a new user message is appended in memory."""
        if self.continued is not None:
            return list(self.continued.branch())
        if self.answered is not None:
            return list(self.answered.branch())
        branch: list[Said] = list(self.parent.branch()) if self.parent is not None else []
        return [*branch, Draft(role=MessageRole.USER, text=text)]


def _owned_message(user: User, message_id: uuid.UUID | None, what: str) -> Message:
    message = (
        Message.objects.select_related("conversation").filter(user=user, pk=message_id).first()
        if message_id else None
    )
    if message is None:
        raise NotFound(f"{what} was not found.")
    return message


def _checked_text(action: TurnAction) -> str:
    text = (action.text or "").strip()
    if action.op in (Operation.SEND, Operation.EDIT) and not text:
        raise InvalidRequest("The message is empty.")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidRequest(f"The message is too long ({len(text):,} characters; at most {MAX_TEXT_CHARS:,}).")
    return text


def _temporary_until(user: User, action: TurnAction, snap: configcache.Snapshot) -> datetime | None:
    """A send that starts a temporary chat: when it expires (the portal's retention window from
    now, chat.temporary). Only a new conversation can be one, and only for a role allowed them."""
    if not action.temporary:
        return None
    if action.op != Operation.SEND or action.conversation_id is not None:
        raise InvalidRequest("Only a new conversation can be a temporary chat: leave out conversation_id.")
    role = user.role
    if role is None or not role.can_temporary_chat:
        raise Forbidden("Your role does not allow temporary chats.")
    return timezone.now() + retention(_portal(snap))


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
        answered = Message.objects.filter(user=user, pk=message.parent_id).first() if message.parent_id else None
        return _Anchors(conversation=conversation, answered=answered, continued=message)
    answered = Message.objects.filter(user=user, pk=message.parent_id).first() if message.parent_id else None
    if answered is None:
        raise InvalidRequest("This answer has no question to answer again.")
    return _Anchors(conversation=conversation, answered=answered)


# --- planning ----------------------------------------------------------------------------------

def _active_user(user: User, snap: configcache.Snapshot) -> User:
    """The user as the database has it now (cached until any user or role changes): a role changed
    or an account disabled since the socket opened counts."""
    user_pk = user.pk
    current: User | None = snap.get(
        ("user", user_pk), lambda: User.objects.select_related("role").filter(pk=user_pk, is_active=True).first()
    )
    if current is None:
        raise Forbidden("Your account is disabled.")
    return current


def plan_turn(
    *, user: User, action: TurnAction, early_claim: EarlyClaim | None = None,
    snap: configcache.Snapshot | None = None, on_loop: bool = False,
) -> tuple[TurnPlan, bool]:
    """Everything a turn needs that only reads: the conversation, anchors, target, context — and,
    unless a fetched model list must be checked first, the balance check (which holds credits).

    Returns (plan, needs_fetch_check). With `early_claim` (a `send`, see `EarlyClaim`) the
    conversation is being claimed meanwhile; from a database thread the plan waits for the claim
    before the balance check, on the event loop (`on_loop`) the caller awaits it afterwards (a plan
    that runs on the loop needs no database, so it holds nothing). Without `early_claim` the
    conversation is claimed here, last.
    """
    snap = snap or configcache.snapshot()
    user = _active_user(user, snap)
    text = _checked_text(action)
    temporary_until = _temporary_until(user, action, snap)
    anchors = _anchors(user, action)
    target, needs_fetch_check = resolve_target(
        user=user,
        endpoint=action.endpoint,
        model=action.model,
        spec=action.spec,
        params=action.params,
        system_prompt=action.system_prompt,
        conversation=anchors.conversation,
        snap=snap,
    )
    messages, prompt_tokens = build_context(anchors.branch(text), target=target, snap=snap)
    if early_claim is not None and not on_loop and not early_claim.held():
        raise Busy(BUSY_MESSAGE)
    # Admission needs the database: on the loop it is left to prepare_turn's one trip to a database
    # thread (which builds the turn too), as it is after a fetched model list's check.
    admit_later = needs_fetch_check or (on_loop and billing.role_of(user).balance_enabled)
    hold, answer_limit = None, None
    if not admit_later:
        hold, answer_limit = check_target_balance(user=user, target=target, prompt_tokens=prompt_tokens, snap=snap)
    try:
        if early_claim is not None:
            conversation_id, generation_id = early_claim.conversation_id, early_claim.generation_id
        else:
            conversation_id = anchors.conversation.pk if anchors.conversation is not None else uuid.uuid4()
            generation_id = uuid.uuid4().hex
            claim_conversation(conversation_id, generation_id, user.pk)
    except BaseException:
        _release_hold(user, hold)
        raise
    plan = TurnPlan(
        user=user, op=action.op, text=text, target=target,
        conversation_id=conversation_id, generation_id=generation_id,
        conversation=anchors.conversation, parent=anchors.parent, answered=anchors.answered,
        continued=anchors.continued, messages=messages, prompt_tokens=prompt_tokens,
        hold=hold, answer_limit=answer_limit, admit_later=admit_later, temporary_until=temporary_until,
    )
    return plan, needs_fetch_check


def _prebuilt_call(turn: Turn) -> Call | None:
    """The provider request, built ahead; None when it cannot be built (stream_chat then tries
    again and reports the configuration error as the answer's error, as it always does)."""
    try:
        return build_call(endpoint=turn.endpoint, request=turn.request, user=turn.user)
    except (ConfigError, LookupError):
        return None


def _built(plan: TurnPlan) -> Turn:
    turn = build_turn(plan=plan)
    turn.call = _prebuilt_call(turn)
    return turn


def _plan_and_build(
    *, user: User, action: TurnAction, early_claim: EarlyClaim | None = None,
    snap: configcache.Snapshot | None = None, on_loop: bool = False,
) -> tuple[TurnPlan, bool, Turn | None]:
    """plan_turn, and when no fetched model list must be checked first, the turn and its provider
    call too: one trip to the database thread on the way to the first token, not three (or none,
    `on_loop`: see prepare_turn)."""
    plan, needs_fetch_check = plan_turn(user=user, action=action, early_claim=early_claim, snap=snap, on_loop=on_loop)
    if plan.admit_later:
        return plan, needs_fetch_check, None
    try:
        return plan, False, _built(plan)
    except BaseException:
        if not on_loop:
            _release_hold(plan.user, plan.hold)
        # Only the claim plan_turn took itself: an early claim is released by prepare_turn (and on
        # the loop the caller plans again on a thread, with the same claim).
        if early_claim is None and not on_loop:
            release_conversation(plan.conversation_id, plan.generation_id, user.pk)
        raise


def _admit_and_build(plan: TurnPlan, snap: configcache.Snapshot | None = None) -> Turn:
    """The admission prepare_turn left for a database thread, then the turn and its provider call
    (one trip; an admitted turn that cannot be built gives its hold back). `snap`: the
    configuration the turn was planned with (its rates: no second look at the cache's version)."""
    hold, answer_limit = check_target_balance(
        user=plan.user, target=plan.target, prompt_tokens=plan.prompt_tokens, snap=snap
    )
    try:
        return _built(dataclasses.replace(plan, hold=hold, answer_limit=answer_limit))
    except BaseException:
        _release_hold(plan.user, hold)
        raise


# --- prepare_turn --------------------------------------------------------------------------------

async def prepare_turn(*, user: User, action: TurnAction) -> Turn:
    """Check and build a turn (see module doc); raises ChatError for the user to read. The rows are
    saved in the background (`turn.saved`), while the provider is already being asked: saving is
    not on the way to the first token."""
    early_claim = EarlyClaim(action.conversation_id, user.pk) if action.op == Operation.SEND else None
    snap, plan, needs_fetch_check, turn = await _plan(user, action, early_claim)
    if turn is None:
        turn = await _admit(plan, needs_fetch_check, early_claim, snap)
    if early_claim is not None and early_claim.fresh:
        turn.pending_claim = early_claim
    return turn


async def _plan(
    user: User, action: TurnAction, early_claim: EarlyClaim | None
) -> tuple[configcache.Snapshot, TurnPlan, bool, Turn | None]:
    """Plan (and, when it can, admit and build) the turn; a refusal releases the early claim."""
    try:
        if early_claim is not None and not early_claim.fresh:
            await asyncio.sleep(0)  # the claim's command goes out now, before the plan keeps the loop busy
        snap = await configcache.asnapshot()  # (the claim's round trip runs meanwhile)
        result = await _plan_on_loop(user, action, early_claim, snap)
        if result is None:
            result = await on_db(_plan_and_build)(user=user, action=action, early_claim=early_claim, snap=snap)
    except _ConversationMissing:
        await _refuse_missing(user, action, early_claim)
        raise AssertionError("unreachable") from None
    except BaseException:
        if early_claim is not None:
            await early_claim.arelease_if_held()
        raise
    return (snap, *result)


async def _plan_on_loop(
    user: User, action: TurnAction, early_claim: EarlyClaim | None, snap: configcache.Snapshot
) -> tuple[TurnPlan, bool, Turn | None] | None:
    """A send that starts a new conversation is planned on the event loop itself when everything it
    needs is in memory (the configuration cache is warm and the role has no balance to check): no
    trip to a database thread before the provider is asked. Anything that would touch the database
    there raises SynchronousOnlyOperation before it does: None, and the plan runs again on a
    database thread, as every other turn does."""
    if early_claim is None or action.conversation_id is not None:
        return None
    try:
        result = _plan_and_build(user=user, action=action, early_claim=early_claim, snap=snap, on_loop=True)
    except SynchronousOnlyOperation:
        return None
    if not await early_claim.aheld():
        raise Busy(BUSY_MESSAGE)
    return result


async def _refuse_missing(user: User, action: TurnAction, early_claim: EarlyClaim | None) -> None:
    """A send to a conversation not in the database: Busy while its first answer is being written
    (its rows follow the first token), else NotFound."""
    if early_claim is not None and await early_claim.aheld():
        await early_claim.arelease_if_held()
    else:
        claim = await aread_claim(action.conversation_id) if action.conversation_id is not None else None
        if claim is not None and claim.user_id == str(user.pk):
            raise Busy(BUSY_MESSAGE) from None
    raise NotFound("Conversation not found.") from None


async def _admit(
    plan: TurnPlan, needs_fetch_check: bool, early_claim: EarlyClaim | None, snap: configcache.Snapshot
) -> Turn:
    """The second step of a turn whose admission was left for later: check the fetched model list
    if needed, then admit and build on a database thread. A refusal gives back hold and claim."""
    try:
        if needs_fetch_check:
            await check_fetched_model(user=plan.user, target=plan.target)
        turn: Turn = await on_db(_admit_and_build)(plan, snap)
        return turn
    except BaseException:
        with contextlib.suppress(Exception):
            await on_db(_release_hold)(plan.user, plan.hold)
        if early_claim is not None:
            await early_claim.arelease_if_held()
        else:
            await arelease_conversation(plan.conversation_id, plan.generation_id, plan.user.pk)
        raise
