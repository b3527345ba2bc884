"""The settings pages at /settings/ (general, account & security, usage, shared links, data).
Thin views: every read and write goes through the selectors and services the REST API uses, on the
signed-in user's own rows only. API keys and provider keys are in chat/settings_keys.py."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import IO, Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts.models import User
from billing.selectors import balance_summary, usage_by_day, usage_history
from chat import exports, shares
from chat.errors import ChatError
from chat.importers import import_file, max_bytes
from chat.models import Conversation, ShareLink
from chat.settings_forms import ImportForm
from endpoints.selectors import offer_for

TRANSACTIONS_PER_PAGE = 25
USAGE_DAYS = 30
IMPORTED_KEY = "settings_imported"  # session: ids of the conversations the last import created
TOKEN_TYPES = {
    "prompt": gettext_lazy("prompt"), "completion": gettext_lazy("completion"),
    "cache_read": gettext_lazy("cache read"), "cache_write": gettext_lazy("cache write"),
    "refill": gettext_lazy("refill"), "adjustment": gettext_lazy("adjustment"),
}
EXPORT_FORMATS = {
    "md": gettext_lazy("Markdown (.md)"), "txt": gettext_lazy("Plain text (.txt)"),
    "json": gettext_lazy("JSON, LibreChat's format (.json)"), "csv": gettext_lazy("CSV, a row per message (.csv)"),
}


def signed_in(request: HttpRequest) -> User:
    """The user of a login_required view."""
    return cast(User, request.user)


@login_required
def general(request: HttpRequest) -> HttpResponse:
    """Theme and language, and what the user's role gives them: models, balance."""
    user = signed_in(request)
    return render(request, "settings/general.html", {
        "role": user.role, "balance": balance_summary(user=user), "offer": offer_for(user=user),
    })


@login_required
def account(request: HttpRequest) -> HttpResponse:
    """Email addresses, password, two-factor and sessions: a summary with links to allauth's pages."""
    from allauth.account.models import EmailAddress
    from allauth.mfa.models import Authenticator
    from allauth.usersessions.models import UserSession

    user = signed_in(request)
    kinds = set(Authenticator.objects.filter(user=user).values_list("type", flat=True))
    return render(request, "settings/account.html", {
        "emails": EmailAddress.objects.filter(user=user).order_by("-primary", "email"),
        "totp": Authenticator.Type.TOTP in kinds,
        "recovery_codes": Authenticator.Type.RECOVERY_CODES in kinds,
        "sso": user.auth_provider != "local",
        "sessions": UserSession.objects.filter(user=user).count(),
    })


@login_required
def usage(request: HttpRequest) -> HttpResponse:
    """The balance, the ledger newest first (`?before=<id>` pages on) and the cost per day."""
    user = signed_in(request)
    before = request.GET.get("before", "")
    before_id = int(before) if before.isdigit() else None
    rows = usage_history(user=user, limit=TRANSACTIONS_PER_PAGE + 1, before_id=before_id)
    page = rows[:TRANSACTIONS_PER_PAGE]
    today = timezone.localdate()
    days = usage_by_day(user=user, start=today - dt.timedelta(days=USAGE_DAYS - 1), end=today)
    return render(request, "settings/usage.html", {
        "balance": balance_summary(user=user),
        "transactions": [{"entry": row, "kind": TOKEN_TYPES.get(row.token_type, row.token_type)} for row in page],
        "older": page[-1].id if len(rows) > TRANSACTIONS_PER_PAGE else None,
        "paged": before_id is not None,
        "days": list(reversed(days)),
        "day_max": max((totals.credits for _day, totals in days), default=0) or 1,
        "usage_days": USAGE_DAYS,
    })


@login_required
def share_links(request: HttpRequest) -> HttpResponse:
    """The user's links that still work, newest first (the same rule as GET /api/library/shares)."""
    now = timezone.now()
    links = (ShareLink.objects.filter(user=signed_in(request), revoked_at__isnull=True)
             .select_related("conversation").order_by("-created_at"))
    return render(request, "settings/shares.html", {
        "links": [
            {"link": link, "url": request.build_absolute_uri(reverse("shared_conversation", args=[link.token]))}
            for link in links if link.is_live(now)
        ],
    })


@login_required
def share_revoke(request: HttpRequest, share_id: uuid.UUID) -> HttpResponse:
    """GET: ask; POST: revoke the link (it answers 404 from then on)."""
    link = get_object_or_404(ShareLink, pk=share_id, user=signed_in(request), revoked_at__isnull=True)
    if request.method == "POST":
        shares.share_revoke(link=link)
        messages.success(request, _("The link to “%(title)s” no longer works.") % {"title": link.title})
        return redirect("settings:shares")
    return render(request, "settings/confirm.html", {
        "section_title": _("Shared links"),
        "question": _("Revoke the link to “%(title)s”?") % {"title": link.title},
        "explanation": _("Anyone who opens it will get “not found”. You can share the conversation again later."),
        "action": _("Revoke link"), "cancel": reverse("settings:shares"),
    })


@login_required
def data(request: HttpRequest) -> HttpResponse:
    """Import an export file (all of it or nothing, through chat.importers) and download everything."""
    user = signed_in(request)
    form = ImportForm()
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES)
        if form.is_valid() and _import(request, form, user):
            return redirect("settings:data")
    imported_ids = request.session.pop(IMPORTED_KEY, []) if request.method == "GET" else []
    imported = Conversation.objects.filter(user=user, pk__in=imported_ids).order_by("created_at")
    return render(request, "settings/data.html", {
        "form": form, "imported": imported, "formats": export_formats(), "max_mb": max_bytes() >> 20,
        "conversations": Conversation.objects.filter(user=user, temporary=False).count(),
    }, status=400 if form.errors else 200)


def _import(request: HttpRequest, form: ImportForm, user: User) -> bool:
    """Import the uploaded file; on failure the service's words go on the form and nothing is saved."""
    upload = form.cleaned_data["file"]
    if upload.size is not None and upload.size > max_bytes():
        form.add_error("file", _("The file is larger than the import limit (%(mb)d MB).") % {"mb": max_bytes() >> 20})
        return False
    try:
        report = import_file(user=user, fileobj=cast(IO[bytes], upload.file), name=upload.name or "upload")
    except ChatError as exc:
        form.add_error("file", exc.message)
        return False
    request.session[IMPORTED_KEY] = report.conversations
    count = len(report.conversations)
    messages.success(request, ngettext(
        "Imported %(count)d conversation (%(messages)d messages).",
        "Imported %(count)d conversations (%(messages)d messages).", count,
    ) % {"count": count, "messages": report.messages})
    return True


def export_formats() -> dict[str, Any]:
    """The formats the export route takes (chat.exports.FORMATS), with their labels."""
    return {fmt: EXPORT_FORMATS.get(fmt, fmt) for fmt in exports.FORMATS}
