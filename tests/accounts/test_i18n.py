"""The sign-in pages and accounts messages speak the employee's language: chosen by the browser
(Accept-Language) or by the language switcher, right-to-left for Arabic, with complete catalogues
whose compiled .mo files match their .po sources."""
from __future__ import annotations

import ast
import gettext
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils.translation import to_locale

from accounts.models import Role

LOCALE_DIR = Path(settings.LOCALE_PATHS[0])
TRANSLATED = [code for code, _name in settings.LANGUAGES if code != "en"]


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str = ""
    msgstrs: dict[str, str] = field(default_factory=dict)  # "" or "0", "1", … for plural forms
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False


def read_po(path: Path) -> list[Entry]:
    """A small .po reader: enough for Django's makemessages output (no external dependency)."""
    entries: list[Entry] = []
    entry, target = Entry(), None

    def finish() -> None:
        nonlocal entry, target
        if entry.msgid or entry.msgstrs or entry.obsolete:
            entries.append(entry)
        entry, target = Entry(), None

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#~"):
            entry.obsolete = True
            continue
        if line.startswith("#,"):
            entry.flags.update(flag.strip() for flag in line[2:].split(","))
            continue
        if line.startswith("#"):
            continue
        value = ast.literal_eval(line[line.index('"'):])
        if line.startswith('"'):  # continuation of the previous keyword's string
            if target == "msgid":
                entry.msgid += value
            elif target == "msgid_plural":
                entry.msgid_plural += value
            else:
                entry.msgstrs[target] += value
            continue
        keyword = line.split(" ", 1)[0]
        if keyword == "msgid":
            if entry.msgid or entry.msgstrs:
                finish()
            entry.msgid, target = value, "msgid"
        elif keyword == "msgid_plural":
            entry.msgid_plural, target = value, "msgid_plural"
        elif keyword.startswith("msgstr"):
            target = keyword[len("msgstr["):-1] if "[" in keyword else ""
            entry.msgstrs[target] = value
        else:
            raise AssertionError(f"{path}: cannot read {raw!r}")
    finish()
    return entries


DOMAINS = ["django", "djangojs"]  # the templates' and Python's strings; the page scripts' (/jsi18n/)


def catalogue(code: str, domain: str = "django") -> Path:
    return LOCALE_DIR / to_locale(code) / "LC_MESSAGES" / f"{domain}.po"


def translation_of(msgid: str, code: str) -> str:
    return next(e.msgstrs[""] for e in read_po(catalogue(code)) if e.msgid == msgid)


def placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"%\(\w+\)[sdif]|%[sdif]", text))


# --- the pages -------------------------------------------------------------------------------------

def test_the_login_page_speaks_german_when_the_browser_asks_for_it(client, db):
    page = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9,en;q=0.5").content.decode()

    assert '<html lang="de" dir="ltr" data-theme="system">' in page
    assert "Bei Atrium anmelden" in page  # Atrium's own string
    assert "Passwort vergessen?" in page  # allauth's string, from allauth's catalogue
    assert "Sign in to Atrium" not in page


def test_arabic_pages_are_right_to_left(client, db):
    page = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="ar").content.decode()

    assert '<html lang="ar" dir="rtl" data-theme="system">' in page
    assert "تسجيل الدخول إلى Atrium" in page


@pytest.mark.parametrize("code", TRANSLATED)
def test_every_language_renders_the_login_page_in_that_language(client, db, code):
    page = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE=code).content.decode()

    assert f'<html lang="{code}"' in page
    assert translation_of("Sign in to Atrium", code) in page
    assert f'<option value="{code}" lang="{code}" selected>' in page


def test_english_is_the_default(client, db):
    page = client.get("/accounts/login/").content.decode()

    assert '<html lang="en" dir="ltr" data-theme="system">' in page
    assert "Sign in to Atrium" in page


def test_the_language_switcher_changes_the_next_page_and_remembers_the_choice(db):
    browser = Client(enforce_csrf_checks=True)
    login_page = browser.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    switcher = re.search(
        r'<form class="language-switcher" action="([^"]+)" method="post">(.*?)</form>', login_page, re.S
    )
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', switcher.group(2)).group(1)

    switched = browser.post(
        switcher.group(1), {"language": "fr", "next": "/accounts/login/", "csrfmiddlewaretoken": token}
    )
    next_page = browser.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="de").content.decode()

    assert switched.status_code == 302 and switched["Location"] == "/accounts/login/"
    cookie = switched.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "fr" and int(cookie["max-age"]) >= 30 * 24 * 3600
    assert '<html lang="fr" dir="ltr" data-theme="system">' in next_page  # the choice beats Accept-Language
    assert "Se connecter à Atrium" in next_page


def test_switching_language_without_the_csrf_token_is_refused(db):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/accounts/login/")

    refused = browser.post("/i18n/setlang/", {"language": "ar", "next": "/accounts/login/"})

    assert refused.status_code == 403
    assert settings.LANGUAGE_COOKIE_NAME not in refused.cookies


def test_accounts_api_errors_are_translated(client, make_user):
    user = make_user("hans", role=Role.objects.create(name="API", can_use_api=True))
    client.force_login(user)

    response = client.post(
        "/api/keys", {"name": "laptop", "expires_at": "2001-01-01T00:00:00Z"},
        content_type="application/json", HTTP_ACCEPT_LANGUAGE="de",
    )

    assert response.status_code == 422
    assert response.json()["error"]["message"] == "Das Ablaufdatum muss in der Zukunft liegen."


def test_sign_up_domain_errors_are_translated(client, db):
    from accounts.models import SignInPolicy

    policy = SignInPolicy.load()
    policy.allow_signup, policy.signup_email_domains = True, "corp.example"
    policy.save()

    page = client.post("/accounts/signup/", {
        "email": "someone@elsewhere.example", "username": "someone",
        "password1": "Correct-Horse-42-battery", "password2": "Correct-Horse-42-battery",
    }, HTTP_ACCEPT_LANGUAGE="es").content.decode()

    assert "El registro solo está disponible para direcciones de los dominios corp.example." in page


# --- the catalogues --------------------------------------------------------------------------------

@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("code", TRANSLATED)
def test_every_catalogue_is_complete_and_not_fuzzy(code, domain):
    entries = read_po(catalogue(code, domain))
    header, messages = entries[0], entries[1:]

    assert header.msgid == "" and "fuzzy" not in header.flags
    assert f"Language: {to_locale(code)}\n" in header.msgstrs[""]
    assert messages, f"{code}: empty catalogue"
    for entry in messages:
        assert not entry.obsolete, f"{code}: obsolete entry {entry.msgid!r}"
        assert "fuzzy" not in entry.flags, f"{code}: fuzzy {entry.msgid!r}"
        assert entry.msgstrs and all(entry.msgstrs.values()), f"{code}: untranslated {entry.msgid!r}"
        for msgstr in entry.msgstrs.values():
            assert placeholders(msgstr) == placeholders(entry.msgid), f"{code}: placeholders of {entry.msgid!r}"


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("code", TRANSLATED)
def test_the_committed_mo_file_matches_its_po_source(code, domain):
    po = catalogue(code, domain)
    with po.with_suffix(".mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)

    for entry in read_po(po)[1:]:
        if entry.msgid_plural:
            assert compiled.ngettext(entry.msgid, entry.msgid_plural, 1) in entry.msgstrs.values()
        else:
            assert compiled.gettext(entry.msgid) == entry.msgstrs[""], f"{code}: run compilemessages"


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_language_in_settings_has_a_catalogue(domain):
    assert sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{domain}.po")) == sorted(
        to_locale(code) for code in TRANSLATED
    )
