"""What every importer produces: conversations as trees of messages keyed by the source's ids,
independent of the file they came from. Saving is `chat.importers.save`."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from chat.errors import InvalidRequest


class ImportFailed(InvalidRequest):
    """A file that cannot be imported whole; the message says what and where. Nothing was saved."""

    code = "import_failed"


@dataclass
class ImportedMessage:
    key: str
    parent_key: str | None
    role: str  # user | assistant | system
    text: str
    created_at: datetime | None = None
    model: str = ""
    sender: str = ""
    reasoning: str = ""
    error: bool = False
    unfinished: bool = False


@dataclass
class ImportedConversation:
    title: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    endpoint_name: str = ""
    model: str = ""
    system_prompt: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    messages: list[ImportedMessage] = field(default_factory=list)


def timestamp(value: object, where: str) -> datetime | None:
    """ISO 8601 strings (LibreChat, Claude) or epoch seconds (ChatGPT) as aware datetimes."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str):
        parsed = parse_datetime(value.replace("Z", "+00:00"))
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ImportFailed(f"{where}: {value!r} is not a date.")


def require(mapping: object, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(mapping, dict):
        raise ImportFailed(f"{where}: expected an object, found {type(mapping).__name__}.")
    value = mapping.get(key)
    if not isinstance(value, kind):
        found = "nothing" if value is None else type(value).__name__
        raise ImportFailed(f"{where}: '{key}' is missing or not {_kind_name(kind)} (found {found}).")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "text", list: "a list", dict: "an object", int: "a number", float: "a number", bool: "true/false"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))
