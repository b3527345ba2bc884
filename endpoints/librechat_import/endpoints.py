"""Endpoints: custom ones (`endpoints.custom[]`) and the built-in kinds, their models and
`tokenConfig` rates, and the `titleEndpoint` references between them."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError

from endpoints import config
from endpoints.librechat_import.base import ImporterBase
from endpoints.librechat_import.mapping import (
    BUILTIN_DEFAULTS,
    ENDPOINT_FILE_FIELDS,
    ENDPOINT_KEYS,
    ENDPOINT_SKIP_REASONS,
    ENDPOINT_SPECIAL_KEYS,
    FIELD_KEYS,
    NOT_AN_ENDPOINT_KEY,
    RATE_FIELD_KEYS,
    RATE_KEYS,
)
from endpoints.librechat_import.report import ReportLine
from endpoints.librechat_import.shape import decimal, describe
from endpoints.models import KIND_PROTOCOLS, Endpoint, EndpointModel, Kind


class EndpointImporter(ImporterBase):
    def import_custom_list(self, entries: Any) -> None:
        if not self.expect("endpoints.custom", entries, list):
            return
        for index, entry in enumerate(entries):
            where = f"endpoints.custom[{index}]"
            if not isinstance(entry, dict):
                self.problem(where, f"expected an endpoint object, got {describe(entry)}.")
                continue
            name = entry.get("name")
            if isinstance(name, str) and name.strip():
                where += f" ({name})"
            self.import_endpoint(where, entry, kind=Kind.CUSTOM, name=name if isinstance(name, str) else "")

    def import_builtin(self, kind: str, key: str, entry: Any) -> None:
        where = f"endpoints.{key}"
        if entry is None:
            entry = {}
        if not self.expect(where, entry, dict):
            return
        if "name" in entry:
            self.skip(f"{where}.name", f"a built-in endpoint is named after its kind ({kind})", where)
            entry = {k: v for k, v in entry.items() if k != "name"}
        # The endpoint of this kind already in the database (an admin may have named it otherwise).
        of_kind = Endpoint.objects.filter(kind=kind)
        existing = of_kind.filter(name__iexact=kind).first() or of_kind.first()
        endpoint = self.import_endpoint(where, entry, kind=kind, name=existing.name if existing else kind)
        if endpoint is None:
            self.failed.add(kind.lower())
        else:  # modelSpecs and titleEndpoint name it by its kind
            self.file_endpoints.setdefault(kind.lower(), endpoint)

    def import_endpoint(
        self, where: str, entry: dict[str, Any], *, kind: str, name: str,
        overrides: dict[str, Any] | None = None, keys: dict[str, str] | None = None,
    ) -> Endpoint | None:
        """Create or update one endpoint from a custom-endpoint-shaped object."""
        keys = keys or FIELD_KEYS
        values, ok = self.endpoint_values(where, entry, kind=kind, name=name, overrides=overrides)
        models_ok, listed = self.read_endpoint_models(where, entry, kind, values)
        rates = self.read_token_config(where, entry.get("tokenConfig"))
        ok = ok and models_ok and rates is not None
        lower = (name or "").strip().lower()
        claimed, existing = self.claim_name(where, name, kind, keys)
        if not claimed:
            return None
        endpoint = existing or Endpoint(ordering=self.next_ordering())
        changed = self.apply(endpoint, values)
        try:  # even after a shape problem, so one run names every problem of the entry
            endpoint.full_clean(exclude=["title_endpoint"])
        except ValidationError as exc:
            self.validation_problems(where, exc, keys, Endpoint)
            ok = False
        if not ok:
            self.failed.add(lower)
            return None
        if existing is None or changed:
            endpoint.save()
        model_changes = self.sync_models(where, endpoint, listed, rates or {})
        if model_changes is None:
            self.failed.add(lower)
            return None
        changes = [keys.get(f, FIELD_KEYS.get(f, f)) for f in changed] + model_changes
        line = self.report_endpoint(where, endpoint, created=existing is None, changes=changes)
        self.file_endpoints[lower] = endpoint
        self.title_refs.append((endpoint, where, entry.get("titleEndpoint"), line))
        return endpoint

    def endpoint_values(
        self, where: str, entry: dict[str, Any], *, kind: str, name: str, overrides: dict[str, Any] | None
    ) -> tuple[dict[str, Any], bool]:
        """The endpoint's fields as the entry gives them (a key left out is the field's default), and
        whether every key had the right type."""
        ok = True
        values: dict[str, Any] = {
            f: Endpoint._meta.get_field(f).get_default() for f in ENDPOINT_FILE_FIELDS
        }
        values.update(BUILTIN_DEFAULTS.get(kind, {}))
        values.update({"name": name, "kind": kind})
        for key, raw in entry.items():
            if key in ENDPOINT_KEYS:
                field_name, expected = ENDPOINT_KEYS[key]
                if expected is not None and not self.expect(f"{where}.{key}", raw, expected):
                    ok = False
                    continue
                values[field_name] = raw
            elif key not in ENDPOINT_SPECIAL_KEYS:
                self.skip(f"{where}.{key}", ENDPOINT_SKIP_REASONS.get(key, NOT_AN_ENDPOINT_KEY), where)
        if overrides:
            values.update(overrides)
        values["provider"] = KIND_PROTOCOLS.get(kind, values["provider"])  # (as Endpoint.save sets it)
        return values, ok

    def read_endpoint_models(
        self, where: str, entry: dict[str, Any], kind: str, values: dict[str, Any]
    ) -> tuple[bool, list[str] | None]:
        """Whether the models block reads, and the names models.default lists (None: the entry has
        no models block, so the endpoint's models stay as they are)."""
        if "models" in entry:
            listed = self.read_models_block(where, entry["models"], values)
            return listed is not None, listed
        if kind == Kind.CUSTOM:
            self.problem(f"{where}.models", "models is required (models.default: a list of model names).")
            return False, None
        return True, None

    def claim_name(self, where: str, name: str, kind: str, keys: dict[str, str]) -> tuple[bool, Endpoint | None]:
        """Whether the entry may use `name` (once in this file, not taken by another kind in the
        database), and the endpoint of that name already in the database."""
        lower = (name or "").strip().lower()
        if lower and (lower in self.file_endpoints or lower in self.failed):
            self.problem(where, f"the endpoint name '{name}' is used twice in this file "
                                f"(also {self.file_where[lower]}); names are case-insensitive.")
            return False, None
        if not lower:
            return True, None
        self.file_where[lower] = where
        existing = Endpoint.objects.filter(name__iexact=name.strip()).first()
        if existing is None or existing.kind == kind:
            return True, existing
        try:  # a custom endpoint named like a built-in: say that, not "name taken"
            config.validate_endpoint_name(name, kind)
        except ValidationError as exc:
            self.problem(f"{where}.{keys['name']}", exc.messages[0])
        else:
            self.problem(where, f"the name '{existing.name}' is already taken by an endpoint of kind "
                                f"{existing.kind} in the database; rename one of them.")
        self.failed.add(lower)
        return False, None

    def report_endpoint(self, where: str, endpoint: Endpoint, *, created: bool, changes: list[str]) -> ReportLine:
        subject = f"endpoint '{endpoint.name}'"
        if created:
            detail = f"{endpoint.get_kind_display()}"
            names = endpoint.listed_model_names()
            detail += f"; models: {', '.join(names)}" if names else ""
            detail += "; models fetched from the API" if endpoint.models_fetch else ""
            return self.report.add("created", subject, where, detail)
        if changes:
            return self.report.add("updated", subject, where, ", ".join(dict.fromkeys(changes)))
        return self.report.add("unchanged", subject, where)

    def read_models_block(self, where: str, block: Any, values: dict[str, Any]) -> list[str] | None:
        if not self.expect(f"{where}.models", block, dict):
            return None
        ok = True
        default = block.get("default")
        if default is None:
            self.problem(f"{where}.models.default", "models.default is required (a list of model names).")
            ok = False
        elif not isinstance(default, list) or not all(isinstance(m, str) and m.strip() for m in default):
            self.problem(f"{where}.models.default", f"expected a list of model names, got {describe(default)}.")
            ok = False
        if "fetch" in block:
            if self.expect(f"{where}.models.fetch", block["fetch"], bool):
                values["models_fetch"] = block["fetch"]
            else:
                ok = False
        for key in block:
            if key not in ("default", "fetch"):
                self.skip(f"{where}.models.{key}", "models takes only default and fetch", where)
        if not ok:
            return None
        return list(dict.fromkeys(m.strip() for m in default))

    def read_token_config(self, where: str, block: Any) -> dict[str, dict[str, Any]] | None:
        if block is None:
            return {}
        if not self.expect(f"{where}.tokenConfig", block, dict):
            return None
        rates: dict[str, dict[str, Any]] = {}
        ok = True
        for model_name, entry in block.items():
            at = f"{where}.tokenConfig.{model_name}"
            if not self.expect(at, entry, dict):
                ok = False
                continue
            values: dict[str, Any] = {}
            for key, raw in entry.items():
                if key not in RATE_KEYS:
                    reason = "a rate has only prompt, completion, context, cacheRead, cacheWrite"
                    self.skip(f"{at}.{key}", reason, where)
                    continue
                expected = int if key == "context" else Decimal
                if not self.expect(f"{at}.{key}", raw, expected):
                    ok = False
                    continue
                values[RATE_KEYS[key]] = raw if key == "context" else decimal(raw)
            rates[str(model_name)] = values
        return rates if ok else None

    def sync_models(
        self, where: str, endpoint: Endpoint, listed: list[str] | None, rates: dict[str, dict[str, Any]],
        deployments: dict[str, str] | None = None,
    ) -> list[str] | None:
        """Make the endpoint's models match the file. Never deletes: a model that left
        models.default is unlisted (its rates stay for history); rates are only ever set."""
        existing = {m.name: m for m in endpoint.models.all()}
        desired: dict[str, dict[str, Any]] = {}
        if listed is not None:
            for position, name in enumerate(listed):
                desired[name] = {"listed": True, "ordering": position}
                if deployments is not None:
                    desired[name]["deployment_name"] = deployments[name]
            for name, model in existing.items():
                if name not in desired and model.listed:
                    desired[name] = {"listed": False}
        for name, values in rates.items():
            # A priced model that is not in models.default (e.g. one the API lists) is not offered
            # by itself; an existing model keeps its place.
            desired.setdefault(name, {} if name in existing else {"listed": False})
            desired[name].update(values)
        changes: list[str] = []
        ok = True
        for name, values in desired.items():
            model = existing.get(name) or EndpointModel(endpoint=endpoint, name=name)
            changed = self.apply(model, values)
            try:
                model.full_clean()
            except ValidationError as exc:
                at = f"{where}.tokenConfig.{name}" if name in rates else f"{where}.models.default"
                self.validation_problems(at, exc, RATE_FIELD_KEYS | {"name": "name"}, EndpointModel)
                ok = False
                continue
            if model.pk is None:
                model.save()
                changes.append(f"+model {name}")
            elif changed:
                model.save()
                if changed == ["listed"] and not model.listed:
                    changes.append(f"unlisted model {name}")
                elif set(changed) <= {"ordering"}:
                    changes.append("models.default order")
                else:
                    changes.append(f"model {name} ({', '.join(RATE_FIELD_KEYS.get(c, c) for c in changed)})")
        return changes if ok else None

    def resolve_title_endpoints(self) -> None:
        for endpoint, where, ref, line in self.title_refs:
            target = None
            if ref is not None:
                if not self.expect(f"{where}.titleEndpoint", ref, str):
                    continue
                target = self.find_endpoint(ref)
                if target is None:
                    reason = f"'{ref}' is not a configured endpoint; titles use this endpoint"
                    self.skip(f"{where}.titleEndpoint", reason, where)
                elif target == "failed":
                    continue
            if endpoint.title_endpoint_id == (target.pk if target else None):
                continue
            endpoint.title_endpoint = target
            try:
                endpoint.full_clean()
            except ValidationError as exc:
                self.validation_problems(where, exc, FIELD_KEYS, Endpoint)
                continue
            endpoint.save(update_fields=["title_endpoint", "updated_at"])
            if line.action == "unchanged":
                line.action, line.detail = "updated", "titleEndpoint"
            elif line.action == "updated":
                line.detail += ", titleEndpoint"

    def find_endpoint(self, ref: str) -> Endpoint | str | None:
        """An endpoint by name as LibreChat references it: a built-in key or an endpoint name.
        Returns "failed" when it names an entry of this file that had problems."""
        lower = ref.strip().lower()
        if lower in self.failed:
            return "failed"
        if lower in self.file_endpoints:
            return self.file_endpoints[lower]
        kind = config.RESERVED_LOWER.get(lower)
        if kind in BUILTIN_DEFAULTS or kind == Kind.AZURE_OPENAI:
            of_kind = Endpoint.objects.filter(kind=kind)
            return of_kind.filter(name__iexact=kind).first() or of_kind.first()
        return Endpoint.objects.filter(name__iexact=ref.strip()).first()

