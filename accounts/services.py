"""Account workflows that span models: SSO/LDAP group → role mapping, when an SSO sign-in may join
an existing account, ending a deactivated user's access, and issuing API keys."""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import ApiKey, GroupSource, Role, RoleGroup, SignInPolicy, User


class UnmappedGroupsError(Exception):
    """The admin requires a mapped group and none of the user's groups maps to a role."""

    def __init__(self, groups: Iterable[str]) -> None:
        self.groups = sorted(groups)
        super().__init__(
            _("None of your groups gives access to Atrium. Ask your administrator to map one of them to a role.")
        )


def role_for_groups(groups: Iterable[str], source: str) -> Role | None:
    """The highest-priority role any of `groups` maps to (names or DNs, case-insensitive), or None.

    `source` is "oidc" or "ldap": mappings for that source and for "any" count.
    """
    names = {g.strip().lower() for g in groups if g and g.strip()}
    if not names:
        return None
    mapping = (
        RoleGroup.objects.annotate(lname=Lower("group_name"))
        .filter(lname__in=names)
        .filter(Q(source=source) | Q(source=GroupSource.ANY))
        .select_related("role")
        .order_by("-role__priority", "role__name")
        .first()
    )
    return mapping.role if mapping else None


def resolve_role(groups: Iterable[str], source: str, *, user: User | None = None) -> Role:
    """The role an SSO/LDAP login gets: the mapped one, else the default role (superusers keep ADMIN).

    Raises UnmappedGroupsError when nothing maps and the sign-in policy requires a mapped group.
    """
    groups = list(groups)
    role = role_for_groups(groups, source)
    if role is not None:
        return role
    if SignInPolicy.load().require_mapped_group and not (user is not None and user.is_superuser):
        raise UnmappedGroupsError(groups)
    if user is not None and user.is_superuser:
        return Role.objects.get(name=Role.ADMIN)
    return Role.objects.default()


def account_with_email(email: str) -> User | None:
    """The account that holds `email`, as one of its sign-in addresses or as its User.email."""
    from allauth.account.models import EmailAddress

    address = (
        EmailAddress.objects.filter(email__iexact=email).select_related("user").order_by("-verified", "pk").first()
    )
    if address is not None:
        return address.user
    return User.objects.filter(email__iexact=email).order_by("pk").first()


def sso_join_refusal(user: User, email: str, *, idp_verified: bool) -> str | None:
    """Why an SSO sign-in that brings `email` may not join `user`'s existing account (None: it may).

    It may only when the IdP vouches for the address, Atrium itself verified it for this account (a
    confirmation email, or an admin's "address verified" on the user page), and the account is not
    staff: an unverified address may have been typed by anyone, and an administrator account is only
    ever linked by another administrator (a Social account row in the admin).
    """
    from allauth.account.models import EmailAddress

    if user.is_staff or user.is_superuser:
        return _(
            "The address %(email)s belongs to an administrator account of Atrium. Administrator accounts "
            "are never joined to a company sign-in automatically: sign in with that account's password, "
            "or ask another administrator to link the two."
        ) % {"email": email}
    if not idp_verified:
        return _(
            "An Atrium account with the address %(email)s already exists, and your company sign-in does "
            "not confirm that this address is yours, so it is not joined to that account. Ask your "
            "administrator to link the two."
        ) % {"email": email}
    if not EmailAddress.objects.filter(user=user, email__iexact=email, verified=True).exists():
        return _(
            "An Atrium account with the address %(email)s already exists, but that address was never "
            "confirmed, so your company sign-in is not joined to it. If the account is yours, sign in with "
            "its password and confirm the address from the email Atrium sends, then use the company "
            "sign-in again; if it is not yours, ask your administrator to remove it."
        ) % {"email": email}
    return None


