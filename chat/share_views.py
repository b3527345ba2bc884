"""The public page of a share link: no sign-in, nothing of the owner, 404 once revoked or expired."""
from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from chat.shares import live_share


@require_GET
def shared_conversation(request: HttpRequest, token: str) -> HttpResponse:
    link = live_share(token)
    if link is None:
        raise Http404("This link does not exist, was revoked or has expired.")
    response = render(request, "chat/shared.html", {"title": link.title, "turns": link.snapshot,
                                                     "shared_at": link.created_at})
    response["X-Robots-Tag"] = "noindex"  # a link is shared with people, not search engines
    response["Referrer-Policy"] = "no-referrer"  # the token never leaks to a linked site
    return response
