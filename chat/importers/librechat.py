"""LibreChat's JSON export: one conversation with its `messages` either flat (each with
`parentMessageId`) or, with `recursive: true`, as a tree of `children`. Atrium's own JSON export is
this shape, and a list of such objects (all of one's conversations) is read too."""
from __future__ import annotations

from typing import Any

from chat.importers.base import ImportedConversation, ImportedMessage, ImportFailed, require, timestamp

NO_PARENT = "00000000-0000-0000-0000-000000000000"


def looks_like(data: object) -> bool:
    return isinstance(data, dict) and "conversationId" in data and ("messages" in data or "messagesTree" in data)


def parse(data: dict[str, Any], where: str) -> ImportedConversation:
    messages = data.get("messagesTree") or data.get("messages")
    if not isinstance(messages, list):
        raise ImportFailed(f"{where}: 'messages' is not a list.")
    conversation = ImportedConversation(
        title=str(data.get("title") or "Imported chat")[:300],
        endpoint_name=str(data.get("endpoint") or ""),
        model=str((data.get("options") or {}).get("model") or data.get("model") or ""),
        system_prompt=str((data.get("options") or {}).get("promptPrefix") or ""),
        created_at=timestamp(data.get("createdAt"), where),
        updated_at=timestamp(data.get("updatedAt"), where),
    )
    if data.get("recursive"):
        _walk(messages, None, conversation.messages, where)
    else:
        for index, raw in enumerate(messages):
            conversation.messages.append(_message(raw, _parent(raw), f"{where}, message {index + 1}"))
    return conversation


def _walk(nodes: list[Any], parent_key: str | None, out: list[ImportedMessage], where: str) -> None:
    for raw in nodes:
        message = _message(raw, parent_key, f"{where}, message {len(out) + 1}")
        out.append(message)
        children = raw.get("children") or []
        if not isinstance(children, list):
            raise ImportFailed(f"{where}, message {message.key}: 'children' is not a list.")
        _walk(children, message.key, out, where)


def _parent(raw: object) -> str | None:
    parent = raw.get("parentMessageId") if isinstance(raw, dict) else None
    return None if parent in (None, "", NO_PARENT) else str(parent)


def _message(raw: Any, parent_key: str | None, where: str) -> ImportedMessage:
    key = require(raw, "messageId", str, where)
    mine = raw.get("isCreatedByUser")
    if not isinstance(mine, bool):
        raise ImportFailed(f"{where}: 'isCreatedByUser' is missing or not true/false.")
    return ImportedMessage(
        key=key, parent_key=parent_key, role="user" if mine else "assistant", text=_text(raw, where),
        created_at=timestamp(raw.get("createdAt"), where), model=str(raw.get("model") or ""),
        sender=str(raw.get("sender") or ""), error=bool(raw.get("error")), unfinished=bool(raw.get("unfinished")),
    )


def _text(raw: dict[str, Any], where: str) -> str:
    """`text`, or for agents' messages the text parts of `content` ({type: text, text: str | {value}})."""
    text = raw.get("text")
    if isinstance(text, str) and text:
        return text
    content = raw.get("content")
    if content in (None, []):
        return str(raw.get("text") or "")
    if not isinstance(content, list):
        raise ImportFailed(f"{where}: 'content' is not a list.")
    texts: list[str] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            value = part.get("text")
            texts.append(value.get("value", "") if isinstance(value, dict) else str(value or ""))
    return "\n\n".join(texts)
