"""What `manage.py check_ledger` verifies: the invariants billing.ledger and billing.holds keep.

* every Balance equals the sum of its user's transactions;
* every Balance's `held` equals the sum of its user's holds;
* every hold belongs to a live call: not expired (a running call renews its hold; an expired one
  belongs to a call that died and was never released);
* every user with transactions or holds has a balance.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from billing.models import Balance, Hold, Transaction
from billing.pricing import quantize

ZERO = Decimal(0)


def ledger_problems(*, now: dt.datetime | None = None) -> list[str]:
    """One sentence per broken invariant (empty: the ledger is sound)."""
    now = now or timezone.now()
    problems: list[str] = []
    sums = dict(Transaction.objects.order_by().values_list("user_id").annotate(total=Sum("credits")))
    held = dict(Hold.objects.order_by().values_list("user_id").annotate(total=Sum("credits")))
    balances = Balance.objects.select_related("user").order_by("user_id")
    for balance in balances.iterator(chunk_size=2000):
        user = balance.user
        rows = quantize(sums.pop(balance.user_id, ZERO))
        if balance.credits != rows:
            problems.append(
                f"Balance of {user} (user {balance.user_id}) is {balance.credits} credits, "
                f"its transactions sum to {rows} (off by {balance.credits - rows})."
            )
        holds = quantize(held.pop(balance.user_id, ZERO))
        if balance.held != holds:
            problems.append(
                f"Balance of {user} (user {balance.user_id}) holds {balance.held} credits, "
                f"its holds sum to {holds}."
            )
    for user_id, rows in sums.items():
        problems.append(f"User {user_id} has transactions summing to {rows} credits but no balance.")
    for user_id, holds in held.items():
        problems.append(f"User {user_id} has holds of {holds} credits but no balance.")
    for hold in Hold.objects.filter(expires_at__lte=now).order_by("expires_at"):
        problems.append(
            f"Hold of call {hold.call} (user {hold.user_id}, {hold.credits} credits) expired at "
            f"{hold.expires_at:%Y-%m-%d %H:%M:%S} UTC: its call died and the hold was never released."
        )
    return problems
