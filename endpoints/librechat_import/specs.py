"""`modelSpecs`: the enforce and prioritize switches, and each spec of `list[]` with its preset and
the endpoint it names (a built-in kind the file does not configure is created as LibreChat runs it)."""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError

from endpoints import config
from endpoints.librechat_import.base import ImporterBase
from endpoints.librechat_import.mapping import (
    BUILTIN_DEFAULTS,
    ENDPOINTS_SKIP_REASONS,
    FIELD_KEYS,
    PRESET_MAX_TOKENS,
    PRESET_REASONING,
    PRESET_SYSTEM_PROMPT,
    PRESET_TOP_P,
    SPEC_FIELD_KEYS,
    SPEC_KEYS,
)
from endpoints.librechat_import.shape import decimal, describe
from endpoints.models import Endpoint, EndpointModel, Kind, ModelSpec
from portal.models import PortalSettings

ADDED_ENDPOINTS_REASON = "which endpoints sit beside the specs is a role setting in the admin (allowed endpoints)"


class SpecImporter(ImporterBase):
    def import_model_specs(self, section: Any) -> None:
        where = "modelSpecs"
        if not self.expect(where, section, dict):
            return
        self.import_spec_switches(where, section)
        specs = section.get("list")
        if specs is None:
            return
        if not self.expect(f"{where}.list", specs, list):
            return
        parsed = self.read_spec_list(where, specs)
        defaults = [at for at, spec, _ in parsed if spec.get("default") is True]
        if len(defaults) > 1:
            self.problem(f"{where}.list", f"only one spec can be the default; {' and '.join(defaults)} "
                                          "both say default: true.")
            return
        # The default spec last, so moving the default from one spec to another never clashes.
        for at, spec, index in sorted(parsed, key=lambda item: bool(item[1].get("default"))):
            self.import_model_spec(at, spec, index)

    def import_spec_switches(self, where: str, section: dict[str, Any]) -> None:
        """modelSpecs.enforce and .prioritize, which are portal settings; other keys but list are skipped."""
        switches: dict[str, Any] = {}
        for key, value in section.items():
            if key in ("enforce", "prioritize"):
                if self.expect(f"{where}.{key}", value, bool):
                    switches[f"model_specs_{key}"] = value
            elif key == "list":
                continue
            elif key == "addedEndpoints":
                self.skip(f"{where}.addedEndpoints", ADDED_ENDPOINTS_REASON, where)
            else:
                self.skip(f"{where}.{key}", "not a modelSpecs key Atrium imports", where)
        if not switches:
            return
        portal = PortalSettings.load()
        changed = self.apply(portal, switches)
        if changed:
            portal.save()
        keys = ", ".join(f"{where}.{f.removeprefix('model_specs_')}" for f in switches)
        detail = ", ".join(f"{f.removeprefix('model_specs_')} = {str(switches[f]).lower()}" for f in changed)
        self.report.add("updated" if changed else "unchanged", "portal settings (model specs switches)", keys, detail)

    def read_spec_list(self, where: str, specs: list[Any]) -> list[tuple[str, dict[str, Any], int]]:
        """The specs that are objects with a name used once: (where, spec, index in the list)."""
        seen: dict[str, str] = {}
        parsed = []
        for index, spec in enumerate(specs):
            at = f"{where}.list[{index}]"
            if not isinstance(spec, dict):
                self.problem(at, f"expected a model spec object, got {describe(spec)}.")
                continue
            name = spec.get("name")
            if not isinstance(name, str) or not name.strip():
                self.problem(f"{at}.name", "name is required (the spec's unique key).")
                continue
            at += f" ({name})"
            if name in seen:
                self.problem(at, f"the spec name '{name}' is used twice in this file (also {seen[name]}).")
                continue
            seen[name] = at
            parsed.append((at, spec, index))
        return parsed

    def import_model_spec(self, where: str, spec: dict[str, Any], index: int) -> None:
        values, ok = self.spec_values(where, spec, index)
        preset = spec.get("preset")
        if preset is None:
            self.problem(f"{where}.preset", "preset is required (at least endpoint and model).")
            return
        if not self.expect(f"{where}.preset", preset, dict):
            return
        preset_values = self.read_preset(where, preset)
        if preset_values is None:
            ok = False
        ref = preset.get("endpoint")
        if not isinstance(ref, str) or not ref.strip():
            self.problem(f"{where}.preset.endpoint",
                         "preset.endpoint is required (an endpoint name or a built-in key such as openAI).")
            return
        if not ok:
            return
        endpoint = self.spec_endpoint(where, ref.strip(), preset_values["model"])
        if endpoint is None:
            return
        values.update(preset_values)
        values["endpoint"] = endpoint
        if values["is_default"]:
            self.clear_other_defaults(values["name"])
        self.save_spec(where, values)

    def spec_values(self, where: str, spec: dict[str, Any], index: int) -> tuple[dict[str, Any], bool]:
        """The spec's own fields (a key left out is the field's default), and whether each had the right type."""
        ok = True
        values: dict[str, Any] = {"name": spec["name"].strip(), "label": spec["name"].strip(), "description": "",
                                  "group": "", "group_icon": "", "icon_url": "", "order": index, "is_default": False}
        for key, raw in spec.items():
            if key in SPEC_KEYS:
                field_name, expected = SPEC_KEYS[key]
                if self.expect(f"{where}.{key}", raw, expected):
                    values[field_name] = raw
                else:
                    ok = False
            elif key not in ("name", "preset"):
                self.skip(f"{where}.{key}", "not a model spec key Atrium imports", where)
        return values, ok

    def clear_other_defaults(self, name: str) -> None:
        for other in ModelSpec.objects.filter(is_default=True).exclude(name=name):
            other.is_default = False
            other.save(update_fields=["is_default"])
            self.report.add("updated", f"model spec '{other.name}'", "", f"no longer the default ('{name}' is)")

    def save_spec(self, where: str, values: dict[str, Any]) -> None:
        existing = ModelSpec.objects.filter(name=values["name"]).first()
        instance = existing or ModelSpec()
        changed = self.apply(instance, values)
        try:
            instance.full_clean()
        except ValidationError as exc:
            self.validation_problems(where, exc, SPEC_FIELD_KEYS, ModelSpec)
            return
        if existing is None or changed:
            instance.save()
        subject = f"model spec '{instance.name}'"
        if existing is None:
            self.report.add("created", subject, where, f"{values['endpoint'].name} / {instance.model}")
        elif changed:
            self.report.add("updated", subject, where, ", ".join(SPEC_FIELD_KEYS.get(f, f) for f in changed))
        else:
            self.report.add("unchanged", subject, where)

    def read_preset(self, where: str, preset: dict[str, Any]) -> dict[str, Any] | None:
        ok = True
        values: dict[str, Any] = {"model": "", "system_prompt": "", "temperature": None, "top_p": None,
                                  "max_output_tokens": None, "reasoning_effort": ""}
        extra: dict[str, Any] = {}
        rest = {k: v for k, v in preset.items() if k != "endpoint"}

        def take(
            keys: tuple[str, ...], field_name: str, expected: type, convert: Callable[[Any], Any] = lambda v: v
        ) -> None:
            nonlocal ok
            for key in keys:
                if key in rest:
                    raw = rest.pop(key)
                    if not self.expect(f"{where}.preset.{key}", raw, expected):
                        ok = False
                    elif values[field_name] in ("", None):
                        values[field_name] = convert(raw)
                    else:
                        extra[key] = raw  # a second spelling of the same setting: kept, not lost

        take(("model",), "model", str)
        take(PRESET_SYSTEM_PROMPT, "system_prompt", str)
        take(("temperature",), "temperature", Decimal, decimal)
        take(PRESET_TOP_P, "top_p", Decimal, decimal)
        take(PRESET_MAX_TOKENS, "max_output_tokens", int)
        take(PRESET_REASONING, "reasoning_effort", str)
        extra.update(rest)
        values["extra_params"] = extra
        return values if ok else None

    def spec_endpoint(self, where: str, ref: str, model: str) -> Endpoint | None:
        lower = ref.lower()
        if lower in self.failed:
            return None  # its own problem is already reported
        if lower in self.file_endpoints:
            return self.file_endpoints[lower]
        kind = config.RESERVED_LOWER.get(lower)
        if kind == Kind.AZURE_OPENAI:
            for endpoint in [*self.file_endpoints.values(), *Endpoint.objects.filter(kind=Kind.AZURE_OPENAI)]:
                if endpoint.kind == Kind.AZURE_OPENAI and endpoint.models.filter(name=model).exists():
                    return endpoint
            self.skip(where, f"preset.endpoint azureOpenAI: no Azure group offers the model '{model}'", where)
            return None
        if kind in BUILTIN_DEFAULTS:
            return self.referenced_builtin(where, kind, model)
        if kind is not None:
            reason = ENDPOINTS_SKIP_REASONS.get(kind, "not an endpoint Atrium serves")
            self.skip(where, f"preset.endpoint '{ref}': {reason}", where)
            return None
        endpoint = Endpoint.objects.filter(name__iexact=ref).first()
        if endpoint is None:
            self.skip(where, f"preset.endpoint '{ref}' is not a configured endpoint "
                             "(not in this file, not in the database)", where)
        return endpoint

    def referenced_builtin(self, where: str, kind: str, model: str) -> Endpoint | None:
        """A spec names a built-in kind the file does not configure: use the one in the database, or
        create it the way LibreChat would run it (official base URL, ${OPENAI_API_KEY}-style key)."""
        of_kind = Endpoint.objects.filter(kind=kind)
        endpoint = of_kind.filter(name__iexact=kind).first() or of_kind.first()
        subject = f"endpoint '{endpoint.name if endpoint else kind}'"
        line = self.report.find(subject)
        if endpoint is None:
            endpoint = Endpoint(name=kind, kind=kind, ordering=self.next_ordering(), **BUILTIN_DEFAULTS[kind])
            try:
                endpoint.full_clean()
            except ValidationError as exc:
                self.validation_problems(where, exc, FIELD_KEYS, Endpoint)
                return None
            endpoint.save()
            line = self.report.add(
                "created", subject, where,
                f"created because referenced by {where}; "
                f"apiKey {endpoint.api_key}, baseURL {endpoint.base_url}; models:",
            )
        elif line is None:
            line = self.report.add("unchanged", subject, "", "referenced by modelSpecs, not configured in this file")
        if model and not endpoint.models.filter(name=model).exists():
            EndpointModel.objects.create(endpoint=endpoint, name=model, ordering=endpoint.models.count())
            if line.action == "created":
                line.detail += ("" if line.detail.endswith(":") else ",") + f" {model}"
            else:
                if line.action == "unchanged":
                    line.action, line.detail = "updated", ""
                line.detail = ", ".join(filter(None, [line.detail, f"+model {model} (referenced by {where})"]))
        return endpoint

