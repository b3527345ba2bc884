"""Import many users' exports at once (an admin migrating from LibreChat, ChatGPT, Claude or
Chatbot UI): `manage.py import_conversations alice=alice.zip bob=bob.json …`. Each file is all or
nothing; a failed file is reported and the others still import (exit status 1 if any failed)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.importers import import_file
from chat.importers.base import ImportFailed

if TYPE_CHECKING:
    from accounts.models import User


class Command(BaseCommand):
    help = "Import conversation exports for users: USERNAME=FILE ... (LibreChat, ChatGPT, Claude, Chatbot UI)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("pairs", nargs="+", metavar="USERNAME=FILE")

    def handle(self, *args: Any, pairs: list[str], **options: Any) -> None:
        jobs = [self._job(pair) for pair in pairs]  # every argument checked before anything imports
        failed = 0
        for user, path in jobs:
            try:
                with path.open("rb") as stream:
                    report = import_file(user=user, fileobj=stream, name=path.name)
            except ImportFailed as exc:
                failed += 1
                self.stderr.write(f"{user.username}: nothing imported: {exc.message}")
                continue
            self.stdout.write(
                f"{user.username}: {len(report.conversations)} conversations, {report.messages} messages"
            )
        if failed:
            raise CommandError(f"{failed} of {len(jobs)} files were not imported.", returncode=1)

    def _job(self, pair: str) -> tuple[User, Path]:
        username, sep, filename = pair.partition("=")
        if not sep or not username or not filename:
            raise CommandError(f"{pair!r}: expected USERNAME=FILE.")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"{username}: no such user.")
        path = Path(filename)
        if not path.is_file():
            raise CommandError(f"{filename}: no such file.")
        return user, path
