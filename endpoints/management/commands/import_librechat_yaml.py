"""python manage.py import_librechat_yaml PATH [--dry-run]"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from endpoints.librechat_import import LibreChatImportError, import_librechat_yaml


class Command(BaseCommand):
    help = (
        "Import a LibreChat librechat.yaml: custom and built-in endpoints with their models and "
        "tokenConfig rates, modelSpecs, the balance policy of the default role and interface.currency. "
        "Idempotent; one transaction: an invalid file changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="Path to librechat.yaml")
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate and report what would change, then roll back."
        )

    def handle(self, *args, path: str, dry_run: bool, **options):
        try:
            report = import_librechat_yaml(path, dry_run=dry_run)
        except LibreChatImportError as exc:
            count = len(exc.problems)
            lines = "\n".join(f"  {problem}" for problem in exc.problems)
            raise CommandError(
                f"{path} was not imported ({count} problem{'s' if count != 1 else ''}); nothing was changed:\n{lines}"
            ) from exc
        self.stdout.write(report.render())
