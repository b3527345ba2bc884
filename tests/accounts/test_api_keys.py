"""Personal API keys: shown once, stored hashed, carry the owner's role, and stop working when
revoked, expired or when the owner is deactivated."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey, Role
from accounts.services import api_key_create


@pytest.fixture
def api_role(db):
    return Role.objects.create(name="API", can_use_api=True)


@pytest.fixture
def owner(make_user, api_role):
    return make_user("olga", role=api_role)


def bearer(client, key: str, path: str = "/api/me"):
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")


def test_creating_a_key_shows_it_once_and_stores_only_its_hash(client, owner):
    client.force_login(owner)

    created = client.post("/api/keys", {"name": "laptop"}, content_type="application/json")
    listed = client.get("/api/keys")

    key = created.json()["key"]
    stored = ApiKey.objects.get(user=owner)
    assert created.status_code == 201
    assert key.startswith("atr_") and len(key) > 40
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(ApiKey.objects.filter(pk=stored.pk).values().get())
    assert listed.json()[0]["prefix"] == stored.prefix and "key" not in listed.json()[0]
    assert key.startswith(stored.prefix)


def test_a_key_authenticates_as_its_owner_with_the_owners_role(client, owner):
    issued = api_key_create(user=owner, name="script")

    response = bearer(client, issued.key)

    assert response.status_code == 200
    assert response.json()["username"] == "olga"
    assert response.json()["role"]["name"] == "API"
    assert response.json()["via_api_key"] is True
    issued.api_key.refresh_from_db()
    assert issued.api_key.last_used_at is not None


def test_unknown_and_malformed_keys_get_401(client, owner):
    assert bearer(client, "atr_not-a-real-key").status_code == 401
    assert bearer(client, "sk-something-else").status_code == 401
    assert client.get("/api/me").status_code == 401


def test_a_revoked_key_gets_401(client, owner):
    issued = api_key_create(user=owner, name="script")
    client.force_login(owner)
    assert client.delete(f"/api/keys/{issued.api_key.pk}").status_code == 204
    client.logout()

    assert bearer(client, issued.key).status_code == 401


def test_an_expired_key_gets_401(client, owner):
    issued = api_key_create(user=owner, name="old", expires_at=timezone.now() + timedelta(seconds=1))
    ApiKey.objects.filter(pk=issued.api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert bearer(client, issued.key).status_code == 401


def test_the_key_of_a_deactivated_user_gets_401(client, owner):
    issued = api_key_create(user=owner, name="script")
    owner.is_active = False
    owner.save()

    assert bearer(client, issued.key).status_code == 401
    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is not None


def test_a_key_of_a_role_without_api_access_gets_403(client, make_user):
    issued = api_key_create(user=make_user("plain"), name="script")

    response = bearer(client, issued.key)

    assert response.status_code == 403
    assert "API access" in response.json()["error"]["message"]


def test_users_cannot_see_or_revoke_each_others_keys(client, owner, make_user, api_role):
    other = make_user("mallory", role=api_role)
    theirs = api_key_create(user=other, name="theirs")
    client.force_login(owner)

    assert client.get("/api/keys").json() == []
    assert client.delete(f"/api/keys/{theirs.api_key.pk}").status_code == 404
    theirs.api_key.refresh_from_db()
    assert theirs.api_key.revoked_at is None


def test_a_key_cannot_mint_more_keys(client, owner):
    issued = api_key_create(user=owner, name="script")

    response = client.post("/api/keys", {"name": "more"}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {issued.key}")

    assert response.status_code == 401
    assert ApiKey.objects.filter(user=owner).count() == 1


def test_admins_can_revoke_keys(admin_client, owner):
    issued = api_key_create(user=owner, name="script")

    admin_client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [issued.api_key.pk]})

    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is not None


def test_deactivating_a_user_in_the_admin_ends_their_sessions_and_keys(client, admin_client, owner):
    from django.test import Client

    issued = api_key_create(user=owner, name="script")
    browser = Client()
    browser.force_login(owner)
    assert browser.get("/api/me").status_code == 200

    admin_client.post("/admin/accounts/user/", {"action": "_deactivate", "_selected_action": [owner.pk]})

    assert browser.get("/api/me").status_code == 401
    assert bearer(client, issued.key).status_code == 401
    from django.contrib.sessions.models import Session

    assert not [s for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(owner.pk)]
