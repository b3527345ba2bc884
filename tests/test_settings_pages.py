"""The settings pages at /settings/: each page as its owner, as another user and signed out; every
form needs the CSRF token; an API key is shown once and never again; a provider key is never
rendered back; imports are all or nothing with the importer's own words."""
from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_authenticate, api_key_create
from chat.models import Conversation, Message, ShareLink
from chat.shares import share_create
from endpoints.models import UserProviderKey

pytestmark = pytest.mark.django_db

CHATGPT = Path(__file__).parent / "fixtures" / "library" / "chatgpt-conversations.json"
SECRET = "sk-my-own-secret-key-0123456789"

PAGES = ["/settings/general/", "/settings/account/", "/settings/provider-keys/", "/settings/api-keys/",
         "/settings/api-keys/new/", "/settings/usage/", "/settings/shared-links/", "/settings/data/"]


@pytest.fixture
def role(make_role):
    return make_role("STAFF", label="Staff", can_use_api=True, balance_enabled=True, start_balance=Decimal(3_000_000))


@pytest.fixture
def owner(make_user, role):
    user = make_user("olga", name="Olga Owner", role=role, email="olga@corp.example")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


@pytest.fixture
def other(make_user, role):
    user = make_user("otto", name="Otto Other", role=role, email="otto@corp.example")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


@pytest.fixture
def byok(make_endpoint, role):
    """An endpoint on which every user brings their own key, and one with the admin's key."""
    keyed = make_endpoint("Bring Your Own", api_key="user_provided", models=("byo-model",))
    shared = make_endpoint("Company", models=("company-model",))
    role.allowed_endpoints.add(keyed, shared)
    return keyed


def signed_in(client, user):
    client.force_login(user)
    return client


def html(response) -> str:
    return response.content.decode()


# --- everyone's pages: signed out, CSRF -------------------------------------------------------------

@pytest.mark.parametrize("url", PAGES)
def test_signed_out_visitors_are_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", ["/settings/api-keys/", "/settings/data/", "/settings/provider-keys/1/",
                                 "/settings/provider-keys/1/delete/", "/settings/api-keys/1/revoke/"])
def test_posts_need_the_csrf_token(owner, byok, url):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner)
    assert csrf_client.post(url, {"name": "x"}).status_code == 403


def test_the_account_menu_leads_to_settings_and_the_settings_nav_marks_the_page(client, owner):
    page = html(signed_in(client, owner).get("/settings/usage/"))
    assert 'href="/settings/general/">Settings</a>' in page
    assert 'href="/settings/usage/" aria-current="page"' in page
    assert client.get("/settings/")["Location"] == "/settings/general/"


# --- general -------------------------------------------------------------------------------------

def test_general_shows_role_balance_and_what_the_user_may_use(client, owner, byok):
    page = html(signed_in(client, owner).get("/settings/general/"))
    for shown in ("Olga Owner", "olga@corp.example", "Staff", "$3.00", "3,000,000 credits", "Bring Your Own",
                  "company-model", 'name="theme" value="system" checked', 'action="/i18n/setlang/"'):
        assert shown in page, shown


def test_the_theme_and_language_forms_remember_the_choice(client, owner):
    signed_in(client, owner)
    assert client.post("/theme/", {"theme": "dark", "next": "/settings/general/"})["Location"] == "/settings/general/"
    chosen = client.post("/i18n/setlang/", {"language": "ar", "next": "/settings/general/"})
    assert chosen["Location"] == "/settings/general/"
    page = html(client.get("/settings/general/"))
    assert 'data-theme="dark"' in page and 'dir="rtl"' in page
    assert 'name="theme" value="dark" checked' in page and '<option value="ar" lang="ar" selected>' in page


# --- account & security ------------------------------------------------------------------------------

def test_account_lists_only_the_users_own_addresses_and_links_to_allauths_pages(client, owner, other):
    page = html(signed_in(client, owner).get("/settings/account/"))
    assert "olga@corp.example" in page and "otto@corp.example" not in page
    for link in ("/accounts/email/", "/accounts/password/change/", "/accounts/2fa/", "/accounts/sessions/"):
        assert f'href="{link}"' in page, link


@pytest.mark.parametrize("url", ["/accounts/email/", "/accounts/password/change/", "/accounts/2fa/",
                                 "/accounts/sessions/"])
