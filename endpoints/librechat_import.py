"""Import a LibreChat `librechat.yaml` into Atrium's models, in one database transaction.

What it writes: custom endpoints (`endpoints.custom[]`), the built-in kinds (`endpoints.openAI`,
`anthropic`, `google`, `bedrock`, `azureOpenAI` with its `groups[]`), their models and `tokenConfig`
rates, `modelSpecs`, `balance` (the default role's balance policy) and `interface.currency`.
Everything else is reported as skipped, with the reason.

Validation is the models' own `full_clean()` (which calls the rules in `endpoints/config.py`); this
module only checks the shape of the YAML (types, required keys) and maps every problem back to the
entry and key it came from, e.g. `endpoints.custom[2] (groq).titlePrompt: titlePrompt must contain
the {convo} placeholder.` Any problem rolls the whole import back. `${VAR}` references are stored as
written and resolved at request time; a literal key is encrypted by the model field.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, models, transaction

from accounts.models import Role
from endpoints import config
from endpoints.models import (
    DEFAULT_BASE_URLS,
    KIND_PROTOCOLS,
    Endpoint,
    EndpointModel,
    Kind,
    ModelSpec,
    Protocol,
)
from portal.models import PortalSettings

# --- the mapping --------------------------------------------------------------------------------

# Keys of LibreChat's custom-endpoint object that map one-to-one onto an Endpoint field:
# YAML key -> (model field, expected YAML type). `None` means "any JSON value": its rule lives in
# endpoints/config.py and runs in Endpoint.clean().
ENDPOINT_KEYS: dict[str, tuple[str, type | None]] = {
    "name": ("name", str),
    "apiKey": ("api_key", str),
    "baseURL": ("base_url", str),
    "provider": ("provider", str),
    "iconURL": ("icon_url", str),
    "userIdQuery": ("user_id_query", bool),
    "titleConvo": ("title_convo", bool),
    "titleTiming": ("title_timing", str),
    "titleMethod": ("title_method", str),
    "titleModel": ("title_model", str),
    "titlePrompt": ("title_prompt", str),
    "titlePromptTemplate": ("title_prompt_template", str),
    "titleMessageRole": ("title_message_role", str),
    "modelDisplayLabel": ("model_display_label", str),
    "addParams": ("add_params", None),
    "dropParams": ("drop_params", None),
    "customParams": ("custom_params", None),
    "headers": ("headers", None),
    "directEndpoint": ("direct_endpoint", bool),
}
# Keys handled with their own code (references, nested objects).
ENDPOINT_SPECIAL_KEYS = ("models", "tokenConfig", "titleEndpoint")
# Endpoint fields the file describes completely: a key left out goes back to the field's default.
ENDPOINT_FILE_FIELDS = [f for f, _ in ENDPOINT_KEYS.values()] + ["models_fetch"]
# For error messages: model field -> YAML key.
FIELD_KEYS = {f: key for key, (f, _) in ENDPOINT_KEYS.items()} | {
    "models_fetch": "models.fetch",
    "title_endpoint": "titleEndpoint",
    "auth_kind": "apiKey",
}

ENDPOINT_SKIP_REASONS = {
    "streamRate": "Atrium streams every delta as it arrives",
    "summarize": "conversation summarisation is not part of Atrium",
    "summaryModel": "conversation summarisation is not part of Atrium",
    "forcePrompt": "Atrium always uses the chat/messages APIs",
    "activityLabel": "activity labels are not part of Atrium",
    "activityModel": "activity labels are not part of Atrium",
    "plugins": "LibreChat plugins are not part of Atrium",
    "assistants": "the Assistants API is not part of Atrium",
    "capabilities": "the Assistants API is not part of Atrium",
    "availableRegions": "Atrium's Bedrock endpoint uses one region: set BEDROCK_AWS_DEFAULT_REGION",
    "guardrailConfig": "Bedrock guardrails are not part of Atrium",
    "vertex": "Vertex AI routing is not part of Atrium; use the google endpoint or a custom endpoint",
    "fileLimit": "file limits are not imported",
}

# Built-in kinds: what LibreChat uses when the YAML says nothing (it reads these from its .env).
BUILTIN_KEYS = {"openai": Kind.OPENAI, "anthropic": Kind.ANTHROPIC, "google": Kind.GOOGLE, "bedrock": Kind.BEDROCK}
BUILTIN_DEFAULTS: dict[str, dict[str, Any]] = {
    Kind.OPENAI: {
        "api_key": "${OPENAI_API_KEY}",
        "base_url": DEFAULT_BASE_URLS[Kind.OPENAI],
        "models_fetch": True,
        "model_display_label": "OpenAI",
    },
    Kind.ANTHROPIC: {
        "api_key": "${ANTHROPIC_API_KEY}",
        "base_url": DEFAULT_BASE_URLS[Kind.ANTHROPIC],
        "provider": Protocol.ANTHROPIC,
        "model_display_label": "Claude",
    },
    Kind.GOOGLE: {
        "api_key": "${GOOGLE_KEY}",
        "base_url": DEFAULT_BASE_URLS[Kind.GOOGLE],
        "models_fetch": True,
        "model_display_label": "Gemini",
    },
    Kind.BEDROCK: {
        # Bedrock's OpenAI-compatible Chat Completions API, authenticated with a Bedrock API key.
        "api_key": "${AWS_BEARER_TOKEN_BEDROCK}",
        "base_url": "https://bedrock-runtime.${BEDROCK_AWS_DEFAULT_REGION}.amazonaws.com/openai/v1",
        "model_display_label": "Bedrock",
    },
}
BUILTIN_ORDER = [Kind.OPENAI, Kind.AZURE_OPENAI, Kind.GOOGLE, Kind.ANTHROPIC, Kind.BEDROCK]

AZURE_GROUP_KEYS = {
    "group", "apiKey", "instanceName", "deploymentName", "version", "baseURL", "additionalHeaders",
    "serverless", "addParams", "dropParams", "models",
}
AZURE_HOST = "https://{instance}.openai.azure.com/openai/deployments"

RATE_KEYS = {
    "prompt": "prompt_rate",
    "completion": "completion_rate",
    "context": "context_tokens",
    "cacheRead": "cache_read_rate",
    "cacheWrite": "cache_write_rate",
}
RATE_FIELD_KEYS = {f: key for key, f in RATE_KEYS.items()}

SPEC_KEYS: dict[str, tuple[str, type]] = {
    "label": ("label", str),
    "description": ("description", str),
    "group": ("group", str),
    "groupIcon": ("group_icon", str),
    "iconURL": ("icon_url", str),
    "order": ("order", int),
    "default": ("is_default", bool),
}
SPEC_FIELD_KEYS = {f: key for key, (f, _) in SPEC_KEYS.items()} | {
    "name": "name",
    "endpoint": "preset.endpoint",
    "model": "preset.model",
    "system_prompt": "preset.promptPrefix",
    "temperature": "preset.temperature",
    "top_p": "preset.top_p",
    "max_output_tokens": "preset.maxOutputTokens",
    "reasoning_effort": "preset.reasoning_effort",
    "extra_params": "preset",
}
# Preset keys with a column of their own, in order of preference when a file gives several.
PRESET_SYSTEM_PROMPT = ("promptPrefix", "instructions")
PRESET_TOP_P = ("top_p", "topP")
PRESET_MAX_TOKENS = ("maxOutputTokens", "max_tokens", "maxTokens", "max_output_tokens")
PRESET_REASONING = ("reasoning_effort", "reasoningEffort")

BALANCE_KEYS: dict[str, tuple[str, type]] = {
    "enabled": ("balance_enabled", bool),
    "startBalance": ("start_balance", Decimal),
    "autoRefillEnabled": ("auto_refill_enabled", bool),
    "refillIntervalValue": ("refill_interval_value", int),
    "refillIntervalUnit": ("refill_interval_unit", str),
    "refillAmount": ("refill_amount", Decimal),
}
CURRENCY_KEYS = {"code": ("currency_code", str), "symbol": ("currency_symbol", str), "rate": ("currency_rate", Decimal)}

TOP_LEVEL_SKIP_REASONS = {
    "cache": "LibreChat's config-cache switch; Atrium keeps its configuration in the database",
    "registration": "sign-in methods come from Atrium's settings (allauth, OIDC, LDAP), see README",
    "actions": "agent actions are not part of Atrium",
    "fileStrategy": "file storage is not configured from librechat.yaml",
    "fileConfig": "upload limits are not configured from librechat.yaml",
    "rateLimits": "rate limits are Atrium settings, not imported",
    "speech": "speech-to-text / text-to-speech are not part of Atrium",
    "mcpServers": "MCP servers are not imported",
    "memory": "memories are not imported",
    "webSearch": "web search providers are not imported",
    "ocr": "OCR is not part of Atrium",
    "turnstile": "captcha is not part of Atrium",
    "transactions": "Atrium always records a transaction for every billed call",
    "includedTools": "LibreChat tools are not part of Atrium",
    "filteredTools": "LibreChat tools are not part of Atrium",
    "imageOutputType": "image output settings are not imported",
    "secureImageLinks": "image output settings are not imported",
}
ENDPOINTS_SKIP_REASONS = {
    "assistants": "the Assistants API is not part of Atrium",
    "azureAssistants": "the Assistants API is not part of Atrium",
    "agents": "LibreChat agents are not imported",
    "all": "Atrium has no settings shared by all endpoints; set them per endpoint",
    "gptPlugins": "LibreChat plugins are not part of Atrium",
}
INTERFACE_REASON = (
    "not modelled by Atrium (what users may do is a role permission in the admin; texts live in templates)"
)


# --- errors and the report ------------------------------------------------------------------------

class LibreChatImportError(Exception):
    """The file cannot be imported; nothing was changed. `problems` name the entry and key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class ReportLine:
    action: str  # created | updated | unchanged | skipped
    subject: str  # what, e.g. "endpoint 'groq'"
    where: str = ""  # the YAML path it came from
    detail: str = ""  # changed keys, or why it was skipped


