"""Celery tasks of the chat app. Each takes ids and imports its service inside."""
from __future__ import annotations

from asgiref.sync import async_to_sync
from celery import shared_task


@shared_task(ignore_result=True)
def generate_title(conversation_id: str, timing: str = "final") -> None:
    """Title a new conversation (chat.titles; enqueued by the chat turn with transaction.on_commit):
    `immediate` from its first message, `final` from its first exchange."""
    from chat.titles import title_conversation

    async_to_sync(title_conversation)(conversation_id, timing)
