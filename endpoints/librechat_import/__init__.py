"""Import a LibreChat `librechat.yaml` into Atrium's models, in one database transaction.

What it writes: custom endpoints (`endpoints.custom[]`), the built-in kinds (`endpoints.openAI`,
`anthropic`, `google`, `bedrock`, `azureOpenAI` with its `groups[]`), their models and `tokenConfig`
rates, `modelSpecs`, `balance` (the default role's balance policy) and `interface.currency`.
Everything else is reported as skipped, with the reason.

Validation is the models' own `full_clean()` (which calls the rules in `endpoints/config.py`); this
package only checks the shape of the YAML (types, required keys) and maps every problem back to the
entry and key it came from, e.g. `endpoints.custom[2] (groq).titlePrompt: titlePrompt must contain
the {convo} placeholder.` Any problem rolls the whole import back. `${VAR}` references are stored as
written and resolved at request time; a literal key is encrypted by the model field.

A module per concern: `mapping` (LibreChat's keys and Atrium's fields), `shape` (the YAML and its
types), `report`, and the importer in parts: `base` (shared state and helpers), `endpoints`,
`azure`, `specs`, `balance`, brought together in `importer`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction

from endpoints.librechat_import.importer import Importer
from endpoints.librechat_import.report import ImportReport, LibreChatImportError, ReportLine
from endpoints.librechat_import.shape import parse_yaml

__all__ = [
    "ImportReport",
    "LibreChatImportError",
    "ReportLine",
    "import_librechat_config",
    "import_librechat_yaml",
    "parse_yaml",
]


def import_librechat_yaml(path: str | Path, *, dry_run: bool = False) -> ImportReport:
    """Read, validate and import `path`; raise LibreChatImportError (nothing changed) on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise LibreChatImportError([f"{path}: no such file."]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise LibreChatImportError([f"{path}: cannot be read ({exc})."]) from exc
    return import_librechat_config(parse_yaml(text), source=str(path), dry_run=dry_run)


def import_librechat_config(
    data: dict[str, Any], *, source: str = "librechat.yaml", dry_run: bool = False
) -> ImportReport:
    report = ImportReport(source=source, dry_run=dry_run)
    importer = Importer(report)
    try:
        with transaction.atomic():
            importer.run(data)
            if importer.problems:
                raise LibreChatImportError(importer.problems)
            if dry_run:
                transaction.set_rollback(True)
    except IntegrityError as exc:  # a concurrent edit in the admin; the rules above catch the rest
        raise LibreChatImportError([f"The database refused the import ({exc}); nothing was changed."]) from exc
    return report
