"""The portal's settings plus a stand-in chat page (tests/sidebar_site/urls.py) for the sidebar's
browser tests, until the real page (chat/page_views.py) is merged: daphne runs with these."""
from pathlib import Path

from portal.settings import *  # noqa: F403
from portal.settings import STATICFILES_DIRS, TEMPLATES

HERE = Path(__file__).resolve().parent
ROOT_URLCONF = "tests.sidebar_site.urls"
TEMPLATES[0]["DIRS"] = [*TEMPLATES[0]["DIRS"], HERE / "templates"]
STATICFILES_DIRS = [*STATICFILES_DIRS, HERE / "static"]