@dataclass
class ImportReport:
    source: str
    dry_run: bool = False
    version: str | None = None
    lines: list[ReportLine] = field(default_factory=list)

    ACTIONS = ("created", "updated", "unchanged", "skipped")

    def add(self, action: str, subject: str, where: str = "", detail: str = "") -> ReportLine:
        line = ReportLine(action, subject, where, detail)
        self.lines.append(line)
        return line

    def of(self, action: str) -> list[ReportLine]:
        return [line for line in self.lines if line.action == action]

    def find(self, subject: str) -> ReportLine | None:
        return next((line for line in self.lines if line.subject == subject), None)

    def counts(self) -> dict[str, int]:
        return {action: len(self.of(action)) for action in self.ACTIONS}

    def render(self) -> str:
        head = f"Importing {self.source}"
        if self.version:
            head += f" (config version {self.version})"
        out = [head + (" — dry run" if self.dry_run else "")]
        for action in self.ACTIONS:
            lines = self.of(action)
            if not lines:
                continue
            out.append("")
            out.append(f"{action.capitalize()} ({len(lines)}):")
            for line in lines:
                text = f"  {line.subject}"
                if line.where and not re.match(re.escape(line.where) + r"($|[.:])", line.subject):
                    text += f"  [{line.where}]"
                if line.detail:
                    text += f" — {line.detail}"
                out.append(text)
        out.append("")
        out.append(", ".join(f"{n} {action}" for action, n in self.counts().items()) + ".")
        if self.dry_run:
            out.append("Dry run: everything was validated, nothing was saved.")
        return "\n".join(out)


