"""allauth customisation: who may sign up, which email domains, the LDAP-down message, when an SSO
sign-in joins an existing account (accounts.services.sso_join_refusal), and SSO users' role (from
their IdP groups, through accounts.services.resolve_role — shared with LDAP)."""
from __future__ import annotations

from typing import Any, NoReturn

from allauth.account import stages
from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from django import forms
from django.db.models import Q
from django.http import HttpRequest
from django.shortcuts import render
from django.utils.translation import gettext as _

from accounts.conf import GROUPS_SOURCES
from accounts.models import GroupSource, SignInPolicy, User
from accounts.services import (
    UnmappedGroupsError,
    account_with_email,
    groups_from_claims,
    resolve_role,
    sso_join_refusal,
)
from portal import crypto

LDAP_UNREACHABLE = "_atrium_ldap_unreachable"
LDAP_UNMAPPED = "_atrium_ldap_unmapped"
LDAP_NAME_TAKEN = "_atrium_ldap_name_taken"


def _names_local_account(credentials: dict[str, Any]) -> bool:
    """The sign-in form named an account that does not sign in through the directory."""
    login = (credentials.get("username") or credentials.get("email") or "").strip()
    if not login:
        return False
    return User.objects.filter(Q(username__iexact=login) | Q(email__iexact=login)).exclude(auth_provider="ldap").exists()


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
        if user is None and getattr(request, LDAP_NAME_TAKEN, False):
            raise forms.ValidationError(
                _("Your directory account has the same name as an Atrium account that does not sign in "
                  "through the directory, so Atrium does not sign you in to it. Ask your administrator "
                  "to link the two."),
                code="ldap_name_taken",
            )
        # A local account's wrong password is a wrong password, whether or not the directory is up.
        if user is None and getattr(request, LDAP_UNREACHABLE, False) and not _names_local_account(credentials):
            raise forms.ValidationError(
                _("The company directory (LDAP) cannot be reached right now, so directory accounts "
                  "cannot sign in. Please try again in a few minutes; local accounts still work."),
                code="ldap_unreachable",
            )
        return user

    def get_login_stages(self) -> list[str]:
        """allauth's stages, with Atrium's email-verification stage (below) in place of its own."""
        return [
            "accounts.adapters.EmailVerificationStage" if path == "allauth.account.stages.EmailVerificationStage" else path
            for path in super().get_login_stages()
        ]


class EmailVerificationStage(stages.EmailVerificationStage):
    """allauth's stage, except for an account that has no email address at all (an admin created it
    without one, like the bootstrap admin): there is nothing to verify and no mail could reach it, so
    the password the admin gave it is its way in. Every address an account has is still verified."""

    def handle(self):
        from allauth.account.models import EmailAddress

        user = self.login.user
        if user is not None and not user.email and not EmailAddress.objects.filter(user_id=user.pk).exists():
            return None, True
        return super().handle()


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        # The company IdP decides who exists; the sign-up switch is for local accounts only.
        # Users whose groups map to nothing are refused in pre_social_login when the policy says so.
        return True

    def authenticate_by_email(self, sociallogin: SocialLogin):
        """The existing account a new SSO login joins by email: only one whose address Atrium verified
        and that is not staff (allauth's default trusts any account holding the address)."""
        for address in sociallogin.email_addresses:
            if not self.can_authenticate_by_email(sociallogin, address.email):
                continue
            user = account_with_email(address.email)
            if user is not None and sso_join_refusal(user, address.email, idp_verified=address.verified) is None:
                return user, address.email
        return None

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """Refuse a login that would clash with an account it may not join; map the IdP's groups to a
        role at every login, so group changes apply at the next one."""
        provider = sociallogin.account.get_provider(request)
        if not sociallogin.is_existing:
            self._refuse_clashing_account(request, sociallogin, provider)
        user = sociallogin.user
        try:
            role = resolve_role(self._idp_groups(sociallogin, provider), GroupSource.OIDC, user=user)
        except UnmappedGroupsError as exc:
            self._refuse(request, str(exc), provider)
        fields = ["openid_id"]
        user.openid_id = sociallogin.account.uid
        if user.groups_may_set_role():
            user.role = role
            fields.append("role")
        if not (user.pk and user.is_staff):  # an admin's sign-in method stays the admin's choice
            user.auth_provider = "openid"
            fields.append("auth_provider")
        if user.pk:
            user.save(update_fields=fields)
            self._trust_idp_verified_emails(sociallogin)

    @staticmethod
    def _idp_groups(sociallogin: SocialLogin, provider: Any) -> list[str]:
        """The user's groups from the claim and source the app's settings name."""
        app_settings = provider.app.settings or {}
        source = app_settings.get("groups_source", "auto")
        if source not in GROUPS_SOURCES:
            source = "auto"
        extra = sociallogin.account.extra_data or {}
        return groups_from_claims(
            userinfo=extra.get("userinfo"), id_token=extra.get("id_token"),
            claim=app_settings.get("groups_claim", "groups"), source=source,
        )

    def _refuse_clashing_account(self, request: HttpRequest, sociallogin: SocialLogin, provider: Any) -> None:
        """A new SSO login whose address an existing account holds, and that may not join it (see
        sso_join_refusal), is refused with what to do, rather than creating a second account with
        the same address or joining one that is not provably the same person's."""
        for address in sociallogin.email_addresses:
            user = account_with_email(address.email)
            if user is None:
                continue
            refusal = sso_join_refusal(user, address.email, idp_verified=address.verified)
            if refusal is not None:
                self._refuse(request, refusal, provider)

    @staticmethod
    def _refuse(request: HttpRequest, message: str, provider: Any) -> NoReturn:
        response = render(request, "account/sso_refused.html", {"message": message, "provider": provider}, status=403)
        raise ImmediateHttpResponse(response)

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
