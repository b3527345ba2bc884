"""The chat page's model selector: what `templates/chat/selector.html` draws, from the same data
GET /api/models serves (`endpoints.selectors.offer_payload`), with the icons resolved, the
sections laid out and the conversation's current choice."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.templatetags.static import static
from django.utils.translation import gettext

from endpoints.selectors import offer_payload

if TYPE_CHECKING:
    from accounts.models import User
    from chat.models import Conversation

# Icons Atrium ships (chat/static/chat/icons/<key>.svg), one per endpoint kind. An iconURL naming
# one of them (any case) reuses it, as LibreChat's built-in endpoint keys do.
KIND_ICONS = ("openAI", "azureOpenAI", "anthropic", "bedrock", "google", "custom")
_BY_LOWER = {key.lower(): key for key in KIND_ICONS}
FILTER_FROM = 10  # options from which the list gets a search box


def icon_for(icon_url: str, kind: str) -> str:
    """The icon's URL: a built-in key's icon, a same-origin path as given, else the kind's icon.
    Other sites' images are not loaded: the page's Content-Security-Policy allows 'self' only."""
    value = (icon_url or "").strip()
    if value.lower() in _BY_LOWER:
        return static(f"chat/icons/{_BY_LOWER[value.lower()]}.svg")
    if value.startswith("/") and not value.startswith("//"):
        return value
    return static(f"chat/icons/{_BY_LOWER.get((kind or '').lower(), 'custom')}.svg")


@dataclass
class Section:
    """A heading of the list (a spec group or an endpoint) and its options, in the selector's order."""

    title: str
    icon: str = ""
    note: str = ""  # the endpoint's modelDisplayLabel when it says more than its name
    options: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SelectorState:
    data: dict[str, Any]  # the offer, icons added (json_script for the page's script)
    sections: list[Section]
    count: int  # how many options
    presets: bool
    temporary: bool
    current: dict[str, Any] | None  # the conversation's choice (None: a new chat)

    @property
    def filterable(self) -> bool:
        return self.count >= FILTER_FROM


def selector_state(*, user: User, conversation: Conversation | None, new_chat: bool) -> SelectorState:
    """What the selector shows `user`. `conversation` counts only when it is the user's own."""
    offer = offer_payload(user=user)
    for spec in offer["specs"]:
        spec["icon"] = icon_for(spec["icon_url"], spec["endpoint_kind"])
    for endpoint in offer["endpoints"]:
        endpoint["icon"] = icon_for(endpoint["icon_url"], endpoint["kind"])
    sections = _sections(offer)
    role = user.role
    own = conversation if conversation is not None and conversation.user_id == user.pk else None
    return SelectorState(
        data=offer, sections=sections, count=sum(len(s.options) for s in sections),
        presets=bool(role and role.can_use_presets),
        temporary=new_chat and bool(getattr(role, "can_temporary_chat", False)),
        current=choice_of(own) if own is not None else None,
    )


def _sections(offer: dict[str, Any]) -> list[Section]:
    """Spec groups first (a spec whose group names an endpoint sits at the top of that endpoint's
    section, as in LibreChat), then the endpoints with their models."""
    endpoint_names = {e["name"] for e in offer["endpoints"]}
    groups: dict[str, Section] = {}
    nested: dict[str, list[dict[str, Any]]] = {}
    for spec in offer["specs"]:
        option = {"kind": "spec", "spec": spec["name"], "label": spec["label"] or spec["name"],
                  "description": spec["description"], "icon": spec["icon"]}
        if spec["group"] in endpoint_names:
            nested.setdefault(spec["group"], []).append(option)
            continue
        title = spec["group"] or gettext("Model specs")
        section = groups.setdefault(title, Section(title=title, icon=icon_for(spec["group_icon"], "") if
                                                  spec["group_icon"] else ""))
        section.options.append(option)
    sections = list(groups.values())
    for endpoint in offer["endpoints"]:
        label = endpoint["display_label"]
        section = Section(title=endpoint["name"], icon=endpoint["icon"],
                          note=label if label and label not in ("AI", endpoint["name"]) else "")
        section.options.extend(nested.get(endpoint["name"], []))
        section.options.extend(
            {"kind": "model", "endpoint": endpoint["name"], "model": model["name"], "label": model["label"],
             "description": "", "icon": endpoint["icon"]}
            for model in endpoint["models"]
        )
        sections.append(section)
    return sections


def choice_of(conversation: Conversation) -> dict[str, Any]:
    """A conversation's current choice, as `atrium:conversation-loaded` carries it."""
    return {
        "id": str(conversation.pk), "endpoint": conversation.endpoint_name, "endpoint_id": conversation.endpoint_id,
        "model": conversation.model,
        "spec": conversation.model_spec.name if conversation.model_spec_id and conversation.model_spec else None,
        "params": conversation.params or {}, "system_prompt": conversation.system_prompt,
        "temporary": conversation.temporary,
    }
