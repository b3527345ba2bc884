"""The one way credits move: `post(...)`.

A posting is a list of `Line`s (one ledger row each: a token type, its tokens and rate, signed
credits) for one user. `post` inserts the rows and moves the user's Balance by their sum in one
database transaction, and — given the call whose hold it settles (`release=`) — deletes that hold and
takes its credits off `Balance.held` in the same transaction. So the Balance always equals the sum of
its user's transactions and `Balance.held` the sum of its holds, under any concurrency: the balance
moves by an atomic `UPDATE … SET credits = credits + x` (the database serialises concurrent updates
of the row; there is no read-modify-write).

Two implementations of the same steps: the ORM one (every database), and on PostgreSQL one
data-modifying statement (one round trip and one commit on the hot path of every billed call).

Start balance, refills, usage and adjustments (billing.services) build lines and call `post`;
admission (billing.holds) only ever adds to `Balance.held`.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from billing.models import Balance, Context, Hold, TokenType, Transaction
from billing.pricing import quantize

if TYPE_CHECKING:
    from accounts.models import User
    from endpoints.models import Endpoint

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Line:
    """One ledger row to post: `credits` signed (negative spends, positive adds)."""

    token_type: str
    credits: Decimal
    tokens: int = 0
    rate: Decimal = ZERO
    estimated: bool = False  # the token count is a tokenizer's, not the provider's


@dataclass(frozen=True, slots=True)
class Posting:
    """What every row of one posting shares."""

    context: str
    conversation_id: uuid.UUID | None = None
    message_id: uuid.UUID | None = None
    endpoint: Endpoint | None = None
    model: str = ""
    reason: str = ""
    created_by_id: int | None = None
    role_id: int | None = None  # the role the row is written under (default: the user's)


def post(
    *,
    user: User,
    lines: list[Line],
    posting: Posting,
    release: uuid.UUID | None = None,
    refilled: bool = False,
    now: dt.datetime | None = None,
) -> list[Transaction]:
    """Write `lines` to the ledger and move the user's balance by their sum, in one transaction;
    with `release`, also settle that call's hold (a call that was already settled, or never held
    anything, releases nothing). `refilled`: the posting is an auto-refill (the balance records
    when). Opens the user's balance first when it has none. Returns the rows written."""
    now = now or timezone.now()
    rows = [_row(user, line, posting, now) for line in lines]
    amount = sum((line.credits for line in lines), ZERO)
    written = _post(user.pk, rows, amount, release, refilled, now)
    if written is None:  # no balance yet (a user created without signals): open it and post again
        open_balance(user=user, now=now)
        written = _post(user.pk, rows, amount, release, refilled, now)
        assert written is not None, "the balance row was just created"
    return written


def _post(
    user_id: int, rows: list[Transaction], amount: Decimal, release: uuid.UUID | None, refilled: bool,
    now: dt.datetime,
) -> list[Transaction] | None:
    if connection.vendor == "postgresql":
        return _post_in_one_statement(user_id, rows, amount, release, refilled, now)
    with transaction.atomic():
        released = ZERO
        if release is not None:
            held = Hold.objects.filter(call=release, user_id=user_id)
            released = held.aggregate(total=Sum("credits"))["total"] or ZERO
            held.delete()
        extra = {"last_refill_at": now} if refilled else {}
        moved = Balance.objects.filter(user_id=user_id).update(
            credits=F("credits") + amount, held=F("held") - released, updated_at=now, **extra
        )
        if not moved:
            transaction.set_rollback(True)
            return None
        return Transaction.objects.bulk_create(rows) if rows else []


_COLUMNS = (
    "user_id", "role_id", "conversation_id", "message_id", "endpoint_id", "endpoint_name", "model", "token_type",
    "tokens", "rate", "credits", "context", "estimated", "reason", "created_by_id", "created_at",
)
_ROW = (
    "(%s::bigint, %s::bigint, %s::uuid, %s::uuid, %s::bigint, %s::varchar, %s::varchar, %s::varchar, "
    "%s::bigint, %s::numeric, %s::numeric, %s::varchar, %s::boolean, %s::text, %s::bigint, %s::timestamptz)"
)


def _post_in_one_statement(
    user_id: int, rows: list[Transaction], amount: Decimal, release: uuid.UUID | None, refilled: bool,
    now: dt.datetime,
) -> list[Transaction] | None:
    """`_post` on PostgreSQL as one data-modifying statement (its own transaction in autocommit).
    The hold is deleted before the balance row is locked (the UPDATE reads what the DELETE
    returned), the order every writer of both tables keeps; a concurrent second release of the same
    call finds the hold gone and takes nothing off `held`. Rows are written only when the balance
    row exists; None when it does not."""
    params: list[Any] = [release, user_id, amount, now, now if refilled else None, user_id]
    sql = """
        WITH gone AS (
            DELETE FROM billing_hold WHERE call = %s::uuid AND user_id = %s RETURNING credits
        ), moved AS (
            UPDATE billing_balance
            SET credits = credits + %s::numeric,
                held = held - (SELECT COALESCE(SUM(credits), 0) FROM gone),
                updated_at = %s,
                last_refill_at = COALESCE(%s::timestamptz, last_refill_at)
            WHERE user_id = %s RETURNING id
        )
    """
    if rows:
        for row in rows:
            params.extend(getattr(row, column) for column in _COLUMNS)
        sql += f"""
            INSERT INTO billing_transaction ({", ".join(_COLUMNS)})
            SELECT * FROM (VALUES {", ".join([_ROW] * len(rows))}) AS v WHERE EXISTS (SELECT 1 FROM moved)
            RETURNING id
        """
    else:
        sql += "SELECT id FROM moved"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [pk for (pk,) in cursor.fetchall()]
    if not ids:
        return None
    if not rows:
        return []
    for row, pk in zip(rows, ids, strict=True):
        row.pk = pk
        row._state.adding = False
        row._state.db = connection.alias
    return rows


def _row(user: User, line: Line, posting: Posting, now: dt.datetime) -> Transaction:
    endpoint = posting.endpoint
    return Transaction(
        user_id=user.pk,
        role_id=posting.role_id or user.role_id,
        conversation_id=posting.conversation_id,
        message_id=posting.message_id,
        endpoint_id=endpoint.pk if endpoint is not None else None,
        endpoint_name=endpoint.name if endpoint is not None else "",
        model=posting.model,
        token_type=line.token_type,
        tokens=line.tokens,
        rate=line.rate,
        credits=line.credits,
        context=posting.context,
        estimated=line.estimated,
        reason=posting.reason,
        created_by_id=posting.created_by_id,
        created_at=now,
    )


def open_balance(*, user: User, now: dt.datetime | None = None) -> Balance:
    """The user's Balance, opened on first use at zero and then given the role's start balance as a
    posting of its own (so the balance equals the sum of its transactions from the start)."""
    existing = Balance.objects.filter(user=user).first()
    if existing is not None:
        return existing
    from accounts.models import Role

    now = now or timezone.now()
    role = user.role if user.role is not None else Role.objects.default()
    start = quantize(role.start_balance)
    with transaction.atomic():
        balance, created = Balance.objects.get_or_create(user=user, defaults={"credits": ZERO, "last_refill_at": now})
        if created and start:
            post(
                user=user,
                lines=[Line(token_type=TokenType.ADJUSTMENT, credits=start)],
                posting=Posting(context=Context.START, reason=f"Start balance of role {role.name}", role_id=role.pk),
                now=now,
            )
            balance.credits = start
    return balance