def test_allauths_account_pages_render_in_the_settings_shell(client, owner, url):
    page = html(signed_in(client, owner).get(url))
    assert 'class="settings-nav"' in page and 'class="appbar"' in page
    assert 'href="/settings/account/" aria-current="page"' in page


def test_the_sign_in_page_keeps_its_own_card_without_the_settings_shell(client):
    page = html(client.get("/accounts/login/"))
    assert "settings-nav" not in page and 'class="card"' in page


# --- API keys ------------------------------------------------------------------------------------------

def test_an_api_key_is_shown_once_on_the_next_page_and_never_again(client, owner):
    signed_in(client, owner)
    created = client.post("/settings/api-keys/", {"name": "laptop scripts", "expires_on": ""})
    assert created.status_code == 302 and created["Location"] == "/settings/api-keys/new/"

    shown = client.get("/settings/api-keys/new/")
    key = ApiKey.objects.get(user=owner)
    secret = shown.context["secret"]
    assert secret.startswith(key.prefix) and f'value="{secret}"' in html(shown)
    assert "no-store" in shown["Cache-Control"]
    assert api_key_authenticate(secret) == key

    again = client.get("/settings/api-keys/new/")
    assert again.status_code == 302 and again["Location"] == "/settings/api-keys/"
    listing = html(client.get("/settings/api-keys/"))
    assert "laptop scripts" in listing and f"{key.prefix}…" in listing and secret not in listing
    assert secret not in json.dumps(dict(client.session))


def test_an_api_key_may_expire_but_not_in_the_past(client, owner):
    signed_in(client, owner)
    yesterday = timezone.localdate() - timedelta(days=1)
    refused = client.post("/settings/api-keys/", {"name": "old", "expires_on": yesterday.isoformat()})
    assert refused.status_code == 400 and "The expiry date must be in the future." in html(refused)
    assert not ApiKey.objects.exists()
    today = timezone.localdate()
    client.post("/settings/api-keys/", {"name": "today only", "expires_on": today.isoformat()})
    key = ApiKey.objects.get()
    assert key.expires_at > timezone.now() and timezone.localtime(key.expires_at).date() == today + timedelta(days=1)


def test_the_key_list_shows_only_the_users_own_keys(client, owner, other):
    api_key_create(user=owner, name="olga's key")
    api_key_create(user=other, name="otto's key")
    page = html(signed_in(client, owner).get("/settings/api-keys/"))
    assert "olga&#x27;s key" in page and "otto" not in page


def test_revoking_asks_first_and_only_the_owner_may(client, owner, other):
    key = api_key_create(user=owner, name="ci").api_key
    signed_in(client, other)
    assert client.get(f"/settings/api-keys/{key.pk}/revoke/").status_code == 404
    assert client.post(f"/settings/api-keys/{key.pk}/revoke/").status_code == 404
    signed_in(client, owner)
    question = client.get(f"/settings/api-keys/{key.pk}/revoke/")
    assert question.status_code == 200 and "Revoke the key “ci”" in html(question)
    key.refresh_from_db()
    assert key.revoked_at is None
    done = client.post(f"/settings/api-keys/{key.pk}/revoke/")
    key.refresh_from_db()
    assert done["Location"] == "/settings/api-keys/" and key.revoked_at is not None
    assert "ci" not in html(client.get("/settings/api-keys/")).split("Your keys", 1)[1]


def test_a_role_without_api_access_has_no_api_keys_page(client, make_user, make_role):
    user = make_user(role=make_role("NOAPI", can_use_api=False))
    signed_in(client, user)
    assert client.get("/settings/api-keys/").status_code == 403
    assert client.post("/settings/api-keys/", {"name": "x"}).status_code == 403
    assert not ApiKey.objects.exists()
    assert "/settings/api-keys/" not in html(client.get("/settings/general/"))


# --- provider keys -------------------------------------------------------------------------------------

