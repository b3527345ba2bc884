"""Celery tasks of the chat app. Each takes ids (or nothing: the beat jobs) and imports its service inside."""
from __future__ import annotations

from asgiref.sync import async_to_sync
from celery import shared_task


@shared_task(ignore_result=True)
def generate_title(conversation_id: str, timing: str = "final") -> None:
    """Title a new conversation (chat.titles; enqueued by the chat turn with transaction.on_commit):
    `immediate` from its first message, `final` from its first exchange."""
    from chat.titles import title_conversation

    async_to_sync(title_conversation)(conversation_id, timing)


@shared_task(name="chat.tasks.recover_interrupted_answers", ignore_result=True)
def recover_interrupted_answers() -> int:
    """Finish the answers whose process died mid-stream (chat.recovery; scheduled in
    settings.CELERY_BEAT_SCHEDULE every CHAT_RECOVERY_CHECK_SECONDS)."""
    from chat.recovery import recover_interrupted_answers as recover

    return recover()
