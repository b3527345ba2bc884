"""Schemas of the conversation library's routes (chat/library_api.py)."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from ninja import Schema


class SearchHitOut(Schema):
    conversation_id: UUID
    conversation_title: str
    message_id: UUID
    role: str
    created_at: datetime
    snippet: str  # HTML-escaped text, matches wrapped in <mark>


class ImportOut(Schema):
    conversations: list[UUID]
    messages: int


class TagIn(Schema):
    name: str


class TagOut(Schema):
    id: int
    name: str
    count: int


class ConversationTagsIn(Schema):
    tags: list[str]


class ArchiveIn(Schema):
    archived: bool


class ConversationLibraryOut(Schema):
    id: UUID
    title: str
    archived: bool
    tags: list[str]


class ShareIn(Schema):
    message_id: UUID | None = None  # the last message shown; default: the branch the chat shows
    expires_at: datetime | None = None


class ShareOut(Schema):
    id: UUID
    conversation_id: UUID
    title: str
    url: str
    messages: int
    created_at: datetime
    expires_at: datetime | None


class PresetIn(Schema):
    title: str
    endpoint: str  # the endpoint's name
    model: str
    params: dict[str, Any] = {}
    system_prompt: str = ""
    shared: bool = False  # with everyone (staff only)
    shared_roles: list[str] = []  # role names; a user may name their own role


class PresetOut(Schema):
    id: int
    title: str
    endpoint: str
    model: str
    params: dict[str, Any]
    system_prompt: str
    shared: bool
    shared_roles: list[str]
    mine: bool


class ApplyPresetIn(Schema):
    preset_id: int


class ConversationSettingsOut(Schema):
    id: UUID
    endpoint: str
    model: str
    params: dict[str, Any]
    system_prompt: str
