"""The admin's landing page: credits per day, top users, roles, endpoints and models, balances
running low, and each endpoint's health, for a chosen period.

The usage figures come from the usage report's aggregates (`billing.selectors`: the same rows, the
same sums, the same labels), read in two GROUP BY queries instead of five: one by (day, endpoint,
model), one by (user, role). Days, endpoints and models are folded from the first, users and roles
from the second, in Python over a few thousand groups at most — so the page costs two scans of the
period's ledger rows whatever it shows (bench/billing.py times it on a million rows).
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django.db import connection, transaction
from django.db.models import Count, F, Max, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing.models import Balance, Context, TokenType, Transaction
from billing.pricing import Currency, format_credits
from billing.selectors import UsageTotals, display_currency, report_labels, token_sums, usage_rows
from endpoints.models import Endpoint, UpstreamFailure

TOP = 5
SUM_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "spent",
    "estimated_rows",
)
# A balance is running low below this share of its role's start balance.
LOW_BALANCE_SHARE = Decimal("0.1")
# Calls that ended as the provider meant them to (a failed or stopped answer is billed as `abort`).
ANSWERED = (Context.MESSAGE, Context.TITLE, Context.GATEWAY)


@dataclass(frozen=True)
class Ranked:
    label: str
    usage: UsageTotals
    share: int  # percent of the period's credits, for the bar behind the row


@dataclass(frozen=True)
class Bar:
    """One day of the credits chart, in the SVG's coordinates (viewBox 0 0 WIDTH HEIGHT)."""

    day: dt.date
    usage: UsageTotals
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class LowBalance:
    user: str
    role: str
    credits: str
    amount: str
    start_balance: str


@dataclass(frozen=True)
class Health:
    endpoint: Endpoint
    answered: int  # calls billed in the period that ended normally
    failures: int
    error_rate: str  # '12.5%', or '—' without calls
    last_success_at: dt.datetime | None
    last_error: UpstreamFailure | None


@dataclass(frozen=True)
class Dashboard:
    start: dt.date
    end: dt.date
    totals: UsageTotals
    bars: list[Bar]
    chart_max: str  # the tallest day's cost, the chart's scale
    top_users: list[Ranked]
    top_roles: list[Ranked]
    top_endpoints: list[Ranked]
    top_models: list[Ranked]
    low_balances: list[LowBalance]
    health: list[Health]


def dashboard(*, start: dt.date, end: dt.date) -> Dashboard:
    currency = display_currency()
    by_day_endpoint_model, by_user_role = _aggregates(start, end)

    days = _fold(by_day_endpoint_model, "day")
    totals = UsageTotals.from_row(_sum(days.values()), currency)

    def top(folded: dict[Any, dict[str, Any]], labels: dict[Any, str] | None = None) -> list[Ranked]:
        return _ranked(folded, labels, totals.credits, currency)

    users, roles = _fold(by_user_role, "user_id"), _fold(by_user_role, "role_id")
    answered: dict[str, int] = defaultdict(int)
    for row in by_day_endpoint_model:
        answered[row["endpoint_name"]] += row["answered"]
    bars, chart_max = _bars(days, start, end, currency)
    return Dashboard(
        start=start,
        end=end,
        totals=totals,
        bars=bars,
        chart_max=currency.format(chart_max),
        top_users=top(users, report_labels("user", list(users))),
        top_roles=top(roles, report_labels("role", list(roles))),
        top_endpoints=top(_fold(by_day_endpoint_model, "endpoint_name")),
        top_models=top(_fold(by_day_endpoint_model, "model")),
        low_balances=low_balances(currency),
        health=endpoint_health(start=start, end=end, answered=answered),
    )


# PostgreSQL plans the (day, endpoint, model) grouping for the product of their distinct counts
# (tens of thousands of groups, where a few thousand exist) and, at the default 4 MB of work_mem,
# sorts the period's rows on disk instead of hashing them: twice as slow on a million-row ledger.
AGGREGATE_WORK_MEM = "32MB"


