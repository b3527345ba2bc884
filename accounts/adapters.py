"""allauth customisation: who may sign up, which email domains, the LDAP-down message, and SSO
users' role (from their IdP groups, through accounts.services.resolve_role — shared with LDAP)."""
from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from django import forms
from django.http import HttpRequest
from django.shortcuts import render
from django.utils.translation import gettext as _

from accounts.conf import GROUPS_SOURCES
from accounts.models import GroupSource, SignInPolicy
from accounts.services import UnmappedGroupsError, groups_from_claims, resolve_role
from portal import crypto

LDAP_UNREACHABLE = "_atrium_ldap_unreachable"
LDAP_UNMAPPED = "_atrium_ldap_unmapped"


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return SignInPolicy.load().allow_signup

    def clean_email(self, email: str) -> str:
        email = super().clean_email(email)
        policy = SignInPolicy.load()
        if not policy.allows_email(email):
            raise forms.ValidationError(
                _("Sign-up is limited to addresses at %(domains)s.") % {"domains": ", ".join(policy.domains)}
            )
        return email

    def authenticate(self, request: HttpRequest, **credentials: Any):
        user = super().authenticate(request, **credentials)
        if user is None and getattr(request, LDAP_UNMAPPED, False):
            raise forms.ValidationError(str(UnmappedGroupsError(())), code="ldap_unmapped")
        if user is None and getattr(request, LDAP_UNREACHABLE, False):
            raise forms.ValidationError(
                _("The company directory (LDAP) cannot be reached right now, so directory accounts "
                  "cannot sign in. Please try again in a few minutes; local accounts still work."),
                code="ldap_unreachable",
            )
        return user


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        # The company IdP decides who exists; the sign-up switch is for local accounts only.
        # Users whose groups map to nothing are refused in pre_social_login when the policy says so.
        return True

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """Map the IdP's groups to a role at every login, so group changes apply at the next one."""
        provider = sociallogin.account.get_provider(request)
        app_settings = provider.app.settings or {}
        source = app_settings.get("groups_source", "auto")
        if source not in GROUPS_SOURCES:
            source = "auto"
        extra = sociallogin.account.extra_data or {}
        groups = groups_from_claims(
            userinfo=extra.get("userinfo"), id_token=extra.get("id_token"),
            claim=app_settings.get("groups_claim", "groups"), source=source,
        )
        user = sociallogin.user
        try:
            role = resolve_role(groups, GroupSource.OIDC, user=user)
        except UnmappedGroupsError as exc:
            response = render(request, "account/sso_refused.html", {"message": str(exc), "provider": provider}, status=403)
            raise ImmediateHttpResponse(response) from exc
        user.role = role
        user.openid_id = sociallogin.account.uid
        user.auth_provider = "openid"
        if user.pk:
            user.save(update_fields=["role", "openid_id", "auth_provider"])
            self._trust_idp_verified_emails(sociallogin)

    @staticmethod
    def _trust_idp_verified_emails(sociallogin: SocialLogin) -> None:
        """An existing user signing in through the company IdP has proven the addresses the IdP
        vouches for, so they need no second verification by email."""
        from allauth.account.models import EmailAddress

        user = sociallogin.user
        for address in sociallogin.email_addresses:
            if not address.verified:
                continue
            existing = EmailAddress.objects.filter(user=user, email__iexact=address.email).first()
            if existing is None:
                EmailAddress.objects.create(user=user, email=address.email, verified=True,
                                            primary=not EmailAddress.objects.filter(user=user, primary=True).exists())
            elif not existing.verified:
                existing.verified = True
                existing.save(update_fields=["verified"])

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data: dict[str, Any]):
        user = super().populate_user(request, sociallogin, data)
        user.name = (data.get("name") or " ".join(filter(None, [data.get("first_name"), data.get("last_name")])))[:200]
        return user


class MFAAdapter(DefaultMFAAdapter):
    """TOTP secrets and recovery-code seeds are encrypted at rest like every other secret."""

    def encrypt(self, text: str) -> str:
        return crypto.encrypt(text)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt(encrypted_text)
