"""OpenID Connect SSO against a real provider (oidc-provider on loopback), full authorization-code
flow: Atrium's login URL → the IdP's sign-in and consent pages → Atrium's callback."""
from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount

from accounts.models import GroupSource, Role, RoleGroup, SignInPolicy, User


@pytest.fixture
def roles(db):
    engineering = Role.objects.create(
        name="ENGINEERING", priority=10, start_balance=Decimal(500000), balance_enabled=True
    )
    power = Role.objects.create(name="POWER", priority=20, start_balance=Decimal(900000))
    RoleGroup.objects.create(role=engineering, group_name="Engineering", source=GroupSource.OIDC)
    RoleGroup.objects.create(role=power, group_name="atrium-power", source=GroupSource.ANY)
    return {"engineering": engineering, "power": power}


def logged_in_user(client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_first_sso_login_creates_the_user_with_the_mapped_role_and_start_balance(sso, oidc_app, roles):
    response = sso.login("alice", "alice-pw")

    assert response.status_code == 302, response.content[:500]
    user = logged_in_user(sso.client)
    assert user is not None and user.email == "alice@corp.example"
    assert user.role == roles["engineering"]  # "engineering" matches "Engineering" case-insensitively
    assert user.openid_id == "sub-alice"
    assert user.auth_provider == "openid"
    assert user.name == "Alice Archer"
    assert not user.has_usable_password()
    assert user.balance.credits == Decimal(500000)


def test_a_group_change_at_the_idp_changes_the_role_at_next_login(sso, oidc_app, roles, oidc_idp):
    sso.login("bob", "bob-pw")
    bob = logged_in_user(sso.client)
    assert bob.role == Role.objects.default()

    oidc_idp.set_user("bob", groups=["everyone", "engineering"])
    try:
        sso.client.logout()
        sso.login("bob", "bob-pw")
    finally:
        oidc_idp.set_user("bob", groups=["everyone"])

    bob.refresh_from_db()
    assert logged_in_user(sso.client) == bob
    assert bob.role == roles["engineering"]
    assert User.objects.filter(email="bob@corp.example").count() == 1


def test_groups_can_come_from_a_nested_claim_of_the_id_token(sso, oidc_app, roles):
    oidc_app.settings = {**oidc_app.settings, "groups_claim": "realm_access.roles", "groups_source": "id_token",
                         "fetch_userinfo": False}
    oidc_app.save()

    sso.login("kate", "kate-pw")

    assert logged_in_user(sso.client).role == roles["power"]


def test_an_unmapped_user_gets_the_default_role(sso, oidc_app, roles):
    sso.login("bob", "bob-pw")

    assert logged_in_user(sso.client).role == Role.objects.default()


def test_an_unmapped_user_is_refused_when_the_admin_requires_a_mapped_group(sso, oidc_app, roles):
    policy = SignInPolicy.load()
    policy.require_mapped_group = True
    policy.save()

    response = sso.login("bob", "bob-pw")

    assert response.status_code == 403
    assert "None of your groups gives access" in response.content.decode()
    assert logged_in_user(sso.client) is None
    assert not User.objects.filter(email="bob@corp.example").exists()


def test_sso_links_to_the_local_account_with_the_same_verified_email(sso, oidc_app, roles, make_user):
    erin = make_user("erin", email="erin@corp.example")
    EmailAddress.objects.create(user=erin, email=erin.email, verified=True, primary=True)

    sso.login("erin", "erin-pw")

    erin.refresh_from_db()
    assert logged_in_user(sso.client) == erin
    assert erin.openid_id == "sub-erin"
    assert erin.role == roles["engineering"]


def test_sso_never_joins_an_account_whose_address_nobody_verified(sso, oidc_app, roles):
    """An outsider signs up with an employee's address and never confirms it; the employee then
    signs in through the IdP: she must not land in his account (issue 13, defect 1)."""
    policy = SignInPolicy.load()
    policy.allow_signup, policy.signup_email_domains = True, "corp.example"
    policy.save()
    sso.client.post("/accounts/signup/", {
        "email": "erin@corp.example", "username": "vicky",
        "password1": "Outsider-Pass-42", "password2": "Outsider-Pass-42",
    })
    outsider = User.objects.get(username="vicky")
    sso.client.logout()

    response = sso.login("erin", "erin-pw")

    assert response.status_code == 403
    assert "never confirmed" in response.content.decode()
    assert logged_in_user(sso.client) is None
    outsider.refresh_from_db()
    assert outsider.openid_id == "" and outsider.role == Role.objects.default()
    assert not SocialAccount.objects.exists()
    assert not User.objects.filter(openid_id="sub-erin").exists()


def test_sso_never_joins_an_administrator_account_even_with_a_verified_address(sso, oidc_app, roles):
    """An IdP user with the superuser's address must not become the superuser (issue 13, defect 2)."""
    boss = User.objects.create_superuser("boss", "erin@corp.example", "Boss-Pass-1234")
    EmailAddress.objects.create(user=boss, email=boss.email, verified=True, primary=True)
    RoleGroup.objects.create(role=Role.objects.default(), group_name="engineering-admins")

    response = sso.login("erin", "erin-pw")

    assert response.status_code == 403
    assert "administrator account" in response.content.decode()
    assert logged_in_user(sso.client) is None
    boss.refresh_from_db()
    assert boss.role.name == Role.ADMIN and boss.auth_provider == "local" and boss.openid_id == ""
    assert boss.check_password("Boss-Pass-1234")
    assert not SocialAccount.objects.exists()


def test_a_staff_account_an_admin_linked_keeps_its_role_unless_the_admin_opted_in(sso, oidc_app, roles, make_user):
    staff = make_user("erin-staff", email="erin.staff@corp.example", is_staff=True, role=roles["power"])
    SocialAccount.objects.create(user=staff, provider="corp", uid="sub-erin")  # linked in the admin

    sso.login("erin", "erin-pw")

    staff.refresh_from_db()
    assert logged_in_user(sso.client) == staff
    assert staff.role == roles["power"] and staff.auth_provider == "local"

    staff.staff_role_follows_groups = True
    staff.save()
    sso.client.logout()
    sso.login("erin", "erin-pw")

    staff.refresh_from_db()
    assert staff.role == roles["engineering"]


def test_a_callback_with_a_wrong_state_is_refused(sso, oidc_app, roles):
    callback = sso.authorize(sso.start(), "alice", "alice-pw")

    response = sso.callback(with_query(callback, state="forged-state"))

    assert logged_in_user(sso.client) is None
    assert "Third-Party Login Failure" in response.content.decode() or response.status_code >= 400
    assert not User.objects.filter(email="alice@corp.example").exists()


def test_an_id_token_with_another_nonce_is_refused(sso, oidc_app, roles):
    # An attacker swaps the nonce on the way to the IdP: the IdP signs a token for that nonce.
    authorize_url = with_query(sso.start(), nonce="attacker-chosen-nonce")

    response = sso.callback(sso.authorize(authorize_url, "alice", "alice-pw"))

    assert logged_in_user(sso.client) is None
    assert "Third-Party Login Failure" in response.content.decode()
    assert not User.objects.filter(email="alice@corp.example").exists()


def test_a_tampered_id_token_is_refused(sso, oidc_app, roles):
    RoleGroup.objects.create(role=Role.objects.get(name=Role.ADMIN), group_name="atrium-admins")

    response = sso.login("mallory", "mallory-pw")

    assert logged_in_user(sso.client) is None
    assert "Third-Party Login Failure" in response.content.decode()
    assert not User.objects.filter(email="mallory@corp.example").exists()


def test_the_idp_can_be_configured_from_the_environment(sso, oidc_idp, roles, settings, monkeypatch):
    from accounts.conf import oidc_apps
    for name, value in {
        "OIDC_SERVER_URL": oidc_idp.issuer, "OIDC_CLIENT_ID": oidc_idp.client_id,
        "OIDC_CLIENT_SECRET": oidc_idp.client_secret,
        "OIDC_SCOPES": "openid,profile,email,groups", "OIDC_BUTTON_LABEL": "Sign in with Corp",
        "OIDC_PROVIDER_ID": "sso", "OIDC_GROUPS_CLAIM": "groups",
    }.items():
        monkeypatch.setenv(name, value)
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {**settings.SOCIALACCOUNT_PROVIDERS["openid_connect"], "APPS": oidc_apps()}
    }

    login_page = sso.client.get("/accounts/login/").content.decode()
    sso.login("alice", "alice-pw", provider_id="sso")

    assert "Sign in with Corp" in login_page
    assert logged_in_user(sso.client).role == roles["engineering"]
