"""`{% balance_badge %}`: the signed-in user's balance in the page header (nothing when not limited)."""
from __future__ import annotations

from typing import Any

from django import template

from billing.selectors import balance_summary

register = template.Library()


@register.inclusion_tag("billing/balance_badge.html", takes_context=True)
def balance_badge(context: template.Context) -> dict[str, Any]:
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return {"balance": None}
    return {"balance": balance_summary(user=user)}
