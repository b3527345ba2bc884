"""Template helpers for the sign-in pages."""
from __future__ import annotations

from django import template

from accounts.models import SignInPolicy

register = template.Library()


@register.simple_tag
def signup_open() -> bool:
    """Whether the admin switched local sign-up on (hides the sign-up link otherwise)."""
    return SignInPolicy.load().allow_signup
