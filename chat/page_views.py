"""The chat page: `/` (a new chat) and `/c/<id>` (one of the user's conversations, `?m=<message id>`
to open it at that message). The page draws the conversation's message tree from the data the
REST API's GET /api/conversations/{id} serves (the same owner-scoped selector, embedded as JSON);
everything it writes goes through the websocket or the REST API."""
from __future__ import annotations

import dataclasses
import uuid
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from billing.selectors import UsageTotals, display_currency
from chat.api import conversation_out, message_out
from chat.selectors import Thread, conversation_thread, thread_usage

if TYPE_CHECKING:
    from accounts.models import User
    from endpoints.models import Endpoint


def _may_chat(user: User) -> bool:
    role = user.role
    return role is not None and role.can_chat


def _loaded(thread: Thread) -> dict[str, Any]:
    """The conversation's current choice, as `atrium:conversation-loaded` hands it to the selector."""
    convo = thread.conversation
    return {
        **conversation_out(convo),
        "endpoint_id": convo.endpoint_id,
    }


def _icon(endpoint: Endpoint) -> dict[str, str]:
    return {"icon_url": endpoint.icon_url, "label": endpoint.model_display_label, "kind": endpoint.kind}


def thread_data(*, user: User, thread: Thread) -> dict[str, Any]:
    """The tree as GET /api/conversations/{id} shapes it, plus each answering endpoint's icon and
    modelDisplayLabel (from the rows the selector already read: no further query)."""
    usage = thread_usage(user=user, thread=thread)
    zero = UsageTotals.from_row({}, display_currency())
    endpoints: dict[str, dict[str, str]] = {}
    messages = []
    for node in thread.nodes:
        message = node.message
        out = message_out(message, usage.get(message.id, zero))
        out["usage"] = dataclasses.asdict(out["usage"])
        out.update(siblings=node.siblings, children=node.children, current=node.current,
                   in_flight=message.in_flight is not None)
        if message.endpoint is not None and message.endpoint.name not in endpoints:
            endpoints[message.endpoint.name] = _icon(message.endpoint)
        messages.append(out)
    return {
        "conversation": _loaded(thread), "messages": messages, "current_message_id": thread.current_id,
        "endpoints": endpoints,
    }


def _page(request: HttpRequest, *, thread: Thread | None, focus: uuid.UUID | None) -> HttpResponse:
    user = cast("User", request.user)  # (login_required)
    if not _may_chat(user):
        return render(request, "chat/no_chat.html", {"conversation": None}, status=403)
    data = thread_data(user=user, thread=thread) if thread is not None else {
        "conversation": None, "messages": [], "current_message_id": None, "endpoints": {},
    }
    data["focus"] = focus
    return render(request, "chat/page.html", {
        "conversation": thread.conversation if thread is not None else None,
        "page_data": data,
    })


@ensure_csrf_cookie
@login_required
def new_chat(request: HttpRequest) -> HttpResponse:
    return _page(request, thread=None, focus=None)


@ensure_csrf_cookie
@login_required
def conversation(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    thread = conversation_thread(user=cast("User", request.user), conversation_id=conversation_id)
    if thread is None:
        raise Http404
    focus = None
    try:
        focus = uuid.UUID(request.GET.get("m", ""))
    except ValueError:
        pass
    if focus is not None and not any(node.message.id == focus for node in thread.nodes):
        focus = None
    return _page(request, thread=thread, focus=focus)
