"""Start balance on creation and on first login (users created before billing existed, or by a
bulk import that skipped signals, get theirs when they sign in)."""
from __future__ import annotations

from typing import Any


def give_start_balance(sender: type, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if created and not raw:
        from billing.services import ensure_balance

        ensure_balance(user=instance)


def give_start_balance_on_login(sender: type, request: Any, user: Any, **kwargs: Any) -> None:
    from billing.services import ensure_balance

    ensure_balance(user=user)


def ensure_day_statistics(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """PostgreSQL keeps no statistics on `(created_at AT TIME ZONE tz)::date`, the key of the usage
    report by day, so it plans a million-row sort instead of a 1-row-per-day hash aggregate (1.2 s
    instead of 0.5 s on 1M rows). Extended statistics on that expression fix the estimate. They are
    tied to the portal's TIME_ZONE, so this runs after every migrate (and `make run` migrates at
    start): changing TIME_ZONE adds the statistics for the new zone."""
    import re

    from django.conf import settings
    from django.db import connections

    connection = connections[using]
    # (pg_version: PostgreSQL's wrapper only)
    if connection.vendor != "postgresql" or connection.pg_version < 140000:  # type: ignore[attr-defined]
        return
    zone = settings.TIME_ZONE
    if not re.fullmatch(r"[A-Za-z0-9_+\-/]+", zone):
        return
    name = "billing_txn_day_" + re.sub(r"[^a-z0-9]+", "_", zone.lower())[:40]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_statistic_ext WHERE stxname = %s", [name])
        if cursor.fetchone():
            return
        cursor.execute("SELECT to_regclass('billing_transaction') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return
        cursor.execute(
            f"CREATE STATISTICS IF NOT EXISTS {name} "
            f"ON ((created_at AT TIME ZONE '{zone}')::date) FROM billing_transaction"
        )
        cursor.execute("ANALYZE billing_transaction")
