"""`{% sidebar_data as sidebar %}`: what templates/chat/sidebar.html shows, for the signed-in user
and the page's `conversation` (None on a new chat), so the page's view passes nothing for it."""
from __future__ import annotations

import uuid
from typing import Any

from django import template

from chat.sidebar import Sidebar, sidebar_for

register = template.Library()


@register.simple_tag(takes_context=True)
def sidebar_data(context: template.Context) -> Sidebar | None:
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return None
    conversation: Any = context.get("conversation")
    current = conversation.get("id") if isinstance(conversation, dict) else getattr(conversation, "pk", None)
    return sidebar_for(user=user, current_id=uuid.UUID(str(current)) if current else None)
