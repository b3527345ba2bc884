"""Login and callback views of Atrium's OpenID Connect provider (see provider.py)."""
from __future__ import annotations

from typing import Any

from allauth.account.internal.decorators import login_not_required
from allauth.socialaccount.internal import jwtkit
from allauth.socialaccount.models import SocialApp, SocialToken
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView, OAuth2LoginView
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare


class AtriumOpenIDConnectAdapter(OpenIDConnectOAuth2Adapter):
    expected_nonce: str | None = None

    def complete_login(self, request: HttpRequest, app: SocialApp, token: SocialToken, **kwargs: Any):
        id_token_str = kwargs["response"].get("id_token")
        if not id_token_str:
            raise OAuth2Error("The identity provider returned no ID token.")
        id_token = self._decode_id_token(app, id_token_str)
        nonce = id_token.get("nonce")
        if (
            not self.expected_nonce
            or not isinstance(nonce, str)
            or not constant_time_compare(nonce, self.expected_nonce)
        ):
            raise OAuth2Error("The ID token's nonce does not match this login.")
        data: dict[str, Any] = {"id_token": id_token}
        if app.settings.get("fetch_userinfo", True):
            userinfo = self._fetch_user_info(token.token)
            if str(userinfo.get("sub")) != str(id_token.get("sub")):
                raise OAuth2Error("The userinfo response is for another subject than the ID token.")
            data["userinfo"] = userinfo
        return self.get_provider().sociallogin_from_response(request, data)

    def _decode_id_token(self, app: SocialApp, id_token: str) -> dict:
        return jwtkit.verify_and_decode(
            credential=id_token,
            keys_url=self.openid_config["jwks_uri"],
            issuer=self.openid_config["issuer"],
            audience=app.client_id,
            lookup_kid=jwtkit.lookup_kid_jwk,
            verify_signature=True,
        )


class AtriumCallbackView(OAuth2CallbackView):
    def _get_state(self, request: HttpRequest, provider: Any):
        state, response = super()._get_state(request, provider)
        if state is not None:
            self.adapter.expected_nonce = state.get("nonce")
        return state, response


@login_not_required
def login(request: HttpRequest, provider_id: str) -> HttpResponse:
    try:
        return OAuth2LoginView.adapter_view(AtriumOpenIDConnectAdapter(request, provider_id))(request)
    except SocialApp.DoesNotExist:
        raise Http404 from None  # no such provider: a plain not-found


@login_not_required
def callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    try:
        return AtriumCallbackView.adapter_view(AtriumOpenIDConnectAdapter(request, provider_id))(request)
    except SocialApp.DoesNotExist:
        raise Http404 from None  # no such provider: a plain not-found
