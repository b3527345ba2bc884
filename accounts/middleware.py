"""Request middleware for accounts: roles that require two-factor, and the admin audit context."""
from __future__ import annotations

from collections.abc import Callable

from auditlog.context import set_actor
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.audit import admin_change


def needs_two_factor(user) -> bool:
    """The user's role requires TOTP and the user has not set it up (SSO users: their IdP's job)."""
    from allauth.mfa.models import Authenticator

    role = getattr(user, "role", None)
    if role is None or not role.requires_2fa or user.auth_provider == "openid":
        return False
    return not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


class RequireTwoFactorMiddleware:
    """Until a user whose role requires two-factor has activated TOTP, every page but the account
    pages (activation, logout, ...) sends them to the TOTP set-up page."""

    EXEMPT_PREFIXES = ("/accounts/", "/static/", "/i18n/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None and user.is_authenticated
            and not request.path.startswith(self.EXEMPT_PREFIXES)
            and needs_two_factor(user)
        ):
            message = _("Your role requires two-factor authentication. Set up an authenticator app to continue.")
            if request.path.startswith("/api/"):
                return JsonResponse({"error": {"code": "two_factor_required", "message": message}}, status=403)
            messages.warning(request, message)
            return redirect(reverse("mfa_activate_totp"))
        return self.get_response(request)


class AdminAuditMiddleware:
    """Changes saved during an admin request are written to the audit log with the admin as actor."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if not (
            request.path.startswith(reverse("admin:index"))
            and user is not None
            and user.is_authenticated
            and user.is_staff
        ):
            return self.get_response(request)
        token = admin_change.set(True)
        try:
            with set_actor(user, remote_addr=request.META.get("REMOTE_ADDR")):
                return self.get_response(request)
        finally:
            admin_change.reset(token)
