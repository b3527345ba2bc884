"""Local accounts through allauth's pages: sign-up switch and email domains, verification,
password reset, TOTP two-factor with recovery codes, roles that require two-factor, rate limits."""
from __future__ import annotations

import re
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core import mail

from accounts.models import Role, SignInPolicy, User

PASSWORD = "Correct-Horse-42-battery"


@pytest.fixture
def policy(db):
    return SignInPolicy.load()


@pytest.fixture
def verified_user(make_user):
    def make(username: str = "vera", **extra):
        user = make_user(username, password=PASSWORD, **extra)
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
        return user

    return make


def sign_in(client, login: str, password: str = PASSWORD):
    return client.post("/accounts/login/", {"login": login, "password": password})


def signed_in(client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def sign_up(client, email: str, username: str = "newbie"):
    return client.post("/accounts/signup/", {
        "email": email, "username": username, "password1": PASSWORD, "password2": PASSWORD,
    })


def link_in(message) -> str:
    return re.search(r"http://testserver(/accounts/\S+/)", message.body).group(1)


def current_totp(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def test_sign_up_is_closed_by_default(client, policy):
    page = client.get("/accounts/signup/")
    response = sign_up(client, "newbie@corp.example")

    assert "Sign Up Closed" in page.content.decode()
    assert response.status_code == 200
    assert not User.objects.filter(username="newbie").exists()


def test_the_sign_in_page_offers_sign_up_only_when_it_is_open(client, policy):
    closed = client.get("/accounts/login/").content.decode()
    policy.allow_signup = True
    policy.save()
    opened = client.get("/accounts/login/").content.decode()

    assert 'href="/accounts/signup/"' not in closed
    assert 'href="/accounts/signup/"' in opened


def test_sign_up_when_open_requires_a_verified_email(client, policy):
    policy.allow_signup = True
    policy.save()

    response = sign_up(client, "newbie@corp.example")

    newbie = User.objects.get(username="newbie")
    assert response.status_code == 302 and response["Location"] == "/accounts/confirm-email/"
    assert signed_in(client) is None
    assert newbie.role == Role.objects.default()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["newbie@corp.example"]
    assert sign_in(client, "newbie").status_code == 302 and signed_in(client) is None  # still unverified

    confirm = client.post(link_in(mail.outbox[0]))

    assert confirm.status_code == 302
    assert EmailAddress.objects.get(user=newbie).verified
    assert signed_in(client) == newbie


def test_sign_up_can_be_limited_to_company_domains(client, policy):
    policy.allow_signup = True
    policy.signup_email_domains = "corp.example\n@subsidiary.example"
    policy.save()

    refused = sign_up(client, "someone@gmail.example", username="outsider")
    accepted = sign_up(client, "insider@subsidiary.example", username="insider")

    assert "Sign-up is limited to addresses at corp.example, subsidiary.example." in refused.content.decode()
    assert not User.objects.filter(username="outsider").exists()
    assert accepted.status_code == 302 and User.objects.filter(username="insider").exists()


def test_password_reset_by_email(client, verified_user):
    vera = verified_user()

    client.post("/accounts/password/reset/", {"email": vera.email})
    reset_page = client.get(link_in(mail.outbox[0]), follow=True)
    done = client.post(
        reset_page.redirect_chain[-1][0], {"password1": "Brand-New-Secret-77", "password2": "Brand-New-Secret-77"}
    )

    assert done.status_code == 302
    assert sign_in(client, "vera", "Brand-New-Secret-77").status_code == 302
    assert signed_in(client) == vera


def activate_totp(client, password: str = PASSWORD) -> str:
    # allauth asks for the password again before a security change
    client.post("/accounts/reauthenticate/", {"password": password})
    client.get("/accounts/2fa/totp/activate/")
    secret = client.session["mfa.totp.secret"]
    response = client.post("/accounts/2fa/totp/activate/", {"code": current_totp(secret)})
    assert response.status_code == 302, response.content.decode()[:2000]
    return secret


def test_totp_activation_then_sign_in_asks_for_a_code(client, verified_user):
    vera = verified_user()
    sign_in(client, "vera")
    secret = activate_totp(client)
    client.logout()

    first_step = sign_in(client, "vera")
    assert first_step["Location"] == "/accounts/2fa/authenticate/"
    assert signed_in(client) is None
    wrong = client.post(
        "/accounts/2fa/authenticate/", {"code": "000000" if current_totp(secret) != "000000" else "111111"}
    )
    assert signed_in(client) is None and wrong.status_code == 200
    client.post("/accounts/2fa/authenticate/", {"code": current_totp(secret)})

    assert signed_in(client) == vera
    stored = Authenticator.objects.get(user=vera, type=Authenticator.Type.TOTP).data["secret"]
    assert secret not in stored and stored.startswith("fernet:")  # encrypted at rest


def test_a_recovery_code_signs_in_once(client, verified_user):
    vera = verified_user()
    sign_in(client, "vera")
    activate_totp(client)
    client.logout()
    codes = RecoveryCodes(Authenticator.objects.get(user=vera, type=Authenticator.Type.RECOVERY_CODES))
    code = codes.get_unused_codes()[0]

    sign_in(client, "vera")
    client.post("/accounts/2fa/authenticate/", {"code": code})
    assert signed_in(client) == vera
    client.logout()
    sign_in(client, "vera")
    client.post("/accounts/2fa/authenticate/", {"code": code})

    assert signed_in(client) is None


def test_a_role_that_requires_two_factor_sends_its_users_to_set_it_up(client, verified_user):
    guarded = Role.objects.create(name="FINANCE", requires_2fa=True, can_use_api=True)
    verified_user(role=guarded)
    sign_in(client, "vera")

    page = client.get("/admin/")
    api = client.get("/api/me")
    activate_totp(client)
    after = client.get("/api/me")

    assert page.status_code == 302 and page["Location"] == "/accounts/2fa/totp/activate/"
    assert api.status_code == 403 and "two-factor" in api.json()["error"]["message"]
    assert after.status_code == 200


def test_repeated_wrong_passwords_are_rate_limited(client, verified_user):
    verified_user()

    attempts = [sign_in(client, "vera", "wrong-password").content.decode() for _ in range(6)]
    after = sign_in(client, "vera")

    assert "Too many failed login attempts" in attempts[-1]
    assert "Too many failed login attempts" in after.content.decode()
    assert signed_in(client) is None


def test_the_admin_login_page_cannot_skip_two_factor(client, verified_user):
    verified_user(is_staff=True)
    sign_in(client, "vera")
    activate_totp(client)
    client.logout()

    response = client.post("/admin/login/?next=/admin/", {"username": "vera", "password": PASSWORD})

    assert signed_in(client) is None
    assert "uses two-factor authentication" in response.content.decode()
