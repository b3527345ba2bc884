"""Writes to the ledger: start balance, the pre-call check, recording usage, refills, adjustments.

Every function that moves credits does so in one database transaction that writes the Transaction
rows and changes the Balance with an atomic `UPDATE … SET credits = credits ± x` (the database
serialises concurrent updates of the row; there is no read-modify-write), so the Balance always
equals the sum of the user's transactions, under any concurrency.

Functions take `now` so tests and jobs can control time; it defaults to the current time.
"""
from __future__ import annotations

import calendar
import contextlib
import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Subquery, Sum
from django.utils import timezone

from accounts.models import IntervalUnit, Role
from billing.models import Balance, Context, Hold, TokenType, Transaction
from billing.pricing import Currency, Rates, completion_cost, format_credits, prompt_cost, price, quantize, total
from endpoints.models import EndpointModel
from portal.models import PortalSettings

if TYPE_CHECKING:
    from accounts.models import User
    from chat.models import Conversation, Message
    from endpoints.adapters.types import Usage
    from endpoints.models import Endpoint

USAGE_CONTEXTS = {Context.MESSAGE, Context.TITLE, Context.ABORT, Context.GATEWAY}


class BillingError(Exception):
    """A billing request that cannot be carried out; str() is a message fit for the user."""


class InsufficientBalance(BillingError):
    """The balance cannot cover the estimated prompt cost of a request (no upstream call is made)."""

    def __init__(
        self,
        *,
        balance: Decimal,
        available: Decimal,
        prompt_tokens: int,
        estimated_cost: Decimal,
        currency: Currency,
        next_refill_at: dt.datetime | None = None,
    ) -> None:
        self.balance = balance
        self.available = available
        self.prompt_tokens = prompt_tokens
        self.estimated_cost = estimated_cost
        self.next_refill_at = next_refill_at
        held = balance - available
        text = (
            f"Insufficient balance: you have {format_credits(balance)} credits ({currency.format(balance)})"
        )
        if held > 0:
            text += (
                f", of which {format_credits(held)} are held by your requests still in progress"
                f" ({format_credits(available)} available)"
            )
        text += (
            f"; this request's prompt is {prompt_tokens:,} tokens, an estimated "
            f"{format_credits(estimated_cost)} credits ({currency.format(estimated_cost)})."
        )
        if next_refill_at is not None:
            when = next_refill_at.astimezone(dt.timezone.utc)
            text += f" Your balance is refilled next at {when:%Y-%m-%d %H:%M} UTC."
        else:
            text += " Ask an administrator to add credits."
        super().__init__(text)


# --- policy helpers --------------------------------------------------------------------------------


def role_of(user: "User") -> Role:
    return user.role if user.role_id else Role.objects.default()


def add_interval(moment: dt.datetime, value: int, unit: str) -> dt.datetime:
    """`moment` plus `value` units; months are calendar months (Jan 31 + 1 month = Feb 28/29)."""
    if unit == IntervalUnit.MONTHS:
        month_index = moment.month - 1 + value
        year, month = moment.year + month_index // 12, month_index % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)
    seconds = {
        IntervalUnit.SECONDS: 1,
        IntervalUnit.MINUTES: 60,
        IntervalUnit.HOURS: 3600,
        IntervalUnit.DAYS: 86400,
        IntervalUnit.WEEKS: 604800,
    }[unit]
    return moment + dt.timedelta(seconds=value * seconds)


def next_refill_at(balance: Balance, role: Role) -> dt.datetime | None:
    """When the next auto-refill is due, or None when the role has no auto-refill."""
    if not (role.balance_enabled and role.auto_refill_enabled and role.refill_amount > 0):
        return None
    if role.refill_interval_value < 1:
        return None
    return add_interval(balance.last_refill_at or balance.created_at, role.refill_interval_value, role.refill_interval_unit)


