"""Static files are cache-busted: once collected, pages link names carrying the content's hash
(ES modules' imports included) and WhiteNoise serves them with a long cache; uncollected, a file
is served under its own name."""
from __future__ import annotations

import re

from django.core.management import call_command
from django.templatetags.static import static


def test_uncollected_files_keep_their_names(settings):
    assert static("css/atrium.css") == "/static/css/atrium.css"


def test_collected_files_are_linked_by_their_hashed_names(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path  # (Django's test signals start the storage afresh on it)
    call_command("collectstatic", "--noinput", "-v0")
    url = static("css/atrium.css")
    assert re.fullmatch(r"/static/css/atrium\.[0-9a-f]{12}\.css", url), url
    assert (tmp_path / url.removeprefix("/static/")).exists()
