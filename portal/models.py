"""Portal-wide settings an administrator edits in the admin (one row)."""
from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

RATE_FIELD = dict(max_digits=14, decimal_places=6, validators=[MinValueValidator(Decimal(0))])


class PortalSettings(models.Model):
    """Singleton (pk=1). Read it with `PortalSettings.load()`."""

    model_specs_enforce = models.BooleanField(
        "enforce model specs",
        default=False,
        help_text="modelSpecs.enforce: users may only chat through model specs, never pick an "
        "endpoint/model freely (a role's 'choose models freely' permission is then ignored).",
    )
    model_specs_prioritize = models.BooleanField(
        "prioritize model specs",
        default=True,
        help_text="modelSpecs.prioritize: the default model spec wins over the user's last "
        "selection when a new chat starts.",
    )
    currency_code = models.CharField(
        max_length=8,
        default="USD",
        help_text="interface.currency: ISO code of the currency costs are displayed in.",
    )
    currency_symbol = models.CharField(max_length=8, default="$")
    currency_rate = models.DecimalField(
        max_digits=18,
        decimal_places=8,
        default=Decimal(1),
        validators=[MinValueValidator(Decimal("0.00000001"))],
        help_text="Units of the display currency per 1 USD. Display only: the ledger is in "
        "credits (1 USD = 1,000,000 credits).",
    )
    default_prompt_rate = models.DecimalField(
        default=Decimal(5),
        help_text="USD per 1M prompt tokens for models without a configured rate (never free).",
        **RATE_FIELD,
    )
    default_completion_rate = models.DecimalField(
        default=Decimal(15),
        help_text="USD per 1M completion tokens for models without a configured rate.",
        **RATE_FIELD,
    )
    default_context_tokens = models.PositiveIntegerField(
        default=8192,
        help_text="Context window assumed for models without a configured context size.",
    )
    temporary_chat_retention_hours = models.PositiveIntegerField(
        "temporary chat retention (hours)",
        default=720,
        validators=[MinValueValidator(1), MaxValueValidator(8760)],
        help_text="interface.temporaryChatRetention: temporary chats are hidden and deleted this many "
        "hours after they were started (1 to 8760; LibreChat's default is 720, 30 days).",
    )

    class Meta:
        verbose_name = verbose_name_plural = "portal settings"

    def __str__(self) -> str:
        return "Portal settings"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("The portal settings cannot be deleted.")

    @classmethod
    def load(cls) -> PortalSettings:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj
