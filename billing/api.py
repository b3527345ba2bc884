"""Billing API: the caller's balance, ledger (newest first, by cursor) and usage per day."""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.errors import HttpError
from pydantic import Field

from accounts.auth import caller, key_or_session
from billing.schemas import BalanceOut, DayUsageOut, TransactionPageOut
from billing.selectors import balance_summary, usage_by_day, usage_history

router = Router(tags=["billing"], auth=key_or_session)


@router.get("/balance", response=BalanceOut)
def balance(request: HttpRequest) -> dict[str, Any]:
    summary = balance_summary(user=caller(request).user)
    return {**dataclasses.asdict(summary), "currency": summary.currency_code}


class TransactionsQuery(Schema):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=20, description="`next_cursor` of the previous page.")


@router.get("/transactions", response=TransactionPageOut)
def transactions(request: HttpRequest, query: Query[TransactionsQuery]) -> dict[str, Any]:
    """The caller's ledger, newest first."""
    before_id = None
    if query.cursor is not None:
        if not query.cursor.isdigit():
            raise HttpError(422, "The cursor is not one this API returned.")
        before_id = int(query.cursor)
    rows = usage_history(user=caller(request).user, limit=query.limit + 1, before_id=before_id)
    page = rows[: query.limit]
    items = [{**dataclasses.asdict(row), "endpoint": row.endpoint_name} for row in page]
    return {"items": items, "next_cursor": str(page[-1].id) if len(rows) > query.limit else None}


class UsageQuery(Schema):
    start: dt.date | None = Field(default=None, description="First day (inclusive), the portal's time zone.")
    end: dt.date | None = Field(default=None, description="Last day (inclusive).")


@router.get("/usage", response=list[DayUsageOut])
def usage(request: HttpRequest, query: Query[UsageQuery]) -> list[dict[str, Any]]:
    """The caller's tokens and cost per day, oldest first."""
    return [
        {**dataclasses.asdict(totals), "day": day}
        for day, totals in usage_by_day(user=caller(request).user, start=query.start, end=query.end)
    ]
