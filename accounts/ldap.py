"""LDAP / Active Directory sign-in (django-auth-ldap), configured by AUTH_LDAP_* (accounts.conf).

At every LDAP login the user's directory groups (names and DNs) go through the same role mapping
as OIDC (accounts.services.resolve_role; an existing staff account keeps its role unless an admin
opted in), and User.ldap_id / auth_provider are kept current. An existing account of the same
username is signed in to only if it is a directory account (README, "When an SSO or LDAP sign-in
joins, creates or refuses an account").
"""
from __future__ import annotations

from typing import Any

import ldap
from django.conf import settings
from django_auth_ldap.backend import LDAPBackend, ldap_error, populate_user

from accounts.adapters import LDAP_NAME_TAKEN, LDAP_UNMAPPED, LDAP_UNREACHABLE
from accounts.models import GroupSource, User
from accounts.services import UnmappedGroupsError, resolve_role, user_set_email_verified

UNREACHABLE_ERRORS = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR, ldap.TIMELIMIT_EXCEEDED)


class AtriumLDAPBackend(LDAPBackend):
    def authenticate(self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any):
        if not username or not password:
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and user.email:
            # The directory vouches for its users' mail attribute: no confirmation email for it.
            user_set_email_verified(user=user, verified=True)
        return user

    def get_or_build_user(self, username: str, ldap_user: Any):
        user, built = super().get_or_build_user(username, ldap_user)
        # A directory entry signs in to an existing account of the same name only if that account is
        # a directory account (made by an earlier LDAP sign-in, or an admin set its sign-in method to
        # ldap): a local, SSO or administrator account is never taken over by a name that matches.
        if not built and user.auth_provider != "ldap":
            request = getattr(ldap_user, "_request", None)
            if request is not None:
                setattr(request, LDAP_NAME_TAKEN, True)
            raise ldap_user.AuthenticationFailed(f"{username} is not a directory account")
        return user, built


def _directory_id(ldap_user: Any) -> str:
    attr = getattr(settings, "AUTH_LDAP_ID_ATTR", "uid")
    values = ldap_user.attrs.get(attr, []) if attr else []
    return str(values[0]) if values else ldap_user.dn


def _apply_role(sender: Any, user: User, ldap_user: Any, **kwargs: Any) -> None:
    groups = set(ldap_user.group_names) | set(ldap_user.group_dns) if _groups_configured() else set()
    try:
        role = resolve_role(groups, GroupSource.LDAP, user=user)
    except UnmappedGroupsError as exc:
        request = getattr(ldap_user, "_request", None)
        if request is not None:
            setattr(request, LDAP_UNMAPPED, True)
        raise ldap_user.AuthenticationFailed(str(exc)) from exc
    if user.groups_may_set_role():  # a staff account keeps its role unless an admin opted in
        user.role = role
    user.ldap_id = _directory_id(ldap_user)[:500]
    user.auth_provider = "ldap"
    user.name = (user.name or user.get_full_name())[:200]


def _groups_configured() -> bool:
    return getattr(settings, "AUTH_LDAP_GROUP_SEARCH", None) is not None


def _flag_unreachable(sender: Any, context: str, user: Any, request: Any, exception: Exception, **kwargs: Any) -> None:
    if request is not None and isinstance(exception, UNREACHABLE_ERRORS):
        setattr(request, LDAP_UNREACHABLE, True)


populate_user.connect(_apply_role, sender=AtriumLDAPBackend, dispatch_uid="atrium_ldap_role")
ldap_error.connect(_flag_unreachable, sender=AtriumLDAPBackend, dispatch_uid="atrium_ldap_down")
