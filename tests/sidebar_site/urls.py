"""A stand-in chat page: `/` (new chat) and `/c/<id>` (the owner's conversation, else 404) laid out
as page_contract.md says, the sidebar included, the pane empty. Only for tests/test_page_sidebar.py."""
import uuid

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.views.decorators.csrf import ensure_csrf_cookie

from chat.models import Conversation
from portal.urls import urlpatterns as portal_urlpatterns


@login_required
@ensure_csrf_cookie
def page(request: HttpRequest, conversation_id: uuid.UUID | None = None) -> HttpResponse:
    conversation = None
    if conversation_id is not None:
        conversation = get_object_or_404(Conversation, pk=conversation_id, user=request.user)
    return render(request, "sidebar_site/page.html", {"conversation": conversation})


urlpatterns = [
    path("", page, name="chat_new"),
    path("c/<uuid:conversation_id>", page, name="chat_conversation"),
    *[p for p in portal_urlpatterns if getattr(p, "name", None) != "home"],
]
