"""Request/response schemas of the billing API: balance, ledger, usage."""
from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from ninja import Schema
from pydantic import Field, field_validator

from billing.pricing import quantize


class BalanceOut(Schema):
    enabled: bool = Field(description="Whether the caller's role enforces a balance.")
    credits: Decimal
    available: Decimal = Field(description="Credits less the holds of requests still running.")
    display: str = Field(description="The credits in the display currency, formatted.")
    currency: str
    auto_refill: bool
    refill_amount: Decimal
    next_refill_at: dt.datetime | None


class TransactionOut(Schema):
    id: int
    created_at: dt.datetime
    token_type: str
    context: str
    tokens: int
    rate: Decimal
    credits: Decimal = Field(description="Signed: spending is negative.")
    amount: str = Field(description="Signed, in the display currency.")
    model: str
    endpoint: str
    conversation_id: uuid.UUID | None
    message_id: uuid.UUID | None
    estimated: bool
    reason: str


class TransactionPageOut(Schema):
    items: list[TransactionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end.")


class UsageOut(Schema):
    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    credits: Decimal = Field(description="Cost in credits (1 USD = 1,000,000 credits).")
    cost: str = Field(description="Cost in the display currency, formatted.")
    estimated: bool = Field(description="Some of it was counted with a tokenizer (no usage reported).")

    @field_validator("credits")
    @classmethod
    def _ledger_precision(cls, credits: Decimal) -> Decimal:
        return quantize(credits)  # (a sum's digits depend on the database; the ledger has 6 places)


class DayUsageOut(UsageOut):
    day: dt.date