def rates_for(*, endpoint: "Endpoint | None", model: str) -> Rates:
    """The rates a call to `model` on `endpoint` is billed at (the portal's default rates when the
    model has none configured)."""
    configured = None
    if endpoint is not None:
        # only the rate columns, no ORDER BY: this runs on every billed call without cached rates
        configured = next(iter(
            EndpointModel.objects.filter(endpoint=endpoint, name=model)
            .only("prompt_rate", "completion_rate", "cache_read_rate", "cache_write_rate")
            .order_by()[:1]
        ), None)
    if configured is not None and configured.has_rates:
        return Rates.of(
            prompt=configured.prompt_rate,
            completion=configured.completion_rate,
            cache_read=configured.cache_read_rate,
            cache_write=configured.cache_write_rate,
        )
    return Rates.resolve(None, PortalSettings.load())


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or timezone.now()


# --- the ledger --------------------------------------------------------------------------------------


def ensure_balance(*, user: "User", now: dt.datetime | None = None) -> Balance:
    """The user's Balance, created on first use with the role's start balance (recorded as a
    start-balance transaction, so the balance equals the sum of transactions from the start)."""
    existing = Balance.objects.filter(user=user).first()
    if existing is not None:
        return existing
    now = _now(now)
    role = role_of(user)
    start = quantize(role.start_balance)
    with transaction.atomic():
        balance, created = Balance.objects.get_or_create(
            user=user, defaults={"credits": start, "last_refill_at": now}
        )
        if created and start:
            Transaction.objects.create(
                user=user,
                role=role,
                token_type=TokenType.ADJUSTMENT,
                context=Context.START,
                credits=start,
                reason=f"Start balance of role {role.name}",
                created_at=now,
            )
    return balance


def _move(user: "User", credits: Decimal, now: dt.datetime, **fields) -> int:
    """Add `credits` (signed) to the user's balance in the current transaction."""
    return Balance.objects.filter(user_id=user.pk).update(credits=F("credits") + credits, updated_at=now, **fields)


def refill_if_due(*, user: "User", now: dt.datetime | None = None) -> Transaction | None:
    """Apply the role's auto-refill when its interval has elapsed since the last one (once, however
    many intervals were missed, as LibreChat does). Returns the refill transaction, if any."""
    now = _now(now)
    role = role_of(user)
    balance = ensure_balance(user=user, now=now)
    due = next_refill_at(balance, role)
    if due is None or due > now:
        return None
    with transaction.atomic():
        return _refill_locked(Balance.objects.select_for_update().get(pk=balance.pk), role, now)


def _refill_locked(balance: Balance, role: Role, now: dt.datetime) -> Transaction | None:
    """The refill, if due, of a balance whose row the caller has locked (select_for_update)."""
    due = next_refill_at(balance, role)
    if due is None or due > now:  # not due, or another worker refilled meanwhile
        return None
    amount = quantize(role.refill_amount)
    Balance.objects.filter(pk=balance.pk).update(credits=F("credits") + amount, last_refill_at=now, updated_at=now)
    balance.credits += amount
    balance.last_refill_at = now
    return Transaction.objects.create(
        user_id=balance.user_id,
        role=role,
        token_type=TokenType.REFILL,
        context=Context.REFILL,
        credits=amount,
        reason=f"Auto-refill of role {role.name} (every {role.refill_interval_value} {role.refill_interval_unit})",
        created_at=now,
    )


def refill_due_balances(*, now: dt.datetime | None = None, batch: int = 500) -> int:
    """Refill every balance whose auto-refill is due (the Celery beat job). Returns how many."""
    now = _now(now)
    refilled = 0
    policies = Role.objects.filter(
        balance_enabled=True, auto_refill_enabled=True, refill_amount__gt=0, refill_interval_value__gte=1
    )
    for role in policies:
        # A cut-off a little loose for calendar months; refill_if_due checks each balance exactly.
        cutoff = now - (add_interval(now, role.refill_interval_value, role.refill_interval_unit) - now)
        if role.refill_interval_unit == IntervalUnit.MONTHS:
            cutoff += dt.timedelta(days=4)
        candidates = (
            Balance.objects.filter(user__role=role)
            .filter(Q(last_refill_at__lte=cutoff) | Q(last_refill_at__isnull=True, created_at__lte=cutoff))
            .select_related("user__role")
            .order_by("pk")
        )
        last_pk = 0
        while True:
            chunk = list(candidates.filter(pk__gt=last_pk)[:batch])
            if not chunk:
                break
            for balance in chunk:
                if refill_if_due(user=balance.user, now=now) is not None:
                    refilled += 1
            last_pk = chunk[-1].pk
    return refilled


