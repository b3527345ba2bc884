"""Temporary chats: started by a send marked `temporary` (chat.planning sets `expires_at` from
`retention()`), kept for the retention window an admin sets (PortalSettings, LibreChat's
interface.temporaryChatRetention), then hidden and deleted by a Celery beat job."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from chat.models import Conversation
from portal.models import PortalSettings

PURGE_BATCH = 500


def retention(portal: PortalSettings | None = None) -> timedelta:
    """The window admins set (`portal`: the settings row already read, e.g. from the chat's
    configuration snapshot). A chat turn that starts a temporary chat sets its `expires_at` to
    now + this."""
    return timedelta(hours=(portal or PortalSettings.load()).temporary_chat_retention_hours)


def expired_temporary(now: datetime | None = None) -> Q:
    """Temporary conversations past their own `expires_at` or past the window counted from when
    they were started (so a window shortened by an admin applies to existing chats too)."""
    now = now or timezone.now()
    return Q(temporary=True) & (Q(expires_at__lte=now) | Q(created_at__lte=now - retention()))


def purge_expired_temporary_chats() -> int:
    """Delete the expired temporary conversations (their messages go with them), in batches so a
    backlog never holds one long transaction; returns how many were deleted."""
    deleted = 0
    condition = expired_temporary()
    while True:
        batch = list(Conversation.objects.filter(condition).values_list("pk", flat=True)[:PURGE_BATCH])
        if not batch:
            return deleted
        Conversation.objects.filter(pk__in=batch).delete()
        deleted += len(batch)
