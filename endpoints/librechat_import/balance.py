"""`balance` (the default role's balance policy) and `interface.currency` (the display currency)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError

from accounts.models import Role
from endpoints.librechat_import.base import ImporterBase
from endpoints.librechat_import.mapping import BALANCE_KEYS, CURRENCY_KEYS, INTERFACE_REASON
from endpoints.librechat_import.shape import decimal
from portal.models import PortalSettings


class BalanceImporter(ImporterBase):
    def import_balance(self, section: Any) -> None:
        where = "balance"
        if not self.expect(where, section, dict):
            return
        role = Role.objects.default()
        values: dict[str, Any] = {}
        ok = True
        for key, raw in section.items():
            if key not in BALANCE_KEYS:
                self.skip(f"{where}.{key}", "not a balance key Atrium imports", where)
                continue
            field_name, expected = BALANCE_KEYS[key]
            if not self.expect(f"{where}.{key}", raw, expected):
                ok = False
                continue
            values[field_name] = decimal(raw) if expected is Decimal else raw
        if not ok:
            return
        changed = self.apply(role, values)
        try:
            role.full_clean()
        except ValidationError as exc:
            self.validation_problems(where, exc, {f: k for k, (f, _) in BALANCE_KEYS.items()}, Role)
            return
        if changed:
            role.save()
        keys = {f: k for k, (f, _) in BALANCE_KEYS.items()}
        self.report.add("updated" if changed else "unchanged", f"balance policy of the default role {role.name}", where,
                        ", ".join(keys[f] for f in changed))

    def import_interface(self, section: Any) -> None:
        where = "interface"
        if not self.expect(where, section, dict):
            return
        others = [str(k) for k in section if k != "currency"]
        if others:
            self.skip(f"interface: {', '.join(others)}", INTERFACE_REASON, where)
        if "currency" not in section:
            return
        at = f"{where}.currency"
        raw = section["currency"]
        if isinstance(raw, str):
            raw = {"code": raw}
        if not self.expect(at, raw, dict):
            return
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in CURRENCY_KEYS:
                self.skip(f"{at}.{key}", "currency takes code, symbol and rate (units per 1 USD)", where)
                continue
            field_name, expected = CURRENCY_KEYS[key]
            if not self.expect(f"{at}.{key}", value, expected):
                return
            values[field_name] = decimal(value) if expected is Decimal else value
        portal = PortalSettings.load()
        changed = self.apply(portal, values)
        try:
            portal.full_clean()
        except ValidationError as exc:
            self.validation_problems(at, exc, {f: k for k, (f, _) in CURRENCY_KEYS.items()}, PortalSettings)
            return
        if changed:
            portal.save()
        keys = {f: k for k, (f, _) in CURRENCY_KEYS.items()}
        self.report.add("updated" if changed else "unchanged", "portal settings (display currency)", at,
                        ", ".join(keys[f] for f in changed))
