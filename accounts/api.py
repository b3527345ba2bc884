"""Accounts API: who am I, and my personal API keys (owner-scoped)."""
from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Router, Status
from ninja.errors import HttpError

from accounts.auth import caller, key_or_session, session_auth
from accounts.models import ApiKey
from accounts.schemas import ApiKeyCreatedOut, ApiKeyIn, ApiKeyOut, MeOut
from accounts.services import api_key_create

router = Router(tags=["accounts"], auth=key_or_session)


@router.get("/me", response=MeOut)
def me(request: HttpRequest):
    principal = caller(request)
    user = principal.user
    role = principal.role
    return {
        "id": user.pk, "username": user.username, "email": user.email, "name": str(user),
        "auth_provider": user.auth_provider, "via_api_key": principal.via_api_key,
        "role": {"name": role.name, "label": str(role), "can_use_api": role.can_use_api} if role else None,
    }


@router.get("/keys", response=list[ApiKeyOut])
def list_keys(request: HttpRequest):
    return ApiKey.objects.filter(user=caller(request).user)


@router.post("/keys", response={201: ApiKeyCreatedOut}, auth=session_auth)
def create_key(request: HttpRequest, payload: ApiKeyIn):
    """Create a key (browser session only, so a leaked key cannot mint more). The key is in this
    response and nowhere else."""
    principal = caller(request)
    if principal.role is None or not principal.role.can_use_api:
        raise HttpError(403, _("Your role does not include API access."))
    if payload.expires_at is not None and payload.expires_at <= timezone.now():
        raise HttpError(422, _("The expiry date must be in the future."))
    issued = api_key_create(user=principal.user, name=payload.name, expires_at=payload.expires_at)
    key = issued.api_key
    return Status(201, {**ApiKeyOut.model_validate(key, from_attributes=True).model_dump(), "key": issued.key})


@router.delete("/keys/{key_id}", response={204: None})
def revoke_key(request: HttpRequest, key_id: int):
    get_object_or_404(ApiKey, pk=key_id, user=caller(request).user).revoke()
    return Status(204, None)
