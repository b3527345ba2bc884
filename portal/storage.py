"""Static files with their content's hash in their names (cache-busting).

`collectstatic` (which `make run` runs) writes `atrium.3f2a….css` beside `atrium.css` and a manifest;
pages then link the hashed names, which WhiteNoise serves with a year's cache, so a new release is
fetched at once and an unchanged file never again. ES modules' `import … from "./x.js"` are
rewritten to the hashed names too. Without a collected copy (tests, a checkout that never ran
`collectstatic`) a file keeps its own name and is served from the app's static folder.
"""
from __future__ import annotations

from typing import Any

from whitenoise.storage import CompressedManifestStaticFilesStorage


class HashedStaticFiles(CompressedManifestStaticFilesStorage):
    manifest_strict = False
    support_js_module_import_aggregation = True

    def hashed_name(self, name: str, content: Any = None, filename: str | None = None) -> str:
        try:
            return super().hashed_name(name, content, filename)
        except ValueError:  # not collected: the file's own name
            return name
