"""A turn: what it asks for (`TurnAction`), its checked plan (`TurnPlan`, frozen), and the turn
itself (`Turn`: the provider request and the rows it writes), built from the plan without the
database and saved while the provider is already being asked (`save_turn`).

Planning and admission (the reads and the balance hold) are `chat.planning`; the answer that
follows is `chat.answer`.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.db import transaction

from accounts.models import User
from chat.claims import EarlyClaim
from chat.db import on_db
from chat.models import Conversation, Message
from chat.models import Role as MessageRole
from chat.policy import Target
from chat.recovery import in_flight_record
from endpoints.adapters.types import Call, ChatMessage, ChatRequest
from endpoints.models import Endpoint

log = logging.getLogger(__name__)


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
    # send without conversation_id: the new conversation is a temporary chat
    temporary: bool = False

    @classmethod
    def asked(cls, op: Operation, fields: Any) -> TurnAction:
        """The action a client asks for in a websocket frame or a REST request body (the same
        field names; an operation's own fields are absent from the others)."""
        return cls(
            op=op,
            text=getattr(fields, "text", ""),
            conversation_id=getattr(fields, "conversation_id", None),
            parent_id=getattr(fields, "parent_id", None),
            message_id=getattr(fields, "message_id", None),
            endpoint=fields.endpoint,
            model=fields.model,
            spec=fields.spec,
            params=fields.params,
            system_prompt=fields.system_prompt,
            temporary=getattr(fields, "temporary", False),
        )


@dataclass(frozen=True)
class TurnPlan:
    """Everything a turn needs that only reads (chat.planning.plan_turn): who asks, where the turn
    hangs in the conversation, the target and the context sent, and — once admitted — its hold."""

    user: User
    op: Operation
    text: str
    target: Target
    conversation_id: uuid.UUID
    generation_id: str
    conversation: Conversation | None  # None: a new conversation
    parent: Message | None  # what the new user message hangs under
    answered: Message | None  # regenerate / continue: the user message answered
    continued: Message | None  # continue: the answer continued
    messages: list[ChatMessage]
    prompt_tokens: int
    # admission: the call id of the balance hold (None: the role has no balance) and, when the
    # request sets no max_tokens, the answer limit the hold covers
    hold: uuid.UUID | None = None
    answer_limit: int | None = None
    # admission left for a database thread (after a fetched model list's check, or planned on the loop)
    admit_later: bool = False
    # a new temporary conversation: when it expires (None: not a new temporary conversation)
    temporary_until: datetime | None = None

    @property
    def temporary(self) -> bool:
        """The conversation is a temporary chat (new, or one started as such)."""
        if self.conversation is not None:
            return self.conversation.temporary
        return self.temporary_until is not None

    @property
    def asks(self) -> bool:
        """A new user message is written (send, edit)."""
        return self.op in (Operation.SEND, Operation.EDIT)


Rows = tuple[Conversation, "Message | None", Message]


@dataclass
class Turn:
    """A prepared turn: request built, rows planned. `chat.answer.stream_turn` runs it.

    The rows (conversation, user message, answer) are model instances built on first use
    (`build_rows`): building three of them is about half the CPU of planning a turn, and nothing
    on the way to the first token needs them — it uses the ids, which are chosen up front."""

    user: User
    op: Operation
    conversation_id: uuid.UUID
    assistant_message_id: uuid.UUID
    build_rows: Callable[[], Rows]
    # what the `created` frame tells about the rows: title, user_message {id, parent_id, text} or
    # None, the answer's parent_id, sender and temporary (plain values, no rows needed)
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
    saved: asyncio.Future[None] | None = None
    # the provider request, built by prepare_turn on the database thread (None: stream_chat builds it)
    call: Call | None = None
    # a new conversation's claim, written before its id is shown and its rows saved (see EarlyClaim)
    pending_claim: EarlyClaim | None = None
    # the call id of the turn's balance hold (None: the role has no balance); released by its bill
    hold: uuid.UUID | None = None
    # A turn with no conversation (the gateway: the caller sends the whole message list): no
    # claim, no rows, no title, no recovery record; only the bill is written (context `gateway`).
    stateless: bool = False
    # The caller's role's tokens per minute count this turn's tokens (portal.ratelimit): calls made
    # with a personal API key (the gateway, the REST API). Counted when the answer ends.
    metered: bool = False
    _rows: Rows | None = None

    def rows(self) -> Rows:
        if self._rows is None:
            self._rows = self.build_rows()
        return self._rows

    @property
    def conversation(self) -> Conversation:
        return self.rows()[0]

    @property
    def user_message(self) -> Message | None:
        """None when regenerating/continuing (the answered message is the answer's parent)."""
        return self.rows()[1]

    @property
    def assistant_message(self) -> Message:
        return self.rows()[2]

    def start_saving(self) -> asyncio.Future[None]:
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


# --- building a turn from its plan (no database) ------------------------------------------------

def build_turn(*, plan: TurnPlan) -> Turn:
    """The turn's rows (not saved yet: `save_turn` does that while the provider is already being
    asked) and the provider request. No database access."""
    continued = plan.continued
    # ids chosen now: the request and the frames use them before the rows exist
    user_message_id = uuid.uuid4() if plan.asks else None
    answer_id = continued.pk if continued is not None else uuid.uuid4()
    prefix_text, prefix_parts = "", []
    if continued is not None:
        prefix_text = continued.text
        prefix_parts = [p for p in continued.content if p.get("type") != "text"]
    return Turn(
        user=plan.user,
        op=plan.op,
        conversation_id=plan.conversation_id,
        assistant_message_id=answer_id,
        build_rows=lambda: _build_rows(plan, user_message_id, answer_id),
        shown=_shown(plan, user_message_id),
        target=plan.target,
        request=_request(plan, user_message_id),
        prompt_tokens=plan.prompt_tokens,
        new_conversation=plan.conversation is None,
        generation_id=plan.generation_id,
        prefix_text=prefix_text,
        prefix_parts=prefix_parts,
        hold=plan.hold,
    )


def _answered(plan: TurnPlan, user_message_id: uuid.UUID | None) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The id of the message the answer answers, and that message's parent id."""
    if plan.asks:
        return user_message_id, plan.parent.pk if plan.parent is not None else None
    answered = plan.answered
    return (answered.pk, answered.parent_id) if answered is not None else (None, None)


def _shown(plan: TurnPlan, user_message_id: uuid.UUID | None) -> dict[str, Any]:
    answered_id, answered_parent_id = _answered(plan, user_message_id)
    continued = plan.continued
    if plan.asks:
        answer_parent_id = user_message_id
    else:
        answer_parent_id = continued.parent_id if continued is not None else answered_id
    return {
        "title": plan.conversation.title if plan.conversation is not None else Conversation.DEFAULT_TITLE,
        "user_message": (
            {"id": str(user_message_id), "parent_id": _str_or_none(answered_parent_id), "text": plan.text}
            if plan.asks else None
        ),
        "parent_id": _str_or_none(answer_parent_id),
        "sender": continued.sender if continued is not None else plan.target.sender,
        "temporary": plan.temporary,
    }


def _request(plan: TurnPlan, user_message_id: uuid.UUID | None) -> ChatRequest:
    target = plan.target
    answered_id, answered_parent_id = _answered(plan, user_message_id)
    return ChatRequest(
        model=target.model,
        messages=plan.messages,
        system=target.system_prompt,
        params=dict(target.params, max_tokens=plan.answer_limit) if plan.answer_limit else dict(target.params),
        conversation_id=str(plan.conversation_id),
        parent_message_id=str(answered_parent_id) if answered_parent_id else "",
        message_id=str(answered_id) if answered_id is not None else "",
    )


def _build_rows(plan: TurnPlan, user_message_id: uuid.UUID | None, answer_id: uuid.UUID) -> Rows:
    conversation = _conversation_row(plan)
    user_message: Message | None = None
    if plan.asks:
        user_message = Message(
            id=user_message_id,
            conversation=conversation,
            user=plan.user,
            parent=plan.parent,
            role=MessageRole.USER,
            endpoint=plan.target.endpoint,
            model=plan.target.model,
            sender=plan.user.name or plan.user.get_username(),
        )
        user_message.set_text(plan.text)
        return conversation, user_message, _new_answer(answer_id, plan, conversation, user_message)
    if plan.op == Operation.REGENERATE:
        return conversation, None, _new_answer(answer_id, plan, conversation, plan.answered)
    assistant = plan.continued
    assert assistant is not None
    assistant.unfinished = True
    assistant.error = ""
    assistant.finish_reason = ""
    return conversation, None, assistant


def _conversation_row(plan: TurnPlan) -> Conversation:
    """The new conversation, or the existing one switched to the turn's target."""
    target, endpoint = plan.target, plan.target.endpoint
    if plan.conversation is None:
        return Conversation(
            id=plan.conversation_id,
            user=plan.user,
            endpoint=endpoint,
            endpoint_name=endpoint.name,
            model=target.model,
            model_spec=target.spec,
            params={} if target.spec else target.params,
            system_prompt="" if target.spec else target.system_prompt,
            temporary=plan.temporary_until is not None,
            expires_at=plan.temporary_until,
        )
    conversation = plan.conversation
    conversation.endpoint = endpoint
    conversation.endpoint_name = endpoint.name
    conversation.model = target.model
    conversation.model_spec = target.spec
    if target.spec is None:
        conversation.params = target.params
        conversation.system_prompt = target.system_prompt
    return conversation


def _new_answer(answer_id: uuid.UUID, plan: TurnPlan, conversation: Conversation, parent: Message | None) -> Message:
    target = plan.target
    return Message(
        id=answer_id,
        conversation=conversation,
        user=plan.user,
        parent=parent,
        role=MessageRole.ASSISTANT,
        endpoint=target.endpoint,
        model=target.model,
        sender=target.sender,
        unfinished=True,  # until the provider says it finished: a crash leaves it marked
    )


def _str_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None


def save_turn(turn: Turn) -> None:
    """Save the conversation (new or switched), the user message and the empty, unfinished answer."""
    conversation = turn.conversation
    # cleared by the answer's end (chat.finish); see chat/recovery.py
    turn.assistant_message.in_flight = in_flight_record(
        prompt_tokens=turn.prompt_tokens, hold=turn.hold, prefix_text=turn.prefix_text, prefix_parts=turn.prefix_parts
    )
    with transaction.atomic():
        if turn.new_conversation:
            conversation.save(force_insert=True)
        else:
            conversation.save(update_fields=[
                "endpoint", "endpoint_name", "model", "model_spec", "params", "system_prompt", "updated_at",
            ])
        new_messages = [turn.user_message] if turn.user_message is not None else []
        if turn.op == Operation.CONTINUE:
            turn.assistant_message.save(
                update_fields=["unfinished", "error", "finish_reason", "in_flight", "updated_at"]
            )
        else:
            new_messages.append(turn.assistant_message)
        Message.objects.bulk_create(new_messages)  # the question and its answer: one INSERT
