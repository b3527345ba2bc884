"""ChatGPT's data export: `conversations.json` (or, since 2026, `conversations-NNN.json` shards
listed in the zip's `export_manifest.json`), a list of conversations whose `mapping` holds the
message tree: `{node id: {id, message, parent, children}}`.

Nodes without a message (the root) and hidden system/context messages are left out; their
children hang from the nearest kept ancestor, so branches (edits, regenerations) survive."""
from __future__ import annotations

from typing import Any

from chat.importers.base import ImportedConversation, ImportedMessage, ImportFailed, require, timestamp

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "tool": "assistant"}
# content types ChatGPT writes and how each reads as text; anything else is refused by name
TEXT_TYPES = {"text", "multimodal_text", "code", "execution_output", "tether_quote", "system_error"}
REASONING_TYPES = {"thoughts", "reasoning_recap"}
HIDDEN_TYPES = {"user_editable_context", "model_editable_context", "tether_browsing_display"}


def looks_like(item: object) -> bool:
    return isinstance(item, dict) and "mapping" in item


def parse(raw: Any, where: str) -> ImportedConversation:
    mapping = require(raw, "mapping", dict, where)
    title = str(raw.get("title") or "Imported chat")[:300]
    where = f"{where} ('{title}')"
    conversation = ImportedConversation(
        title=title, created_at=timestamp(raw.get("create_time"), where),
        updated_at=timestamp(raw.get("update_time"), where), endpoint_name="ChatGPT",
        model=str(raw.get("default_model_slug") or ""),
    )
    kept: dict[str, ImportedMessage] = {}
    for node_id in _roots_first(mapping, where):
        node = mapping[node_id]
        here = f"{where}, node {node_id}"
        parent = _kept_ancestor(mapping, node.get("parent"), kept)
        message = _message(node.get("message"), node_id, parent, here)
        if message is not None:
            kept[node_id] = message
            conversation.messages.append(message)
    models = [m.model for m in conversation.messages if m.model]
    conversation.model = conversation.model or (models[-1] if models else "")
    return conversation


def _roots_first(mapping: dict[str, Any], where: str) -> list[str]:
    """Node ids, each after its parent (the order saving needs), refusing cycles."""
    children: dict[str | None, list[str]] = {}
    for key, node in mapping.items():
        if not isinstance(node, dict):
            raise ImportFailed(f"{where}, node {key}: expected an object.")
        parent = node.get("parent")
        children.setdefault(parent if parent in mapping else None, []).append(key)
    order: list[str] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        key = stack.pop()
        order.append(key)
        stack.extend(reversed(children.get(key, [])))
    if len(order) != len(mapping):
        raise ImportFailed(f"{where}: {len(mapping) - len(order)} nodes are not reachable from the root (a cycle).")
    return order


def _kept_ancestor(mapping: dict[str, Any], node_id: str | None, kept: dict[str, ImportedMessage]) -> str | None:
    while node_id is not None and node_id not in kept:
        node_id = mapping.get(node_id, {}).get("parent")
    return node_id


def _message(raw: Any, key: str, parent: str | None, where: str) -> ImportedMessage | None:
    if raw is None:
        return None
    author = require(raw, "author", dict, where)
    role = require(author, "role", str, f"{where}, author")
    if role not in ROLES:
        raise ImportFailed(f"{where}: unknown author role '{role}'.")
    content = require(raw, "content", dict, where)
    kind = require(content, "content_type", str, f"{where}, content")
    metadata = raw.get("metadata") or {}
    if kind in HIDDEN_TYPES or metadata.get("is_visually_hidden_from_conversation"):
        return None
    if kind not in TEXT_TYPES | REASONING_TYPES:
        raise ImportFailed(f"{where}: unknown content type '{kind}'.")
    text = _text(content, kind)
    if role == "system" and not text.strip():
        return None
    reasoning = kind in REASONING_TYPES
    return ImportedMessage(
        key=key, parent_key=parent, role=ROLES[role], text="" if reasoning else text,
        reasoning=text if reasoning else "", created_at=timestamp(raw.get("create_time"), where),
        model=str(metadata.get("model_slug") or ""),
        sender=str(author.get("name") or "") if role == "tool" else "",
    )


def _text(content: dict[str, Any], kind: str) -> str:
    if kind == "thoughts":
        return "\n\n".join(str(t.get("content", "")) for t in content.get("thoughts") or [] if isinstance(t, dict))
    if kind in ("code", "execution_output", "reasoning_recap", "tether_quote", "system_error"):
        return str(content.get("text") or content.get("content") or "")
    parts: list[str] = []
    for part in content.get("parts") or []:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("content_type") == "image_asset_pointer":
            parts.append(f"[image: {part.get('asset_pointer', '')}]")
    return "\n\n".join(p for p in parts if p)
