"""Endpoints API: what the caller may chat with (the model selector's data) and the caller's own
provider keys, which are set and deleted but never read back."""
from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest
from ninja import Router, Status
from ninja.errors import HttpError

from accounts.auth import caller, key_or_session
from endpoints.models import Endpoint, UserProviderKey
from endpoints.schemas import OfferOut, ProviderKeyIn, ProviderKeyOut
from endpoints.selectors import offer_payload, provider_keys
from endpoints.services import provider_key_delete, provider_key_set

router = Router(tags=["models"], auth=key_or_session)


@router.get("/models", response=OfferOut)
def models(request: HttpRequest) -> dict[str, Any]:
    """The model specs, endpoints and models the caller's role may use, in the selector's order."""
    return offer_payload(user=caller(request).user)


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
