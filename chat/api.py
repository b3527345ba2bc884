"""Chat API: the caller's conversations and messages, and a chat turn over HTTP (send, edit,
regenerate, continue; answered whole or as server-sent events; stop)."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from django.http import Http404, HttpRequest, StreamingHttpResponse
from ninja import Query, Router, Schema, Status
from ninja.errors import HttpError
from pydantic import Field

from accounts.auth import caller, key_or_session
from billing.selectors import UsageTotals, display_currency
from chat.conversations import conversation_delete, conversation_fork, conversation_rename
from chat.db import on_db
from chat.http_turns import HttpTurn, start_answer
from chat.live import stop_answer
from chat.models import Conversation, Message
from chat.schemas import (
    AnswerIn,
    ConversationOut,
    ConversationPageOut,
    EditIn,
    MessageOut,
    RenameIn,
    SendIn,
    ThreadOut,
    TurnOut,
)
from chat.selectors import (
    MAX_PAGE,
    BadCursor,
    ConversationFilter,
    conversation_page,
    conversation_thread,
    message_with_usage,
    thread_usage,
)
from chat.services import Operation, TurnAction

router = Router(tags=["chat"], auth=key_or_session)


def conversation_out(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.pk, "title": conversation.title,
        "endpoint": conversation.endpoint.name if conversation.endpoint else conversation.endpoint_name,
        "model": conversation.model, "spec": conversation.model_spec.name if conversation.model_spec else None,
        "system_prompt": conversation.system_prompt, "params": conversation.params,
        "temporary": conversation.temporary, "archived": conversation.archived,
        "tags": sorted(tag.name for tag in conversation.tags.all()),
        "created_at": conversation.created_at, "updated_at": conversation.updated_at,
    }


def message_out(message: Message, usage: UsageTotals) -> dict[str, Any]:
    return {
        "id": message.pk, "conversation_id": message.conversation_id, "parent_id": message.parent_id,
        "role": message.role, "text": message.text, "content": message.content,
        "endpoint": message.endpoint.name if message.endpoint else None, "model": message.model,
        "sender": message.sender, "finish_reason": message.finish_reason, "error": message.error,
        "unfinished": message.unfinished, "created_at": message.created_at,
        "tokens": {
            "prompt": message.prompt_tokens, "completion": message.completion_tokens,
            "cache_read": message.cache_read_tokens, "cache_write": message.cache_write_tokens,
            "reasoning": message.reasoning_tokens,
        },
        "usage": usage,
    }


# --- conversations ---------------------------------------------------------------------------------


class ConversationsQuery(Schema):
    cursor: str | None = Field(default=None, max_length=200, description="`next_cursor` of the previous page.")
    limit: int = Field(default=20, ge=1, le=MAX_PAGE)
    since: dt.date | None = Field(default=None, description="Active on or after this day.")
    until: dt.date | None = Field(default=None, description="Active on or before this day.")
    endpoint: str | None = Field(default=None, max_length=100, description="Endpoint name.")
    model: str | None = Field(default=None, max_length=200)
    archived: bool = Field(default=False, description="true: only archived conversations (else they are left out).")
    temporary: bool | None = Field(default=None, description="Only temporary chats (true) or none of them (false).")
    tag: str | None = Field(default=None, max_length=100, description="Only those with this bookmark (tag name).")


@router.get("/conversations", response=ConversationPageOut)
def list_conversations(request: HttpRequest, query: Query[ConversationsQuery]) -> dict[str, Any]:
    """The caller's conversations, most recently active first, a page at a time: archived ones
    only with `archived=true`, temporary chats until they expire."""
    where = ConversationFilter(
        since=query.since, until=query.until, endpoint=query.endpoint, model=query.model,
        archived=query.archived, temporary=query.temporary, tag=query.tag,
    )
    try:
        page, cursor = conversation_page(user=caller(request).user, cursor=query.cursor, limit=query.limit, where=where)
    except BadCursor as exc:
        raise HttpError(422, str(exc)) from None
    return {"items": [conversation_out(c) for c in page], "next_cursor": cursor}


@router.get("/conversations/{conversation_id}", response=ThreadOut)
def get_conversation(request: HttpRequest, conversation_id: uuid.UUID) -> dict[str, Any]:
    """One conversation with its whole message tree."""
    user = caller(request).user
    thread = conversation_thread(user=user, conversation_id=conversation_id)
    if thread is None:
        raise Http404
    usage = thread_usage(user=user, thread=thread)
    zero = UsageTotals.from_row({}, display_currency())
    messages = [
        {**message_out(node.message, usage.get(node.message.id, zero)),
         "siblings": node.siblings, "children": node.children, "current": node.current}
        for node in thread.nodes
    ]
    return {
        "conversation": conversation_out(thread.conversation), "messages": messages,
        "current_message_id": thread.current_id,
    }


@router.patch("/conversations/{conversation_id}", response=ConversationOut)
def rename_conversation(request: HttpRequest, conversation_id: uuid.UUID, payload: RenameIn) -> dict[str, Any]:
    conversation = conversation_rename(user=caller(request).user, conversation_id=conversation_id, title=payload.title)
    if conversation is None:
        raise Http404
    return conversation_out(conversation)


@router.delete("/conversations/{conversation_id}", response={204: None})
def delete_conversation(request: HttpRequest, conversation_id: uuid.UUID) -> Status[Any]:
    if not conversation_delete(user=caller(request).user, conversation_id=conversation_id):
        raise Http404
    return Status(204, None)


# --- messages --------------------------------------------------------------------------------------


@router.get("/messages/{message_id}", response=MessageOut)
def get_message(request: HttpRequest, message_id: uuid.UUID) -> dict[str, Any]:
    """One message with its tokens and what it cost."""
    found = message_with_usage(user=caller(request).user, message_id=message_id)
    if found is None:
        raise Http404
    return message_out(*found)


@router.post("/messages/{message_id}/fork", response={201: ConversationOut})
def fork_message(request: HttpRequest, message_id: uuid.UUID) -> Status[Any]:
    """A new conversation holding the branch from the first message to this one."""
    fork = conversation_fork(user=caller(request).user, message_id=message_id)
    if fork is None:
        raise Http404
    return Status(201, conversation_out(fork))


# --- a turn over HTTP ------------------------------------------------------------------------------


def _stored(user: Any, ids: list[str | None]) -> list[dict[str, Any] | None]:
    found = [message_with_usage(user=user, message_id=uuid.UUID(i)) if i else None for i in ids]
    return [message_out(*pair) if pair else None for pair in found]


async def _whole(user: Any, run: HttpTurn) -> dict[str, Any]:
    created: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    async for frame in run.frames():
        if frame["type"] == "created":
            created = frame
        elif frame["type"] == "error":
            errors.append({"code": frame.get("code") or "error", "message": frame.get("message") or ""})
    user_message, message = await on_db(_stored)(
        user, [created.get("user_message_id"), created.get("assistant_message_id")]
    )
    return {
        "conversation_id": run.conversation_id, "generation_id": run.generation.id,
        "new_conversation": bool(created.get("new_conversation")), "user_message": user_message,
        "message": message, "errors": errors,
    }


async def _events(run: HttpTurn) -> AsyncIterator[str]:
    async for frame in run.frames():
        yield f"event: {frame['type']}\ndata: {json.dumps(frame, separators=(',', ':'), default=str)}\n\n"


async def _answer(request: HttpRequest, op: Operation, payload: SendIn | EditIn | AnswerIn) -> Any:
    principal = caller(request)
    user = principal.user
    run = await start_answer(
        user=user, action=TurnAction.asked(op, payload), request_id=payload.request_id,
        metered=principal.via_api_key,
    )
    if payload.stream:
        response = StreamingHttpResponse(_events(run), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # (nginx: pass each event on as it comes)
        return response
    return await _whole(user, run)


TURN_DOC = (
    "Answered whole (JSON) once the answer is stored and billed, or with `stream: true` as"
    " server-sent events: each event is one of the websocket's frames (`created`, `delta`, `error`,"
    " `usage`, `done`), named by its type. A client that goes away stops nothing; stop with"
    " `POST /api/conversations/{id}/stop`."
)


@router.post("/chat/send", response=TurnOut, summary="Send a message", description=TURN_DOC)
async def send(request: HttpRequest, payload: SendIn) -> Any:
    return await _answer(request, Operation.SEND, payload)


@router.post("/chat/edit", response=TurnOut, summary="Edit a user message and answer it", description=TURN_DOC)
async def edit(request: HttpRequest, payload: EditIn) -> Any:
    return await _answer(request, Operation.EDIT, payload)


@router.post("/chat/regenerate", response=TurnOut, summary="Answer again", description=TURN_DOC)
async def regenerate(request: HttpRequest, payload: AnswerIn) -> Any:
    return await _answer(request, Operation.REGENERATE, payload)


@router.post("/chat/continue", response=TurnOut, summary="Continue a cut-off answer", description=TURN_DOC)
async def continue_(request: HttpRequest, payload: AnswerIn) -> Any:
    return await _answer(request, Operation.CONTINUE, payload)


@router.post("/conversations/{conversation_id}/stop", response={204: None})
async def stop(request: HttpRequest, conversation_id: uuid.UUID) -> Status[Any]:
    """Stop the answer being written in the conversation, whichever process writes it (websocket
    or HTTP): what was written is kept and billed. 409 `not_running` when nothing is."""
    await stop_answer(user=caller(request).user, conversation_id=conversation_id)
    return Status(204, None)
