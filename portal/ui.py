"""What every page shares: the colour theme (light, dark or the system's), chosen like the language.

The choice lives in a cookie, so the server renders `<html data-theme=…>` and no page flashes in
the wrong colours before a script runs.
"""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

THEME_COOKIE = "atrium_theme"
THEMES = ("system", "light", "dark")


def theme_of(request: HttpRequest) -> str:
    theme = request.COOKIES.get(THEME_COOKIE, "system")
    return theme if theme in THEMES else "system"


def ui(request: HttpRequest) -> dict[str, object]:
    """Template context processor: `theme` and the choices offered."""
    return {"theme": theme_of(request), "themes": THEMES}


@require_POST
def set_theme(request: HttpRequest) -> HttpResponse:
    """POST `theme` (system | light | dark) and `next`: remembered for a year, like the language."""
    theme = request.POST.get("theme", "")
    if theme not in THEMES:
        return HttpResponseBadRequest("theme must be one of: " + ", ".join(THEMES))
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = "/"
    response = HttpResponseRedirect(target)
    response.set_cookie(THEME_COOKIE, theme, max_age=settings.LANGUAGE_COOKIE_AGE, samesite="Lax",
                        secure=settings.LANGUAGE_COOKIE_SECURE)
    return response
