"""Optional components some tests need: python-ldap, slapd, Node.js, Chromium.

`make test` works on a machine with only Python and make: a test that needs one of these skips,
with the reason, when it is missing. Under CI=true it fails instead (CI installs them all).
"""
from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> None:
    """Locally a missing component skips its tests; in CI it is an error, never a silent skip."""
    if in_ci():
        pytest.fail(f"{reason} CI must install it (.ci/run).")
    pytest.skip(reason)


def require_module(name: str, reason: str) -> ModuleType:
    """Import `name`, or skip (fail in CI) with `reason` when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        skip_or_fail(reason)
        raise  # not reached: skip_or_fail raises


def require_program(*names: str, reason: str, also: tuple[str, ...] = ()) -> str:
    """The path of the first of `names` on PATH (or among the absolute paths in `also`), or skip
    (fail in CI) with `reason`."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for candidate in also:
        if Path(candidate).exists():
            return candidate
    skip_or_fail(reason)
    raise AssertionError("not reached")
