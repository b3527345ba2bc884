"""Reading the YAML and describing its values in problems (`expected text, got the number 3`)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml

from endpoints.librechat_import.report import LibreChatImportError


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates as text: an Azure api-version such as 2024-02-01 stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml(text: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise LibreChatImportError([f"YAML syntax error at {where}: {exc.problem or exc}."]) from exc
    except yaml.YAMLError as exc:
        raise LibreChatImportError([f"YAML syntax error: {exc}."]) from exc
    if data is None:
        raise LibreChatImportError(["The file is empty."])
    if not isinstance(data, dict):
        raise LibreChatImportError(
            [f"The file must hold a YAML mapping (key: value) at the top, not {describe(data)}."]
        )
    return data


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


EXPECTED = {
    str: "text", bool: "true or false", int: "a whole number", Decimal: "a number", dict: "an object", list: "a list",
}


def is_a(value: Any, expected: type) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is Decimal:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, expected)


def decimal(value: int | float) -> Decimal:
    """The number as written (0.15 stays 0.15, not the float's binary expansion)."""
    return Decimal(str(value))