def test_a_provider_key_is_stored_and_never_rendered_back(client, owner, byok):
    signed_in(client, owner)
    page = html(client.get("/settings/provider-keys/"))
    assert "Bring Your Own" in page and "Company" not in page and "no key" in page

    saved = client.post(f"/settings/provider-keys/{byok.pk}/", {f"e{byok.pk}-api_key": SECRET})
    assert saved["Location"] == "/settings/provider-keys/"
    stored = UserProviderKey.objects.get(user=owner, endpoint=byok)
    assert stored.api_key == SECRET
    page = html(client.get("/settings/provider-keys/"))
    assert "key stored" in page and SECRET not in page and "Replace key" in page


def test_a_refused_provider_key_form_does_not_echo_the_key(client, owner, byok):
    signed_in(client, owner)
    refused = client.post(f"/settings/provider-keys/{byok.pk}/",
                          {f"e{byok.pk}-api_key": SECRET, f"e{byok.pk}-expires_on": "2001-01-01"})
    assert refused.status_code == 400 and "The expiry date must be in the future." in html(refused)
    assert SECRET not in html(refused) and not UserProviderKey.objects.exists()
    missing = client.post(f"/settings/provider-keys/{byok.pk}/", {f"e{byok.pk}-api_key": ""})
    assert missing.status_code == 400 and "This field is required." in html(missing)


def test_provider_keys_are_the_owners_only(client, owner, other, byok, make_endpoint):
    UserProviderKey.objects.create(user=other, endpoint=byok, api_key=SECRET)
    signed_in(client, owner)
    assert "key stored" not in html(client.get("/settings/provider-keys/"))
    assert client.post(f"/settings/provider-keys/{byok.pk}/delete/").status_code == 404
    assert UserProviderKey.objects.filter(user=other).exists()
    company = make_endpoint("Not keyed")
    assert client.post(f"/settings/provider-keys/{company.pk}/", {f"e{company.pk}-api_key": "x"}).status_code == 404


def test_deleting_a_provider_key(client, owner, byok):
    UserProviderKey.objects.create(user=owner, endpoint=byok, api_key=SECRET)
    signed_in(client, owner)
    assert client.post(f"/settings/provider-keys/{byok.pk}/delete/")["Location"] == "/settings/provider-keys/"
    assert not UserProviderKey.objects.exists()


# --- usage -------------------------------------------------------------------------------------------

def _spend(user, endpoint, times: int) -> None:
    from billing.services import record_usage
    from endpoints.adapters.types import Usage

    for _ in range(times):
        record_usage(user=user, endpoint=endpoint, model="byo-model", context="message",
                     usage=Usage.from_openai(prompt_tokens=1000, completion_tokens=100))


def test_usage_shows_the_balance_the_ledger_newest_first_in_pages_and_the_days(client, owner, other, byok):
    byok.models.update(prompt_rate=Decimal(2), completion_rate=Decimal(8))
    _spend(owner, byok, 15)  # two rows each, after the start balance's row
    _spend(other, byok, 1)
    signed_in(client, owner)
    first = client.get("/settings/usage/")
    page = html(first)
    assert "Transactions" in page and "$0.002" in page and "-$0.0008" in page
    assert len(first.context["transactions"]) == 25
    ids = [row["entry"].id for row in first.context["transactions"]]
    assert ids == sorted(ids, reverse=True)
    older = first.context["older"]
    second = client.get(f"/settings/usage/?before={older}")
    rest = second.context["transactions"]
    assert rest and all(row["entry"].id < older for row in rest) and second.context["older"] is None
    assert len(ids) + len(rest) == 31  # 30 usage rows and the start balance, none of otto's
    day, totals = first.context["days"][0]
    assert day == timezone.localdate() and totals.total_tokens == 15 * 1100 and "<meter" in page


# --- shared links -------------------------------------------------------------------------------------

@pytest.fixture
def conversation(owner):
    convo = Conversation.objects.create(user=owner, title="Garden plans")
    question = Message.objects.create(conversation=convo, user=owner, role="user", text="Shade tomatoes?")
    Message.objects.create(conversation=convo, user=owner, role="assistant", text="Cherry ones.", parent=question)
    return convo


