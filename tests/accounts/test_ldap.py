"""LDAP sign-in against a real OpenLDAP slapd on loopback, through Atrium's sign-in page."""
from __future__ import annotations

import socket
from decimal import Decimal

import pytest

from accounts.models import GroupSource, Role, RoleGroup, SignInPolicy, User


@pytest.fixture
def roles(db):
    science = Role.objects.create(name="SCIENCE", priority=10, start_balance=Decimal(750000))
    research = Role.objects.create(name="RESEARCH", priority=5)
    RoleGroup.objects.create(role=science, group_name="data-science", source=GroupSource.LDAP)
    RoleGroup.objects.create(role=research, group_name="cn=research-parent,ou=groups,dc=corp,dc=example")
    return {"science": science, "research": research}


@pytest.fixture
def ldap_dir(slapd_server, configure_ldap):
    configure_ldap(slapd_server.uri)
    return slapd_server


def sign_in(client, login: str, password: str):
    return client.post("/accounts/login/", {"login": login, "password": password})


def signed_in(client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def test_first_ldap_login_creates_the_user_with_the_mapped_role_and_start_balance(client, ldap_dir, roles):
    response = sign_in(client, "lucy", "lucy-ldap-pw")

    assert response.status_code == 302, response.content.decode()[:2000]
    lucy = signed_in(client)
    assert lucy.username == "lucy"
    assert lucy.email == "lucy@corp.example"
    assert (lucy.first_name, lucy.last_name, lucy.name) == ("Lucy", "Lang", "Lucy Lang")
    assert lucy.role == roles["science"]
    assert lucy.ldap_id == "lucy"
    assert lucy.auth_provider == "ldap"
    assert lucy.balance.credits == Decimal(750000)


def test_a_wrong_ldap_password_is_refused(client, ldap_dir, roles):
    response = sign_in(client, "lucy", "not-her-password")

    assert response.status_code == 200
    assert "not correct" in response.content.decode()
    assert signed_in(client) is None


def test_a_changed_group_in_the_directory_changes_the_role_at_next_login(client, ldap_dir, roles):
    sign_in(client, "dave", "dave-ldap-pw")
    dave = signed_in(client)
    assert dave.role == Role.objects.default()

    ldap_dir.set_members("data-science", ["lucy", "dave"])
    try:
        client.logout()
        sign_in(client, "dave", "dave-ldap-pw")
    finally:
        ldap_dir.set_members("data-science", ["lucy"])

    dave.refresh_from_db()
    assert dave.role == roles["science"]


def test_nested_groups_map_by_distinguished_name(client, slapd_server, configure_ldap, roles):
    configure_ldap(slapd_server.uri, AUTH_LDAP_GROUP_TYPE="nestedGroupOfNames")

    sign_in(client, "nina", "nina-ldap-pw")

    assert signed_in(client).role == roles["research"]


def test_memberof_on_the_user_entry_maps_groups_as_active_directory_does(client, slapd_server, configure_ldap, roles):
    configure_ldap(slapd_server.uri, AUTH_LDAP_GROUP_TYPE="memberOf", AUTH_LDAP_GROUP_SEARCH_BASE="")

    sign_in(client, "lucy", "lucy-ldap-pw")

    assert signed_in(client).role == roles["science"]


def test_staff_and_superuser_come_from_configured_groups(client, slapd_server, configure_ldap, roles):
    configure_ldap(
        slapd_server.uri,
        AUTH_LDAP_STAFF_GROUP="cn=atrium-admins,ou=groups,dc=corp,dc=example",
        AUTH_LDAP_SUPERUSER_GROUP="cn=atrium-admins,ou=groups,dc=corp,dc=example",
    )

    sign_in(client, "dave", "dave-ldap-pw")
    client.logout()
    sign_in(client, "lucy", "lucy-ldap-pw")

    dave, lucy = User.objects.get(username="dave"), User.objects.get(username="lucy")
    assert dave.is_staff and dave.is_superuser
    assert dave.role.name == Role.ADMIN  # a superuser whose groups map to nothing is an ADMIN
    assert not lucy.is_staff and not lucy.is_superuser


def test_an_unmapped_directory_user_is_refused_when_a_mapped_group_is_required(client, ldap_dir, roles):
    policy = SignInPolicy.load()
    policy.require_mapped_group = True
    policy.save()

    response = sign_in(client, "oscar", "oscar-ldap-pw")

    assert "None of your groups gives access" in response.content.decode()
    assert signed_in(client) is None
    assert not User.objects.filter(username="oscar").exists()


def test_a_local_account_is_not_taken_over_by_a_directory_entry_of_the_same_name(client, ldap_dir, roles, make_user):
    make_user("lucy", password="local-Password-123")

    response = sign_in(client, "lucy", "lucy-ldap-pw")

    assert signed_in(client) is None
    assert "same name as an Atrium account that does not sign in through the directory" in response.content.decode()


def test_a_directory_entry_never_takes_over_an_administrator_or_sso_account_of_the_same_name(
    client, ldap_dir, roles, make_user
):
    admin = make_user("dave", is_staff=True, is_superuser=True)
    admin.set_unusable_password()  # e.g. an administrator who signs in through SSO only
    admin.save()
    sso_user = make_user("lucy", auth_provider="openid")
    sso_user.set_unusable_password()
    sso_user.save()

    for name in ("dave", "lucy"):
        sign_in(client, name, f"{name}-ldap-pw")
        assert signed_in(client) is None
    admin.refresh_from_db()
    assert admin.auth_provider == "local" and admin.role.name == Role.ADMIN


def test_an_account_an_admin_made_a_directory_account_signs_in_through_the_directory(
    client, ldap_dir, roles, make_user
):
    staff = make_user("lucy", is_staff=True, auth_provider="ldap", role=roles["research"])
    staff.set_unusable_password()
    staff.save()

    sign_in(client, "lucy", "lucy-ldap-pw")

    staff.refresh_from_db()
    assert signed_in(client) == staff
    assert staff.role == roles["research"]  # a staff account keeps its role: no opt-in to group mapping


def test_an_unreachable_directory_gives_a_clear_error_and_local_admins_still_sign_in(
    client, configure_ldap, roles, admin_user
):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configure_ldap(f"ldap://127.0.0.1:{port}")

    refused = sign_in(client, "lucy", "lucy-ldap-pw")
    admin = client.post("/admin/login/?next=/admin/", {"username": "root", "password": "pw-For-tests-1"})

    assert "company directory (LDAP) cannot be reached" in refused.content.decode()
    assert admin.status_code == 302 and admin["Location"] == "/admin/"
    assert signed_in(client) == admin_user


def test_while_the_directory_is_down_a_local_users_wrong_password_says_wrong_password(
    client, configure_ldap, roles, make_user
):
    """Issue 13, defect 9: not "the company directory cannot be reached"."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configure_ldap(f"ldap://127.0.0.1:{port}")
    make_user("vera", email="vera@corp.example", password="Her-Own-Pass-42")

    by_name = sign_in(client, "vera", "not-her-password").content.decode()
    by_email = sign_in(client, "vera@corp.example", "not-her-password").content.decode()

    for page in (by_name, by_email):
        assert "not correct" in page
        assert "cannot be reached" not in page
    assert signed_in(client) is None
