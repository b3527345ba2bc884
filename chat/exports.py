"""Exporting conversations: Markdown, plain text, CSV (one row per message) and JSON in
LibreChat's export shape with every branch (flat `messages` with `parentMessageId`), which
`chat.importers` reads back into the same tree."""
from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from chat.errors import InvalidRequest
from chat.models import Conversation, Message

FORMATS = {"md": "text/markdown", "txt": "text/plain", "json": "application/json", "csv": "text/csv"}
NO_PARENT = "00000000-0000-0000-0000-000000000000"


def export_conversations(conversations: Iterable[Conversation], fmt: str) -> str:
    """The conversations (with their messages) as one document in `fmt`."""
    if fmt not in FORMATS:
        raise InvalidRequest(f"Unknown export format '{fmt}' (one of: {', '.join(FORMATS)}).")
    pairs = [(c, list(Message.objects.filter(conversation=c).order_by("created_at", "id"))) for c in conversations]
    if fmt == "json":
        documents = [librechat_json(c, messages) for c, messages in pairs]
        return json.dumps(documents[0] if len(documents) == 1 else documents, ensure_ascii=False, indent=2)
    if fmt == "csv":
        return _csv(pairs)
    render = _markdown if fmt == "md" else _text
    return "\n\n".join(render(c, messages) for c, messages in pairs)


def librechat_json(conversation: Conversation, messages: list[Message]) -> dict[str, Any]:
    return {
        "conversationId": str(conversation.pk),
        "title": conversation.title,
        "endpoint": conversation.endpoint_name,
        "createdAt": conversation.created_at.isoformat(),
        "updatedAt": conversation.updated_at.isoformat(),
        "exportAt": timezone.now().isoformat(),
        "branches": True,
        "recursive": False,
        "options": {"model": conversation.model, "promptPrefix": conversation.system_prompt, **conversation.params},
        "messages": [
            {
                "messageId": str(m.pk),
                "parentMessageId": str(m.parent_id) if m.parent_id else NO_PARENT,
                "conversationId": str(conversation.pk),
                "isCreatedByUser": m.role == "user",
                "sender": m.sender or ("User" if m.role == "user" else m.model or "AI"),
                "text": m.text,
                "model": m.model,
                "endpoint": conversation.endpoint_name,
                "createdAt": m.created_at.isoformat(),
                "error": bool(m.error),
                "unfinished": m.unfinished,
            }
            for m in messages
        ],
    }


def _current_path(messages: list[Message]) -> list[Message]:
    """The branch shown in the chat: from the root, each time the latest child."""
    latest: dict[uuid.UUID | None, Message] = {}
    for m in messages:  # oldest first: the last one written wins
        latest[m.parent_id] = m
    path, node = [], latest.get(None)
    while node is not None:
        path.append(node)
        node = latest.get(node.pk)
    return path


def _speaker(m: Message) -> str:
    if m.role == "user":
        return "User"
    return m.sender or m.model or m.role.capitalize()


def _markdown(conversation: Conversation, messages: list[Message]) -> str:
    lines = [f"# {conversation.title}", ""]
    if conversation.model:
        lines += [f"*{conversation.endpoint_name or 'Model'}: {conversation.model}*", ""]
    for m in _current_path(messages):
        lines += [f"**{_speaker(m)}**", "", m.text, ""]
    return "\n".join(lines).rstrip() + "\n"


def _text(conversation: Conversation, messages: list[Message]) -> str:
    lines = [conversation.title, "=" * len(conversation.title), ""]
    for m in _current_path(messages):
        lines += [f"{_speaker(m)}:", m.text, ""]
    return "\n".join(lines).rstrip() + "\n"


def _csv(pairs: list[tuple[Conversation, list[Message]]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["conversation_id", "conversation_title", "message_id", "parent_message_id", "role",
                     "sender", "model", "created_at", "text"])
    for conversation, messages in pairs:
        for m in messages:
            writer.writerow([conversation.pk, _cell(conversation.title), m.pk, m.parent_id or "", m.role,
                             _cell(_speaker(m)), m.model, m.created_at.isoformat(), _cell(m.text)])
    return out.getvalue()


def _cell(value: str) -> str:
    """A spreadsheet runs a cell starting with = + - @ as a formula (CSV injection, OWASP): such
    text is prefixed with an apostrophe, which spreadsheets show as plain text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
