"""Deactivating a user, however it happens (admin form, admin action, shell), ends their access.

(The start balance on first login is billing's: billing.signals calls billing.services.ensure_balance
on user creation and on every sign-in path's user_logged_in, so SSO and LDAP users get their mapped
role's start balance — the role is set before the user is first saved.)
"""
from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from accounts.models import User
from accounts.services import user_end_access


@receiver(pre_save, sender=User, dispatch_uid="atrium_remember_active")
def remember_active(sender: Any, instance: User, **kwargs: Any) -> None:
    if instance.pk and not instance.is_active:
        instance._was_active = User.objects.filter(pk=instance.pk, is_active=True).exists()


@receiver(post_save, sender=User, dispatch_uid="atrium_end_access_on_deactivation")
def end_access_on_deactivation(sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    if getattr(instance, "_was_active", False):
        instance._was_active = False
        user_end_access(user=instance)
