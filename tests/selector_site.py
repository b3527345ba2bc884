"""A test-only site for the model selector's browser tests (tests/test_page_selector.py): Atrium's
URLs, with `/` and `/c/<id>` drawing a page that extends app.html and includes chat/selector.html
(the chat page that will include it is built elsewhere). Served by a daphne started with
DJANGO_SETTINGS_MODULE=tests.selector_settings."""
from __future__ import annotations

from typing import Any

from django.urls import path

from portal.urls import urlpatterns as portal_urls

PAGE = """{% extends "app.html" %}
{% block appbar %}{% include "chat/selector.html" %}{% endblock %}
{% block app %}<main id="app-main" class="page"><p>selector test page</p></main>{% endblock %}"""


def _page(request: Any, conversation_id: Any = None) -> Any:
    from django.contrib.auth.decorators import login_required
    from django.http import HttpResponse
    from django.shortcuts import get_object_or_404
    from django.template import engines
    from django.views.decorators.csrf import ensure_csrf_cookie

    from chat.models import Conversation

    @ensure_csrf_cookie
    @login_required
    def view(request: Any) -> Any:
        conversation = (get_object_or_404(Conversation, pk=conversation_id, user=request.user)
                        if conversation_id else None)
        html = engines["django"].from_string(PAGE).render({"conversation": conversation}, request)
        return HttpResponse(html)

    return view(request)


urlpatterns = [path("", _page), path("c/<uuid:conversation_id>", _page),
               *[p for p in portal_urls if str(p.pattern) != ""]]
