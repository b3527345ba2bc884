"""The chat page: `/` (a new chat) and `/c/<id>` (one of the user's conversations, `?m=<message id>`
to open it at that message). The page draws the conversation's message tree from the data the
REST API's GET /api/conversations/{id} serves (the same owner-scoped selector, embedded as JSON);
everything it writes goes through the websocket or the REST API."""
from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth.decorators import login_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.csrf import ensure_csrf_cookie

from billing.selectors import UsageTotals
from chat.api import conversation_out
from chat.selectors import Thread, conversation_thread, thread_usage

if TYPE_CHECKING:
    from accounts.models import User
    from chat.models import Message
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


def _message(message: Message, usage: UsageTotals | None, current: bool) -> dict[str, Any]:
    """A message as the pane draws it: GET /api/conversations/{id}'s fields, less what the page
    does not use (the tree's child lists, which it derives; the text twice, as `content` parts)."""
    return {
        # (ids as strings here: the JSON encoder then runs in C, without a Python call per UUID)
        "id": str(message.pk), "parent_id": str(message.parent_id) if message.parent_id else None,
        "role": message.role, "text": message.text,
        "content": [part for part in message.content if part.get("type") != "text"],
        "endpoint": message.endpoint.name if message.endpoint else None, "model": message.model,
        "sender": message.sender, "finish_reason": message.finish_reason, "error": message.error,
        "unfinished": message.unfinished, "current": current,
        "tokens": {"prompt": message.prompt_tokens, "completion": message.completion_tokens,
                   "reasoning": message.reasoning_tokens},
        "usage": {"credits": str(usage.credits), "cost": usage.cost, "estimated": usage.estimated} if usage else None,
    }


def thread_data(*, user: User, thread: Thread) -> dict[str, Any]:
    """The tree, from the selector GET /api/conversations/{id} uses, plus each answering endpoint's
    icon and modelDisplayLabel (from the rows the selector already read: no further query)."""
    usage = thread_usage(user=user, thread=thread)
    endpoints: dict[str, dict[str, str]] = {}
    messages = []
    for node in thread.nodes:
        message = node.message
        messages.append(_message(message, usage.get(message.id), node.current))
        if message.endpoint is not None and message.endpoint.name not in endpoints:
            endpoints[message.endpoint.name] = _icon(message.endpoint)
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
        "page_json": page_json(data),
    })


def page_json(data: dict[str, Any]) -> SafeString:
    """`data` as JSON safe inside <script type="application/json">, escaped as Django's json_script
    escapes it (<, > and & as \\u escapes), but with str.replace: json_script's str.translate costs
    tens of milliseconds on a long conversation's megabyte."""
    text = json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)
    return mark_safe(text.replace("&", "\\u0026").replace("<", "\\u003C").replace(">", "\\u003E"))


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
