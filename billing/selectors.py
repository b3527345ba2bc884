"""Reads of the ledger for the UI, the REST API and the admin. Every user-facing read is scoped to
its owner; every aggregate is one SQL query (GROUP BY), never a Python loop over transactions."""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.models import Role
from billing.models import Balance, Hold, TokenType, Transaction
from billing.pricing import Currency, format_credits
from billing.services import next_refill_at, role_of
from portal.models import PortalSettings

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from accounts.models import User

USAGE_TYPES = (TokenType.PROMPT, TokenType.COMPLETION, TokenType.CACHE_READ, TokenType.CACHE_WRITE)
ZERO = Decimal(0)


def display_currency() -> Currency:
    """The portal's display currency (`interface.currency`)."""
    return Currency.from_settings(PortalSettings.load())


def token_sums() -> dict[str, Any]:
    """Aggregates: tokens per usage type, the cost (positive credits) and whether any row was
    estimated, for `.annotate()` / `.aggregate()`."""
    sums: dict[str, Any] = {
        f"{kind}_tokens": Coalesce(Sum("tokens", filter=Q(token_type=kind)), 0) for kind in USAGE_TYPES
    }
    sums["spent"] = Coalesce(-Sum("credits"), ZERO)
    sums["estimated_rows"] = Count("pk", filter=Q(estimated=True))
    return sums


@dataclass(frozen=True)
class UsageTotals:
    """Tokens by type and cost of one message, conversation or report row."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    credits: Decimal = ZERO  # cost, positive
    cost: str = ""  # the cost in the display currency, formatted
    estimated: bool = False  # some of it was counted with a tokenizer (provider reported no usage)

    @property
    def credits_display(self) -> str:
        return format_credits(self.credits)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens + self.cache_read_tokens + self.cache_write_tokens

    @classmethod
    def from_row(cls, row: Mapping[str, Any], currency: Currency) -> UsageTotals:
        credits = row.get("spent") or ZERO
        return cls(
            prompt_tokens=row.get("prompt_tokens") or 0,
            completion_tokens=row.get("completion_tokens") or 0,
            cache_read_tokens=row.get("cache_read_tokens") or 0,
            cache_write_tokens=row.get("cache_write_tokens") or 0,
            credits=credits,
            cost=currency.format(credits),
            estimated=bool(row.get("estimated_rows")),
        )


# --- balance ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceSummary:
    enabled: bool  # the role's balance is enforced
    credits: Decimal
    available: Decimal  # credits less holds of requests in flight
    display: str  # credits in the display currency, formatted
    credits_display: str  # '1,234,567'
    currency_code: str
    auto_refill: bool
    refill_amount: Decimal
    next_refill_at: dt.datetime | None


def balance_summary(*, user: User, now: dt.datetime | None = None) -> BalanceSummary:
    """The user's balance as the UI and API show it."""
    from billing.services import ensure_balance

    now = now or timezone.now()
    balance: Balance = ensure_balance(user=user)
    role = role_of(user)
    # holds of calls still running (those of calls that died go at the next admission)
    dead = Hold.objects.filter(user=user, expires_at__lte=now).values_list("credits", flat=True)
    held = balance.held - sum(dead, ZERO)
    currency = display_currency()
    refill_at = next_refill_at(balance, role)
    return BalanceSummary(
        enabled=role.balance_enabled,
        credits=balance.credits,
        available=balance.credits - held,
        display=currency.format(balance.credits),
        credits_display=format_credits(balance.credits),
        currency_code=currency.code,
        auto_refill=refill_at is not None,
        refill_amount=role.refill_amount if refill_at is not None else ZERO,
        next_refill_at=refill_at,
    )


# --- usage per message and conversation ------------------------------------------------------------


def message_usage(*, user: User, message_ids: Iterable[uuid.UUID | str]) -> dict[uuid.UUID, UsageTotals]:
    """Tokens by type and cost of each of the user's messages (one query, for a whole thread)."""
    ids = list(message_ids)
    if not ids:
        return {}
    currency = display_currency()
    rows = (
        Transaction.objects.filter(user=user, message_id__in=ids, token_type__in=USAGE_TYPES)
        .order_by()
        .values("message_id")
        .annotate(**token_sums())
    )
    return {row["message_id"]: UsageTotals.from_row(row, currency) for row in rows}


@dataclass(frozen=True)
class ConversationUsage:
    total: UsageTotals
    titles: UsageTotals  # title generation, included in total
    messages: dict[uuid.UUID, UsageTotals] = field(default_factory=dict)