# --- YAML -----------------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates as text: an Azure api-version such as 2024-02-01 stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml(text: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise LibreChatImportError([f"YAML syntax error at {where}: {exc.problem or exc}."]) from exc
    except yaml.YAMLError as exc:
        raise LibreChatImportError([f"YAML syntax error: {exc}."]) from exc
    if data is None:
        raise LibreChatImportError(["The file is empty."])
    if not isinstance(data, dict):
        raise LibreChatImportError([f"The file must hold a YAML mapping (key: value) at the top, not {_describe(data)}."])
    return data


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


EXPECTED = {str: "text", bool: "true or false", int: "a whole number", Decimal: "a number", dict: "an object", list: "a list"}


def _is(value: Any, expected: type) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is Decimal:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, expected)


def _decimal(value: int | float) -> Decimal:
    """The number as written (0.15 stays 0.15, not the float's binary expansion)."""
    return Decimal(str(value))


# --- the importer ---------------------------------------------------------------------------------

def import_librechat_yaml(path: str | Path, *, dry_run: bool = False) -> ImportReport:
    """Read, validate and import `path`; raise LibreChatImportError (nothing changed) on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise LibreChatImportError([f"{path}: no such file."]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise LibreChatImportError([f"{path}: cannot be read ({exc})."]) from exc
    return import_librechat_config(parse_yaml(text), source=str(path), dry_run=dry_run)


def import_librechat_config(data: dict[str, Any], *, source: str = "librechat.yaml", dry_run: bool = False) -> ImportReport:
    report = ImportReport(source=source, dry_run=dry_run)
    importer = _Importer(report)
    try:
        with transaction.atomic():
            importer.run(data)
            if importer.problems:
                raise LibreChatImportError(importer.problems)
            if dry_run:
                transaction.set_rollback(True)
    except IntegrityError as exc:  # a concurrent edit in the admin; the rules above catch the rest
        raise LibreChatImportError([f"The database refused the import ({exc}); nothing was changed."]) from exc
    return report


class _Importer:
    def __init__(self, report: ImportReport):
        self.report = report
        self.problems: list[str] = []
        # Endpoints this file describes, by lower-case name (azure groups by group name,
        # built-ins by their kind key), and where in the file they are.
        self.file_endpoints: dict[str, Endpoint] = {}
        self.file_where: dict[str, str] = {}
        self.failed: set[str] = set()  # lower-case names whose entry had problems
        self.title_refs: list[tuple[Endpoint, str, Any, ReportLine]] = []
        self.ordering = 0

    # -- helpers -------------------------------------------------------------------------------
    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}" if where else message)

    def skip(self, subject: str, reason: str, where: str = "") -> None:
        self.report.add("skipped", subject, where, reason)

    def expect(self, where: str, value: Any, expected: type) -> bool:
        if _is(value, expected):
            return True
        hint = "; quote it in YAML" if expected is str and isinstance(value, (int, float, bool)) else ""
        self.problem(where, f"expected {EXPECTED[expected]}, got {_describe(value)}{hint}.")
        return False

    def validation_problems(
        self, where: str, exc: ValidationError, keys: dict[str, str], model: type[models.Model]
    ) -> None:
        if not hasattr(exc, "error_dict"):
            for message in exc.messages:
                self.problem(where, message)
            return
        for field_name, errors in exc.error_dict.items():
            key = keys.get(field_name, field_name)
            for error in errors:
                for message in ValidationError(error).messages:
                    if getattr(error, "code", None) == "invalid_choice":
                        choices = [str(value) for value, _ in model._meta.get_field(field_name).choices]
                        message += f" Valid values: {', '.join(choices)}."
                    if field_name == NON_FIELD_ERRORS:
                        self.problem(where, message)
                    else:
                        self.problem(f"{where}.{key}", message)

    @staticmethod
    def apply(instance: models.Model, values: dict[str, Any]) -> list[str]:
        """Set `values` on `instance`; return the fields whose value changed."""
        changed = []
        for name, value in values.items():
            if isinstance(value, models.Model):  # a foreign key: compare ids, never load a missing row
                if getattr(instance, f"{name}_id") != value.pk:
                    setattr(instance, name, value)
                    changed.append(name)
                continue
            if getattr(instance, name) != value:
                setattr(instance, name, value)
                changed.append(name)
        return changed

    def next_ordering(self) -> int:
        self.ordering += 1
        return self.ordering * 10

    # -- top level -----------------------------------------------------------------------------
    def run(self, data: dict[str, Any]) -> None:
        version = data.get("version")
        if version is not None:
            self.report.version = str(version)
        for key, value in data.items():
            if key == "version":
                continue
            elif key == "endpoints":
                self.import_endpoints(value)
            elif key in ("modelSpecs", "balance", "interface"):
                continue  # after the endpoints: specs reference them
            else:
                self.skip(key, TOP_LEVEL_SKIP_REASONS.get(key, "not a librechat.yaml section Atrium imports"), key)
        if "modelSpecs" in data:
            self.import_model_specs(data["modelSpecs"])
        self.resolve_title_endpoints()  # after the specs: they may create a built-in a title names
        if "balance" in data:
            self.import_balance(data["balance"])
        if "interface" in data:
            self.import_interface(data["interface"])

    # -- endpoints -----------------------------------------------------------------------------
    def import_endpoints(self, section: Any) -> None:
        if not self.expect("endpoints", section, dict):
            return
        # Built-in kinds first, in LibreChat's selector order, then custom ones in file order.
        by_key = {str(k).lower(): k for k in section}
        for kind in BUILTIN_ORDER:
            key = by_key.get(kind.lower())
            if key is None:
                continue
            if kind == Kind.AZURE_OPENAI:
                self.import_azure(section[key])
            else:
                self.import_builtin(str(kind), key, section[key])
        for key, value in section.items():
            if str(key).lower() in {k.lower() for k in BUILTIN_ORDER}:
                continue
            if key == "custom":
                self.import_custom_list(value)
            else:
                self.skip(f"endpoints.{key}", ENDPOINTS_SKIP_REASONS.get(key, "not an endpoint kind Atrium knows"), f"endpoints.{key}")

    def import_custom_list(self, entries: Any) -> None:
        if not self.expect("endpoints.custom", entries, list):
            return
        for index, entry in enumerate(entries):
            where = f"endpoints.custom[{index}]"
            if not isinstance(entry, dict):
                self.problem(where, f"expected an endpoint object, got {_describe(entry)}.")
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
            elif key in ENDPOINT_SPECIAL_KEYS:
                continue
            else:
                self.skip(f"{where}.{key}", ENDPOINT_SKIP_REASONS.get(key, "not a key of LibreChat's endpoint object that Atrium imports"), where)
        if overrides:
            values.update(overrides)
        values["provider"] = KIND_PROTOCOLS.get(kind, values["provider"])  # (as Endpoint.save sets it)

        models_given = "models" in entry
        listed: list[str] = []
        if models_given:
            listed_or_none = self.read_models_block(where, entry["models"], values)
            if listed_or_none is None:
                ok = False
            else:
                listed = listed_or_none
        elif kind == Kind.CUSTOM:
            self.problem(f"{where}.models", "models is required (models.default: a list of model names).")
            ok = False
        rates = self.read_token_config(where, entry.get("tokenConfig"))
        if rates is None:
            ok = False
        lower = (name or "").strip().lower()
        if lower and (lower in self.file_endpoints or lower in self.failed):
            self.problem(where, f"the endpoint name '{name}' is used twice in this file (also {self.file_where[lower]}); names are case-insensitive.")
            return None
        if lower:
            self.file_where[lower] = where

        existing = Endpoint.objects.filter(name__iexact=name.strip()).first() if lower else None
        if existing is not None and existing.kind != kind:
            try:  # a custom endpoint named like a built-in: say that, not "name taken"
                config.validate_endpoint_name(name, kind)
            except ValidationError as exc:
                self.problem(f"{where}.{(keys or FIELD_KEYS)['name']}", exc.messages[0])
                self.failed.add(lower)
                return None
            self.problem(where, f"the name '{existing.name}' is already taken by an endpoint of kind {existing.kind} in the database; rename one of them.")
            self.failed.add(lower)
            return None
        endpoint = existing or Endpoint(ordering=self.next_ordering())
        changed = self.apply(endpoint, values)
        try:  # even after a shape problem, so one run names every problem of the entry
            endpoint.full_clean(exclude=["title_endpoint"])
        except ValidationError as exc:
            self.validation_problems(where, exc, keys or FIELD_KEYS, Endpoint)
            ok = False
        if not ok:
            self.failed.add(lower)
            return None
        if existing is None or changed:
            endpoint.save()
        model_changes = self.sync_models(where, endpoint, listed if models_given else None, rates or {})
        if model_changes is None:
            self.failed.add(lower)
            return None
        subject = f"endpoint '{endpoint.name}'"
        if existing is None:
            detail = f"{endpoint.get_kind_display()}"
            names = endpoint.listed_model_names()
            detail += f"; models: {', '.join(names)}" if names else ""
            detail += "; models fetched from the API" if endpoint.models_fetch else ""
            line = self.report.add("created", subject, where, detail)
        elif changed or model_changes:
            keys_map = keys or FIELD_KEYS
            parts = [keys_map.get(f, FIELD_KEYS.get(f, f)) for f in changed] + model_changes
            line = self.report.add("updated", subject, where, ", ".join(dict.fromkeys(parts)))
        else:
            line = self.report.add("unchanged", subject, where)
        self.file_endpoints[lower] = endpoint
        self.title_refs.append((endpoint, where, entry.get("titleEndpoint"), line))
        return endpoint

    def read_models_block(self, where: str, block: Any, values: dict[str, Any]) -> list[str] | None:
        if not self.expect(f"{where}.models", block, dict):
            return None
        ok = True
        default = block.get("default")
        if default is None:
            self.problem(f"{where}.models.default", "models.default is required (a list of model names).")
            ok = False
        elif not isinstance(default, list) or not all(isinstance(m, str) and m.strip() for m in default):
            self.problem(f"{where}.models.default", f"expected a list of model names, got {_describe(default)}.")
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
                    self.skip(f"{at}.{key}", "a rate has only prompt, completion, context, cacheRead, cacheWrite", where)
                    continue
                expected = int if key == "context" else Decimal
                if not self.expect(f"{at}.{key}", raw, expected):
                    ok = False
                    continue
                values[RATE_KEYS[key]] = raw if key == "context" else _decimal(raw)
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
                    self.skip(f"{where}.titleEndpoint", f"'{ref}' is not a configured endpoint; titles use this endpoint", where)
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

    # -- azure ---------------------------------------------------------------------------------
    def import_azure(self, section: Any) -> None:
        where = "endpoints.azureOpenAI"
        if not self.expect(where, section, dict):
            return
        groups = section.get("groups")
        if groups is None:
            self.problem(f"{where}.groups", "groups is required (one entry per Azure resource).")
            return
        if not self.expect(f"{where}.groups", groups, list):
            return
        shared = {}
        for key, value in section.items():
            if key == "groups":
                continue
            if key in ("models", "tokenConfig", "apiKey", "baseURL", "name"):
                self.skip(f"{where}.{key}", "set per group in azureOpenAI.groups[]", where)
            elif key in ENDPOINT_KEYS or key == "titleEndpoint":
                shared[key] = value  # shared settings: apply to every group
            else:
                self.skip(f"{where}.{key}", ENDPOINT_SKIP_REASONS.get(key, "not a key of LibreChat's endpoint object that Atrium imports"), where)
        for index, group in enumerate(groups):
            at = f"{where}.groups[{index}]"
            if not isinstance(group, dict):
                self.problem(at, f"expected a group object, got {_describe(group)}.")
                continue
            if isinstance(group.get("group"), str):
                at += f" ({group['group']})"
            self.import_azure_group(at, shared, group)

    def import_azure_group(self, where: str, shared: dict[str, Any], group: dict[str, Any]) -> None:
        ok = True
        for key in group:
            if key not in AZURE_GROUP_KEYS:
                self.skip(f"{where}.{key}", ENDPOINT_SKIP_REASONS.get(key, "not a key of an Azure group Atrium imports"), where)
        if group.get("serverless"):
            self.skip(where, "serverless Azure groups are not imported; configure them as a custom endpoint "
                             "(baseURL, apiKey, headers {api-key: ...})", where)
            return
        name = group.get("group")
        if not isinstance(name, str) or not name.strip():
            self.problem(f"{where}.group", "group is required (the name shown for this Azure resource).")
            return
        strings = {}
        for key in ("apiKey", "instanceName", "deploymentName", "version", "baseURL"):
            if key in group:
                if self.expect(f"{where}.{key}", group[key], str):
                    strings[key] = group[key].strip()
                else:
                    ok = False
        version = strings.get("version")
        if not version and "version" not in group:
            self.problem(f"{where}.version", "version is required (sent as the api-version query parameter).")
            ok = False
        instance = strings.get("instanceName", "")
        base_url = strings.get("baseURL", "")
        if base_url:
            if "${INSTANCE_NAME}" in base_url:
                if not instance:
                    self.problem(f"{where}.baseURL", "uses ${INSTANCE_NAME} but the group has no instanceName.")
                    ok = False
                base_url = base_url.replace("${INSTANCE_NAME}", instance)
            base_url = base_url.rstrip("/")
            if base_url.endswith("/${DEPLOYMENT_NAME}"):
                base_url = base_url[: -len("/${DEPLOYMENT_NAME}")]
            if "${DEPLOYMENT_NAME}" in base_url:
                self.problem(f"{where}.baseURL", "${DEPLOYMENT_NAME} is supported only as the last path segment "
                                                 "(Atrium appends /<deployment>/chat/completions).")
                ok = False
        elif instance:
            base_url = AZURE_HOST.format(instance=instance)
        elif "instanceName" not in group:
            self.problem(f"{where}.instanceName", "instanceName (or baseURL) is required.")
            ok = False
        models_block = group.get("models")
        listed: list[str] = []
        deployments: dict[str, str] = {}
        if models_block is None:
            self.problem(f"{where}.models", "models is required (model name: true, or {deploymentName, version}).")
            ok = False
        elif self.expect(f"{where}.models", models_block, dict):
            for model_name, spec in models_block.items():
                at = f"{where}.models.{model_name}"
                deployment = strings.get("deploymentName") or str(model_name)
                if spec is False:
                    self.skip(at, "set to false: not offered", where)
                    continue
                if isinstance(spec, dict):
                    for key, value in spec.items():
                        if key == "deploymentName":
                            if self.expect(f"{at}.deploymentName", value, str):
                                deployment = value
                            else:
                                ok = False
                        elif key == "version":
                            if value != version:
                                self.skip(f"{at}.version", f"Atrium sends one api-version per Azure group; "
                                                           f"{version!r} is used for this model too", where)
                        else:
                            self.skip(f"{at}.{key}", "a model takes only deploymentName and version", where)
                elif spec is not True:
                    self.problem(at, f"expected true or {{deploymentName, version}}, got {_describe(spec)}.")
                    ok = False
                    continue
                listed.append(str(model_name))
                deployments[str(model_name)] = deployment
        else:
            ok = False
        if not ok:
            self.failed.add(name.strip().lower())
            return
        entry = dict(shared)
        for key in ("addParams", "dropParams"):
            if key in group:
                entry[key] = group[key]
        if "additionalHeaders" in group:
            entry["headers"] = group["additionalHeaders"]
        overrides = {"api_key": strings.get("apiKey", ""), "base_url": base_url,
                     "query_params": {"api-version": version} if version else {}}
        keys = FIELD_KEYS | {"name": "group", "headers": "additionalHeaders", "query_params": "version",
                             "base_url": "baseURL" if "baseURL" in group else "instanceName"}
        endpoint = self.import_endpoint(where, entry, kind=Kind.AZURE_OPENAI, name=name.strip(),
                                        overrides=overrides, keys=keys)
        if endpoint is None:
            return
        changes = self.sync_models(where, endpoint, listed, {}, deployments)
        line = self.report.find(f"endpoint '{endpoint.name}'")
        if changes and line is not None:
            if line.action == "created":
                line.detail = f"{endpoint.get_kind_display()}; models: " + ", ".join(
                    f"{m} (deployment {deployments[m]})" for m in listed)
            else:
                if line.action == "unchanged":
                    line.action = "updated"
                line.detail = ", ".join(filter(None, [line.detail, *changes]))

    # -- model specs ---------------------------------------------------------------------------
    def import_model_specs(self, section: Any) -> None:
        where = "modelSpecs"
        if not self.expect(where, section, dict):
            return
        switches: dict[str, Any] = {}
        for key, value in section.items():
            if key in ("enforce", "prioritize"):
                if self.expect(f"{where}.{key}", value, bool):
                    switches[f"model_specs_{key}"] = value
            elif key == "list":
                continue
            elif key == "addedEndpoints":
                self.skip(f"{where}.addedEndpoints", "which endpoints sit beside the specs is a role setting in the admin (allowed endpoints)", where)
            else:
                self.skip(f"{where}.{key}", "not a modelSpecs key Atrium imports", where)
        if switches:
            portal = PortalSettings.load()
            changed = self.apply(portal, switches)
            if changed:
                portal.save()
            keys = ", ".join(f"{where}.{f.removeprefix('model_specs_')}" for f in switches)
            self.report.add("updated" if changed else "unchanged", "portal settings (model specs switches)", keys,
                            ", ".join(f"{f.removeprefix('model_specs_')} = {str(switches[f]).lower()}" for f in changed))
        specs = section.get("list")
        if specs is None:
            return
        if not self.expect(f"{where}.list", specs, list):
            return
        seen: dict[str, str] = {}
        parsed = []
        for index, spec in enumerate(specs):
            at = f"{where}.list[{index}]"
            if not isinstance(spec, dict):
                self.problem(at, f"expected a model spec object, got {_describe(spec)}.")
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
        defaults = [at for at, spec, _ in parsed if spec.get("default") is True]
        if len(defaults) > 1:
            self.problem(f"{where}.list", f"only one spec can be the default; {' and '.join(defaults)} both say default: true.")
            return
        # The default spec last, so moving the default from one spec to another never clashes.
        for at, spec, index in sorted(parsed, key=lambda item: bool(item[1].get("default"))):
            self.import_model_spec(at, spec, index)

    def import_model_spec(self, where: str, spec: dict[str, Any], index: int) -> None:
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
            self.problem(f"{where}.preset.endpoint", "preset.endpoint is required (an endpoint name or a built-in key such as openAI).")
            return
        if not ok:
            return
        endpoint = self.spec_endpoint(where, ref.strip(), preset_values["model"])
        if endpoint is None:
            return
        values.update(preset_values)
        values["endpoint"] = endpoint
        if values["is_default"]:
            for other in ModelSpec.objects.filter(is_default=True).exclude(name=values["name"]):
                other.is_default = False
                other.save(update_fields=["is_default"])
                self.report.add("updated", f"model spec '{other.name}'", "", f"no longer the default ('{values['name']}' is)")
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
            self.report.add("created", subject, where, f"{endpoint.name} / {instance.model}")
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

        def take(keys: tuple[str, ...], field_name: str, expected: type, convert: Callable[[Any], Any] = lambda v: v) -> None:
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
        take(("temperature",), "temperature", Decimal, _decimal)
        take(PRESET_TOP_P, "top_p", Decimal, _decimal)
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
            self.skip(where, f"preset.endpoint '{ref}': {ENDPOINTS_SKIP_REASONS.get(kind, 'not an endpoint Atrium serves')}", where)
            return None
        endpoint = Endpoint.objects.filter(name__iexact=ref).first()
        if endpoint is None:
            self.skip(where, f"preset.endpoint '{ref}' is not a configured endpoint (not in this file, not in the database)", where)
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
                f"created because referenced by {where}; apiKey {endpoint.api_key}, baseURL {endpoint.base_url}; models:",
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

    # -- balance and interface -----------------------------------------------------------------
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
            values[field_name] = _decimal(raw) if expected is Decimal else raw
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
            values[field_name] = _decimal(value) if expected is Decimal else value
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
