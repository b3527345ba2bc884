"""`manage.py check_ledger`: exit 1, naming what is wrong, when the ledger's invariants do not hold
(see billing.ledger_check)."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.ledger_check import ledger_problems


class Command(BaseCommand):
    help = "Check that every balance equals the sum of its transactions and every hold belongs to a live call."

    def handle(self, *args: Any, **options: Any) -> None:
        problems = ledger_problems()
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"The ledger has {len(problems)} problem(s).", returncode=1)
        self.stdout.write(
            "The ledger is sound: every balance equals its transactions and its holds, no hold outlived its call."
        )
