"""The chat page's model selector (templates/chat/selector.html): `{% selector_state as selector %}`
computes its data from the request's user and the `conversation` in the context (may be None)."""
from __future__ import annotations

from typing import Any

from django import template

from chat.page_selector import SelectorState, selector_state

register = template.Library()


@register.simple_tag(takes_context=True, name="selector_state")
def selector_state_tag(context: template.Context) -> SelectorState | None:
    """None for a signed-out visitor (the selector is not drawn)."""
    request: Any = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return selector_state(user=user, conversation=context.get("conversation"), new_chat=request.path == "/")