def release_holds(*, balance: Balance, now: dt.datetime) -> None:
    """Delete expired holds and the oldest `released_holds` ones (calls recorded since the last
    check). Call with the balance row locked (select_for_update), so no record is counted twice."""
    stale = Q(expires_at__lte=now)
    if balance.released_holds:
        oldest = Hold.objects.filter(user_id=balance.user_id).order_by("created_at", "pk").values("pk")
        stale |= Q(pk__in=Subquery(oldest[: balance.released_holds]))
    Hold.objects.filter(stale, user_id=balance.user_id).delete()
    if balance.released_holds:
        Balance.objects.filter(pk=balance.pk).update(released_holds=0)
        balance.released_holds = 0


def check_balance(
    *,
    user: "User",
    endpoint: "Endpoint | None",
    model: str,
    prompt_tokens: int,
    max_completion_tokens: int | None = None,
    now: dt.datetime | None = None,
    rates: Rates | None = None,
) -> None:
    """Call before every upstream request. No-op when the role's balance is disabled. Otherwise
    applies a due auto-refill, then raises InsufficientBalance when the available balance (the
    balance less the holds of the user's requests still in flight) cannot cover the estimated
    prompt cost. An admitted request holds its prompt estimate (plus the cost of
    `max_completion_tokens`, when the caller knows it) until `record_usage` releases it, so
    concurrent requests cannot spend the same credits twice. `rates`: what `rates_for` returns,
    when the caller has it already (the chat turn keeps it in its configuration cache)."""
    role = role_of(user)
    if not role.balance_enabled:
        return
    now = _now(now)
    rates = rates if rates is not None else rates_for(endpoint=endpoint, model=model)
    estimate = prompt_cost(prompt_tokens, rates)
    hold = estimate + completion_cost(max_completion_tokens or 0, rates)
    if _can_admit_in_one_trip(role):
        admitted = _admit_in_one_trip(user, model=model, estimate=estimate, hold=hold, now=now)
        if admitted is not None:
            credits, available = admitted
            if available <= 0 or available < estimate:
                raise InsufficientBalance(
                    balance=credits,
                    available=available,
                    prompt_tokens=prompt_tokens,
                    estimated_cost=estimate,
                    currency=Currency.from_settings(PortalSettings.load()),
                    next_refill_at=None,  # the role has no auto-refill (_can_admit_in_one_trip)
                )
            return
    refused: InsufficientBalance | None = None
    with transaction.atomic():  # the refill and released holds commit even when the call is refused
        balance = Balance.objects.select_for_update().filter(user=user).first()
        if balance is None:
            ensure_balance(user=user, now=now)
            balance = Balance.objects.select_for_update().get(user=user)
        _refill_locked(balance, role, now)
        release_holds(balance=balance, now=now)
        held = Hold.objects.filter(user=user).aggregate(total=Sum("credits"))["total"] or Decimal(0)
        available = balance.credits - held
        if available <= 0 or available < estimate:
            refused = InsufficientBalance(
                balance=balance.credits,
                available=available,
                prompt_tokens=prompt_tokens,
                estimated_cost=estimate,
                currency=Currency.from_settings(PortalSettings.load()),
                next_refill_at=next_refill_at(balance, role),
            )
        elif hold > 0:
            Hold.objects.create(
                user=user,
                model=model,
                credits=hold,
                created_at=now,
                expires_at=now + dt.timedelta(seconds=settings.BILLING_HOLD_SECONDS),
            )
    if refused is not None:
        raise refused


