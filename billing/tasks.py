"""Celery tasks of the ledger (scheduled in settings.CELERY_BEAT_SCHEDULE)."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="billing.tasks.refill_due_balances", ignore_result=True)
def refill_due_balances() -> int:
    """Auto-refill every balance whose interval has elapsed (also applied at check time)."""
    from billing import services

    return services.refill_due_balances()
