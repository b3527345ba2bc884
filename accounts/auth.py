"""django-ninja authentication: personal API keys (Bearer atr_...) and the browser session.

Both return a Principal into `request.auth`; a key acts with its owner's role and nothing more.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja.errors import HttpError
from ninja.security import HttpBearer, SessionAuth

from accounts.models import ApiKey, Role, User
from accounts.services import api_key_authenticate
from portal.ratelimit import check_request


@dataclass(frozen=True)
class Principal:
    user: User
    role: Role | None
    api_key: ApiKey | None = None  # None: signed in through the browser session

    @property
    def via_api_key(self) -> bool:
        return self.api_key is not None


def caller(request: HttpRequest) -> Principal:
    """Who an authenticated API request acts for (ninja puts the auth's result on `request.auth`)."""
    principal: Principal = getattr(request, "auth")  # noqa: B009 - HttpRequest declares no `auth`
    return principal


class ApiKeyAuth(HttpBearer):
    """`Authorization: Bearer atr_…`; 401 for unknown, revoked or expired keys and inactive owners,
    403 when the owner's role has no API access, 429 over the role's requests per minute."""

    openapi_description = "Personal API key (create one under /api/keys), sent as a Bearer token."

    def authenticate(self, request: HttpRequest, token: str) -> Principal | None:
        api_key = api_key_authenticate(token)
        if api_key is None:
            return None
        user = api_key.user
        if user.role is None or not user.role.can_use_api:
            raise HttpError(403, _("Your role does not include API access."))
        check_request(user)  # the role's requests per minute (RateLimited: 429 with Retry-After)
        request.user = user
        return Principal(user=user, role=user.role, api_key=api_key)


class SessionPrincipalAuth(SessionAuth):
    """The signed-in browser user (CSRF-checked for unsafe methods, as ninja's SessionAuth)."""

    def authenticate(self, request: HttpRequest, key: Any) -> Principal | None:
        if "authorization" in request.headers:
            return None  # a request that presents a key is judged by that key alone
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_active:
            return Principal(user=user, role=user.role)
        return None


api_key_auth = ApiKeyAuth()
session_auth = SessionPrincipalAuth()
key_or_session = [api_key_auth, session_auth]