def _can_admit_in_one_trip(role: Role) -> bool:
    """The one-trip admission (PostgreSQL) when it does exactly what the general path does: no
    auto-refill to apply (its due date is calendar arithmetic, done in Python), outside any
    transaction (it brackets its own), and a client-side-binding cursor (several statements in one
    query)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    refills = role.auto_refill_enabled and role.refill_amount > 0 and role.refill_interval_value >= 1
    return not refills


_ADMIT_SQL = """
    BEGIN;
    SELECT 1 FROM billing_balance WHERE user_id = %(user)s FOR UPDATE;
    WITH bal AS (
        SELECT credits, released_holds FROM billing_balance WHERE user_id = %(user)s
    ), gone AS (
        DELETE FROM billing_hold
        WHERE user_id = %(user)s AND (
            expires_at <= %(now)s
            OR id IN (
                SELECT id FROM billing_hold WHERE user_id = %(user)s ORDER BY created_at, id
                LIMIT COALESCE((SELECT released_holds FROM bal), 0)
            )
        )
        RETURNING credits
    ), reset AS (
        UPDATE billing_balance SET released_holds = 0 WHERE user_id = %(user)s AND released_holds > 0 RETURNING 1
    ), held AS (
        SELECT (SELECT COALESCE(SUM(credits), 0) FROM billing_hold WHERE user_id = %(user)s)
             - (SELECT COALESCE(SUM(credits), 0) FROM gone) AS total
    ), admitted AS (
        INSERT INTO billing_hold (user_id, model, credits, created_at, expires_at)
        SELECT %(user)s, %(model)s, %(hold)s::numeric, %(now)s, %(expires)s FROM bal, held
        WHERE %(hold)s::numeric > 0 AND bal.credits - held.total > 0 AND bal.credits - held.total >= %(estimate)s::numeric
        RETURNING 1
    )
    SELECT bal.credits, bal.credits - held.total, (SELECT count(*) FROM reset), (SELECT count(*) FROM admitted)
    FROM bal, held;
    COMMIT;
