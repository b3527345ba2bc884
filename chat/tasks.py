"""Celery tasks of the chat app, and how a turn enqueues its title. Each task takes ids (or
nothing: the beat jobs) and imports its service inside."""
from __future__ import annotations

import logging
import uuid

from asgiref.sync import async_to_sync, sync_to_async
from celery import shared_task
from django.db import close_old_connections, transaction

log = logging.getLogger(__name__)


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


def schedule_title(conversation_id: uuid.UUID, timing: str) -> None:
    """Enqueue the title task once the current database transaction commits."""
    transaction.on_commit(lambda: generate_title.delay(str(conversation_id), str(timing)))


async def schedule_title_soon(conversation_id: uuid.UUID, timing: str) -> None:
    """From async code: enqueue without holding up the caller. With eager Celery (the embedded
    default) the task runs right where it is enqueued, so that happens in a worker thread, never on
    the event loop; its coroutine then runs back on this loop (asgiref), next to the answers."""
    await sync_to_async(_schedule_in_thread, thread_sensitive=False)(conversation_id, timing)


def _schedule_in_thread(conversation_id: uuid.UUID, timing: str) -> None:
    try:
        schedule_title(conversation_id, timing)
    except Exception:
        log.exception("enqueueing the title of conversation %s failed", conversation_id)
    finally:
        close_old_connections()


@shared_task(name="chat.tasks.purge_temporary_chats", ignore_result=True)
def purge_temporary_chats() -> int:
    """Delete temporary chats past the admin-set retention window (chat.temporary; scheduled in
    settings.CELERY_BEAT_SCHEDULE every CHAT_TEMPORARY_PURGE_SECONDS)."""
    from chat.temporary import purge_expired_temporary_chats

    return purge_expired_temporary_chats()
