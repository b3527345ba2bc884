"""Chatbot UI's export: `{version, history: [{id, name, messages: [{role, content}], model: {id},
prompt, temperature}], folders, prompts}`. Each conversation is a single line of messages."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chat.importers.base import ImportedConversation, ImportedMessage, ImportFailed, require

ROLES = {"user": "user", "assistant": "assistant", "system": "system"}


def looks_like(data: object) -> bool:
    return isinstance(data, dict) and "version" in data and isinstance(data.get("history"), list)


def parse_all(data: dict[str, Any], where: str) -> Iterator[ImportedConversation]:
    for index, raw in enumerate(data["history"]):
        yield parse(raw, f"{where}, conversation {index + 1}")


def parse(raw: Any, where: str) -> ImportedConversation:
    messages = require(raw, "messages", list, where)
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    conversation = ImportedConversation(
        title=str(raw.get("name") or "Imported chat")[:300], model=str(model.get("id") or ""),
        system_prompt=str(raw.get("prompt") or ""),
        params={"temperature": raw["temperature"]} if isinstance(raw.get("temperature"), int | float) else {},
    )
    parent: str | None = None
    for index, message in enumerate(messages):
        here = f"{where}, message {index + 1}"
        role = require(message, "role", str, here)
        if role not in ROLES:
            raise ImportFailed(f"{here}: unknown role '{role}'.")
        key = f"{index}"
        conversation.messages.append(ImportedMessage(
            key=key, parent_key=parent, role=ROLES[role], text=str(require(message, "content", str, here)),
            model=conversation.model if role == "assistant" else "",
        ))
        parent = key
    return conversation
