"""Re-encrypt every secret at rest with the newest key of ATRIUM_ENCRYPTION_KEYS.

Rotation: prepend a new key (`NEW,OLD`), restart, run this command, then drop OLD.
"""
from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from portal.fields import EncryptedTextField


class Command(BaseCommand):
    help = "Re-encrypt all stored secrets with the first key of ATRIUM_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        total = 0
        for model in apps.get_models():
            fields = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not fields:
                continue
            with transaction.atomic():
                for obj in model._base_manager.select_for_update().only("pk", *fields).iterator():
                    # loading decrypts with any key; saving encrypts with the first one
                    obj.save(update_fields=fields)
                    total += 1
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted the secrets of {total} rows with the newest key."))
