"""Billing's workflows: start balance, admission (the pre-call check), recording usage, refills,
adjustments.

Each builds ledger lines and hands them to `billing.ledger.post`, the one function that moves
credits; admission places the call's hold through `billing.holds`.

Functions take `now` so tests and jobs can control time; it defaults to the current time.
"""
from __future__ import annotations

import calendar
import datetime as dt
import uuid
from collections.abc import Collection
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import IntervalUnit, Role
from billing import holds
from billing.ledger import Line, Posting, open_balance, post
from billing.models import Balance, Context, TokenType, Transaction
from billing.pricing import Currency, Rates, completion_cost, format_credits, price, prompt_cost, quantize
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
            when = next_refill_at.astimezone(dt.UTC)
            text += f" Your balance is refilled next at {when:%Y-%m-%d %H:%M} UTC."
        else:
            text += " Ask an administrator to add credits."
        super().__init__(text)


# --- policy helpers --------------------------------------------------------------------------------


def role_of(user: User) -> Role:
    return user.role if user.role is not None else Role.objects.default()


def add_interval(moment: dt.datetime, value: int, unit: str) -> dt.datetime:
    """`moment` plus `value` units; months are calendar months (Jan 31 + 1 month = Feb 28/29)."""
    if unit == IntervalUnit.MONTHS:
        month_index = moment.month - 1 + value
        year, month = moment.year + month_index // 12, month_index % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)
    seconds: dict[str, int] = {
        IntervalUnit.SECONDS: 1,
        IntervalUnit.MINUTES: 60,
        IntervalUnit.HOURS: 3600,
        IntervalUnit.DAYS: 86400,
        IntervalUnit.WEEKS: 604800,
    }
    return moment + dt.timedelta(seconds=value * seconds[unit])


def next_refill_at(balance: Balance, role: Role) -> dt.datetime | None:
    """When the next auto-refill is due, or None when the role has no auto-refill."""
    if not (role.balance_enabled and role.auto_refill_enabled and role.refill_amount > 0):
        return None
    if role.refill_interval_value < 1:
        return None
    return add_interval(
        balance.last_refill_at or balance.created_at, role.refill_interval_value, role.refill_interval_unit
    )


def rates_for(*, endpoint: Endpoint | None, model: str) -> Rates:
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
    if configured is not None and configured.prompt_rate is not None and configured.completion_rate is not None:
        return Rates.of(  # (configured.has_rates)
            prompt=configured.prompt_rate,
            completion=configured.completion_rate,
            cache_read=configured.cache_read_rate,
            cache_write=configured.cache_write_rate,
        )
    return Rates.resolve(None, PortalSettings.load())


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or timezone.now()


# --- the ledger --------------------------------------------------------------------------------------


def ensure_balance(*, user: User, now: dt.datetime | None = None) -> Balance:
    """The user's Balance, created on first use with the role's start balance (see ledger.open_balance)."""
    return open_balance(user=user, now=now)


def refill_if_due(*, user: User, now: dt.datetime | None = None) -> Transaction | None:
    """Apply the role's auto-refill when its interval has elapsed since the last one (once, however
    many intervals were missed, as LibreChat does). Returns the refill transaction, if any."""
    now = _now(now)
    role = role_of(user)
    balance = ensure_balance(user=user, now=now)
    due = next_refill_at(balance, role)
    if due is None or due > now:
        return None
    with transaction.atomic():
        locked = Balance.objects.select_for_update().get(pk=balance.pk)
        due = next_refill_at(locked, role)
        if due is None or due > now:  # another worker refilled meanwhile
            return None
        amount = quantize(role.refill_amount)
        reason = f"Auto-refill of role {role.name} (every {role.refill_interval_value} {role.refill_interval_unit})"
        (row,) = post(
            user=user,
            lines=[Line(token_type=TokenType.REFILL, credits=amount)],
            posting=Posting(context=Context.REFILL, reason=reason, role_id=role.pk),
            refilled=True,
            now=now,
        )
        return row


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


