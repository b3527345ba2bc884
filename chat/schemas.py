"""Request/response schemas of the chat API: conversations, messages and a turn over HTTP."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from ninja import Schema
from pydantic import Field

from billing.schemas import UsageOut
from chat.policy import MAX_TEXT_CHARS


class ConversationOut(Schema):
    id: uuid.UUID
    title: str
    endpoint: str = Field(description="Endpoint name (kept when the endpoint was deleted).")
    model: str
    spec: str | None
    system_prompt: str
    params: dict[str, Any]
    temporary: bool
    archived: bool
    tags: list[str] = Field(description="Its bookmarks' names.")
    created_at: dt.datetime
    updated_at: dt.datetime


class ConversationPageOut(Schema):
    items: list[ConversationOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end.")


class TokensOut(Schema):
    """As the provider reported them (null: not reported)."""

    prompt: int | None
    completion: int | None
    cache_read: int | None
    cache_write: int | None
    reasoning: int | None


class MessageOut(Schema):
    id: uuid.UUID
    conversation_id: uuid.UUID
    parent_id: uuid.UUID | None
    role: str
    text: str
    content: list[dict[str, Any]] = Field(description="Typed parts: text, reasoning, tool_call, attachment.")
    endpoint: str | None
    model: str
    sender: str
    finish_reason: str
    error: str
    unfinished: bool
    created_at: dt.datetime
    tokens: TokensOut
    usage: UsageOut = Field(description="What the ledger billed for this message (zero for user messages).")


class NodeOut(MessageOut):
    siblings: list[uuid.UUID] = Field(description="The children of its parent, itself included, oldest first.")
    children: list[uuid.UUID]
    current: bool = Field(description="On the current branch: the path to the newest message.")


class ThreadOut(Schema):
    conversation: ConversationOut
    messages: list[NodeOut] = Field(description="The whole tree, oldest first.")
    current_message_id: uuid.UUID | None = Field(description="The newest message; a send without parent answers it.")


class RenameIn(Schema):
    title: str = Field(min_length=1, max_length=300)


# --- a turn over HTTP: the websocket's fields (README, "The websocket") -----------------------------


class _TurnIn(Schema):
    endpoint: str | None = Field(default=None, max_length=100, description="Switch to this endpoint (name).")
    model: str | None = Field(default=None, max_length=200)
    spec: str | None = Field(default=None, max_length=100, description="Switch to this model spec (name).")
    params: dict[str, Any] | None = None
    system_prompt: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    request_id: str | None = Field(default=None, max_length=100, description="Echoed in the frames.")
    stream: bool = Field(default=False, description="Answer as server-sent events (the websocket's frames).")


class SendIn(_TurnIn):
    text: str = Field(max_length=MAX_TEXT_CHARS)
    conversation_id: uuid.UUID | None = Field(default=None, description="None: a new conversation.")
    parent_id: uuid.UUID | None = Field(default=None, description="The message answered (default: the newest).")


class EditIn(_TurnIn):
    message_id: uuid.UUID = Field(description="The user message edited (the edit becomes its sibling).")
    text: str = Field(max_length=MAX_TEXT_CHARS)


class AnswerIn(_TurnIn):
    message_id: uuid.UUID = Field(description="The assistant message regenerated or continued.")


class TurnErrorOut(Schema):
    code: str
    message: str


class TurnOut(Schema):
    conversation_id: uuid.UUID
    generation_id: str
    new_conversation: bool
    user_message: MessageOut | None = Field(description="The message sent or edited (null: regenerate, continue).")
    message: MessageOut | None = Field(description="The answer as stored and billed (null: deleted meanwhile).")
    errors: list[TurnErrorOut] = Field(description="What went wrong upstream; the text so far is kept.")
