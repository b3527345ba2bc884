"""Every account has a first sign-in that works: the bootstrap admin and admin-created users sign in
on /accounts/login/ and can turn on two-factor; the emails they get name the portal, not
example.com (issue 13, defects 3, 4 and 6)."""
from __future__ import annotations

import io
import re

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core import mail
from django.core.management import call_command
from django.test import Client

from accounts.models import User
from tests.accounts.test_local_accounts import PASSWORD, activate_totp, sign_in, signed_in


@pytest.fixture
def bootstrap(db, settings):
    def run(*args: str) -> str:
        out = io.StringIO()
        call_command("bootstrap", "--no-demo", *args, stdout=out)
        return out.getvalue()

    return run


def printed_password(output: str) -> str:
    return re.search(r"password: (\S+)", output).group(1)


def test_the_bootstrap_admin_signs_in_on_the_sign_in_page_and_turns_on_two_factor(client, bootstrap):
    output = bootstrap()
    admin, password = User.objects.get(username="admin"), printed_password(output)

    response = sign_in(client, "admin", password)

    assert admin.email == ""  # no made-up address
    assert response.status_code == 302 and response["Location"] == "/"
    assert signed_in(client) == admin
    assert mail.outbox == []
    activate_totp(client, password)
    assert Authenticator.objects.filter(user=admin, type=Authenticator.Type.TOTP).exists()
    assert "/accounts/login/" in output and "/accounts/2fa/" in output


def test_bootstrap_drops_the_made_up_address_an_earlier_version_gave_the_admin(client, bootstrap):
    admin = User.objects.create_superuser("admin", "admin@example.com", "Old-Admin-Pass-1")
    EmailAddress.objects.create(user=admin, email=admin.email, verified=False, primary=True)

    bootstrap()

    admin.refresh_from_db()
    assert admin.email == "" and not EmailAddress.objects.filter(user=admin).exists()
    assert sign_in(client, "admin", "Old-Admin-Pass-1")["Location"] == "/"


def add_user_in_the_admin(admin_client, **fields: str):
    data = {"username": "newhire", "usable_password": "true", "password1": PASSWORD, "password2": PASSWORD,
            "email": "", "name": "New Hire", "_save": "Save", **fields}
    response = admin_client.post("/admin/accounts/user/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    return User.objects.get(username="newhire")


def test_a_user_an_admin_created_without_an_email_signs_in_with_the_password_the_admin_set(admin_client, builtin_roles):
    newhire = add_user_in_the_admin(admin_client)
    browser = Client()

    response = sign_in(browser, "newhire")

    assert response.status_code == 302 and response["Location"] == "/"
    assert signed_in(browser) == newhire
    assert mail.outbox == []


def test_an_admin_can_vouch_for_a_new_users_address_so_no_confirmation_email_is_needed(admin_client, builtin_roles):
    newhire = add_user_in_the_admin(admin_client, email="newhire@corp.example", email_verified="on")
    browser = Client()

    response = sign_in(browser, "newhire@corp.example")

    assert EmailAddress.objects.get(user=newhire).verified
    assert response["Location"] == "/" and signed_in(browser) == newhire
    assert mail.outbox == []


def test_an_address_the_admin_did_not_vouch_for_gets_a_confirmation_email_that_signs_in(admin_client, builtin_roles):
    newhire = add_user_in_the_admin(admin_client, email="newhire@corp.example")
    browser = Client()

    sign_in(browser, "newhire")
    link = re.search(r"http://testserver(/accounts/\S+/)", mail.outbox[0].body).group(1)
    browser.post(link)

    assert mail.outbox[0].to == ["newhire@corp.example"]
    assert signed_in(browser) == newhire


def test_the_admin_user_page_shows_and_changes_whether_the_address_is_verified(admin_client, make_user):
    user = make_user("clara", email="clara@corp.example")
    page = admin_client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert 'name="email_verified"' in page and "Address verified" in page

    form = admin_client.get(f"/admin/accounts/user/{user.pk}/change/").context["adminform"].form
    data = {**form.initial, "email_verified": "on", "_save": "Save"}
    data = {k: v for k, v in data.items() if v is not None and k not in {"password", "groups", "user_permissions"}}
    data["last_login_0"] = data["last_login_1"] = ""
    data["date_joined_0"], data["date_joined_1"] = user.date_joined.strftime("%Y-%m-%d"), user.date_joined.strftime(
        "%H:%M:%S"
    )
    response = admin_client.post(f"/admin/accounts/user/{user.pk}/change/", data)

    assert response.status_code == 302, response.content.decode()[:3000]
    assert EmailAddress.objects.get(user=user, email="clara@corp.example").verified


def test_the_confirmation_email_names_the_portal_and_its_address(client, bootstrap, settings):
    settings.SITE_URL = "https://chat.corp.example"
    bootstrap()
    from accounts.models import SignInPolicy

    policy = SignInPolicy.load()
    policy.allow_signup = True
    policy.save()

    client.post("/accounts/signup/", {
        "email": "newbie@corp.example", "username": "newbie", "password1": PASSWORD, "password2": PASSWORD,
    })

    body = mail.outbox[0].body
    assert "Hello from Atrium!" in body
    assert "chat.corp.example" in body
    assert "example.com" not in body.replace("corp.example", "")
