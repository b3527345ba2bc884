"""The signed-in shell every page shares: the colour theme chosen in the account menu, the balance
badge and the account menu."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_theme_is_system_until_chosen_then_remembered_and_rendered_by_the_server(client, make_user):
    client.force_login(make_user())
    assert 'data-theme="system"' in client.get("/").content.decode()
    response = client.post("/theme/", {"theme": "dark", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert response.cookies["atrium_theme"].value == "dark"
    assert response.cookies["atrium_theme"]["max-age"] > 30 * 24 * 3600
    page = client.get("/").content.decode()
    assert 'data-theme="dark"' in page
    assert 'value="dark" class="secondary" aria-pressed="true"' in page


def test_an_unknown_theme_is_refused_and_a_foreign_next_goes_home(client):
    assert client.post("/theme/", {"theme": "neon"}).status_code == 400
    response = client.post("/theme/", {"theme": "light", "next": "https://evil.example/"})
    assert response["Location"] == "/"
    client.cookies["atrium_theme"] = "<script>"
    assert 'data-theme="system"' in client.get("/accounts/login/").content.decode()


def test_the_theme_form_needs_the_csrf_token(make_user):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    assert csrf_client.post("/theme/", {"theme": "dark"}).status_code == 403


def test_the_header_shows_the_balance_and_the_account_menu(client, make_user, make_role):
    from decimal import Decimal

    limited = make_role("LIMITED", balance_enabled=True, start_balance=Decimal(2_500_000))
    client.force_login(make_user(role=limited))
    page = client.get("/").content.decode()
    assert 'class="user-menu"' in page and "Sign out" in page
    assert 'id="balance-badge"' in page and "$2.50" in page
    client.force_login(make_user())  # no balance kept: no badge
    assert 'id="balance-badge"' not in client.get("/").content.decode()


def test_the_javascript_catalogue_is_served(client):
    response = client.get("/jsi18n/")
    assert response.status_code == 200 and b"gettext" in response.content
