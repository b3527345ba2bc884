"""Reads of the configuration for the UI: what a user may chat with."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import Prefetch

from endpoints.config import PORTAL_CONTROLLED_PARAMS
from endpoints.models import Endpoint, EndpointModel, Kind, ModelSpec, UserProviderKey
from portal.models import PortalSettings

if TYPE_CHECKING:
    from accounts.models import User


@dataclass(frozen=True)
class UsableEndpoint:
    endpoint: Endpoint
    models: list[str]  # the listed models, in the selector's order
    rows: list[EndpointModel] = field(default_factory=list)  # the same models (capabilities, rates)


@dataclass(frozen=True)
class Offer:
    """The model specs and, when free choice is allowed, the endpoints and models a user may use."""

    specs: list[ModelSpec]
    endpoints: list[UsableEndpoint]
    free_choice: bool  # may pick an endpoint and model, not only a spec
    enforce: bool = False  # modelSpecs.enforce: chat only through specs
    prioritize: bool = True  # modelSpecs.prioritize: the default spec wins over the last selection


def offer_for(*, user: User) -> Offer:
    """What `user`'s role lets them use, by the rules of a chat turn's permission check
    (chat.services): enabled specs the role may see (none selected: all) on enabled endpoints; and,
    unless specs are enforced or the role may not choose models freely, the enabled endpoints the
    role may use (none selected: all) with their listed models."""
    role = user.role
    specs = ModelSpec.objects.filter(enabled=True, endpoint__enabled=True).select_related("endpoint")
    allowed_specs = role.allowed_model_specs.all() if role else ModelSpec.objects.none()
    if role is not None and allowed_specs.exists():
        specs = specs.filter(pk__in=allowed_specs)
    portal = PortalSettings.load()
    free_choice = role is not None and role.can_choose_models and not portal.model_specs_enforce
    endpoints: list[UsableEndpoint] = []
    if free_choice:
        rows = Endpoint.objects.enabled().prefetch_related(
            Prefetch("models", queryset=EndpointModel.objects.filter(listed=True))
        )
        allowed_endpoints = role.allowed_endpoints.all()
        if allowed_endpoints.exists():
            rows = rows.filter(pk__in=allowed_endpoints)
        endpoints = [
            UsableEndpoint(endpoint, [m.name for m in endpoint.models.all()], list(endpoint.models.all()))
            for endpoint in rows
        ]
    return Offer(
        specs=list(specs), endpoints=endpoints, free_choice=free_choice,
        enforce=portal.model_specs_enforce, prioritize=portal.model_specs_prioritize,
    )


# --- the selector's data as GET /api/models serves it (and the chat page renders it) -------------

def offer_payload(*, user: User) -> dict[str, Any]:
    """`offer_for(user)` as plain data: what GET /api/models answers and the chat page's model
    selector draws (one path for both)."""
    offer = offer_for(user=user)
    return {
        "enforce": offer.enforce, "prioritize": offer.prioritize, "free_choice": offer.free_choice,
        "specs": [_spec(spec) for spec in offer.specs],
        "endpoints": [_endpoint(usable.endpoint, usable.rows) for usable in offer.endpoints],
    }


def _model(row: EndpointModel) -> dict[str, Any]:
    return {
        "name": row.name, "label": row.label or row.name, "context_tokens": row.context_tokens,
        "capabilities": {
            "tools": row.supports_tools, "structured_output": row.supports_structured_output,
            "json_mode": row.supports_json_mode, "vision": row.supports_vision,
            "reasoning": row.supports_reasoning, "runs_locally": row.runs_locally,
        },
        "rates": {
            "prompt": row.prompt_rate, "completion": row.completion_rate,
            "cache_read": row.cache_read_rate, "cache_write": row.cache_write_rate,
        },
    }


def _endpoint(endpoint: Endpoint, rows: list[EndpointModel]) -> dict[str, Any]:
    return {
        "id": endpoint.pk, "name": endpoint.name, "kind": endpoint.kind, "icon_url": endpoint.icon_url,
        "display_label": endpoint.model_display_label, "user_provides_key": endpoint.user_provides_key,
        "user_provides_base_url": endpoint.user_provides_base_url, "models": [_model(row) for row in rows],
        "params_endpoint": params_endpoint(endpoint),
        "param_definitions": param_definitions(endpoint),
    }


def _spec(spec: ModelSpec) -> dict[str, Any]:
    return {
        "name": spec.name, "label": spec.label, "description": spec.description, "group": spec.group,
        "group_icon": spec.group_icon, "icon_url": spec.icon_url, "is_default": spec.is_default,
        "endpoint": spec.endpoint.name, "endpoint_kind": spec.endpoint.kind, "model": spec.model,
        "params": spec.preset_params(),
    }


def params_endpoint(endpoint: Endpoint) -> str:
    """Which parameter set the UI offers (customParams.defaultParamsEndpoint; default: `anthropic`
    for the Anthropic protocol or kind, `google` for Google, else `custom`)."""
    chosen = (endpoint.custom_params or {}).get("defaultParamsEndpoint")
    if isinstance(chosen, str) and chosen:
        return chosen
    if endpoint.kind == Kind.ANTHROPIC or endpoint.provider == "anthropic":
        return "anthropic"
    return "google" if endpoint.kind == Kind.GOOGLE else "custom"


# The parts of a paramDefinitions entry the parameters panel reads (LibreChat's SettingDefinition).
_DEFINITION_TEXT = ("type", "component", "label", "description", "placeholder")


def param_definitions(endpoint: Endpoint) -> list[dict[str, Any]]:
    """The endpoint's customParams.paramDefinitions, reduced to what the panel reads, each value of
    the type the panel expects (anything else left out)."""
    found: list[dict[str, Any]] = []
    for raw in (endpoint.custom_params or {}).get("paramDefinitions") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("key"), str) or raw["key"] in PORTAL_CONTROLLED_PARAMS:
            continue
        entry: dict[str, Any] = {"key": raw["key"]}
        entry.update({k: raw[k] for k in _DEFINITION_TEXT if isinstance(raw.get(k), str)})
        if isinstance(raw.get("default"), (str, int, float, bool)):
            entry["default"] = raw["default"]
        numbers = raw.get("range") if isinstance(raw.get("range"), dict) else {}
        span = {k: numbers[k] for k in ("min", "max", "step") if _is_number(numbers.get(k))}
        if span:
            entry["range"] = span
        options = raw.get("options")
        if isinstance(options, list):
            entry["options"] = [o for o in options if isinstance(o, (str, int, float)) and not isinstance(o, bool)]
        found.append(entry)
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def keyed_endpoints(*, user: User) -> list[Endpoint]:
    """The endpoints `user` may use (freely or through a spec) that take the user's own key or
    base URL, in the selector's order."""
    offer = offer_for(user=user)
    seen: dict[int, Endpoint] = {}
    for endpoint in [usable.endpoint for usable in offer.endpoints] + [spec.endpoint for spec in offer.specs]:
        if endpoint.user_provides_key or endpoint.user_provides_base_url:
            seen.setdefault(endpoint.pk, endpoint)
    return list(seen.values())


def provider_keys(*, user: User) -> list[UserProviderKey]:
    """Which endpoints `user` stored a key for (the rows; never show their secrets)."""
    return list(UserProviderKey.objects.filter(user=user).select_related("endpoint").order_by("endpoint__name"))
