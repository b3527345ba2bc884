"""Receivers for events every sign-in path shares (local, allauth, SSO, LDAP, Django admin).

Django's own signals are used here rather than allauth's adapter because the admin login and the
LDAP backend do not go through allauth.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from accounts.models import User
from accounts.services import ensure_start_balance, user_end_access


@receiver(user_logged_in, dispatch_uid="atrium_start_balance")
def give_start_balance(sender: Any, user: User, **kwargs: Any) -> None:
    ensure_start_balance(user=user)


@receiver(pre_save, sender=User, dispatch_uid="atrium_remember_active")
def remember_active(sender: Any, instance: User, **kwargs: Any) -> None:
    if instance.pk and not instance.is_active:
        instance._was_active = User.objects.filter(pk=instance.pk, is_active=True).exists()


@receiver(post_save, sender=User, dispatch_uid="atrium_end_access_on_deactivation")
def end_access_on_deactivation(sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    if getattr(instance, "_was_active", False):
        instance._was_active = False
        user_end_access(user=instance)
