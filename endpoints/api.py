"""Endpoints API: what the caller may chat with (the model selector's data) and the caller's own
provider keys, which are set and deleted but never read back."""
from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest
from ninja import Router, Status
from ninja.errors import HttpError

from accounts.auth import caller, key_or_session
from endpoints.models import Endpoint, EndpointModel, ModelSpec, UserProviderKey
from endpoints.schemas import OfferOut, ProviderKeyIn, ProviderKeyOut
from endpoints.selectors import offer_for, provider_keys
from endpoints.services import provider_key_delete, provider_key_set

router = Router(tags=["models"], auth=key_or_session)


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
    }


def _spec(spec: ModelSpec) -> dict[str, Any]:
    return {
        "name": spec.name, "label": spec.label, "description": spec.description, "group": spec.group,
        "group_icon": spec.group_icon, "icon_url": spec.icon_url, "is_default": spec.is_default,
        "endpoint": spec.endpoint.name, "model": spec.model,
    }


@router.get("/models", response=OfferOut)
def models(request: HttpRequest) -> dict[str, Any]:
    """The model specs, endpoints and models the caller's role may use, in the selector's order."""
    offer = offer_for(user=caller(request).user)
    return {
        "enforce": offer.enforce, "prioritize": offer.prioritize, "free_choice": offer.free_choice,
        "specs": [_spec(spec) for spec in offer.specs],
        "endpoints": [_endpoint(usable.endpoint, usable.rows) for usable in offer.endpoints],
    }


def _key_out(key: UserProviderKey) -> dict[str, Any]:
    return {"endpoint": key.endpoint.name, "expires_at": key.expires_at, "updated_at": key.updated_at}


@router.get("/provider-keys", response=list[ProviderKeyOut], tags=["provider keys"])
def list_provider_keys(request: HttpRequest) -> list[dict[str, Any]]:
    """Which endpoints the caller stored a key for."""
    return [_key_out(key) for key in provider_keys(user=caller(request).user)]


@router.put("/provider-keys/{endpoint}", response=ProviderKeyOut, tags=["provider keys"])
def set_provider_key(request: HttpRequest, endpoint: str, payload: ProviderKeyIn) -> dict[str, Any]:
    """Store the caller's key (and base URL) for an endpoint that takes one; replaces any earlier."""
    try:
        key = provider_key_set(
            user=caller(request).user, endpoint_name=endpoint, api_key=payload.api_key,
            base_url=payload.base_url, expires_at=payload.expires_at,
        )
    except Endpoint.DoesNotExist:
        raise Http404 from None
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None
    return _key_out(key)


@router.delete("/provider-keys/{endpoint}", response={204: None}, tags=["provider keys"])
def delete_provider_key(request: HttpRequest, endpoint: str) -> Status[Any]:
    if not provider_key_delete(user=caller(request).user, endpoint_name=endpoint):
        raise Http404
    return Status(204, None)
