"""Pages of the chat app. Until the chat page exists, `/` is the employee's own landing page."""
from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import ApiKey, User
from billing.selectors import balance_summary
from endpoints.selectors import offer_for


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Who the user is, their role and balance, what they may use, and links to their settings."""
    user = cast(User, request.user)  # (login_required)
    role = user.role
    return render(request, "chat/home.html", {
        "role": role,
        "balance": balance_summary(user=user),
        "offer": offer_for(user=user),
        "api_keys": list(ApiKey.objects.usable().filter(user=user)) if role and role.can_use_api else None,
    })
