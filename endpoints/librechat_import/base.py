"""What every part of the importer shares: the report, the problems found so far, the endpoints
this file describes, and the helpers that check a value's type and map a model's validation errors
back to YAML keys."""
from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models

from endpoints.librechat_import.report import ImportReport, ReportLine
from endpoints.librechat_import.shape import EXPECTED, describe, is_a
from endpoints.models import Endpoint


class ImporterBase:
    def __init__(self, report: ImportReport):
        self.report = report
        self.problems: list[str] = []
        # Endpoints this file describes, by lower-case name (azure groups by group name,
        # built-ins by their kind key), and where in the file they are.
        self.file_endpoints: dict[str, Endpoint] = {}
        self.file_where: dict[str, str] = {}
        self.failed: set[str] = set()  # lower-case names whose entry had problems
        self.title_refs: list[tuple[Endpoint, str, Any, ReportLine]] = []
        self.ordering = 0

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}" if where else message)

    def skip(self, subject: str, reason: str, where: str = "") -> None:
        self.report.add("skipped", subject, where, reason)

    def expect(self, where: str, value: Any, expected: type) -> bool:
        if is_a(value, expected):
            return True
        hint = "; quote it in YAML" if expected is str and isinstance(value, (int, float, bool)) else ""
        self.problem(where, f"expected {EXPECTED[expected]}, got {describe(value)}{hint}.")
        return False

    def validation_problems(
        self, where: str, exc: ValidationError, keys: dict[str, str], model: type[models.Model]
    ) -> None:
        if not hasattr(exc, "error_dict"):
            for message in exc.messages:
                self.problem(where, message)
            return
        for field_name, errors in exc.error_dict.items():
            key = keys.get(field_name, field_name)
            for error in errors:
                for message in ValidationError(error).messages:
                    if getattr(error, "code", None) == "invalid_choice":
                        choices = [str(value) for value, _ in model._meta.get_field(field_name).choices]
                        message += f" Valid values: {', '.join(choices)}."
                    if field_name == NON_FIELD_ERRORS:
                        self.problem(where, message)
                    else:
                        self.problem(f"{where}.{key}", message)

    @staticmethod
    def apply(instance: models.Model, values: dict[str, Any]) -> list[str]:
        """Set `values` on `instance`; return the fields whose value changed."""
        changed = []
        for name, value in values.items():
            if isinstance(value, models.Model):  # a foreign key: compare ids, never load a missing row
                if getattr(instance, f"{name}_id") != value.pk:
                    setattr(instance, name, value)
                    changed.append(name)
                continue
            if getattr(instance, name) != value:
                setattr(instance, name, value)
                changed.append(name)
        return changed

    def next_ordering(self) -> int:
        self.ordering += 1
        return self.ordering * 10