def test_shared_links_lists_the_owners_live_links_and_revokes_them(client, owner, other, conversation):
    live = share_create(user=owner, conversation=conversation)
    expired = share_create(user=owner, conversation=conversation, expires_at=timezone.now() + timedelta(hours=1))
    ShareLink.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    signed_in(client, other)
    assert "Garden plans" not in html(client.get("/settings/shared-links/"))
    assert client.post(f"/settings/shared-links/{live.pk}/revoke/").status_code == 404

    signed_in(client, owner)
    page = html(client.get("/settings/shared-links/"))
    assert "Garden plans" in page and f"/share/{live.token}" in page and f"/share/{expired.token}" not in page
    assert client.get(f"/settings/shared-links/{live.pk}/revoke/").status_code == 200
    assert client.post(f"/settings/shared-links/{live.pk}/revoke/")["Location"] == "/settings/shared-links/"
    assert client.get(f"/share/{live.token}").status_code == 404
    assert "You have no shared links." in html(client.get("/settings/shared-links/"))


# --- data: import and export ----------------------------------------------------------------------------

def test_importing_a_chatgpt_export_lists_what_it_created(client, owner):
    signed_in(client, owner)
    upload = SimpleUploadedFile("conversations.json", CHATGPT.read_bytes(), "application/json")
    done = client.post("/settings/data/", {"file": upload})
    assert done["Location"] == "/settings/data/"
    imported = Conversation.objects.filter(user=owner)
    assert imported.count() == 2
    page = html(client.get("/settings/data/"))
    assert "Imported 2 conversations" in page
    for convo in imported:
        assert f'href="/c/{convo.pk}"' in page
    assert 'href="/c/' not in html(client.get("/settings/data/")), "the list is shown once, after the import"


def test_a_broken_file_imports_nothing_and_says_why_in_the_importers_words(client, owner):
    signed_in(client, owner)
    conversations = json.loads(CHATGPT.read_text())
    conversations[1]["mapping"]["ans"]["message"]["content"]["content_type"] = "hologram"
    upload = SimpleUploadedFile("conversations.json", json.dumps(conversations).encode(), "application/json")
    refused = client.post("/settings/data/", {"file": upload})
    assert refused.status_code == 400
    said = refused.context["form"].errors["file"][0]
    assert "conversation 2" in said and "node ans" in said and "'hologram'" in said
    assert said.replace("'", "&#x27;") in html(refused)
    assert not Conversation.objects.exists()


def test_an_unreadable_file_and_a_file_over_the_limit_are_refused(client, owner, settings):
    signed_in(client, owner)
    junk = client.post("/settings/data/", {"file": SimpleUploadedFile("notes.txt", b"hello", "text/plain")})
    assert junk.status_code == 400 and junk.context["form"].errors["file"]
    settings.CHAT_IMPORT_MAX_BYTES = 10
    big = client.post("/settings/data/", {"file": SimpleUploadedFile("c.json", CHATGPT.read_bytes())})
    assert big.status_code == 400 and "larger than the import limit" in html(big)
    assert not Conversation.objects.exists()


def test_the_export_form_downloads_the_users_own_conversations(client, owner, other, conversation):
    Conversation.objects.create(user=other, title="Otto's secret plan")
    signed_in(client, owner)
    page = html(client.get("/settings/data/"))
    assert 'action="/api/library/export"' in page and '<option value="md">' in page
    download = client.get("/api/library/export", {"format": "md"})
    body = download.content.decode()
    assert "attachment" in download["Content-Disposition"]
    assert "Garden plans" in body and "Cherry ones." in body and "Otto" not in body


def test_an_endpoint_that_takes_the_users_base_url_asks_for_a_valid_one(client, owner, role, make_endpoint):
    local = make_endpoint("My Ollama", api_key="user_provided", base_url="user_provided")
    role.allowed_endpoints.add(local)
    signed_in(client, owner)
    bad = client.post(f"/settings/provider-keys/{local.pk}/",
                      {f"e{local.pk}-api_key": SECRET, f"e{local.pk}-base_url": "not a url"})
    assert bad.status_code == 400 and "Enter a valid URL." in html(bad) and not UserProviderKey.objects.exists()
    client.post(f"/settings/provider-keys/{local.pk}/",
                {f"e{local.pk}-api_key": SECRET, f"e{local.pk}-base_url": "https://llm.corp.example/v1"})
    stored = UserProviderKey.objects.get(user=owner)
    assert (stored.api_key, stored.base_url) == (SECRET, "https://llm.corp.example/v1")
    page = html(client.get("/settings/provider-keys/"))
    assert "llm.corp.example" not in page and SECRET not in page
