"""Static files are cache-busted: once collected, pages link names carrying the content's hash
(ES modules' imports included) and WhiteNoise serves them with a long cache; uncollected, a file
is served under its own name."""
from __future__ import annotations

import json
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


def test_every_module_import_of_a_collected_script_names_a_collected_file(settings, tmp_path):
    """Collecting rewrites `import … from "./x.js"` to hashed names; a rewrite must never miss or
    hash twice (Django's pattern also matches from the word `export` in a comment up to an import)."""
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", "--noinput", "-v0")
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())
    broken = []
    for name, hashed in manifest["paths"].items():
        if not (name.startswith("chat/") and name.endswith(".js")):
            continue
        script = tmp_path / hashed
        for target in re.findall(r"""(?:from|import\()\s*["'](\.{1,2}/[^"']+)["']""", script.read_text()):
            if not (script.parent / target).resolve().exists():
                broken.append(f"{hashed} → {target}")
    assert broken == []
