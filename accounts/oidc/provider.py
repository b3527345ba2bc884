"""allauth's OpenID Connect provider, hardened.

allauth (65.x) sends no `nonce` and skips the ID token signature when the token came straight from
the token endpoint (allowed by OIDC Core §3.1.3.7 over TLS). Atrium verifies both: the ID token must
be signed by a key from the IdP's JWKS, be issued for our client by the discovered issuer, and
carry the nonce stashed with this login's state. Registered in place of the stock class through
SOCIALACCOUNT_PROVIDERS["openid_connect"]["provider_class"]; URLs and names stay allauth's.
"""
from __future__ import annotations

from typing import Any

from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import get_random_string

from accounts.oidc.views import AtriumOpenIDConnectAdapter


class AtriumOpenIDConnectProvider(OpenIDConnectProvider):
    oauth2_adapter_class = AtriumOpenIDConnectAdapter
    package = "accounts.oidc"

    def redirect(
        self, request: HttpRequest, process: Any, next_url: str | None = None, data: Any = None, **kwargs: Any
    ) -> HttpResponse:
        nonce = get_random_string(32)
        auth_params = kwargs.pop("auth_params", None)
        if auth_params is None:
            auth_params = self.get_auth_params()
        auth_params["nonce"] = nonce
        return super().redirect(request, process, next_url, data, auth_params=auth_params, nonce=nonce, **kwargs)


provider_classes = [AtriumOpenIDConnectProvider]
