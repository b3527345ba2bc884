"""Holds: credits set aside by the calls still running, one hold per call (see billing.models.Hold).

* `admit` places a call's hold when the balance less the holds already placed covers the call's
  estimate (the rule is billing.services.check_balance's);
* the call's posting settles it (`billing.ledger.post(release=call)`), or `release` when the call
  ends with nothing to post;
* `renew` keeps a long call's hold from expiring while it runs; `release_expired` drops the holds
  of calls that died without reporting back (their process was lost).

`Balance.held` is the sum of the user's holds: admission is one conditional UPDATE of the balance
row (`held = held + hold WHERE credits - held covers the estimate`; the row count says whether the
call was admitted, and PostgreSQL re-checks the condition on the newest row when it waited for a
concurrent writer), so concurrent admissions of one user cannot spend the same credits twice.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.ledger import Posting, post
from billing.models import Balance, Context, Hold

if TYPE_CHECKING:
    from accounts.models import User


@dataclass(frozen=True, slots=True)
class Admitted:
    """An admitted call: the balance as admission saw it (before this call's hold)."""

    credits: Decimal
    held: Decimal
    last_refill_at: dt.datetime | None
    created_at: dt.datetime


def hold_lifetime() -> dt.timedelta:
    return dt.timedelta(seconds=settings.BILLING_HOLD_SECONDS)


def admit(
    *, user_id: int, call: uuid.UUID, model: str, estimate: Decimal, hold: Decimal, now: dt.datetime
) -> Admitted | None:
    """Place `hold` credits for `call` if the user's balance less its holds is positive and covers
    `estimate`; None when it does not (or the user has no balance row yet)."""
    params: dict[str, Any] = {
        "user": user_id, "call": call, "model": model[:200], "hold": hold, "estimate": estimate, "now": now,
        "expires": now + hold_lifetime(),
    }
    if connection.vendor == "postgresql":
        row = _admit_on_postgresql(params)
        return Admitted(*row) if row is not None else None
    with transaction.atomic():
        admitted = Balance.objects.filter(
            user_id=user_id, credits__gt=F("held"), credits__gte=F("held") + estimate
        ).update(held=F("held") + hold)
        if not admitted:
            return None
        if hold:
            Hold.objects.create(
                user_id=user_id, call=call, model=params["model"], credits=hold, created_at=now,
                expires_at=params["expires"],
            )
        balance = Balance.objects.values_list("credits", "held", "last_refill_at", "created_at").get(user_id=user_id)
    credits, held, last_refill_at, created_at = balance
    return Admitted(credits, held - hold, last_refill_at, created_at)


# One statement (its own transaction in autocommit): the conditional UPDATE takes the balance row's
# lock and, after waiting for a concurrent admission or posting, re-evaluates its condition on the
# row that one committed; the hold row goes in with it.
_ADMIT_SQL = """
    WITH admitted AS (
        UPDATE billing_balance SET held = held + %(hold)s::numeric
        WHERE user_id = %(user)s AND credits > held AND credits - held >= %(estimate)s::numeric
        RETURNING credits, held, last_refill_at, created_at
    ), placed AS (
        INSERT INTO billing_hold (user_id, call, model, credits, created_at, expires_at)
        SELECT %(user)s, %(call)s::uuid, %(model)s, %(hold)s::numeric, %(now)s, %(expires)s
        FROM admitted WHERE %(hold)s::numeric > 0
        RETURNING 1
    )
    SELECT credits, held - %(hold)s::numeric, last_refill_at, created_at FROM admitted
"""


def _admit_on_postgresql(params: dict[str, Any]) -> tuple[Any, ...] | None:
    """The admission statement. Outside a transaction, in one round trip with the statements that
    make it a transaction whose commit does not wait for the disk: a hold is bookkeeping, not
    ledger (that halves admission's cost). A crash that loses it loses the held sum with it (one
    transaction), and the call's posting then releases nothing: the books still balance."""
    with connection.cursor() as cursor:
        if connection.in_atomic_block or not isinstance(cursor.cursor, psycopg.ClientCursor):
            cursor.execute(_ADMIT_SQL, params)  # (several statements in one query need client-side binding)
            one: tuple[Any, ...] | None = cursor.fetchone()
            return one
        try:
            cursor.execute(f"BEGIN; SET LOCAL synchronous_commit TO OFF; {_ADMIT_SQL}; COMMIT", params)
            row: tuple[Any, ...] | None = None
            while True:
                if cursor.cursor.description is not None and len(cursor.cursor.description) == 4:
                    row = cursor.fetchone()
                if not cursor.cursor.nextset():
                    return row
        except BaseException:
            with contextlib.suppress(Exception):
                cursor.cursor.execute("ROLLBACK")  # the connection stays usable for the next call
            raise


def release(*, user: User, call: uuid.UUID, now: dt.datetime | None = None) -> None:
    """Release `call`'s hold without billing anything (the call ends with nothing to post)."""
    post(user=user, lines=[], posting=Posting(context=Context.MESSAGE), release=call, now=now)


def renew(*, call: uuid.UUID, now: dt.datetime | None = None) -> None:
    """A call still running pushes its hold's expiry one lifetime on (a hold expires only when its
    call died: nobody renewed it)."""
    now = now or timezone.now()
    Hold.objects.filter(call=call).update(expires_at=now + hold_lifetime())


def release_expired(*, user: User, now: dt.datetime | None = None) -> int:
    """Release the user's holds whose calls died (expired: not renewed). Returns how many."""
    now = now or timezone.now()
    calls = list(Hold.objects.filter(user_id=user.pk, expires_at__lte=now).values_list("call", flat=True))
    for call in calls:
        release(user=user, call=call, now=now)
    return len(calls)
