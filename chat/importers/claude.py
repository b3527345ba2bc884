"""Claude's data export (`conversations.json` in the zip): a list of `{uuid, name, created_at,
updated_at, chat_messages: [{uuid, sender: human | assistant, text, content: [{type: text |
thinking | tool_use | tool_result, …}], created_at, parent_message_uuid?}]}`. Messages follow
`parent_message_uuid` where the export has it (branches), otherwise they form one line."""
from __future__ import annotations

from typing import Any

from chat.importers.base import ImportedConversation, ImportedMessage, ImportFailed, require, timestamp

ROLES = {"human": "user", "assistant": "assistant"}
NO_PARENT = "00000000-0000-4000-8000-000000000000"
KNOWN_PARTS = {"text", "thinking", "tool_use", "tool_result", "image", "document", "token_budget", "voice_note"}


def looks_like(item: object) -> bool:
    return isinstance(item, dict) and "chat_messages" in item


def parse(raw: Any, where: str) -> ImportedConversation:
    messages = require(raw, "chat_messages", list, where)
    title = str(raw.get("name") or "Imported chat")[:300]
    where = f"{where} ('{title}')"
    conversation = ImportedConversation(
        title=title, endpoint_name="Claude", created_at=timestamp(raw.get("created_at"), where),
        updated_at=timestamp(raw.get("updated_at"), where),
    )
    keys: set[str] = set()
    previous: str | None = None
    for index, message in enumerate(messages):
        here = f"{where}, message {index + 1}"
        key = require(message, "uuid", str, here)
        sender = require(message, "sender", str, here)
        if sender not in ROLES:
            raise ImportFailed(f"{here}: unknown sender '{sender}'.")
        parent = message.get("parent_message_uuid", previous)
        parent = parent if parent in keys else (previous if parent != NO_PARENT else None)
        text, reasoning = _content(message, here)
        conversation.messages.append(ImportedMessage(
            key=key, parent_key=parent, role=ROLES[sender], text=text, reasoning=reasoning,
            created_at=timestamp(message.get("created_at"), here), sender="Claude" if sender == "assistant" else "",
        ))
        keys.add(key)
        previous = key
    return conversation


def _content(message: dict[str, Any], where: str) -> tuple[str, str]:
    content = message.get("content")
    if not content:
        return str(message.get("text") or ""), ""
    if not isinstance(content, list):
        raise ImportFailed(f"{where}: 'content' is not a list.")
    texts: list[str] = []
    thoughts: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in KNOWN_PARTS:
            raise ImportFailed(f"{where}: unknown content part {kind!r}.")
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind == "thinking":
            thoughts.append(str(part.get("thinking") or ""))
    text = "\n\n".join(t for t in texts if t) or str(message.get("text") or "")
    return text, "\n\n".join(t for t in thoughts if t)
