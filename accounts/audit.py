"""Audit log of admin changes, kept by django-auditlog.

django-auditlog records create/update/delete with the before/after of each changed field (secrets
masked with portal.crypto.mask) and ships a read-only, filterable admin. It hooks model signals, so
it would also log every balance movement of every chat message; Atrium keeps only what admins
change: entries are written while AdminAuditMiddleware marks the request as an admin change.
The tracked models are listed in settings.AUDITLOG_INCLUDE_TRACKING_MODELS.
"""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from auditlog.signals import pre_log

admin_change: ContextVar[bool] = ContextVar("atrium_admin_change", default=False)


def _only_admin_changes(sender: Any, instance: Any, action: Any, **kwargs: Any) -> bool:
    return admin_change.get()


pre_log.connect(_only_admin_changes, dispatch_uid="atrium_only_admin_changes")