"""


def _admit_in_one_trip(
    user: "User", *, model: str, estimate: Decimal, hold: Decimal, now: dt.datetime
) -> tuple[Decimal, Decimal] | None:
    """check_balance's admission on PostgreSQL in one round trip: lock the balance row, release
    expired holds and the ones recorded calls gave back, and add this call's hold if the balance
    less the remaining holds covers the estimate — the same steps as the general path, sent as one
    query of four statements. The row lock is taken by a statement of its own, so the statement that
    reads the holds starts after it (READ COMMITTED: with a fresh snapshot that includes every hold
    committed by whoever held the lock before). Returns (balance, available), or None when the user
    has no balance row yet or the cursor cannot send several statements (the general path then runs)."""
    import psycopg

    params = {
        "user": user.pk, "now": now, "model": model[:200], "hold": hold, "estimate": estimate,
        "expires": now + dt.timedelta(seconds=settings.BILLING_HOLD_SECONDS),
    }
    with connection.cursor() as cursor:
        if not isinstance(cursor.cursor, psycopg.ClientCursor):
            return None
        try:
            cursor.execute(_ADMIT_SQL, params)
            row = None
            while True:
                if cursor.cursor.description is not None and len(cursor.cursor.description) == 4:
                    row = cursor.fetchone()
                if not cursor.cursor.nextset():
                    break
        except BaseException:
            with contextlib.suppress(Exception):
                cursor.cursor.connection.rollback()
            raise
    if row is None:
        return None
    return Decimal(row[0]), Decimal(row[1])


def record_usage(
    *,
    user: "User",
    endpoint: "Endpoint | None",
    model: str,
    usage: "Usage",
    context: str,
    conversation: "Conversation | None" = None,
    message: "Message | None" = None,
    estimated: bool = False,
    now: dt.datetime | None = None,
    rates: Rates | None = None,
    release_hold: bool = True,
) -> list[Transaction]:
    """Bill one upstream call: one Transaction per non-zero token type (tokens, the rate used,
    negative credits) and the Balance moved by their sum, in one database transaction. Releases one
    hold of the user's balance check (the oldest, at the next check) unless `release_hold` is false
    (the caller knows the call's hold has expired already). Returns the rows written.
    `rates`: as for check_balance."""
    if context not in USAGE_CONTEXTS:
        raise BillingError(
            f"Unknown usage context {context!r} (expected one of: {', '.join(sorted(USAGE_CONTEXTS))})."
        )
    try:
        lines = price(usage, rates if rates is not None else rates_for(endpoint=endpoint, model=model))
    except ValueError as exc:
        raise BillingError(str(exc)) from exc
    now = _now(now)
    conversation_id = conversation.pk if conversation is not None else (message.conversation_id if message else None)
    rows = [
        Transaction(
            user_id=user.pk,
            role_id=user.role_id,
            conversation_id=conversation_id,
            message_id=message.pk if message is not None else None,
            endpoint_id=endpoint.pk if endpoint is not None else None,
            endpoint_name=endpoint.name if endpoint is not None else "",
            model=model,
            token_type=line.token_type,
            tokens=line.tokens,
            rate=line.rate,
            credits=-line.credits,
            context=context,
            estimated=estimated,
            created_at=now,
        )
        for line in lines
    ]
    released = 1 if release_hold else 0
    if connection.vendor == "postgresql":
        written = _record_in_one_statement(user, rows, total(lines), now, released)
        if written is None:  # no balance yet (a user created without signals): open it and retry
            ensure_balance(user=user, now=now)
            written = _record_in_one_statement(user, rows, total(lines), now, released)
        return written or []
    with transaction.atomic():
        if not _move(user, -total(lines), now, released_holds=F("released_holds") + released):
            ensure_balance(user=user, now=now)
            _move(user, -total(lines), now, released_holds=F("released_holds") + released)
        return Transaction.objects.bulk_create(rows) if rows else []


_COLUMNS = (
    "user_id", "role_id", "conversation_id", "message_id", "endpoint_id", "endpoint_name", "model", "token_type",
    "tokens", "rate", "credits", "context", "estimated", "reason", "created_at",
)
_ROW = (
    "(%s::bigint, %s::bigint, %s::uuid, %s::uuid, %s::bigint, %s::varchar, %s::varchar, %s::varchar, "
    "%s::bigint, %s::numeric, %s::numeric, %s::varchar, %s::boolean, %s::text, %s::timestamptz)"
)


def _record_in_one_statement(
    user: "User", rows: list[Transaction], cost: Decimal, now: dt.datetime, released: int = 1
) -> list[Transaction] | None:
    """PostgreSQL: move the balance, count the released hold and write the rows in ONE statement
    (a data-modifying CTE, its own transaction in autocommit): one round trip and one commit on
    the hot path of every call. The UPDATE takes the balance row lock, so concurrent calls add up;
    rows are only written when the balance row exists. Returns None when it does not."""
    params: list = [cost, released, now, user.pk]
    for row in rows:
        params.extend(getattr(row, column) for column in _COLUMNS)
    sql = """
        WITH moved AS (
            UPDATE billing_balance
            SET credits = credits - %s, released_holds = released_holds + %s, updated_at = %s
            WHERE user_id = %s RETURNING id
        )
    """
    if rows:
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
    for row, pk in zip(rows, ids):
        row.pk = pk
        row._state.adding = False
        row._state.db = connection.alias
    return rows


def adjust_balance(
    *, user: "User", credits: Decimal, reason: str, by: "User | None", now: dt.datetime | None = None
) -> Transaction:
    """An administrator's correction: adds (or, negative, removes) credits, with a reason and
    who made it, as an adjustment transaction."""
    try:
        amount = Decimal(credits)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise BillingError(f"{credits!r} is not a number of credits.") from exc
    if not amount.is_finite() or amount == 0:
        raise BillingError("An adjustment must add or remove a non-zero number of credits.")
    if amount != quantize(amount):
        raise BillingError("Credits have at most 6 decimal places (1 credit = 1 millionth of a USD).")
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("Give a reason for the adjustment (it is kept in the ledger).")
    now = _now(now)
    ensure_balance(user=user, now=now)
    with transaction.atomic():
        _move(user, amount, now)
        return Transaction.objects.create(
            user=user,
            role_id=user.role_id,
            token_type=TokenType.ADJUSTMENT,
            context=Context.ADJUSTMENT,
            credits=amount,
            reason=reason,
            created_by=by,
            created_at=now,
        )
