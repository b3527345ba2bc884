"""The settings pages for keys: personal API keys (created through accounts.services, shown once,
revoked) and the user's own provider keys (set and deleted through endpoints.services, never read
back). Every row is looked up with the signed-in user as its owner."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.models import ApiKey, User
from accounts.services import api_key_create
from chat.settings_forms import ApiKeyForm, ProviderKeyForm
from chat.settings_views import signed_in
from endpoints.models import Endpoint, UserProviderKey
from endpoints.selectors import keyed_endpoints, provider_keys
from endpoints.services import provider_key_delete, provider_key_set

NEW_KEY = "settings_new_api_key"  # session: the key just created, until the next page shows it once


def _api_user(request: HttpRequest) -> User:
    user = signed_in(request)
    if user.role is None or not user.role.can_use_api:
        raise PermissionDenied(_("Your role does not include API access."))
    return user


@login_required
def api_keys(request: HttpRequest) -> HttpResponse:
    """The user's keys (not revoked) and a form to create one. A created key is handed to the
    next page through the session, which shows it once and forgets it."""
    user = _api_user(request)
    form = ApiKeyForm()
    if request.method == "POST":
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            issued = api_key_create(user=user, name=form.cleaned_data["name"], expires_at=form.expires_at())
            request.session[NEW_KEY] = {"id": issued.api_key.pk, "key": issued.key}
            return redirect("settings:api_key_created")
    keys = ApiKey.objects.filter(user=user, revoked_at__isnull=True).order_by("-created_at")
    return render(request, "settings/api_keys.html", {"form": form, "keys": keys},
                  status=400 if form.errors else 200)


@never_cache
@login_required
def api_key_created(request: HttpRequest) -> HttpResponse:
    """The key just created, this once; afterwards (reload, back) only its prefix is ever shown."""
    user = _api_user(request)
    new = request.session.pop(NEW_KEY, None)
    key = ApiKey.objects.filter(user=user, pk=new["id"]).first() if isinstance(new, dict) else None
    if key is None or new is None:
        return redirect("settings:api_keys")
    return render(request, "settings/api_key_created.html", {"api_key": key, "secret": new["key"]})


@login_required
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    """GET: ask; POST: revoke (requests with the key get 401 from then on)."""
    user = _api_user(request)
    key = get_object_or_404(ApiKey, pk=key_id, user=user, revoked_at__isnull=True)
    if request.method == "POST":
        key.revoke()
        messages.success(request, _("The key “%(name)s” is revoked.") % {"name": key.name})
        return redirect("settings:api_keys")
    return render(request, "settings/confirm.html", {
        "section_title": _("API keys"),
        "question": _("Revoke the key “%(name)s” (%(prefix)s…)?") % {"name": key.name, "prefix": key.prefix},
        "explanation": _("Scripts and tools that use it will be refused at once. This cannot be undone."),
        "action": _("Revoke key"), "cancel": reverse("settings:api_keys"),
    })


@dataclass
class KeyedEndpoint:
    endpoint: Endpoint
    stored: UserProviderKey | None
    form: ProviderKeyForm


def _form(endpoint: Endpoint, data: Any = None) -> ProviderKeyForm:
    return ProviderKeyForm(data, prefix=f"e{endpoint.pk}", needs_key=endpoint.user_provides_key,
                           needs_base_url=endpoint.user_provides_base_url)


def _provider_page(request: HttpRequest, user: User, posted: KeyedEndpoint | None = None) -> HttpResponse:
    stored = {key.endpoint_id: key for key in provider_keys(user=user)}
    rows = [
        posted if posted is not None and posted.endpoint.pk == endpoint.pk
        else KeyedEndpoint(endpoint, stored.pop(endpoint.pk, None), _form(endpoint))
        for endpoint in keyed_endpoints(user=user)
    ]
    if posted is not None:
        stored.pop(posted.endpoint.pk, None)
    # keys kept for endpoints the user may no longer use, or that no longer take a key: delete only
    return render(request, "settings/provider_keys.html", {"rows": rows, "leftovers": list(stored.values())},
                  status=400 if posted is not None else 200)


@login_required
def provider_keys_page(request: HttpRequest) -> HttpResponse:
    return _provider_page(request, signed_in(request))


@require_POST
@login_required
def provider_key_save(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Store (or replace) the user's key and/or base URL for an endpoint that takes one."""
    user = signed_in(request)
    endpoint = next((e for e in keyed_endpoints(user=user) if e.pk == endpoint_id), None)
    if endpoint is None:
        raise Http404
    form = _form(endpoint, request.POST)
    if form.is_valid():
        try:
            provider_key_set(user=user, endpoint_name=endpoint.name, api_key=form.cleaned_data.get("api_key", ""),
                             base_url=form.cleaned_data.get("base_url", ""), expires_at=form.expires_at())
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Your key for %(endpoint)s is saved.") % {"endpoint": endpoint.name})
            return redirect("settings:provider_keys")
    stored = UserProviderKey.objects.filter(user=user, endpoint=endpoint).first()
    return _provider_page(request, user, KeyedEndpoint(endpoint, stored, form))


@require_POST
@login_required
def provider_key_remove(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """Forget the user's key for the endpoint (404 when they stored none)."""
    user = signed_in(request)
    key = get_object_or_404(UserProviderKey.objects.select_related("endpoint"), user=user, endpoint_id=endpoint_id)
    provider_key_delete(user=user, endpoint_name=key.endpoint.name)
    messages.success(request, _("Your key for %(endpoint)s is deleted.") % {"endpoint": key.endpoint.name})
    return redirect("settings:provider_keys")