def check_balance(
    *,
    user: User,
    endpoint: Endpoint | None,
    model: str,
    prompt_tokens: int,
    max_completion_tokens: int | None = None,
    call: uuid.UUID | None = None,
    now: dt.datetime | None = None,
    rates: Rates | None = None,
) -> uuid.UUID | None:
    """Admission: call before every upstream request. No-op (returns None) when the role's balance
    is disabled. Otherwise returns the id of the call's hold, or raises InsufficientBalance.

    The rule (SPEC §4): a call is admitted when the balance less the holds of the user's calls
    still running is positive and covers the call's estimated prompt cost. An admitted call holds
    its prompt estimate plus the cost of its whole answer budget (`max_completion_tokens`, which the
    caller then sends as the answer's limit) until its usage is posted (`record_usage(release=…)`).
    Every admitted call was covered, prompt included, by credits nobody else holds, and each spends
    at most what it holds (its answer cannot outgrow the budget); so the balance can go below zero
    only by the completion of the last call admitted — one completion, however many run at once.
    The estimate is a tokenizer's count, so a provider counting more prompt tokens moves the bound
    by that difference.

    A due auto-refill is applied first when admission would refuse (and after admitting, when the
    balance shows it due): once an interval, never on the way of the common case, which is one
    statement. `call`: the id to hold under (a fresh one by default). `rates`: what `rates_for`
    returns, when the caller has it already (the chat turn keeps it in its configuration cache)."""
    role = role_of(user)
    if not role.balance_enabled:
        return None
    now = _now(now)
    rates = rates if rates is not None else rates_for(endpoint=endpoint, model=model)
    estimate = prompt_cost(prompt_tokens, rates)
    hold = estimate + completion_cost(max_completion_tokens or 0, rates)
    call = call or uuid.uuid4()
    admitted = holds.admit(user_id=user.pk, call=call, model=model, estimate=estimate, hold=hold, now=now)
    if admitted is not None:
        if _refill_due(admitted, role, now):
            refill_if_due(user=user, now=now)
        return call
    # Refused at first sight: open a missing balance, apply a due refill, drop the holds of calls
    # that died, and ask once more.
    balance = ensure_balance(user=user, now=now)
    refill_if_due(user=user, now=now)
    holds.release_expired(user=user, now=now)
    admitted = holds.admit(user_id=user.pk, call=call, model=model, estimate=estimate, hold=hold, now=now)
    if admitted is not None:
        return call
    balance.refresh_from_db(fields=["credits", "held", "last_refill_at"])
    raise InsufficientBalance(
        balance=balance.credits,
        available=balance.credits - balance.held,
        prompt_tokens=prompt_tokens,
        estimated_cost=estimate,
        currency=Currency.from_settings(PortalSettings.load()),
        next_refill_at=next_refill_at(balance, role),
    )


def _refill_due(admitted: holds.Admitted, role: Role, now: dt.datetime) -> bool:
    if not (role.auto_refill_enabled and role.refill_amount > 0 and role.refill_interval_value >= 1):
        return False
    since = admitted.last_refill_at or admitted.created_at
    return add_interval(since, role.refill_interval_value, role.refill_interval_unit) <= now


def record_usage(
    *,
    user: User,
    endpoint: Endpoint | None,
    model: str,
    usage: Usage,
    context: str,
    conversation: Conversation | None = None,
    message: Message | None = None,
    estimated: bool | Collection[str] = False,
    now: dt.datetime | None = None,
    rates: Rates | None = None,
    release: uuid.UUID | None = None,
) -> list[Transaction]:
    """Bill one upstream call: one Transaction per non-zero token type (tokens, the rate used,
    negative credits) and the Balance moved by their sum, in one database transaction that also
    settles the call's hold (`release`: the id check_balance returned; None when it held nothing).
    `estimated`: True when every count is a tokenizer's, or the token types whose counts are (the
    provider reported the others). Returns the rows written. `rates`: as for check_balance."""
    if context not in USAGE_CONTEXTS:
        raise BillingError(
            f"Unknown usage context {context!r} (expected one of: {', '.join(sorted(USAGE_CONTEXTS))})."
        )
    try:
        lines = price(usage, rates if rates is not None else rates_for(endpoint=endpoint, model=model))
    except ValueError as exc:
        raise BillingError(str(exc)) from exc
    conversation_id = conversation.pk if conversation is not None else (message.conversation_id if message else None)
    posting = Posting(
        context=context,
        conversation_id=conversation_id,
        message_id=message.pk if message is not None else None,
        endpoint=endpoint,
        model=model,
    )
    def guessed(token_type: str) -> bool:
        return estimated if isinstance(estimated, bool) else token_type in estimated
    return post(
        user=user,
        lines=[
            Line(token_type=line.token_type, credits=-line.credits, tokens=line.tokens, rate=line.rate,
                 estimated=guessed(line.token_type))
            for line in lines
        ],
        posting=posting,
        release=release,
        now=now,
    )


def adjust_balance(
    *, user: User, credits: Decimal, reason: str, by: User | None, now: dt.datetime | None = None
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
    (row,) = post(
        user=user,
        lines=[Line(token_type=TokenType.ADJUSTMENT, credits=amount)],
        posting=Posting(context=Context.ADJUSTMENT, reason=reason, created_by_id=by.pk if by is not None else None),
        now=now,
    )
    return row
