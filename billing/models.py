"""The balance ledger. Credits: 1 USD = 1,000,000 credits, so a rate in USD per 1M tokens is credits
per token. Amounts are Decimal, never float. Transactions are append-only; a Balance always equals
the sum of its user's transactions (billing.ledger.post moves both in one DB transaction)."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from accounts.models import CREDITS, DecimalShape

RATE: DecimalShape = {"max_digits": 14, "decimal_places": 6}


class Balance(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="balance")
    credits = models.DecimalField(default=0, **CREDITS)
    last_refill_at = models.DateTimeField(
        null=True, blank=True, help_text="When auto-refill last ran (the next is due one interval later)."
    )
    held = models.DecimalField(
        default=0, editable=False,
        help_text="Credits set aside by this user's calls still running: the sum of their holds (see Hold).",
        **CREDITS,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user}: {self.credits:,} credits"

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        if not self._state.adding and (update_fields is None or {"credits", "held"} & set(update_fields)):
            raise ValidationError(
                "A balance's credits move only through billing.ledger.post (a usage, refill or adjustment "
                "transaction) and its holds through billing.holds; saving the row could undo a concurrent update."
            )
        super().save(*args, **kwargs)


class TokenType(models.TextChoices):
    PROMPT = "prompt", "prompt"
    COMPLETION = "completion", "completion"
    CACHE_READ = "cache_read", "cache read"
    CACHE_WRITE = "cache_write", "cache write"
    REFILL = "refill", "refill"
    ADJUSTMENT = "adjustment", "adjustment"


class Context(models.TextChoices):
    MESSAGE = "message", "message"
    TITLE = "title", "title"
    ABORT = "abort", "stopped/failed stream"
    GATEWAY = "gateway", "API gateway"
    REFILL = "refill", "auto-refill"
    START = "start", "start balance"
    ADJUSTMENT = "adjustment", "admin adjustment"


class TransactionQuerySet(models.QuerySet["Transaction"]):
    def update(self, **kwargs: Any) -> int:
        raise ValidationError("Transactions are append-only: record a new adjustment instead.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ValidationError("Transactions are append-only and cannot be deleted.")


class Transaction(models.Model):
    # Foreign keys whose column leads one of the Meta indexes get no index of their own: every
    # index costs each of the millions of inserts (see bench/billing.py).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="transactions", db_index=False
    )
    conversation = models.ForeignKey(
        "chat.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="transactions",
        db_index=False,
    )
    message = models.ForeignKey(
        "chat.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="transactions",
        db_index=False,
    )
    endpoint = models.ForeignKey(
        "endpoints.Endpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="transactions",
        db_index=False,
    )
    endpoint_name = models.CharField(max_length=100, blank=True, help_text="Kept when the endpoint is deleted.")
    role = models.ForeignKey(
        "accounts.Role", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The user's role when the row was written (usage reports by role follow history, not today's role).",
    )
    model = models.CharField(max_length=200, blank=True)
    token_type = models.CharField(max_length=12, choices=TokenType.choices)
    tokens = models.BigIntegerField(default=0)
    rate = models.DecimalField(default=0, help_text="Credits per token used (USD per 1M tokens).", **RATE)
    credits = models.DecimalField(help_text="Signed: negative spends, positive adds.", **CREDITS)
    context = models.CharField(max_length=12, choices=Context.choices)
    estimated = models.BooleanField(
        default=False, help_text="Token count estimated with a tokenizer (the provider reported no usage)."
    )
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = TransactionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="txn_user_recent"),
            models.Index(fields=["conversation"], name="txn_conversation"),
            models.Index(fields=["message"], name="txn_message"),
            models.Index(fields=["endpoint", "created_at"], name="txn_endpoint_day"),
            models.Index(fields=["model", "created_at"], name="txn_model_day"),
        ]

    def __str__(self) -> str:
        return f"{self.token_type} {self.tokens} → {self.credits} credits"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValidationError("Transactions are append-only: record a new adjustment instead.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValidationError("Transactions are append-only and cannot be deleted.")


class Hold(models.Model):
    """Credits set aside by one call (an answer, a title) that passed admission and is still talking
    to the provider. Not part of the ledger (the Balance still equals the sum of transactions):
    holds only lower what the next admission sees as available (`Balance.held` is their sum), so
    concurrent calls cannot spend the same credits twice. A hold belongs to its `call`: it is
    released by that call's posting (`billing.ledger.post(release=call)`) or by `billing.holds.release`,
    never by another call. A live call renews it (`billing.holds.renew`); it expires only when its
    call died without reporting back (the next admission of the user drops it)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    call = models.UUIDField(unique=True, help_text="The call this hold belongs to (released by it alone).")
    model = models.CharField(max_length=200, blank=True)
    credits = models.DecimalField(**CREDITS)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"], name="hold_user_active")]

    def __str__(self) -> str:
        return f"hold {self.credits} credits of call {self.call} until {self.expires_at:%Y-%m-%d %H:%M:%S}"