def _aggregates(start: dt.date, end: dt.date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = usage_rows(start, end).order_by()
    tz = timezone.get_current_timezone()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL work_mem = '{AGGREGATE_WORK_MEM}'")  # this transaction only
        by_day_endpoint_model = list(
            rows.annotate(day=TruncDate("created_at", tzinfo=tz))
            .values("day", "endpoint_name", "model")
            .annotate(**token_sums(), answered=Count("pk", filter=Q(token_type=TokenType.PROMPT, context__in=ANSWERED)))
        )
        by_user_role = list(rows.values("user_id", "role_id").annotate(**token_sums()))
    # (the stubs see the values() keys, not the annotations after them)
    return cast(list[dict[str, Any]], by_day_endpoint_model), cast(list[dict[str, Any]], by_user_role)


def _fold(rows: Iterable[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    """Sums of `rows` per value of `key` (exact: integers and Decimals)."""
    folded: dict[Any, dict[str, Any]] = {}
    for row in rows:
        into = folded.setdefault(row[key], dict.fromkeys(SUM_FIELDS, 0))
        for name in SUM_FIELDS:
            into[name] += row[name]
    return folded


def _sum(groups: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return _fold(({**group, "all": True} for group in groups), "all").get(True, dict.fromkeys(SUM_FIELDS, 0))


def _ranked(
    folded: dict[Any, dict[str, Any]], labels: dict[Any, str] | None, total: Decimal, currency: Currency
) -> list[Ranked]:
    best = sorted(folded.items(), key=lambda item: (-item[1]["spent"], str(item[0])))[:TOP]
    return [
        Ranked(
            label=(labels or {}).get(key) or (str(key) if key not in (None, "") else "(none)"),
            usage=UsageTotals.from_row(sums, currency),
            share=int(sums["spent"] * 100 / total) if total else 0,
        )
        for key, sums in best
    ]


WIDTH, HEIGHT = 700.0, 160.0


def _bars(
    days: dict[dt.date, dict[str, Any]], start: dt.date, end: dt.date, currency: Currency
) -> tuple[list[Bar], Decimal]:
    """A bar per day of the period (days without usage are bars of height 0)."""
    count = (end - start).days + 1
    highest = max((sums["spent"] for sums in days.values()), default=Decimal(0))
    slot = WIDTH / count
    bars = []
    for offset in range(count):
        day = start + dt.timedelta(days=offset)
        sums = days.get(day, dict.fromkeys(SUM_FIELDS, 0))
        height = float(sums["spent"] / highest) * (HEIGHT - 4) if highest > 0 else 0.0
        bars.append(Bar(day=day, usage=UsageTotals.from_row(sums, currency), x=round(offset * slot + slot * 0.1, 2),
                        y=round(HEIGHT - height, 2), width=round(slot * 0.8, 2), height=round(height, 2)))
    return bars, highest


def low_balances(currency: Currency, limit: int = 10) -> list[LowBalance]:
    """Users whose enforced balance fell below a tenth of their role's start balance, lowest first."""
    balances = (
        Balance.objects.filter(user__role__balance_enabled=True,
                               credits__lt=F("user__role__start_balance") * LOW_BALANCE_SHARE)
        .select_related("user__role").order_by("credits")[:limit]
    )
    return [
        LowBalance(user=b.user.username, role=str(b.user.role), credits=format_credits(b.credits),
                   amount=currency.format(b.credits), start_balance=format_credits(b.user.role.start_balance))
        for b in balances if b.user.role is not None  # (the filter: a role with balance_enabled)
    ]


def endpoint_health(*, start: dt.date, end: dt.date, answered: dict[str, int]) -> list[Health]:
    """Per endpoint (enabled, or failing in the period): calls answered and failed in the period,
    the error rate, the last successful call and the last error (any time)."""
    tz = timezone.get_current_timezone()
    since = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    failures = dict(
        UpstreamFailure.objects.filter(created_at__gte=since, created_at__lt=until)
        .order_by().values("endpoint_id").annotate(n=Count("pk")).values_list("endpoint_id", "n")
    )
    endpoints = Endpoint.objects.filter(Q(enabled=True) | Q(pk__in=list(failures)))
    health = []
    for endpoint in endpoints:
        failed, ok = failures.get(endpoint.pk, 0), answered.get(endpoint.name, 0)
        calls = failed + ok
        health.append(Health(
            endpoint=endpoint,
            answered=ok,
            failures=failed,
            error_rate=f"{failed * 100 / calls:.1f}%" if calls else "—",
            # one index lookup each (txn_endpoint_day, failure_endpoint_recent)
            last_success_at=Transaction.objects.filter(endpoint=endpoint, context__in=ANSWERED)
            .aggregate(last=Max("created_at"))["last"],
            last_error=endpoint.failures.order_by("-created_at").first(),
        ))
    return sorted(health, key=lambda h: (-h.failures, h.endpoint.ordering, h.endpoint.name))
