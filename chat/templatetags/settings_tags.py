"""`{% settings_nav %}`: the settings pages' navigation, the current page marked (allauth's account
pages count as "Account & security"); "API keys" only for roles with API access."""
from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext_lazy as _

register = template.Library()

SECTIONS = (
    ("general", "settings:general", _("General")),
    ("account", "settings:account", _("Account & security")),
    ("provider_keys", "settings:provider_keys", _("Provider keys")),
    ("api_keys", "settings:api_keys", _("API keys")),
    ("usage", "settings:usage", _("Usage")),
    ("shares", "settings:shares", _("Shared links")),
    ("data", "settings:data", _("Data")),
)
SECTION_OF = {  # settings URL name → its section
    "index": "general", "provider_key_save": "provider_keys", "provider_key_remove": "provider_keys",
    "api_key_created": "api_keys", "api_key_revoke": "api_keys", "share_revoke": "shares",
}


def current_section(request: Any) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or match.namespace != "settings":
        return "account"  # the only other pages in this shell are allauth's
    name = str(match.url_name)
    return SECTION_OF.get(name, name)


@register.inclusion_tag("settings/nav.html", takes_context=True)
def settings_nav(context: template.Context) -> dict[str, Any]:
    request = context.get("request")
    user = context.get("user")
    role = getattr(user, "role", None)
    api = role is not None and role.can_use_api
    current = current_section(request)
    return {"sections": [
        {"url": url, "label": label, "current": key == current}
        for key, url, label in SECTIONS if key != "api_keys" or api
    ]}
