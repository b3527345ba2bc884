"""Start balance on creation and on first login (users created before billing existed, or by a
bulk import that skipped signals, get theirs when they sign in)."""
from __future__ import annotations

from typing import Any


def give_start_balance(sender: type, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if created and not raw:
        from billing.services import ensure_balance

        ensure_balance(user=instance)


def give_start_balance_on_login(sender: type, request: Any, user: Any, **kwargs: Any) -> None:
    from billing.services import ensure_balance

    ensure_balance(user=user)