def conversation_usage(*, user: User, conversation_id: uuid.UUID | str) -> ConversationUsage:
    """Totals of one of the user's conversations, with the title calls and each message's share."""
    currency = display_currency()
    base = Transaction.objects.filter(user=user, conversation_id=conversation_id, token_type__in=USAGE_TYPES)
    total = base.aggregate(**token_sums())
    titles = base.filter(context="title").aggregate(**token_sums())
    per_message = (
        base.filter(message_id__isnull=False).order_by().values("message_id").annotate(**token_sums())
    )
    return ConversationUsage(
        total=UsageTotals.from_row(total, currency),
        titles=UsageTotals.from_row(titles, currency),
        messages={row["message_id"]: UsageTotals.from_row(row, currency) for row in per_message},
    )


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    created_at: dt.datetime
    token_type: str
    context: str
    tokens: int
    rate: Decimal
    credits: Decimal  # signed
    amount: str  # signed, display currency
    model: str
    endpoint_name: str
    conversation_id: uuid.UUID | None
    message_id: uuid.UUID | None
    estimated: bool
    reason: str


def usage_history(*, user: User, limit: int = 50, before_id: int | None = None) -> list[LedgerEntry]:
    """The user's ledger, newest first, `limit` rows at a time (pass the last id as `before_id`
    for the next page)."""
    currency = display_currency()
    rows = Transaction.objects.filter(user=user).order_by("-id")
    if before_id is not None:
        rows = rows.filter(id__lt=before_id)
    fields = (
        "id", "created_at", "token_type", "context", "tokens", "rate", "credits", "model", "endpoint_name",
        "conversation_id", "message_id", "estimated", "reason",
    )
    return [
        LedgerEntry(amount=currency.format(row["credits"]), **row)
        for row in rows.values(*fields)[: max(1, min(limit, 500))]
    ]


def usage_by_day(
    *, user: User, start: dt.date | None = None, end: dt.date | None = None
) -> list[tuple[dt.date, UsageTotals]]:
    """The user's usage per day (the portal's time zone) between `start` and `end` inclusive,
    oldest first: one GROUP BY query."""
    currency = display_currency()
    day = TruncDate("created_at", tzinfo=timezone.get_current_timezone())
    rows = (
        usage_rows(start, end).filter(user=user).order_by().annotate(day=day)
        .values("day").annotate(**token_sums()).order_by("day")
    )
    return [(row["day"], UsageTotals.from_row(row, currency)) for row in rows]


# --- admin reports ---------------------------------------------------------------------------------

REPORT_GROUPS = {
    "user": "user",
    "role": "role",
    "endpoint": "endpoint",
    "model": "model",
    "day": "day",
}


@dataclass(frozen=True)
class ReportRow:
    key: Any  # user id, role id, endpoint name, model name or date
    label: str
    usage: UsageTotals


def usage_report(
    *, group_by: str, start: dt.date | None = None, end: dt.date | None = None
) -> tuple[list[ReportRow], UsageTotals]:
    """Usage by user, role, endpoint, model or day between `start` and `end` (inclusive dates in
    the portal's time zone): one GROUP BY query, then one lookup of the labels of the keys found."""
    if group_by not in REPORT_GROUPS:
        raise ValueError(f"Unknown report grouping {group_by!r} (one of: {', '.join(REPORT_GROUPS)}).")
    currency = display_currency()
    rows = usage_rows(start, end)
    tz = timezone.get_current_timezone()
    key = {
        "user": F("user_id"),
        "role": F("role_id"),
        "endpoint": F("endpoint_name"),
        "model": F("model"),
        "day": TruncDate("created_at", tzinfo=tz),
    }[group_by]
    grouped = cast(  # (the stubs see the values() keys, not the annotations after them)
        list[dict[str, Any]],
        list(rows.order_by().annotate(key=key).values("key").annotate(**token_sums()).order_by("key")),
    )
    labels = report_labels(group_by, [row["key"] for row in grouped])
    report = [ReportRow(row["key"], labels.get(row["key"], ""), UsageTotals.from_row(row, currency)) for row in grouped]
    totals = {
        name: sum((row[name] for row in grouped), ZERO if name == "spent" else 0)
        for name in ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "spent",
                     "estimated_rows")
    }
    return report, UsageTotals.from_row(totals, currency)


def usage_rows(start: dt.date | None, end: dt.date | None) -> QuerySet[Transaction]:
    """The usage transactions (not refills or adjustments) between `start` and `end`, inclusive
    dates in the portal's time zone: what every report and the dashboard aggregate."""
    rows = Transaction.objects.filter(token_type__in=USAGE_TYPES)
    tz = timezone.get_current_timezone()
    if start is not None:
        rows = rows.filter(created_at__gte=dt.datetime.combine(start, dt.time.min, tzinfo=tz))
    if end is not None:
        rows = rows.filter(created_at__lt=dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz))
    return rows


def report_labels(group_by: str, keys: list[Any]) -> dict[Any, str]:
    if group_by == "user":
        from accounts.models import User

        users = User.objects.filter(pk__in=[k for k in keys if k is not None]).only("username", "name", "email")
        return {user.pk: f"{user.username} ({user.email})" if user.email else user.username for user in users}
    if group_by == "role":
        return {role.pk: role.name for role in Role.objects.filter(pk__in=[k for k in keys if k is not None])}
    if group_by == "day":
        return {key: key.isoformat() for key in keys if key is not None}
    return {key: key or "(none)" for key in keys}
