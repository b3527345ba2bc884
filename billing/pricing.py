"""The pricing formula: plain functions over Decimal, no database.

1 USD = 1,000,000 credits, so a rate in USD per 1M tokens *is* credits per token and a line costs
`tokens × rate` credits. `Usage` already holds disjoint counts (OpenAI's cached tokens were taken out
of its prompt tokens by `Usage.from_openai`), so every bucket is billed exactly once:

    input tokens        × prompt rate
    cache-read tokens   × cacheRead rate   (missing: prompt rate)
    cache-write tokens  × cacheWrite rate  (missing: prompt rate)
    output tokens       × completion rate  (reasoning tokens are part of the output)

Each line is rounded half-up to the ledger's precision (6 decimal places, a millionth of a credit);
with rates of at most 6 decimal places the product is exact and rounding never moves a value.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from billing.models import TokenType

if TYPE_CHECKING:
    from endpoints.adapters.types import Usage
    from endpoints.models import EndpointModel
    from portal.models import PortalSettings

CREDITS_PER_USD = Decimal(1_000_000)
QUANTUM = Decimal("0.000001")  # the ledger's decimal_places=6


def quantize(credits: Decimal) -> Decimal:
    return credits.quantize(QUANTUM, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Rates:
    """Credits per token for each token type of one model (USD per 1M tokens)."""

    prompt: Decimal
    completion: Decimal
    cache_read: Decimal
    cache_write: Decimal
    is_default: bool = False  # the model has no configured rate: the portal's default rates apply

    @classmethod
    def of(
        cls,
        *,
        prompt: Decimal,
        completion: Decimal,
        cache_read: Decimal | None = None,
        cache_write: Decimal | None = None,
        is_default: bool = False,
    ) -> Rates:
        """Missing cache rates fall back to the prompt rate."""
        return cls(
            prompt=Decimal(prompt),
            completion=Decimal(completion),
            cache_read=Decimal(prompt if cache_read is None else cache_read),
            cache_write=Decimal(prompt if cache_write is None else cache_write),
            is_default=is_default,
        )

    @classmethod
    def resolve(cls, model: EndpointModel | None, portal: PortalSettings) -> Rates:
        """The model's tokenConfig when it has prompt and completion rates, else the portal's
        default rates (which an admin edits; never free)."""
        if model is not None and model.prompt_rate is not None and model.completion_rate is not None:
            return cls.of(  # (the model's has_rates)
                prompt=model.prompt_rate,
                completion=model.completion_rate,
                cache_read=model.cache_read_rate,
                cache_write=model.cache_write_rate,
            )
        return cls.of(
            prompt=portal.default_prompt_rate, completion=portal.default_completion_rate, is_default=True
        )

    def for_type(self, token_type: str) -> Decimal:
        rates: dict[str, Decimal] = {
            TokenType.PROMPT: self.prompt,
            TokenType.COMPLETION: self.completion,
            TokenType.CACHE_READ: self.cache_read,
            TokenType.CACHE_WRITE: self.cache_write,
        }
        return rates[token_type]


@dataclass(frozen=True)
class Line:
    """One priced bucket of a call: becomes one Transaction row (credits are negative there)."""

    token_type: str
    tokens: int
    rate: Decimal
    credits: Decimal  # the cost, positive


def price(usage: Usage, rates: Rates) -> list[Line]:
    """The lines of one call's bill, one per non-zero token type, in a stable order."""
    buckets = (
        (TokenType.PROMPT, usage.input_tokens),
        (TokenType.CACHE_READ, usage.cache_read_tokens),
        (TokenType.CACHE_WRITE, usage.cache_write_tokens),
        (TokenType.COMPLETION, usage.output_tokens),
    )
    lines = []
    for token_type, tokens in buckets:
        if tokens < 0:
            raise ValueError(f"Token counts cannot be negative ({token_type}: {tokens}).")
        if tokens:
            rate = rates.for_type(token_type)
            lines.append(Line(str(token_type), tokens, rate, quantize(tokens * rate)))
    return lines


def total(lines: list[Line]) -> Decimal:
    return sum((line.credits for line in lines), Decimal(0))


def prompt_cost(prompt_tokens: int, rates: Rates) -> Decimal:
    """The estimated cost of sending `prompt_tokens` (before the call: no cache discount assumed)."""
    return quantize(max(prompt_tokens, 0) * rates.prompt)


def completion_cost(completion_tokens: int, rates: Rates) -> Decimal:
    return quantize(max(completion_tokens, 0) * rates.completion)


@dataclass(frozen=True)
class Currency:
    """`interface.currency`: how costs are shown. Display only; the ledger stays in credits."""

    code: str = "USD"
    symbol: str = "$"
    rate: Decimal = Decimal(1)  # units of this currency per 1 USD

    @classmethod
    def from_settings(cls, portal: PortalSettings) -> Currency:
        return cls(code=portal.currency_code, symbol=portal.currency_symbol, rate=Decimal(portal.currency_rate))

    def amount(self, credits: Decimal) -> Decimal:
        """Credits in this currency, to 6 decimal places."""
        return quantize(Decimal(credits) / CREDITS_PER_USD * self.rate)

    def exact_amount(self, credits: Decimal) -> Decimal:
        """Credits in this currency without rounding (exports: sums of rows add up exactly)."""
        return Decimal(credits).scaleb(-6) * self.rate

    def format(self, credits: Decimal) -> str:
        """'$0.000123', '$12.50', '-€1.20': at least 2 decimals, up to 6 when the amount is small."""
        value = self.amount(credits)
        sign = "-" if value < 0 else ""
        text = f"{abs(value):,.6f}".rstrip("0")
        whole, _, decimals = text.partition(".")
        text = f"{whole}.{decimals.ljust(2, '0')}"
        return f"{sign}{self.symbol}{text}"


def format_credits(credits: Decimal) -> str:
    """'1,234,567' or '1,234.5' (credits keep their fraction only when they have one)."""
    value = Decimal(credits)
    if value == value.to_integral_value():
        return f"{value:,.0f}"
    return f"{value:,.6f}".rstrip("0")
