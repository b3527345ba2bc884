"""Settings of the daphne serving tests/selector_site.py (the model selector's browser tests):
Atrium's own, with that test-only URL conf."""
from portal.settings import *  # noqa: F403

ROOT_URLCONF = "tests.selector_site"
