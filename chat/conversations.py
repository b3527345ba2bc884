"""Writes to a user's conversations outside a turn: rename, delete, fork a branch. Each takes the
owner and finds nothing of anyone else's (None / False: not found)."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction

from chat.models import Conversation, Message
from chat.temporary import retention

if TYPE_CHECKING:
    from accounts.models import User


def conversation_rename(*, user: User, conversation_id: uuid.UUID, title: str) -> Conversation | None:
    conversation = Conversation.objects.owned_by(user).filter(pk=conversation_id).first()
    if conversation is None:
        return None
    conversation.title = title
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def conversation_delete(*, user: User, conversation_id: uuid.UUID) -> bool:
    """Delete the conversation and its messages. Its ledger rows stay (the ledger is append-only;
    their links to it are cleared). An answer still being written is billed without its message
    (chat.services finishes it)."""
    deleted, _ = Conversation.objects.owned_by(user).filter(pk=conversation_id).delete()
    return deleted > 0


def _expiry(conversation: Conversation) -> datetime | None:
    """When a temporary chat expires (chat.temporary: its own expiry, else the window from its start)."""
    if not conversation.temporary:
        return None
    return conversation.expires_at or conversation.created_at + retention()


@transaction.atomic
def conversation_fork(*, user: User, message_id: uuid.UUID) -> Conversation | None:
    """A new conversation holding the branch from the root to `message_id` (copies with new ids, in
    the same order), with the original's endpoint, model, parameters and system prompt. A fork of
    a temporary chat is temporary and expires with it (a copy never outlives its original)."""
    message = Message.objects.filter(user=user, pk=message_id).select_related("conversation").first()
    if message is None:
        return None
    source = message.conversation
    fork = Conversation.objects.create(
        user=user, title=source.title, endpoint=source.endpoint, endpoint_name=source.endpoint_name,
        model=source.model, model_spec=source.model_spec, params=source.params,
        system_prompt=source.system_prompt, temporary=source.temporary, expires_at=_expiry(source),
    )
    copies: list[Message] = []
    parent_id: uuid.UUID | None = None
    branch = message.branch()
    for original in branch:
        copy = Message(
            conversation=fork, user=user, parent_id=parent_id, role=original.role, content=original.content,
            text=original.text, endpoint_id=original.endpoint_id, model=original.model, sender=original.sender,
            prompt_tokens=original.prompt_tokens, completion_tokens=original.completion_tokens,
            cache_read_tokens=original.cache_read_tokens, cache_write_tokens=original.cache_write_tokens,
            reasoning_tokens=original.reasoning_tokens, finish_reason=original.finish_reason,
            error=original.error, unfinished=original.unfinished,
        )
        copies.append(copy)
        parent_id = copy.id
    Message.objects.bulk_create(copies)
    # the copies keep their originals' times, so the order of the branch (and "newest") is the same
    for copy, original in zip(copies, branch, strict=True):
        copy.created_at = original.created_at
    Message.objects.bulk_update(copies, ["created_at"])
    return fork
