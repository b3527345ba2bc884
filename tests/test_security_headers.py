"""Security headers: a Content-Security-Policy on every page Atrium renders, which the admin, the
sign-in pages and the API docs live with (no inline script or style in their markup), and HSTS
when SITE_URL is https."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib import admin
from django.urls import reverse

from tests.test_admin import populated, registered_models  # noqa: F401  (populated is a fixture)

ROOT = Path(__file__).resolve().parent.parent
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=\"", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+=\"", re.I)


def policy_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


def assert_policy_allows_only_its_own_scripts_and_styles(response) -> None:
    policy = policy_of(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]


def assert_no_inline_code(url: str, html: str) -> None:
    assert not INLINE_SCRIPT.search(html), f"{url}: inline <script> the policy blocks"
    assert not INLINE_STYLE.search(html), f"{url}: inline style the policy blocks"
    assert not INLINE_HANDLER.search(html), f"{url}: inline event handler the policy blocks"


def test_the_sign_in_pages_carry_the_policy_and_no_inline_code(client, db):
    for url in ("/accounts/login/", "/accounts/password/reset/", "/admin/login/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_policy_allows_only_its_own_scripts_and_styles(response)
        assert_no_inline_code(url, response.content.decode())


def test_signed_in_pages_carry_the_policy_and_no_inline_code(admin_client):
    for url in ("/", "/accounts/2fa/", "/accounts/email/", "/api/docs", "/admin/"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_policy_allows_only_its_own_scripts_and_styles(response)
        assert_no_inline_code(url, response.content.decode())


@pytest.mark.parametrize("model", registered_models(), ids=lambda m: m._meta.label)
def test_every_admin_page_works_under_the_policy(admin_client, populated, model):  # noqa: F811
    opts = model._meta
    urls = [reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")]
    model_admin = admin.site._registry[model]
    request = admin_client.get(urls[0]).wsgi_request
    if model_admin.has_add_permission(request):
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    obj = model.objects.first()
    if obj is not None:
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
    for url in urls:
        response = admin_client.get(url, follow=True)
        assert response.status_code == 200, url
        assert "Content-Security-Policy" in response
        assert_no_inline_code(url, response.content.decode())


def hsts_seconds(site_url: str) -> int:
    """SECURE_HSTS_SECONDS as portal.settings computes it for `site_url` (read in a fresh process)."""
    env = {**os.environ, "SITE_URL": site_url}
    env.pop("SECURE_HSTS_SECONDS", None)
    result = subprocess.run(
        [sys.executable, "-c", "import portal.settings as s; print(s.SECURE_HSTS_SECONDS)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    return int(result.stdout.strip().splitlines()[-1])


def test_hsts_is_on_when_the_portal_is_served_over_https(client, db, settings):
    assert hsts_seconds("https://chat.corp.example") >= 180 * 24 * 3600
    assert hsts_seconds("http://127.0.0.1:8000") == 0

    settings.SECURE_HSTS_SECONDS = hsts_seconds("https://chat.corp.example")
    response = client.get("/accounts/login/", secure=True)

    assert response["Strict-Transport-Security"] == f"max-age={settings.SECURE_HSTS_SECONDS}"
