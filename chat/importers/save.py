"""Saving an imported conversation: new ids, the source's tree, timestamps and models kept."""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone

from chat.importers.base import ImportedConversation, ImportedMessage, ImportFailed
from chat.models import Conversation, Message

if TYPE_CHECKING:
    from accounts.models import User


def save_conversation(*, user: User, imported: ImportedConversation, where: str) -> Conversation:
    """Save one conversation (inside the caller's transaction: an import is all or nothing)."""
    by_key: dict[str, Message] = {}
    now = timezone.now()
    first = next((m.created_at for m in imported.messages if m.created_at), None)
    conversation = Conversation.objects.create(
        user=user, title=imported.title or Conversation.DEFAULT_TITLE, endpoint_name=imported.endpoint_name[:100],
        model=imported.model[:200], system_prompt=imported.system_prompt, params=imported.params,
    )
    rows = []
    for source in parents_first(imported.messages, where):
        content = [{"type": "reasoning", "text": source.reasoning}] if source.reasoning else []
        content.append({"type": "text", "text": source.text})
        message = Message(
            conversation=conversation, user=user, role=source.role, content=content, text=source.text,
            parent=by_key.get(source.parent_key) if source.parent_key else None, model=source.model[:200],
            sender=source.sender[:200], error="Imported with an error." if source.error else "",
            unfinished=source.unfinished,
        )
        by_key[source.key] = message
        rows.append((message, source.created_at or first or now))
    Message.objects.bulk_create([m for m, _ in rows])
    # created_at/updated_at are auto_now(_add): the source's times are written after the insert
    for message, created in rows:
        message.created_at = created
    Message.objects.bulk_update([m for m, _ in rows], ["created_at"], batch_size=500)
    created = imported.created_at or first or now
    updated = imported.updated_at or (rows[-1][1] if rows else created)
    Conversation.objects.filter(pk=conversation.pk).update(created_at=created, updated_at=updated)
    conversation.created_at, conversation.updated_at = created, updated
    return conversation


def parents_first(messages: list[ImportedMessage], where: str) -> list[ImportedMessage]:
    """The messages ordered so each comes after its parent (siblings keep the file's order)."""
    children: dict[str | None, list[ImportedMessage]] = {}
    keys: set[str] = set()
    for message in messages:
        if message.key in keys:
            raise ImportFailed(f"{where}: message id {message.key} appears twice.")
        keys.add(message.key)
    for message in messages:
        if message.parent_key is not None and message.parent_key not in keys:
            raise ImportFailed(
                f"{where}: message {message.key} answers {message.parent_key}, which is not in the file."
            )
        children.setdefault(message.parent_key, []).append(message)
    order: list[ImportedMessage] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        message = stack.pop()
        order.append(message)
        stack.extend(reversed(children.get(message.key, [])))
    if len(order) != len(messages):
        raise ImportFailed(f"{where}: some messages answer each other in a cycle.")
    return order