def claim_at_path(data: Mapping[str, Any] | None, path: str) -> Any:
    """The value at a dotted claim path, e.g. "realm_access.roles" (None when absent).

    A key that itself contains dots (e.g. "https://example.com/groups", as Auth0 and Okta send)
    is tried whole first.
    """
    if not data or not path:
        return None
    if path in data:
        return data[path]
    head, _, rest = path.partition(".")
    value = data.get(head)
    if not rest:
        return value
    return claim_at_path(value, rest) if isinstance(value, Mapping) else None


def groups_from_claims(
    *, userinfo: Mapping[str, Any] | None, id_token: Mapping[str, Any] | None, claim: str, source: str = "auto"
) -> list[str]:
    """Group names from the configured claim of the userinfo response and/or the ID token."""
    if source == "userinfo":
        value = claim_at_path(userinfo, claim)
    elif source == "id_token":
        value = claim_at_path(id_token, claim)
    else:
        value = claim_at_path(userinfo, claim)
        if value is None:
            value = claim_at_path(id_token, claim)
    if value is None:
        return []
    if isinstance(value, str):
        return [g for g in (part.strip() for part in value.split(",")) if g]
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return [str(g) for g in value if g is not None and str(g).strip()]
    return []


def email_verified_elsewhere(*, email: str, user: User | None) -> bool:
    """Another account than `user` has `email` as a verified address (an address is verified once)."""
    from allauth.account.models import EmailAddress

    others = EmailAddress.objects.filter(email__iexact=email, verified=True)
    return (others.exclude(user=user) if user is not None and user.pk else others).exists()


def user_set_email_verified(*, user: User, verified: bool) -> None:
    """Record the admin's word on whether `user.email` belongs to the person (the user page's
    "address verified"): verified, it needs no confirmation email and SSO may join the account by it
    (unless it is staff); unticked, the next sign-in sends a confirmation email."""
    from allauth.account.models import EmailAddress

    if not user.email:
        return
    address = EmailAddress.objects.filter(user=user, email__iexact=user.email).first()
    if address is None:
        if verified:
            has_primary = EmailAddress.objects.filter(user=user, primary=True).exists()
            EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=not has_primary)
    elif address.verified != verified:
        address.verified = verified
        address.save(update_fields=["verified"])


def user_email_is_verified(user: User) -> bool:
    from allauth.account.models import EmailAddress

    return bool(user.pk and user.email) and EmailAddress.objects.filter(
        user=user, email__iexact=user.email, verified=True
    ).exists()


@transaction.atomic
def user_end_access(*, user: User) -> int:
    """End every session and revoke every API key of `user` (on deactivation). Returns keys revoked."""
    from allauth.usersessions.models import UserSession
    from django.contrib.sessions.models import Session

    for session in UserSession.objects.filter(user=user):
        session.end()
    # Sessions opened before usersessions tracked them (or by another engine) are found by id.
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.db":
        stale = [
            s.pk for s in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
            if s.get_decoded().get("_auth_user_id") == str(user.pk)
        ]
        Session.objects.filter(pk__in=stale).delete()
    return ApiKey.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    key: str  # the only time the full key exists outside the client


def api_key_create(*, user: User, name: str, expires_at: datetime | None = None) -> IssuedApiKey:
    """Create a personal API key; the returned `key` is shown once and never stored."""
    key = f"{settings.API_KEY_PREFIX}{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        user=user, name=name.strip() or "API key", prefix=key[: len(settings.API_KEY_PREFIX) + 6],
        key_hash=hash_api_key(key), expires_at=expires_at,
    )
    return IssuedApiKey(api_key=api_key, key=key)


def api_key_authenticate(key: str) -> ApiKey | None:
    """The usable key matching `key` (not revoked, not expired, owner active), touching last_used_at."""
    if not key or not key.startswith(settings.API_KEY_PREFIX):
        return None
    api_key = ApiKey.objects.usable().select_related("user", "user__role").filter(key_hash=hash_api_key(key)).first()
    if api_key is None:
        return None
    now = timezone.now()
    # At most one write a minute per key: last_used_at is informative, not a ledger.
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
